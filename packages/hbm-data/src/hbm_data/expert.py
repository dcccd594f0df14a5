"""Expert datasets as subjects: import local Hugging Face and Minari sets; export to Minari.

Nothing is downloaded: every function reads or writes local files.

- `import_hf_dataset`: the lab's Hugging Face expert sets (`NathanGavenski/CartPole-v1`,
  `LunarLander-v2`: one row per step with `obs`, `actions`, `rewards`, `episode_starts`; a
  `teacher.jsonl`, or the Parquet files of the Hub's conversion, or a folder of them). LeRobot's
  column names (`observation.state`, `action`, `next.reward`, `episode_index`, `next.done`) are
  read too. JSON needs nothing; Parquet needs `hbm-data[expert]` (pyarrow).
- `import_minari_dataset`: a local Minari dataset directory (`<root>/<dataset_id>/data/` with
  `metadata.json` and `main_data.hdf5`, or the arrow/parquet layout), read with h5py / pyarrow
  directly, so the `minari` package (which pulls gymnasium) is not needed: `hbm-data[minari]`.
- `export_minari_dataset`: any hbm subject (a person, a simulated player, an expert) as a Minari
  HDF5 dataset that `minari.load_dataset` opens, seeds in the episode metadata.

An imported set becomes an ordinary episode file `<subject>_data_<env>.json` in the data folder
(default subject `expert-<env>`, loaded as `expert:<env>`) with a sidecar saying
`"source_kind": "expert"` (and `"simulated": true`: not a person). Expert sets record no reset
seeds and no times: `seed_used` is then the episode's index, a valid placeholder listed in the
sidecar's `placeholder_seeds` (`EpisodeInfo.seed_replayable` is False), and the times are one
second apart from 1970-01-01 UTC (one session), flagged by `placeholder_timestamps`.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from . import __version__
from .envs import ENVIRONMENTS, EnvSpec, get_env_spec
from .episodes import F32_MAX, Episode, load_episodes, parse_episodes, read_sidecar, write_episodes
from .episodes import write_sidecar as _write_sidecar
from .extras import require
from .files import atomic_write_bytes, file_content_hash
from .loading import SOURCE_KINDS, seed_replayable, source_kind
from .paths import (
    EXPERT_FILE_PREFIX,
    check_subject,
    episode_file_name,
    find_episode_file,
    parse_episode_file_name,
    subject_file_stem,
)
from .paths import data_dir as default_data_dir
from .validation import EpisodeFormatError, errors

__all__ = [
    "MINARI_FORMAT_VERSION",
    "DatasetImportError",
    "ImportedEpisodes",
    "export_minari_dataset",
    "import_hf_dataset",
    "import_minari_dataset",
    "read_hf_dataset",
    "read_minari_dataset",
]

logger = logging.getLogger(__name__)

#: Column names accepted for each quantity, first match wins: IL-Datasets / the lab's Hub sets
#: first, then Minari-like plurals, then LeRobot's.
OBS_COLUMNS = ("obs", "observations", "observation", "observation.state", "states", "state")
NEXT_OBS_COLUMNS = ("next_obs", "next_observations", "next_observation", "next.observation.state")
ACTION_COLUMNS = ("actions", "action")
REWARD_COLUMNS = ("rewards", "reward", "next.reward")
#: Episode markers, in the order they are looked for: an episode number per row (LeRobot),
#: True on each episode's first row (IL-Datasets, Stable-Baselines3), True on its last row.
INDEX_COLUMNS = ("episode_index", "episode_id")
START_COLUMNS = ("episode_starts", "episode_start")
DONE_COLUMNS = ("dones", "done", "next.done", "terminals")

#: The `minari_version` written by `export_minari_dataset`: the 0.5 layout, which every Minari
#: 0.5.x reads (each release accepts the versions up to its own).
MINARI_FORMAT_VERSION = "0.5.0"

#: Start of the placeholder times of an expert set (which records none): episode i starts i
#: seconds later, so the set is one session and its episodes stay in file order.
PLACEHOLDER_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DATASET_ID_RE = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")

#: What Gymnasium 1.x declares for the four games (`EnvSpec.to_json()`, the spaces as Minari
#: serialises them), so an export needs no gymnasium; `test_expert` checks them against it.
_GYM: Mapping[str, dict[str, Any]] = {
    "cartpole": {
        "entry_point": "gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        "reward_threshold": 475.0,
        "vector_entry_point": "gymnasium.envs.classic_control.cartpole:CartPoleVectorEnv",
        "low": [-4.800000190734863, -math.inf, -0.41887903213500977, -math.inf],
        "high": [4.800000190734863, math.inf, 0.41887903213500977, math.inf],
    },
    "mountaincar": {
        "entry_point": "gymnasium.envs.classic_control.mountain_car:MountainCarEnv",
        "reward_threshold": -110.0,
        "vector_entry_point": None,
        "low": [-1.2000000476837158, -0.07000000029802322],
        "high": [0.6000000238418579, 0.07000000029802322],
    },
    "acrobot": {
        "entry_point": "gymnasium.envs.classic_control.acrobot:AcrobotEnv",
        "reward_threshold": -100.0,
        "vector_entry_point": None,
        "low": [-1.0, -1.0, -1.0, -1.0, -12.566370964050293, -28.274333953857422],
        "high": [1.0, 1.0, 1.0, 1.0, 12.566370964050293, 28.274333953857422],
    },
    "lunarlander": {
        "entry_point": "gymnasium.envs.box2d.lunar_lander:LunarLander",
        "reward_threshold": 200,
        "vector_entry_point": None,
        "low": [-2.5, -2.5, -10.0, -10.0, -6.2831854820251465, -10.0, -0.0, -0.0],
        "high": [2.5, 2.5, 10.0, 10.0, 6.2831854820251465, 10.0, 1.0, 1.0],
    },
}


class DatasetImportError(ValueError):
    """A dataset that cannot be imported or exported; the message names the file, the column
    or field, and what was expected."""


class ImportedEpisodes(NamedTuple):
    """Episodes read from a foreign dataset, before they are written as an hbm subject."""

    episodes: list[Episode]
    spec: EnvSpec
    #: per episode: False where `seed_used` is a placeholder (the dataset recorded no seed)
    seed_known: np.ndarray
    #: False when the times are placeholders (the dataset recorded none)
    times_known: bool
    #: where the data came from, for the sidecar (`source`)
    source: dict[str, Any]
    #: what the dataset says about itself when hbm exported it (`hbm` block), else {}
    hbm: dict[str, Any]


# ----------------------------------------------------------------------------- shared helpers


def _placeholder_time(i: int) -> str:
    return (PLACEHOLDER_EPOCH + timedelta(seconds=i)).isoformat()


def _env_from_id(env_id: str, where: str) -> EnvSpec:
    """hbm's game for a Gymnasium id, also of another version (`LunarLander-v2` is hbm's
    `lunarlander`, LunarLander-v3: same observations and actions)."""
    try:
        return get_env_spec(env_id)
    except ValueError:
        pass
    family = env_id.rsplit("-v", 1)[0]
    for spec in ENVIRONMENTS.values():
        if spec.env_id.rsplit("-v", 1)[0] == family:
            logger.info("%s: %s read as hbm's %s (%s)", where, env_id, spec.name, spec.env_id)
            return spec
    known = ", ".join(s.env_id for s in ENVIRONMENTS.values())
    raise DatasetImportError(
        f"{where}: environment {env_id!r} is none of hbm's games ({known}); pass the game "
        "explicitly (env=..., --env) if its observations and actions are the same"
    )


def _check_numbers(values: np.ndarray, where: str, what: str) -> np.ndarray:
    """float64 copy of `values`, or an error naming the first non-finite or beyond-float32 one
    (hbm trains in float32, where it would become inf)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetImportError(f"{where}: {what} must be numbers ({exc})") from None
    bad = ~np.isfinite(arr) | (np.abs(arr) > F32_MAX)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DatasetImportError(
            f"{where}: {what}, row {row}: expected finite numbers within float32 range, found "
            f"{np.asarray(values)[row].tolist()!r}"
        )
    return arr


