"""Live training progress: one rich bar per running experiment on a terminal, sparse log lines
everywhere else.

Why: a 300-generation GA used to log one line per generation, so a 10-hour run filled a Slurm
log with tens of thousands of lines and a terminal scrolled past everything that mattered.

Who does what (library code never prints):

- The CLI opens a `progress_session(console)` around a whole `hbm run`/`seeds`/`sweep`/`demo`.
  On a terminal it owns a rich Live display (`RichDisplay`); elsewhere (Slurm logs, CI, pipes)
  it is a `LogDisplay` that logs through `logging`.
- A training loop gets a callback from `progress_callback(name, unit, budget)`; without an
  explicit `display=` the callback reports to the session's display, or, outside any session
  (a Slurm job, a library user), to a module-wide `LogDisplay`.
- A `LogDisplay` logs at most one line per `log_every_seconds` per experiment, plus one at each
  evaluation and one when the experiment finishes: never one per generation.

The callback accepts what the loops send: hbm-ne's `Progress` (generation, best_fitness,
evaluation), hbm-dl's history rows, and the shared progress record (step, epoch, samples_seen,
elapsed, train_loss, test_ce, test_f1, val_loss, val_f1, evaluated), as mappings or objects;
missing fields are shown as "-". Every clock is injectable, so tests count lines without sleeping.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "LogDisplay",
    "ProgressCallback",
    "ProgressDisplay",
    "RichDisplay",
    "RunState",
    "Snapshot",
    "active_display",
    "console_log_handler",
    "progress_callback",
    "progress_session",
    "read_progress",
    "session_open",
]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

DEFAULT_LOG_EVERY_SECONDS = 30.0


# ----------------------------------------------------------------------------------------------
# What a training loop reports


@dataclass(frozen=True)
class Snapshot:
    """One training callback's payload, normalised (None: the loop did not say)."""

    position: float | None  # in the budget unit (generation, epoch or step)
    step: int | None = None
    epoch: float | None = None
    samples_seen: int | None = None
    elapsed: float | None = None
    train_loss: float | None = None
    test_ce: float | None = None
    test_f1: float | None = None
    test_accuracy: float | None = None
    # the validation episodes' scores at the same evaluation (what tuning chooses on)
    val_loss: float | None = None
    val_f1: float | None = None
    val_accuracy: float | None = None
    evaluated: bool = False
    humanlike: Mapping[str, Any] = field(default_factory=dict)


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _has(obj: Any, name: str) -> bool:
    return name in obj if isinstance(obj, Mapping) else hasattr(obj, name)


def _num(value: Any) -> float | None:
    """A finite-or-not float of a number (tensors and numpy scalars too), else None."""
    if value is None or isinstance(value, bool):
        return None
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            return None
    return float(value) if isinstance(value, int | float) else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None or not math.isfinite(number) else int(number)


# The budget unit's field and where to look when a loop names its counter differently
# (hbm-ne says "generation", the shared record "step").
_POSITION_FIELDS = {"generation": ("generation", "step"), "step": ("step", "generation")}


def read_progress(progress: Any, unit: str = "step") -> Snapshot:
    """Normalise one callback payload (mapping or object, any of the loops' field names).

    hbm-ne's `Progress` nests its test metrics in `evaluation` (None between evaluations) and
    calls the train loss `best_fitness`; hbm-dl's rows are all evaluations; the shared record
    says `evaluated` itself.
    """
    evaluation = _get(progress, "evaluation")
    source = evaluation if isinstance(evaluation, Mapping) else progress
    test_ce = _num(_get(source, "test_ce"))
    if isinstance(_get(progress, "evaluated"), bool):
        evaluated = bool(_get(progress, "evaluated"))
    elif _has(progress, "evaluation"):
        evaluated = evaluation is not None
    else:
        evaluated = test_ce is not None
    position = None
    for name in _POSITION_FIELDS.get(unit, (unit,)):
        position = _num(_get(progress, name))
        if position is not None:
            break
    loss = _get(progress, "train_loss")
    if loss is None:
        loss = _get(progress, "best_fitness")
    humanlike = _get(source, "humanlike") or _get(progress, "humanlike") or {}
    return Snapshot(
        position=position,
        step=_int(
            _get(progress, "step") if _has(progress, "step") else _get(progress, "generation")
        ),
        epoch=_num(_get(progress, "epoch")),
        samples_seen=_int(_get(progress, "samples_seen")),
        elapsed=_num(_get(progress, "elapsed")),
        train_loss=_num(loss),
        test_ce=test_ce,
        test_f1=_num(_get(source, "test_f1")),
        test_accuracy=_num(_get(source, "test_accuracy")),
        val_loss=_num(_get(source, "val_loss")),
        val_f1=_num(_get(source, "val_f1")),
        val_accuracy=_num(_get(source, "val_accuracy")),
        evaluated=evaluated,
        humanlike=dict(humanlike) if isinstance(humanlike, Mapping) else {},
    )


