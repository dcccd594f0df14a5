"""Shared fixtures. The core tests need numpy only: files "recorded" here come from a numpy
CartPole (Gymnasium's CartPole-v1 equations) or a random stand-in for other games, so the
per-package test venv, which holds no gymnasium, runs them all."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_data import get_env_spec


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the whole run, so default subjects are generated once."""
    return tmp_path_factory.mktemp("hbm-data")


@pytest.fixture(autouse=True)
def _isolated_data_dir(session_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real data dir."""
    monkeypatch.setenv("HBM_DATA_DIR", str(session_data_dir))


@pytest.fixture
def simulate_extra() -> None:
    """Skip a test of simulated players when the `[simulate]` extra (gymnasium) is absent."""
    pytest.importorskip("gymnasium", reason='needs the extra: pip install "hbm-data[simulate]"')


class NumpyCartPole:
    """CartPole-v1 as Gymnasium steps it (Euler, float32 state, 500-step limit)."""

    def __init__(self) -> None:
        self.state = np.zeros(4, dtype=np.float32)
        self.t = 0

    def reset(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        self.state = rng.uniform(-0.05, 0.05, size=4).astype(np.float32)
        self.t = 0
        return self.state.copy()

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        x, x_dot, theta, theta_dot = (float(v) for v in self.state)
        force = 10.0 if action == 1 else -10.0
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + 0.05 * theta_dot**2 * sin) / 1.1
        theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos**2 / 1.1))
        x_acc = temp - 0.05 * theta_acc * cos / 1.1
        x, x_dot = x + 0.02 * x_dot, x_dot + 0.02 * x_acc
        theta, theta_dot = theta + 0.02 * theta_dot, theta_dot + 0.02 * theta_acc
        self.state = np.array([x, x_dot, theta, theta_dot], dtype=np.float32)
        self.t += 1
        fell = abs(x) > 2.4 or abs(theta) > 12 * 2 * math.pi / 360
        return self.state.copy(), 1.0, fell or self.t >= 500


class RandomGame:
    """Any other game: float32 observations of the right size, 20 to 60 steps per episode."""

    def __init__(self, obs_size: int) -> None:
        self.obs_size = obs_size
        self.rng = np.random.default_rng(0)
        self.left = 0

    def reset(self, seed: int) -> np.ndarray:
        self.rng = np.random.default_rng(seed)
        self.left = int(self.rng.integers(20, 61))
        return self.rng.standard_normal(self.obs_size).astype(np.float32)

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        self.left -= 1
        obs = self.rng.standard_normal(self.obs_size).astype(np.float32)
        return obs, float(self.rng.normal()), self.left <= 0


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
    spec = get_env_spec(env_id)
    env: NumpyCartPole | RandomGame = (
        NumpyCartPole() if spec.name == "cartpole" else RandomGame(spec.obs_size)
    )
    rng = np.random.default_rng(0)
    episodes: list[dict[str, Any]] = []
    for i, start in enumerate(starts):
        obs = env.reset(seed=i)
        steps, done = [], False
        while not done:
            action = int(rng.integers(spec.num_actions)) if policy is None else policy(obs)
            nxt, rew, done = env.step(action)
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
    with open(path, "w") as f:
        json.dump(episodes, f, indent=2)
    return episodes


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    path = tmp_path / "sub01_data_cartpole.json"
    record_like_the_lab(path)
    return path


# `nox -s data_extras` installs every extra and sets HBM_REQUIRE_EXTRAS=1: there a test that
# skips for a missing extra is a failure, so the skips of the core session hide nothing.
_REQUIRE_EXTRAS = os.environ.get("HBM_REQUIRE_EXTRAS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if _REQUIRE_EXTRAS and report.skipped:
        report.outcome = "failed"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _REQUIRE_EXTRAS and report.skipped:
        report.outcome = "failed"
