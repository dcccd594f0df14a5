"""The scaffolding every training loop shares: budgets, cadences, the closing row, callbacks.

hbm-ne's generational loop (`evolve`) and hbm-dl's `optimize_sgd` differ in their update and
their state, and in nothing else: both stop on the first budget spent, write a history row at
step 0, on a count and/or seconds cadence and at the last step, tell callbacks a `Progress`
after every step, checkpoint on their own cadence and at the end, and sum their time over the
processes of a resumed run. `RunSchedule` holds those rules once, so that the two loops cannot
drift apart (docs/interfaces.md states the contract).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, SupportsFloat

from .progress import Callback, Progress, ResultMapping, notify

#: The first keys of every history row, in this order (a loop adds its own after them).
ROW_FIELDS = (
    "step",
    "epoch",
    "elapsed",
    "samples_seen",
    "train_loss",
    "test_ce",
    "test_accuracy",
    "test_f1",
)

Row = dict[str, Any]


def check_loop_arguments(
    caller: str, budgets: Mapping[str, float | None], cadences: Mapping[str, float | None]
) -> None:
    """Raise `ValueError` unless a budget is set and every given budget and cadence is valid.

    Names ending in `_time` or `_seconds` are durations (> 0); the others are counts (positive
    ints). `budgets` in the order the loop checks them (`RunSchedule.stop_reason`).
    """
    if all(value is None for value in budgets.values()):
        names = list(budgets)
        raise ValueError(
            f"{caller} needs a budget: set {', '.join(names[:-1])} or {names[-1]} (or several)"
        )
    for name, value in {**budgets, **cadences}.items():
        if value is None:
            continue
        if name.endswith(("_time", "_seconds")):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")


class LoopResult(ResultMapping):
    """The base of both loops' results: read by key, and the per-row views of `history`."""

    history: list[Row]

    @property
    def test_loss_history(self) -> list[float]:
        """`test_ce` of every evaluated history row."""
        return [float(r["test_ce"]) for r in self.history if r.get("test_ce") is not None]

    @property
    def f1_history(self) -> list[float]:
        """`test_f1` of every evaluated history row."""
        return [float(r["test_f1"]) for r in self.history if r.get("test_f1") is not None]


def wants_resume(path: Path | None, resume: bool, log: logging.Logger) -> bool:
    """True when `path` holds a checkpoint this call resumes from; an existing file that
    `resume=False` ignores is logged (the first new checkpoint replaces it)."""
    if path is None or not path.exists():
        return False
    if not resume:
        log.info("resume=False: ignoring %s; it is replaced by the first new checkpoint", path)
        return False
    return True


def progress_of(row: Mapping[str, Any], resumed_from: int | None) -> Progress:
    """The `Progress` of an evaluated step, read from its history row."""
    return Progress(
        step=int(row["step"]),
        epoch=row["epoch"],
        samples_seen=int(row["samples_seen"]),
        elapsed=float(row["elapsed"]),
        train_loss=float(row["train_loss"]),
        test_ce=row.get("test_ce"),
        test_f1=row.get("test_f1"),
        test_accuracy=row.get("test_accuracy"),
        val_loss=row.get("val_loss"),
        val_f1=row.get("val_f1"),
        val_accuracy=row.get("val_accuracy"),
        evaluated=True,
        resumed_from=resumed_from,
    )


class _Cadence:
    """Due every `every` counts and/or once `every_seconds` passed since `mark()`."""

    def __init__(self, every: int | None, every_seconds: float | None) -> None:
        self.every = every
        self.every_seconds = every_seconds
        self.last = time.perf_counter()

    def due(self, count: int) -> bool:
        return (self.every is not None and count % self.every == 0) or (
            self.every_seconds is not None and time.perf_counter() - self.last >= self.every_seconds
        )

    def mark(self) -> None:
        self.last = time.perf_counter()


