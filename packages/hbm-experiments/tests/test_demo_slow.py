"""The README's demo at its real budget (a few minutes on 2 cores): marked slow."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hbm_experiments.cli import main
from hbm_experiments.status import describe, find_experiments


@pytest.mark.slow
def test_default_demo_learns_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "16 experiments" in out
    # not a terminal (as in a Slurm log): progress lines, never one per generation or step
    log_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(log_lines) < 50 * 16, len(log_lines)
    records = [r for r in find_experiments(load_results=True) if r.status == "completed"]
    assert len(records) == 16
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
    # one row per (player, config): 2 players x 2 learners x CL/no CL, each over 2 seeds
    table = out[out.index("dataset") : out.index("Note:")]
    assert table.count("ga_feedforward") == table.count("adam_feedforward") == 4
