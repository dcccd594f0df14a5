"""Worker processes for local waves (`hbm tune --parallel K`, `hbm compare --parallel K`
without Slurm): started once, each running experiments one after another as `hbm run` would.

Why not one process per job (submitit's local executor, as on Slurm): every such process
imports torch and hbm again, compiles a fresh code snapshot and unpickles its job, and its end
is seen by polling: seconds per trial, which on a 2-core machine made a wave of two trials
slower than the same trials one by one. Workers pay that once per tuning, while the parent
prepares the wave's data.

What stays as it was: each experiment runs in-process (`cluster=None`) under its own uid, so
its cache entry, checkpoint, run lock and result are those of `hbm run`; a trial already
computed is read, not retrained. Workers die with the process that started them (Linux:
`PR_SET_PDEATHSIG`), so a `kill -9` of `hbm tune` stops its trials too, and the next `hbm tune`
resumes them from their checkpoints. Their log records go through a queue to the parent's
handlers (the logging cookbook's "logging to a single file from multiple processes").
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tasks import Experiment

__all__ = ["LocalWorkers", "local_workers", "run_inline"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_WARM_MODULES = (
    "hbm_experiments.tasks",
    "hbm_experiments.evaluation",
    "hbm_experiments.tracking",
    "scipy.stats",
    "sklearn.neighbors",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "torch.utils.tensorboard",
)
"""What an experiment's first run in a fresh process imports (most of it lazily, in its
evaluation: seconds of CPU), imported by each worker while the parent prepares the wave.
A name missing here only costs time; one not installed (an extra) is skipped."""


class _Relay(logging.Handler):
    """Hands a worker's record to the parent's logger of the same name (its handlers, its
    levels), as if the parent had logged it."""

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        target = logging.getLogger(record.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() relays
        self.handle(record)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _levels() -> dict[str, int]:
    """The levels set on this process's loggers ("" the root): a worker mirrors them, so it
    sends the parent what the parent would have logged itself (e.g. `hbm`'s INFO progress
    lines under a WARNING root), and nothing it would drop."""
    out = {"": logging.getLogger().level}
    for name, lg in logging.root.manager.loggerDict.items():
        if isinstance(lg, logging.Logger) and lg.level != logging.NOTSET:
            out[name] = lg.level
    return out


def _start_worker(log_queue: Any, levels: dict[str, int], parent: int) -> None:
    """Runs once in each worker: dies with the parent, logs through the queue, and does the
    work every experiment's first run in a fresh process would (imports, a first network)."""
    _die_with_parent(parent)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
    import importlib

    import hbm_ne
    import torch

    for name in _WARM_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    torch.set_num_threads(1)  # an experiment's `num_threads` overrides this while it runs
    hbm_ne.FeedforwardMLP(1, 1, 1)


def _ready() -> int:
    return os.getpid()


def _inline_experiment(exp: Experiment) -> Experiment:
    """The same experiment (same uid) run in the calling process, not as a submitit job."""
    from .tasks import experiment_to_dict, infra_set, make_experiment

    where = ("cluster", "workdir", "timeout_min")
    infra = {k: v for k, v in infra_set(exp).items() if k not in where}
    return make_experiment({**experiment_to_dict(exp), "infra": infra}, cls=type(exp))


def run_inline(
    exps: Sequence[Experiment], retry: bool = False, max_workers: int = 256
) -> list[dict[str, Any] | None]:
    """`sweeps.run_or_none` on in-process copies; None for a failed one (logged)."""
    from .sweeps import run_or_none

    return run_or_none([_inline_experiment(e) for e in exps], retry=retry, max_workers=max_workers)


def _run_in_worker(
    cls: type[Experiment], data: dict[str, Any], infra: dict[str, Any], retry: bool
) -> dict[str, Any] | None:
    from .tasks import make_experiment

    return run_inline([make_experiment({**data, "infra": infra}, cls=cls)], retry)[0]


class LocalWorkers:
    """`n` worker processes (spawned: a fork of a process that has run torch's thread pool
    can hang) and the parent, which runs the first experiment of each wave itself."""

    def __init__(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"n={n} must be >= 0")
        self.n = n
        self._ctx = multiprocessing.get_context("spawn")
        self._queue: Any = self._ctx.Queue()
        self._listener = logging.handlers.QueueListener(self._queue, _Relay())
        self._listener.start()
        self._pool: ProcessPoolExecutor | None = None
        self._start()

    def _start(self) -> None:
        if self.n == 0:
            return
        self._pool = ProcessPoolExecutor(
            self.n,
            mp_context=self._ctx,
            initializer=_start_worker,
            initargs=(self._queue, _levels(), os.getpid()),
        )
        for _ in range(self.n):  # spawn them now: their start overlaps the parent's work
            self._pool.submit(_ready)

    def run_wave(
        self, exps: Sequence[Experiment], *, retry: bool = False
    ) -> list[dict[str, Any] | None]:
        """Results in input order, None for a failed experiment (logged): the first in this
        process, the others on the workers (queued when there are more than `n`)."""
        from .tasks import experiment_to_dict, infra_set

        if not exps:
            return []
        futures: list[Future[dict[str, Any] | None]] = []
        if self._pool is not None:
            for e in exps[1:]:
                args = (type(e), experiment_to_dict(e), infra_set(e), retry)
                futures.append(self._pool.submit(_run_in_worker, *args))
            rest = exps[1:]
        else:
            rest = []
        first = run_inline([exps[0]], retry)
        if self._pool is None:
            first += run_inline(exps[1:], retry)
        out = list(first)
        broken = False
        for e, fut in zip(rest, futures, strict=True):
            try:
                out.append(fut.result())
            except BrokenProcessPool as exc:  # a worker was killed (out of memory, a signal)
                logger.warning("experiment %s: its worker process died: %s", e.infra.uid(), exc)
                out.append(None)
                broken = True
            except Exception as exc:  # an error outside the experiment's own recording
                logger.warning("experiment %s failed in its worker: %s", e.infra.uid(), exc)
                out.append(None)
        if broken:  # the next wave gets fresh workers
            self._shutdown(wait=False)
            self._start()
        return out

    def _shutdown(self, *, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def close(self, *, wait: bool = True) -> None:
        self._shutdown(wait=wait)
        self._listener.stop()


@contextlib.contextmanager
def local_workers(parallel: int) -> Iterator[LocalWorkers]:
    """`parallel - 1` workers for the duration of the block (the caller runs one at a time
    too). Left by an error, the workers are not waited for."""
    workers = LocalWorkers(max(0, parallel - 1))
    try:
        yield workers
    except BaseException:
        workers.close(wait=False)
        raise
    workers.close()