class RunSchedule:
    """One run's clock, budgets, cadences, history rows and callbacks.

    `budgets` maps each budget name to its limit (None: unlimited), in the order a stop reason
    is chosen when several are spent at once; "max_time" is compared with `elapsed()` (seconds
    summed over every process of the run, `elapsed_before` being the earlier ones'), the others
    with the counts given to `stop_reason`. `history` is the run's list of evaluated rows (the
    checkpointed one, appended to in place). `save` writes a checkpoint (None: no checkpoint
    file). The clock and both cadences start when the schedule is built.

    A closing row (the last step, off the evaluation schedule) is returned by `rows()` but
    kept out of `history`, and so out of the checkpoint, so that a longer budget resumed from
    it continues exactly.
    """

    def __init__(
        self,
        *,
        budgets: Mapping[str, float | None],
        eval_every: int | None,
        eval_every_seconds: float | None,
        checkpoint_every: int | None,
        checkpoint_every_seconds: float | None,
        callbacks: Sequence[Callback],
        history: list[Row],
        save: Callable[[], None] | None,
        start_step: int = 0,
        elapsed_before: float = 0.0,
        resumed_from: int | None = None,
    ) -> None:
        self.budgets = dict(budgets)
        self.callbacks = callbacks
        self.history = history
        self.closing: Row | None = None
        self.start_step = start_step
        self.resumed_from = resumed_from
        self._save = save
        self._elapsed_before = elapsed_before
        self._start = time.perf_counter()
        self._eval = _Cadence(eval_every, eval_every_seconds)
        self._checkpoint = _Cadence(checkpoint_every, checkpoint_every_seconds)

    def elapsed(self) -> float:
        """Seconds of this run, over every process of it."""
        return self._elapsed_before + (time.perf_counter() - self._start)

    def stop_reason(self, **counts: float) -> str:
        """The first spent budget's name ("" while none is): "max_time" against `elapsed()`,
        any other against `counts[name]`."""
        for name, limit in self.budgets.items():
            if limit is None:
                continue
            value = self.elapsed() if name == "max_time" else counts[name]
            if value >= limit:
                return name
        return ""

    def row(self, step: int, epoch: float | None, samples_seen: int, train_loss: float) -> Row:
        """A history row's `ROW_FIELDS`, test columns None (the evaluation fills them)."""
        return {
            "step": step,
            "epoch": epoch,
            "elapsed": self.elapsed(),
            "samples_seen": samples_seen,
            "train_loss": train_loss,
            "test_ce": None,
            "test_accuracy": None,
            "test_f1": None,
        }

    def record(
        self, count: int, reason: str, make_row: Callable[[], Row], *, due: bool = False
    ) -> Row | None:
        """This step's history row, made when one is due (`due`, every `eval_every` counts,
        `eval_every_seconds` since the last row: appended to `history`) or when the run stops
        here (`reason`: the closing row); None when neither."""
        if due or self._eval.due(count):
            row = make_row()
            self.history.append(row)
            self._eval.mark()
            return row
        if reason:
            self.closing = make_row()
            return self.closing
        return None

    def report(
        self,
        row: Mapping[str, Any] | None,
        *,
        step: int,
        epoch: float | None,
        samples_seen: int,
        train_loss: SupportsFloat,
    ) -> bool:
        """Tell the callbacks this step's `Progress` (from `row` when it was evaluated); True
        when one asks to stop. Without callbacks nothing is computed (`train_loss` may be a
        device tensor: read only then)."""
        if not self.callbacks:
            return False
        progress = (
            progress_of(row, self.resumed_from)
            if row is not None
            else Progress(
                step=step,
                epoch=epoch,
                samples_seen=samples_seen,
                elapsed=self.elapsed(),
                train_loss=float(train_loss),
                resumed_from=self.resumed_from,
            )
        )
        return notify(self.callbacks, progress)

    def checkpoint(self, count: int, reason: str) -> None:
        """Write a checkpoint when one is due by count or seconds and the run goes on (the
        last one is `finish`'s)."""
        if self._save is not None and not reason and self._checkpoint.due(count):
            self._save()
            self._checkpoint.mark()

    def finish(self, step: int) -> None:
        """The final checkpoint: written unless this process resumed and did no step (its file
        already holds this state)."""
        if self._save is not None and (step != self.start_step or self.resumed_from is None):
            self._save()

    def rows(self, last_step: int | None, make_row: Callable[[], Row]) -> list[Row]:
        """The returned history: the evaluated rows and the closing row, made here when the
        run stopped off the schedule without one (a callback, or a budget already spent at a
        resume) so that the last row always describes the returned model. `last_step`: the
        step the model is at (None: no step was ever taken)."""
        if (
            self.closing is None
            and last_step is not None
            and (not self.history or self.history[-1]["step"] != last_step)
        ):
            self.closing = make_row()
        return self.history + ([self.closing] if self.closing is not None else [])
