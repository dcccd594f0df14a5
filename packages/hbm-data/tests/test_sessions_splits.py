"""Session/run rule, CL features, and the per-session split's invariants."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from hbm_data import compute_session_run_ids, normalize_session_run_features, split_by_session
from hbm_data.splits import holdout_count

T0 = datetime(2025, 1, 6, 10, 0)


def _times(*minutes: float) -> list[str]:
    return [(T0 + timedelta(minutes=m)).isoformat() for m in minutes]


def test_sessions_start_after_a_30_minute_gap() -> None:
    sessions, runs = compute_session_run_ids(_times(0, 1, 2, 32, 61.99, 92, 92.5, 3000))
    # 32 - 2 = 30 → new session (≥); 61.99 - 32 < 30 → same; 92 - 61.99 ≥ 30 → new
    assert sessions.tolist() == [0, 0, 0, 1, 1, 2, 2, 3]
    assert runs.tolist() == [0, 1, 2, 0, 1, 0, 1, 0]
    assert sessions.dtype == runs.dtype == np.int64


def test_gap_is_configurable_and_accepts_datetimes() -> None:
    times = [T0 + timedelta(minutes=m) for m in (0, 10, 20, 35)]
    assert compute_session_run_ids(times, gap_minutes=10)[0].tolist() == [0, 1, 2, 3]
    assert compute_session_run_ids(times, gap_minutes=60)[0].tolist() == [0, 0, 0, 0]
    assert compute_session_run_ids([])[0].shape == (0,)


def test_cl_features_five_sessions() -> None:
    sessions = np.array([0, 0, 1, 2, 2, 2, 3, 4])
    runs = np.array([0, 1, 0, 0, 1, 2, 0, 0])
    s_cl, r_cl = normalize_session_run_features(sessions, runs)
    assert s_cl.tolist() == [-1, -1, -0.5, 0, 0, 0, 0.5, 1]
    assert r_cl.tolist() == [-1, 1, 0, -1, 0, 1, 0, 0]  # lone runs → 0
    assert s_cl.dtype == r_cl.dtype == np.float32


def test_cl_features_single_session() -> None:
    s_cl, r_cl = normalize_session_run_features([0, 0, 0, 0, 0], [0, 1, 2, 3, 4])
    assert s_cl.tolist() == [0.0] * 5
    assert r_cl.tolist() == pytest.approx([-1, -0.5, 0, 0.5, 1])
    with pytest.raises(ValueError, match="equally long"):
        normalize_session_run_features([0, 1], [0])


def test_holdout_counts() -> None:
    assert [holdout_count(n, 0.1) for n in (1, 5, 9, 10, 19, 20, 35)] == [1, 1, 1, 1, 1, 2, 3]
    assert holdout_count(8, 0.5) == 4


def test_split_invariants() -> None:
    sessions = np.repeat(np.arange(6), [1, 4, 9, 10, 23, 40])
    train, test = split_by_session(sessions, 0.1, np.random.default_rng(7))
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(len(sessions)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # file order
    per_session = np.bincount(sessions[test], minlength=6)
    assert per_session.tolist() == [1, 1, 1, 1, 2, 4]
    again = split_by_session(sessions, 0.1, np.random.default_rng(7))
    assert np.array_equal(again[1], test) and np.array_equal(again[0], train)
    other = [split_by_session(sessions, 0.1, np.random.default_rng(s))[1] for s in range(5)]
    assert any(not np.array_equal(o, test) for o in other)


def test_split_rejects_bad_pct() -> None:
    with pytest.raises(ValueError, match="holdout_pct"):
        split_by_session([0, 0], 1.0, np.random.default_rng(0))


def test_aware_times_compare_as_instants_and_mix_with_naive() -> None:
    from hbm_data import comparable_times

    # DST ends between two runs: 02:50 summer time, then 02:10 winter time is 20 min later
    dst = ["2025-10-26T02:50:00+02:00", "2025-10-26T02:10:00+01:00"]
    assert compute_session_run_ids(dst)[0].tolist() == [0, 0]
    # old naive recordings, then aware ones: naive read in the first aware offset
    mixed = ["2025-01-06T10:00:00", "2025-01-06T10:05:00+01:00", "2025-01-06T09:50:00+00:00"]
    times = comparable_times(mixed)
    assert [t.utcoffset() for t in times] == [timedelta(hours=1), timedelta(hours=1), timedelta(0)]
    assert compute_session_run_ids(mixed)[0].tolist() == [0, 0, 1]  # 09:50Z = 10:50+01
    naive = comparable_times(["2025-01-06T10:00:00"])
    assert naive[0].tzinfo is None  # all-naive files are read as written
