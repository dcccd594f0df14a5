"""Experiments on a real Slurm cluster: single jobs, seed arrays, sweeps with a failure and
`--retry`, a time limit that requeues and resumes, `scancel`, and requests the cluster cannot
satisfy. Run with `uv run nox -s slurm` (starts the local one-node cluster of tools/slurm/ and
stops it afterwards), or start it yourself with `bash tools/slurm/start.sh` and run
`uv run pytest packages/hbm-experiments/tests -m slurm`.

Without a cluster these tests skip; with `HBM_SLURM_REQUIRED=1` (set by the nox session) they
fail instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import submitit
import torch
from hbm_experiments import (
    GAExperiment,
    SGDExperiment,
    make_experiment,
    run_experiments,
    run_multiple_seeds,
    slurm,
)
from hbm_experiments.cli import main as hbm
from hbm_experiments.slurm import JobState, SlurmJob
from hbm_experiments.status import describe, find_experiments
from test_research_lines import ADVERSARIAL, DYNAMIC, ENV, ENV_RECURRENT

pytestmark = pytest.mark.slurm

HOW_TO_START = (
    "start the local cluster with `bash tools/slurm/start.sh` or run `uv run nox -s slurm`"
)

# num_threads=1 (excluded from the uid): parallel jobs on a small machine do not oversubscribe it
GA: dict[str, Any] = {
    "method": "ga_feedforward",
    "num_threads": 1,
    "optimizer": {"population_size": 10},
    "model": {"hidden_size": 4},
    "training": {"max_generations": 5, "eval_every": 5},
}
SGD: dict[str, Any] = {
    "method": "sgd_feedforward",
    "num_threads": 1,
    "model": {"hidden_size": 4},
    "training": {"max_epochs": 1, "eval_every": 50},
}


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    """Skip (or, with HBM_SLURM_REQUIRED=1, fail) when no Slurm controller answers."""
    reason = slurm._unavailable_reason()
    if reason is None:
        return
    if os.environ.get("HBM_SLURM_REQUIRED") == "1":
        pytest.fail(f"HBM_SLURM_REQUIRED=1 but Slurm is not usable: {reason}", pytrace=False)
    pytest.skip(f"no Slurm cluster ({reason}): {HOW_TO_START}")


@pytest.fixture(autouse=True)
def simulated_data(shared_data_dir: Path) -> None:
    """Create the simulated subject once, here, rather than racing in parallel jobs."""
    from hbm_data import load_human_data

    load_human_data("cartpole", "sim01", data_dir=shared_data_dir)


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """`hbm` (the CLI) adds stream handlers to our loggers; drop them after each test so later
    log lines do not go to a closed capture stream."""
    names = ("hbm_experiments", "hbm_data", "hbm_ne", "hbm_dl", "exca")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    saved_levels = {n: logging.getLogger(n).level for n in names}
    yield
    for n, (handlers, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.propagate = propagate
        lg.setLevel(saved_levels[n])


@pytest.fixture
def submissions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the `sbatch` calls made by this process: 1 for a job, N for an N-task array."""
    sizes: list[int] = []
    original = submitit.SlurmExecutor._internal_process_submissions

    def counted(self: Any, delayed: Sequence[Any]) -> Any:
        sizes.append(len(delayed))
        return original(self, delayed)

    monkeypatch.setattr(submitit.SlurmExecutor, "_internal_process_submissions", counted)
    return sizes


