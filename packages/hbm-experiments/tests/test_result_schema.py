"""A result has one layout, `results.ExperimentResult`, and one place that puts it together,
`results.build_result`: what a run returns and `result.json` holds are exactly its keys."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hbm_experiments.configs import ExperimentConfig
from hbm_experiments.results import Compute, DataInfo, ExperimentResult, build_result
from hbm_experiments.tasks import RESULT_FILE, GAExperiment, SGDExperiment

SCHEMA = set(ExperimentResult.__annotations__)
ONLY_SWEEPS = {"param_name", "param_value"}  # HyperparameterSweep adds them
NE_ONLY = {"fitness_history", "final_generation"}
SGD_ONLY = {"loss_history"}


def _data() -> Any:
    meta = SimpleNamespace(
        env_name="cartpole",
        subject="sim01",
        simulated=True,
        use_cl_info=False,
        content_hash="sha256:ab",
        source_file="sim01_data_cartpole.json",
        n_train=4,
        n_test=2,
    )
    return SimpleNamespace(
        metadata=meta,
        train_act=np.zeros(40),
        test_act=np.zeros(20),
        val_episodes=[object()],
        val_act=np.zeros(9),
    )


@pytest.mark.parametrize("method", ["ga_feedforward", "adam_feedforward"])
def test_build_result_writes_every_key_of_the_layout(method: str) -> None:
    history = [
        {"step": 1, "test_ce": 0.9, "train_loss": 1.0, "generation": 1},
        {"step": 2, "test_ce": 0.7, "train_loss": 0.8, "generation": 2},
    ]
    info = {"stop_reason": "max_generations", "samples_seen": 120, "elapsed": 4.5}
    evaluation = {
        "metrics": {"test_ce": 0.7, "test_accuracy": 0.6, "test_f1": 0.5},
        "behaviour": {"model_mean": 20.0},
        "humanlike": {"action_accuracy": 0.6},
    }
    validation = {"val_loss": 0.8, "val_accuracy": 0.55, "val_f1": None}
    ne = method.startswith("ga")
    config = ExperimentConfig(
        method=method, seed=4, training={"max_generations": 2} if ne else {"max_epochs": 2}
    )
    result = build_result(
        config,
        _data(),
        history=history,
        info=info,
        num_params=10,
        evaluation=evaluation,
        validation=validation,
        references={"person": {}},
        budget={"max_generations": 2},
        model_file="model.pt",
        checkpoint_path="checkpoint.pt",
        started=0.0,
    )
    assert set(result) == SCHEMA - ONLY_SWEEPS - (SGD_ONLY if ne else NE_ONLY)
    assert list(result)[:3] == ["method", "algorithm", "model_kind"]
    assert set(result["data"]) == set(DataInfo.__annotations__)
    assert result["data"]["n_validation_steps"] == 9 and result["data"]["n_test_steps"] == 20
    assert set(result["compute"]) == set(Compute.__annotations__)
    assert result["compute"]["forward_passes"] == result["samples_seen"] == 120
    # chosen on validation, reported on test: both in one block
    assert result["metrics"] == {**evaluation["metrics"], **validation}
    assert result["humanlike"] is evaluation["humanlike"]
    assert result["train_time"] == 4.5 and result["resumed"] is None
    assert result["test_loss_history"] == [0.9, 0.7]
    # the method's defaults the config left None, as they ran
    assert result["method_defaults"] == config.method_defaults()
    assert result["method_defaults"]["model.hidden_size"] == (14 if ne else 50)
    if ne:
        assert result["fitness_history"] == [1.0, 0.8] and result["final_generation"] == 2
    else:
        assert result["loss_history"] == [1.0, 0.8]
    resumed = build_result(
        config,
        _data(),
        history=history,
        info={**info, "resumed_from": 1, "checkpoint_time": "2026-01-01T00:00:00"},
        num_params=10,
        evaluation=evaluation,
        validation=validation,
        references={},
        budget={},
        model_file="model.pt",
        checkpoint_path="checkpoint.pt",
        started=0.0,
    )["resumed"]
    assert resumed == {
        "unit": "generation" if ne else "step",
        "from": 1,
        "checkpoint_time": "2026-01-01T00:00:00",
    }


@pytest.mark.slow
@pytest.mark.parametrize("cls", [GAExperiment, SGDExperiment])
def test_a_run_returns_and_saves_exactly_the_layout(cls: type[Any]) -> None:
    budget = {"max_epochs": 1} if cls is SGDExperiment else {"max_generations": 1}
    exp = cls(seed=2, training={**budget, "eval_every": 1, "behaviour_repeats": 1})
    result = exp.run()
    other = NE_ONLY if cls is SGDExperiment else SGD_ONLY
    assert set(result) == SCHEMA - ONLY_SWEEPS - other
    saved = json.loads((exp.infra.uid_folder() / RESULT_FILE).read_text())
    assert list(saved) == list(result)  # the file holds the same keys, in the same order
    assert set(result["data"]) == set(DataInfo.__annotations__)
    assert {"test_ce", "test_accuracy", "test_f1", "val_loss", "val_accuracy", "val_f1"} <= set(
        result["metrics"]
    )
