"""`crossfit_folds` / `crossfit_split`: K folds that partition a person's episodes, each
fold about 1/K of every session (the holdout's rule)."""

from __future__ import annotations

import numpy as np
import pytest
from hbm_data.splits import crossfit_folds, crossfit_split

SESSIONS = np.array([0] * 9 + [1] * 1 + [2] * 25 + [3] * 4 + [4] * 2)


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_folds_partition_the_episodes_and_spread_every_session(folds: int) -> None:
    splits = [crossfit_split(SESSIONS, folds, k, np.random.default_rng(3)) for k in range(folds)]
    tests = [test for _, test in splits]
    every = np.sort(np.concatenate(tests))
    assert np.array_equal(every, np.arange(len(SESSIONS)))  # each episode tested exactly once
    for train, test in splits:
        assert not set(train) & set(test)
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(SESSIONS)))
        assert list(train) == sorted(train) and list(test) == sorted(test)
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1
    ids = SESSIONS
    for s in np.unique(ids):
        n = int(np.count_nonzero(ids == s))
        per_fold = [int(np.count_nonzero(ids[t] == s)) for t in tests]
        assert sum(per_fold) == n
        assert set(per_fold) <= {n // folds, -(-n // folds)}  # floor or ceiling of n / K


def test_the_folds_depend_only_on_the_generator() -> None:
    a = crossfit_folds(SESSIONS, 4, np.random.default_rng(1))
    assert np.array_equal(a, crossfit_folds(SESSIONS, 4, np.random.default_rng(1)))
    others = [crossfit_folds(SESSIONS, 4, np.random.default_rng(s)) for s in range(2, 6)]
    assert any(not np.array_equal(a, b) for b in others)


def test_bad_fold_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        crossfit_folds(SESSIONS, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="a fold would test nothing"):
        crossfit_folds([0, 0, 1], 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"fold must be an integer in \[0, 3\)"):
        crossfit_split(SESSIONS, 3, 3, np.random.default_rng(0))
