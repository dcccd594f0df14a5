"""Live progress: the non-TTY log cadence (counted with a fake clock), the rich bars on a
forced terminal, the payload shapes of both training loops, and `hbm status --watch`."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from hbm_experiments import progress as P
from hbm_experiments import watch as W
from hbm_experiments.cli import main
from rich.console import Console

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class NEProgress:
    """The shape of hbm-ne's per-generation `Progress`."""

    generation: int
    elapsed: float
    best_fitness: float
    mean_fitness: float
    max_generations: int | None
    max_time: float | None
    evaluation: dict[str, Any] | None = None


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log() -> tuple[logging.Logger, Lines]:
    lg = logging.getLogger("test_progress.lines")
    lg.handlers.clear()
    lg.propagate = False
    lg.setLevel(logging.INFO)
    handler = Lines()
    lg.addHandler(handler)
    return lg, handler


def _ga_run(cb: P.ProgressCallback, clock: FakeClock, *, eval_every: int | None) -> int:
    """300 generations, 2 simulated seconds each (10 minutes); returns the evaluations."""
    evaluations = 0
    for g in range(1, 301):
        clock.now = 2.0 * g
        evaluation = None
        if eval_every and g % eval_every == 0:
            evaluations += 1
            evaluation = {"generation": g, "test_ce": 1.0 - g / 1000, "test_f1": g / 400}
        out = cb(NEProgress(g, clock.now, 1.0 - g / 600, 1.2, 300, None, evaluation))
        assert out is None  # hbm-ne stops a run whose callback returns True
    return evaluations


def test_non_tty_cadence_is_time_based_not_per_generation(log: Any) -> None:
    lg, lines = log
    clock = FakeClock()
    display = P.LogDisplay(30, clock=clock, log=lg)
    cb = P.progress_callback("ga cartpole seed=0", "generation", 300, display=display)
    assert _ga_run(cb, clock, eval_every=None) == 0
    # one line per 30 s of the 600 s, at t = 30, 60, ..., 600: never one per generation
    assert len(lines.lines) == 20
    assert "generation 15/300" in lines.lines[0] and "generation 300/300" in lines.lines[-1]
    cb.close()
    assert len(lines.lines) == 21 and "done" in lines.lines[-1]


def test_non_tty_logs_every_evaluation_and_stays_within_bound(log: Any) -> None:
    lg, lines = log
    clock = FakeClock()
    display = P.LogDisplay(30, clock=clock, log=lg)
    with P.progress_callback("ga", "generation", 300, display=display) as cb:
        evaluations = _ga_run(cb, clock, eval_every=25)
    assert evaluations == 12
    assert len(lines.lines) <= 20 + evaluations + 1  # + the closing summary
    evaluated = [ln for ln in lines.lines if re.search(r"generation (\d+)/", ln)]
    gens = {int(re.search(r"generation (\d+)/", ln).group(1)) for ln in evaluated}  # type: ignore[union-attr]
    assert set(range(25, 301, 25)) <= gens  # a line at each evaluation, with its metrics
    assert any("test CE 0.9750 F1 0.062" in ln for ln in lines.lines)
    # the last test CE is carried between evaluations, the best loss only falls
    assert "best loss 0.5000" in lines.lines[-1]


def test_line_shows_time_left_under_each_budget(log: Any) -> None:
    lg, lines = log
    clock = FakeClock()
    display = P.LogDisplay(0, clock=clock, log=lg)
    cb = P.progress_callback("sgd", "epoch", 10, display=display)
    cb({"epoch": 2.0, "elapsed": 60.0, "train_loss": 0.7, "test_ce": 0.8, "test_f1": 0.4})
    assert "epoch 2/10" in lines.lines[-1] and "~4m00s left" in lines.lines[-1]
    timed = P.progress_callback("ga", "generation", None, max_time=600, display=display)
    timed(NEProgress(3, 90.0, 0.6, 0.7, None, 600, None))
    assert "generation 3," in lines.lines[-1] and "8m30s left" in lines.lines[-1]
    assert "~" not in lines.lines[-1]  # a time budget's time left is exact


