"""TensorBoard scalars, read back with tensorboard's own event reader: GA- and SGD-shaped
payloads land on one step axis (samples seen), evaluations only where they happened."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hbm_experiments import tracking

# the test extra pulls in hbm-experiments[tensorboard]: a missing reader is a broken extra
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@dataclass
class SharedProgress:
    """The shared progress record's fields (both loops)."""

    step: int
    samples_seen: int
    elapsed: float
    train_loss: float
    epoch: float | None = None
    test_ce: float | None = None
    test_f1: float | None = None
    evaluated: bool = False


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {
        tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def test_ga_and_sgd_share_the_samples_axis(tmp_path: Path) -> None:
    ga_dir, sgd_dir = tmp_path / "ga_uid", tmp_path / "sgd_uid"
    with tracking.open_tracker(ga_dir) as ga:
        assert isinstance(ga, tracking.TensorBoardTracker)
        for g in range(1, 7):  # a generation sees one batch of 64 observations
            ev = g % 3 == 0
            ga(
                SharedProgress(
                    g, 64 * g, 0.5 * g, 1.0 / g, test_ce=0.9 / g if ev else None, evaluated=ev
                )
            )
    with tracking.open_tracker(sgd_dir) as sgd:
        for s in (4, 8):  # an SGD step sees 32
            sgd(
                SharedProgress(
                    s, 32 * s, 0.1 * s, 0.3, epoch=s / 8, test_ce=0.5, test_f1=0.6, evaluated=True
                )
            )
    g = _scalars(ga_dir)
    assert g["train/loss"] == [(64 * k, round(1.0 / k, 6)) for k in range(1, 7)]
    assert g["test/ce"] == [(192, 0.3), (384, 0.15)]  # evaluated generations only
    assert g["progress/step"] == [(64 * k, k) for k in range(1, 7)]
    assert g["progress/wall_time"][-1] == (384, 3.0)
    assert "test/f1" not in g and "progress/epoch" not in g  # never reported: not invented
    s = _scalars(sgd_dir)
    assert s["test/ce"] == [(128, 0.5), (256, 0.5)] and s["test/f1"][-1] == (256, 0.6)
    assert s["progress/samples_seen"] == [(128, 128.0), (256, 256.0)]
    assert s["progress/epoch"] == [(128, 0.5), (256, 1.0)]
    # the same x (samples seen) for both learners: 256 samples is a GA point and an SGD point
    assert 256 in {step for step, _ in g["train/loss"]} and 256 in {st for st, _ in s["train/loss"]}


def test_hbm_ne_progress_and_humanlike_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @dataclass
    class NEProgress:  # hbm-ne's per-generation record, no samples_seen
        generation: int
        elapsed: float
        best_fitness: float
        mean_fitness: float
        max_generations: int | None
        max_time: float | None
        evaluation: dict[str, Any] | None = None

    behaviour = {
        "pct_diff_mean": -12.5,
        "p_value": 0.03,
        "model_returns": [1.0, 2.0],  # per-episode lists are not scalars
        "cohen_d": None,
        "human_mean_return": float("nan"),
    }
    with (
        caplog.at_level(logging.WARNING, logger="hbm_experiments.tracking"),
        tracking.open_tracker(tmp_path) as tb,
    ):
        tb(NEProgress(1, 0.1, 0.8, 0.9, 2, None, None))
        tb(NEProgress(2, 0.2, 0.7, 0.9, 2, None, {"test_ce": 0.75, "test_f1": 0.4}))
        tb.log_humanlike(behaviour)
    warnings = [r for r in caplog.records if "samples_seen" in r.getMessage()]
    assert len(warnings) == 1  # once per run, not per call
    got = _scalars(tmp_path)
    assert got["train/loss"] == [(1, 0.8), (2, 0.7)]  # falls back to the generation
    assert got["test/ce"] == [(2, 0.75)] and got["test/f1"] == [(2, 0.4)]
    assert got["humanlike/pct_diff_mean"] == [(2, -12.5)]
    assert got["humanlike/p_value"] == [(2, 0.03)]
    assert not {
        "humanlike/model_returns",
        "humanlike/cohen_d",
        "humanlike/human_mean_return",
    } & set(got)


def test_purge_step_hides_the_interrupted_tail(tmp_path: Path) -> None:
    with tracking.open_tracker(tmp_path) as tb:
        for k in range(1, 6):
            tb.log_scalars({"train/loss": 1.0 / k}, step=100 * k)
    # resumed from a checkpoint taken at 300 samples: 400 and 500 are rewritten
    with tracking.open_tracker(tmp_path, purge_step=300) as tb:
        for k in range(3, 5):
            tb.log_scalars({"train/loss": 2.0}, step=100 * k)
    steps = [step for step, _ in _scalars(tmp_path)["train/loss"]]
    assert steps == [100, 200, 300, 400]


def test_without_tensorboard_nothing_breaks_and_hbm_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert tracking.tensorboard_hint() is None  # the real check: installed in the test extra
    monkeypatch.setattr(tracking, "tensorboard_available", lambda: False)
    monkeypatch.setattr(tracking, "_hint_logged", False)
    assert tracking.tensorboard_hint() == tracking.TENSORBOARD_HINT
    with caplog.at_level(logging.INFO, logger="hbm_experiments.tracking"):
        first = tracking.open_tracker(tmp_path / "a")
        second = tracking.open_tracker(tmp_path / "b")
    assert isinstance(first, tracking.NullTracker) and not first.enabled
    first({"step": 1, "samples_seen": 10, "train_loss": 0.5})
    first.log_humanlike({"pct_diff_mean": 1.0})
    first.close()
    hints = [r.getMessage() for r in caplog.records if "[tensorboard]" in r.getMessage()]
    assert hints == [tracking.TENSORBOARD_HINT]  # said once, not per experiment
    assert 'pip install "hbm-experiments[tensorboard]"' in tracking.TENSORBOARD_HINT
    assert isinstance(second, tracking.NullTracker)
    assert not (tmp_path / "a").exists()  # nothing written
    assert isinstance(tracking.open_tracker(tmp_path / "c", enabled=False), tracking.NullTracker)


def test_validation_scores_sit_beside_the_test_ones(tmp_path: Path) -> None:
    """Both loops' payloads carry the validation episodes' scores at each evaluation: they land
    as val/ce, val/f1, val/accuracy on the same steps as test/ce (what chooses next to what
    reports), and not between evaluations."""
    ne_eval = {"test_ce": 0.7, "test_f1": 0.4, "val_loss": 0.65, "val_f1": 0.45}
    with tracking.open_tracker(tmp_path / "ne") as tb:
        tb({"generation": 1, "samples_seen": 64, "best_fitness": 0.8, "evaluation": None})
        tb({"generation": 2, "samples_seen": 128, "best_fitness": 0.7, "evaluation": ne_eval})
    got = _scalars(tmp_path / "ne")
    assert got["val/ce"] == [(128, 0.65)] and got["val/f1"] == [(128, 0.45)]
    assert got["test/ce"] == [(128, 0.7)]
    sgd_row = {"step": 8, "samples_seen": 256, "train_loss": 0.3, "test_ce": 0.5}
    sgd_row |= {"val_loss": 0.55, "val_accuracy": 0.8, "val_f1": 0.6}
    with tracking.open_tracker(tmp_path / "sgd") as tb:
        tb(sgd_row)
    got = _scalars(tmp_path / "sgd")
    assert got["val/ce"] == [(256, 0.55)] and got["val/accuracy"] == [(256, 0.8)]
    assert got["val/f1"] == [(256, 0.6)] and got["test/ce"] == [(256, 0.5)]


@pytest.mark.slow  # two small trainings with their evaluations: ~10 s of CPU
@pytest.mark.parametrize(
    ("method", "settings"),
    [
        (
            "ga_feedforward",
            {"optimizer": {"population_size": 6}, "training": {"max_generations": 4}},
        ),
        ("adam_feedforward", {"training": {"max_steps": 6}}),
    ],
)
def test_a_run_writes_validation_beside_test_in_its_folder(
    method: str, settings: dict[str, Any]
) -> None:
    """Through each real loop: the callbacks carry the evaluation's validation scores."""
    from hbm_experiments import make_experiment

    training = {**settings["training"], "eval_every": 2}
    exp = make_experiment(
        {
            "method": method,
            "dataset": "cartpole",
            "subject": "sim01",
            "model": {"hidden_size": 8},
            **settings,
            "training": training,
            "num_threads": 1,
        }
    )
    result = exp.run()
    got = _scalars(exp.infra.uid_folder())
    assert [s for s, _ in got["val/ce"]] == [s for s, _ in got["test/ce"]] != []
    last = result["history"][-1]
    assert got["val/ce"][-1][1] == pytest.approx(last["val_loss"], abs=1e-6)
    assert got["val/f1"][-1][1] == pytest.approx(last["val_f1"], abs=1e-6)
