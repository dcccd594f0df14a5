"""The README's demo at its real budget (about 2-3 minutes on 2 cores): marked slow."""

from __future__ import annotations

from pathlib import Path

import pytest
from hbm_experiments.cli import main
from hbm_experiments.status import find_experiments


@pytest.mark.slow
def test_default_demo_learns_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "4 experiments" in out
    records = [r for r in find_experiments(load_results=True) if r.status == "completed"]
    assert len(records) == 4
    for rec in records:
        assert rec.result is not None
        # every method learned something about the person: better than chance (CE ln 2)
        assert rec.result["metrics"]["test_ce"] < 0.68, rec.result["method"]
        assert rec.result["metrics"]["test_f1"] > 0.55, rec.result["method"]
    assert (tmp_path / "demo" / "report.md").exists()
