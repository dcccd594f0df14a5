"""The README's demo at its real budget (about 2-3 minutes on 2 cores): marked slow."""

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
    assert main(["demo", "--out", str(tmp_path / "demo"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "8 experiments" in out
    records = [r for r in find_experiments(load_results=True) if r.status == "completed"]
    assert len(records) == 8
    # every method learned something about the person: better than chance (CE ln A, F1 1/A)
    chance = {"cartpole": 2, "lunarlander": 4}
    for rec in records:
        assert rec.result is not None
        d = describe(rec)
        actions = chance[d["dataset"]]
        label = (d["method"], d["dataset"], d["cl"])
        assert rec.result["metrics"]["test_ce"] < 0.98 * math.log(actions), label
        assert rec.result["metrics"]["test_f1"] > 1.1 / actions, label
    assert (tmp_path / "demo" / "report.md").exists()
