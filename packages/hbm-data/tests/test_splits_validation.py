"""`validation_split`: the holdout's rule applied to a set of training episodes."""

from __future__ import annotations

import numpy as np
import pytest
from hbm_data.splits import holdout_count, validation_split


def test_every_session_gives_the_holdout_count_of_its_training_episodes() -> None:
    sessions = np.array([0] * 9 + [1] * 1 + [2] * 25 + [3] * 4)
    train, val = validation_split(sessions, 0.1, np.random.default_rng(0))
    assert not set(train) & set(val) and sorted([*train, *val]) == list(range(len(sessions)))
    assert list(train) == sorted(train) and list(val) == sorted(val)
    counts = {s: int((sessions[val] == s).sum()) for s in range(4)}
    assert counts == {s: holdout_count(int((sessions == s).sum()), 0.1) for s in range(4)}
    assert counts == {0: 1, 1: 1, 2: 2, 3: 1}  # a one-episode session gives its only one
    again = validation_split(sessions, 0.1, np.random.default_rng(0))[1]
    assert np.array_equal(val, again)


def test_zero_gives_no_validation_and_bad_fractions_are_refused() -> None:
    train, val = validation_split([0, 0, 1], 0.0, np.random.default_rng(0))
    assert list(train) == [0, 1, 2] and len(val) == 0 and val.dtype == np.int64
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="validation_pct"):
            validation_split([0, 0, 1], bad, np.random.default_rng(0))
