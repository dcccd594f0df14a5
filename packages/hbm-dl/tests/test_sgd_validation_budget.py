"""Validation data and the `max_samples` budget of `optimize_sgd`.

Validation rows sit next to the test ones and never change training; nothing returned depends
on the test labels; `max_samples` stops on the count the history reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import teacher_data
from hbm_dl import CheckpointError, EpisodeData, FeedforwardMLP, RecurrentMLPTrainable, optimize_sgd
from hbm_dl.sgd import VALIDATION_FIELDS


def splits() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    x, y, _ = teacher_data(500, seed=3)
    return (x[:300], y[:300]), (x[300:400], y[300:400]), (x[400:], y[400:])


def untimed(history: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "elapsed" and k not in drop} for r in history]


def run(**kw: Any) -> Any:
    model = FeedforwardMLP(4, 8, 3, generator=torch.Generator().manual_seed(2))
    base: dict[str, Any] = dict(optimizer="adam", learning_rate=1e-2, batch_size=32, seed=4)
    return optimize_sgd(model, **{**base, "eval_every": 5, "checkpoint_every_seconds": None, **kw})


def params(result: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in result.model.parameters()]


def test_validation_rows_never_change_training_and_test_labels_change_nothing_chosen() -> None:
    train, test, val = splits()
    plain = run(train_data=train, test_data=test, max_steps=23)
    with_val = run(train_data=train, test_data=test, validation_data=val, max_steps=23)
    poisoned_test = (test[0], test[1][torch.randperm(len(test[1]), generator=torch.Generator())])
    poisoned = run(train_data=train, test_data=poisoned_test, validation_data=val, max_steps=23)

    assert all(set(VALIDATION_FIELDS).isdisjoint(r) for r in plain.history)
    assert all(set(VALIDATION_FIELDS) <= set(r) for r in with_val.history)
    assert untimed(with_val.history, VALIDATION_FIELDS) == untimed(plain.history)
    assert all(torch.equal(a, b) for a, b in zip(params(plain), params(with_val), strict=True))
    assert "validation_data" in with_val.fingerprint["hbm_dl"]
    assert "validation_data" not in plain.fingerprint["hbm_dl"]

    assert all(torch.equal(a, b) for a, b in zip(params(poisoned), params(with_val), strict=True))
    vals = [[r[k] for k in VALIDATION_FIELDS] for r in with_val.history]
    assert vals == [[r[k] for k in VALIDATION_FIELDS] for r in poisoned.history]
    assert [r["test_ce"] for r in poisoned.history] != [r["test_ce"] for r in with_val.history]


def test_validation_columns_are_the_test_evaluation_on_the_validation_episodes() -> None:
    train, test, _ = splits()
    result = run(train_data=train, test_data=test, validation_data=test, max_steps=12)
    for row in result.history:
        assert (row["val_loss"], row["val_accuracy"], row["val_f1"]) == (
            row["test_ce"],
            row["test_accuracy"],
            row["test_f1"],
        )


def test_recurrent_validation_needs_episodes() -> None:
    x, y, _ = teacher_data(300, seed=8)
    train = EpisodeData.from_arrays(x[:200], y[:200], [20] * 10)
    val = EpisodeData.from_arrays(x[200:], y[200:], [20] * 5)
    model = RecurrentMLPTrainable(4, 6, 3)
    result = optimize_sgd(model, train, None, validation_data=val, max_steps=3, batch_size=4)
    assert result.history[-1]["val_loss"] is not None
    with pytest.raises(ValueError, match=r"validation_data.*episode boundaries"):
        optimize_sgd(RecurrentMLPTrainable(4, 6, 3), train, None, validation_data=(x, y),
                     max_steps=1)  # fmt: skip


def test_max_samples_stops_within_one_batch_and_across_epochs() -> None:
    train, test, _ = splits()
    budget = 3 * 300 + 45  # three epochs of 300 steps and part of a fourth
    result = run(train_data=train, test_data=test, max_samples=budget)
    assert result.stop_reason == "max_samples"
    assert budget <= result.samples_seen < budget + 32
    # each epoch of 300 steps is 9 batches of 32 and one of 12
    assert result.samples_seen == 3 * 300 + 64 and result.steps == 3 * 10 + 2
    assert result.history[-1]["samples_seen"] == result.samples_seen
    both = run(train_data=train, test_data=test, max_samples=budget, max_steps=4)
    assert both.stop_reason == "max_steps" and both.samples_seen == 4 * 32


def test_max_samples_is_checked_and_counts_as_a_budget() -> None:
    train, _, _ = splits()
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="max_samples"):
            run(train_data=train, max_samples=bad)
    with pytest.raises(ValueError, match="max_samples"):  # the no-budget message names it
        run(train_data=train)


def test_resume_with_a_larger_max_samples_continues_and_other_validation_is_refused(
    tmp_path: Path,
) -> None:
    train, test, val = splits()
    kw = dict(train_data=train, test_data=test, validation_data=val)
    full = run(**kw, max_samples=700)
    ckpt = tmp_path / "sgd.pt"
    run(**kw, max_samples=350, checkpoint_path=ckpt)
    resumed = run(**kw, max_samples=700, checkpoint_path=ckpt)
    assert resumed.resumed_from is not None and resumed.steps == full.steps
    assert untimed(resumed.history) == untimed(full.history)
    assert all(torch.equal(a, b) for a, b in zip(params(full), params(resumed), strict=True))

    before = ckpt.read_bytes()
    with pytest.raises(CheckpointError, match="validation_data"):
        run(**{**kw, "validation_data": (val[0][:50], val[1][:50])}, max_samples=900,
            checkpoint_path=ckpt)  # fmt: skip
    with pytest.raises(CheckpointError, match="validation_data"):
        run(train_data=train, test_data=test, max_samples=900, checkpoint_path=ckpt)
    assert ckpt.read_bytes() == before
