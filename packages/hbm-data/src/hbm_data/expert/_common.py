"""What every expert-set reader shares: the column names it accepts, the checks of observations,
actions and flags (errors name the file, the column and what was expected), and the making of
an hbm `Episode` with placeholder seeds and times."""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..envs import ENVIRONMENTS, EnvSpec, get_env_spec
from ..episodes import F32_MAX, Episode
from ..extras import require

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