@dataclass
class RunState:
    """What a display shows of one experiment: the running aggregates of its callbacks."""

    name: str
    unit: str
    budget: int | None
    max_time: float | None
    started: float  # the display clock when the run started
    max_samples: int | None = None  # `training.max_samples`: counted in the loops' samples_seen
    position: float | None = None
    elapsed: float = 0.0
    samples_seen: int | None = None
    best_loss: float | None = None
    test_ce: float | None = None
    test_f1: float | None = None
    evaluations: int = 0
    calls: int = 0
    finished: bool = False

    def add(self, snap: Snapshot, now: float) -> None:
        """Fold one snapshot in: the best (lowest) train loss, the last test metrics."""
        self.calls += 1
        if snap.position is not None:
            self.position = snap.position
        self.elapsed = snap.elapsed if snap.elapsed is not None else now - self.started
        if snap.samples_seen is not None:
            self.samples_seen = snap.samples_seen
        loss = snap.train_loss
        if loss is not None and math.isfinite(loss):
            self.best_loss = loss if self.best_loss is None else min(self.best_loss, loss)
        if snap.evaluated:
            self.evaluations += 1
        if snap.test_ce is not None:
            self.test_ce = snap.test_ce
        if snap.test_f1 is not None:
            self.test_f1 = snap.test_f1

    def fraction(self) -> float | None:
        """How far along the binding budget is (0..1), None without any budget: the one
        furthest along (count, samples or time), as the loops stop at the first one reached."""
        parts = []
        if self.budget and self.position is not None:
            parts.append(self.position / self.budget)
        if self.max_samples and self.samples_seen is not None:
            parts.append(self.samples_seen / self.max_samples)
        if self.max_time:
            parts.append(self.elapsed / self.max_time)
        return min(1.0, max(parts)) if parts else None

    def time_left(self) -> tuple[float, bool] | None:
        """(seconds left, exact): exact under a time budget, extrapolated under a count one."""
        options: list[tuple[float, bool]] = []
        if self.max_time:
            options.append((max(0.0, self.max_time - self.elapsed), True))
        if self.budget and self.position and self.position > 0:
            rate = self.elapsed / self.position
            options.append((max(0.0, rate * (self.budget - self.position)), False))
        if self.max_samples and self.samples_seen:
            rate = self.elapsed / self.samples_seen
            options.append((max(0.0, rate * (self.max_samples - self.samples_seen)), False))
        return min(options) if options else None


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _f(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _position(run: RunState) -> str:
    if run.position is None:
        where = f"{run.unit} -"
    elif float(run.position).is_integer():
        where = f"{run.unit} {int(run.position)}"
    else:
        where = f"{run.unit} {run.position:.2f}"
    where += f"/{run.budget}" if run.budget else ""
    if run.max_samples:
        seen = "-" if run.samples_seen is None else f"{run.samples_seen:,}"
        where += f", samples {seen}/{run.max_samples:,}"
    return where


def _fields(run: RunState) -> dict[str, str]:
    """The pieces both displays show, formatted once."""
    left = run.time_left()
    return {
        "where": _position(run),
        "loss": f"best loss {_f(run.best_loss)}",
        "eval": f"test CE {_f(run.test_ce)} F1 {_f(run.test_f1, '.3f')}",
        "elapsed": _duration(run.elapsed),
        "left": "" if left is None else f"{'' if left[1] else '~'}{_duration(left[0])} left",
    }


def _line(run: RunState) -> str:
    f = _fields(run)
    left = f", {f['left']}" if f["left"] else ""
    return f"{run.name}: {f['where']}, {f['loss']}, {f['eval']}, {f['elapsed']} elapsed{left}"


def _summary(run: RunState, outcome: str = "done") -> str:
    f = _fields(run)
    return f"{run.name}: {outcome}, {f['where']}, {f['loss']}, {f['eval']}, in {f['elapsed']}"


# ----------------------------------------------------------------------------------------------
# Displays


class ProgressDisplay(Protocol):
    """Where the callbacks' runs are shown; every method may be called from any thread."""

    clock: Clock

    def start(self, run: RunState) -> None: ...

    def update(self, run: RunState, evaluated: bool) -> None: ...

    def finish(self, run: RunState, summary: str) -> None: ...


class LogDisplay:
    """Plain `logging` lines: per run at most one per `log_every_seconds`, one at each
    evaluation, one at the end. For Slurm logs, CI and pipes, where a bar would be noise."""

    def __init__(
        self,
        log_every_seconds: float = DEFAULT_LOG_EVERY_SECONDS,
        *,
        clock: Clock = time.monotonic,
        log: logging.Logger | None = None,
    ) -> None:
        self.log_every_seconds = log_every_seconds
        self.clock = clock
        self.log = log or logger
        self._last: dict[int, float] = {}  # id(run) -> clock of its last line
        self._lock = threading.Lock()

    def __enter__(self) -> LogDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self, run: RunState) -> None:
        with self._lock:
            self._last[id(run)] = self.clock()

    def update(self, run: RunState, evaluated: bool) -> None:
        now = self.clock()
        with self._lock:
            last = self._last.setdefault(id(run), run.started)
            if not evaluated and now - last < self.log_every_seconds:
                return
            self._last[id(run)] = now
        self.log.info("%s", _line(run))

    def finish(self, run: RunState, summary: str) -> None:
        with self._lock:
            self._last.pop(id(run), None)
        self.log.info("%s", summary)


