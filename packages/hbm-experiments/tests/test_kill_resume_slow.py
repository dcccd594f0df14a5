"""kill -9 at random points, some during checkpoint writes: the restarted run resumes to a
result bit-identical to an uninterrupted one (GA, Adam, evolving-topology GA, GA on returns
with every transfer mode, adversarial GA). Slow: each restart imports torch."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.slow

KILLS = 12
_TIMED = ("elapsed", "train_time", "resumed")

CONFIGS: dict[str, dict[str, Any]] = {
    "ga": {
        "method": "ga_feedforward",
        "num_threads": 1,
        "optimizer": {"population_size": 48},
        "model": {"hidden_size": 24},
        "training": {"max_generations": 300, "eval_every": 25, "checkpoint_every": 1},
    },
    "adam": {
        "method": "adam_feedforward",
        "num_threads": 1,
        "model": {"hidden_size": 24},
        "training": {"max_steps": 1500, "eval_every": 100, "checkpoint_every": 1},
    },
    "dynamic": {  # the graphs and their running statistics travel in the checkpoint
        "method": "ga_dynamic",
        "num_threads": 1,
        "optimizer": {"population_size": 48},
        "training": {"max_generations": 70, "eval_every": 10, "checkpoint_every": 1},
    },
    "env": {  # saved episodes, hidden states and accumulated returns follow the lineages
        "method": "ga_env_recurrent",
        "num_threads": 1,
        "model": {"hidden_size": 16},
        "optimizer": {"population_size": 48},
        "environment": {
            "episodes": 2,
            "steps_per_generation": 200,
            "env_transfer": True,
            "mem_transfer": True,
            "fit_transfer": True,
        },
        "training": {"max_generations": 160, "eval_every": 20, "checkpoint_every": 1},
    },
    "adversarial": {  # the discriminator population and its GA state travel too
        "method": "ga_adversarial_feedforward",
        "num_threads": 1,
        "model": {"hidden_size": 16},
        "optimizer": {"population_size": 24},
        "data": {"max_train_episodes": 4},
        "adversarial": {
            "discriminator": "ga",
            "discriminator_population_size": 16,
            "windows_per_class": 128,
            "max_episode_steps": 200,
        },
        "training": {"max_generations": 200, "eval_every": 25, "checkpoint_every": 1},
    },
}


def _untimed(result: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in result.items() if k not in _TIMED}
    out["checkpoint_path"] = Path(result["checkpoint_path"]).name  # the caches' roots differ
    out["history"] = [{k: v for k, v in r.items() if k != "elapsed"} for r in result["history"]]
    return out


def _start(config: Path, cache: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HBM_CACHE": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "hbm_experiments.cli", "run", str(config), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _uid_folder(cache: Path) -> Path | None:
    found = [p.parent for p in cache.glob("*/*/run_context.json")]
    return found[0] if found else None


def _kill_when_due(proc: subprocess.Popen[bytes], cache: Path, rng: random.Random) -> str:
    """Wait until this process has written a checkpoint, then kill it: at a random moment, or
    while a checkpoint temp file exists (a write in progress). -> how it was killed."""
    during_write = rng.random() < 0.5
    delay = rng.uniform(0.0, 0.4)
    deadline = time.monotonic() + 300
    folder, seen = None, None
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress for 5 minutes"
        folder = folder or _uid_folder(cache)
        ckpt = folder / "checkpoint.pt" if folder else None
        if ckpt is not None and ckpt.exists():
            mtime = ckpt.stat().st_mtime_ns
            seen = mtime if seen is None else seen
            if mtime != seen:  # this process checkpointed at least once: it made progress
                if during_write:
                    if list(folder.glob(".checkpoint.pt.*.tmp")):  # type: ignore[union-attr]
                        proc.send_signal(signal.SIGKILL)
                        return "during a checkpoint write"
                else:
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    return "at a random moment"
        time.sleep(0.0005 if during_write else 0.01)
    return "finished"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_kill_9_at_random_points_resumes_bit_identically(name: str, tmp_path: Path) -> None:
    import yaml

    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(CONFIGS[name]))
    reference_cache, killed_cache = tmp_path / "reference", tmp_path / "killed"
    assert _start(config, reference_cache).wait(timeout=900) == 0
    rng = random.Random(f"kills-{name}")
    how: list[str] = []
    while len(how) < KILLS:
        proc = _start(config, killed_cache)
        outcome = _kill_when_due(proc, killed_cache, rng)
        proc.wait(timeout=60)
        if outcome == "finished":
            break
        how.append(outcome)
    assert len(how) >= 10, f"only {len(how)} kills before the run finished: make it longer"
    assert "during a checkpoint write" in how and "at a random moment" in how
    final = _start(config, killed_cache)
    assert final.wait(timeout=900) == 0
    (ref_folder,) = [p.parent for p in reference_cache.glob("*/*/result.json")]
    (got_folder,) = [p.parent for p in killed_cache.glob("*/*/result.json")]
    assert got_folder.name == ref_folder.name
    reference = json.loads((ref_folder / "result.json").read_text())
    resumed = json.loads((got_folder / "result.json").read_text())
    assert resumed["resumed"] is not None  # the last process did resume a checkpoint
    assert _untimed(resumed) == _untimed(reference)  # exact: same code, same inputs
    ref_model = torch.load(ref_folder / "model.pt", weights_only=True)["state_dict"]
    got_model = torch.load(got_folder / "model.pt", weights_only=True)["state_dict"]
    assert ref_model.keys() == got_model.keys()
    for key, value in ref_model.items():  # a DynamicNet's graph is extra state, not a tensor
        same = torch.equal(value, got_model[key]) if torch.is_tensor(value) else None
        assert same if same is not None else value == got_model[key], key
    assert resumed["train_time"] > 0
    assert not list(got_folder.glob(".*.tmp"))  # orphaned temp files were cleaned up