def test_read_progress_accepts_each_loops_payload() -> None:
    ne = P.read_progress(NEProgress(7, 3.5, 0.42, 0.5, 10, None, None), "generation")
    assert (ne.position, ne.step, ne.train_loss, ne.evaluated, ne.test_ce) == (
        7,
        7,
        0.42,
        False,
        None,
    )
    ne_eval = P.read_progress(
        NEProgress(8, 4.0, 0.4, 0.5, 10, None, {"test_ce": 0.9, "test_f1": 0.3}), "generation"
    )
    assert ne_eval.evaluated and (ne_eval.test_ce, ne_eval.test_f1) == (0.9, 0.3)
    dl_row = {"step": 40, "epoch": 1.5, "elapsed": 2.0, "train_loss": 0.6, "test_ce": 0.7}
    dl = P.read_progress(dl_row, "epoch")
    assert dl.evaluated and dl.position == 1.5 and dl.step == 40 and dl.test_f1 is None
    shared = SimpleNamespace(
        step=12, epoch=None, samples_seen=384, elapsed=1.0, train_loss=0.5, evaluated=False
    )
    s = P.read_progress(shared, "generation")  # a GA reporting the shared record's "step"
    assert s.position == 12 and s.samples_seen == 384 and not s.evaluated


def test_rich_bars_on_a_terminal_collapse_to_summaries() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200, color_system=None)
    clock = FakeClock()
    with P.progress_session(console, clock=clock, auto_refresh=False) as display:
        assert isinstance(display, P.RichDisplay)
        assert P.active_display() is display
        ga = P.progress_callback("ga cartpole seed=0", "generation", 300)  # session's display
        sgd = P.progress_callback("sgd cartpole seed=0", "epoch", 8)
        clock.now = 100.0
        ga(NEProgress(150, 100.0, 0.55, 0.6, 300, None, {"test_ce": 0.61, "test_f1": 0.7}))
        sgd({"epoch": 2.0, "elapsed": 50.0, "train_loss": 0.4, "test_ce": 0.45, "test_f1": 0.8})
        shown = ANSI.sub("", buf.getvalue())
        assert "ga cartpole seed=0" in shown and "generation 150/300" in shown
        assert "best loss 0.5500" in shown and "test CE 0.6100 F1 0.700" in shown
        assert "~1m40s left" in shown and "epoch 2/8" in shown
        assert "━" in shown  # a rich bar, not a log line
        ga.close()
        sgd.close("sgd cartpole seed=0: my summary")
    assert P.active_display() is not display
    shown = ANSI.sub("", buf.getvalue())
    assert shown.count("ga cartpole seed=0: done, generation 150/300") == 1
    assert "sgd cartpole seed=0: my summary" in shown
    assert display._tasks == {}  # finished runs no longer have a bar


def test_session_off_a_terminal_or_quiet_logs_instead(caplog: pytest.LogCaptureFixture) -> None:
    plain = Console(file=io.StringIO())
    for console, enabled in (
        (plain, True),
        (Console(file=io.StringIO(), force_terminal=True), False),
    ):
        with P.progress_session(console, enabled=enabled) as display:
            assert isinstance(display, P.LogDisplay)
    buf = io.StringIO()
    with (
        caplog.at_level(logging.INFO, logger="hbm_experiments.progress"),
        P.progress_session(Console(file=buf), log_every_seconds=30),
    ):
        cb = P.progress_callback("run", "step", 5)
        cb({"step": 1, "elapsed": 0.1, "train_loss": 0.3, "test_ce": 0.4})
        cb.close()
    assert buf.getvalue() == ""  # library output goes through logging, not the console
    messages = [r.getMessage() for r in caplog.records]
    assert any("run: step 1/5" in m for m in messages) and any("run: done" in m for m in messages)


def test_failed_run_closes_with_its_error_and_ignores_late_calls(log: Any) -> None:
    lg, lines = log
    display = P.LogDisplay(30, clock=FakeClock(), log=lg)
    with pytest.raises(RuntimeError), P.progress_callback("x", "step", 3, display=display) as cb:
        raise RuntimeError("boom")
    assert lines.lines == [
        "x: stopped (RuntimeError), step -/3, best loss -, test CE - F1 -, in 0s"
    ]
    cb({"step": 1, "test_ce": 0.2})
    cb.close()
    assert len(lines.lines) == 1


def test_console_log_handler_writes_through_the_console() -> None:
    buf = io.StringIO()
    handler = P.console_log_handler(Console(file=buf, width=120))
    lg = logging.getLogger("test_progress.handler")
    lg.handlers[:] = [handler]
    lg.propagate = False
    lg.warning("loading cartpole data of sim01")
    assert "loading cartpole data of sim01" in buf.getvalue()


def _states(*rounds: list[str]) -> Any:
    it = iter(rounds)
    last: list[str] = []

    def fetch() -> list[SimpleNamespace]:
        nonlocal last
        last = next(it, last)
        return [SimpleNamespace(status=s) for s in last]

    return fetch


def _render(records: Any) -> str:
    return "table: " + ",".join(r.status for r in records)


