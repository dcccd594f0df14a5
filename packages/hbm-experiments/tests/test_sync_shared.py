"""`tools/sync_shared.py` (`nox -s sync_shared`, and the check in `nox -s lint`): it finds every
way a mirrored copy differs from its canonical file, and writing makes the copies equal."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "sync_shared.py"


def _tool() -> ModuleType:
    if not SCRIPT.exists():
        pytest.skip(f"no source tree here ({SCRIPT} is absent): run from a checkout")
    spec = importlib.util.spec_from_file_location("sync_shared", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: Path) -> tuple[Path, Path, Path]:
    ne = root / "packages/hbm-ne/src/hbm_ne/_shared"
    dl = root / "packages/hbm-dl/src/hbm_dl/_shared"
    atomic = root / "packages/hbm-data/src/hbm_data/_atomic.py"
    for d in (ne, dl, atomic.parent):
        d.mkdir(parents=True)
    atomic.write_text("ATOMIC = 2\n")
    (ne / "atomic.py").write_text("ATOMIC = 2\n")
    (ne / "nets.py").write_text("NETS = 2\n")
    (ne / "data.py").write_text("DATA = 1\n")
    (dl / "atomic.py").write_text("ATOMIC = 1\n")  # an older atomic writer
    (dl / "nets.py").write_text("NETS = 1\n")  # edited on one side only
    (dl / "old.py").write_text("OLD = 1\n")  # a module hbm-ne no longer has
    return ne, dl, atomic


def test_check_names_every_difference_and_write_ends_them(tmp_path: Path) -> None:
    tool = _tool()
    ne, dl, _ = _tree(tmp_path)
    problems = tool.differences(tmp_path)
    assert problems == [
        "packages/hbm-dl/src/hbm_dl/_shared/atomic.py differs from "
        "packages/hbm-data/src/hbm_data/_atomic.py",
        "packages/hbm-dl/src/hbm_dl/_shared/atomic.py differs from "
        "packages/hbm-ne/src/hbm_ne/_shared/atomic.py",
        "packages/hbm-dl/src/hbm_dl/_shared/data.py is missing",
        "packages/hbm-dl/src/hbm_dl/_shared/nets.py differs from "
        "packages/hbm-ne/src/hbm_ne/_shared/nets.py",
        "packages/hbm-dl/src/hbm_dl/_shared/old.py has no counterpart in "
        "packages/hbm-ne/src/hbm_ne/_shared",
    ]
    tool.write(tmp_path)
    assert tool.differences(tmp_path) == []
    assert sorted(p.name for p in dl.glob("*.py")) == ["atomic.py", "data.py", "nets.py"]
    assert (dl / "nets.py").read_text() == "NETS = 2\n" == (ne / "nets.py").read_text()
    assert (dl / "atomic.py").read_text() == "ATOMIC = 2\n"


def test_the_repository_is_in_sync() -> None:
    assert _tool().differences() == [], "run `uv run nox -s sync_shared`"
