"""Any hbm subject as a Minari HDF5 dataset that `minari.load_dataset` opens:
`export_minari_dataset`, `default_dataset_id`."""

from __future__ import annotations

import io
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..envs import EnvSpec, get_env_spec
from ..episodes import load_episodes, read_sidecar
from ..extras import require
from ..files import atomic_write_bytes, file_content_hash
from ..loading import seed_replayable, source_kind
from ..paths import (
    check_subject,
    find_episode_file,
    parse_episode_file_name,
)
from ._common import (
    _DATASET_ID_RE,
    MINARI_FORMAT_VERSION,
)

logger = logging.getLogger(__name__)

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
