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


def crossfit_folds(
    session_ids: Sequence[int] | np.ndarray,
    folds: int,
    generator: np.random.Generator,
) -> np.ndarray:
    """`[E]` the fold (0..folds-1) of each episode, for cross-fitting: fold k is tested by the
    model trained on the other folds, so every episode is tested exactly once.

    The holdout's rule, per session: each session's episodes, in an order drawn from
    `generator`, are dealt to the folds in turn, so every fold holds about 1/folds of every
    session (⌊n/folds⌋ or ⌈n/folds⌉ of a session's n). The dealing goes on across sessions
    where the previous one stopped, so a session of fewer than `folds` episodes fills the
    folds the others left short, and fold sizes differ by at most one episode.
    """
    sessions = np.asarray(session_ids, dtype=np.int64)
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if folds > len(sessions):
        raise ValueError(
            f"{folds} folds of {len(sessions)} episodes: a fold would test nothing; "
            f"use at most {len(sessions)} folds"
        )
    fold_of = np.empty(len(sessions), dtype=np.int64)
    start = 0
    for s in np.unique(sessions):
        members = generator.permutation(np.flatnonzero(sessions == s))
        fold_of[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return fold_of


def crossfit_split(
    session_ids: Sequence[int] | np.ndarray,
    folds: int,
    fold: int,
    generator: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Episode indices `(train, test)` of fold `fold` of `crossfit_folds`, each sorted in file
    order: test is that fold, train every other one. The same `generator` state gives the
    same folds, so the K splits of one seed partition the episodes."""
    fold_of = crossfit_folds(session_ids, folds, generator)
    if isinstance(fold, bool) or not isinstance(fold, int | np.integer) or not 0 <= fold < folds:
        raise ValueError(f"fold must be an integer in [0, {folds}), got {fold!r}")
    return np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
