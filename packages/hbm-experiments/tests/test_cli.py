"""The `hbm` command on real (tiny) experiments: run, cache, status, collect, report, demo."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml
from hbm_experiments import make_experiment
from hbm_experiments.cli import main
from hbm_experiments.evaluation import load_model
from hbm_experiments.status import find_experiments, format_status_table
from hbm_experiments.tasks import CHECKPOINT_FILE, MODEL_FILE, RESULT_FILE
from hbm_fakes import CountingGA

TINY_GA = {
    "method": "ga_feedforward",
    "model": {"hidden_size": 6},
    "optimizer": {"population_size": 6},
    "training": {"max_generations": 2, "eval_every": 1},
}


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_run_then_cached_then_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path / "ga.yaml", TINY_GA)
    assert main(["run", str(cfg), "--set", "seed=2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "ga_feedforward on cartpole/sim01 seed 2" in out and "from cache" not in out
    assert "test F1" in out and "return Δ" in out and "% diff" not in out
    # what the fields left out ran with: ga_feedforward's own defaults, not the set ones
    line = next(x for x in out.splitlines() if "method defaults:" in x)
    assert "training.batch_size=49" in line and "optimizer.adaptive=False" in line
    assert "hidden_size" not in line and "population_size" not in line
    assert main(["run", str(cfg), "--set", "seed=2", "-q"]) == 0
    assert "(from cache)" in capsys.readouterr().out
    exp = make_experiment({**TINY_GA, "seed": 2})
    folder = exp.infra.uid_folder()
    assert (folder / RESULT_FILE).exists() and (folder / CHECKPOINT_FILE).exists()
    model = load_model(folder / MODEL_FILE)
    assert model.state_dict()["hidden.0.weight"].shape[0] == 6
    # validation (what chooses) printed beside test (what reports), each its own number
    m = exp.run()["metrics"]
    assert (
        f"val CE {m['val_loss']:.3f}  val F1 {m['val_f1']:.3f}  test CE {m['test_ce']:.3f}" in out
    )


def test_summary_without_validation_episodes_says_so() -> None:
    from hbm_experiments.cli import _summary

    metrics = {"test_ce": 0.61234, "test_f1": 0.5, "val_loss": None, "val_f1": None}
    line = _summary({"metrics": metrics, "behaviour": {"skipped": "no simulator"}})
    assert line.startswith("val CE -  val F1 -  test CE 0.612  test F1 0.500")


def test_invalid_config_exit_2_names_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _write(tmp_path / "bad.yaml", TINY_GA)
    assert main(["run", str(cfg), "--set", "model.hiden_size=3"]) == 2
    err = capsys.readouterr().err
    assert "model.hiden_size" in err and str(cfg) in err
    assert not (tmp_path / "cache").exists()  # nothing was run or written


def test_checkpoint_resume_and_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sgd = {
        "method": "adam_reservoir",
        "model": {"hidden_size": 6},
        "training": {"max_steps": 3, "eval_every": 1, "batch_size": 4},
    }
    first = make_experiment(sgd).run()
    exp = make_experiment(sgd)
    exp.infra.clear_job()  # as if the job was killed: the checkpoint stays in the uid folder
    assert (exp.infra.uid_folder() / CHECKPOINT_FILE).exists()
    resumed = make_experiment(sgd).run()
    assert resumed["history"] == first["history"]  # restored, not retrained
    monkeypatch.setenv("HBM_CACHE", str(tmp_path / "other-cache"))
    fresh = make_experiment(sgd).run()
    assert fresh["metrics"] == first["metrics"] and fresh["behaviour"] == first["behaviour"]
    assert [r["test_ce"] for r in fresh["history"]] == [r["test_ce"] for r in first["history"]]


def test_status_collect_report(
    tmp_path: Path, hbm_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in (0, 1):
        for cl in (False, True):
            CountingGA(seed=seed, data={"use_cl_info": cl}).run()
    (hbm_env / "FAIL").touch()
    with pytest.raises(RuntimeError):
        CountingGA(seed=9).run()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "5 experiments: 4 completed, 1 failed" in out
    assert "RuntimeError: injected failure for the retry test" in out
    assert main(["status", "--where", "data.use_cl_info=true", "--where", "seed=1"]) == 0
    assert "1 experiments: 1 completed" in capsys.readouterr().out
    assert main(["collect", "--out", str(tmp_path / "all.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert len(rows) == 5
    done = [r for r in rows if r["status"] == "completed"]
    assert {r["config.data.use_cl_info"] for r in done} == {"True", "False"}
    assert all(float(r["test_f1"]) > 0 for r in done)
    assert main(["report", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "ga_feedforward" in out and "yes" in out and "no" in out
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {
        "curves_cartpole_sim01.png",
        "final_f1_cartpole_sim01.png",
        "return_diff_cartpole_sim01.png",
        "returns_cartpole_sim01.png",
        "report.md",
    } <= names
    md = (tmp_path / "rep" / "report.md").read_text()
    # seed 9 ran (and failed) without CL only: the CL row says it lacks it
    assert "| cartpole | sim01 | ga_feedforward | person | yes | 2 of 3 (1 missing) |" in md
    assert "| cartpole | sim01 | ga_feedforward | person | no | 2 of 3 (1 failed) |" in md


def test_status_asks_slurm_once_for_all_jobs(tmp_path: Path, hbm_env: Path) -> None:
    """Real experiments whose saved jobs (exca's `job.pkl`) are Slurm jobs still queued, or
    a `cluster="local"` job: exca's job objects give the ids, Slurm is asked once; a finished
    one is not asked about at all."""
    import pickle

    import submitit

    for i, seed in enumerate((3, 4, 5, 6)):
        exp = make_experiment({**TINY_GA, "seed": seed})
        uid = exp.infra.uid_folder(create=True)
        exp.infra.write_configs_now()
        logs = uid.parent / "logs" / "me" / f"77_{i}"
        logs.mkdir(parents=True)
        job: Any = submitit.SlurmJob(folder=logs, job_id=f"77_{i}")
        if seed == 6:  # a `cluster="local"` job: its id is a process id, never asked of sacct
            job = submitit.local.local.LocalJob(folder=logs, job_id="77_3")
        (uid / "job.pkl").write_bytes(pickle.dumps(job))
    with pytest.MonkeyPatch.context() as env:  # as inside a `cluster="local"` submitit job
        env.setenv("SUBMITIT_EXECUTOR", "local")
        env.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
        make_experiment({**TINY_GA, "seed": 7}).run()
    calls: list[list[str]] = []

    def states(ids):  # type: ignore[no-untyped-def]
        calls.append(list(ids))
        return {"77_0": "RUNNING", "77_1": "PENDING", "77_2": "TIMEOUT"}

    records = find_experiments(job_state_fn=states)
    by_seed = {int(r.config["seed"]): r for r in records}
    assert sorted(calls[0]) == ["77_0", "77_1", "77_2"] and len(calls) == 1
    assert [by_seed[s].status for s in (3, 4, 5, 6, 7)] == [
        "running",
        "pending",
        "TIMEOUT",
        "running",
        "completed",
    ]
    # a finished run keeps the id of the job that ran it (its run_context.json)
    assert by_seed[6].job_id == "77_3" and by_seed[7].job_id == "4242"
    assert "77_2" in format_status_table(records)


def test_status_lists_a_class_it_cannot_import(tmp_path: Path) -> None:
    """A notebook's subclass (not importable by the `hbm` command) is listed from its files,
    its Slurm job still asked of Slurm."""
    import pickle

    import submitit

    root = tmp_path / "cache"
    uid = root / "my_notebook.MyGA.run,1" / "seed=3-abc"
    uid.mkdir(parents=True)
    (uid / "uid.yaml").write_text("seed: 3\n")
    (uid / "config.yaml").write_text("seed: 3\nmethod: ga_feedforward\n")
    logs = uid.parent / "logs" / "me" / "88"
    logs.mkdir(parents=True)
    (uid / "job.pkl").write_bytes(pickle.dumps(submitit.SlurmJob(folder=logs, job_id="88")))
    (record,) = find_experiments(root, job_state_fn=lambda ids: dict.fromkeys(ids, "PENDING"))
    assert (record.task, record.version, record.status, record.job_id) == (
        "MyGA",
        "1",
        "pending",
        "88",
    )


def test_demo_tiny_then_from_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "demo"
    demo = ["demo", "--budget", "tiny", "--envs", "cartpole", "--num-seeds", "1", "-q"]
    demo += ["--subjects", "sim01", "--out", str(out_dir)]
    assert main(demo) == 0
    first = capsys.readouterr().out
    assert "4 experiments on simulated players (0 already cached)" in first
    for label in ("ga_feedforward", "adam_feedforward", "person", "random"):
        assert label in first  # the learners and the person / random reference rows
    assert "simulated players, not people" in first
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert pngs == [
        "curves_cartpole_sim01.png",
        "final_f1_cartpole_sim01.png",
        "humanlike_cartpole_sim01.png",
        "return_diff_cartpole_sim01.png",
        "returns_cartpole_sim01.png",
    ]
    assert (out_dir / "report.html").exists()
    results = sorted((tmp_path / "cache").glob(f"*/*/{RESULT_FILE}"))
    assert len(results) == 4
    stamps = [p.stat().st_mtime_ns for p in results]
    assert main(demo) == 0
    second = capsys.readouterr().out
    assert "(4 already cached)" in second
    assert [p.stat().st_mtime_ns for p in results] == stamps  # nothing was recomputed
    table = lambda text: text[text.index("dataset") : text.index("Note:")]  # noqa: E731
    assert table(second) == table(first)
    # two at a time on worker processes (the default) or one by one here: the same results
    serial = [*demo, "--parallel", "1", "--cache", str(tmp_path / "serial")]
    assert main(serial) == 0
    third = capsys.readouterr().out
    assert "(0 already cached)" in third and table(third) == table(first)
