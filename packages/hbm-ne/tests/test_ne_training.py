from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hbm_ne import (
    CMAES,
    ES,
    GA,
    BatchedFeedforward,
    BatchedRecurrent,
    CheckpointError,
    CheckpointInfo,
    EpisodeData,
    Progress,
    RecurrentMLP,
    SupervisedFitness,
    checkpoint_info,
    evaluate,
    evolve,
    train_supervised,
)
from ne_helpers import teacher_data


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make(kind: str = "ga", p: int = 16) -> tuple[BatchedFeedforward, GA | ES | CMAES]:
    pop = BatchedFeedforward(4, 2, p, (8,), sigma_init=0.05, generator=gen(1))
    if kind == "ga":
        return pop, GA(pop, seed=2)
    if kind == "es":
        return pop, ES(pop, method="openai", noise_std=0.05, seed=2)
    return pop, CMAES(pop, sigma0=0.1, seed=2)


@pytest.mark.parametrize("kind", ["ga", "es", "cmaes"])
def test_resume_is_bitwise_identical(tmp_path: Path, kind: str) -> None:
    x, y, _ = teacher_data(300)
    data = (x[:200], y[:200])
    test = (x[200:], y[200:])
    kw = dict(
        batch_size=64, eval_every=2, seed=3, checkpoint_every=None, checkpoint_every_seconds=None
    )

    pop, algo = make(kind)
    full = train_supervised(pop, data, test, algo, max_generations=7, **kw)  # type: ignore[arg-type]

    ckpt = tmp_path / "run.pt"
    pop1, algo1 = make(kind)
    train_supervised(pop1, data, test, algo1, max_generations=4, checkpoint_path=ckpt, **kw)  # type: ignore[arg-type]
    assert ckpt.exists()
    pop2, algo2 = make(kind)  # a fresh process would rebuild exactly this
    resumed = train_supervised(  # type: ignore[arg-type]
        pop2, data, test, algo2, max_generations=7, checkpoint_path=ckpt, **kw
    )
    assert torch.equal(pop.params, pop2.params)
    assert pop.sigma is not None and pop2.sigma is not None
    assert torch.equal(pop.sigma, pop2.sigma)

    def strip(h: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        return [{k: v for k, v in r.items() if k != "elapsed"} for r in h]

    assert strip(full.history) == strip(resumed.history)
    assert [r["generation"] for r in full.history] == [0, 2, 4, 6]
    assert full.generations == resumed.generations == 7
    assert torch.equal(full.best_params, resumed.best_params)
    assert full.resumed_from is None and resumed.resumed_from == 4
    assert resumed.checkpoint_time is not None and full.checkpoint_time is None
    assert full.fitness_history == resumed.fitness_history and len(full.fitness_history) == 7


def test_corrupt_or_foreign_checkpoint_raises_and_is_kept(tmp_path: Path) -> None:
    x, y, _ = teacher_data(100)
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    pop, algo = make()
    with pytest.raises(CheckpointError, match=str(ckpt)):
        train_supervised(pop, (x, y), None, algo, max_generations=2, checkpoint_path=ckpt)
    assert ckpt.read_bytes() == b"not a checkpoint"

    torch.save({"format": "something-else"}, ckpt)
    with pytest.raises(CheckpointError, match="format"):
        train_supervised(pop, (x, y), None, algo, max_generations=2, checkpoint_path=ckpt)

    # a real checkpoint of another architecture is refused too, and not overwritten
    ckpt.unlink()
    train_supervised(pop, (x, y), None, algo, max_generations=2, checkpoint_path=ckpt)
    before = ckpt.read_bytes()
    other = BatchedFeedforward(4, 2, 16, (9,), generator=gen())
    with pytest.raises(CheckpointError, match=r"fingerprint\.hbm_ne\.population\.hidden_sizes"):
        train_supervised(other, (x, y), None, GA(other), max_generations=3, checkpoint_path=ckpt)
    assert ckpt.read_bytes() == before
    assert issubclass(CheckpointError, ValueError)
    assert not list(tmp_path.glob("*.tmp"))


def test_budgets_callbacks_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    x, y, _ = teacher_data(100)
    pop, algo = make()
    seen: list[Progress] = []

    def stop_at_two(p: Progress) -> bool:
        seen.append(p)
        return p.step >= 2

    with caplog.at_level(logging.INFO, logger="hbm_ne"):
        res = train_supervised(
            pop, (x, y), (x, y), algo, max_generations=100, callbacks=[stop_at_two], eval_every=1
        )
    assert res.stop_reason == "callback" and res.generations == 3
    assert [p.step for p in seen] == [0, 1, 2]
    assert all(p.evaluated and p.test_ce is not None for p in seen)
    assert [p.samples_seen for p in seen] == [100 * 16, 200 * 16, 300 * 16]
    assert [p.epoch for p in seen] == [1.0, 2.0, 3.0]
    for p, row in zip(seen, res.history, strict=True):
        assert (p.train_loss, p.test_ce, p.test_f1) == (
            row["train_loss"],
            row["test_ce"],
            row["test_f1"],
        )
    assert any("generation 0" in r.message for r in caplog.records)
    res = train_supervised(pop, (x, y), None, algo, max_time=0.3)
    assert res.stop_reason == "max_time" and res.elapsed >= 0.3
    # the last row describes the returned model, although it is off the 10-generation schedule
    assert res.history[-1]["generation"] == res.generations - 1
    assert res.history[-1]["test_ce"] is None
    with pytest.raises(ValueError, match="budget"):
        train_supervised(pop, (x, y), None, algo)
    with pytest.raises(ValueError, match="features"):
        train_supervised(pop, (torch.zeros(5, 3), torch.zeros(5)), None, algo, max_generations=1)


def test_history_reports_train_best_member_before_selection() -> None:
    x, y, _ = teacher_data(200)
    pop, algo = make()
    res = train_supervised(pop, (x, y), (x, y), algo, max_generations=3, eval_every=1)
    for row in res.history:
        assert set(row) >= {
            "generation",
            "elapsed",
            "best_fitness",
            "mean_fitness",
            "test_ce",
            "test_f1",
        }
        # full-batch training on the test set: the test CE of the train-best member IS its fitness
        assert abs(row["test_ce"] - row["best_fitness"]) < 1e-5
        assert row["best_fitness"] <= row["mean_fitness"]
    assert res.best is not None
    ce = F.cross_entropy(res.best(x), y).item()
    assert abs(ce - res.history[-1]["best_fitness"]) < 1e-5


@pytest.mark.parametrize("kind", ["ga", "es", "cmaes"])
def test_algorithms_approach_the_teacher(kind: str) -> None:
    x, y, teacher = teacher_data(1000, scale=4.0, seed=1)
    with torch.no_grad():
        teacher_ce = F.cross_entropy(teacher(x), y).item()
    pop = BatchedFeedforward(4, 2, 32, (16,), sigma_init=0.05, generator=gen(5))
    start = float(SupervisedFitness(EpisodeData.from_arrays(x, y))(pop, 0, gen()).min())
    if kind == "ga":
        algo: GA | ES | CMAES = GA(pop, seed=1)
    elif kind == "es":
        algo = ES(pop, method="openai", noise_std=0.05, learning_rate=0.03, seed=1)
    else:
        algo = CMAES(pop, sigma0=0.2, diagonal=True, seed=1)
    res = train_supervised(pop, (x, y), None, algo, max_generations=150, eval_every=50)
    final = res.history[-1]["best_fitness"]
    gap_start, gap_end = start - teacher_ce, final - teacher_ce
    assert gap_end < 0.35 * gap_start, (kind, start, final, teacher_ce)
    assert final < teacher_ce + 0.1


@pytest.mark.parametrize("mode", ["episode", "session", "generation"])
def test_recurrent_training_modes(mode: str) -> None:
    g = gen(3)
    lengths = [6, 4, 5, 7, 3, 5]
    n = sum(lengths)
    obs = torch.randn(n, 3, generator=g)
    act = (obs[:, 0] > 0).long()
    data = EpisodeData.from_arrays(obs, act, lengths, sessions=[0, 0, 0, 1, 1, 1])
    pop = BatchedRecurrent(3, 2, 12, 8, kind="trainable", sigma_init=0.05, generator=gen(4))
    res = train_supervised(
        pop, data, data, GA(pop), max_generations=25, eval_every=5, state_mode=mode, batch_size=2
    )
    assert res.history[-1]["best_fitness"] < res.history[0]["best_fitness"]
    assert (pop.carried_state is not None) == (mode == "generation")
    if mode == "generation":
        assert pop.carried_state is not None and pop.carried_state.shape == (12, 8)


def test_generation_mode_state_follows_lineage() -> None:
    lengths = [5, 5]
    obs = torch.randn(10, 3, generator=gen(1))
    data = EpisodeData.from_arrays(obs, torch.zeros(10, dtype=torch.long), lengths)
    pop = BatchedRecurrent(3, 2, 4, 6, kind="trainable", generator=gen(2))
    fit = SupervisedFitness(data, state_mode="generation")
    f = fit(pop, 0, gen())
    assert pop.carried_state is not None
    state = pop.carried_state.clone()
    ga = GA(pop, elitism=1)
    order = torch.argsort(f)
    ga.tell(f)
    # slot 0 is the best member (elite): it carries *its own* state, not slot 0's old one
    assert torch.equal(pop.carried_state[0], state[order[0]])
    # the next evaluation starts from the carried state: different from a fresh start
    f_carry = fit(pop, 1, gen())
    f_fresh = SupervisedFitness(data, state_mode="session")(pop, 1, gen())
    assert not torch.allclose(f_carry, f_fresh)


def test_evolve_with_a_custom_fitness() -> None:
    from hbm_ne import Population

    pop = Population(torch.randn(20, 5, generator=gen()), sigma_init=0.1)
    target = torch.arange(5.0)

    def fitness(p, generation, generator):  # type: ignore[no-untyped-def]
        return ((p.params - target) ** 2).sum(1)

    res = evolve(pop, GA(pop), fitness, max_generations=200, eval_every=50)
    assert res.best is None  # raw vectors have no module form
    assert float(((res.best_params - target) ** 2).sum()) < 0.05


class Killed(Exception):
    pass


def test_killed_run_resumes_from_its_last_periodic_checkpoint(tmp_path: Path) -> None:
    x, y, _ = teacher_data(200)
    kw = dict(batch_size=50, eval_every=3, seed=1, checkpoint_every_seconds=None)
    pop, algo = make("ga")
    full = train_supervised(pop, (x, y), (x, y), algo, max_generations=9, **kw)  # type: ignore[arg-type]

    def kill_at_five(p: Progress) -> None:
        if p.step == 4:  # after the fifth generation, before its checkpoint
            raise Killed

    ckpt = tmp_path / "ck.pt"
    periodic = dict(max_generations=9, checkpoint_path=ckpt, checkpoint_every=2, **kw)
    pop1, algo1 = make("ga")
    with pytest.raises(Killed):
        train_supervised(pop1, (x, y), (x, y), algo1, callbacks=[kill_at_five], **periodic)  # type: ignore[arg-type]
    from hbm_ne import load_checkpoint

    assert load_checkpoint(ckpt)["generation"] == 4
    pop2, algo2 = make("ga")
    resumed = train_supervised(pop2, (x, y), (x, y), algo2, **periodic)  # type: ignore[arg-type]
    assert torch.equal(pop.params, pop2.params)
    strip = lambda h: [{k: v for k, v in r.items() if k != "elapsed"} for r in h]  # noqa: E731
    assert strip(full.history) == strip(resumed.history)


def test_foreign_checkpoint_is_refused_with_the_field_named(tmp_path: Path) -> None:
    x, y, _ = teacher_data(100)
    ckpt = tmp_path / "run.pt"
    mine = {"config": {"data": {"subject": "sim01"}}, "data_hash": "abc"}
    pop, algo = make()
    train_supervised(pop, (x, y), None, algo, max_generations=2, seed=1, fingerprint=mine,
                     checkpoint_path=ckpt)  # fmt: skip
    before = ckpt.read_bytes()
    assert checkpoint_info(ckpt).fingerprint["config"] == mine["config"]
    pop, algo = make()
    with pytest.raises(CheckpointError, match=r"run\.pt.*fingerprint\.hbm_ne\.seed is 1 in the"):
        train_supervised(pop, (x, y), None, algo, max_generations=4, seed=2, fingerprint=mine,
                         checkpoint_path=ckpt)  # fmt: skip
    other = {"config": {"data": {"subject": "sim02"}}, "data_hash": "abc"}
    with pytest.raises(CheckpointError) as err:
        train_supervised(pop, (x, y), None, algo, max_generations=4, seed=1, fingerprint=other,
                         checkpoint_path=ckpt)  # fmt: skip
    assert "fingerprint.config.data.subject is 'sim01' in the checkpoint, 'sim02' now" in str(
        err.value
    )
    with pytest.raises(CheckpointError, match=r"fingerprint\.hbm_ne\.train_data\.obs_sum"):
        train_supervised(pop, (x + 1, y), None, algo, max_generations=4, seed=1,
                         fingerprint=mine, checkpoint_path=ckpt)  # fmt: skip
    pop2 = BatchedFeedforward(4, 2, 16, (8,), sigma_init=0.05, generator=gen(1))
    with pytest.raises(CheckpointError, match=r"fingerprint\.hbm_ne\.algorithm\.survival"):
        train_supervised(pop2, (x, y), None, GA(pop2, survival=0.25, seed=2), max_generations=4,
                         seed=1, fingerprint=mine, checkpoint_path=ckpt)  # fmt: skip
    assert ckpt.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    pop, algo = make()
    again = train_supervised(pop, (x, y), None, algo, max_generations=4, seed=1,
                             fingerprint=mine, checkpoint_path=ckpt)  # fmt: skip
    assert again.resumed_from == 2 and again.generations == 4


def test_resume_false_starts_afresh_and_replaces_the_checkpoint(tmp_path: Path) -> None:
    x, y, _ = teacher_data(100)
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"something else")
    pop, algo = make()
    ref = train_supervised(pop, (x, y), (x, y), algo, max_generations=3, eval_every=1, seed=5)
    pop, algo = make()
    res = train_supervised(pop, (x, y), (x, y), algo, max_generations=3, eval_every=1, seed=5,
                           checkpoint_path=ckpt, resume=False)  # fmt: skip
    assert res.resumed_from is None and checkpoint_info(ckpt).step == 3
    strip = lambda h: [{k: v for k, v in r.items() if k != "elapsed"} for r in h]  # noqa: E731
    assert strip(res.history) == strip(ref.history)
    pop, algo = make()
    res = train_supervised(pop, (x, y), None, algo, max_generations=2, seed=6,
                           checkpoint_path=ckpt, resume=False)  # fmt: skip
    assert checkpoint_info(ckpt).fingerprint["hbm_ne"]["seed"] == 6


