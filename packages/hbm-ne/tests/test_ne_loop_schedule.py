"""The training loops' shared scaffolding (`_shared/loop.py`): argument rules, stop reasons,
the evaluation schedule with its closing row, callbacks and the final checkpoint."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hbm_ne import BatchedFeedforward, train_supervised
from hbm_ne._shared import Progress, RunSchedule, check_loop_arguments


def schedule(**kw: Any) -> RunSchedule:
    settings: dict[str, Any] = {
        "budgets": {"max_generations": 3, "max_samples": None, "max_time": None},
        "eval_every": 2,
        "eval_every_seconds": None,
        "checkpoint_every": None,
        "checkpoint_every_seconds": None,
        "callbacks": (),
        "history": [],
        "save": None,
    }
    settings.update(kw)
    return RunSchedule(**settings)


def test_arguments_need_a_budget_and_valid_values() -> None:
    budgets = {"max_steps": None, "max_samples": None, "max_time": None}
    with pytest.raises(ValueError, match="run needs a budget: set max_steps, max_samples or"):
        check_loop_arguments("run", budgets, {})
    for name, value in (("max_steps", 0), ("max_steps", True), ("max_samples", 2.5)):
        with pytest.raises(ValueError, match=f"{name} must be a positive int or None"):
            check_loop_arguments("run", {**budgets, name: value}, {})
    with pytest.raises(ValueError, match="max_time must be > 0"):
        check_loop_arguments("run", {**budgets, "max_time": 0.0}, {})
    with pytest.raises(ValueError, match="eval_every_seconds must be > 0"):
        check_loop_arguments("run", {**budgets, "max_steps": 1}, {"eval_every_seconds": -1.0})
    check_loop_arguments("run", {**budgets, "max_time": 0.5}, {"eval_every": 3})


def test_both_learners_apply_the_same_rules() -> None:
    # the rule hbm-dl always applied now holds in hbm-ne too: a zero duration is refused
    pop = BatchedFeedforward(4, 2, 4, (3,), generator=torch.Generator().manual_seed(0))
    data = (torch.zeros(6, 4), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="max_time must be > 0"):
        train_supervised(pop, data, max_time=0.0)
    with pytest.raises(ValueError, match="checkpoint_every_seconds must be > 0"):
        train_supervised(pop, data, max_generations=1, checkpoint_every_seconds=0.0)


def test_stop_reason_follows_the_budget_order() -> None:
    s = schedule(budgets={"max_steps": 4, "max_epochs": 1, "max_samples": 10, "max_time": None})
    assert s.stop_reason(max_steps=3, max_epochs=0, max_samples=9) == ""
    assert s.stop_reason(max_steps=4, max_epochs=1, max_samples=10) == "max_steps"
    assert s.stop_reason(max_steps=1, max_epochs=1, max_samples=10) == "max_epochs"
    assert s.stop_reason(max_steps=1, max_epochs=0, max_samples=11) == "max_samples"
    timed = schedule(budgets={"max_steps": None, "max_time": 1e-9}, elapsed_before=1.0)
    assert timed.stop_reason(max_steps=0) == "max_time"


def test_rows_on_schedule_and_the_closing_row_kept_apart() -> None:
    history: list[dict[str, Any]] = []
    s = schedule(history=history)
    made: list[int] = []

    def make(step: int) -> dict[str, Any]:
        made.append(step)
        return s.row(step, None, step * 10, float(step))

    assert s.record(0, "", lambda: make(0)) is history[0]  # 0 % 2: on the count cadence
    assert s.record(1, "", lambda: make(1)) is None
    closing = s.record(3, "max_generations", lambda: make(3))
    assert closing is s.closing and closing not in history and made == [0, 3]
    assert [r["step"] for r in s.rows(3, lambda: make(99))] == [0, 3]
    assert list(closing)[:8] == ["step", "epoch", "elapsed", "samples_seen", "train_loss",
                                 "test_ce", "test_accuracy", "test_f1"]  # fmt: skip
    # stopped off the schedule without a closing row (a callback): made at the end
    s2 = schedule(history=[])
    s2.record(0, "", lambda: s2.row(0, None, 0, 0.0))
    assert [r["step"] for r in s2.rows(1, lambda: s2.row(1, None, 1, 1.0))] == [0, 1]
    assert [r["step"] for r in s2.rows(None, lambda: s2.row(7, None, 0, 0.0))] == [0, 1]


def test_callbacks_and_checkpoints() -> None:
    seen: list[Progress] = []
    saved: list[int] = []
    s = schedule(callbacks=[seen.append, lambda p: p.step == 2], checkpoint_every=2,
                 save=lambda: saved.append(len(seen)), resumed_from=5, start_step=5)  # fmt: skip
    assert not s.report(None, step=1, epoch=0.5, samples_seen=4, train_loss=torch.tensor(0.25))
    assert seen[-1].train_loss == 0.25 and not seen[-1].evaluated and seen[-1].resumed_from == 5
    row = s.row(2, 1.0, 8, 0.125)
    assert s.report(row, step=2, epoch=1.0, samples_seen=8, train_loss=9.0)  # asks to stop
    assert seen[-1].evaluated and seen[-1].train_loss == 0.125
    s.checkpoint(3, "")
    s.checkpoint(4, "callback")  # the run stops: the final checkpoint is finish()'s
    assert saved == []
    s.checkpoint(4, "")
    assert saved == [2]
    s.finish(5)  # resumed and no step done: the file already holds this state
    assert saved == [2]
    s.finish(6)
    assert saved == [2, 2]
