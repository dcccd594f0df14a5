"""The README's python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def test_readme_python_blocks_run(capsys: pytest.CaptureFixture[str], simulate_extra: None) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "CartPole-v1 sim01 simulated 6 sessions" in out
    assert "sim03-seed7 twitchy 2 episodes" in out
    assert "expert-cartpole_data_cartpole.json expert seeds replayable: False" in out
    assert "hbm/cartpole/expert-cartpole-v0 round trip identical: True" in out
