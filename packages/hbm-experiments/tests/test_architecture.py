"""docs/architecture.md, the newcomer's map, names only rooms that exist: every dotted module it
names (`hbm_data.x`, `hbm_ne.x.y`, ...) is imported here."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MAP = ROOT / "docs" / "architecture.md"
PACKAGES = ("hbm_data", "hbm_ne", "hbm_dl", "hbm_experiments")


def _named_modules() -> list[str]:
    if not MAP.exists():
        pytest.skip(f"no source tree here ({MAP} is absent): run from a checkout")
    names = re.findall(
        r"`((?:hbm_data|hbm_ne|hbm_dl|hbm_experiments)(?:\.[A-Za-z_]\w*)*)`", MAP.read_text()
    )
    return sorted(set(names))


def test_the_map_names_many_rooms() -> None:
    named = _named_modules()
    assert {n.split(".")[0] for n in named} == set(PACKAGES)
    assert len(named) >= 40, named


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_the_map_names_imports(package: str) -> None:
    named = [n for n in _named_modules() if n.split(".")[0] == package]
    missing = []
    for name in named:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (exc.name == name or name.startswith(exc.name + ".")):
                missing.append(name)
            else:
                raise
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
