"""Episode files in the lab recorder's format: read (`.json`/`.json.gz`), validate, write.

The format, exactly as `collect.py` wrote it (`json.dump(episodes, f, indent=2)`)::

    [{"episode_id": 0, "timestamp": "2025-01-06T10:00:00.123456", "seed_used": 0,
      "length": 2, "score": 2.0,
      "steps": [{"observation": [...], "action": 1, "reward": 1.0,
                 "next_observation": [...], "done": false}, ...]}, ...]
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .envs import EnvSpec, get_env_spec
from .paths import parse_episode_file_name, sidecar_path
from .validation import EpisodeFormatError, Problem, ProblemLog

logger = logging.getLogger(__name__)

EPISODE_FIELDS = ("episode_id", "timestamp", "seed_used", "length", "score", "steps")
STEP_FIELDS = ("observation", "action", "reward", "next_observation", "done")


@dataclass(frozen=True, eq=False)
class Episode:
    """One recorded episode as arrays (T = number of steps, D = observation size)."""

    episode_id: int
    timestamp: str  # ISO 8601, when the episode started
    seed_used: int
    score: float
    observations: np.ndarray  # [T, D] float64, observation before each action
    actions: np.ndarray  # [T] int64
    rewards: np.ndarray  # [T] float64
    next_observations: np.ndarray  # [T, D] float64
    dones: np.ndarray  # [T] bool

    @property
    def length(self) -> int:
        return len(self.actions)

    @property
    def start_time(self) -> datetime:
        return datetime.fromisoformat(self.timestamp)

    def to_record(self) -> dict[str, Any]:
        """The recorder's JSON object for this episode (same field order, plain Python types)."""
        steps = [
            {"observation": o, "action": a, "reward": r, "next_observation": n, "done": d}
            for o, a, r, n, d in zip(
                self.observations.tolist(),
                self.actions.tolist(),
                self.rewards.tolist(),
                self.next_observations.tolist(),
                self.dones.tolist(),
                strict=True,
            )
        ]
        return {
            "episode_id": int(self.episode_id),
            "timestamp": self.timestamp,
            "seed_used": int(self.seed_used),
            "length": self.length,
            "score": float(self.score),
            "steps": steps,
        }


# ----------------------------------------------------------------------------- reading


def infer_env(path: Path | str) -> EnvSpec | None:
    """The game of a file, from its sidecar's `env_id` or its `<subject>_data_<env>` name."""
    meta = read_sidecar(path)
    if meta is not None and isinstance(meta.get("env_id"), str):
        try:
            return get_env_spec(meta["env_id"])
        except ValueError:
            pass
    parsed = parse_episode_file_name(path)
    return None if parsed is None else get_env_spec(parsed[1])


def read_sidecar(path: Path | str) -> dict[str, Any] | None:
    """The `<name>.meta.json` next to an episode file, or None if absent or unreadable."""
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable sidecar %s: %s", side, exc)
        return None
    return meta if isinstance(meta, dict) else None


