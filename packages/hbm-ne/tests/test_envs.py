"""Batched torch environments against Gymnasium, step by step."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
from hbm_ne.envs import (
    Acrobot,
    BatchedEnv,
    CartPole,
    LunarLander,
    MountainCar,
    gymnasium_uniform,
    make_env,
    resolve_env_id,
)


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (see conftest)."""


TORCH_ENVS = ["CartPole-v1", "MountainCar-v0", "Acrobot-v1"]
Policy = Callable[[np.ndarray, np.random.Generator], int]


def random_policy(n: int) -> Policy:
    return lambda obs, rng: int(rng.integers(n))


def cartpole_controller(obs: np.ndarray, rng: np.random.Generator) -> int:
    """Balances the pole for all 500 steps (exercises truncation); a little noise varies runs."""
    x, x_dot, theta, theta_dot = obs
    if rng.random() < 0.05:
        return int(rng.integers(2))
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)


def mountaincar_pump(obs: np.ndarray, rng: np.random.Generator) -> int:
    """Pushes along the velocity: reaches the flag (termination) and hits the left wall."""
    if rng.random() < 0.1:
        return int(rng.integers(3))
    return 2 if obs[1] >= 0 else 0


def acrobot_pump(obs: np.ndarray, rng: np.random.Generator) -> int:
    """Torque along the second joint's velocity: swings up and terminates within 500 steps."""
    if rng.random() < 0.2:
        return int(rng.integers(3))
    return 2 if obs[5] >= 0 else 0


