"""Validation data and the `max_samples` budget of hbm-ne's loops.

Validation rows sit next to the test ones and never change training; nothing the loop returns
depends on the test labels; `max_samples` stops on the count the history reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hbm_ne import (
    BatchedFeedforward,
    BatchedRecurrent,
    CheckpointError,
    DynamicPopulation,
    EpisodeData,
    evolve_dynamic,
    train_supervised,
)
from hbm_ne.training import VALIDATION_FIELDS
from ne_helpers import teacher_data


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Tiny batches: one intra-op thread (see conftest)."""


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def splits() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    x, y, _ = teacher_data(400, seed=5)
    return (x[:240], y[:240]), (x[240:320], y[240:320]), (x[320:], y[320:])


def untimed(history: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "elapsed" and k not in drop} for r in history]


KW: dict[str, Any] = dict(batch_size=48, eval_every=3, seed=7, checkpoint_every_seconds=None)


def run(optimizer: str = "ga", **kw: Any) -> Any:
    pop = BatchedFeedforward(4, 2, 10, (6,), sigma_init=0.05, generator=gen(1))
    return train_supervised(pop, optimizer=optimizer, **{**KW, **kw})


@pytest.mark.parametrize("optimizer", ["ga", "es", "cmaes"])
def test_validation_rows_never_change_training_and_test_labels_change_nothing_chosen(
    optimizer: str,
) -> None:
    train, test, val = splits()
    plain = run(optimizer, train_data=train, test_data=test, max_generations=7)
    with_val = run(
        optimizer, train_data=train, test_data=test, validation_data=val, max_generations=7
    )
    # test labels shuffled: the run's choices (the returned member, the validation columns)
    # must not move; only the reported test columns may
    poisoned_test = (test[0], test[1][torch.randperm(len(test[1]), generator=gen(3))])
    poisoned = run(
        optimizer, train_data=train, test_data=poisoned_test, validation_data=val, max_generations=7
    )
    assert all(set(VALIDATION_FIELDS).isdisjoint(r) for r in plain.history)
    assert all(set(VALIDATION_FIELDS) <= set(r) for r in with_val.history)
    assert untimed(with_val.history, VALIDATION_FIELDS) == untimed(plain.history)
    assert torch.equal(with_val.best_params, plain.best_params)
    assert "validation_data" in with_val.fingerprint["hbm_ne"]
    assert "validation_data" not in plain.fingerprint["hbm_ne"]

    assert torch.equal(poisoned.best_params, with_val.best_params)
    assert poisoned.fitness_history == with_val.fitness_history
    vals = [[r[k] for k in VALIDATION_FIELDS] for r in with_val.history]
    assert vals == [[r[k] for k in VALIDATION_FIELDS] for r in poisoned.history]
    assert [r["test_ce"] for r in poisoned.history] != [r["test_ce"] for r in with_val.history]


def test_validation_columns_are_the_test_evaluation_on_the_validation_episodes() -> None:
    train, test, _ = splits()
    result = run(train_data=train, test_data=test, validation_data=test, max_generations=4)
    for row in result.history:  # same member, same data, same F1 draws
        assert (row["val_loss"], row["val_accuracy"], row["val_f1"]) == (
            row["test_ce"],
            row["test_accuracy"],
            row["test_f1"],
        )


def test_recurrent_validation_runs_whole_episodes() -> None:
    x, y, _ = teacher_data(300, seed=9)
    lengths = [30] * 10
    train = EpisodeData.from_arrays(x[:180], y[:180], lengths[:6])
    val = EpisodeData.from_arrays(x[180:240], y[180:240], lengths[:2])
    test = EpisodeData.from_arrays(x[240:], y[240:], lengths[:2])
    pop = BatchedRecurrent(4, 2, 8, 5, sigma_init=0.05, generator=gen(2))
    result = train_supervised(pop, train, test, "ga", validation_data=val, max_generations=3)
    last = result.history[-1]
    assert last["val_loss"] is not None and last["val_loss"] != last["test_ce"]


@pytest.mark.parametrize(("optimizer", "p"), [("ga", 10), ("es", 10), ("cmaes", 10)])
def test_max_samples_stops_within_one_generation(optimizer: str, p: int) -> None:
    train, test, _ = splits()
    per_generation = p * KW["batch_size"]
    budget = 5 * per_generation + 7  # not a whole number of generations
    result = run(optimizer, train_data=train, test_data=test, max_samples=budget)
    assert result.stop_reason == "max_samples"
    assert budget <= result.samples_seen < budget + per_generation
    assert result.generations == 6
    assert result.history[-1]["samples_seen"] == result.samples_seen
    # the first budget met stops the run
    both = run(optimizer, train_data=train, test_data=test, max_samples=budget, max_generations=2)
    assert both.stop_reason == "max_generations" and both.samples_seen == 2 * per_generation


def test_max_samples_is_checked() -> None:
    train, test, _ = splits()
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_samples"):
            run(train_data=train, test_data=test, max_samples=bad)


def test_resume_with_a_larger_max_samples_continues_and_other_validation_is_refused(
    tmp_path: Path,
) -> None:
    train, test, val = splits()
    per_generation = 10 * KW["batch_size"]
    kw = dict(train_data=train, test_data=test, validation_data=val)
    full = run(**kw, max_samples=6 * per_generation)
    ckpt = tmp_path / "run.pt"
    run(**kw, max_samples=3 * per_generation, checkpoint_path=ckpt)
    resumed = run(**kw, max_samples=6 * per_generation, checkpoint_path=ckpt)
    assert resumed.resumed_from == 3 and resumed.generations == full.generations == 6
    assert untimed(resumed.history) == untimed(full.history)
    assert torch.equal(resumed.best_params, full.best_params)

    before = ckpt.read_bytes()
    other_val = (val[0][:60], val[1][:60])
    with pytest.raises(CheckpointError, match="validation_data"):
        run(**{**kw, "validation_data": other_val}, max_samples=9 * per_generation,
            checkpoint_path=ckpt)  # fmt: skip
    with pytest.raises(CheckpointError, match="validation_data"):  # none where it had some
        run(train_data=train, test_data=test, max_samples=9 * per_generation, checkpoint_path=ckpt)
    assert ckpt.read_bytes() == before


def test_evolve_dynamic_takes_validation_and_max_samples() -> None:
    x, y, _ = teacher_data(240, seed=11)
    lengths = [20] * 12
    train = EpisodeData.from_arrays(x[:160], y[:160], lengths[:8])
    val = EpisodeData.from_arrays(x[160:200], y[160:200], lengths[:2])
    test = EpisodeData.from_arrays(x[200:], y[200:], lengths[:2])
    pop = DynamicPopulation(4, 2, 6, generator=gen(4))
    per_generation = 6 * 160
    result = evolve_dynamic(
        pop, train, test, validation_data=val, max_samples=2 * per_generation + 1, eval_every=1
    )
    assert result.stop_reason == "max_samples" and result.samples_seen == 3 * per_generation
    assert all(set(VALIDATION_FIELDS) <= set(r) for r in result.history)
    assert "validation_data" in result.fingerprint["hbm_ne_dynamic"]