def _check_obs(values: Any, spec: EnvSpec, where: str, column: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object or arr.ndim != 2:
        raise DatasetImportError(
            f"{where}: column {column!r} must hold one vector of {spec.obs_size} numbers per "
            f"row for {spec.env_id}, found an array of shape {arr.shape} ({arr.dtype})"
        )
    if arr.shape[1] != spec.obs_size:
        raise DatasetImportError(
            f"{where}: column {column!r} has {arr.shape[1]} values per row, expected "
            f"{spec.obs_size} for {spec.env_id} (is --env right?)"
        )
    if arr.dtype == bool:
        raise DatasetImportError(f"{where}: column {column!r} holds booleans, expected numbers")
    return _check_numbers(arr, where, f"column {column!r}")


def _check_actions(values: Any, spec: EnvSpec, where: str, column: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:  # SB3 stores a discrete action as a 1-vector
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.dtype == object or arr.dtype == bool:
        raise DatasetImportError(
            f"{where}: column {column!r} must hold one integer action per row ({spec.env_id} "
            f"has {spec.num_actions} discrete actions), found shape {arr.shape} ({arr.dtype})"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        arr = _check_numbers(arr, where, f"column {column!r}")
        frac = np.flatnonzero(arr != np.round(arr))
        if frac.size:
            raise DatasetImportError(
                f"{where}: column {column!r}, row {frac[0]}: expected an integer action, found "
                f"{arr[frac[0]].item()!r}"
            )
    out = arr.astype(np.int64)
    bad = np.flatnonzero((out < 0) | (out >= spec.num_actions))
    if bad.size:
        raise DatasetImportError(
            f"{where}: column {column!r}, row {bad[0]}: action {out[bad[0]]} out of range "
            f"[0, {spec.num_actions}) for {spec.env_id}"
        )
    return out


def _check_flags(values: Any, where: str, column: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    if arr.ndim == 1 and arr.dtype != object and np.isin(arr, (0, 1)).all():
        return arr.astype(bool)  # IL-Datasets writes its starts as 0.0 / 1.0
    raise DatasetImportError(
        f"{where}: column {column!r} must hold true/false (or 0/1) per row, found {arr[:5]!r}…"
    )


def _make_episode(
    i: int,
    obs: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_obs: np.ndarray,
    dones: np.ndarray,
    *,
    seed: int,
    timestamp: str,
    episode_id: int | None = None,
    score: float | None = None,
) -> Episode:
    return Episode(
        episode_id=i if episode_id is None else episode_id,
        timestamp=timestamp,
        seed_used=seed,
        score=math.fsum(rewards.tolist()) if score is None else score,
        observations=np.ascontiguousarray(obs, dtype=np.float64),
        actions=np.ascontiguousarray(actions, dtype=np.int64),
        rewards=np.ascontiguousarray(rewards, dtype=np.float64),
        next_observations=np.ascontiguousarray(next_obs, dtype=np.float64),
        dones=np.ascontiguousarray(dones, dtype=bool),
    )


# ----------------------------------------------------------------------------- Hugging Face sets


def _hf_files(path: Path, split: str | None) -> list[Path]:
    """The data files of a dataset: `path` itself, or the Parquet (else JSON Lines / JSON)
    files under a folder, sorted, those of `split` only when given."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file or folder")
    if path.is_file():
        return [path]
    for patterns in (("*.parquet",), ("*.jsonl", "*.jsonl.gz"), ("*.json", "*.json.gz")):
        files = sorted(
            p
            for pattern in patterns
            for p in path.rglob(pattern)
            if not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if split is not None:
            files = [
                p
                for p in files
                if split in p.relative_to(path).parts[:-1]
                or p.name.startswith((f"{split}-", f"{split}."))
            ]
        if files:
            return files
    which = f" of split {split!r}" if split is not None else ""
    raise FileNotFoundError(f"{path}: no .parquet, .jsonl or .json files{which} in this folder")


def _read_parquet(file: Path) -> dict[str, Any]:
    feature = "reading Parquet expert datasets"
    pq = require("pyarrow.parquet", "expert", feature)
    table = pq.read_table(file)
    return {name: _ArrowColumn(table.column(name), file, name) for name in table.column_names}


class _ArrowColumn:
    """A Parquet/Arrow column, converted to numpy only when a quantity asks for it."""

    def __init__(self, column: Any, file: Path, name: str) -> None:
        self.column, self.file, self.name = column, file, name

    def to_numpy(self) -> np.ndarray:
        pa = require("pyarrow", "expert", "reading Parquet expert datasets")
        pc = require("pyarrow.compute", "expert", "reading Parquet expert datasets")
        col = (
            self.column.combine_chunks() if hasattr(self.column, "combine_chunks") else self.column
        )
        where = f"{self.file}: column {self.name!r}"
        if col.null_count:
            raise DatasetImportError(f"{where} has {col.null_count} missing (null) values")
        t = col.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
            values = pc.list_flatten(col)
            if values.null_count:
                raise DatasetImportError(f"{where} has missing (null) values inside its rows")
            width = int(lengths[0]) if len(lengths) else 0
            bad = np.flatnonzero(lengths != width)
            if bad.size:
                raise DatasetImportError(
                    f"{where}, row {bad[0]}: {lengths[bad[0]]} values, but row 0 has {width}"
                )
            flat = np.asarray(values.to_numpy(zero_copy_only=False))
            return flat.reshape(len(col), width)
        return np.asarray(col.to_numpy(zero_copy_only=False))


def _loads(data: bytes, where: str) -> Any:
    """orjson (fast), else the standard library, which also reads NaN / Infinity (Python's
    `json.dump` writes them; the value checks then name the row)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetImportError(f"{where}: not valid JSON ({exc})") from None


def _read_json(file: Path) -> dict[str, Any]:
    """Columns of a JSON Lines file (one object per row), a JSON list of row objects, or a
    JSON object of columns."""
    data = file.read_bytes()
    if file.name.endswith(".gz"):
        data = gzip.decompress(data)
    rows: list[Any]
    if file.name.endswith((".jsonl", ".jsonl.gz")):
        rows = []
        for n, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            rows.append(_loads(line, f"{file}, line {n}"))
    else:
        raw = _loads(data, str(file))
        if isinstance(raw, dict) and all(isinstance(v, list) for v in raw.values()):
            return dict(raw)
        if not isinstance(raw, list):
            raise DatasetImportError(
                f"{file}: expected JSON rows (a list of objects, or JSON Lines) or an object of "
                f"columns, found {type(raw).__name__}"
            )
        rows = raw
    if not rows:
        raise DatasetImportError(f"{file}: the dataset has no rows")
    names = list(rows[0]) if isinstance(rows[0], dict) else []
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DatasetImportError(f"{file}, row {n}: expected an object, found {row!r}")
        for name in names:
            try:
                columns[name].append(row[name])
            except KeyError:
                raise DatasetImportError(
                    f"{file}, row {n}: no column {name!r} (row 0 has {', '.join(names)})"
                ) from None
    return columns


def _as_array(values: Any, where: str, column: str) -> np.ndarray:
    if isinstance(values, _ArrowColumn):
        return values.to_numpy()
    try:
        return np.asarray(values)
    except ValueError:  # ragged rows: name the first one of another length
        lengths = [len(v) if isinstance(v, list) else -1 for v in values]
        first = next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise DatasetImportError(
            f"{where}: column {column!r}, row {first}: {lengths[first]} values, but row 0 has "
            f"{lengths[0]}"
        ) from None


def _pick(columns: Mapping[str, Any], names: Sequence[str]) -> str | None:
    return next((n for n in names if n in columns), None)


def _boundaries(n_rows: int, marker: str, values: np.ndarray, where: str) -> list[tuple[int, int]]:
    """[start, stop) of each episode from its marker column."""
    if n_rows == 0:
        return []
    if marker in INDEX_COLUMNS:
        idx = np.asarray(values)
        if not np.issubdtype(idx.dtype, np.integer):
            raise DatasetImportError(f"{where}: column {marker!r} must hold integers")
        starts = np.concatenate([[0], np.flatnonzero(idx[1:] != idx[:-1]) + 1])
        ids = idx[starts]
        if len(np.unique(ids)) != len(ids):
            again = next(int(v) for k, v in enumerate(ids) if v in ids[:k])
            raise DatasetImportError(
                f"{where}: column {marker!r}: episode {again} is not one contiguous block of "
                "rows (the rows of an episode must follow each other)"
            )
        stops = [*starts[1:].tolist(), n_rows]
    elif marker in START_COLUMNS:
        starts = np.flatnonzero(values)
        if starts.size == 0 or starts[0] != 0:
            logger.warning("%s: row 0 is not marked as a start; it starts an episode", where)
            starts = np.concatenate([[0], starts])
        stops = [*starts[1:].tolist(), n_rows]
    else:  # done markers: an episode ends on a True row
        stops = (np.flatnonzero(values) + 1).tolist()
        if not stops or stops[-1] != n_rows:
            logger.warning("%s: the last episode has no done row; kept, unfinished", where)
            stops.append(n_rows)
        starts = np.array([0, *stops[:-1]])
    return [(int(a), int(b)) for a, b in zip(starts.tolist(), stops, strict=True)]


def read_hf_dataset(
    path: Path | str,
    env: str | EnvSpec,
    *,
    split: str | None = None,
    max_episodes: int | None = None,
) -> ImportedEpisodes:
    """Episodes of a local Hugging Face expert set (a file, or a folder of Parquet / JSON Lines
    files read in sorted order as one table), boundaries kept.

    Rows are steps: an observation (`OBS_COLUMNS`), the action taken (`ACTION_COLUMNS`), its
    reward (`REWARD_COLUMNS`), and an episode marker (`INDEX_COLUMNS`, else `START_COLUMNS`,
    else `DONE_COLUMNS`). Without a next-observation column (`NEXT_OBS_COLUMNS`), a step's next
    observation is the following row's, and an episode's last step repeats its own (the sets do
    not store the final one). Without a done column, only each episode's last step is done.
    The sets record neither seeds nor times: both are placeholders (see the module doc).
    Errors (`DatasetImportError`) name the file, the column and the row (counted from 0).
    """
    path = Path(path)
    spec = get_env_spec(env)
    files = _hf_files(path, split)
    parts: dict[str, list[np.ndarray]] = {}
    names: dict[str, str | None] = {}
    for file in files:
        columns = _read_parquet(file) if file.name.endswith(".parquet") else _read_json(file)
        where = str(file)
        if not names:
            names = {
                "obs": _pick(columns, OBS_COLUMNS),
                "actions": _pick(columns, ACTION_COLUMNS),
                "rewards": _pick(columns, REWARD_COLUMNS),
                "next_obs": _pick(columns, NEXT_OBS_COLUMNS),
                "marker": _pick(columns, (*INDEX_COLUMNS, *START_COLUMNS, *DONE_COLUMNS)),
                "dones": _pick(columns, DONE_COLUMNS),
            }
            wanted = {
                "obs": OBS_COLUMNS,
                "actions": ACTION_COLUMNS,
                "rewards": REWARD_COLUMNS,
                "marker": (*INDEX_COLUMNS, *START_COLUMNS, *DONE_COLUMNS),
            }
            for key, accepted in wanted.items():
                if names[key] is None:
                    raise DatasetImportError(
                        f"{where}: no {key if key != 'marker' else 'episode marker'} column "
                        f"(accepted: {', '.join(accepted)}); its columns: {', '.join(columns)}"
                    )
        for key, column in names.items():
            if column is None:
                continue
            if column not in columns:
                raise DatasetImportError(
                    f"{where}: no column {column!r}, which {files[0].name} has (every file of "
                    "a dataset needs the same columns)"
                )
            raw = _as_array(columns[column], where, column)
            if key in ("obs", "next_obs"):
                arr = _check_obs(raw, spec, where, column)
            elif key == "actions":
                arr = _check_actions(raw, spec, where, column)
            elif key == "rewards":
                arr = _check_numbers(raw, where, f"column {column!r}")
                if arr.ndim == 2 and arr.shape[1] == 1:
                    arr = arr[:, 0]
                if arr.ndim != 1:
                    raise DatasetImportError(
                        f"{where}: column {column!r} must hold one reward per row, found "
                        f"shape {arr.shape}"
                    )
            elif column in INDEX_COLUMNS:
                arr = raw
            else:
                arr = _check_flags(raw, where, column)
            parts.setdefault(key, []).append(arr)
        sizes = {key: len(p[-1]) for key, p in parts.items()}
        if len(set(sizes.values())) != 1:
            raise DatasetImportError(f"{where}: columns of different lengths: {sizes}")
    data = {key: np.concatenate(p) for key, p in parts.items()}
    n_rows = len(data["actions"])
    marker = names["marker"]
    assert marker is not None
    where = str(path)
    bounds = _boundaries(n_rows, marker, data["marker"], where)
    if not bounds:
        raise DatasetImportError(f"{where}: the dataset has no rows")
    if max_episodes is not None:
        bounds = bounds[:max_episodes]
    episodes = []
    for i, (a, b) in enumerate(bounds):
        obs = data["obs"][a:b]
        last = obs[-1:]  # the sets store no final observation: the last one is repeated
        nxt = data["next_obs"][a:b] if "next_obs" in data else np.concatenate([obs[1:], last])
        if "dones" in data:
            dones = data["dones"][a:b]
        else:
            dones = np.zeros(b - a, dtype=bool)
            dones[-1] = True
        episodes.append(
            _make_episode(
                i, obs, data["actions"][a:b], data["rewards"][a:b], nxt, dones,
                seed=i, timestamp=_placeholder_time(i),
            )
        )  # fmt: skip
    source = {
        "format": "huggingface",
        "path": str(path.resolve()),
        "files": [str(f.relative_to(path)) if path.is_dir() else f.name for f in files],
        "columns": {k: v for k, v in names.items() if v is not None and k != "dones"},
        "rows": n_rows,
    }
    if split is not None:
        source["split"] = split
    if "next_obs" not in data:
        source["last_next_observation"] = "repeated"
    seed_known = np.zeros(len(episodes), dtype=bool)
    return ImportedEpisodes(episodes, spec, seed_known, False, source, {})


# ----------------------------------------------------------------------------- Minari datasets


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


# ----------------------------------------------------------------------------- writing a subject


def _target(
    spec: EnvSpec, subject: str, data_dir: Path | str | None, compress: bool, force: bool
) -> Path:
    directory = default_data_dir() if data_dir is None else Path(data_dir)
    path = directory / episode_file_name(spec.name, subject, compressed=compress)
    existing = find_episode_file(spec.name, subject, directory)
    if existing.exists() and not force:
        raise FileExistsError(
            f"{existing}: subject {subject!r} already has a {spec.name} file; choose another "
            "subject or overwrite it (force=True, --force)"
        )
    if existing.exists() and existing != path:
        raise FileExistsError(
            f"{existing}: remove it first (it would be read instead of the new {path.name})"
        )
    return path


def _write_subject(
    imported: ImportedEpisodes,
    subject: str,
    kind: str,
    *,
    data_dir: Path | str | None,
    compress: bool,
    force: bool,
    note: str,
) -> Path:
    """Validate the episodes as any file is validated, then write the sidecar and the file."""
    subject = subject_file_stem(check_subject(subject))
    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    spec, episodes = imported.spec, imported.episodes
    path = _target(spec, subject, data_dir, compress, force)
    _, problems = parse_episodes([e.to_record() for e in episodes], env=spec, source=str(path))
    if errors(problems):  # the checks above should have caught it: never write a bad file
        raise EpisodeFormatError(errors(problems))
    placeholders = np.flatnonzero(~imported.seed_known).tolist()
    sidecar: dict[str, Any] = {
        "subject": subject,
        "env_name": spec.name,
        "env_id": spec.env_id,
        "simulated": kind != "person",
        "source_kind": kind,
        "note": note,
        "generator": f"hbm_data {__version__}",
        "source": imported.source,
    }
    if placeholders:
        sidecar["placeholder_seeds"] = "all" if len(placeholders) == len(episodes) else placeholders
    if not imported.times_known:
        sidecar["placeholder_timestamps"] = True
    if imported.hbm.get("sidecar"):  # what hbm knew about the subject it exported
        sidecar["exported_sidecar"] = imported.hbm["sidecar"]
    _write_sidecar(path, sidecar)
    write_episodes(path, episodes)
    logger.info("%s: %d episodes of %s subject %s", path, len(episodes), kind, subject)
    return path


_NOTES = {
    "expert": "expert agent's demonstrations, not a person",
    "simulated": "simulated player, not a person",
    "person": "a person's recordings",
}


def import_hf_dataset(
    path: Path | str,
    env: str | EnvSpec,
    *,
    subject: str | None = None,
    data_dir: Path | str | None = None,
    split: str | None = None,
    max_episodes: int | None = None,
    compress: bool = False,
    force: bool = False,
) -> Path:
    """Import a local Hugging Face expert set (`read_hf_dataset`) as subject `subject`
    (default `expert-<env>`, loaded as `expert:<env>`); returns the episode file written.

    Refuses to replace an existing file unless `force`. `compress` writes `.json.gz` (the
    500,000-step CartPole set is about 200 MB as plain JSON, 25 MB gzipped).
    """
    imported = read_hf_dataset(path, env, split=split, max_episodes=max_episodes)
    name = subject or f"{EXPERT_FILE_PREFIX}{imported.spec.name}"
    return _write_subject(
        imported, name, "expert", data_dir=data_dir, compress=compress, force=force,
        note=f"{_NOTES['expert']}: imported by `hbm-data import-hf` from {Path(path).name}",
    )  # fmt: skip


def import_minari_dataset(
    path: Path | str,
    *,
    env: str | EnvSpec | None = None,
    subject: str | None = None,
    kind: str | None = None,
    data_dir: Path | str | None = None,
    max_episodes: int | None = None,
    compress: bool = False,
    force: bool = False,
) -> Path:
    """Import a local Minari dataset (`read_minari_dataset`) as an hbm subject; returns the
    episode file written.

    `kind` (person, simulated, expert) defaults to what hbm recorded when it exported the
    dataset, else "expert" (Minari's reference sets are agents'; say `kind="person"` for
    human demonstrations). `subject` defaults to the exported subject's name, else
    `expert-<env>`.
    """
    imported = read_minari_dataset(path, env=env, max_episodes=max_episodes)
    hbm = imported.hbm
    if kind is None:
        exported_kind = hbm.get("source_kind")
        kind = exported_kind if isinstance(exported_kind, str) else "expert"
    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    if subject is None:
        exported = hbm.get("subject")
        subject = exported if isinstance(exported, str) else None
    name = subject or f"{EXPERT_FILE_PREFIX}{imported.spec.name}"
    dataset = imported.source.get("dataset_id") or Path(path).name
    return _write_subject(
        imported, name, kind, data_dir=data_dir, compress=compress, force=force,
        note=f"{_NOTES[kind]}: imported by `hbm-data import-minari` from Minari dataset {dataset}",
    )  # fmt: skip


# ----------------------------------------------------------------------------- Minari export


def default_dataset_id(env_name: str, subject: str) -> str:
    """`hbm/<env>/<subject>-v0`, with characters Minari ids do not allow replaced by `_`."""
    name = re.sub(r"[^-\w]", "_", subject.replace(":", "-")) or "subject"
    return f"hbm/{env_name}/{name}-v0"


def _env_spec_json(spec: EnvSpec) -> str:
    g = _GYM[spec.name]
    return json.dumps(
        {
            "id": spec.env_id,
            "entry_point": g["entry_point"],
            "reward_threshold": g["reward_threshold"],
            "nondeterministic": False,
            "max_episode_steps": spec.max_episode_steps,
            "order_enforce": True,
            "disable_env_checker": False,
            "kwargs": {},
            "additional_wrappers": [],
            "vector_entry_point": g["vector_entry_point"],
        }
    )


def _spaces_json(spec: EnvSpec, dtype: str) -> tuple[str, str]:
    g = _GYM[spec.name]
    obs = {
        "type": "Box",
        "dtype": dtype,
        "shape": [spec.obs_size],
        "low": g["low"],
        "high": g["high"],
    }
    act = {"type": "Discrete", "dtype": "int64", "start": 0, "n": spec.num_actions}
    return json.dumps(obs), json.dumps(act)


def _exact_in_float32(arrays: Sequence[np.ndarray]) -> bool:
    return all(np.array_equal(a.astype(np.float32).astype(np.float64), a) for a in arrays)


def export_minari_dataset(
    env: str | EnvSpec,
    subject: str,
    out_dir: Path | str,
    *,
    data_dir: Path | str | None = None,
    dataset_id: str | None = None,
    force: bool = False,
) -> Path:
    """Write one subject's episodes as a Minari HDF5 dataset; returns its folder
    `<out_dir>/<dataset_id>` (with `data/metadata.json` and `data/main_data.hdf5`).

    With `MINARI_DATASETS_PATH=<out_dir>`, `minari.load_dataset(dataset_id)` opens it. Per
    episode: observations (T + 1 rows, the final one included), actions, rewards, terminations
    and truncations (the last step is a truncation when it reaches the game's step limit, else
    a termination), and the metadata `seed` (the Gymnasium reset seed; absent when hbm's is a
    placeholder) plus `hbm_episode_id`, `hbm_timestamp`, `hbm_score`, `hbm_seed_used`, so
    `import_minari_dataset` gives back the same episodes. The dataset metadata names the game
    (`env_spec`) and who played it (`algorithm_name`, and `hbm.source_kind`: person, simulated
    or expert). Observations are float32 (Gymnasium's) when that is exact, else float64.
    """
    spec = get_env_spec(env)
    subject = check_subject(subject, allow_path=True)
    path = find_episode_file(spec.name, subject, data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {spec.name} data for subject {subject!r}")
    episodes = load_episodes(path, env=spec)
    parsed = parse_episode_file_name(path)
    name = parsed[0] if parsed else path.name.split(".json")[0]
    kind = source_kind(path, subject)
    sidecar = read_sidecar(path) or {}
    replayable = seed_replayable(sidecar, len(episodes))
    dataset_id = dataset_id or default_dataset_id(spec.name, name)
    if not _DATASET_ID_RE.match(dataset_id):
        raise ValueError(
            f"dataset_id {dataset_id!r} is not a Minari id: (namespace/)name-v<version>, with "
            "letters, digits, '-' and '_'"
        )
    folder = Path(out_dir) / dataset_id
    data_path = folder / "data"
    if (data_path / "metadata.json").exists() and not force:
        raise FileExistsError(
            f"{data_path}: a Minari dataset {dataset_id} is already there; choose another "
            "dataset_id or overwrite it (force=True, --force)"
        )
    h5py = require("h5py", "minari", "writing Minari datasets")
    obs_arrays = [a for e in episodes for a in (e.observations, e.next_observations)]
    dtype = np.float32 if _exact_in_float32(obs_arrays) else np.float64
    buf = io.BytesIO()
    with h5py.File(buf, "w", track_order=True) as f:
        for i, e in enumerate(episodes):
            g = f.create_group(f"episode_{i}")
            g.attrs["id"] = i
            g.attrs["total_steps"] = e.length
            if replayable[i]:
                g.attrs["seed"] = np.int64(e.seed_used)
            g.attrs["hbm_seed_used"] = np.int64(e.seed_used)
            g.attrs["hbm_episode_id"] = np.int64(e.episode_id)
            g.attrs["hbm_timestamp"] = e.timestamp
            g.attrs["hbm_score"] = float(e.score)
            final = e.next_observations[-1:]
            g.create_dataset(
                "observations", data=np.concatenate([e.observations, final]).astype(dtype)
            )
            g.create_dataset("actions", data=e.actions.astype(np.int64))
            g.create_dataset("rewards", data=e.rewards.astype(np.float64))
            term = e.dones.copy()
            trunc = np.zeros(e.length, dtype=bool)
            if not e.dones[-1]:  # cut off before the game ended: Gymnasium's truncation
                trunc[-1] = True
                g.attrs["hbm_ended_without_done"] = True
            elif e.length >= spec.max_episode_steps:  # the game's time limit
                term[-1], trunc[-1] = False, True
            g.create_dataset("terminations", data=term)
            g.create_dataset("truncations", data=trunc)
            if not np.array_equal(e.next_observations[:-1], e.observations[1:]):
                # hbm's next observations are not the following observations: keep them (in
                # Minari's per-step infos, row t + 1 for step t; row 0 is the reset's)
                infos = g.create_group("infos")
                infos.create_dataset(
                    "hbm_next_observation",
                    data=np.concatenate([e.observations[:1], e.next_observations]).astype(dtype),
                )
    hdf5 = buf.getvalue()
    obs_space, act_space = _spaces_json(spec, np.dtype(dtype).name)
    who = {
        "person": f"a person ({name}) playing through hbm-data's recorder",
        "simulated": f"hbm-data's simulated player {name}, not a person",
        "expert": f"an expert agent ({name}), not a person",
    }[kind]
    metadata = {
        "dataset_id": dataset_id,
        "total_episodes": len(episodes),
        "total_steps": sum(e.length for e in episodes),
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": obs_space,
        "action_space": act_space,
        "env_spec": _env_spec_json(spec),
        "minari_version": MINARI_FORMAT_VERSION,
        "dataset_size": round(len(hdf5) / 1e6, 1),
        "algorithm_name": {"person": "human", "simulated": "hbm-data simulated player",
                           "expert": "expert policy"}[kind],
        "description": (
            f"{spec.env_id} episodes of {who}, exported by hbm-data from {path.name}. "
            "Episode metadata: seed (Gymnasium reset seed; absent when unknown), hbm_timestamp "
            "(start time), hbm_episode_id, hbm_score, hbm_seed_used."
        ),
        "requirements": ["gymnasium[box2d]>=1.0"] if spec.name == "lunarlander" else [],
        "hbm": {
            "subject": name,
            "env_name": spec.name,
            "env_id": spec.env_id,
            "source_kind": kind,
            "simulated": kind != "person",
            "content_hash": file_content_hash(path),
            "source_file": path.name,
            "generator": f"hbm_data {__version__}",
            "sidecar": {k: v for k, v in sidecar.items() if k != "exported_sidecar"},
        },
    }  # fmt: skip
    atomic_write_bytes(data_path / "main_data.hdf5", hdf5)
    atomic_write_bytes(data_path / "metadata.json", json.dumps(metadata, indent=2).encode() + b"\n")
    logger.info(
        "%s: %d episodes of %s as Minari dataset %s", folder, len(episodes), name, dataset_id
    )
    return folder
