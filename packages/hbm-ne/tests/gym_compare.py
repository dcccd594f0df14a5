"""Step a batched env and one Gymnasium env per seed side by side, with zero tolerance."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from hbm_ne.envs import BatchedEnv, make_env

#: `actions(t, obs [n, obs_size]) -> [n]` from Gymnasium's latest observations
Actions = Callable[[int, np.ndarray], np.ndarray]
KINDS = ("random", "sticky", "constant", "controller")


def _controller(env_id: str, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A policy that reaches each task's long or terminating episodes, with 5-20 % noise."""

    def cartpole(obs: np.ndarray) -> np.ndarray:  # balances for 500 steps: truncation
        x, x_dot, theta, theta_dot = obs.T
        return (theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0).astype(np.int64)

    def mountaincar(obs: np.ndarray) -> np.ndarray:  # pumps: the flag and the left wall
        return np.where(obs[:, 1] >= 0, 2, 0)

    def acrobot(obs: np.ndarray) -> np.ndarray:  # swings up: terminates
        return np.where(obs[:, 5] >= 0, 2, 0)

    fn = {"CartPole-v1": cartpole, "MountainCar-v0": mountaincar, "Acrobot-v1": acrobot}[env_id]
    noise = {"CartPole-v1": 0.05, "MountainCar-v0": 0.1, "Acrobot-v1": 0.2}[env_id]
    n_actions = {"CartPole-v1": 2, "MountainCar-v0": 3, "Acrobot-v1": 3}[env_id]

    def act(obs: np.ndarray) -> np.ndarray:
        a = fn(obs)
        flip = rng.random(len(a)) < noise
        return np.where(flip, rng.integers(n_actions, size=len(a)), a)

    return act


def action_source(kind: str, env_id: str, n: int, num_actions: int, seed: int) -> Actions:
    """Random, sticky (an action kept with probability 0.9), constant (one per env), or
    observation-driven (`controller`) action sequences."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return lambda t, obs: rng.integers(num_actions, size=n)
    if kind == "constant":
        fixed = rng.integers(num_actions, size=n)
        return lambda t, obs: fixed
    if kind == "sticky":
        prev = rng.integers(num_actions, size=n)

        def sticky(t: int, obs: np.ndarray) -> np.ndarray:
            nonlocal prev
            prev = np.where(rng.random(n) < 0.9, prev, rng.integers(num_actions, size=n))
            return prev

        return sticky
    if kind == "controller":
        ctrl = _controller(env_id, rng)
        return lambda t, obs: ctrl(obs)
    raise ValueError(kind)


def bits(x: np.ndarray) -> np.ndarray:
    """float32 values as their bit patterns: equality that tells -0.0 from 0.0."""
    return np.ascontiguousarray(x, dtype=np.float32).view(np.int32)


def assert_matches_gymnasium(
    env_id: str, seeds: list[int], actions: Actions, *, env: BatchedEnv | None = None
) -> BatchedEnv:
    """Every observation, reward, terminated and truncated flag equal to Gymnasium's, bit for
    bit, at every step of every episode; returns and lengths too. Returns the batched env."""
    n = len(seeds)
    env = make_env(env_id, n) if env is None else env
    ref = [gym.make(env_id) for _ in seeds]
    obs = env.reset(seeds).clone().numpy()
    ref_obs = np.stack([r.reset(seed=s)[0] for r, s in zip(ref, seeds, strict=True)])
    assert np.array_equal(bits(obs), bits(ref_obs)), f"{env_id}: reset observations differ"
    ended = np.zeros(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float32)
    lengths = np.zeros(n, dtype=np.int64)
    for t in range(env.max_episode_steps):
        a = np.asarray(actions(t, ref_obs), dtype=np.int64)
        out = env.step(torch.from_numpy(a))
        o, r = out.obs.numpy(), out.reward.numpy()
        term, trunc = out.terminated.numpy(), out.truncated.numpy()
        for i in range(n):
            where = f"{env_id} seed {seeds[i]} step {t + 1}"
            if ended[i]:
                assert r[i] == 0 and not term[i] and not trunc[i], where
                continue
            ro, rr, rterm, rtrunc, _ = ref[i].step(int(a[i]))
            ref_obs[i] = ro
            assert np.array_equal(bits(o[i]), bits(ro)), (
                f"{where}: obs {o[i].tolist()} != {ro.tolist()}"
            )
            assert bits(r[i : i + 1])[0] == bits(np.float32([rr]))[0], f"{where}: reward"
            assert (bool(term[i]), bool(trunc[i])) == (rterm, rtrunc), f"{where}: flags"
            returns[i] += np.float32(rr)
            lengths[i] += 1
            ended[i] = rterm or rtrunc
        if ended.all():
            break
    assert ended.all(), "every Gymnasium episode ends within max_episode_steps"
    assert bool(env.done.all())
    assert np.array_equal(env.returns.numpy(), returns)
    assert np.array_equal(env.lengths.numpy(), lengths)
    for r in ref:
        r.close()
    return env
