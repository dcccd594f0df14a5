"""A cache a lab shares: read-only commands never unpickle, runs load only trusted pickles,
damaged entries are named and recomputed, two runs of one experiment never collide."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hbm_experiments.cli import main as hbm
from hbm_experiments.files import ERROR_FILE, JOB_FILE, RESULT_FILE, RUN_CONTEXT_FILE
from hbm_experiments.locks import RUN_LOCK_FILE, process_identity, run_lock
from hbm_experiments.status import find_experiments
from hbm_experiments.trust import (
    DamagedCacheError,
    UntrustedFileError,
    read_pickle_summary,
    trusted_owners,
)
from hbm_fakes import CountingGA, executions

STRANGER = 12345  # a uid that is not this user's


class _Touch:
    """Unpickling this creates `path`: what a crafted job.pkl would do (run any code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def _crafted(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_Touch(marker)))


def _unfinished(seed: int) -> Path:
    """The uid folder of an experiment that was configured but has no result: configs written,
    as for a queued job."""
    exp = CountingGA(seed=seed)
    folder = exp.infra.uid_folder(create=True)
    exp.infra.write_configs_now()
    return folder


# -- pickles ---------------------------------------------------------------------------------


def _crafted_cache(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A finished entry whose job.pkl was replaced and an unfinished one with a job.pkl
    dropped in, both pickles creating the returned marker file when loaded."""
    CountingGA(seed=1).run()
    done = CountingGA(seed=1).infra.uid_folder()
    pending = _unfinished(2)
    marker = tmp_path / "PWNED"
    _crafted(done / JOB_FILE, marker)
    _crafted(pending / JOB_FILE, marker)
    return done, pending, marker


def test_read_only_commands_never_unpickle(tmp_path: Path, hbm_env: Path) -> None:
    done, pending, marker = _crafted_cache(tmp_path)
    assert hbm(["status"]) == 0
    assert hbm(["collect", "--out", str(tmp_path / "rows.csv")]) == 0
    states = {r.uid: r.status for r in find_experiments(load_results=True)}
    assert not marker.exists()
    assert states[done.name] == "completed"  # decided from result.json
    assert states[pending.name] == "not submitted"


@pytest.mark.slow  # plotting the report takes 15 s on a loaded two-core machine
def test_report_never_unpickles(tmp_path: Path, hbm_env: Path) -> None:
    _, _, marker = _crafted_cache(tmp_path)
    assert hbm(["report", "--out", str(tmp_path / "report")]) == 0
    assert not marker.exists()


def test_a_run_refuses_a_pickle_of_another_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _unfinished(3)
    marker = tmp_path / "PWNED"
    _crafted(folder / JOB_FILE, marker)
    os.chown(folder / JOB_FILE, STRANGER, STRANGER)
    with pytest.raises(UntrustedFileError, match=rf"{JOB_FILE}: owned by uid {STRANGER}"):
        CountingGA(seed=3).run()
    with pytest.raises(UntrustedFileError, match="HBM_TRUSTED_OWNERS"):
        CountingGA(seed=3).infra.status()
    assert not marker.exists()
    # writable by an untrusted group counts as written by it, whoever owns the file
    os.chown(folder / JOB_FILE, os.getuid(), STRANGER)
    os.chmod(folder / JOB_FILE, 0o664)
    with pytest.raises(UntrustedFileError, match=f"group gid {STRANGER} can write it"):
        CountingGA(seed=3).run()
    assert not marker.exists()
    # naming the owner trusts it: then the pickle is loaded (and here runs its code)
    monkeypatch.setenv("HBM_TRUSTED_OWNERS", f"{STRANGER} @{STRANGER}")
    with pytest.raises(AttributeError):  # the "job" it builds is a file object
        CountingGA(seed=3).run()
    assert marker.exists()


def test_a_result_pickle_of_another_owner_is_refused(tmp_path: Path) -> None:
    """A submitit job's result pickle (in its log folder, linked as `submitit`) is checked
    like job.pkl before exca loads it."""
    CountingGA(seed=14).run()
    folder = CountingGA(seed=14).infra.uid_folder()
    logs = tmp_path / "logs" / "77"
    logs.mkdir(parents=True)
    (logs / "77_0_result.pkl").write_bytes(pickle.dumps(("success", 1)))
    os.chown(logs / "77_0_result.pkl", STRANGER, STRANGER)
    (folder / "submitit").symlink_to(logs)
    with pytest.raises(UntrustedFileError, match=r"77_0_result\.pkl: owned by uid 12345"):
        CountingGA(seed=14).infra.status()


def test_trusted_owners_setting_refuses_unknown_names() -> None:
    uids, gids = trusted_owners("0, @0 4242")
    assert {0, 4242, os.getuid()} <= uids and gids == {0}
    with pytest.raises(ValueError, match="no user 'nobody-by-this-name'"):
        trusted_owners("nobody-by-this-name")


def test_saved_job_summary_is_read_without_loading(tmp_path: Path) -> None:
    import submitit

    path = tmp_path / JOB_FILE
    path.write_bytes(pickle.dumps(submitit.SlurmJob(folder=tmp_path, job_id="77_3")))
    summary = read_pickle_summary(path)
    assert (summary.kind, summary.job_id) == ("slurm", "77_3")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DamagedCacheError, match="not a complete pickle"):
        read_pickle_summary(path)


def test_saved_job_is_writable_by_its_owner_only(umask: Any) -> None:
    umask(0o002)  # a group-shared cache: results readable and writable by the group ...
    CountingGA(seed=4).run()
    folder = CountingGA(seed=4).infra.uid_folder()
    assert (folder / RESULT_FILE).stat().st_mode & 0o777 == 0o664
    assert (folder / JOB_FILE).stat().st_mode & 0o777 == 0o644  # ... but not the pickle
    assert CountingGA(seed=4).infra.status() == "completed"  # so it stays loadable


@pytest.fixture
def umask() -> Any:
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


# -- damaged entries -------------------------------------------------------------------------


def test_truncated_result_is_damaged_and_retry_recomputes_it(
    tmp_path: Path, counter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    CountingGA(seed=5).run()
    folder = CountingGA(seed=5).infra.uid_folder()
    whole = (folder / RESULT_FILE).read_text()
    (folder / RESULT_FILE).write_text(whole[: len(whole) // 2])
    (record,) = find_experiments(load_results=True)
    assert record.status == "damaged" and str(folder / RESULT_FILE) in (record.error or "")
    assert hbm(["collect", "--out", str(tmp_path / "rows.csv")]) == 0
    assert "damaged" in (tmp_path / "rows.csv").read_text()
    with pytest.raises(DamagedCacheError, match=r"result\.json.*hbm run --retry"):
        CountingGA(seed=5).run()
    assert len(executions(counter)) == 1
    assert CountingGA(seed=5, infra={"mode": "retry"}).run()["seed"] == 5
    assert len(executions(counter)) == 2
    assert json.loads((folder / RESULT_FILE).read_text())["seed"] == 5
    assert [r.status for r in find_experiments()] == ["completed"]


def test_truncated_job_is_damaged_and_force_recomputes_it(counter: Path) -> None:
    CountingGA(seed=6).run()
    folder = CountingGA(seed=6).infra.uid_folder()
    (folder / JOB_FILE).write_bytes((folder / JOB_FILE).read_bytes()[:30])
    (record,) = find_experiments()
    assert record.status == "damaged" and JOB_FILE in (record.error or "")
    with pytest.raises(DamagedCacheError, match=JOB_FILE):
        CountingGA(seed=6).run()
    CountingGA(seed=6, infra={"mode": "force"}).run()
    assert len(executions(counter)) == 2
    assert CountingGA(seed=6).infra.status() == "completed"


def test_a_damaged_data_task_is_recomputed_by_force() -> None:
    from hbm_experiments import GAExperiment

    config: dict[str, Any] = {
        "method": "ga_feedforward",
        "training": {"max_generations": 1},
    }
    data = GAExperiment(**config).data_task()
    first = data.load()
    job = data.infra.uid_folder() / JOB_FILE
    job.write_bytes(job.read_bytes()[:100])  # a full disk while exca saved it
    with pytest.raises(DamagedCacheError, match=rf"{JOB_FILE}.*--force"):
        GAExperiment(**config).data_task().load()  # every experiment on this data says so
    again = GAExperiment(**config, infra={"mode": "force"}).data_task().load()
    assert (again.train_act == first.train_act).all()
    assert GAExperiment(**config).data_task().infra.status() == "completed"


def test_disk_full_while_writing_the_result_is_a_recorded_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from hbm_experiments import experiment as tasks  # where the result is written

    real = tasks.atomic_write_text

    def full(path: Any, text: str) -> Any:
        if Path(path).name == RESULT_FILE:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(tasks, "atomic_write_text", full)
    with pytest.raises(OSError, match="No space left"):
        CountingGA(seed=7).run()
    folder = CountingGA(seed=7).infra.uid_folder()
    assert "No space left on device" in (folder / ERROR_FILE).read_text()
    (record,) = find_experiments()
    assert record.status == "failed"


def test_non_finite_loss_fails_naming_the_generation(hbm_env: Path) -> None:
    from hbm_experiments.guards import NonFiniteLossError, finite_result
    from hbm_fakes import fake_result

    class DivergingGA(CountingGA):
        def _run_in(self, folder: Path) -> dict[str, Any]:
            result = fake_result(self)
            result["history"][3]["train_loss"] = float("nan")
            return result

    with pytest.raises(NonFiniteLossError, match=r"train_loss=nan at generation 4"):
        DivergingGA(seed=8).run()
    folder = DivergingGA(seed=8).infra.uid_folder()
    assert not (folder / RESULT_FILE).exists() and (folder / ERROR_FILE).exists()
    # an undefined statistic is not a diverged loss: stored as null, valid JSON
    result = fake_result(CountingGA(seed=8))
    result["behaviour"]["p_value"] = float("nan")
    clean = finite_result(result)
    assert clean["behaviour"]["p_value"] is None
    json.dumps(clean, allow_nan=False)


# -- runs that are not running any more ------------------------------------------------------


def test_a_reused_pid_is_not_running(hbm_env: Path) -> None:
    folder = _unfinished(9)
    me = process_identity()
    record = {**me, "context": {}}
    (folder / RUN_CONTEXT_FILE).write_text(json.dumps(record))
    assert [r.status for r in find_experiments()] == ["running"]  # this very process
    record["pid_start"] = (me["pid_start"] or 0) + 1  # same pid, another process's start
    (folder / RUN_CONTEXT_FILE).write_text(json.dumps(record))
    assert [r.status for r in find_experiments()] == ["interrupted"]


def test_a_live_lock_is_running_and_refuses_force(hbm_env: Path) -> None:
    folder = _unfinished(10)
    with run_lock(folder):
        assert [r.status for r in find_experiments()] == ["running"]
        with pytest.raises(RuntimeError, match="running now"):
            CountingGA(seed=10, infra={"mode": "force"}).run()
    assert not (folder / RUN_LOCK_FILE).exists()


def test_a_run_on_another_host_is_running_and_watched(hbm_env: Path) -> None:
    import io

    from hbm_experiments.watch import watch_status
    from rich.console import Console

    folder = _unfinished(15)
    owner = {"host": "node7", "pid": 1, "start": 1, "taken_at": time.time()}
    (folder / RUN_LOCK_FILE).write_text(json.dumps(owner))  # fresh: its heartbeat is alive
    (record,) = find_experiments()
    assert record.status == "running (on node7)"
    fetched: list[int] = []

    def fetch() -> list[Any]:
        fetched.append(1)
        return find_experiments()

    watch_status(
        fetch,
        lambda recs: recs[0].status,
        console=Console(file=io.StringIO()),
        sleep=lambda s: None,
        max_rounds=3,
    )
    assert len(fetched) == 3  # not final: watched until max_rounds
    old = time.time() - 3600
    os.utime(folder / RUN_LOCK_FILE, (old, old))  # its heartbeat stopped an hour ago
    assert [r.status for r in find_experiments()] == ["not submitted"]


def test_a_slurm_job_is_asked_of_slurm_then_of_its_lock(hbm_env: Path) -> None:
    import submitit

    folder = _unfinished(16)
    (folder / JOB_FILE).write_bytes(pickle.dumps(submitit.SlurmJob(folder=hbm_env, job_id="5_1")))
    asked: list[list[str]] = []

    def sacct(ids: Any) -> dict[str, str]:
        asked.append(list(ids))
        return {}  # accounting off: Slurm says nothing

    assert [(r.status, r.job_id) for r in find_experiments(job_state_fn=sacct)] == [
        ("submitted", "5_1")
    ]
    with run_lock(folder):  # the job started: its process holds the run lock
        assert [r.status for r in find_experiments(job_state_fn=sacct)] == ["running"]
        pending = find_experiments(job_state_fn=lambda ids: {"5_1": "PENDING"})
        assert [r.status for r in pending] == ["pending"]  # Slurm's word first
    assert asked == [["5_1"], ["5_1"]]


def test_a_dead_runs_lock_is_taken_over(counter: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = _unfinished(11)
    from hbm_data._atomic import host_tag

    (folder / RUN_LOCK_FILE).write_text(
        json.dumps({"host": host_tag(), "pid": dead.pid, "start": 1, "taken_at": time.time()})
    )
    assert [r.status for r in find_experiments()] == ["not submitted"]
    assert CountingGA(seed=11).run()["seed"] == 11
    assert len(executions(counter)) == 1


# -- two runs of one experiment --------------------------------------------------------------

_SLOW_RUN = """
import json, os, sys, time
from pathlib import Path
from hbm_fakes import CountingGA, _count, fake_result
from hbm_experiments.sweeps import run_multiple_seeds

here = Path(os.environ["HBM_TEST_COUNTER"]).parent
(here / f"ready.{os.getpid()}").touch()


class SlowGA(CountingGA):
    def _run_in(self, folder: Path) -> dict:
        _count(self)
        deadline = time.monotonic() + 120
        while len(list(here.glob("ready.*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # both processes are up: the other one arrives while this trains
        time.sleep(1.5)
        return fake_result(self)


seeds = [int(s) for s in sys.argv[1:]]
if len(seeds) == 1:
    print(json.dumps(SlowGA(seed=seeds[0]).run()))
else:
    print(json.dumps(run_multiple_seeds(SlowGA(seed=0), seeds)))
"""


def _two_at_once(*args: str) -> tuple[list[Any], str]:
    """Run `_SLOW_RUN` twice at once; (each one's printed result, both stderr)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SLOW_RUN, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    return [json.loads(out) for out, _ in outs], "".join(err for _, err in outs)


def test_two_threads_of_one_experiment_train_it_once(
    counter: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The lock in one process (threads): the second run waits and serves the first's
    result. The same across processes is the slow test below."""
    import threading

    from hbm_fakes import _count, fake_result

    class SlowGA(CountingGA):
        def _run_in(self, folder: Path) -> dict[str, Any]:
            _count(self)
            time.sleep(1.0)
            return fake_result(self)

    results: list[Any] = [None, None]

    def run(i: int) -> None:
        results[i] = SlowGA(seed=13).run()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results[0] is not None and results[0] == results[1]
    assert len(executions(counter)) == 1
    assert "already running" in caplog.text
    (record,) = find_experiments()
    assert record.status == "completed" and not (record.folder / ERROR_FILE).exists()


@pytest.mark.slow  # two Python processes importing torch: ~40 s here
def test_the_same_experiment_twice_at_once_trains_once(counter: Path) -> None:
    (first, second), err = _two_at_once("12")
    assert "already running" in err  # the second arrived during the first's training
    assert first == second
    assert len(executions(counter)) == 1  # one trained, the other waited and read its result
    (record,) = find_experiments()
    assert record.status == "completed" and not (record.folder / ERROR_FILE).exists()


@pytest.mark.slow  # two Python processes importing torch: ~40 s here
def test_seeds_twice_at_once_trains_each_seed_once(counter: Path) -> None:
    (first, second), err = _two_at_once("0", "1")
    assert "already running" in err
    assert first == second and [r["seed"] for r in first] == [0, 1]
    assert sorted(executions(counter)) == sorted(set(executions(counter)))  # none twice
    assert len(executions(counter)) == 2
    records = find_experiments()
    assert [r.status for r in records] == ["completed", "completed"]
    assert not any((r.folder / ERROR_FILE).exists() for r in records)


@pytest.mark.slow  # real training in two processes: ~1 min here
def test_hbm_seeds_twice_at_once(tmp_path: Path) -> None:
    """The command itself, twice at once on real (tiny) experiments: both succeed with the
    same results, nothing failed is cached."""
    config = tmp_path / "ga.yaml"
    config.write_text(
        json.dumps(
            {
                "method": "ga_feedforward",
                "optimizer": {"population_size": 4},
                "model": {"hidden_size": 3},
                "training": {"max_generations": 30, "eval_every": 10, "checkpoint_every": 5},
            }
        )
    )
    command = [
        sys.executable,
        "-m",
        "hbm_experiments.cli",
        "seeds",
        str(config),
        "--seeds",
        "0",
        "1",
    ]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert outs[0][0] == outs[1][0] and "seed=1:" in outs[0][0]
    records = find_experiments()
    assert [r.status for r in records] == ["completed", "completed"]
    assert not any((r.folder / ERROR_FILE).exists() for r in records)
