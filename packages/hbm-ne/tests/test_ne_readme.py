"""The README's python code blocks run (in a venv holding only hbm-ne and its test extra)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_short_prototyping_example() -> None:
    blocks = python_blocks()
    assert blocks, f"no python block in {README}"
    assert len(blocks[0].strip().splitlines()) <= 22


def test_readme_code_runs() -> None:
    for block in python_blocks():
        namespace: dict[str, object] = {"__name__": "__readme__"}
        exec(compile(block, str(README), "exec"), namespace)
