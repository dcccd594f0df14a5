"""Simulated players: byte-identical per seed, recorder format, human timing, visible learning."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium", reason='needs the extra: pip install "hbm-data[simulate]"')

from hbm_data import (
    ENVIRONMENTS,
    SIMULATED_PROFILES,
    Episode,
    check_file,
    compute_session_run_ids,
    load_episodes,
    load_human_data,
    simulate_subject,
    write_simulated_subject,
)
from hbm_data.cli import main
from hbm_data.envs import GYMNASIUM_ENVIRONMENTS
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


@pytest.mark.parametrize("subject", sorted(SIMULATED_PROFILES))
@pytest.mark.parametrize("env", sorted(GYMNASIUM_ENVIRONMENTS))
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


def _style(episodes: list[Episode], fps: int) -> tuple[float, float]:
    """(mean frames a key is held before it changes, key changes per second)."""
    holds: list[int] = []
    changes = frames = 0
    for e in episodes:
        cut = np.flatnonzero(np.diff(e.actions) != 0) + 1
        holds += np.diff(np.concatenate([[0], cut, [e.length]])).tolist()
        changes, frames = changes + len(cut), frames + e.length
    return float(np.mean(holds)), changes / frames * fps


def test_four_documented_styles() -> None:
    assert len(SIMULATED_PROFILES) >= 4
    for name, profile in SIMULATED_PROFILES.items():
        assert profile.name == name and profile.style, name
    assert len({p.style.split(":")[0] for p in SIMULATED_PROFILES.values()}) == 4
    assert {p.seed for p in SIMULATED_PROFILES.values()} == {1, 2, 3, 4}


@pytest.mark.parametrize("env", sorted(GYMNASIUM_ENVIRONMENTS))
def test_styles_differ_as_documented(env: str, session_data_dir: Path) -> None:
    """twitchy (sim03): shortest holds, most switches; cautious (sim04): the reverse."""
    fps = ENVIRONMENTS[env].fps
    style = {
        s: _style(load_episodes(ensure_default_file(env, s, session_data_dir)), fps)
        for s in SIMULATED_PROFILES
    }
    hold = {s: h for s, (h, _) in style.items()}
    switch = {s: r for s, (_, r) in style.items()}
    assert hold["sim03"] < min(hold["sim01"], hold["sim02"]) < hold["sim04"], hold
    assert hold["sim04"] > max(hold["sim01"], hold["sim02"]), hold
    assert switch["sim03"] > max(switch["sim01"], switch["sim02"]) > switch["sim04"], switch


def test_reaction_delays_differ_as_documented() -> None:
    from hbm_data.simulate import _controller, _Player

    spec = ENVIRONMENTS["cartpole"]
    rng = np.random.default_rng(0)

    def delay(name: str, skill: float) -> int:
        return _Player(spec, _controller(spec), SIMULATED_PROFILES[name], skill, rng).delay

    for skill in (0.2, 0.5):
        assert delay("sim03", skill) < delay("sim01", skill) < delay("sim04", skill)
    assert delay("sim04", 0.2) > delay("sim04", 0.95)  # reactions quicken with skill


@pytest.mark.parametrize("env", ["cartpole", "mountaincar"])
def test_same_style_other_seed_is_closer_than_another_style(env: str) -> None:
    """A profile plus a seed is a person: another seed plays in the same style."""
    fps = ENVIRONMENTS[env].fps
    for name in ("sim03", "sim04"):
        me = _style(simulate_subject(env, name), fps)
        twin_profile = SIMULATED_PROFILES[name].with_seed(11)
        assert twin_profile.name == f"{name}-seed11" and twin_profile.seed == 11
        twin = _style(simulate_subject(env, twin_profile), fps)
        other = _style(simulate_subject(env, "sim01"), fps)
        for k in (0, 1):  # hold duration, switch rate
            assert abs(twin[k] - me[k]) < abs(other[k] - me[k]), (name, k, me, twin, other)


def test_cli_makes_every_default_subject_and_styled_twins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "cartpole", "--data-dir", str(tmp_path), "--sessions", "1"]) == 0
    out = capsys.readouterr().out
    for name, profile in SIMULATED_PROFILES.items():
        path = tmp_path / f"{name}_data_cartpole.json"
        meta = json.loads((tmp_path / f"{name}_data_cartpole.meta.json").read_text())
        assert meta["simulated"] is True and meta["style"] == profile.style
        assert meta["profile"]["name"] == name and check_file(path) == []
        assert profile.style in out
    args = ["simulate", "cartpole", "--subject", "007", "--profile", "sim03", "--sessions", "2"]
    assert main([*args, "--data-dir", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "007_data_cartpole.meta.json").read_text())
    assert (
        meta["subject"] == "007" and meta["profile"]["style"] == SIMULATED_PROFILES["sim03"].style
    )
    md = load_human_data("cartpole", "007", data_dir=tmp_path).metadata
    assert md.subject == "007" and md.simulated and md.num_sessions == 2
