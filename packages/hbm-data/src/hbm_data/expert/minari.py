"""Reading a local Minari dataset directory (HDF5 or arrow/parquet layout, with h5py / pyarrow
directly, no `minari` package) into episodes: `read_minari_dataset`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..envs import ENVIRONMENTS, EnvSpec, get_env_spec
from ..extras import require
from ._common import (
    DatasetImportError,
    ImportedEpisodes,
    _ArrowColumn,
    _check_actions,
    _check_flags,
    _check_numbers,
    _check_obs,
    _env_from_id,
    _make_episode,
    _placeholder_time,
)


def _minari_data_path(path: Path) -> Path:
    """The folder holding `metadata.json`: `path` itself or its `data/`."""
    for candidate in (path, path / "data"):
        if (candidate / "metadata.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: not a Minari dataset (no metadata.json in it or in its data/ folder; a "
        "dataset is <root>/<dataset_id>/data/)"
    )


def _json_field(meta: Mapping[str, Any], name: str, where: str) -> Any:
    value = meta.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise DatasetImportError(f"{where}: field {name!r} is not valid JSON ({exc})") from None
    return value


def _minari_spec(meta: Mapping[str, Any], env: str | EnvSpec | None, where: str) -> EnvSpec:
    hbm = meta.get("hbm") if isinstance(meta.get("hbm"), dict) else {}
    env_spec = _json_field(meta, "env_spec", where)
    env_id = env_spec.get("id") if isinstance(env_spec, dict) else None
    if env is not None:
        spec = get_env_spec(env)
    elif isinstance(hbm, dict) and hbm.get("env_name") in ENVIRONMENTS:
        spec = ENVIRONMENTS[hbm["env_name"]]
    elif isinstance(env_id, str):
        spec = _env_from_id(env_id, where)
    else:
        raise DatasetImportError(
            f"{where}: no field 'env_spec' saying which game this is; pass it (env=..., --env)"
        )
    obs_space = _json_field(meta, "observation_space", where)
    if isinstance(obs_space, dict):
        shape = obs_space.get("shape")
        if obs_space.get("type") != "Box" or shape != [spec.obs_size]:
            raise DatasetImportError(
                f"{where}: field 'observation_space' is {obs_space.get('type')} of shape "
                f"{shape}, expected Box of shape [{spec.obs_size}] for {spec.env_id}"
            )
    act_space = _json_field(meta, "action_space", where)
    if isinstance(act_space, dict) and (
        act_space.get("type") != "Discrete"
        or act_space.get("n") != spec.num_actions
        or act_space.get("start", 0) != 0
    ):
        raise DatasetImportError(
            f"{where}: field 'action_space' is {act_space}, expected Discrete({spec.num_actions})"
            f" starting at 0 for {spec.env_id}"
        )
    return spec


class _RawEpisode(NamedTuple):
    observations: np.ndarray  # [T + 1, D]: Minari keeps the final observation
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    attrs: dict[str, Any]
    next_observations: np.ndarray | None  # hbm's own, when they are not the chain above


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _hdf5_episodes(data_path: Path, n: int) -> list[_RawEpisode]:
    h5py = require("h5py", "minari", "reading Minari datasets")
    file = data_path / "main_data.hdf5"
    if not file.is_file():
        raise FileNotFoundError(f"{file}: the dataset's HDF5 file is missing")
    out = []
    with h5py.File(file, "r") as f:
        for i in range(n):
            where = f"{file}: episode_{i}"
            if f"episode_{i}" not in f:
                raise DatasetImportError(f"{where}: missing (metadata.json counts {n} episodes)")
            g = f[f"episode_{i}"]
            data = {}
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                if key not in g:
                    raise DatasetImportError(f"{where}: no {key!r}")
                if not isinstance(g[key], h5py.Dataset):
                    raise DatasetImportError(
                        f"{where}: {key!r} is a group (a Dict or Tuple space); hbm's games have "
                        "one flat observation vector and one discrete action"
                    )
                data[key] = g[key][()]
            nxt = None
            infos = g.get("infos")
            if infos is not None and "hbm_next_observation" in infos:
                nxt = np.asarray(infos["hbm_next_observation"][()])[1:]
            attrs = {k: _plain(v) for k, v in g.attrs.items()}
            out.append(_RawEpisode(**data, attrs=attrs, next_observations=nxt))
    return out


def _arrow_episodes(data_path: Path, n: int, fmt: str) -> list[_RawEpisode]:
    feature = f"reading Minari datasets in the {fmt} format"
    ds = require("pyarrow.dataset", "minari", feature)
    out = []
    for i in range(n):
        folder = data_path / str(i)
        if not folder.is_dir():
            raise DatasetImportError(f"{folder}: missing (metadata.json counts {n} episodes)")
        table = ds.dataset(
            str(folder), format=fmt, ignore_prefixes=["_", ".", "metadata.json"]
        ).to_table()
        cols = {
            key: _ArrowColumn(table.column(key), folder, key).to_numpy()
            for key in ("observations", "actions", "rewards", "terminations", "truncations")
            if key in table.column_names
        }
        if len(cols) < 5:
            raise DatasetImportError(
                f"{folder}: expected observations, actions, rewards, terminations and "
                f"truncations, found {', '.join(table.column_names)}"
            )
        # every column has T + 1 rows: the steps' columns end with a padding row
        steps = {k: v[:-1] for k, v in cols.items() if k != "observations"}
        attrs = {}
        if (folder / "metadata.json").is_file():
            attrs = json.loads((folder / "metadata.json").read_text())
        out.append(_RawEpisode(cols["observations"], attrs=attrs, next_observations=None, **steps))
    return out


def read_minari_dataset(
    path: Path | str, *, env: str | EnvSpec | None = None, max_episodes: int | None = None
) -> ImportedEpisodes:
    """Episodes of a local Minari dataset, in episode-id order, boundaries kept.

    `path` is the dataset's folder (`<root>/<dataset_id>`) or its `data/` folder. The game is
    `env`, else the one hbm exported it from, else the id in its `env_spec`. Seeds come from the
    episodes' metadata (`seed`); an episode without one gets its index, flagged as a
    placeholder. A step is done where Minari says terminated or truncated.
    """
    data_path = _minari_data_path(Path(path))
    where = str(data_path / "metadata.json")
    try:
        meta = json.loads((data_path / "metadata.json").read_text())
    except json.JSONDecodeError as exc:
        raise DatasetImportError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DatasetImportError(f"{where}: expected a JSON object")
    spec = _minari_spec(meta, env, where)
    n = meta.get("total_episodes")
    if not isinstance(n, int) or n < 0:
        raise DatasetImportError(f"{where}: field 'total_episodes' must be a count, found {n!r}")
    if max_episodes is not None:
        n = min(n, max_episodes)
    fmt = meta.get("data_format", "hdf5")
    if fmt == "hdf5":
        raw = _hdf5_episodes(data_path, n)
    elif fmt in ("arrow", "parquet"):
        raw = _arrow_episodes(data_path, n, fmt)
    else:
        raise DatasetImportError(
            f"{where}: field 'data_format' is {fmt!r}, expected hdf5, arrow or parquet"
        )
    hbm = meta["hbm"] if isinstance(meta.get("hbm"), dict) else {}
    episodes, seed_known, times = [], [], []
    for i, r in enumerate(raw):
        ew = f"{data_path}: episode {i}"
        obs = _check_obs(r.observations, spec, ew, "observations")
        actions = _check_actions(r.actions, spec, ew, "actions")
        rewards = _check_numbers(np.asarray(r.rewards).reshape(-1), ew, "rewards")
        t = len(actions)
        if len(obs) != t + 1 or len(rewards) != t:
            raise DatasetImportError(
                f"{ew}: {len(obs)} observations, {t} actions and {len(rewards)} rewards; "
                "expected one observation more than actions (the final one) and one reward "
                "per action"
            )
        if t == 0:
            raise DatasetImportError(f"{ew}: the episode has no steps")
        term = _check_flags(np.asarray(r.terminations).reshape(-1), ew, "terminations")
        trunc = _check_flags(np.asarray(r.truncations).reshape(-1), ew, "truncations")
        dones = term | trunc
        if r.attrs.get("hbm_ended_without_done"):
            dones[-1] = False
        nxt = obs[1:]
        if r.next_observations is not None:
            nxt = _check_obs(r.next_observations, spec, ew, "infos/hbm_next_observation")
        recorded = _int_or_none(r.attrs.get("seed"))
        known = recorded is not None and recorded >= 0
        if recorded is None or recorded < 0:  # hbm's placeholder if it exported one, else i
            recorded = _int_or_none(r.attrs.get("hbm_seed_used"))
        seed = recorded if recorded is not None and recorded >= 0 else i
        seed_known.append(known)
        stamp = r.attrs.get("hbm_timestamp")
        times.append(isinstance(stamp, str))
        episodes.append(
            _make_episode(
                i, obs[:-1], actions, rewards, nxt, dones,
                seed=seed,
                timestamp=stamp if isinstance(stamp, str) else _placeholder_time(i),
                episode_id=_int_or_none(r.attrs.get("hbm_episode_id")),
                score=_float_or_none(r.attrs.get("hbm_score")),
            )
        )  # fmt: skip
    if not episodes:
        raise DatasetImportError(f"{where}: the dataset has no episodes")
    if not all(times):  # a mix of real and made-up times would make up sessions: all or none
        episodes = [
            _make_episode(
                i, e.observations, e.actions, e.rewards, e.next_observations, e.dones,
                seed=e.seed_used, timestamp=_placeholder_time(i), episode_id=e.episode_id,
                score=e.score,
            )
            for i, e in enumerate(episodes)
        ]  # fmt: skip
    source = {
        "format": f"minari-{fmt}",
        "path": str(data_path.resolve()),
        "dataset_id": meta.get("dataset_id"),
        "minari_version": meta.get("minari_version"),
    }
    env_spec = _json_field(meta, "env_spec", where)
    if isinstance(env_spec, dict) and env_spec.get("id") != spec.env_id:
        source["env_id"] = env_spec.get("id")
    exported = hbm.get("sidecar")
    times_known = all(times) and not (
        isinstance(exported, dict) and exported.get("placeholder_timestamps")
    )
    return ImportedEpisodes(
        episodes, spec, np.array(seed_known, dtype=bool), times_known, source, hbm
    )


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _float_or_none(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
