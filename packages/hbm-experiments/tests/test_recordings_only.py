"""Games that exist only as recordings (the Overcooked kitchens): offline metrics, no rollouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hbm_data import Episode, load_human_data, write_episodes
from hbm_experiments.evaluation import evaluate_policy, unplayable_reason


def test_a_recordings_only_game_is_scored_offline_and_says_why(tmp_path: Path) -> None:
    assert unplayable_reason("cartpole") is None
    rng = np.random.default_rng(0)
    episodes = []
    for k in range(10):
        obs = rng.normal(size=(30, 36))
        episodes.append(Episode(
            k, f"2019-05-14T18:{36 + k}:00+00:00", 0, 0.0, obs, rng.integers(0, 6, 30),
            np.zeros(30), np.roll(obs, -1, axis=0), np.arange(30) == 29,
        ))  # fmt: skip
    write_episodes(tmp_path / "oc-w01-p0_data_overcooked-cramped_room.json", episodes)
    data = load_human_data("overcooked-cramped_room", "oc-w01-p0", data_dir=tmp_path)
    torch.manual_seed(0)
    out = evaluate_policy(torch.nn.Linear(36, 6), data, seed=1)
    reason = unplayable_reason("overcooked-cramped_room")
    assert reason is not None and "rollouts skipped" in reason
    assert out["behaviour"] == {"skipped": reason}
    block = out["humanlike"]  # the teacher-forced imitation instead of rollouts
    assert block["protocol"] == "teacher-forced" and block["skipped"] == reason
    assert 0.0 <= block["action_accuracy"] <= 1.0 and block["state_jsd"] is None
    assert 0.0 < out["metrics"]["test_ce"] < 10.0 and 0.0 <= out["metrics"]["test_f1"] <= 1.0
