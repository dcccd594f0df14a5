from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the whole run, so default subjects are generated once."""
    return tmp_path_factory.mktemp("hbm-data")


@pytest.fixture(autouse=True)
def _isolated_data_dir(session_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real data dir."""
    monkeypatch.setenv("HBM_DATA_DIR", str(session_data_dir))


def record_like_the_lab(
    path: Path,
    env_id: str = "CartPole-v1",
    starts: list[datetime] | None = None,
    policy: Any = None,
) -> list[dict[str, Any]]:
    """Write a file exactly as the lab's collect.py did (float32 obs `.tolist()`, indent=2)."""
    starts = starts or [
        datetime(2025, 1, 6, 10, 0, 0, 123456) + timedelta(seconds=40 * i) for i in range(3)
    ]
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    episodes: list[dict[str, Any]] = []
    for i, start in enumerate(starts):
        obs, _ = env.reset(seed=i)
        steps, done = [], False
        while not done:
            action = int(rng.integers(env.action_space.n)) if policy is None else policy(obs)
            nxt, rew, term, trunc, _ = env.step(action)
            done = term or trunc
            steps.append(
                {
                    "observation": obs.tolist(),
                    "action": action,
                    "reward": rew,
                    "next_observation": nxt.tolist(),
                    "done": done,
                }
            )
            obs = nxt
        episodes.append(
            {
                "episode_id": i,
                "timestamp": start.isoformat(),
                "seed_used": i,
                "length": len(steps),
                "score": sum(s["reward"] for s in steps),
                "steps": steps,
            }
        )
    env.close()
    with open(path, "w") as f:
        json.dump(episodes, f, indent=2)
    return episodes


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    path = tmp_path / "sub01_data_cartpole.json"
    record_like_the_lab(path)
    return path
