"""Env-return fitness with the lab's transfer modes, following lineages (hbm_ne.continual)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hbm_ne import ES, GA, BatchedFeedforward, BatchedRecurrent, ContinualEnvFitness, evolve_env
from hbm_ne.envs import EnvReturnFitness


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _craft(pop: BatchedFeedforward | BatchedRecurrent) -> None:
    """Four distinct hand-made policies: always right, push with theta_dot, always left,
    push with theta + theta_dot (balances for long). One hidden unit reads `v . obs`; the
    logit margin is `5 * tanh(...) + bias`."""
    pop.params.zero_()
    views = pop.views()
    first = "input" if isinstance(pop, BatchedRecurrent) else "hidden.0"
    w_in, w_out, b_out = views[f"{first}.weight"], views["output.weight"], views["output.bias"]
    reads = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 1]], dtype=pop.dtype)
    w_in[:, 0, :] = reads
    w_out[:, 1, 0] = 5.0
    b_out[:, 1] = torch.tensor([10.0, 0.0, -10.0, 0.0])


def feedforward(p: int = 4, seed: int = 1) -> BatchedFeedforward:
    pop = BatchedFeedforward(4, 2, p, (8,), sigma_init=0.1, generator=gen(seed))
    if p == 4:
        _craft(pop)
    return pop


def recurrent(p: int = 4, seed: int = 1) -> BatchedRecurrent:
    pop = BatchedRecurrent(4, 2, p, 8, sigma_init=0.1, generator=gen(seed))
    if p == 4:
        _craft(pop)
    return pop


# a selection that permutes and duplicates: slot i gets parent PARENTS[i]
PARENTS = torch.tensor([2, 2, 0, 3])


def _copy(pop: BatchedFeedforward | BatchedRecurrent) -> BatchedFeedforward | BatchedRecurrent:
    twin = recurrent() if isinstance(pop, BatchedRecurrent) else feedforward()
    twin.load_state_dict(pop.state_dict())
    twin.carried_state = None
    return twin


@pytest.mark.parametrize("kind", ["feedforward", "recurrent"])
def test_saved_episode_follows_the_lineage_through_selection(
    kind: str, one_torch_thread: None
) -> None:
    pop = recurrent() if kind == "recurrent" else feedforward()
    mem = kind == "recurrent"
    fit = ContinualEnvFitness(
        "cartpole", 2, steps_per_generation=3, env_transfer=True, mem_transfer=mem, seeds=[3, 4]
    )
    fit(pop, 0)
    before = fit.state(pop)
    assert before is not None
    assert torch.equal(before["steps"], torch.full((4, 2), 3.0, dtype=torch.float64))
    # the parents' saved episodes differ, so playing a stranger's episode would show
    assert not torch.equal(before["obs"][0], before["obs"][2])
    assert not torch.equal(before["obs"][2], before["obs"][3])
    saved = pop.carried_state.clone()
    pop.select_(PARENTS)
    assert torch.equal(pop.carried_state, saved[PARENTS])

    f1 = fit(pop, 1)
    after = fit.state(pop)
    assert after is not None
    assert torch.equal(after["steps"], torch.full((4, 2), 6.0, dtype=torch.float64))
    assert torch.equal(fit.last_returns, torch.full((4, 2), 3.0, dtype=torch.float64))
    assert torch.equal(f1, torch.full((4,), -3.0, dtype=torch.float64))
    # reference: each (selected) member plays its episodes 6 steps straight from the start
    ref_pop = _copy(pop)
    ref = ContinualEnvFitness(
        "cartpole", 2, steps_per_generation=6, env_transfer=True, mem_transfer=mem, seeds=[3, 4]
    )
    ref(ref_pop, 0)
    expected = ref.state(ref_pop)
    assert expected is not None
    assert torch.equal(after["obs"], expected["obs"])
    assert torch.equal(after["env_state"], expected["env_state"])
    assert torch.equal(after["episode_return"], expected["episode_return"])
    if mem:
        assert after["hidden"].abs().sum() > 0
        assert torch.equal(after["hidden"], expected["hidden"])


def test_without_env_transfer_every_generation_restarts(one_torch_thread: None) -> None:
    pop = feedforward()
    fit = ContinualEnvFitness("cartpole", 2, steps_per_generation=4, seeds=[3, 4])
    fit(pop, 0)
    assert pop.carried_state is None
    obs_after_first = fit._env.obs.clone()  # type: ignore[union-attr]
    fit(pop, 1)
    assert torch.equal(fit.last_steps, torch.full((4, 2), 4))
    assert torch.equal(fit._env.obs, obs_after_first)  # type: ignore[union-attr]


def test_ended_episodes_restart_and_report_their_return(one_torch_thread: None) -> None:
    pop = feedforward()
    fit = ContinualEnvFitness("cartpole", 2, steps_per_generation=60, env_transfer=True)
    fit(pop, 0)
    done = ~torch.isnan(fit.last_completed)
    assert done[0].all() and done[2].all() and not done[3].any()
    state = fit.state(pop)
    assert state is not None
    # ended episodes start fresh next generation; running ones keep their step count
    assert torch.all(state["steps"][done] == 0)
    assert torch.all(state["steps"][~done] == 60)
    # CartPole pays 1 per step: a finished episode's return is its length (< the budget)
    assert torch.all(fit.last_completed[done] < 60)
    assert torch.equal(fit.last_returns[done], fit.last_completed[done])
    running = state["steps"].clone()
    fit(pop, 1)
    state = fit.state(pop)
    assert state is not None
    survived = ~torch.isnan(fit.last_completed) | (state["steps"] > 0)
    assert survived.all()
    still = (~done) & (state["steps"] > 0)
    assert torch.all(state["steps"][still] == running[still] + 60)


def test_fit_transfer_accumulates_along_the_lineage(one_torch_thread: None) -> None:
    pop = feedforward(seed=3)
    total = ContinualEnvFitness("cartpole", 2, fit_transfer=True, seeds=[7, 8])
    f0 = total(pop, 0)
    r0 = total.last_returns.mean(1)
    assert torch.equal(f0, -r0)
    assert not torch.equal(r0[PARENTS], r0)  # the permutation matters
    pop.select_(PARENTS)
    mean_pop = _copy(pop)
    mean_pop.carried_state = pop.carried_state.clone()
    f1 = total(pop, 1)
    r1 = total.last_returns.mean(1)
    assert torch.equal(f1, -(r0[PARENTS] + r1))
    mean = ContinualEnvFitness("cartpole", 2, fit_transfer=True, fit_reduction="mean", seeds=[7, 8])
    assert torch.equal(mean(mean_pop, 1), -(r0[PARENTS] + r1) / 2)


def test_plain_mode_equals_env_return_fitness(one_torch_thread: None) -> None:
    pop = feedforward(p=6, seed=4)
    ours = ContinualEnvFitness("cartpole", 3, seed=11)(pop, 2)
    theirs = EnvReturnFitness("cartpole", 3, seed=11)(pop, 2)
    assert torch.equal(ours.float(), theirs)


def test_refusals(one_torch_thread: None) -> None:
    with pytest.raises(ValueError, match="recurrent"):
        ContinualEnvFitness("cartpole", mem_transfer=True)(feedforward(), 0)
    with pytest.raises(ValueError, match="steps_per_generation"):
        ContinualEnvFitness("cartpole", steps_per_generation=501)(feedforward(), 0)
    pop = feedforward()
    pop.carried_state = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="carried_state"):
        ContinualEnvFitness("cartpole", fit_transfer=True)(pop, 0)


def _run(
    path: Path, generations: int, pop: BatchedRecurrent
) -> tuple[BatchedRecurrent, list[float]]:
    fit = ContinualEnvFitness(
        "cartpole",
        2,
        steps_per_generation=30,
        env_transfer=True,
        mem_transfer=True,
        fit_transfer=True,
        deterministic=False,
    )
    result = evolve_env(
        pop, GA(pop, seed=9), fit, max_generations=generations, checkpoint_path=path, seed=4
    )
    return pop, result.fitness_history


def test_resume_is_bitwise(tmp_path: Path, one_torch_thread: None) -> None:
    straight, hist = _run(tmp_path / "a.pt", 6, recurrent(p=8))
    _run(tmp_path / "b.pt", 3, recurrent(p=8))
    resumed, hist_b = _run(tmp_path / "b.pt", 6, recurrent(p=8))
    assert len(hist) == 6
    assert hist_b == hist
    assert torch.equal(resumed.params, straight.params)
    assert straight.carried_state is not None
    assert torch.equal(resumed.carried_state, straight.carried_state)
    # a run with other transfer settings refuses the checkpoint
    other = ContinualEnvFitness("cartpole", 2, steps_per_generation=30)
    pop = recurrent(p=8)
    with pytest.raises(ValueError, match="continual_env_fitness"):
        evolve_env(
            pop,
            GA(pop, seed=9),
            other,
            max_generations=6,
            checkpoint_path=tmp_path / "b.pt",
            seed=4,
        )


def test_ga_improves_cartpole_returns(one_torch_thread: None) -> None:
    pop = BatchedFeedforward(4, 2, 24, (8,), sigma_init=0.3, adaptive=False, generator=gen(2))
    fit = ContinualEnvFitness("cartpole", 2, seeds=[0, 1])
    result = evolve_env(pop, GA(pop, seed=1), fit, max_generations=8, seed=0)
    first, last = result.fitness_history[0], result.fitness_history[-1]
    assert last < first  # fitness = -return: lower is better
    assert result.history[-1]["train_loss"] == last
    assert result.samples_seen > 0


def test_es_has_no_lineage_so_accumulation_restarts(one_torch_thread: None) -> None:
    pop = BatchedFeedforward(4, 2, 8, (8,), generator=gen(3))
    fit = ContinualEnvFitness("cartpole", 1, fit_transfer=True, seeds=[5])
    evolve_env(pop, ES(pop, method="openai", noise_std=0.05, seed=2), fit, max_generations=3)
    state = fit.state(pop)
    assert state is not None
    assert torch.equal(state["generations"], torch.ones(8, dtype=torch.float64))
