"""hbm-experiments overhead: a cached `run()` on a fresh instance, and `hbm status` over 200
cached experiments.

References, timed in alternation in the same process:
- `cached run()` (validate the config, compute the uid, find and unpickle the result) against
  a plain pydantic construction of the same config, and against a plain function call returning
  the same result dict. The ratio says how many constructions one cached read costs; for runs
  of minutes or hours any value here is negligible.
- `hbm status` (finished runs from their result files, exca's job objects for the others,
  one batched Slurm query) against the naive way: building
  every experiment from its config and asking exca for `infra.status()`, which unpickles each
  job. Target: at least as fast (ratio >= 1).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from _harness import Result, interleaved
from hbm_experiments.configs import TrainingConfig
from hbm_experiments.status import find_experiments, format_status_table
from hbm_experiments.tasks import GAExperiment

SUITE = "experiments"


def _result(seed: int) -> dict[str, Any]:
    """A result of realistic size: 100 history rows, 2 x 20 returns."""
    return {
        "method": "ga_feedforward",
        "seed": seed,
        "history": [
            {
                "generation": g,
                "elapsed": 0.1 * g,
                "best_fitness": 0.6,
                "test_ce": 0.6,
                "test_f1": 0.5,
            }
            for g in range(100)
        ],
        "metrics": {"test_ce": 0.6, "test_f1": 0.5, "test_accuracy": 0.7},
        "behaviour": {
            "model_returns": [float(i) for i in range(20)],
            "human_returns": [float(i) for i in range(20)],
            "pct_diff_mean": 0.0,
            "pct_diff_std": 0.0,
            "p_value": 1.0,
        },
    }


class BenchExperiment(GAExperiment):
    """GAExperiment whose training is replaced by returning `_result`: measures the exca layer."""

    training: TrainingConfig = TrainingConfig(max_generations=1)

    def _run_in(self, folder: Path) -> dict[str, Any]:
        return _result(self.seed)


def run(args: argparse.Namespace) -> list[Result]:
    repeat = 5 if args.quick else 15
    n_status = 200
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("HBM_CACHE")
        os.environ["HBM_CACHE"] = tmp
        try:
            for seed in range(n_status):
                BenchExperiment(seed=seed).run()
            config = {"seed": 7, "model": {"hidden_size": 32}}

            def cached_run() -> object:
                return BenchExperiment(**config).run()

            def construct() -> object:
                return BenchExperiment(**config)

            stored = _result(7)

            def plain_call() -> object:
                return dict(stored)

            t = interleaved(
                {"cached": cached_run, "construct": construct, "plain": plain_call},
                repeat=repeat,
                number=20,
            )
            results.append(
                Result(
                    SUITE,
                    "cached run(), fresh instance",
                    "s",
                    t["cached"],
                    "pydantic construction",
                    t["construct"],
                    higher_is_better=False,
                )
            )
            results.append(
                Result(
                    SUITE,
                    "cached run(), fresh instance (vs call)",
                    "s",
                    t["cached"],
                    "plain function call",
                    t["plain"],
                    higher_is_better=False,
                )
            )

            def status_listing() -> object:
                return format_status_table(find_experiments(Path(tmp), job_state_fn=dict))

            def naive_status() -> object:
                return [BenchExperiment(seed=s).infra.status() for s in range(n_status)]

            assert len(find_experiments(Path(tmp))) == n_status + 1
            ts = interleaved(
                {"hbm": status_listing, "naive": naive_status}, repeat=max(3, repeat // 3)
            )
            results.append(
                Result(
                    SUITE,
                    f"hbm status, {n_status} cached experiments",
                    "s",
                    ts["hbm"],
                    "exca status() per experiment",
                    ts["naive"],
                    higher_is_better=False,
                    target=1.0,
                )
            )
        finally:
            if old is None:
                os.environ.pop("HBM_CACHE", None)
            else:
                os.environ["HBM_CACHE"] = old
    return results
