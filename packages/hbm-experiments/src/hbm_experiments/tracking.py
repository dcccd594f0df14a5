"""TensorBoard scalars in each experiment's uid folder, on one step axis for every learner.

Why: researchers compare runs live with `tensorboard --logdir $HBM_CACHE`; each uid folder is
then one TensorBoard run, named by its task and uid.

The step axis. A GA/ES/CMA-ES generation and an SGD step are different units, so TensorBoard's
STEP axis here is **samples seen** (the training observations the learner has consumed, the
shared progress record's `samples_seen`): GA and SGD curves overlay on the same x. The
learner's own counter is a scalar (`progress/step`), the training seconds another
(`progress/wall_time`: TensorBoard's RELATIVE axis would also count data loading and the gap
of a requeue). One tag set, no duplicates per axis:

    train/loss           best train loss of the generation (GA/ES/CMA-ES), mean batch loss (SGD)
    test/ce, test/f1     at each evaluation (test/accuracy when the loop reports it)
    val/ce, val/f1       the validation episodes at the same evaluations (val/accuracy too):
                         what tuning chooses on, beside the test scores that only report
    humanlike/<metric>   behaviour against the person (e.g. pct_diff_mean), when given
    progress/samples_seen, progress/step, progress/epoch, progress/wall_time

A payload without `samples_seen` (a loop older than the shared record) falls back to its own
step and logs once that this run's x axis is not comparable with the others.

The writer is `torch.utils.tensorboard`, which needs the `tensorboard` package: the extra
`hbm-experiments[tensorboard]`. Without it `open_tracker` returns a `NullTracker` and logs once
how to enable it; nothing else changes.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .progress import read_progress

__all__ = [
    "TENSORBOARD_HINT",
    "NullTracker",
    "TensorBoardTracker",
    "open_tracker",
    "tensorboard_available",
    "tensorboard_hint",
]

logger = logging.getLogger(__name__)

TENSORBOARD_HINT = (
    "TensorBoard scalars are off: install them with "
    '`pip install "hbm-experiments[tensorboard]"` (in the workspace: `uv sync --all-extras`)'
)

_hint_logged = False
_hint_lock = threading.Lock()


def tensorboard_available() -> bool:
    """Whether the `tensorboard` package is importable (checked without importing it)."""
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_hint() -> str | None:
    """How to enable TensorBoard scalars, or None when they are on (for `hbm` to say)."""
    return None if tensorboard_available() else TENSORBOARD_HINT


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class NullTracker:
    """The tracker without TensorBoard: accepts every call, writes nothing."""

    enabled = False

    def __call__(self, progress: Any) -> None:
        return None

    def log_progress(self, progress: Any) -> None:
        return None

    def log_scalars(self, scalars: Mapping[str, Any], *, step: int) -> None:
        return None

    def log_humanlike(self, metrics: Mapping[str, Any], *, step: int | None = None) -> None:
        return None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class TensorBoardTracker:
    """Event files in `folder`; also a training callback (`callbacks=(tracker,)`).

    `purge_step`: when a run resumes from a checkpoint taken at that many samples, TensorBoard
    hides the events the interrupted run wrote past it (no doubled curve tail).
    """

    enabled = True

    def __init__(
        self,
        folder: str | Path,
        *,
        purge_step: int | None = None,
        flush_secs: int = 30,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(
            log_dir=str(self.folder), purge_step=purge_step, flush_secs=flush_secs
        )
        self._lock = threading.Lock()
        self._last_step = 0
        self._warned_no_samples = False

    # -- training callback -------------------------------------------------------------------

    def __call__(self, progress: Any) -> None:
        self.log_progress(progress)

    def log_progress(self, progress: Any) -> None:
        """One callback payload (any loop's shape, see `progress.read_progress`)."""
        snap = read_progress(progress)
        step = snap.samples_seen
        if step is None:
            step = snap.step if snap.step is not None else self._last_step + 1
            if not self._warned_no_samples:
                self._warned_no_samples = True
                logger.warning(
                    "%s: the training loop reports no samples_seen; TensorBoard's step axis "
                    "of this run is its own step, not comparable with other learners",
                    self.folder,
                )
        scalars: dict[str, Any] = {
            "train/loss": snap.train_loss,
            "progress/samples_seen": snap.samples_seen,
            "progress/step": snap.step,
            "progress/epoch": snap.epoch,
            "progress/wall_time": snap.elapsed,
        }
        if snap.evaluated:
            scalars |= {
                "test/ce": snap.test_ce,
                "test/f1": snap.test_f1,
                "test/accuracy": snap.test_accuracy,
                "val/ce": snap.val_loss,
                "val/f1": snap.val_f1,
                "val/accuracy": snap.val_accuracy,
            }
        self.log_scalars(scalars, step=step)
        if snap.humanlike:
            self.log_humanlike(snap.humanlike, step=step)

    # -- direct use ----------------------------------------------------------------------------

    def log_scalars(self, scalars: Mapping[str, Any], *, step: int) -> None:
        """Each finite number in `scalars` under its tag at `step`; None/NaN/non-numbers skipped."""
        with self._lock:
            for tag, value in scalars.items():
                number = _finite(value)
                if number is not None:
                    self._writer.add_scalar(tag, number, global_step=int(step))
            self._last_step = max(self._last_step, int(step))

    def log_humanlike(self, metrics: Mapping[str, Any], *, step: int | None = None) -> None:
        """Behaviour metrics (e.g. `evaluate_policy`'s `behaviour` dict) as `humanlike/<name>`;
        lists (per-episode returns) are skipped. Default step: the last one logged."""
        scalars = {f"humanlike/{k}": v for k, v in metrics.items() if _finite(v) is not None}
        self.log_scalars(scalars, step=self._last_step if step is None else step)

    def flush(self) -> None:
        with self._lock:
            self._writer.flush()

    def close(self) -> None:
        with self._lock:
            self._writer.close()

    def __enter__(self) -> TensorBoardTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_tracker(
    folder: str | Path, *, enabled: bool = True, purge_step: int | None = None
) -> TensorBoardTracker | NullTracker:
    """A `TensorBoardTracker` writing into `folder` (an experiment's uid folder), or a
    `NullTracker` when disabled or when tensorboard is not installed (said once per process)."""
    global _hint_logged
    if not enabled:
        return NullTracker()
    if not tensorboard_available():
        with _hint_lock:
            if not _hint_logged:
                _hint_logged = True
                logger.info("%s", TENSORBOARD_HINT)
        return NullTracker()
    return TensorBoardTracker(folder, purge_step=purge_step)
