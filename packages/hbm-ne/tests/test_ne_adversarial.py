"""Adversarial imitation: generators against evolved or Adam-trained discriminators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hbm_ne import (
    ES,
    GA,
    AdversarialFitness,
    BatchedFeedforward,
    BatchedRecurrent,
    CheckpointError,
    EpisodeData,
    Population,
    Progress,
    adversarial,
    evolve,
    evolve_adversarial,
)
from hbm_ne.adversarial import episode_windows, step_features
from hbm_ne.envs import EnvReturnFitness, make_env, record_rollout, rollout
from hbm_ne.training import load_checkpoint
from ne_helpers import assert_close

SEEDS = [100, 101, 102]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def scripted_person(seeds: list[int], max_steps: int | None = None) -> EpisodeData:
    """A simulated subject: the linear CartPole controller `theta + 0.5 theta_dot > 0` played
    on `seeds` in hbm_ne's CartPole (Gymnasium's, bit for bit)."""
    env = make_env("cartpole", len(seeds))
    obs = env.reset(seeds)
    seen, taken = [], []
    while not env.all_done() and (max_steps is None or env.elapsed_steps < max_steps):
        action = (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()
        seen.append(obs.clone())
        taken.append(action)
        env.step(action)
    lengths = env.lengths.tolist()
    o, a = torch.stack(seen, 1), torch.stack(taken, 1)
    return EpisodeData.from_arrays(
        torch.cat([o[i, :n] for i, n in enumerate(lengths)]),
        torch.cat([a[i, :n] for i, n in enumerate(lengths)]),
        lengths,
    )


@pytest.fixture(scope="module")
def person() -> EpisodeData:
    return scripted_person(SEEDS, max_steps=120)


def crafted(p: int = 4, recurrent: bool = False) -> BatchedFeedforward | BatchedRecurrent:
    """Four distinct policies (always right, push with theta_dot, always left, the person's
    rule; recurrent: plus the reservoir's echo), then random members: every member plays
    differently."""
    pop: BatchedFeedforward | BatchedRecurrent
    if recurrent:
        pop = BatchedRecurrent(4, 2, p, 8, sigma_init=0.1, generator=gen(1))
    else:
        pop = BatchedFeedforward(4, 2, p, (8,), sigma_init=0.1, generator=gen(1))
    views = pop.views()
    first = "input" if recurrent else "hidden.0"
    w_in, w_out, b_out = views[f"{first}.weight"], views["output.weight"], views["output.bias"]
    reads = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0.5]])
    for t in (w_in, views[f"{first}.bias"], w_out, b_out):
        t[:4] = 0.0
    w_in[:4, 0, :] = reads
    w_out[:4, 1, 0] = 5.0
    b_out[:4, 1] = torch.tensor([10.0, 0.0, -10.0, 0.0])
    return pop


def small_fitness(person: EpisodeData, **kw: Any) -> AdversarialFitness:
    settings: dict[str, Any] = {
        "discriminator_population_size": 8,
        "discriminator_hidden_sizes": (8,),
        "window": 4,
        "windows_per_class": 64,
        "max_episode_steps": 60,
        "discriminator_steps": 3,
        "discriminator_sigma_init": 0.1,
    }
    settings.update(kw)
    return AdversarialFitness("cartpole", person, SEEDS, **settings)


def without_elapsed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in history]


def tensors_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# -- arguments ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"discriminator": "svm"}, "discriminator must be one of"),
        ({"window": 0}, "window must be an int >= 1"),
        ({"windows_per_class": 0}, "windows_per_class"),
        ({"discriminator_steps": 0}, "discriminator_steps"),
        ({"hide_elements": (1, 4)}, r"hide_elements \[4\] out of range"),
        ({"hide_elements": (-1,)}, "out of range"),
        ({"hide_elements": (1.5,)}, "hide_elements must be integer indices"),
        ({"discriminator_population_size": 1}, "discriminator_population_size must be >= 2"),
        ({"judges": 9}, "judges"),
        ({"discriminator": "adam", "judges": 2}, "judges must be 1"),
        ({"discriminator_learning_rate": 0.0}, "discriminator_learning_rate"),
        ({"discriminator_sigma_init": -1.0}, "discriminator_sigma_init"),
        ({"max_episode_steps": 501}, r"max_episode_steps must be in \[1, 500\]"),
        ({"discriminator_hidden_sizes": (0,)}, "discriminator_hidden_sizes"),
    ],
)
def test_arguments_are_validated(person: EpisodeData, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small_fitness(person, **kwargs)


def test_data_and_population_are_validated(person: EpisodeData) -> None:
    with pytest.raises(ValueError, match="unknown environment"):
        AdversarialFitness("pong", person, SEEDS)
    with pytest.raises(ValueError, match="seeds has 2 entries, person has 3 episodes"):
        AdversarialFitness("cartpole", person, SEEDS[:2])
    pool = EpisodeData.from_arrays(person.obs, person.actions)
    with pytest.raises(ValueError, match="episode_lengths"):
        AdversarialFitness("cartpole", pool, SEEDS)
    wide = EpisodeData.from_arrays(
        torch.cat([person.obs, person.obs[:, :1]], 1), person.actions, person.episode_lengths
    )
    with pytest.raises(ValueError, match=r"person\.obs has 5 columns but CartPole-v1 .* have 4"):
        AdversarialFitness("cartpole", wide, SEEDS)
    with pytest.raises(ValueError, match=r"person\.actions go up to 3, MountainCar-v0 has 3"):
        AdversarialFitness("mountaincar", EpisodeData.from_arrays(
            person.obs[:, :2], person.actions * 3, person.episode_lengths), SEEDS)  # fmt: skip
    ok = AdversarialFitness("mountaincar", EpisodeData.from_arrays(
        person.obs[:, :2], person.actions * 2, person.episode_lengths), SEEDS)  # fmt: skip
    assert ok.input_size == 8 * (2 + 3)
    fit = small_fitness(person)
    with pytest.raises(ValueError, match="generators map 5 inputs to 2 actions"):
        fit(BatchedFeedforward(5, 2, 4), 0, gen(0))
    with pytest.raises(TypeError, match="BatchedFeedforward or BatchedRecurrent"):
        fit(Population(torch.zeros(4, 3)), 0, gen(0))


# -- windows --------------------------------------------------------------------------------
def test_windows_never_cross_episodes_and_short_episodes_are_padded() -> None:
    lengths = torch.tensor([5, 2, 7])
    t, w = 7, 3
    # feature 0 is the episode id + 1, feature 1 the step index + 1, zero past the end
    steps = torch.zeros(3, t, 2)
    for b, n in enumerate(lengths.tolist()):
        steps[b, :n, 0] = b + 1
        steps[b, :n, 1] = torch.arange(1, n + 1)
    windows, episode = episode_windows(steps, lengths, w)
    assert windows.shape == (3 + 1 + 5, w * 2)
    assert episode.tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2]
    for win, b in zip(windows.view(-1, w, 2), episode.tolist(), strict=True):
        real = win[:, 0] != 0
        assert torch.all(win[real, 0] == b + 1)  # one episode per window
        assert torch.all(torch.diff(win[real, 1]) == 1)  # consecutive steps
        if lengths[b] >= w:
            assert bool(real.all())
    # the 2-step episode gives one window: its two steps, then a zero step
    short = windows[3].view(w, 2)
    assert short.tolist() == [[2.0, 1.0], [2.0, 2.0], [0.0, 0.0]]


def test_hide_elements_zero_exactly_those_columns(person: EpisodeData) -> None:
    shown = small_fitness(person)
    hidden = small_fitness(person, hide_elements=(3, 1))
    assert hidden.hide_elements == (1, 3)
    c = 4 + 2
    a = shown.person_windows.view(-1, 4, c)
    b = hidden.person_windows.view(-1, 4, c)
    assert torch.all(b[..., [1, 3]] == 0)
    keep = [0, 2, 4, 5]
    assert torch.equal(a[..., keep], b[..., keep])
    assert bool((a[..., [1, 3]] != 0).any())
    # each step: the observation, then the one-hot action
    first = person.episode_lengths[0]  # type: ignore[index]
    assert torch.equal(a[: first - 3, 0, :4], person.obs[: first - 3])
    assert torch.equal(a[: first - 3, 0, 4:].argmax(-1), person.actions[: first - 3])
    # the discriminator module gives hidden columns no weight at all
    module = hidden.discriminator_module()
    x = hidden.person_windows[:16]
    noisy = x.clone()
    noisy.view(-1, 4, c)[..., [1, 3]] = torch.randn(16, 4, 2, generator=gen(0))
    assert torch.equal(module(x), module(noisy))


def test_step_features_zero_past_the_end() -> None:
    obs = torch.ones(2, 4, 3)
    actions = torch.ones(2, 4, dtype=torch.long)
    x = step_features(obs, actions, torch.tensor([4, 2]), 2, hide=(0,))
    assert x.shape == (2, 4, 5)
    assert torch.all(x[1, 2:] == 0) and torch.all(x[:, :, 0] == 0)
    assert x[0, 3].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]


# -- rollouts -------------------------------------------------------------------------------
@pytest.mark.parametrize("recurrent", [False, True], ids=["feedforward", "recurrent"])
def test_record_rollout_matches_rollout(recurrent: bool, one_torch_thread: None) -> None:
    pop = crafted(6, recurrent)
    returns, lengths = rollout(pop, "cartpole", SEEDS, deterministic=True)
    traj = record_rollout(pop, "cartpole", SEEDS, deterministic=True)
    assert torch.equal(traj.lengths, lengths) and torch.equal(traj.returns, returns)
    assert traj.obs.shape == (6, 3, int(lengths.max()), 4)
    env = make_env("cartpole", 3)
    assert torch.equal(traj.obs[:, :, 0], env.reset(SEEDS)[None].expand(6, -1, -1))
    real = torch.arange(traj.obs.shape[2]) < lengths[..., None]
    assert torch.all(traj.obs[~real] == 0) and torch.all(traj.actions[~real] == 0)
    if not recurrent:  # member 3 plays the person's rule: the actions follow the observations
        o = traj.obs[3][real[3]]
        assert torch.equal(traj.actions[3][real[3]], (o[:, 2] + 0.5 * o[:, 3] > 0).long())
    capped = record_rollout(pop, "cartpole", SEEDS, deterministic=True, max_steps=20)
    assert torch.equal(capped.lengths, lengths.clamp_max(20))
    assert torch.equal(capped.obs, traj.obs[:, :, :20])


def test_every_member_plays_its_own_episodes(
    person: EpisodeData, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    pop = crafted(4)
    fit = small_fitness(person, deterministic=True)
    loss = fit(pop, 0, gen(0))
    assert loss.shape == (4,) and loss.dtype == torch.float64
    assert len(set(loss.tolist())) == 4  # the lab gave every generator member 0's score
    traj = fit.last_trajectories
    assert traj is not None
    assert len({tuple(a.flatten().tolist()) for a in traj.actions}) == 4
    assert fit.last_num_samples == int(traj.lengths.sum()) // 4
    # under the (now fixed) judges, a member's score does not depend on the others
    scores = fit.score(pop)
    assert torch.equal(scores, 1 - loss)
    perm = torch.tensor([3, 0, 2, 1])
    shuffled = crafted(4)
    shuffled.params.copy_(pop.params[perm])
    assert_close(fit.score(shuffled), scores[perm], atol=1e-7, rtol=0)  # float32 tiles
    alone = BatchedFeedforward(4, 2, 1, (8,))
    alone.params.copy_(pop.params[3:4])
    assert_close(fit.score(alone), scores[3:4], atol=1e-6, rtol=0)
    monkeypatch.setattr(adversarial, "WINDOW_CHUNK", 7)  # scored in chunks: the same means
    assert_close(fit.score(pop), scores, atol=1e-7, rtol=0)


def test_recurrent_generators(person: EpisodeData, one_torch_thread: None) -> None:
    pop = crafted(4, recurrent=True)
    fit = small_fitness(person, deterministic=True)
    loss = fit(pop, 0, gen(0))
    assert len(set(loss.tolist())) == 4
    _, lengths = rollout(pop, "cartpole", SEEDS, deterministic=True)
    assert fit.last_trajectories is not None
    assert torch.equal(fit.last_trajectories.lengths, lengths.clamp_max(60))


def test_sampled_actions_come_from_the_generator(
    person: EpisodeData, one_torch_thread: None
) -> None:
    pop = BatchedFeedforward(4, 2, 4, (8,), generator=gen(2))
    a = small_fitness(person)(pop, 0, gen(5))
    b = small_fitness(person)(pop, 0, gen(5))
    c = small_fitness(person)(pop, 0, gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# -- the loop -------------------------------------------------------------------------------
def _run(
    person: EpisodeData,
    discriminator: str,
    generations: int,
    path: Path | None = None,
    stop_at: int | None = None,
    **kw: Any,
) -> tuple[Any, AdversarialFitness, BatchedFeedforward]:
    pop = BatchedFeedforward(4, 2, 8, (8,), sigma_init=0.1, generator=gen(3))
    fit = small_fitness(person, discriminator=discriminator, **kw)

    def stop(progress: Progress) -> bool:
        return stop_at is not None and progress.step == stop_at

    result = evolve_adversarial(
        pop,
        GA(pop, seed=4),
        fit,
        max_generations=generations,
        eval_every=1,
        checkpoint_path=path,
        checkpoint_every_seconds=None,
        callbacks=[stop],
        seed=7,
    )
    return result, fit, pop


@pytest.mark.parametrize("discriminator", ["ga", "es", "adam"])
def test_same_seed_gives_the_same_history(
    person: EpisodeData, discriminator: str, one_torch_thread: None
) -> None:
    a, fa, _ = _run(person, discriminator, 3)
    b, fb, _ = _run(person, discriminator, 3)
    assert without_elapsed(a.history) == without_elapsed(b.history)
    assert torch.equal(a.best_params, b.best_params)
    assert tensors_equal(fa.state_dict(), fb.state_dict())
    row = a.history[-1]
    for key in ("discriminator_loss", "discriminator_accuracy", "generated_score"):
        assert isinstance(row[key], float)
    assert fa.last_stats["generation"] == 2.0
    assert 0 <= fa.last_stats["discriminator_accuracy"] <= 1
    assert 0 < fa.last_stats["person_score"] < 1
    module = fa.discriminator_module()
    out = module(fa.person_windows[:5])
    assert out.shape == (5,)
    assert_close(torch.sigmoid(out).double(), fa.person_probability(fa.person_windows[:5]))


def test_es_and_recurrent_generators_run_in_the_loop(
    person: EpisodeData, one_torch_thread: None
) -> None:
    pop = BatchedRecurrent(4, 2, 6, 8, sigma_init=0.1, generator=gen(5))
    fit = small_fitness(person, discriminator="es", hide_elements=(0,))
    result = evolve_adversarial(pop, ES(pop), fit, max_generations=2, eval_every=1)
    assert [row["generation"] for row in result.history] == [0, 1]
    assert result.model is not None and hasattr(result.model, "forward_step")
    assert fit.last_scores is not None and fit.last_scores.shape == (6,)
    assert result.samples_seen >= 2 * 6 * 4  # environment steps (all episodes end after >= 4)


@pytest.mark.parametrize("discriminator", ["ga", "adam"])
def test_interrupted_run_resumes_bit_for_bit(
    person: EpisodeData, discriminator: str, tmp_path: Path, one_torch_thread: None
) -> None:
    full, f_full, p_full = _run(person, discriminator, 5, tmp_path / "full.pt")
    first, _, _ = _run(person, discriminator, 5, tmp_path / "cut.pt", stop_at=1)
    assert first.stop_reason == "callback" and first.generations == 2
    state = load_checkpoint(tmp_path / "cut.pt")
    assert state["fitness_state"]["config"]["discriminator"] == discriminator
    resumed, f_res, p_res = _run(person, discriminator, 5, tmp_path / "cut.pt")
    assert resumed.resumed_from == 2 and resumed.generations == 5
    assert without_elapsed(resumed.history) == without_elapsed(full.history)
    assert resumed.fitness_history == full.fitness_history
    assert torch.equal(resumed.best_params, full.best_params)
    assert torch.equal(p_res.params, p_full.params)
    assert tensors_equal(f_res.state_dict(), f_full.state_dict())


def test_foreign_fitness_state_is_refused(
    person: EpisodeData, tmp_path: Path, one_torch_thread: None
) -> None:
    path = tmp_path / "run.pt"
    _run(person, "ga", 1, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="window is 4 in the checkpoint, 5 now"):
        _run(person, "ga", 2, path, window=5)
    with pytest.raises(CheckpointError, match="discriminator is 'ga' in the checkpoint"):
        _run(person, "adam", 2, path)
    assert path.read_bytes() == before
    # the fitness refuses a foreign state on its own too (e.g. through plain `evolve`)
    other = small_fitness(person, windows_per_class=32)
    with pytest.raises(CheckpointError, match=r"windows_per_class is 64 .*, 32 now"):
        other.load_state_dict(small_fitness(person).state_dict())
    plain = tmp_path / "plain.pt"
    for fitness, match in ((small_fitness(person), None), (other, "windows_per_class")):
        pop = BatchedFeedforward(4, 2, 8, (8,), sigma_init=0.1, generator=gen(3))
        if match is None:
            evolve(pop, GA(pop, seed=4), fitness, max_generations=1, checkpoint_path=plain)
            continue
        with pytest.raises(CheckpointError, match=match):
            evolve(pop, GA(pop, seed=4), fitness, max_generations=2, checkpoint_path=plain)


def test_plain_fitness_checkpoints_hold_no_fitness_state(tmp_path: Path) -> None:
    pop = BatchedFeedforward(4, 2, 4, (8,), generator=gen(0))
    fitness = EnvReturnFitness("cartpole", episodes=1)
    evolve(pop, GA(pop), fitness, max_generations=1, checkpoint_path=tmp_path / "c.pt")
    assert "fitness_state" not in load_checkpoint(tmp_path / "c.pt")


# -- a simulated subject ----------------------------------------------------------------------
def auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(score of a positive > score of a negative), ties counting half (Mann-Whitney)."""
    d = positive[:, None].double() - negative[None, :].double()
    return float(((d > 0).double() + 0.5 * (d == 0).double()).mean())


def held_out_auc(
    params: torch.Tensor, person: EpisodeData, seeds: list[int], window: int = 8
) -> tuple[float, float]:
    """AUC of a classifier trained afresh (a small torch MLP) to tell the person's windows
    from those of the generator `params`, both playing held-out `seeds` (the generator on 8
    starts per seed, since its episodes may be short); trained on the episodes of the first
    half of the seeds, scored on the rest. Returns (AUC, the generator's mean length)."""
    generator = BatchedFeedforward(4, 2, 1, (8,))
    generator.params.copy_(params[None])
    starts = [s + 1000 * k for k in range(8) for s in seeds]
    traj = record_rollout(generator, "cartpole", starts, deterministic=True)
    lengths = torch.tensor(person.episode_lengths)
    p_obs, p_act, _ = person.padded([[i] for i in range(len(seeds))])
    p_win, p_ep = episode_windows(step_features(p_obs, p_act, lengths, 2), lengths, window)
    g_steps = step_features(traj.obs[0], traj.actions[0], traj.lengths[0], 2)
    g_win, g_ep = episode_windows(g_steps, traj.lengths[0], window)
    g_ep = g_ep % len(seeds)
    half = len(seeds) // 2
    pos, neg = p_win[p_ep < half], g_win[g_ep < half]
    x = torch.cat([pos, neg])
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    weight = torch.cat(
        [torch.full((len(pos),), 0.5 / len(pos)), torch.full((len(neg),), 0.5 / len(neg))]
    )
    mean, std = x.mean(0), x.std(0) + 1e-6
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        logits = net((x - mean) / std).squeeze(-1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        (bce * weight).sum().backward()
        optimizer.step()
    with torch.no_grad():
        score_p = net((p_win[p_ep >= half] - mean) / std).squeeze(-1)
        score_g = net((g_win[g_ep >= half] - mean) / std).squeeze(-1)
    return auc(score_p, score_g), float(traj.lengths.float().mean())


@pytest.mark.slow
@pytest.mark.parametrize(("discriminator", "generations"), [("adam", 100), ("ga", 150)])
def test_adversarial_training_moves_a_held_out_auc_toward_half(
    discriminator: str, generations: int, one_torch_thread: None
) -> None:
    """The person is the scripted CartPole controller on 8 training seeds; a fresh classifier
    on 8 held-out seeds tells it from the generation-0 best generator almost perfectly, and
    clearly less well from the final best one, which also plays longer, like the person."""
    train_seeds, test_seeds = list(range(100, 108)), list(range(200, 208))
    person, held_out = scripted_person(train_seeds), scripted_person(test_seeds)
    fitness = AdversarialFitness(
        "cartpole",
        person,
        train_seeds,
        discriminator=discriminator,
        discriminator_population_size=32,
        windows_per_class=256,
        max_episode_steps=200,
        deterministic=True,
        discriminator_sigma_init=0.1,
        discriminator_learning_rate=3e-3,
    )
    pop = BatchedFeedforward(4, 2, 64, (8,), sigma_init=0.1, generator=gen(0))
    measured: dict[int, tuple[float, float]] = {}

    def measure(best: torch.Tensor, step: int) -> dict[str, float]:
        measured[step] = held_out_auc(best, held_out, test_seeds)
        return {"held_out_auc": measured[step][0]}

    result = evolve_adversarial(
        pop, GA(pop), fitness, max_generations=generations, eval_every=None, eval_fn=measure
    )
    (auc_0, length_0), (auc_n, length_n) = measured[0], measured[generations - 1]
    assert result.history[-1]["held_out_auc"] == auc_n
    assert auc_0 > 0.94
    assert auc_n < auc_0 - 0.08, (auc_0, auc_n)
    assert length_n > 2 * length_0
