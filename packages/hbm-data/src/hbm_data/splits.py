"""Train/test split by whole episodes, stratified by session."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holdout_count(n_episodes: int, holdout_pct: float) -> int:
    """Test episodes for a session of `n_episodes`: `max(1, int(n·pct))` (1 below 10 at 10%)."""
    return min(n_episodes, max(1, int(n_episodes * holdout_pct)))


def split_by_session(
    session_ids: Sequence[int] | np.ndarray,
    holdout_pct: float,
    generator: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Episode indices `(train, test)`, each sorted in file order.

    Every session gives `holdout_count` randomly chosen episodes to test (so a one-episode
    session lands entirely in test). The choice depends only on `generator`.
    """
    if not 0.0 <= holdout_pct < 1.0:
        raise ValueError(f"holdout_pct must be in [0, 1), got {holdout_pct}")
    sessions = np.asarray(session_ids, dtype=np.int64)
    test: list[np.ndarray] = []
    for s in np.unique(sessions):
        members = np.flatnonzero(sessions == s)
        k = holdout_count(len(members), holdout_pct)
        test.append(generator.choice(members, size=k, replace=False))
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    train_mask = np.ones(len(sessions), dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask), test_idx.astype(np.int64)


def validation_split(
    session_ids: Sequence[int] | np.ndarray,
    validation_pct: float,
    generator: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices `(train, validation)` into a set of *training* episodes, each sorted.

    The holdout's rule applied again: every session gives `holdout_count` of its training
    episodes to validation, so the episodes that choose a model (tuning, early stopping) cover
    every session as the test episodes do, and never include one of them (the caller passes
    the training episodes only). `validation_pct == 0` gives no validation episodes.
    """
    if validation_pct == 0:
        n = len(np.asarray(session_ids))
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not 0.0 < validation_pct < 1.0:
        raise ValueError(f"validation_pct must be in [0, 1), got {validation_pct}")
    return split_by_session(session_ids, validation_pct, generator)
