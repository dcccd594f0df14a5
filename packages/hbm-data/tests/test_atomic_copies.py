"""`hbm_data/_atomic.py` is the canonical copy of the one atomic writer: hbm-ne and hbm-dl, which
cannot import hbm-data, hold it byte for byte as `_shared/atomic.py`. Checked here too, so an
edit in hbm-data that was not copied (`uv run nox -s sync_shared`) fails hbm-data's own tests."""

from __future__ import annotations

from pathlib import Path

import hbm_data._atomic
import pytest

PACKAGES = Path(__file__).resolve().parents[2]
COPIES = {
    "hbm-ne": PACKAGES / "hbm-ne" / "src" / "hbm_ne" / "_shared" / "atomic.py",
    "hbm-dl": PACKAGES / "hbm-dl" / "src" / "hbm_dl" / "_shared" / "atomic.py",
}


@pytest.mark.parametrize("package", sorted(COPIES))
def test_the_learners_hold_this_atomic_writer(package: str) -> None:
    copy = COPIES[package]
    if not copy.exists():
        pytest.skip(f"no source tree beside the installed package ({copy} is absent)")
    canonical = Path(hbm_data._atomic.__file__).read_bytes()
    assert copy.read_bytes() == canonical, (
        f"{copy} differs from hbm_data/_atomic.py: run `uv run nox -s sync_shared`"
    )
