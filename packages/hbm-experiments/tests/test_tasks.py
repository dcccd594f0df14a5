"""The exca layer: uid rules, caching, failure and retry, folder injection, arrays."""

from __future__ import annotations

from pathlib import Path

import pytest
from hbm_experiments import (
    EXPERIMENT_VERSION,
    ExperimentsFailed,
    GAExperiment,
    HyperparameterSweep,
    SGDExperiment,
    cache_root,
    make_experiment,
    run_experiments,
    run_multiple_seeds,
)
from hbm_experiments.tasks import ERROR_FILE, RESULT_FILE
from hbm_fakes import CountingGA, CountingSGD, executions

GENS = {"max_generations": 1}
EPOCHS = {"max_epochs": 1}


def test_cache_folder_injected_from_env_even_with_cluster(hbm_env: Path) -> None:
    exp = GAExperiment(seed=1, training=GENS, infra={"cluster": "local"})
    assert Path(exp.infra.folder) == hbm_env / "cache" == cache_root()
    assert exp.infra.cluster == "local"
    folder = exp.infra.uid_folder()
    assert folder is not None
    assert folder.parent.name == f"hbm_experiments.tasks.GAExperiment.run,{EXPERIMENT_VERSION}"


def test_excluded_fields_share_uid_seed_and_lr_do_not() -> None:
    base = SGDExperiment(method="adam_feedforward", training=EPOCHS)
    same = SGDExperiment(
        method="adam_feedforward",
        experiment_number=7,
        device="cuda",
        num_threads=3,
        training={
            **EPOCHS,
            "log_every_seconds": 13,
            "checkpoint_every": 2,
            "loss_eval_interval_seconds": 5,
            "ckpt_and_behav_eval_interval_seconds": 7,
        },
        infra={"cluster": "local", "timeout_min": 5, "cpus_per_task": 2},
    )
    assert base.infra.uid() == same.infra.uid()
    assert (
        SGDExperiment(method="adam_feedforward", seed=1, training=EPOCHS).infra.uid()
        != base.infra.uid()
    )
    lr = SGDExperiment(method="adam_feedforward", optimizer={"learning_rate": 0.5}, training=EPOCHS)
    assert lr.infra.uid() != base.infra.uid()
    # writing a default explicitly is the same config
    explicit = SGDExperiment(method="adam_feedforward", training={**EPOCHS, "eval_every": 10})
    assert explicit.infra.uid() == base.infra.uid()
    # a budget the method does not use never enters its uid
    both = SGDExperiment(method="adam_feedforward", training={**EPOCHS, "max_generations": 7})
    assert both.infra.uid() == base.infra.uid() and both.training.max_generations is None
    ga = GAExperiment(training=GENS)
    assert GAExperiment(training={**GENS, "max_epochs": 9}).infra.uid() == ga.infra.uid()


def test_second_run_executes_nothing(counter: Path) -> None:
    first = CountingGA(seed=3).run()
    again = CountingGA(seed=3, experiment_number=9).run()  # fresh instance, excluded label
    assert again == first
    assert len(executions(counter)) == 1
    CountingGA(seed=4).run()
    assert len(executions(counter)) == 2
    folder = CountingGA(seed=3).infra.uid_folder()
    assert (folder / RESULT_FILE).exists()


def test_failure_is_not_a_result_and_retry_reruns(counter: Path, hbm_env: Path) -> None:
    (hbm_env / "FAIL").touch()
    with pytest.raises(RuntimeError, match="injected failure"):
        CountingGA(seed=5).run()
    exp = CountingGA(seed=5)
    assert exp.infra.status() == "failed"
    tb = (exp.infra.uid_folder() / ERROR_FILE).read_text()
    assert "injected failure" in tb and "Traceback" in tb
    with pytest.raises(RuntimeError):  # cached mode re-raises without rerunning
        CountingGA(seed=5).run()
    assert len(executions(counter)) == 1
    (hbm_env / "FAIL").unlink()
    result = CountingGA(seed=5, infra={"mode": "retry"}).run()
    assert result["seed"] == 5
    assert len(executions(counter)) == 2
    assert not (exp.infra.uid_folder() / ERROR_FILE).exists()
    assert CountingGA(seed=5).infra.status() == "completed"


def test_class_checks_method_and_budget() -> None:
    with pytest.raises(ValueError, match="SGDExperiment"):
        GAExperiment(method="sgd_feedforward", training=EPOCHS)
    with pytest.raises(ValueError, match=r"no budget .* training\.max_generations"):
        GAExperiment(training={"max_generations": None})
    with pytest.raises(ValueError, match="no budget"):  # a budget GA does not use is none
        GAExperiment(training={"max_epochs": 5})
    cmaes = make_experiment({"method": "cmaes_reservoir", "training": GENS})
    assert type(cmaes).__name__ == "CMAESExperiment"
    adam = make_experiment({"method": "adam_trainable", "training": {"max_optim_time": 5}})
    assert type(adam).__name__ == "SGDExperiment"
    assert adam.training.max_epochs is None and adam.training.max_steps is None


