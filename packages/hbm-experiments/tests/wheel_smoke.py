"""Smoke test run by `nox -s wheels` in a fresh venv installed from the built wheels.

A tiny real `hbm run` (GA on the simulated CartPole player), then the same command again, which
must answer from the cache; then `hbm status`. HBM_CACHE and HBM_DATA_DIR point to a temp dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def hbm(*args: str) -> str:
    proc = subprocess.run(["hbm", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"hbm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main() -> None:
    cache = Path(os.environ["HBM_CACHE"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "tiny.yaml"
        cfg.write_text(
            "method: ga_feedforward\n"
            "model: {hidden_size: 4}\n"
            "optimizer: {population_size: 4}\n"
            "training: {max_generations: 2, eval_every: 1}\n"
        )
        first = hbm("run", str(cfg), "-q")
        assert "ga_feedforward on cartpole/sim01" in first and "test F1" in first, first
        second = hbm("run", str(cfg), "-q")
        assert "(from cache)" in second, second
    results = list(cache.glob("*/*/result.json"))
    assert len(results) == 1, results
    result = json.loads(results[0].read_text())
    assert result["method"] == "ga_feedforward" and result["simulated"] is True
    assert 0.0 <= result["metrics"]["test_f1"] <= 1.0
    # rollout r of held-out episode e at r·E + e: `repeats` (training.behaviour_repeats) per seed
    repeats = result["humanlike"]["repeats"]
    assert repeats == 5, repeats  # the default
    assert len(result["behaviour"]["model_returns"]) == repeats * len(
        result["behaviour"]["human_returns"]
    )
    status = hbm("status")
    assert "1 experiments: 1 completed" in status, status
    print("wheel smoke ok:", first.strip().splitlines()[-2])


if __name__ == "__main__":
    main()
