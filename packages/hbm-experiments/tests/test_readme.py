"""The python code shown in the root README and this package's README runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
READMES = [ROOT / "README.md", ROOT / "packages" / "hbm-experiments" / "README.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_root_readme_has_python_and_quick_start() -> None:
    text = READMES[0].read_text()
    assert python_blocks(READMES[0])
    assert "pip install uv\nuv run hbm demo\nuv run nox" in text
    assert "simulated players, not people" in text


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_python_blocks_run(readme: Path) -> None:
    blocks = python_blocks(readme)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for block in blocks:
        exec(compile(block, f"{readme}:python", "exec"), namespace)
