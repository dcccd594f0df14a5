"""Population rollouts, the matched-seed rollout of one module and env-return fitness."""

from __future__ import annotations

import re

import gymnasium as gym
import hbm_ne.envs
import pytest
import torch
from hbm_ne import GA, BatchedFeedforward, BatchedRecurrent, evolve
from hbm_ne.envs import EnvReturnFitness, evaluate_module, make_env, rollout, select_actions
from torch import Tensor, nn


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs on one torch thread (see conftest)."""


def gym_returns(policy: nn.Module, env_id: str, seeds: list[int]) -> list[float]:
    """The naive reference: one Gymnasium env, one argmax policy call per step."""
    out = []
    for seed in seeds:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        h = policy.initial_state(1) if hasattr(policy, "forward_step") else None
        total, done = 0.0, False
        while not done:
            x = torch.as_tensor(obs).unsqueeze(0)
            with torch.no_grad():
                if h is None:
                    logits = policy(x)
                else:
                    logits, h = policy.forward_step(x, h)
            obs, r, term, trunc, _ = env.step(int(logits.argmax()))
            total += float(r)
            done = term or trunc
        out.append(total)
    return out


def ff_population(env_id: str, p: int, seed: int = 0, scale: float = 1.0) -> BatchedFeedforward:
    env = make_env(env_id, 1)
    pop = BatchedFeedforward(
        env.obs_size, env.num_actions, p, (8,), generator=torch.Generator().manual_seed(seed)
    )
    pop.params.mul_(scale)
    return pop


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCar-v0"])
def test_population_rollout_matches_a_gymnasium_loop_per_member(env_id: str) -> None:
    pop = ff_population(env_id, 5, scale=3.0)
    seeds = [11, 12, 13]
    returns, lengths = rollout(pop, env_id, seeds, deterministic=True)
    assert returns.shape == lengths.shape == (5, 3)
    assert returns.dtype == torch.float32 and lengths.dtype == torch.int64
    for p in range(5):
        expected = gym_returns(pop.export(p), env_id, seeds)
        assert returns[p].tolist() == expected, f"member {p}"
    if env_id == "CartPole-v1":
        assert len(set(returns[:, 0].tolist())) > 1, "members play their own episodes"
        assert (returns == lengths.float()).all()


def test_recurrent_population_rollout_matches_its_exported_members() -> None:
    pop = BatchedRecurrent(4, 2, 3, 6, generator=torch.Generator().manual_seed(3))
    pop.params.mul_(3.0)
    seeds = [5, 6]
    returns, _ = rollout(pop, "cartpole", seeds, deterministic=True)
    for p in range(3):
        member = pop.export(p)
        assert returns[p].tolist() == gym_returns(member, "CartPole-v1", seeds)
        torch.testing.assert_close(
            evaluate_module(member, "cartpole", seeds, deterministic=True), returns[p]
        )


def test_seeds_per_member_and_reuse_of_one_env() -> None:
    pop = ff_population("CartPole-v1", 3, seed=1, scale=3.0)
    grid = [[1, 2], [3, 4], [5, 6]]
    env = make_env("CartPole-v1", 6)
    returns, _ = rollout(pop, env, grid, deterministic=True)
    again, _ = rollout(pop, env, grid, deterministic=True)
    torch.testing.assert_close(returns, again)
    for p, row in enumerate(grid):
        own = evaluate_module(pop.export(p), "CartPole-v1", row, deterministic=True)
        torch.testing.assert_close(returns[p], own)
    with pytest.raises(ValueError, match="holds 6 environments, this rollout needs 9"):
        rollout(pop, env, [1, 2, 3], deterministic=True)
    with pytest.raises(ValueError, match=r"seeds has shape \(2, 2\): expected \[E\]"):
        rollout(pop, "cartpole", [[1, 2], [3, 4]], deterministic=True)


def test_sampling_is_reproducible_with_a_generator() -> None:
    pop = ff_population("Acrobot-v1", 4, seed=2)
    seeds = [1, 2, 3]

    def run(seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return rollout(pop, "acrobot", seeds, generator=g)[0]

    torch.testing.assert_close(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    with pytest.raises(ValueError, match="needs generator="):
        rollout(pop, "acrobot", seeds)
    one = pop.export(0)
    torch.testing.assert_close(
        evaluate_module(one, "acrobot", seeds), evaluate_module(one, "acrobot", seeds)
    )


def test_select_actions_samples_the_softmax() -> None:
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    logits = probs.log().expand(20000, 3, 3)
    out = torch.empty(20000, 3, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    select_actions(logits, deterministic=False, generator=g, out=out)
    freq = torch.stack([torch.bincount(out[:, i], minlength=3) for i in range(3)]).float() / 20000
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    select_actions(logits, deterministic=True, generator=None, out=out)
    assert (out == torch.tensor([1, 2, 0])).all()


class FeatureProbe(nn.Module):
    """Pushes right iff its 5th input (the first extra feature) is positive; records inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.clone())
        return torch.stack([-x[:, 4], x[:, 4]], dim=1)


