"""Simulated players: byte-identical per seed, recorder format, human timing, visible learning."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hbm_data import (
    ENVIRONMENTS,
    check_file,
    compute_session_run_ids,
    load_episodes,
    simulate_subject,
    write_simulated_subject,
)
from hbm_data.simulate import ensure_default_file


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kw = {"n_sessions": 2, "episodes_per_session": (3, 4)}
    a = write_simulated_subject("lunarlander", "sim02", path=tmp_path / "a" / "f.json", **kw)
    b = write_simulated_subject("lunarlander", "sim02", path=tmp_path / "b" / "f.json", **kw)
    assert a.read_bytes() == b.read_bytes()
    c = write_simulated_subject(
        "lunarlander", "sim02", path=tmp_path / "c" / "f.json", seed=99, **kw
    )
    assert c.read_bytes() != a.read_bytes()
    meta = json.loads((tmp_path / "a" / "f.meta.json").read_text())
    assert meta["simulated"] is True and meta["env_id"] == "LunarLander-v3"
    assert check_file(a, env="lunarlander") == []


def test_subjects_differ_and_any_name_is_reproducible() -> None:
    kw = {"n_sessions": 1, "episodes_per_session": (2, 2)}
    sim01 = simulate_subject("cartpole", "sim01", **kw)
    sim02 = simulate_subject("cartpole", "sim02", **kw)
    assert [e.actions.tolist() for e in sim01] != [e.actions.tolist() for e in sim02]
    x1 = simulate_subject("mountaincar", "sim77", **kw)
    x2 = simulate_subject("mountaincar", "sim77", **kw)
    assert [e.to_record() for e in x1] == [e.to_record() for e in x2]


def test_episodes_follow_the_recorder(tmp_path: Path) -> None:
    eps = simulate_subject("mountaincar", "sim01", n_sessions=2, episodes_per_session=(3, 3))
    assert [e.seed_used for e in eps] == list(range(6)) == [e.episode_id for e in eps]
    spec = ENVIRONMENTS["mountaincar"]
    acts = np.concatenate([e.actions for e in eps])
    assert set(np.unique(acts)) <= set(spec.keys.values()) | {spec.noop_action}
    assert (acts == spec.noop_action).mean() > 0.05  # people often hold no key
    for e in eps:
        assert e.dones[-1] and not e.dones[:-1].any()
        assert e.score == pytest.approx(e.rewards.sum())
        np.testing.assert_array_equal(e.observations[1:], e.next_observations[:-1])


def test_human_like_timestamps() -> None:
    spec = ENVIRONMENTS["cartpole"]
    eps = simulate_subject("cartpole", "sim01")
    times = [datetime.fromisoformat(e.timestamp) for e in eps]
    sessions, _ = compute_session_run_ids(times)
    assert sessions.max() + 1 == 6
    assert np.bincount(sessions).min() >= 5  # several runs per session
    for i in range(1, len(eps)):
        gap = (times[i] - times[i - 1]).total_seconds()
        assert gap >= eps[i - 1].length / spec.fps  # the previous episode had to finish
        if sessions[i] != sessions[i - 1]:
            assert gap >= 6 * 3600  # sittings hours or days apart
        else:
            assert gap < 30 * 60


@pytest.mark.parametrize("subject", ["sim01", "sim02"])
@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_default_subjects_learn(env: str, subject: str, session_data_dir: Path) -> None:
    path = ensure_default_file(env, subject, session_data_dir)
    assert path == session_data_dir / f"{subject}_data_{env}.json"
    eps = load_episodes(path)
    sessions, _ = compute_session_run_ids([e.timestamp for e in eps])
    scores = np.array([e.score for e in eps])
    first = scores[sessions == 0].mean()
    later = scores[sessions > 0].mean()
    last = scores[sessions == sessions.max()].mean()
    assert later > first and last > first, (first, later, last)
    assert 40 <= len(eps) <= 100 and sum(e.length for e in eps) < 40_000  # file stays small