def _read_json(path: Path, log: ProblemLog) -> Any:
    """Parsed JSON, or None with the reason logged. orjson first (fast); the standard library
    second, for what orjson rejects (NaN/Infinity, which validation then reports by place) and
    for its error messages."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except FileNotFoundError:
        raise
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        log.add(f"cannot be read as {'gzip-compressed ' * (path.suffix == '.gz')}JSON: {exc}")
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated")
        hint = " (the file looks truncated)" * (ends_early and bool(exc.doc.strip()))
        log.add(f"not valid JSON{hint}: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except UnicodeDecodeError as exc:
        log.add(f"not valid JSON: not UTF-8 text ({exc})")
    return None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class _Parser:
    """Single pass over the raw JSON: builds episodes and logs every problem it sees."""

    def __init__(self, log: ProblemLog, spec: EnvSpec | None) -> None:
        self.log = log
        self.spec = spec
        self.obs_size = None if spec is None else spec.obs_size
        self.prev_time: datetime | None = None
        self.prev_episode: int | None = None

    def _expect(self) -> str:
        if self.spec is not None:
            return f"{self.obs_size} values for {self.spec.env_id}"
        return f"{self.obs_size} values like the first observation of the file"

    def episodes(self, raw: Any) -> list[Episode]:
        if not isinstance(raw, list):
            self.log.add(f"expected a JSON list of episodes, found {type(raw).__name__}")
            return []
        out = []
        for i, rec in enumerate(raw):
            ep = self.episode(i, rec)
            if ep is not None:
                out.append(ep)
        return out

    def episode(self, i: int, rec: Any) -> Episode | None:
        log = self.log
        if not isinstance(rec, dict):
            log.add(f"expected an object, found {type(rec).__name__}", episode=i)
            return None
        ok = True
        for name in EPISODE_FIELDS:
            if name not in rec:
                log.add("missing field", episode=i, field=name)
                ok = False
        for name in ("episode_id", "seed_used", "length"):
            if name in rec and not _is_int(rec[name]):
                log.add(f"expected an integer, found {rec[name]!r}", episode=i, field=name)
                ok = False
        if "score" in rec and not (_is_number(rec["score"]) and math.isfinite(rec["score"])):
            log.add(f"expected a finite number, found {rec['score']!r}", episode=i, field="score")
            ok = False
        if "timestamp" in rec:
            ok &= self.timestamp(i, rec["timestamp"])
        steps = rec.get("steps")
        if "steps" in rec and not isinstance(steps, list):
            log.add(
                f"expected a list of steps, found {type(steps).__name__}", episode=i, field="steps"
            )
            return None
        if steps is None:
            return None
        if not steps:
            log.add("episode has no steps", episode=i, field="steps")
            ok = False
        elif _is_int(rec.get("length")) and rec["length"] != len(steps):
            log.add(
                f"length is {rec['length']} but the episode has {len(steps)} steps",
                episode=i,
                field="length",
            )
            ok = False
        arrays = self.steps(i, steps) if steps else None
        if not ok or arrays is None:
            return None
        return Episode(
            rec["episode_id"], rec["timestamp"], rec["seed_used"], float(rec["score"]), *arrays
        )

    def timestamp(self, i: int, value: Any) -> bool:
        t = _parse_timestamp(value)
        if t is None:
            self.log.add(
                f"expected an ISO 8601 time string, found {value!r}", episode=i, field="timestamp"
            )
            return False
        if self.prev_time is not None:
            try:
                backwards = t < self.prev_time
            except TypeError:
                self.log.add(
                    f"{value!r} mixes time-zone-aware and naive timestamps with episode "
                    f"{self.prev_episode}",
                    episode=i,
                    field="timestamp",
                )
                return False
            if backwards:
                self.log.add(
                    f"{value!r} is earlier than episode {self.prev_episode} "
                    f"({self.prev_time.isoformat()}); timestamps must not go backwards",
                    episode=i,
                    field="timestamp",
                )
                self.prev_time, self.prev_episode = t, i
                return False
        self.prev_time, self.prev_episode = t, i
        return True

    def steps(self, i: int, steps: list[Any]) -> tuple[np.ndarray, ...] | None:
        """Arrays of the steps: a vectorised fast path, and a per-step diagnosis if it fails."""
        if self.obs_size is None:
            first = steps[0].get("observation") if isinstance(steps[0], dict) else None
            if isinstance(first, list) and first:
                self.obs_size = len(first)
        try:
            obs = np.array([s["observation"] for s in steps])
            nxt = np.array([s["next_observation"] for s in steps])
            act = np.array([s["action"] for s in steps])
            rew = np.array([s["reward"] for s in steps])
            done = np.array([s["done"] for s in steps])
        except (KeyError, TypeError, ValueError, IndexError):
            self._diagnose(i, steps)
            return None
        good = (
            obs.dtype.kind in "iuf"
            and nxt.dtype.kind in "iuf"
            and obs.ndim == 2
            and obs.shape == nxt.shape
            and obs.shape[1] == self.obs_size
            and act.dtype.kind in "iu"
            and act.ndim == 1
            and rew.dtype.kind in "iuf"
            and rew.ndim == 1
            and done.dtype.kind == "b"
            and done.ndim == 1
            and np.isfinite(obs).all()
            and np.isfinite(nxt).all()
            and np.isfinite(rew).all()
            and act.min() >= 0
            and (self.spec is None or act.max() < self.spec.num_actions)
        )
        if not good:
            self._diagnose(i, steps)
            return None
        return (
            obs.astype(np.float64, copy=False),
            act.astype(np.int64, copy=False),
            rew.astype(np.float64, copy=False),
            nxt.astype(np.float64, copy=False),
            done,
        )

    def _diagnose(self, i: int, steps: list[Any]) -> None:
        log = self.log
        n_before = len(log.problems)
        for j, s in enumerate(steps):
            if not isinstance(s, dict):
                log.add(
                    f"expected an object, found {type(s).__name__}",
                    episode=i,
                    step=j,
                    kind="step type",
                )
                continue
            for name in STEP_FIELDS:
                if name not in s:
                    log.add("missing field", episode=i, step=j, field=name)
            for name in ("observation", "next_observation"):
                if name in s:
                    self._check_vector(i, j, name, s[name])
            if "action" in s:
                a = s["action"]
                if not _is_int(a):
                    log.add(
                        f"expected an integer action, found {a!r}",
                        episode=i,
                        step=j,
                        field="action",
                        kind="type",
                    )
                elif a < 0 or (self.spec is not None and a >= self.spec.num_actions):
                    hi = "" if self.spec is None else f", {self.spec.num_actions})"
                    log.add(
                        f"action {a} out of range [0{hi or ', ∞)'} for "
                        f"{self.spec.env_id if self.spec else 'any game'}",
                        episode=i, step=j, field="action", kind="range",
                    )  # fmt: skip
            if "reward" in s and not (_is_number(s["reward"]) and math.isfinite(s["reward"])):
                log.add(
                    f"expected a finite number, found {s['reward']!r}",
                    episode=i,
                    step=j,
                    field="reward",
                )
            if "done" in s and not isinstance(s["done"], bool):
                log.add(
                    f"expected true or false, found {s['done']!r}", episode=i, step=j, field="done"
                )
        if len(log.problems) == n_before:  # the fast path failed for a reason not diagnosed
            log.add("steps could not be read as arrays", episode=i, field="steps")

    def _check_vector(self, i: int, j: int, name: str, v: Any) -> None:
        log = self.log
        if not isinstance(v, list):
            log.add(
                f"expected a list of numbers, found {type(v).__name__}",
                episode=i,
                step=j,
                field=name,
                kind="type",
            )
            return
        if self.obs_size is not None and len(v) != self.obs_size:
            log.add(
                f"has {len(v)} values, expected {self._expect()}",
                episode=i,
                step=j,
                field=name,
                kind="size",
            )
        bad = [x for x in v if not (_is_number(x) and math.isfinite(x))]
        if bad:
            log.add(
                f"expected finite numbers, found {bad[0]!r}",
                episode=i,
                step=j,
                field=name,
                kind="finite",
            )


def parse_episodes(
    raw: Any, *, env: str | EnvSpec | None = None, source: str = "<memory>"
) -> tuple[list[Episode], list[Problem]]:
    """Episodes from already-parsed recorder JSON, and every problem found (empty if valid)."""
    log = ProblemLog(source)
    spec = None if env is None else get_env_spec(env)
    episodes = _Parser(log, spec).episodes(raw)
    return episodes, log.finish()


def _read(path: Path | str, env: str | EnvSpec | None) -> tuple[list[Episode], list[Problem]]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such episode file")
    spec = get_env_spec(env) if env is not None else infer_env(path)
    log = ProblemLog(str(path))
    raw = _read_json(path, log)
    if log:
        return [], log.finish()
    episodes = _Parser(log, spec).episodes(raw)
    return episodes, log.finish()


def load_episodes(path: Path | str, *, env: str | EnvSpec | None = None) -> list[Episode]:
    """All episodes of a recorder file, validated.

    The game (for observation size and action range) is `env`, else the sidecar's or the file
    name's (`<subject>_data_<env>.json`); for other names only internal consistency is checked.
    Raises `EpisodeFormatError` naming the first problem (all of them in `.problems`).
    """
    episodes, problems = _read(path, env)
    if problems:
        raise EpisodeFormatError(problems)
    logger.debug("loaded %d episodes from %s", len(episodes), path)
    return episodes


def check_file(path: Path | str, *, env: str | EnvSpec | None = None) -> list[Problem]:
    """Every problem in an episode file (empty when it is valid); a missing file is one problem."""
    try:
        return _read(path, env)[1]
    except FileNotFoundError:
        return [Problem(str(path), "no such file")]


# ----------------------------------------------------------------------------- writing


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Temp file in the same directory, then `os.replace`: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp's 0600 is too strict
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_episodes(
    episodes: Sequence[Episode | Mapping[str, Any]], *, compressed: bool = False
) -> bytes:
    """The file bytes the recorder writes (`indent=2`); gzip with a zero mtime, so reproducible."""
    records = [e.to_record() if isinstance(e, Episode) else e for e in episodes]
    data = json.dumps(records, indent=2).encode("utf-8")
    return gzip.compress(data, mtime=0) if compressed else data


def write_episodes(path: Path | str, episodes: Sequence[Episode | Mapping[str, Any]]) -> None:
    """Atomically (re)write a whole episode file; `.gz` names are gzip-compressed."""
    path = Path(path)
    atomic_write_bytes(path, encode_episodes(episodes, compressed=path.suffix == ".gz"))


def write_sidecar(path: Path | str, meta: Mapping[str, Any]) -> None:
    """Atomically write the `<name>.meta.json` describing an episode file."""
    atomic_write_bytes(sidecar_path(path), (json.dumps(dict(meta), indent=2) + "\n").encode())
