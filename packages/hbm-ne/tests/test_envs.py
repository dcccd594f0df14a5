"""Batched torch environments against Gymnasium, step by step, with zero tolerance."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gym_compare import KINDS, action_source, assert_matches_gymnasium, bits
from hbm_ne.envs import (
    Acrobot,
    CartPole,
    LunarLander,
    MountainCar,
    gymnasium_uniform,
    make_env,
    resolve_env_id,
)
from ne_helpers import assert_close


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (see conftest)."""


TORCH_ENVS = ["CartPole-v1", "MountainCar-v0", "Acrobot-v1"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("env_id", TORCH_ENVS)
def test_every_step_is_gymnasiums_bit_for_bit(env_id: str, kind: str) -> None:
    # a few seeds here; test_envs_slow.py runs hundreds
    seeds = [3, 17, 2**31 - 5, 123456]
    env = make_env(env_id, len(seeds))
    actions = action_source(kind, env_id, len(seeds), env.num_actions, seed=len(kind))
    assert_matches_gymnasium(env_id, seeds, actions, env=env)


def test_full_episodes_truncate_and_terminate_like_gymnasium() -> None:
    # CartPole balanced for 500 steps (truncation), MountainCar reaching the flag, Acrobot
    # swinging up (termination): each path of the episode end is compared bit for bit
    seeds = list(range(8))
    env = assert_matches_gymnasium(
        "CartPole-v1", seeds, action_source("controller", "CartPole-v1", 8, 2, seed=0)
    )
    assert env.truncated.any() and (env.lengths[env.truncated] == 500).all()
    env = assert_matches_gymnasium(
        "MountainCar-v0", seeds, action_source("controller", "MountainCar-v0", 8, 3, seed=0)
    )
    assert (env.lengths < 200).any(), "the pump policy reaches the flag"
    env = assert_matches_gymnasium(
        "Acrobot-v1", seeds, action_source("controller", "Acrobot-v1", 8, 3, seed=0)
    )
    assert env.lengths.max() < 500, "the pump policy terminates every episode"
    assert (env.returns == 1 - env.lengths.float()).all(), "-1 per step, 0 at the end"


def test_acrobot_wraps_angles_many_turns_away_like_gymnasium() -> None:
    # Gymnasium's `wrap` loops; from a state far outside [-pi, pi] the step needs many turns
    # (the fallback after the one-turn passes), each one rounding like Gymnasium's
    starts = np.array(
        [[50.0, -3.5, 1.0, -2.0], [-41.3, 20.0, -3.0, 5.0], [3.2, -3.2, 0.0, 0.0],
         [np.pi, -np.pi, 12.0, -28.0]]
    )  # fmt: skip
    env = make_env("Acrobot-v1", len(starts))
    env.reset(range(len(starts)))
    env._state_t.copy_(torch.from_numpy(starts.T))  # type: ignore[attr-defined]
    env._state_trig()  # type: ignore[attr-defined]
    ref = [gym.make("Acrobot-v1") for _ in starts]
    for r, start in zip(ref, starts, strict=True):
        r.reset(seed=0)
        r.unwrapped.state = start.copy()  # type: ignore[attr-defined]
    for _ in range(3):
        out = env.step(torch.tensor([0, 1, 2, 0]))
        expected = np.stack([r.step(a)[0] for r, a in zip(ref, [0, 1, 2, 0], strict=True)])
        assert np.array_equal(bits(out.obs.numpy()), bits(expected))
        states = np.stack([r.unwrapped.state for r in ref])  # type: ignore[attr-defined]
        assert np.array_equal(env._state_t.numpy().T, states)  # type: ignore[attr-defined]


@pytest.mark.parametrize("env_id", TORCH_ENVS)
def test_reset_reproduces_gymnasium_initial_states(env_id: str) -> None:
    seeds = [0, 1, 7, 42, 12345, 2**31 - 1, 2**40 + 3]
    env = make_env(env_id, len(seeds))
    obs = env.reset(seeds)
    for i, seed in enumerate(seeds):
        ref_obs, _ = gym.make(env_id).reset(seed=seed)
        assert np.array_equal(bits(obs[i].numpy()), bits(ref_obs))


def test_gymnasium_uniform_is_gymnasiums_np_random() -> None:
    from gymnasium.utils.seeding import np_random

    for seed in (0, 3, 99999):
        rng, _ = np_random(seed)
        np.testing.assert_array_equal(
            gymnasium_uniform([seed], -0.3, 0.2, 5)[0], rng.uniform(-0.3, 0.2, size=5)
        )


@pytest.mark.parametrize("env_id", TORCH_ENVS)
def test_torch_ops_path_agrees_to_rounding(env_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Off CPU the same op sequence runs in torch; run that path here on CPU tensors: torch's
    # cos/sin/x*x differ from libm's in the last bit, so agreement is to rounding
    import hbm_ne.envs._base as base
    from hbm_ne.envs._ops import NumpyOps, TorchOps

    seeds = list(range(16))
    exact = make_env(env_id, 16)
    monkeypatch.setattr(base, "ops_for", lambda device: TorchOps())
    approx = make_env(env_id, 16)
    assert isinstance(exact._ops, NumpyOps) and isinstance(approx._ops, TorchOps)
    exact.reset(seeds)
    approx.reset(seeds)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        a = torch.randint(exact.num_actions, (16,), generator=g)
        out_exact, out_approx = exact.step(a), approx.step(a)
        assert_close(out_approx.obs, out_exact.obs, atol=1e-5, rtol=0)
        assert torch.equal(out_approx.terminated, out_exact.terminated)
        assert torch.equal(out_approx.reward, out_exact.reward)
    assert torch.equal(approx.lengths, exact.lengths)


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
    actions = action_source("random", "LunarLander-v3", 3, 4, seed=0)
    env = assert_matches_gymnasium("LunarLander-v3", seeds, actions)
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