def test_watch_status_off_a_terminal_prints_once_per_interval() -> None:
    buf = io.StringIO()
    sleeps: list[float] = []
    fetch = _states(["running", "pending"], ["running", "completed"], ["failed", "completed"])
    final = W.watch_status(
        fetch, _render, console=Console(file=buf), interval=7, sleep=sleeps.append
    )
    assert [r.status for r in final] == ["failed", "completed"]
    assert sleeps == [7, 7]
    out = buf.getvalue()
    assert out.count("table: ") == 3 and out.rstrip().endswith("every experiment has finished")


def test_watch_status_redraws_in_place_on_a_terminal() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system=None)
    fetch = _states(["RUNNING"], ["REQUEUED"], ["TIMEOUT"])
    final = W.watch_status(fetch, _render, console=console, interval=1, sleep=lambda s: None)
    assert [r.status for r in final] == ["TIMEOUT"]
    raw = buf.getvalue()
    assert "\x1b[" in raw  # cursor movement: the table is redrawn, not appended
    assert "table: TIMEOUT" in ANSI.sub("", raw)


def test_watch_status_stops_at_max_rounds_and_on_ctrl_c() -> None:
    buf = io.StringIO()
    forever = _states(["running"])
    W.watch_status(forever, _render, console=Console(file=buf), sleep=lambda s: None, max_rounds=3)
    assert buf.getvalue().count("table: ") == 3

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    final = W.watch_status(forever, _render, console=Console(file=io.StringIO()), sleep=interrupt)
    assert [r.status for r in final] == ["running"]


def test_cli_status_watch_returns_when_nothing_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--watch", "0.01", "-q"]) == 0
    out = capsys.readouterr().out
    assert "cache:" in out and "every experiment has finished" in out


def test_a_samples_budget_fills_the_bar_and_gives_time_left(log: Any) -> None:
    """A run under `training.max_samples` alone (no generation/step limit): the bar counts
    the loops' `samples_seen` towards it, and time left extrapolates from the samples rate."""
    lg, lines = log
    clock = FakeClock()
    display = P.LogDisplay(0, clock=clock, log=lg)
    cb = P.progress_callback("ga", "generation", None, max_samples=4000, display=display)
    cb({"generation": 3, "elapsed": 60.0, "samples_seen": 1000, "best_fitness": 0.6})
    assert cb.run.fraction() == pytest.approx(0.25)
    assert "generation 3, samples 1,000/4,000" in lines.lines[-1]
    assert "~3m00s left" in lines.lines[-1]
    # the budget furthest along binds: a generation limit reached first fills the bar
    both = P.progress_callback("ga", "generation", 4, max_samples=4000, display=display)
    both({"generation": 3, "elapsed": 60.0, "samples_seen": 1000})
    assert both.run.fraction() == pytest.approx(0.75)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200, color_system=None)
    with P.progress_session(console, clock=clock, auto_refresh=False) as rich:
        bar = P.progress_callback("sgd", "epoch", None, max_samples=800)
        bar({"epoch": 0.5, "step": 5, "elapsed": 10.0, "samples_seen": 200})
        (task,) = rich._bars.tasks  # type: ignore[attr-defined]
        assert task.total == 1.0 and task.completed == pytest.approx(0.25)
        assert "samples 200/800" in ANSI.sub("", buf.getvalue())
        bar.close()


@pytest.mark.slow  # two trainings with their evaluations: ~10 s of CPU
@pytest.mark.parametrize(
    ("method", "training"),
    [
        ("ga_feedforward", {"max_samples": 2048, "batch_size": 32}),
        ("adam_feedforward", {"max_samples": 640, "batch_size": 32}),
    ],
)
def test_experiment_under_max_samples_alone_reports_it_to_its_bar(
    monkeypatch: pytest.MonkeyPatch, method: str, training: dict[str, Any]
) -> None:
    from hbm_experiments import make_experiment

    made: list[P.ProgressCallback] = []
    real = P.progress_callback

    def spy(*args: Any, **kwargs: Any) -> P.ProgressCallback:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(P, "progress_callback", spy)
    optimizer = {"population_size": 8} if method.startswith("ga") else {}
    exp = make_experiment(
        {
            "method": method,
            "dataset": "cartpole",
            "subject": "sim01",
            "model": {"hidden_size": 8},
            "optimizer": optimizer,
            "training": training,
            "num_threads": 1,
        }
    )
    exp.run()
    (cb,) = made
    assert cb.run.max_samples == training["max_samples"]
    assert cb.run.samples_seen is not None and cb.run.samples_seen >= training["max_samples"]
    assert cb.run.fraction() == 1.0