def test_seed_array_in_order_and_only_missing_submitted(counter: Path) -> None:
    CountingGA(seed=2).run()
    results = run_multiple_seeds(CountingGA(), [3, 2, 1])
    assert [r["seed"] for r in results] == [3, 2, 1]
    assert sorted(executions(counter)) == sorted(CountingGA(seed=s).infra.uid() for s in (2, 3, 1))
    run_multiple_seeds(CountingGA(), [1, 2, 3])
    assert len(executions(counter)) == 3


def test_sweep_local_cluster_array(counter: Path) -> None:
    base = CountingSGD(method="adam_feedforward", infra={"cluster": "local"})
    sweep = HyperparameterSweep(
        base_config=base, param_name="model.hidden_size", param_values=[4, 8]
    )
    exps = sweep.experiments()
    assert [e.model.hidden_size for e in exps] == [4, 8]
    assert all(e.infra.cluster == "local" for e in exps)
    results = sweep.run()
    assert [r["num_params"] for r in results] == [28, 56]
    assert len(executions(counter)) == 2  # ran in subprocess jobs, counted through the file
    assert [r["num_params"] for r in sweep.run()] == [28, 56]  # from the cache
    assert len(executions(counter)) == 2


def test_sweep_rejects_unknown_parameter() -> None:
    with pytest.raises(ValueError, match=r"model\.hiden_size"):
        HyperparameterSweep(
            base_config=GAExperiment(training=GENS), param_name="model.hiden_size", param_values=[1]
        )
    with pytest.raises(ValueError, match="hidden_size"):
        HyperparameterSweep(
            base_config=GAExperiment(training=GENS),
            param_name="model.hidden_size",
            param_values=[0],
        )


def test_batch_failure_reports_and_retry_reruns_only_failed(counter: Path, hbm_env: Path) -> None:
    CountingGA(seed=1).run()
    (hbm_env / "FAIL").touch()
    with pytest.raises(ExperimentsFailed) as info:
        run_experiments([CountingGA(seed=1), CountingGA(seed=2)])
    assert list(info.value.failures) == [CountingGA(seed=2).infra.uid()]
    assert info.value.results[0] is not None and info.value.results[1] is None
    (hbm_env / "FAIL").unlink()
    results = run_experiments([CountingGA(seed=1), CountingGA(seed=2)], retry=True)
    assert [r["seed"] for r in results] == [1, 2]
    assert executions(counter) == [CountingGA(seed=s).infra.uid() for s in (1, 2, 2)]


def test_data_task_cached_in_ram_and_on_disk(shared_data_dir: Path) -> None:
    from hbm_experiments import DataPreprocessingTask

    task = DataPreprocessingTask(dataset="cartpole", use_cl_info=True)
    data = task.load()
    assert task.load() is data  # same instance: from RAM
    again = DataPreprocessingTask(dataset="cartpole", use_cl_info=True, data_dir="/elsewhere")
    assert again.infra.uid() == task.infra.uid()  # where the files are is not part of the uid
    assert again.infra.status() == "completed"
    loaded = again.load()  # from disk, not from the (missing) data_dir
    assert loaded.metadata == data.metadata
    assert (loaded.train_obs == data.train_obs).all()
    assert data.metadata.input_size == data.metadata.obs_size + 2


def test_resume_with_changed_sources_warns(caplog: pytest.LogCaptureFixture) -> None:
    """A job restarted in-process imports the (editable) sources anew: a resume that runs other
    code than the start did is told, not silently mixed into one result. (Jobs on a cluster run
    exca's code snapshot instead.)"""
    from hbm_experiments.tasks import CHECKPOINT_FILE, CODE_FILE, code_fingerprint

    config = {
        "method": "ga_feedforward",
        "optimizer": {"population_size": 4},
        "model": {"hidden_size": 2},
        "training": {"max_generations": 3, "eval_every": 1, "checkpoint_every": 1},
    }
    first = GAExperiment(**config).run()
    folder = GAExperiment(**config).infra.uid_folder()
    assert folder is not None and (folder / CHECKPOINT_FILE).exists()
    assert (folder / CODE_FILE).read_text().strip() == code_fingerprint()
    GAExperiment(**config).infra.clear_job()  # as if killed: the checkpoint stays
    again = GAExperiment(**config).run()  # resumes the checkpoint
    assert "changed hbm sources" not in caplog.text
    assert again["metrics"] == first["metrics"]
    GAExperiment(**config).infra.clear_job()
    (folder / CODE_FILE).write_text("0123456789abcdef\n")  # as if started by other code
    GAExperiment(**config).run()
    assert "resuming from checkpoint.pt with changed hbm sources" in caplog.text
    assert "training started with 0123456789abcdef" in caplog.text