def compare_with_gymnasium(
    env_id: str,
    seeds: list[int],
    policy: Policy,
    *,
    atol: float,
    resync: bool = False,
    action_seed: int = 0,
) -> BatchedEnv:
    """Step the batched env and one Gymnasium env per seed with the same actions; assert that
    obs, reward, terminated and truncated agree at every step until each episode ends.

    Actions come from the Gymnasium observation, so both sides play the same sequence.
    `resync` copies Gymnasium's float64 state into the torch env after each step, so that every
    step checks the one-step map from identical states: over hundreds of steps, chaotic Acrobot
    and the unstable pole amplify one-ulp differences between numpy's and torch's cos/sin
    until trajectories separate.
    """
    n = len(seeds)
    env = make_env(env_id, n)
    ref = [gym.make(env_id) for _ in seeds]
    obs = env.reset(seeds).clone()
    ref_obs = np.stack([r.reset(seed=s)[0] for r, s in zip(ref, seeds, strict=True)])
    np.testing.assert_array_equal(obs.numpy(), ref_obs)
    rng = np.random.default_rng(action_seed)
    ended = np.zeros(n, dtype=bool)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    actions = np.zeros(n, dtype=np.int64)
    for t in range(env.max_episode_steps):
        for i in range(n):
            actions[i] = policy(ref_obs[i], rng)
        out = env.step(torch.as_tensor(actions))
        for i in range(n):
            if ended[i]:
                assert out.reward[i] == 0 and not out.terminated[i] and not out.truncated[i]
                continue
            o, r, term, trunc, _ = ref[i].step(int(actions[i]))
            ref_obs[i] = o
            where = f"{env_id} seed {seeds[i]} step {t + 1}"
            np.testing.assert_allclose(out.obs[i].numpy(), o, rtol=0, atol=atol, err_msg=where)
            # float32 rewards: exact for the classic tasks, rounded for LunarLander
            assert float(out.reward[i]) == pytest.approx(r, rel=1e-6, abs=1e-6), where
            assert bool(out.terminated[i]) == term, where
            assert bool(out.truncated[i]) == trunc, where
            returns[i] += r
            lengths[i] += 1
            ended[i] = term or trunc
            if resync and not ended[i]:
                state = torch.as_tensor(np.asarray(ref[i].unwrapped.state, dtype=np.float64))
                env._state[:, i] = state  # type: ignore[attr-defined]
        if ended.all():
            break
    assert ended.all(), "every Gymnasium episode ends within max_episode_steps"
    assert env.done.all()
    np.testing.assert_allclose(env.returns.numpy(), returns, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(env.lengths.numpy(), lengths)
    return env


@pytest.mark.parametrize("env_id", TORCH_ENVS)
def test_reset_reproduces_gymnasium_initial_states(env_id: str) -> None:
    seeds = [0, 1, 7, 42, 12345, 2**31 - 1, 2**40 + 3]
    env = make_env(env_id, len(seeds))
    obs = env.reset(seeds)
    for i, seed in enumerate(seeds):
        ref_obs, _ = gym.make(env_id).reset(seed=seed)
        np.testing.assert_array_equal(obs[i].numpy(), ref_obs)


def test_gymnasium_uniform_is_gymnasiums_np_random() -> None:
    from gymnasium.utils.seeding import np_random

    for seed in (0, 3, 99999):
        rng, _ = np_random(seed)
        np.testing.assert_array_equal(
            gymnasium_uniform([seed], -0.3, 0.2, 5)[0], rng.uniform(-0.3, 0.2, size=5)
        )


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCar-v0"])
def test_random_actions_match_gymnasium(env_id: str) -> None:
    env = make_env(env_id, 1)
    seeds = np.random.default_rng(1).integers(0, 2**31, size=48).tolist()
    compare_with_gymnasium(env_id, seeds, random_policy(env.num_actions), atol=1e-6)


def test_cartpole_full_episodes_truncate_at_500() -> None:
    # 500 steps of an unstable system: resync so each step starts from Gymnasium's state
    env = compare_with_gymnasium(
        "CartPole-v1", list(range(12)), cartpole_controller, atol=1e-6, resync=True
    )
    assert env.truncated.any(), "the controller keeps some poles up for 500 steps"
    assert (env.lengths[env.truncated] == 500).all()


def test_mountaincar_reaches_the_flag_like_gymnasium() -> None:
    env = compare_with_gymnasium("MountainCar-v0", list(range(16)), mountaincar_pump, atol=1e-6)
    assert (env.lengths < 200).any(), "the pump policy terminates some episodes"


def test_acrobot_free_running_matches_gymnasium_for_200_steps() -> None:
    # Without resync the trajectories agree to float32 precision for hundreds of steps; random
    # actions rarely terminate, so the episodes are cut here by comparing a shorter horizon.
    seeds = list(range(100, 116))
    env = make_env("Acrobot-v1", len(seeds))
    ref = [gym.make("Acrobot-v1") for _ in seeds]
    env.reset(seeds)
    for r, s in zip(ref, seeds, strict=True):
        r.reset(seed=s)
    rng = np.random.default_rng(5)
    for _ in range(200):
        actions = rng.integers(3, size=len(seeds))
        out = env.step(torch.as_tensor(actions))
        expected = np.stack([r.step(int(a))[0] for r, a in zip(ref, actions, strict=True)])
        np.testing.assert_allclose(out.obs.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("policy", ["random", "pump"])
def test_acrobot_every_step_matches_gymnasium(policy: str) -> None:
    pol = random_policy(3) if policy == "random" else acrobot_pump
    env = compare_with_gymnasium(
        "Acrobot-v1", list(range(200, 216)), pol, atol=1e-6, resync=True, action_seed=3
    )
    if policy == "pump":
        assert env.lengths.max() < 500, "the pump policy terminates every episode"
        assert (env.returns == 1 - env.lengths.float()).all(), "-1 per step, 0 at the end"


def test_episode_end_is_masked_and_the_batch_keeps_going() -> None:
    env = CartPole(3)
    env.reset([0, 1, 2])
    steps = 0
    while not env.all_done():
        out = env.step(torch.zeros(3, dtype=torch.int64))  # always push left: falls fast
        steps += 1
        assert (out.reward == (~env.done | out.terminated).float()).all()
    assert steps == int(env.lengths.max())
    assert (env.returns == env.lengths.float()).all()
    out = env.step(torch.zeros(3, dtype=torch.int64))
    assert (out.reward == 0).all() and not out.terminated.any()


def test_step_after_truncation_and_bad_input_raise() -> None:
    env = MountainCar(2)
    env.reset([0, 1])
    with pytest.raises(ValueError, match=r"actions has shape \(3,\), expected \(2,\)"):
        env.step(torch.zeros(3, dtype=torch.int64))
    for _ in range(200):
        out = env.step(torch.ones(2, dtype=torch.int64))
    assert out.truncated.all() and env.all_done()
    with pytest.raises(RuntimeError, match="max_episode_steps=200; call reset"):
        env.step(torch.ones(2, dtype=torch.int64))
    env.reset([3, 4])
    assert not env.done.any() and env.elapsed_steps == 0 and (env.returns == 0).all()


def test_bad_seeds_and_names_are_reported() -> None:
    env = Acrobot(2)
    with pytest.raises(ValueError, match="got 3 seeds for 2 environments"):
        env.reset([1, 2, 3])
    with pytest.raises(ValueError, match=r"seeds\[1\] = -4: expected a non-negative integer"):
        env.reset([1, -4])
    with pytest.raises(ValueError, match=r"seeds\[0\] = 1.5"):
        env.reset([1.5, 2])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown environment 'Pong-v5'"):
        make_env("Pong-v5", 2)
    with pytest.raises(ValueError, match="num_envs = 0"):
        CartPole(0)


def test_short_names_and_ids() -> None:
    assert resolve_env_id("cartpole") == "CartPole-v1"
    assert resolve_env_id("LunarLander") == "LunarLander-v3"
    assert resolve_env_id("Acrobot-v1") == "Acrobot-v1"
    assert isinstance(make_env("mountaincar", 2), MountainCar)
    spaces = {
        e: (make_env(e, 1).obs_size, make_env(e, 1).num_actions, make_env(e, 1).max_episode_steps)
        for e in TORCH_ENVS
    }
    for env_id, (obs_size, num_actions, limit) in spaces.items():
        ref = gym.make(env_id)
        assert ref.observation_space.shape == (obs_size,)
        assert ref.action_space.n == num_actions  # type: ignore[attr-defined]
        assert ref.spec is not None and ref.spec.max_episode_steps == limit


def test_lunarlander_matches_gymnasium_and_skips_finished_envs() -> None:
    seeds = [0, 5, 9]
    env = compare_with_gymnasium("LunarLander-v3", seeds, random_policy(4), atol=0)
    assert isinstance(env, LunarLander) and env.obs.shape == (3, 8)
    env.close()


def test_obs_is_a_batch_view_with_gymnasium_shapes() -> None:
    env = make_env("acrobot", 5)
    obs = env.reset(range(5))
    assert obs.shape == (5, 6) and obs.dtype == torch.float32
    # cos/sin pairs of the two angles
    np.testing.assert_allclose((obs[:, 0] ** 2 + obs[:, 1] ** 2).numpy(), 1.0, atol=1e-6)
    assert obs.data_ptr() == env.step(torch.ones(5, dtype=torch.int64)).obs.data_ptr()


def test_torch_envs_do_not_import_gymnasium() -> None:
    code = (
        "import sys\n"
        "import hbm_ne.envs as envs\n"
        "env = envs.make_env('acrobot', 2)\n"
        "env.reset([0, 1])\n"
        "assert 'gymnasium' not in sys.modules, 'torch envs must not need gymnasium'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lunarlander_without_gymnasium_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r'pip install "hbm-ne\[envs\]"'):
        LunarLander(1)
