"""`hbm demo --real`: says how to install the recordings when they are missing; imports them
once into the data folder; its experiments are GA and Adam on two real players."""

from __future__ import annotations

from pathlib import Path

import pytest
from hbm_data import MissingExtraError
from hbm_experiments import demo_real
from hbm_experiments.cli import main as hbm


def test_missing_recordings_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import hbm_data.overcooked as oc

    def missing() -> list[oc.Trial]:
        raise MissingExtraError("importing the recordings", "overcooked", "overcooked-ai", "")

    monkeypatch.setattr(oc, "read_all_trials", missing)
    monkeypatch.setenv("HBM_DATA_DIR", str(tmp_path))
    assert hbm(["demo", "--real", "--quiet", "--out", str(tmp_path / "out")]) == 2
    out = capsys.readouterr().out
    assert 'pip install "hbm-data[overcooked]"' in out
    assert 'pip install --no-deps "overcooked-ai==1.1.0"' in out


def test_imports_once_and_builds_ga_and_adam_on_two_players(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import hbm_data.overcooked as oc
    from test_real_players import T0, trial

    calls: list[int] = []

    def trials() -> list[oc.Trial]:
        calls.append(1)
        return [trial(1, "train", T0), trial(2, "test", T0 + 600_000)]

    monkeypatch.setattr(oc, "read_all_trials", trials)
    monkeypatch.setenv("HBM_DATA_DIR", str(tmp_path))
    files = demo_real.ensure_imported(tmp_path)
    assert [f.name for f in files] == [
        f"{s}_data_{demo_real.REAL_ENV}.json.gz" for s in demo_real.REAL_SUBJECTS
    ]
    assert (
        all(f.exists() for f in files)
        and (tmp_path / "oc-all_data_overcooked-cramped_room.json.gz").exists()
    )
    demo_real.ensure_imported(tmp_path)
    assert calls == [1]  # the second run finds the files
    exps = demo_real.real_experiments(seeds=[0])
    assert sorted((e.subject, e.method) for e in exps) == sorted(
        (s, m) for s in demo_real.REAL_SUBJECTS for m in ("ga_feedforward", "adam_feedforward")
    )
    assert {e.dataset for e in exps} == {"overcooked-cramped_room"}
