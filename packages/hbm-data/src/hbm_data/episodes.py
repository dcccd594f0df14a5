"""Episode files in the lab recorder's format: read (`.json`/`.json.gz`), validate, write.

The format, exactly as `collect.py` wrote it (`json.dump(episodes, f, indent=2)`)::

    [{"episode_id": 0, "timestamp": "2025-01-06T10:00:00.123456", "seed_used": 0,
      "length": 2, "score": 2.0,
      "steps": [{"observation": [...], "action": 1, "reward": 1.0,
                 "next_observation": [...], "done": false}, ...]}, ...]
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .envs import EnvSpec, get_env_spec
from .files import atomic_write_bytes, read_bytes_hashed
from .jsontext import (
    DEFAULT_MAX_JSON_BYTES,
    MAX_INT_DIGITS,
    MAX_JSON_BYTES_ENV,
    decode_json,
    limit_hint,
    max_json_bytes,
)
from .paths import parse_episode_file_name, sidecar_path
from .sessions import comparable_times, no_training_reason
from .sidecar import (
    data_content_hash,
    parse_sidecar,
    read_sidecar,
    sidecar_bytes,
    with_sidecar,
    write_sidecar,
)
from .validation import EpisodeFormatError, Problem, ProblemLog, errors, warnings_of

__all__ = [
    "DEFAULT_MAX_JSON_BYTES",
    "MAX_JSON_BYTES_ENV",
    "Episode",
    "atomic_write_bytes",
    "check_file",
    "data_content_hash",
    "encode_episodes",
    "infer_env",
    "load_episodes",
    "load_records",
    "max_json_bytes",
    "parse_episodes",
    "read_sidecar",
    "write_episodes",
    "write_sidecar",
]

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


#: The largest magnitude float32 holds: hbm trains on float32 arrays, so anything larger would
#: silently become inf there (and fail much later, far from the file).
F32_MAX = float(np.finfo(np.float32).max)

#: `score` may differ from the sum of the step rewards by this much (relative and absolute)
#: without a warning: a recorder summing float32 rewards drifts by about 1e-7 per step.
SCORE_TOLERANCE = 1e-4


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _and_more(more: Sequence[tuple[int, int]], what: str) -> str:
    """`, and N more episodes repeat an earlier episode's <what> (episodes a, b, c, …)`."""
    if not more:
        return ""
    shown = ", ".join(str(i) for i, _ in more[:5]) + ", …" * (len(more) > 5)
    return (
        f", and {_count(len(more), 'more episode')} repeat an earlier episode's {what} "
        f"(episode{'s' * (len(more) > 1)} {shown})"
    )


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _fits_float32(x: Any) -> bool:
    """A number (not a bool) that float32 holds: finite and |x| ≤ F32_MAX."""
    if not _is_number(x):
        return False
    try:
        return math.isfinite(x) and abs(x) <= F32_MAX
    except OverflowError:  # an int beyond any float
        return False


def _number_problem(x: Any, *, plural: bool) -> tuple[str, str]:
    """(message, kind) for a value `_fits_float32` rejects."""
    want = "finite numbers" if plural else "a finite number"
    if isinstance(x, bool):
        return f"expected {want}, found {json.dumps(x)} (a JSON boolean)", "boolean"
    if _is_number(x) and not (isinstance(x, float) and not math.isfinite(x)):
        return (
            f"expected {want} within float32 range (|x| ≤ {F32_MAX:.7g}), found {x!r}, "
            "which would become inf in training",
            "float32",
        )
    return f"expected {want}, found {x!r}", "finite"


def _has_bool(values: Iterable[Any]) -> bool:
    """True if any value is a bool (numpy turns `[1, true]` into `[1, 1]` without a word)."""
    return bool in set(map(type, values))


def _rows_have_bool(rows: list[Any], arr: np.ndarray) -> bool:
    """`_has_bool` over the rows of a 2-D array, scanning only rows holding a 0 or a 1 (what a
    boolean became in `arr`), so observations that are never exactly 0 or 1 cost nothing."""
    suspects = np.flatnonzero(((arr == 0) | (arr == 1)).any(axis=1))
    return _has_bool(chain.from_iterable(rows[k] for k in suspects.tolist()))


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
        self.times: list[tuple[int, str, datetime]] = []  # (episode, as written, parsed)
        self.ids: dict[int, int] = {}  # episode_id -> first episode with it
        self.contents: dict[bytes, int] = {}  # digest of the steps -> first episode with them
        self.ids_of: dict[int, int] = {}  # episode -> its episode_id
        self.repeated_ids: list[tuple[int, int]] = []  # (episode, first episode with its id)
        self.repeated_steps: list[tuple[int, int]] = []  # (episode, first with its steps)

    def _expect(self) -> str:
        if self.spec is not None:
            return f"{self.obs_size} values for {self.spec.env_id}"
        return f"{self.obs_size} values like the first observation of the file"

    def episodes(self, raw: Any) -> list[Episode]:
        if not isinstance(raw, list):
            self.log.add(f"expected a JSON list of episodes, found {type(raw).__name__}")
            return []
        if not raw:
            self.log.add("the file holds no episodes (an empty list)")
            return []
        out = []
        for i, rec in enumerate(raw):
            ep = self.episode(i, rec)
            if ep is not None:
                out.append(ep)
        self._check_times()
        self._report_repeats()
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
        if _is_int(rec.get("seed_used")) and rec["seed_used"] < 0:
            log.add(
                f"expected a seed ≥ 0 (Gymnasium's reset(seed=…) rejects negative seeds, so "
                f"the episode cannot be replayed), found {rec['seed_used']}",
                episode=i,
                field="seed_used",
            )
            ok = False
        if _is_int(rec.get("episode_id")):
            first = self.ids.setdefault(rec["episode_id"], i)
            if first != i:
                self.ids_of[i] = rec["episode_id"]
                self.repeated_ids.append((i, first))
        if "score" in rec and not _fits_float32(rec["score"]):
            log.add(_number_problem(rec["score"], plural=False)[0], episode=i, field="score")
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
        elif self.spec is not None and len(steps) > self.spec.max_episode_steps:
            log.add(
                f"episode has {len(steps)} steps, more than {self.spec.env_id} allows "
                f"({self.spec.max_episode_steps}, its time limit in Gymnasium's registration): "
                "recorded for another game, or episodes run together",
                episode=i,
                field="steps",
            )
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
        episode = Episode(
            rec["episode_id"], rec["timestamp"], rec["seed_used"], float(rec["score"]), *arrays
        )
        self._check_content(i, episode)
        return episode

    def _check_content(self, i: int, ep: Episode) -> None:
        """Warnings about a valid episode: score vs rewards, a second copy of an episode."""
        total = math.fsum(ep.rewards.tolist())
        if not math.isclose(ep.score, total, rel_tol=SCORE_TOLERANCE, abs_tol=SCORE_TOLERANCE):
            self.log.warn(
                f"score {ep.score!r} is not the sum of the step rewards ({total!r}, tolerance "
                f"{SCORE_TOLERANCE:g}); hbm reports the score as the person's return",
                episode=i,
                field="score",
                kind="score is not the sum of the rewards",
            )
        h = hashlib.blake2b(digest_size=16)
        for a in (ep.observations, ep.actions, ep.rewards, ep.next_observations, ep.dones):
            h.update(np.ascontiguousarray(a).tobytes())
        first = self.contents.setdefault(h.digest(), i)
        if first != i:
            self.repeated_steps.append((i, first))

    def _report_repeats(self) -> None:
        """One warning per kind of repeat, with a count: a file that holds one episode 50 000
        times gets two lines, not 100 000."""
        if self.repeated_ids:
            (i, first), more = self.repeated_ids[0], self.repeated_ids[1:]
            self.log.warn(
                f"episode_id {self.ids_of[i]!r} is also episode {first}'s{_and_more(more, 'id')}; "
                "ids should be unique (episodes are identified by their position in the file)",
                episode=i,
                field="episode_id",
            )
        if self.repeated_steps:
            (i, first), more = self.repeated_steps[0], self.repeated_steps[1:]
            self.log.warn(
                f"same steps as episode {first}{_and_more(more, 'steps')} (saved twice?); a "
                "duplicate counts twice in training and can land in both train and test",
                episode=i,
                field="steps",
            )

    def timestamp(self, i: int, value: Any) -> bool:
        t = _parse_timestamp(value)
        if t is None:
            self.log.add(
                f"expected an ISO 8601 time string, found {value!r}", episode=i, field="timestamp"
            )
            return False
        self.times.append((i, value, t))
        return True

    def _check_times(self) -> None:
        """Warn where the clock went back; naive and aware times compare as `comparable_times`
        says. Not an error: a DST change or an NTP correction between episodes does it, and
        sessions are counted in file order anyway."""
        times = comparable_times([t for _, _, t in self.times])
        for (j, _, _), (i, value, _), prev, t in zip(
            self.times, self.times[1:], times, times[1:], strict=False
        ):
            if t < prev:
                self.log.warn(
                    f"{value!r} is earlier than episode {j}'s start ({prev.isoformat()}): the "
                    "clock went back (DST, NTP?) or episodes are out of order; sessions are "
                    "counted in file order",
                    episode=i,
                    field="timestamp",
                    kind="the clock went back",
                )

    def steps(self, i: int, steps: list[Any]) -> tuple[np.ndarray, ...] | None:
        """Arrays of the steps: a vectorised fast path, and a per-step diagnosis if it fails."""
        if self.obs_size is None:
            first = steps[0].get("observation") if isinstance(steps[0], dict) else None
            if isinstance(first, list) and first:
                self.obs_size = len(first)
        try:
            obs_rows = [s["observation"] for s in steps]
            nxt_rows = [s["next_observation"] for s in steps]
            act_list = [s["action"] for s in steps]
            rew_list = [s["reward"] for s in steps]
            obs = np.array(obs_rows)
            nxt = np.array(nxt_rows)
            act = np.array(act_list)
            rew = np.array(rew_list)
            done = np.array([s["done"] for s in steps])
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):
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
            and bool((np.abs(obs) <= F32_MAX).all())  # also False for NaN and inf
            and bool((np.abs(nxt) <= F32_MAX).all())
            and bool((np.abs(rew) <= F32_MAX).all())
            and act.min() >= 0
            and (self.spec is None or act.max() < self.spec.num_actions)
            and not _has_bool(act_list)
            and not _has_bool(rew_list)
            and not _rows_have_bool(obs_rows, obs)
            and not _rows_have_bool(nxt_rows, nxt)
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
                if isinstance(a, bool):
                    log.add(
                        f"expected an integer action, found {json.dumps(a)} (a JSON boolean)",
                        episode=i,
                        step=j,
                        field="action",
                        kind="boolean",
                    )
                elif not _is_int(a):
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
            if "reward" in s and not _fits_float32(s["reward"]):
                message, kind = _number_problem(s["reward"], plural=False)
                log.add(message, episode=i, step=j, field="reward", kind=kind)
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
        bad = [x for x in v if not _fits_float32(x)]
        if bad:
            message, kind = _number_problem(bad[0], plural=True)
            log.add(message, episode=i, step=j, field=name, kind=kind)


def parse_episodes(
    raw: Any, *, env: str | EnvSpec | None = None, source: str = "<memory>"
) -> tuple[list[Episode], list[Problem]]:
    """Episodes from already-parsed recorder JSON, and every problem found (errors and warnings;
    empty if the data is clean). Only episodes without errors are returned."""
    log = ProblemLog(source)
    spec = None if env is None else get_env_spec(env)
    episodes = _Parser(log, spec).episodes(raw)
    return episodes, log.finish()


class _Loaded(NamedTuple):
    raw: Any  # the parsed JSON, unknown fields included
    episodes: list[Episode]
    problems: list[Problem]  # errors and warnings
    content_hash: str  # of exactly the bytes parsed, the sidecar's included (data_content_hash)
    sidecar: dict[str, Any] | None = None  # parsed from the bytes hashed


def _load(path: Path | str, env: str | EnvSpec | None, max_bytes: int | None = None) -> _Loaded:
    path = Path(path)
    limit = max_json_bytes(max_bytes)
    log = ProblemLog(str(path))
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such episode file") from None
    except OSError as exc:
        log.add(f"cannot be read: {exc.strerror or exc}")
        return _Loaded(None, [], log.finish(), "")
    if size > limit:  # not read at all: a compressed file is never larger than its JSON
        log.add(
            f"is {size} bytes, more than the JSON an episode file may hold ({limit_hint(limit)})"
        )
        return _Loaded(None, [], log.finish(), "")
    try:
        data, digest = read_bytes_hashed(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such episode file") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        log.add(f"cannot be read: {exc.strerror or exc}")
        return _Loaded(None, [], log.finish(), "")
    side_bytes = sidecar_bytes(path)
    sidecar = parse_sidecar(sidecar_path(path), side_bytes)
    digest = with_sidecar(digest, side_bytes)
    spec = get_env_spec(env) if env is not None else infer_env(path)
    raw, huge = decode_json(path, data, log, limit)
    if log:
        return _Loaded(None, [], log.finish(), digest, sidecar)
    episodes = _Parser(log, spec).episodes(raw)
    if huge and not log.has_errors():  # only in fields hbm does not read; still unusable
        log.add(
            f"holds {_count(len(huge), 'integer')} of more than {MAX_INT_DIGITS} digits "
            f"(the longest has {max(h.digits for h in huge)}) outside the fields hbm reads"
        )
    return _Loaded(raw, episodes, log.finish(), digest, sidecar)


def _raise_or_warn(loaded: _Loaded, path: Path | str) -> None:
    """Raise `EpisodeFormatError` for errors; log warnings (they never stop a load)."""
    bad = errors(loaded.problems)
    if bad:
        raise EpisodeFormatError(bad)
    warned = warnings_of(loaded.problems)
    if warned:
        logger.warning(
            "%s: %d warning%s, first: %s (run `hbm-data check` for all)",
            path, len(warned), "s" * (len(warned) > 1), warned[0],
        )  # fmt: skip


def load_episodes(
    path: Path | str, *, env: str | EnvSpec | None = None, max_bytes: int | None = None
) -> list[Episode]:
    """All episodes of a recorder file, validated.

    The game (for observation size and action range) is `env`, else the sidecar's or the file
    name's (`<subject>_data_<env>.json`); for other names only internal consistency is checked.
    Raises `EpisodeFormatError` naming the first error (all of them in `.problems`); warnings
    are logged, not raised. A file of more than `max_bytes` of JSON (`max_json_bytes`) is an
    error, found before it is read whole.
    """
    loaded = _load(path, env, max_bytes)
    _raise_or_warn(loaded, path)
    logger.debug("loaded %d episodes from %s", len(loaded.episodes), path)
    return loaded.episodes


def load_records(
    path: Path | str, *, env: str | EnvSpec | None = None, max_bytes: int | None = None
) -> list[dict[str, Any]]:
    """The episode records of a valid file as raw JSON objects, fields hbm does not know kept.

    What a program that rewrites a file (the recorder) must start from, so it loses nothing;
    raises `EpisodeFormatError` like `load_episodes` when the file does not validate.
    """
    loaded = _load(path, env, max_bytes)
    _raise_or_warn(loaded, path)
    return list(loaded.raw)


def check_file(
    path: Path | str, *, env: str | EnvSpec | None = None, max_bytes: int | None = None
) -> list[Problem]:
    """Every problem in an episode file, errors and warnings (`Problem.severity`); empty when
    it is clean. A missing file is one error, and so is a file that `load_human_data` (with its
    default holdout and session gap) could not train on: every episode held out for testing."""
    try:
        loaded = _load(path, env, max_bytes)
    except FileNotFoundError:
        return [Problem(str(path), "no such file")]
    if errors(loaded.problems) or not loaded.episodes:
        return loaded.problems
    reason = no_training_reason([e.timestamp for e in loaded.episodes])
    extra = [] if reason is None else [Problem(str(path), reason)]
    return [*extra, *loaded.problems]


# ----------------------------------------------------------------------------- writing


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