class RichDisplay:
    """One rich progress bar per running experiment; a finished one is replaced by its
    one-line summary, printed above the bars (so the screen keeps only what still runs)."""

    def __init__(
        self,
        console: Console,
        *,
        clock: Clock = time.monotonic,
        auto_refresh: bool = True,
        refresh_per_second: float = 4,
    ) -> None:
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as RichProgress

        self.clock = clock
        self.console = console
        self._auto_refresh = auto_refresh
        self._bars = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[where]}"),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[eval]}"),
            TextColumn("{task.fields[elapsed]}"),
            TextColumn("{task.fields[left]}"),
            console=console,
            auto_refresh=auto_refresh,
            refresh_per_second=refresh_per_second,
            transient=True,  # the bars go at the end; the summaries printed above them stay
            get_time=clock,
        )
        self._tasks: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichDisplay:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def _show(self, run: RunState) -> dict[str, Any]:
        fraction = run.fraction()
        return {
            "total": None if fraction is None else 1.0,
            "completed": fraction or 0.0,
            **_fields(run),
        }

    def start(self, run: RunState) -> None:
        with self._lock:
            self._tasks[id(run)] = self._bars.add_task(run.name, **self._show(run))
        self._refresh()

    def update(self, run: RunState, evaluated: bool) -> None:
        with self._lock:
            task = self._tasks.get(id(run))
            if task is None:
                return
            self._bars.update(task, **self._show(run))
        self._refresh()

    def finish(self, run: RunState, summary: str) -> None:
        with self._lock:
            task = self._tasks.pop(id(run), None)
            if task is not None:
                self._bars.remove_task(task)
        self._bars.console.print(summary, markup=False, highlight=False)
        self._refresh()

    def _refresh(self) -> None:
        if not self._auto_refresh:
            self._bars.refresh()


