"""Slow env tests: bit-exact agreement with Gymnasium over many seeds; neuroevolution on
environment returns (GA solves CartPole-v1; ES and CMA-ES improve)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gym_compare import KINDS, action_source, assert_matches_gymnasium
from hbm_ne import CMAES, ES, GA, Algorithm, BatchedFeedforward, evolve
from hbm_ne.envs import EnvReturnFitness, evaluate_module, make_env


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (see conftest)."""


pytestmark = pytest.mark.slow

FRESH_SEEDS = range(10**6, 10**6 + 100)  # never drawn by EnvReturnFitness(seed=0) below


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCar-v0", "Acrobot-v1"])
def test_many_seeds_bit_for_bit_with_gymnasium(env_id: str, kind: str) -> None:
    # Zero tolerance over whole episodes (500 / 200 / 500 steps when nothing terminates):
    # Acrobot is chaotic, so one differing bit anywhere becomes a different observation.
    n = 128 if env_id == "Acrobot-v1" else 256
    seeds = np.random.default_rng(len(kind)).integers(0, 2**32, size=n).tolist()
    env = make_env(env_id, n)
    actions = action_source(kind, env_id, n, env.num_actions, seed=7 + len(env_id))
    env = assert_matches_gymnasium(env_id, seeds, actions, env=env)
    if kind == "random" and env_id != "CartPole-v1":
        assert (env.lengths == env.max_episode_steps).any(), "some episodes run to the limit"


def population(p: int) -> BatchedFeedforward:
    return BatchedFeedforward(
        4, 2, p, (8,), sigma_init=0.1, generator=torch.Generator().manual_seed(0)
    )


def run(pop: BatchedFeedforward, algorithm: Algorithm, generations: int) -> tuple[float, float]:
    """Evolve on CartPole returns; (mean return of generation 0, of the last generation)."""
    fitness = EnvReturnFitness("CartPole-v1", episodes=4, seed=0)
    result = evolve(pop, algorithm, fitness, max_generations=generations, seed=0)
    assert result.generations == generations and result.best is not None
    first, last = result.history[0], result.history[-1]
    return -first["mean_fitness"], -last["mean_fitness"]


def test_ga_solves_cartpole_on_fresh_seeds() -> None:
    pop = population(64)
    fitness = EnvReturnFitness("CartPole-v1", episodes=4, seed=0)
    result = evolve(pop, GA(pop, seed=0), fitness, max_generations=30, seed=0)
    assert result.best is not None
    returns = evaluate_module(result.best, "CartPole-v1", FRESH_SEEDS, deterministic=True)
    assert returns.shape == (100,)
    assert float(returns.mean()) >= 475.0


@pytest.mark.parametrize("method", ["es", "cmaes"])
def test_es_and_cmaes_improve_cartpole_returns(method: str) -> None:
    if method == "es":
        pop = population(64)
        algorithm: Algorithm = ES(pop, seed=0)
    else:
        pop = population(32)
        algorithm = CMAES(pop, sigma0=1.0, seed=0)
    before, after = run(pop, algorithm, 20)
    assert after > 3 * before and after > 100.0
