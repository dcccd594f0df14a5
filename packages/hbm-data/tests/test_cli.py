"""The `hbm-data` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hbm_data.cli import build_parser, main


def test_check_exit_codes(
    lab_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(lab_file)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "sub02_data_cartpole.json"
    eps = json.loads(lab_file.read_text())
    eps[0]["steps"][1]["action"] = 5
    eps[2]["timestamp"] = "yesterday"
    bad.write_text(json.dumps(eps))
    assert main(["check", str(lab_file), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: 2 problems" in out
    assert "episode 0, step 1, field 'action': action 5 out of range [0, 2)" in out
    assert "episode 2, field 'timestamp'" in out


def test_check_lists_warnings_but_passes(
    lab_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eps = json.loads(lab_file.read_text())
    eps[2]["episode_id"] = 0
    eps[1]["score"] += 3
    lab_file.write_text(json.dumps(eps))
    assert main(["check", str(lab_file)]) == 0
    out = capsys.readouterr().out
    assert f"{lab_file}: OK, 2 warnings" in out
    assert "episode 1, field 'score': warning: score" in out
    assert "episode 2, field 'episode_id': warning: episode_id 0" in out
    empty = tmp_path / "sub02_data_cartpole.json"
    empty.write_text("[]")
    assert main(["check", str(empty)]) == 1  # an empty list is not OK
    assert f"{empty}: 1 problem\n" in capsys.readouterr().out


def test_info_prints_summary_and_writes_png(
    lab_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason='needs the extra: pip install "hbm-data[plot]"')
    png = tmp_path / "scores.png"
    assert main(["info", str(lab_file), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "episodes:  3" in out and "sessions:  1" in out and "CartPole-v1" in out
    assert "SIMULATED" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_then_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], simulate_extra: None
) -> None:
    pytest.importorskip("matplotlib", reason='needs the extra: pip install "hbm-data[plot]"')
    args = ["simulate", "mountaincar", "--subject", "sim05", "--sessions", "2"]
    assert main([*args, "--data-dir", str(tmp_path)]) == 0
    path = tmp_path / "sim05_data_mountaincar.json"
    before = path.read_bytes()
    assert main([*args, "--data-dir", str(tmp_path), "--seed", "3"]) == 0
    assert "exists, kept" in capsys.readouterr().out and path.read_bytes() == before
    png = tmp_path / "p.png"
    assert main(["info", str(path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED player" in out and "sessions:  2" in out and png.exists()


def test_info_on_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "sub01_data_acrobot.json"
    bad.write_text("[{")
    assert main(["info", str(bad)]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_subject_ids_are_taken_as_typed(tmp_path: Path) -> None:
    args = build_parser().parse_args(["record", "cartpole", "--subject", "0123"])
    assert args.subject == "0123"
    args = build_parser().parse_args(["simulate", "acrobot", "--subject", "007", "42"])
    assert args.subject == ["007", "42"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["record", "cartpole", "--subject", "a/b"])


def test_console_script_is_installed() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hbm_data.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("check", "info", "record", "simulate"):
        assert command in proc.stdout
