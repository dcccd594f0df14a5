"""Sessions and runs: when a person sat down to play, and which episode of that sitting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from .splits import holdout_count

#: Defaults of `load_human_data` (and so of `hbm-data check`): a new session after a pause of
#: at least 30 minutes; 10 % of each session's episodes (at least one) held out for testing.
DEFAULT_GAP_MINUTES = 30.0
DEFAULT_HOLDOUT_PCT = 0.1


def comparable_times(timestamps: Sequence[str | datetime]) -> list[datetime]:
    """Start times that can be subtracted and compared, in the order given.

    A file whose times are all naive (the lab's old recorder: local time, no offset) or all
    time-zone-aware (this recorder: local time with its UTC offset) is taken as written; aware
    times compare as instants, so a DST change between sittings is no jump. A file that mixes
    both (old recordings, then new ones appended) has its naive times read in the UTC offset of
    its first aware time: the same lab machine, most likely. The rule never looks at the timezone
    of the machine reading the file, so sessions, and so splits, are the same everywhere.
    Raises ValueError for a string that is not ISO 8601.
    """
    times = [t if isinstance(t, datetime) else datetime.fromisoformat(t) for t in timestamps]
    zone = next((t.tzinfo for t in times if t.tzinfo is not None), None)
    if zone is None:
        return times
    return [t if t.tzinfo is not None else t.replace(tzinfo=zone) for t in times]


def compute_session_run_ids(
    timestamps: Sequence[str | datetime], gap_minutes: float = DEFAULT_GAP_MINUTES
) -> tuple[np.ndarray, np.ndarray]:
    """Session and run ids (both `[E]` int64) of episodes in file order.

    A new session starts when an episode begins at least `gap_minutes` after the previous one
    (the lab loader's rule: ≥, file order, no sorting); runs count 0, 1, ... within a session.
    A clock that went back (negative gap) stays in the session. Naive and aware times mix as
    `comparable_times` says.
    """
    times = comparable_times(timestamps)
    sessions = np.zeros(len(times), dtype=np.int64)
    runs = np.zeros(len(times), dtype=np.int64)
    gap = gap_minutes * 60.0
    for i in range(1, len(times)):
        if (times[i] - times[i - 1]).total_seconds() >= gap:
            sessions[i], runs[i] = sessions[i - 1] + 1, 0
        else:
            sessions[i], runs[i] = sessions[i - 1], runs[i - 1] + 1
    return sessions, runs


def _spread(values: np.ndarray) -> np.ndarray:
    """Each unique value's rank mapped evenly onto [-1, 1] (a single value → 0)."""
    uniq, inverse = np.unique(values, return_inverse=True)
    if len(uniq) == 1:
        return np.zeros(len(values), dtype=np.float32)
    grid = np.linspace(-1.0, 1.0, len(uniq))
    return grid[inverse].astype(np.float32)


def normalize_session_run_features(
    session_ids: Sequence[int] | np.ndarray, run_ids: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Continual-learning features (`[E]` float32 each) in [-1, 1].

    Sessions are spread evenly over all sessions (5 sessions → -1, -0.5, 0, 0.5, 1); runs are
    spread evenly within their own session. A lone session or run maps to 0.
    """
    sessions = np.asarray(session_ids, dtype=np.int64)
    runs = np.asarray(run_ids, dtype=np.int64)
    if sessions.shape != runs.shape or sessions.ndim != 1:
        raise ValueError(
            f"session_ids and run_ids must be 1-D and equally long, got {sessions.shape} "
            f"and {runs.shape}"
        )
    session_cl = _spread(sessions) if len(sessions) else np.zeros(0, np.float32)
    run_cl = np.zeros(len(runs), dtype=np.float32)
    for s in np.unique(sessions):
        mask = sessions == s
        run_cl[mask] = _spread(runs[mask])
    return session_cl, run_cl


def no_training_reason(
    timestamps: Sequence[str | datetime],
    holdout_pct: float = DEFAULT_HOLDOUT_PCT,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
) -> str | None:
    """Why a split of these episodes would leave nothing to train on, or None if it would not.

    The split's own rule (`holdout_count` per session, which holds out at least one episode of
    every session) decides, so this refuses exactly the files training would fail on: below
    100 % holdout that is a file whose every session has a single episode.
    """
    if not timestamps:
        return "the file holds no episodes"
    sessions, _ = compute_session_run_ids(timestamps, gap_minutes)
    sizes = np.bincount(sessions).tolist()
    if sum(n - holdout_count(n, holdout_pct) for n in sizes) > 0:
        return None
    what = "one session" if len(sizes) == 1 else f"{len(sizes)} sessions"
    return (
        f"nothing left to train on: the file's {len(timestamps)} episode"
        f"{'s' * (len(timestamps) != 1)} form {what} (a new one after a pause of "
        f"{gap_minutes:g} min or more) and each session gives at least one episode, here all of "
        f"them, to the test split ({holdout_pct:.0%} per session, at least one); record two or "
        "more episodes per sitting"
    )
