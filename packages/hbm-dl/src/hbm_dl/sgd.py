"""`optimize_sgd`: minibatch SGD / Adam behaviour cloning with exact, resumable checkpoints.

Feedforward models train on shuffled single steps; recurrent models on minibatches of whole
episodes, padded at the end with a masked loss (padding never changes the loss or gradients),
optionally with truncated backprop through time. Shuffling uses its own CPU generator, evaluation
draws seeded by (seed, step) (`f1_seed`), so evaluating or checkpointing never changes training:
resuming from a checkpoint to the same budget gives bitwise the same model on CPU.

The loop speaks the language hbm-ne's `train_supervised` speaks (docs/interfaces.md): the same
budget, cadence, callback, fingerprint and result names, the same `Progress` record; its
budgets, cadences, closing row and callbacks are the shared `RunSchedule` both loops run. The
checks, step functions and resume it calls live in `hbm_dl._sgd_steps`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from hbm_dl._sgd_steps import (
    Data,
    _check_arguments,
    _feedforward_steps,
    _initial_train_loss,
    _make_optimizer,
    _own_fingerprint,
    _prepare_data,
    _recurrent_steps,
    _resume,
    _State,
)
from hbm_dl._shared import (
    ROW_FIELDS,
    Callback,
    LoopResult,
    Progress,
    RunSchedule,
    build_fingerprint,
    now_iso,
    wants_resume,
)
from hbm_dl._shared import evaluate as _evaluate
from hbm_dl.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    save_checkpoint,
)
from hbm_dl.data import as_episode_data
from hbm_dl.models import is_recurrent

__all__ = [
    "HISTORY_FIELDS",
    "VALIDATION_FIELDS",
    "Progress",
    "SGDResult",
    "evaluate",
    "optimize_sgd",
]

logger = logging.getLogger(__name__)

#: Keys of every history row: the shared `ROW_FIELDS` (hbm-ne adds its generation fields).
HISTORY_FIELDS = ROW_FIELDS
#: Keys a history row gains when the run has validation data (`validation_data=`): the
#: model's cross-entropy, accuracy and sampled macro F1 on the validation episodes, next to the
#: test ones (hbm-ne's rows use the same names).
VALIDATION_FIELDS = ("val_loss", "val_accuracy", "val_f1")


@dataclass
class SGDResult(LoopResult):
    """How an `optimize_sgd` run ended (field names shared with hbm-ne's `TrainResult`).

    `history`: one row per evaluation (keys `HISTORY_FIELDS`); its last row describes `model`
    (the object passed in, trained, on the training device). `steps`: optimizer steps done;
    `stop_reason`: "max_steps", "max_epochs", "max_samples", "max_time" or "callback";
    `elapsed` and `samples_seen` count every process of a resumed run; `resumed_from`: the step
    this process resumed at (None: fresh start) and `checkpoint_time` when that checkpoint was
    written (ISO).
    Read by key too, like the design guide's dicts: `result["loss_history"]`
    (train loss per row), `result["test_loss_history"]` (test CE per row).
    """

    history: list[dict[str, Any]]
    model: nn.Module
    steps: int = 0
    stop_reason: str = ""
    checkpoint_path: Path | None = None
    elapsed: float = 0.0
    samples_seen: int = 0
    resumed_from: int | None = None
    checkpoint_time: str | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _mapping_keys = (
        "history",
        "model",
        "steps",
        "stop_reason",
        "checkpoint_path",
        "elapsed",
        "samples_seen",
        "resumed_from",
        "checkpoint_time",
        "fingerprint",
        "loss_history",
        "test_loss_history",
        "f1_history",
    )

    @property
    def loss_history(self) -> list[float]:
        """`train_loss` of every history row."""
        return [float(r["train_loss"]) for r in self.history]


def evaluate(
    model: nn.Module,
    data: Data,
    *,
    f1_samples: int = 10,
    seed: int = 0,
    step: int = 0,
    unit: str = "episode",
) -> dict[str, float]:
    """`{"ce", "accuracy", "f1"}` of `model` on all of `data` (the shared `evaluate`: the same
    function, seeding and result as `hbm_ne.evaluate`).

    Macro F1 is the mean over `f1_samples` draws seeded `f1_seed(seed, step)`; pass a run's
    `seed` and a history row's `step` to reproduce that row. Recurrent models run each episode
    (or session, `unit="session"`) from a zero state (`data` needs episode boundaries).
    """
    if isinstance(data, tuple):  # either package's EpisodeData goes straight to the shared code
        first = next(iter(model.parameters()), None)
        data = as_episode_data(data, first.device if first is not None else "cpu", "data")
    return _evaluate(model, data, f1_samples=f1_samples, seed=seed, step=step, unit=unit)


def optimize_sgd(
    model: nn.Module,
    train_data: Data,
    test_data: Data | None = None,
    *,
    optimizer: Literal["sgd", "adam"] = "sgd",
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    max_epochs: int | None = None,
    max_steps: int | None = None,
    max_time: float | None = None,
    max_samples: int | None = None,
    validation_data: Data | None = None,
    eval_every: int | None = 1000,
    eval_every_seconds: float | None = None,
    f1_samples: int = 10,
    bptt_length: int | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    checkpoint_every_seconds: float | None = 300.0,
    resume: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
) -> SGDResult:
    """Train `model` to imitate `train_data` actions by minibatch SGD or Adam on cross-entropy.

    Budgets: stops at whichever comes first of `max_epochs`, `max_steps` (optimizer updates),
    `max_samples` (once `samples_seen`, the steps of every minibatch so far, reaches it: the
    count hbm-ne's loops stop on too, so learners given the same `max_samples` see the same
    data to within one minibatch) and `max_time` (seconds, summed over every process of a
    resumed run); at least one is required. `batch_size` counts steps (feedforward) or
    episodes (recurrent).

    Evaluation (`hbm_dl.evaluate` on `test_data`: test CE, accuracy, macro F1 of
    `f1_samples` sampled actions seeded `f1_seed(seed, step)`) gives a history row at step 0,
    every `eval_every` steps (None: at each epoch end), whenever `eval_every_seconds` have passed
    since the last row, and at the last step, so the last row always describes the returned
    model. `train_loss` is the mean minibatch loss since the previous row (step 0: the loss on
    the first 8192 training steps). `test_data=None` leaves the test columns None. With
    `validation_data` (episodes held out of training to choose with, never the test ones) each
    row also has `VALIDATION_FIELDS` (`val_loss`, `val_accuracy`, `val_f1`) on the same
    cadence; without it rows have no such keys. Nothing here chooses by test: the returned
    model is the last one.

    Callbacks get a `Progress` after step 0 and after every optimizer step (a device sync per
    step on accelerators, only when callbacks are given); one returning True stops the run
    (`stop_reason="callback"`, final checkpoint written). `bptt_length` truncates backprop
    through time to chunks of that many steps (still one update per minibatch).

    With `checkpoint_path`, saves everything needed to continue exactly every
    `checkpoint_every` steps and/or `checkpoint_every_seconds`, and at the end. If the file
    exists and `resume` is True, training resumes from it (a larger budget continues the run);
    it must belong to this run: the stored fingerprint (the caller's JSON-able `fingerprint`
    plus hbm_dl's own settings under "hbm_dl": version, seed, optimizer, learning rate, batch
    size, bptt, f1_samples, model layout, data signatures, validation's when given; budgets
    are not in it, so a larger budget continues the run) must equal this call's, else
    `CheckpointError` names the differing fields and the file is left untouched. With
    `resume=False` an existing file is ignored and replaced by the first new checkpoint.
    """
    # in the order a stop reason is chosen when several budgets are spent at once
    budgets = {
        "max_steps": max_steps,
        "max_epochs": max_epochs,
        "max_samples": max_samples,
        "max_time": max_time,
    }
    _check_arguments(
        budgets,
        eval_every=eval_every,
        eval_every_seconds=eval_every_seconds,
        f1_samples=f1_samples,
        bptt_length=bptt_length,
        checkpoint_every=checkpoint_every,
        checkpoint_every_seconds=checkpoint_every_seconds,
        batch_size=batch_size,
        learning_rate=learning_rate,
    )
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    recurrent = is_recurrent(model)
    train_set = _prepare_data(model, train_data, device, "train_data", recurrent)
    test_set = (
        None
        if test_data is None
        else _prepare_data(model, test_data, device, "test_data", recurrent)
    )
    val_set = (
        None
        if validation_data is None
        else _prepare_data(model, validation_data, device, "validation_data", recurrent)
    )
    for name, other in (("test", test_set), ("validation", val_set)):
        if other is not None and train_set.input_size != other.input_size:
            raise ValueError(
                f"train has {train_set.input_size} observation columns, {name} {other.input_size}"
            )

    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, learning_rate, device)
    shuffle_gen = torch.Generator().manual_seed(seed)  # CPU: same order on every device
    full_fingerprint = build_fingerprint(
        fingerprint,
        "hbm_dl",
        _own_fingerprint(
            model,
            train_set,
            test_set,
            val_set,
            seed=seed,
            optimizer=optimizer,
            learning_rate=float(learning_rate),
            batch_size=batch_size,
            bptt_length=bptt_length,
            f1_samples=f1_samples,
        ),
    )

    state = _State()
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    resumed_from: int | None = None
    checkpoint_time: str | None = None
    if wants_resume(ckpt, resume, logger):
        assert ckpt is not None
        state, checkpoint_time = _resume(ckpt, full_fingerprint, model, opt, shuffle_gen, device)
        resumed_from = state.step
        logger.info(
            "resumed from step %d (checkpoint of %s): %s", state.step, checkpoint_time, ckpt
        )

    num_items = train_set.num_episodes if recurrent else len(train_set)
    batches_per_epoch = math.ceil(num_items / batch_size)

    def epoch() -> float:
        return state.epoch + state.batch_in_epoch / batches_per_epoch

    def make_row(train_loss: float) -> dict[str, Any]:
        row = schedule.row(state.step, epoch(), state.samples_seen, train_loss)
        if test_set is not None:
            metrics = _evaluate(model, test_set, f1_samples=f1_samples, seed=seed, step=state.step)
            row["test_ce"] = metrics["ce"]
            row["test_accuracy"] = metrics["accuracy"]
            row["test_f1"] = metrics["f1"]
        if val_set is not None:
            metrics = _evaluate(model, val_set, f1_samples=f1_samples, seed=seed, step=state.step)
            values = (metrics["ce"], metrics["accuracy"], metrics["f1"])
            row.update(zip(VALIDATION_FIELDS, values, strict=True))
        tests = ""
        if test_set is not None:
            tests = (
                f" test_ce {row['test_ce']:.4f} test_acc {row['test_accuracy']:.3f}"
                f" test_f1 {row['test_f1']:.3f}"
            )
        if val_set is not None:
            tests += f" val_loss {row['val_loss']:.4f} val_f1 {row['val_f1']:.3f}"
        logger.info(
            "step %d epoch %.2f train_loss %.4f%s",
            row["step"],
            row["epoch"],
            row["train_loss"],
            tests,
        )
        return row

    def pending_row() -> dict[str, Any]:
        return make_row(float(torch.stack(state.pending_losses).mean()))

    def save() -> None:
        assert ckpt is not None
        state.elapsed = schedule.elapsed()
        save_checkpoint(
            ckpt,
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "written_at": now_iso(),
                "fingerprint": full_fingerprint,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "shuffle_generator": shuffle_gen.get_state(),
                "epoch_generator_state": state.epoch_generator_state,
                "step": state.step,
                "epoch": state.epoch,
                "batch_in_epoch": state.batch_in_epoch,
                "pending_losses": (
                    torch.stack(state.pending_losses).cpu() if state.pending_losses else None
                ),
                "elapsed": state.elapsed,
                "samples_seen": state.samples_seen,
                "history": state.history,
            },
        )

    schedule = RunSchedule(
        budgets=budgets,
        eval_every=eval_every,
        eval_every_seconds=eval_every_seconds,
        checkpoint_every=checkpoint_every,
        checkpoint_every_seconds=checkpoint_every_seconds,
        callbacks=callbacks,
        history=state.history,
        save=None if ckpt is None else save,
        start_step=state.step,
        elapsed_before=state.elapsed,
        resumed_from=resumed_from,
    )

    def stop_reason() -> str:
        return schedule.stop_reason(
            max_steps=state.step, max_epochs=state.epoch, max_samples=state.samples_seen
        )

    reason = ""
    if not state.history:
        row0 = make_row(_initial_train_loss(model, train_set, recurrent))
        state.history.append(row0)
        if schedule.report(row0, step=0, epoch=0.0, samples_seen=0, train_loss=row0["train_loss"]):
            reason = "callback"

    step_fn = _recurrent_steps if recurrent else _feedforward_steps
    steps = step_fn(model, train_set, batch_size, bptt_length, device)
    reason = reason or stop_reason()
    while not reason:
        if state.batch_in_epoch == 0:
            state.epoch_generator_state = shuffle_gen.get_state()
        else:  # resumed mid-epoch: redraw this epoch's permutation from its starting state
            assert state.epoch_generator_state is not None
            shuffle_gen.set_state(state.epoch_generator_state)
        perm = torch.randperm(num_items, generator=shuffle_gen)
        for loss, num_samples in steps(perm, state.batch_in_epoch):
            state.pending_losses.append(loss)
            opt.step()
            state.step += 1
            state.samples_seen += num_samples
            state.batch_in_epoch += 1
            if state.batch_in_epoch == batches_per_epoch:
                state.epoch += 1
                state.batch_in_epoch = 0
            reason = stop_reason()
            epoch_end = eval_every is None and state.batch_in_epoch == 0
            row = schedule.record(state.step, reason, pending_row, due=epoch_end)
            if row is not None and row is not schedule.closing:
                state.pending_losses = []  # a scheduled row starts the next loss window
            if schedule.report(
                row,
                step=state.step,
                epoch=epoch(),
                samples_seen=state.samples_seen,
                train_loss=loss,
            ):
                reason = reason or "callback"
            schedule.checkpoint(state.step, reason)
            if reason or state.batch_in_epoch == 0:
                break

    schedule.finish(state.step)
    history = schedule.rows(state.step, pending_row)
    logger.info("optimize_sgd stopped by %s at step %d", reason, state.step)
    return SGDResult(
        history,
        model,
        state.step,
        reason,
        ckpt,
        elapsed=schedule.elapsed(),
        samples_seen=state.samples_seen,
        resumed_from=resumed_from,
        checkpoint_time=checkpoint_time,
        fingerprint=full_fingerprint,
    )
