"""The recorder format: read unchanged, round-trip byte for byte, gzip (atomic writes: see
test_write_and_hash.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import record_like_the_lab
from hbm_data import ENVIRONMENTS, load_episodes, write_episodes


def test_reads_lab_recorder_file(tmp_path: Path) -> None:
    path = tmp_path / "sub01_data_lunarlander.json"
    raw = record_like_the_lab(path, "LunarLander-v3")
    episodes = load_episodes(path)
    assert len(episodes) == len(raw) == 3
    for ep, rec in zip(episodes, raw, strict=True):
        assert ep.episode_id == rec["episode_id"] and ep.seed_used == rec["seed_used"]
        assert ep.timestamp == rec["timestamp"] and ep.score == pytest.approx(rec["score"])
        assert ep.length == rec["length"] == len(rec["steps"])
        assert ep.observations.shape == (ep.length, 8)
        np.testing.assert_array_equal(ep.observations[0], rec["steps"][0]["observation"])
        np.testing.assert_array_equal(ep.actions, [s["action"] for s in rec["steps"]])
        assert ep.dones[-1] and not ep.dones[:-1].any()


def test_write_reproduces_recorder_bytes(lab_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy_data_cartpole.json"
    write_episodes(out, load_episodes(lab_file))
    assert out.read_bytes() == lab_file.read_bytes()


def test_gzip_round_trip_is_reproducible(lab_file: Path, tmp_path: Path) -> None:
    episodes = load_episodes(lab_file)
    a, b = tmp_path / "a_data_cartpole.json.gz", tmp_path / "b_data_cartpole.json.gz"
    write_episodes(a, episodes)
    write_episodes(b, episodes)
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()) == lab_file.read_bytes()
    again = load_episodes(a)
    np.testing.assert_array_equal(again[1].next_observations, episodes[1].next_observations)


def test_env_from_argument_when_name_is_nonstandard(lab_file: Path, tmp_path: Path) -> None:
    odd = tmp_path / "whatever.json"
    odd.write_bytes(lab_file.read_bytes())
    assert len(load_episodes(odd)) == 3  # consistency checks only
    with pytest.raises(ValueError, match="has 4 values, expected 8 values for LunarLander-v3"):
        load_episodes(odd, env="lunarlander")


def test_environment_table() -> None:
    expect = {
        "cartpole": ("CartPole-v1", 4, 2, 15, 0),
        "mountaincar": ("MountainCar-v0", 2, 3, 15, 1),
        "acrobot": ("Acrobot-v1", 6, 3, 15, 1),
        "lunarlander": ("LunarLander-v3", 8, 4, 20, 0),
    }
    for name, (env_id, obs, act, fps, noop) in expect.items():
        s = ENVIRONMENTS[name]
        assert (s.env_id, s.obs_size, s.num_actions, s.fps, s.noop_action) == (
            env_id, obs, act, fps, noop,
        )  # fmt: skip
    assert dict(ENVIRONMENTS["lunarlander"].keys) == {"up": 2, "left": 1, "right": 3}
    assert dict(ENVIRONMENTS["mountaincar"].keys) == {"left": 0, "down": 1, "right": 2}
    json.dumps({k: dict(v.keys) for k, v in ENVIRONMENTS.items()})