def test_callback_stop_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    x, y, _ = teacher_data(200)
    kw = dict(batch_size=50, eval_every=3, seed=2, checkpoint_every_seconds=None)
    pop, algo = make()
    full = train_supervised(pop, (x, y), (x, y), algo, max_generations=8, **kw)  # type: ignore[arg-type]
    ckpt = tmp_path / "ck.pt"
    pop1, algo1 = make()
    stopped = train_supervised(pop1, (x, y), (x, y), algo1, max_generations=8, checkpoint_path=ckpt,
                               callbacks=[lambda p: p.step == 4], **kw)  # type: ignore[arg-type]  # fmt: skip
    assert stopped.stop_reason == "callback" and stopped.generations == 5
    assert [r["generation"] for r in stopped.history] == [0, 3, 4]  # closing row: generation 4
    assert checkpoint_info(ckpt).step == 5
    before = checkpoint_info(ckpt).elapsed
    pop2, algo2 = make()
    resumed = train_supervised(pop2, (x, y), (x, y), algo2, max_generations=8,
                               checkpoint_path=ckpt, **kw)  # type: ignore[arg-type]  # fmt: skip
    assert resumed.resumed_from == 5 and resumed.stop_reason == "max_generations"
    strip = lambda h: [{k: v for k, v in r.items() if k != "elapsed"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert torch.equal(pop.params, pop2.params)
    assert resumed.elapsed > before and resumed.history[-1]["elapsed"] > before  # all processes


def test_the_design_guide_call_and_result_keys(tmp_path: Path) -> None:
    x, y, _ = teacher_data(300)
    for name in ("ga", "es", "cmaes"):
        pop = BatchedFeedforward(4, 2, 16, (8,), sigma_init=0.05, generator=gen(1))
        results = train_supervised(
            population=pop,
            train_data=(x[:200], y[:200]),
            test_data=(x[200:], y[200:]),
            optimizer=name,
            max_time=0.5,
            eval_interval=0.1,
            checkpoint_path=tmp_path / f"{name}.pt",
            logger=None,
        )
        assert results.stop_reason == "max_time"
        assert len(results["fitness_history"]) == results["final_generation"] > 0
        assert min(results["fitness_history"]) <= results["fitness_history"][0]
        assert results["test_loss_history"][-1] == results.history[-1]["test_ce"]
        assert results["checkpoint_path"] == tmp_path / f"{name}.pt"
        results["checkpoint_path"] = str(results["checkpoint_path"])  # as the guide does
        assert isinstance(results.checkpoint_path, str)
        assert type(checkpoint_info(tmp_path / f"{name}.pt")) is CheckpointInfo
    # section 6.3: train data only, positional
    pop = BatchedFeedforward(4, 2, 8, (8,), generator=gen(2))
    results = train_supervised(pop, (x, y), optimizer="ga", max_time=0.2)
    assert results["fitness_history"][-1] == results.history[-1]["best_fitness"]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_supervised(pop, (x, y), optimizer="pso", max_generations=1)


def test_last_row_equals_evaluate_of_the_returned_model() -> None:
    x, y, _ = teacher_data(300)
    lengths = [30] * 10
    train = EpisodeData.from_arrays(x[:150], y[:150], lengths[:5])
    test = EpisodeData.from_arrays(x[150:], y[150:], lengths[5:])
    pop = BatchedRecurrent(4, 2, 8, 6, kind="trainable", sigma_init=0.05, generator=gen(4))
    res = train_supervised(pop, train, test, "ga", max_generations=5, eval_every=3,
                           f1_samples=4, seed=7)  # fmt: skip
    last = res.history[-1]
    assert last["generation"] == 4 and res.model is not None
    m = evaluate(res.model, test, f1_samples=4, seed=7, step=4)
    # the same function on the same inputs: exactly the row's values
    assert (m["ce"], m["accuracy"], m["f1"]) == (
        last["test_ce"],
        last["test_accuracy"],
        last["test_f1"],
    )
    assert evaluate(res.model, test, f1_samples=4, seed=7, step=3)["f1"] != last["test_f1"]
    assert type(res.model) is RecurrentMLP and res.model.kind == "trainable"


@pytest.mark.parametrize("recurrent", [False, True])
def test_float64_population_trains_and_evaluates(recurrent: bool) -> None:
    x, y, _ = teacher_data(120)
    data = EpisodeData.from_arrays(x, y, [30] * 4)
    pop: BatchedFeedforward | BatchedRecurrent
    if recurrent:
        pop = BatchedRecurrent(4, 2, 6, 5, generator=gen(1), dtype=torch.float64)
    else:
        pop = BatchedFeedforward(4, 2, 6, (5,), generator=gen(1), dtype=torch.float64)
    res = train_supervised(pop, data, data, "ga", max_generations=2, eval_every=1)
    assert res.model is not None and next(res.model.parameters()).dtype == torch.float64
    assert all(r["test_ce"] is not None and r["test_ce"] > 0 for r in res.history)


def test_evaluate_takes_a_plain_tuple() -> None:
    x, y, _ = teacher_data(200)
    pop = BatchedFeedforward(4, 2, 4, (6,), generator=gen(3))
    module = pop.export(1)
    a = evaluate(module, (x, y), f1_samples=3, seed=2, step=9)
    b = evaluate(module, EpisodeData.from_arrays(x, y), f1_samples=3, seed=2, step=9)
    assert a == b and 0 < a["f1"] < 1
    with torch.no_grad():
        assert a["ce"] == pytest.approx(F.cross_entropy(module(x), y).item(), rel=1e-6)


def test_rows_at_generation_zero_and_the_end_without_a_count_cadence() -> None:
    x, y, _ = teacher_data(100)
    pop, algo = make()
    res = train_supervised(pop, (x, y), (x, y), algo, max_generations=6, eval_every=None)
    assert [r["generation"] for r in res.history] == [0, 5]
    assert res.samples_seen == 6 * 100 * 16 and res.history[-1]["samples_seen"] == res.samples_seen
