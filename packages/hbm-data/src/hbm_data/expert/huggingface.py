"""Reading a local Hugging Face expert set (JSON lines or Parquet; one row per step) into
episodes: `read_hf_dataset`."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..envs import EnvSpec, get_env_spec
from ..extras import require
from ._common import (
    ACTION_COLUMNS,
    DONE_COLUMNS,
    INDEX_COLUMNS,
    NEXT_OBS_COLUMNS,
    OBS_COLUMNS,
    REWARD_COLUMNS,
    START_COLUMNS,
    DatasetImportError,
    ImportedEpisodes,
    _ArrowColumn,
    _check_actions,
    _check_flags,
    _check_numbers,
    _check_obs,
    _make_episode,
    _placeholder_time,
)

logger = logging.getLogger(__name__)


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
