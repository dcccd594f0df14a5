"""The README's python code blocks run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no python code block"
    for i, block in enumerate(blocks):
        exec(compile(block, f"{README}:block{i}", "exec"), {"__name__": "__readme__"})
