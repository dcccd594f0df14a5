"""The design guide's code (the exca integration guide hbm was designed from) runs on hbm as
written: same calls, same keys, smaller numbers (tiny budgets), a simulated subject and a
temporary cache folder. Where exca 0.6 forbids a pattern, the working form of
docs/guide-departures.md is tested instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hbm_experiments import (
    CMAESExperiment,
    DataPreprocessingTask,
    ESExperiment,
    GAExperiment,
    HyperparameterSweep,
    SGDExperiment,
    load_experiment_config,
    make_experiment,
    run_multiple_seeds,
)
from hbm_experiments.configs import ConfigError


@pytest.fixture
def folder(tmp_path: Path) -> str:
    return str(tmp_path / "scratch" / "results" / "exca_cache")


def test_section_3_4_yaml(tmp_path: Path, folder: str) -> None:
    path = tmp_path / "cartpole_ga.yaml"
    path.write_text(
        f"""
dataset: cartpole
method: ga_feedforward
subject: sim01
seed: 42

model:
  hidden_size: 4

optimizer:
  population_size: 4
  adaptive_sigma_init: 0.01

training:
  max_optim_time: 1  # 10 hours in the guide

infra:
  folder: {folder}
  cluster: null
"""
    )
    config = load_experiment_config(path)
    results = config.run()
    assert type(config) is GAExperiment
    assert config.training.max_optim_time == 1 and config.training.max_generations is None
    assert results["final_generation"] >= 1  # a pure time budget: it ran until the time was up
    assert len(results["fitness_history"]) == results["final_generation"]
    assert str(config.infra.folder) == folder


def test_section_3_5_ga_experiment(folder: str) -> None:
    exp = GAExperiment(
        experiment_number=1,
        dataset="cartpole",
        method="ga_feedforward",
        subject="sim01",
        seed=42,
        model={"hidden_size": 4},
        optimizer={
            "population_size": 4,
            "adaptive_sigma_init": 0.01,
            "adaptive_sigma_noise": 0.001,
        },
        training={
            "max_optim_time": 36000,
            "max_generations": 2,  # (added: the tiny budget)
            "loss_eval_interval_seconds": 60,
        },
        data={
            "use_cl_info": False,
            "holdout_pct": 0.1,
        },
        infra={
            "folder": folder,
            "cluster": "auto",
        },
    )
    assert exp.infra.cluster in ("local", "slurm")  # "auto" resolved; runs in a subprocess
    exp = make_experiment(exp, cluster=None)  # in this process, for the test
    results = exp.run()
    assert results["final_generation"] == 2
    assert results["subject"] == "sim01" and results["seed"] == 42


def test_section_3_5_sgd_experiment(folder: str) -> None:
    exp = SGDExperiment(
        experiment_number=1,
        dataset="lunarlander",
        method="sgd_reservoir",
        seed=42,
        model={"hidden_size": 4},
        optimizer={"learning_rate": 0.001},
        training={
            "max_optim_time": 36000,
            "max_steps": 2,  # (added: the tiny budget)
            "batch_size": 32,
        },
        infra={
            "folder": folder,
            "cluster": None,  # the guide: "auto" with "gpus_per_node": 1
        },
    )
    results = exp.run()
    assert results["loss_history"] and results["test_loss_history"]
    assert Path(results["checkpoint_path"]).exists()


def test_es_and_cmaes_experiments(folder: str) -> None:
    for cls, method in ((ESExperiment, "es_feedforward"), (CMAESExperiment, "cmaes_feedforward")):
        exp = cls(
            dataset="cartpole",
            method=method,
            seed=42,
            model={"hidden_size": 3},
            optimizer={"population_size": 4},
            training={"max_generations": 2},
            infra={"folder": folder},
        )
        results = exp.run()
        assert len(results["fitness_history"]) == 2, method


def test_section_4_1_usage(folder: str) -> None:
    # Create experiment
    exp = GAExperiment(
        experiment_number=1,
        dataset="cartpole",
        method="ga_feedforward",
        seed=42,
        model={"hidden_size": 4},
        optimizer={"population_size": 4},
        training={"max_generations": 3},  # (added: a budget is required)
        infra={"folder": folder},
    )
    # First call: runs, caches result
    results = exp.run()
    # Second call: Loads from cache instantly!
    assert exp.run() == results
    # Access results
    best = min(results["fitness_history"])
    assert best == pytest.approx(min(results["fitness_history"]))
    assert results["test_loss_history"][-1] > 0
    assert Path(results["checkpoint_path"]).name == "checkpoint.pt"
    assert Path(results["checkpoint_path"]).parent == exp.infra.uid_folder()


def test_section_4_2_sweep(folder: str) -> None:
    base = GAExperiment(
        experiment_number=1,
        dataset="cartpole",
        method="ga_feedforward",
        seed=42,
        optimizer={"population_size": 4},
        training={"max_generations": 2},
        infra={"folder": folder},
    )
    sweep = HyperparameterSweep(
        base_config=base,
        param_name="model.hidden_size",
        param_values=[2, 3],
    )
    results = list(sweep.run_sweep(sweep.param_values))
    lines = [
        f"hidden_size={r['param_value']}: best_fitness={min(r['fitness_history']):.4f}"
        for r in results
    ]
    assert [r["param_value"] for r in results] == [2, 3]
    assert {r["param_name"] for r in results} == {"model.hidden_size"}
    assert lines[0].startswith("hidden_size=2: best_fitness=")
    assert results[0]["num_params"] < results[1]["num_params"]


def test_section_4_3_data(folder: str) -> None:
    data_task = DataPreprocessingTask(
        dataset="cartpole",
        subject="sim01",
        use_cl_info=True,
        infra={"folder": folder},
    )
    data = data_task.load_preprocessed()
    again = data_task.load_preprocessed()  # from the RAM cache
    assert again.human_data is data.human_data
    train_size, test_size = len(data["train_obs"]), len(data["test_obs"])
    assert train_size > test_size > 0
    assert data["metadata"]["input_size"] == data["train_obs"].shape[1] == 6
    assert data["metadata"]["num_actions"] == 2
    assert data.metadata.input_size == 6  # attribute access as well


def test_section_4_4_sgd(folder: str) -> None:
    exp = SGDExperiment(
        experiment_number=1,
        dataset="cartpole",
        method="sgd_reservoir",
        seed=42,
        model={"hidden_size": 4},
        training={"max_steps": 3},
        infra={"folder": folder},
    )
    results = exp.run()
    assert set(results) >= {"loss_history", "test_loss_history", "checkpoint_path"}


def test_section_4_5_seeds(folder: str) -> None:
    base = GAExperiment(
        experiment_number=1,
        dataset="cartpole",
        method="ga_feedforward",
        model={"hidden_size": 3},
        optimizer={"population_size": 4},
        training={"max_generations": 2},
        infra={"folder": folder},
    )
    results = run_multiple_seeds(base, seeds=list(range(3)))
    best_fitnesses = [min(r["fitness_history"]) for r in results]
    summary = f"Mean best fitness: {np.mean(best_fitnesses):.4f} ± {np.std(best_fitnesses):.4f}"
    assert [r["seed"] for r in results] == [0, 1, 2]
    assert summary.startswith("Mean best fitness: ")
    assert len(set(best_fitnesses)) > 1  # the seeds differ


def test_section_5_2_monitoring(folder: str) -> None:
    exp = GAExperiment(
        dataset="cartpole",
        method="ga_feedforward",
        model={"hidden_size": 3},
        optimizer={"population_size": 4},
        training={"max_generations": 2},
        infra={"folder": folder, "cluster": "local"},
    )
    assert exp.infra.status() == "not submitted"
    job = exp.infra.job()
    job.wait()
    assert exp.infra.status() == "completed"
    result = exp.run()
    assert job.result() == result
    assert "generation" in job.stderr() + job.stdout() or job.stdout() is not None


def test_migration_direct_call_equals_the_experiment(folder: str) -> None:
    """§2.4 / §6.2 phase 2: the direct call and the exca-wrapped experiment agree."""
    import hbm_ne

    exp = GAExperiment(
        dataset="cartpole",
        method="ga_feedforward",
        seed=42,
        model={"hidden_size": 4},
        optimizer={"population_size": 4},
        training={"max_generations": 3, "eval_every": 1},
        infra={"folder": folder},
    )
    setup = exp.build()  # what run() passes to train_supervised
    direct = hbm_ne.train_supervised(**setup)
    wrapped = exp.run()
    assert direct["fitness_history"] == wrapped["fitness_history"]  # same code, same inputs
    untimed = [{k: v for k, v in r.items() if k != "elapsed"} for r in direct.history]
    assert untimed == [{k: v for k, v in r.items() if k != "elapsed"} for r in wrapped["history"]]


def test_migration_train_supervised_as_the_guide_calls_it() -> None:
    import hbm_ne

    data = DataPreprocessingTask(dataset="cartpole", subject="sim01").load_preprocessed()
    population = hbm_ne.BatchedFeedforward(4, 2, 6, hidden_sizes=(5,))
    results = hbm_ne.train_supervised(
        population=population,
        train_data=(data["train_obs"], data["train_act"]),
        test_data=(data["test_obs"], data["test_act"]),
        optimizer="ga",
        max_time=1,
    )
    assert results["fitness_history"][-1] <= results["fitness_history"][0]
    assert results["test_loss_history"]


def test_version_bump_and_subclassing(folder: str) -> None:
    """§3.3 and §6.3: a subclass with its own version and its own training hook."""
    from hbm_experiments.tasks import TrainOutput

    calls: list[str] = []

    class NewFitnessExperiment(GAExperiment):
        infra_version: ClassVar[str] = "7"

        def _train(self, data: Any, checkpoint_path: Path, device: Any) -> TrainOutput:
            calls.append(self.method)
            return super()._train(data, checkpoint_path, device)

    cfg = {
        "method": "ga_feedforward",
        "model": {"hidden_size": 3},
        "optimizer": {"population_size": 4},
        "training": {"max_generations": 1},
        "infra": {"folder": folder},
    }
    exp = NewFitnessExperiment(**cfg)
    assert exp.infra.uid_folder().parent.name.endswith("NewFitnessExperiment.run,7")
    exp.run()
    NewFitnessExperiment(**cfg).run()  # cached
    assert calls == ["ga_feedforward"]
    v2 = make_experiment(cfg, version="2")
    assert v2.infra.uid_folder().parent.name == "hbm_experiments.tasks.GAExperiment.run,2"


def test_max_num_timeout_maps_to_requeues(folder: str) -> None:
    exp = GAExperiment(
        training={"max_generations": 1}, infra={"folder": folder, "max_num_timeout": 3}
    )
    assert exp.max_requeues == 3
    assert exp.infra.uid() == GAExperiment(training={"max_generations": 1}).infra.uid()


def test_method_alone_picks_the_class_and_missing_method_says_so() -> None:
    assert type(make_experiment({"method": "sgd_reservoir", "training": {"max_steps": 1}})) is (
        SGDExperiment
    )
    with pytest.raises(ConfigError, match=r"method is required: one of .*ga_feedforward"):
        make_experiment({"dataset": "cartpole", "training": {"max_steps": 1}})


def test_guide_default_subject_without_a_recording(folder: str) -> None:
    with pytest.raises(ConfigError, match=r"sub01.*hbm-data record.*sim01"):
        make_experiment(
            {"method": "ga_feedforward", "subject": "sub01", "training": {"max_generations": 1}}
        )


def test_time_budget_alone_is_honoured(folder: str) -> None:
    results = GAExperiment(
        model={"hidden_size": 3},
        optimizer={"population_size": 4},
        training={"max_optim_time": 2},
        infra={"folder": folder},
    ).run()
    assert results["stop_reason"] == "max_time"
    assert results["train_time"] >= 2


def test_section_5_3_cache_layout_and_code_snapshot(folder: str) -> None:
    """A job on a cluster runs a snapshot of the hbm sources (exca's workdir), so a job that
    waits in a queue, or is requeued, never runs code edited since it was submitted."""
    import json

    exp = GAExperiment(
        model={"hidden_size": 3},
        optimizer={"population_size": 4},
        training={"max_generations": 1},
        infra={"folder": folder, "cluster": "local"},
    )
    exp.run()
    uid = exp.infra.uid_folder()
    names = {p.name for p in uid.iterdir()}
    assert {"config.yaml", "uid.yaml", "job.pkl", "result.json", "model.pt", "code"} <= names
    logs = list((uid / "submitit").resolve().glob("*_log.*"))
    assert logs, "no job logs"
    code = (uid / "code").resolve()
    assert (code / "hbm_ne" / "training.py").exists()
    ran = json.loads((uid / "run_context.json").read_text())["code"]
    assert all(Path(path).is_relative_to(code) for path in ran.values()), ran