@pytest.fixture
def sacct_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every `sacct` command run through hbm_experiments.slurm."""
    calls: list[list[str]] = []
    original = slurm._run

    def recorded(cmd: Sequence[str], timeout: float) -> str:
        if cmd[0] == "sacct":
            calls.append(list(cmd))
        return original(cmd, timeout)

    monkeypatch.setattr(slurm, "_run", recorded)
    return calls


@pytest.fixture
def frozen_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the hbm packages' sources, first on the PYTHONPATH of every job submitted from
    here on (Slurm exports the submitting environment, to requeued restarts too).

    The packages are installed editable: a job, and above all a requeued job that restarts a
    minute later, imports whatever the working tree holds *then*. Edits made meanwhile (say a
    faster cross-entropy with different last bits) make two runs of one config differ for
    reasons unrelated to what a test compares. With the copy, every job of the test runs the
    same code, whatever happens to the tree.
    """
    snapshot = tmp_path / "frozen-src"
    for name in ("hbm_data", "hbm_ne", "hbm_dl", "hbm_experiments"):
        module = importlib.import_module(name)
        assert module.__file__ is not None
        shutil.copytree(
            Path(module.__file__).parent,
            snapshot / name,
            ignore=shutil.ignore_patterns("__pycache__", ".mypy_cache"),
        )
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", str(snapshot) + (os.pathsep + path if path else ""))
    return snapshot


def infra(folder: Path, **extra: Any) -> dict[str, Any]:
    return {
        "cluster": "slurm",
        "folder": str(folder),
        "timeout_min": 10,
        "cpus_per_task": 1,
    } | extra


def wait_for(
    job_ids: Sequence[str], done: Callable[[dict[str, SlurmJob]], bool], timeout: float = 120
) -> dict[str, SlurmJob]:
    """Poll sacct (which lags the controller by a second or two) until `done(jobs)`."""
    end = time.monotonic() + timeout
    while True:
        jobs = slurm.query_jobs(job_ids)
        if done(jobs):
            return jobs
        if time.monotonic() > end:
            raise AssertionError(f"Slurm jobs {list(job_ids)} still {jobs} after {timeout} s")
        time.sleep(0.5)


def all_finished(ids: Sequence[str]) -> Callable[[dict[str, SlurmJob]], bool]:
    return lambda jobs: all(i in jobs and jobs[i].state.finished for i in ids)


def job_logs(job: Any) -> str:
    """stdout + stderr of a submitit job, for assertion messages."""
    try:
        out, err = job.stdout() or "", job.stderr() or ""
        return f"\n--- stdout (end) ---\n{out[-3000:]}\n--- stderr (end) ---\n{err[-3000:]}"
    except Exception as exc:  # the logs are a debugging aid only
        return f"(no logs: {exc})"


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A result without wall-clock fields (they differ between any two runs), what says whether
    it resumed, and the cache root in the checkpoint path (the runs use two caches)."""
    out = {k: v for k, v in result.items() if k not in ("train_time", "elapsed", "resumed")}
    if "checkpoint_path" in out:
        out["checkpoint_path"] = Path(out["checkpoint_path"]).name
    out["history"] = [{k: v for k, v in row.items() if k != "elapsed"} for row in out["history"]]
    return out


def first_difference(a: Any, b: Any, path: str = "result") -> str:
    """Where two results first differ, e.g. `result.history[37].test_f1: 0.51 != 0.52`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r} != {b!r}"


# ----------------------------------------------------------------------------------------------


def test_cluster_is_usable() -> None:
    assert slurm.slurm_available()
    assert slurm.resolve_cluster("auto") == "slurm"
    nodes = slurm.cluster_nodes()
    assert nodes and all(n.cpus >= 1 for n in nodes)
    assert any(n.default_partition for n in nodes)


@pytest.mark.timeout(300)
def test_ga_and_sgd_run_as_slurm_jobs_and_are_cached(
    tmp_path: Path, submissions: list[int]
) -> None:
    ga = GAExperiment(**GA, infra=infra(tmp_path))
    sgd = SGDExperiment(**SGD, infra=infra(tmp_path))
    jobs = [ga.infra.job(), sgd.infra.job()]  # both submitted before waiting: they run together
    assert submissions == [1, 1]
    assert all(isinstance(j, submitit.SlurmJob) for j in jobs)
    results = [ga.run(), sgd.run()]
    ids = [j.job_id for j in jobs]
    states = wait_for(ids, all_finished(ids))
    for job in jobs:
        assert states[job.job_id].state is JobState.COMPLETED, job_logs(job)
    assert results[0]["algorithm"] == "ga" and results[1]["algorithm"] == "sgd"
    assert all(math.isfinite(r["metrics"]["test_ce"]) for r in results)
    # fresh instances read the cache: nothing is submitted, the same result comes back
    again = [
        GAExperiment(**GA, infra=infra(tmp_path)).run(),
        SGDExperiment(**SGD, infra=infra(tmp_path)).run(),
    ]
    assert submissions == [1, 1]
    assert again == results


