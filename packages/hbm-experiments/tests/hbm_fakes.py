"""Experiments whose training is replaced by a counted stand-in, to test the exca layer
(caching, uid, retry, arrays, status) in milliseconds. Importable by subprocess jobs
(`cluster="local"`) through PYTHONPATH, which conftest sets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pydantic
from hbm_experiments.tasks import GAExperiment, SGDExperiment


def _count(exp: Any) -> None:
    counter = Path(os.environ["HBM_TEST_COUNTER"])
    with counter.open("a") as f:
        f.write(f"{exp.infra.uid()}\n")
    if (counter.parent / "FAIL").exists():
        raise RuntimeError("injected failure for the retry test")


def executions(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def fake_result(exp: Any) -> dict[str, Any]:
    """The same layout as a real result, with numbers derived from the config."""
    score = 100.0 + exp.seed + exp.resolved("model").hidden_size
    human = [100.0, 120.0, 80.0]
    return {
        "method": exp.method,
        "algorithm": exp.algorithm,
        "model_kind": exp.model_kind,
        "dataset": exp.dataset,
        "subject": exp.subject,
        "simulated": True,
        "use_cl_info": exp.data.use_cl_info,
        "seed": exp.seed,
        "num_params": exp.resolved("model").hidden_size * 7,
        "method_defaults": exp.method_defaults(),
        "train_time": 0.01,
        "history": [
            {"generation": g, "elapsed": 0.1 * g, "test_ce": 1.0 / g, "test_f1": 0.5 + 0.01 * g}
            for g in range(1, 6)
        ],
        "metrics": {
            "test_ce": 0.5,
            "test_f1": 0.6 + exp.data.use_cl_info * 0.1,
            "test_accuracy": 0.7,
        },
        "behaviour": {
            "model_returns": [score, score + 1, score - 1],
            "human_returns": human,
            "model_mean_return": score,
            "human_mean_return": 100.0,
            "pct_diff_mean": score - 100.0,
            "pct_diff_std": 1.0,
            "pct_diff_median": score - 100.0,
            "mannwhitney_u": 6.0,
            "p_value": 0.5,
            "cohen_d": 0.1,
        },
        "model_file": "model.pt",
    }


def _with_budget(data: Any, budget: dict[str, Any]) -> Any:
    """The fakes never train: a config without a budget gets a nominal one (real experiments
    refuse a config without one)."""
    if isinstance(data, dict) and "training" not in data:
        return {**data, "training": budget}
    return data


class CountingGA(GAExperiment):
    @pydantic.model_validator(mode="before")
    @classmethod
    def _nominal_budget(cls, data: Any) -> Any:
        return _with_budget(data, {"max_generations": 1})

    def _run_in(self, folder: Path) -> dict[str, Any]:
        _count(self)
        return fake_result(self)


class CountingSGD(SGDExperiment):
    @pydantic.model_validator(mode="before")
    @classmethod
    def _nominal_budget(cls, data: Any) -> Any:
        return _with_budget(data, {"max_epochs": 1})

    def _run_in(self, folder: Path) -> dict[str, Any]:
        _count(self)
        return fake_result(self)