def test_evaluate_module_appends_extra_features_per_episode() -> None:
    probe = FeatureProbe()
    feats = torch.tensor([[1.0, 0.5], [-1.0, -0.25]])
    returns = evaluate_module(probe, "cartpole", [7, 8], extra_features=feats, deterministic=True)
    assert returns.shape == (2,)
    first = probe.seen[0]
    assert first.shape == (2, 6)
    torch.testing.assert_close(first[:, 4:], feats)
    torch.testing.assert_close(first[:, :4], make_env("cartpole", 2).reset([7, 8]))
    # constant pushing one way ends the episode early, the same as Gymnasium's
    env = gym.make("CartPole-v1")
    for e, (seed, action) in enumerate([(7, 1), (8, 0)]):
        env.reset(seed=seed)
        steps = 0
        while True:
            steps += 1
            _, _, term, trunc, _ = env.step(action)
            if term or trunc:
                break
        assert returns[e] == steps
    with pytest.raises(
        ValueError, match=r"takes 4 inputs but observations have 4 values and extra_features 2"
    ):
        pop = ff_population("CartPole-v1", 2)
        rollout(pop, "cartpole", [1, 2], extra_features=feats, deterministic=True)
    with pytest.raises(ValueError, match=r"extra_features has shape \(3, 2\)"):
        evaluate_module(probe, "cartpole", [7, 8], extra_features=torch.zeros(3, 2))


def test_env_return_fitness_is_minus_the_mean_return() -> None:
    pop = ff_population("CartPole-v1", 6, scale=3.0)
    fit = EnvReturnFitness("cartpole", episodes=3, seed=4)
    f0 = fit(pop, 0, torch.Generator())
    assert f0.shape == (6,)
    assert fit.last_returns is not None and fit.last_returns.shape == (6, 3)
    returns, _ = rollout(pop, "cartpole", fit.seeds_for(0), deterministic=True)
    torch.testing.assert_close(f0, -returns.mean(dim=1))
    assert fit.seeds_for(0) == EnvReturnFitness("cartpole", 3, seed=4).seeds_for(0)
    assert fit.seeds_for(0) != fit.seeds_for(1)
    fixed = EnvReturnFitness("cartpole", seeds=[1, 2])
    assert fixed.episodes == 2 and fixed.seeds_for(5) == [1, 2]


def test_env_return_fitness_drives_evolve() -> None:
    pop = ff_population("CartPole-v1", 16, seed=5)
    ga = GA(pop, seed=0)
    fit = EnvReturnFitness("CartPole-v1", episodes=2)
    result = evolve(pop, ga, fit, max_generations=3, checkpoint_path=None, seed=0)
    assert len(result.history) >= 1 and result.best is not None
    best = result.history[-1]["best_fitness"]
    assert best <= -8.0, "fitness is minus a CartPole return (>= 8 steps)"


def test_module_docstring_example_runs() -> None:
    doc = hbm_ne.envs.__doc__ or ""
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert blocks, "the hbm_ne.envs docstring shows usage"
    for block in blocks:
        exec(compile(block, "hbm_ne.envs docstring", "exec"), {})