@pytest.mark.timeout(400)
def test_seeds_go_out_as_one_array_and_status_asks_sacct_once(
    tmp_path: Path,
    submissions: list[int],
    sacct_calls: list[list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = GAExperiment(**GA, infra=infra(tmp_path))
    seeds = [0, 1, 2, 3]
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["results"] = run_multiple_seeds(base, seeds)
        except BaseException as exc:  # surfaced in the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        # while the array is queued or running: `hbm status` shows every task, one sacct call
        folders: list[Path] = []
        end = time.monotonic() + 60
        while len(folders) < 4 and time.monotonic() < end and worker.is_alive():
            folders = [
                p.parent for p in tmp_path.glob("*/*/job.pkl") if (p.parent / "submitit").exists()
            ]
            time.sleep(0.2)
        assert len(folders) == 4, f"array not submitted: {outcome}"
        records = find_experiments(tmp_path)
        assert len(sacct_calls) == 1
        in_flight = {r.job_id: r.status for r in records}
        array_ids = {jid.partition("_")[0] for jid in in_flight if jid}
        assert len(array_ids) == 1, in_flight
        (array_id,) = array_ids
        assert set(in_flight) == {f"{array_id}_{i}" for i in range(4)}
        allowed = {"pending", "running", "completed", "COMPLETED", "REQUEUED"}
        assert set(in_flight.values()) <= allowed, in_flight
        assert hbm(["status", "--cache", str(tmp_path)]) == 0
        table = capsys.readouterr().out
        assert len(sacct_calls) <= 2  # the CLI's listing: at most one more call
        for i in range(4):
            assert f"{array_id}_{i}" in table
    finally:
        worker.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    results = outcome["results"]
    assert submissions == [4]  # ONE sbatch, an array of 4
    assert [r["seed"] for r in results] == seeds
    jobs = wait_for([array_id], all_finished([f"{array_id}_{i}" for i in range(4)]))
    assert {k: v.state for k, v in jobs.items()} == {
        f"{array_id}_{i}": JobState.COMPLETED for i in range(4)
    }
    assert run_multiple_seeds(base, seeds) == results  # from the cache
    assert submissions == [4]


@pytest.mark.timeout(400)
def test_sweep_failure_is_shown_and_retry_resubmits_only_it(
    tmp_path: Path,
    submissions: list[int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    monkeypatch.setenv("HBM_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "ga.yaml"
    config.write_text(yaml.safe_dump(GA))
    # the subject "nobody" has a recording the validator rejects: that experiment is made (its
    # file has a content hash) but raises inside its Slurm job, when the data is loaded
    data_dir = Path(os.environ["HBM_DATA_DIR"])
    (data_dir / "nobody_data_cartpole.json").write_text('[{"steps": "not a list"}]')
    sweep = ["sweep", str(config), "--param", "subject", "--values", "sim01", "nobody",
             "--cluster", "slurm", "--infra", "timeout_min=10", "--infra", "cpus_per_task=1",
             "--cache", str(tmp_path / "cache")]  # fmt: skip
    assert hbm(sweep) == 1
    out = capsys.readouterr()
    assert "1 of 2 experiments failed" in out.err
    assert submissions == [2]

    records = {describe(r)["subject"]: r for r in find_experiments(tmp_path / "cache")}
    assert records["sim01"].status == "completed"
    assert records["nobody"].status == "failed"
    assert records["nobody"].error and "Traceback" in records["nobody"].error
    assert "nobody" in records["nobody"].error
    done_job = records["sim01"].job_id
    failed_job = records["nobody"].job_id
    jobs = wait_for([done_job, failed_job], all_finished([done_job, failed_job]))
    assert jobs[done_job].state is JobState.COMPLETED
    assert jobs[failed_job].state is JobState.FAILED  # never "completed"

    assert hbm(["status", "--cache", str(tmp_path / "cache")]) == 0
    table = capsys.readouterr().out
    assert re.search(r"\bfailed\b", table) and re.search(r"\bcompleted\b", table)
    assert records["nobody"].error_summary in table  # the exception line of the traceback

    assert hbm([*sweep, "--retry"]) == 1  # still no data for "nobody": it fails again
    assert submissions == [2, 1]  # only the failed experiment went out again
    after = {describe(r)["subject"]: r for r in find_experiments(tmp_path / "cache")}
    assert after["sim01"].job_id == done_job and after["sim01"].status == "completed"
    assert after["nobody"].job_id != failed_job and after["nobody"].status == "failed"


def _seconds_per_generation(tmp_path: Path) -> float:
    """Time of one generation of the test's GA on this machine (in-process, no cluster), from
    the slope of the history so that start-up costs do not count."""
    cfg = {**GA, "training": {**GA["training"], "max_generations": 600, "eval_every": 100}}
    result = GAExperiment(**cfg, seed=99, infra={"folder": str(tmp_path / "calibration")}).run()
    first, last = result["history"][0], result["history"][-1]
    return (last["elapsed"] - first["elapsed"]) / max(1, last["generation"] - first["generation"])


@pytest.mark.timeout(540)
def test_time_limit_requeues_and_resumes_to_the_same_result(
    tmp_path: Path, submissions: list[int], frozen_sources: Path
) -> None:
    # Slurm warns a 1-minute job 25-55 s after it starts (limits are checked every 30 s), so a
    # run with more than ~55 s of training is always cut short and resumes from its checkpoint.
    # Sized for 60 s by a calibration; a loaded machine can make the calibration too long or too
    # short, so a run that finished before its warning is redone once, 3x longer.
    # The reference is a Slurm job too, submitted with the limited one: both run the frozen
    # copy of the sources (see `frozen_sources`), and the only difference left is the requeue.
    code = "import hbm_ne, hbm_experiments; print(hbm_ne.__file__, hbm_experiments.__file__)"
    where = subprocess.run(
        ["srun", "-n1", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert where and all(Path(f).is_relative_to(frozen_sources) for f in where), where
    per_generation = _seconds_per_generation(tmp_path)
    for attempt, seconds in enumerate((60, 180)):
        generations = max(100, round(seconds / per_generation))
        cfg = {
            **GA,
            "training": {
                **GA["training"],
                "max_generations": generations,
                "eval_every": max(100, generations // 100),
                "checkpoint_every": max(20, generations // 100),  # about every second
            },
        }
        folder = tmp_path / f"attempt{attempt}"
        limited = GAExperiment(
            **cfg, infra=infra(folder / "slurm", timeout_min=1, **slurm.requeue_infra(1))
        )
        job = limited.infra.job()
        # the same config without interruption, meanwhile (another cache folder, no time limit)
        ref_exp = GAExperiment(**cfg, infra=infra(folder / "reference"))
        ref_job = ref_exp.infra.job()
        try:
            reference = ref_exp.run()
        except Exception as exc:
            raise AssertionError(f"reference job failed: {exc}{job_logs(ref_job)}") from exc
        try:
            result = limited.run()
        except Exception as exc:
            raise AssertionError(f"requeued job failed: {exc}{job_logs(job)}") from exc
        (state,) = wait_for([job.job_id], all_finished([job.job_id]), timeout=60).values()
        assert state.state is JobState.COMPLETED, job_logs(job)
        if state.requeues >= 1:
            break
    assert state.requeues >= 1, f"the job was never requeued: {state}{job_logs(job)}"
    assert comparable(result) == comparable(reference), first_difference(
        comparable(result), comparable(reference)
    )
    model = torch.load(limited.infra.uid_folder() / "model.pt", weights_only=True)
    ref_model = torch.load(ref_exp.infra.uid_folder() / "model.pt", weights_only=True)
    for key, value in ref_model["state_dict"].items():
        assert torch.equal(model["state_dict"][key], value), key
    assert submissions == [1, 1] * (attempt + 1)  # requeued by Slurm, never resubmitted


@pytest.mark.timeout(300)
def test_cancelled_job_is_reported_cancelled(tmp_path: Path) -> None:
    long = {**GA, "training": {**GA["training"], "max_generations": 100_000, "eval_every": 1000}}
    exp = GAExperiment(**long, infra=infra(tmp_path))
    job = exp.infra.job()
    wait_for([job.job_id], lambda jobs: job.job_id in jobs, timeout=60)
    subprocess.run(["scancel", job.job_id], check=True, timeout=30)
    jobs = wait_for([job.job_id], all_finished([job.job_id]), timeout=120)
    assert jobs[job.job_id].state is JobState.CANCELLED
    assert jobs[job.job_id].state is not JobState.COMPLETED
    (record,) = find_experiments(tmp_path)
    assert record.status == "CANCELLED"
    assert exp.infra.status() == "failed"
    with pytest.raises(Exception, match=r"(?i)cancel|uncompleted|no result"):
        exp.run()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("field", ["gpus_per_node", "cpus_per_task"])
def test_unsatisfiable_request_fails_at_submission(tmp_path: Path, field: str) -> None:
    most_cpus = max(n.cpus for n in slurm.cluster_nodes())
    value = 1 if field == "gpus_per_node" else most_cpus + 1
    exp = GAExperiment(**GA, infra=infra(tmp_path, **{field: value}))
    with pytest.raises(slurm.SlurmRequestError, match=rf"infra\.{field}={value}: no node"):
        slurm.check_infra(exp.infra)
    t0 = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)gpu|gres|processors|cpus") as info:
        exp.run()
    assert time.monotonic() - t0 < 60, "the submission should fail at once, not pend"
    assert "Traceback" not in str(info.value)  # an error at submission, not from a job
    assert exp.infra.status() == "not submitted"  # nothing was cached or left queued


# the other research lines, as test_research_lines.py runs them locally (tiny budgets)
LINES: list[dict[str, Any]] = [
    DYNAMIC,
    ENV_RECURRENT,
    {**ENV, "method": "es_env_feedforward"},
    {**ADVERSARIAL, "method": "ga_adversarial_recurrent"},
]


@pytest.mark.timeout(400)
def test_research_lines_go_out_as_one_array_per_task_class(
    tmp_path: Path, submissions: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    exps = [make_experiment(c, **infra(tmp_path)) for c in LINES]
    assert [type(e).__name__ for e in exps] == [
        "DynamicExperiment",
        "EnvExperiment",
        "EnvExperiment",
        "AdversarialExperiment",
    ]
    results = run_experiments(exps)
    assert sorted(submissions) == [1, 1, 2]  # one array per task class, one submission each
    assert [r["method"] for r in results] == [c["method"] for c in LINES]
    assert [r["objective"] for r in results] == ["person", "returns", "returns", "adversarial"]
    assert all(math.isfinite(r["metrics"]["test_ce"]) for r in results)
    records = find_experiments(tmp_path)
    assert {r.status for r in records} == {"completed"}
    # fresh instances read the cache: nothing is submitted again
    again = run_experiments([make_experiment(c, **infra(tmp_path)) for c in LINES])
    assert sorted(submissions) == [1, 1, 2]
    assert [comparable(r) for r in again] == [comparable(r) for r in results]
    # the report shows what each row was trained on
    assert hbm(["report", "--cache", str(tmp_path), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| ga_dynamic | person |" in md and "| ga_env_recurrent | returns |" in md
    assert "| ga_adversarial_recurrent | adversarial |" in md
    capsys.readouterr()
