"""The README's demo at its real budget (under 3 minutes on 2 quiet cores): marked slow. It
must decide its main contrast, GA against Adam, on both simulated players."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hbm_experiments.cli import main
from hbm_experiments.humanlike import metric_validity
from hbm_experiments.status import describe, find_experiments


@pytest.mark.slow
def test_default_demo_learns_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "20 experiments" in out
    # not a terminal (as in a Slurm log): progress lines, never one per generation or step
    log_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(log_lines) < 50 * 20, len(log_lines)
    records = [r for r in find_experiments(load_results=True) if r.status == "completed"]
    assert len(records) == 20
    assert {describe(r)["subject"] for r in records} == {"sim01", "sim02"}
    # every method learned something about the person: better than chance (CE ln A, F1 1/A)
    chance = {"cartpole": 2, "lunarlander": 4}
    for rec in records:
        assert rec.result is not None
        d = describe(rec)
        actions = chance[d["dataset"]]
        label = (d["method"], d["dataset"], d["cl"])
        assert rec.result["metrics"]["test_ce"] < 0.98 * math.log(actions), label
        assert rec.result["metrics"]["test_f1"] > 1.1 / actions, label
        assert rec.result["humanlike"]["state_jsd"] is not None
    assert (tmp_path / "demo" / "report.md").exists()
    assert (tmp_path / "demo" / "report.html").exists()
    # one row per (player, learner), each over 5 seeds, every seed there
    table = out[out.index("dataset") : out.index("Paired over shared seeds")]
    rows = [line.split() for line in table.splitlines() if line.startswith("cartpole")]
    learners = [r for r in rows if r[2].endswith("_feedforward")]
    assert sorted((r[1], r[2]) for r in learners) == [
        (s, m) for s in ("sim01", "sim02") for m in ("adam_feedforward", "ga_feedforward")
    ]
    assert all(r[5] == "5" for r in learners)  # the seeds column
    # the main contrast is decided on both players, paired over the five shared seeds
    for subject in ("sim01", "sim02"):
        better = f"adam_feedforward predicts {subject}'s actions better than ga_feedforward"
        assert f"{better} on test CE" in out
    # the discriminator is compared too, marked exactly when the validity suite fails it
    valid, _ = metric_validity("cartpole", "discriminator_auc")
    auc = [line for line in out.splitlines() if "on discriminator AUC" in line]
    assert len(auc) == 2 and all(("✗" in line) != valid for line in auc)