_default_display = LogDisplay()
_sessions: list[ProgressDisplay] = []
_sessions_lock = threading.Lock()


def session_open() -> bool:
    """Whether a `progress_session` is open in this process (a CLI command is running)."""
    with _sessions_lock:
        return bool(_sessions)


def active_display() -> ProgressDisplay:
    """The innermost open session's display, else a module-wide `LogDisplay`."""
    with _sessions_lock:
        return _sessions[-1] if _sessions else _default_display


@contextmanager
def progress_session(
    console: Console | None = None,
    *,
    enabled: bool = True,
    log_every_seconds: float = DEFAULT_LOG_EVERY_SECONDS,
    clock: Clock = time.monotonic,
    auto_refresh: bool = True,
) -> Iterator[ProgressDisplay]:
    """The display of one CLI command: rich bars when `console` (default: stderr) is a
    terminal and `enabled`, else log lines. Callbacks made inside it report here."""
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    display: RichDisplay | LogDisplay
    if enabled and console.is_terminal:
        display = RichDisplay(console, clock=clock, auto_refresh=auto_refresh)
    else:
        display = LogDisplay(log_every_seconds, clock=clock)
    with display:
        with _sessions_lock:
            _sessions.append(display)
        try:
            yield display
        finally:
            with _sessions_lock:
                _sessions.remove(display)


def console_log_handler(console: Console) -> logging.Handler:
    """A logging handler that writes through `console`, so log lines land above a live
    display instead of tearing it (a plain StreamHandler writes past rich)."""
    from rich.logging import RichHandler

    handler = RichHandler(
        console=console,
        show_path=False,
        show_level=False,
        markup=False,
        rich_tracebacks=False,
        log_time_format="%H:%M:%S",
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


# ----------------------------------------------------------------------------------------------
# The training callback


class ProgressCallback:
    """A training-loop callback that feeds one experiment's `RunState` to a display.

    Returns None (hbm-ne reads a True return as "stop"). `close()` (or leaving the `with`
    block) collapses the bar to a summary line; closing twice is harmless.
    """

    def __init__(
        self,
        name: str,
        budget_unit: str,
        budget: int | None,
        *,
        max_time: float | None = None,
        max_samples: int | None = None,
        display: ProgressDisplay | None = None,
    ) -> None:
        self.display = display if display is not None else active_display()
        self.run = RunState(
            name=name,
            unit=budget_unit,
            budget=budget,
            max_time=max_time,
            started=self.display.clock(),
            max_samples=max_samples,
        )
        self._lock = threading.Lock()
        self.display.start(self.run)

    def __call__(self, progress: Any) -> None:
        snap = read_progress(progress, self.run.unit)
        with self._lock:
            if self.run.finished:
                return
            self.run.add(snap, self.display.clock())
        self.display.update(self.run, snap.evaluated)

    def close(self, summary: str | None = None, *, outcome: str = "done") -> None:
        """Replace the bar by `summary` (default: where the run ended and its metrics)."""
        with self._lock:
            if self.run.finished:
                return
            self.run.finished = True
        self.display.finish(self.run, summary or _summary(self.run, outcome))

    def __enter__(self) -> ProgressCallback:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(outcome="done" if exc_type is None else f"stopped ({exc_type.__name__})")


def progress_callback(
    name: str,
    budget_unit: str,
    budget: int | None,
    *,
    max_time: float | None = None,
    max_samples: int | None = None,
    display: ProgressDisplay | None = None,
) -> ProgressCallback:
    """A callback for `hbm_ne.train_supervised` / `hbm_dl.optimize_sgd` (`callbacks=(cb,)`).

    `budget_unit` is what `budget` counts ("generation", "epoch" or "step"); `max_time`, when
    set, is the time budget in seconds (time left is then exact); `max_samples`, when set, the
    samples budget (`training.max_samples`), which the bar then counts towards with the
    loops' `samples_seen`. Without `display`, the open `progress_session`'s display, else log
    lines.
    """
    return ProgressCallback(
        name, budget_unit, budget, max_time=max_time, max_samples=max_samples, display=display
    )
