"""hbm_experiments.slurm without a cluster: parsing, state normalisation, the resource pre-check
and the requeue handler, against fake `sacct`/`squeue`/`sinfo`/`scontrol` scripts on PATH.
(The same functions against the real local cluster: test_slurm.py.)"""

from __future__ import annotations

import os
import signal
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from hbm_experiments import slurm
from hbm_experiments.slurm import JobState, NodeResources, SlurmRequestError

GENS = {"max_generations": 1}

GENS = {"max_generations": 1}


def _fake_tool(bindir: Path, name: str, body: str) -> None:
    """A shell script `name` that appends its argv to calls.log and runs `body`."""
    path = bindir / name
    path.write_text(
        f'#!/bin/bash\necho "{name} $*" >> "{bindir}/calls.log"\n' + textwrap.dedent(body)
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


def _calls(bindir: Path, tool: str) -> list[str]:
    log = bindir / "calls.log"
    if not log.exists():
        return []
    return [ln for ln in log.read_text().splitlines() if ln.startswith(tool + " ")]


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("COMPLETED", JobState.COMPLETED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("CANCELLED+", JobState.CANCELLED),
        ("TIMEOUT", JobState.TIMEOUT),
        ("REQUEUED", JobState.REQUEUED),
        ("COMPLETING", JobState.RUNNING),
        ("PD", JobState.PENDING),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("DEADLINE", JobState.TIMEOUT),
        ("BOOT_FAIL", JobState.NODE_FAIL),
        ("something new", JobState.UNKNOWN),
    ],
)
def test_normalize_state(raw: str, state: JobState) -> None:
    assert slurm.normalize_state(raw) is state


def test_finished_and_succeeded() -> None:
    assert JobState.CANCELLED.finished and not JobState.CANCELLED.succeeded
    assert JobState.COMPLETED.finished and JobState.COMPLETED.succeeded
    assert not JobState.REQUEUED.finished and not JobState.PENDING.finished


def test_expand_job_id() -> None:
    assert slurm.expand_job_id("12_[0-3,7%2]") == ["12_0", "12_1", "12_2", "12_3", "12_7"]
    assert slurm.expand_job_id("12_[0-6:3]") == ["12_0", "12_3", "12_6"]
    assert slurm.expand_job_id("12_4") == ["12_4"]
    assert slurm.expand_job_id("12") == ["12"]


def test_query_jobs_one_sacct_call_expands_arrays_and_counts_requeues(fake_bin: Path) -> None:
    # 20: array with two tasks done and two still pending (one bracket row);
    # 30: requeued once, then completed (-D shows both records, oldest first);
    # 31: cancelled; 40: not in accounting yet, but squeue knows it.
    _fake_tool(
        fake_bin,
        "sacct",
        """
        cat <<'EOF'
        20_0|COMPLETED|0:0|00:00:03|None
        20_1|RUNNING|0:0|00:00:01|None
        20_[2-3%2]|PENDING|0:0|00:00:00|JobArrayTaskLimit
        30|REQUEUED|0:0|00:00:40|None
        30|COMPLETED|0:0|00:00:20|BeginTime
        31|CANCELLED by 0|0:15|00:00:05|None
        99_1|COMPLETED|0:0|00:00:01|None
        EOF
        """,
    )
    _fake_tool(fake_bin, "squeue", "echo '40|PENDING|Priority'\n")
    jobs = slurm.query_jobs(["20", "30", "31", "40"])
    assert len(_calls(fake_bin, "sacct")) == 1
    assert "-j 20,30,31,40" in _calls(fake_bin, "sacct")[0]
    assert {k: v.state for k, v in jobs.items()} == {
        "20_0": JobState.COMPLETED,
        "20_1": JobState.RUNNING,
        "20_2": JobState.PENDING,
        "20_3": JobState.PENDING,
        "30": JobState.COMPLETED,
        "31": JobState.CANCELLED,
        "40": JobState.PENDING,
    }
    assert jobs["30"].requeues == 1 and jobs["20_0"].requeues == 0
    assert jobs["31"].raw_state == "CANCELLED by 0"
    assert jobs["20_3"].array_job_id == "20" and jobs["30"].array_job_id is None
    assert _calls(fake_bin, "squeue") == ["squeue -h -j 40 -o %i|%T|%r"]
    # the status table's view: plain state names
    assert slurm.job_states(["31", "20_1"]) == {"31": "CANCELLED", "20_1": "RUNNING"}


def test_query_jobs_reports_sacct_failure(fake_bin: Path) -> None:
    _fake_tool(fake_bin, "sacct", "echo 'Slurm accounting storage is disabled' >&2; exit 1\n")
    with pytest.raises(slurm.SlurmError, match="accounting storage is disabled"):
        slurm.query_jobs(["1"])
    assert slurm.job_states(["1"]) == {}  # the status table degrades to "unknown"


def test_slurm_available(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for tool in ("sbatch", "sacct", "sinfo"):
        _fake_tool(fake_bin, tool, "exit 0\n")
    _fake_tool(fake_bin, "scontrol", "echo 'Slurmctld(primary) at localhost is DOWN'\n")
    assert not slurm.slurm_available()
    assert slurm.resolve_cluster("auto") == "local"
    assert slurm.resolve_cluster("slurm") == "slurm"
    _fake_tool(fake_bin, "scontrol", "echo 'Slurmctld(primary) at localhost is UP'\n")
    assert slurm.slurm_available()
    assert slurm.resolve_cluster("auto") == "slurm"


def test_cluster_nodes_parses_sinfo(fake_bin: Path) -> None:
    _fake_tool(
        fake_bin,
        "sinfo",
        """
        echo 'node1|cpu*|32|128000|(null)|1-00:00:00'
        echo 'node2|gpu|64|512000+|gpu:a100:4(S:0-1)|2:00:00'
        echo 'node2|long|64|512000|gpu:a100:4(S:0-1)|infinite'
        """,
    )
    nodes = slurm.cluster_nodes()
    assert nodes[0] == NodeResources("node1", "cpu", True, 32, 128000, 0, 1440)
    assert nodes[1] == NodeResources("node2", "gpu", False, 64, 512000, 4, 120)
    assert nodes[2].max_time_min is None


@pytest.mark.parametrize(
    ("limit", "minutes"),
    [
        ("infinite", None),
        ("30", 30),
        ("30:00", 30),
        ("30:01", 31),
        ("2:00:00", 120),
        ("1-00:00:00", 1440),
        ("1-2", 1560),
    ],
)
def test_time_limits(limit: str, minutes: int | None) -> None:
    assert slurm._minutes(limit) == minutes


NODES = [
    NodeResources("cpu1", "cpu", True, 32, 128000, 0, 2880),
    NodeResources("gpu1", "gpu", False, 64, 512000, 4, 720),
]


def test_check_request_accepts_what_fits() -> None:
    slurm.check_request(cpus_per_task=32, mem_gb=100, timeout_min=2880, available=NODES)
    slurm.check_request(partition="gpu", gpus_per_node=4, cpus_per_task=8, available=NODES)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"gpus_per_node": 1}, r"infra\.gpus_per_node=1: no node of default partition 'cpu'"),
        ({"partition": "gpu", "gpus_per_node": 8}, r"gpus_per_node=8: .*partition 'gpu'"),
        ({"cpus_per_task": 33}, r"infra\.cpus_per_task=33: .*cpu1: 32 CPUs"),
        ({"cpus_per_task": 20, "tasks_per_node": 2}, r"cpus_per_task=20 x tasks_per_node=2"),
        ({"mem_gb": 200}, r"infra\.mem_gb=200: .*128000 MB"),
        ({"partition": "nope"}, r"slurm_partition='nope': no such partition.*\['cpu', 'gpu'\]"),
        ({"partition": "gpu", "timeout_min": 721}, r"timeout_min=721: .*at most 720 minutes"),
        ({"nodes": 2}, r"infra\.nodes=2: only 1 node"),
    ],
)
def test_check_request_names_the_field(request_: dict, message: str) -> None:
    with pytest.raises(SlurmRequestError, match=message):
        slurm.check_request(available=NODES, **request_)


def test_check_infra_ignores_non_slurm_clusters() -> None:
    # no sinfo is called for these: a GPU request on a laptop run is not our business
    slurm.check_infra({"cluster": None, "gpus_per_node": 8})
    slurm.check_infra({"cluster": "local", "gpus_per_node": 8})


def test_requeue_infra() -> None:
    assert slurm.requeue_infra() == {
        "slurm_use_srun": True,
        "slurm_additional_parameters": {"signal": "USR2@90"},
    }
    # Slurm signals up to one 30 s check early: a 1-minute job needs a short warning
    assert slurm.requeue_infra(1)["slurm_additional_parameters"] == {"signal": "USR2@5"}
    assert slurm.requeue_infra(600)["slurm_additional_parameters"] == {"signal": "USR2@90"}


def test_late_warning_after_the_work_is_only_logged(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_tool(fake_bin, "scontrol", "exit 0\n")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "60")
    before = signal.getsignal(signal.SIGUSR2)
    try:
        with slurm.requeue_on_timeout():
            pass
        os.kill(os.getpid(), signal.SIGUSR2)  # neither raises nor kills the process
        assert "after its work finished; not requeued" in caplog.text
        assert _calls(fake_bin, "scontrol") == []
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_requeue_on_timeout_outside_slurm_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
    before = signal.getsignal(signal.SIGUSR2)
    with slurm.requeue_on_timeout() as job_id:
        assert job_id is None
        assert signal.getsignal(signal.SIGUSR2) is before


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_requeue_on_timeout_requeues_the_array_task(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(fake_bin, "scontrol", "exit 0\n")
    monkeypatch.setenv("SLURM_JOB_ID", "57")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "50")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    before = signal.getsignal(signal.SIGUSR2)
    with (
        pytest.raises(SystemExit, match="requeued Slurm job 50_7"),
        slurm.requeue_on_timeout(max_requeues=3) as job_id,
    ):
        assert job_id == "50_7"
        os.kill(os.getpid(), signal.SIGUSR2)
    assert _calls(fake_bin, "scontrol") == ["scontrol requeue 50_7"]
    assert signal.getsignal(signal.SIGUSR2) is before


def test_requeue_on_timeout_gives_up_after_max_requeues(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(fake_bin, "scontrol", "exit 0\n")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "58")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "3")
    with (
        pytest.raises(slurm.TimeLimitReached, match="job 58 reached its time limit after 3"),
        slurm.requeue_on_timeout(max_requeues=3),
    ):
        os.kill(os.getpid(), signal.SIGUSR2)
    assert _calls(fake_bin, "scontrol") == []


def test_requeue_failure_is_reported(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(
        fake_bin, "scontrol", "echo 'Requested operation is presently disabled' >&2; exit 1\n"
    )
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "59")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    with (
        pytest.raises(slurm.SlurmError, match="requeue 59 failed: Requested operation"),
        slurm.requeue_on_timeout(),
    ):
        os.kill(os.getpid(), signal.SIGUSR2)


# ----------------------------------------------------------------------------------------------
# The wiring into hbm_experiments (tasks, sweeps, CLI)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_warning_during_data_loading_requeues_the_experiment(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch, shared_data_dir: Path
) -> None:
    """The requeue handler covers the whole run, data loading included; before it did, the
    warning reached submitit's handler there and the job failed instead of resuming."""
    import hbm_data
    from hbm_experiments import GAExperiment
    from hbm_experiments.tasks import ERROR_FILE

    _fake_tool(fake_bin, "scontrol", "exit 0\n")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "61")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    original_load = hbm_data.load_human_data

    def load_then_warned(*args: object, **kwargs: object) -> object:
        data = original_load(*args, **kwargs)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGUSR2)  # the warning arrives while the data loads
        return data

    def submitit_handler(signum: int, frame: object) -> None:
        raise RuntimeError("submitit's handler: job failed")

    monkeypatch.setattr(hbm_data, "load_human_data", load_then_warned)
    before = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        exp = GAExperiment(training={"max_generations": 1}, model={"hidden_size": 2})
        with pytest.raises(SystemExit, match="requeued Slurm job 61"):
            exp.run()
        assert signal.getsignal(signal.SIGUSR2) is submitit_handler  # restored
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert _calls(fake_bin, "scontrol") == ["scontrol requeue 61"]
    assert not (exp.infra.uid_folder() / ERROR_FILE).exists()  # a requeue is not a failure


def test_experiments_run_under_srun_by_default_without_changing_uids() -> None:
    from hbm_experiments import GAExperiment, SGDExperiment

    for cls in (GAExperiment, SGDExperiment):
        budget = {"max_optim_time": 60}
        plain = cls(seed=3, training=budget)
        on_slurm = cls(seed=3, training=budget, infra={"cluster": "slurm", "timeout_min": 5})
        assert plain.infra.slurm_use_srun and on_slurm.infra.slurm_use_srun
        assert on_slurm.infra.version == plain.infra.version
        assert on_slurm.infra.uid_folder() == plain.infra.uid_folder()


def test_auto_cluster_is_local_when_no_controller_answers(fake_bin: Path) -> None:
    """`srun` on PATH (submitit's own test for "auto") but the controller is down."""
    from hbm_experiments import GAExperiment
    from hbm_experiments.tasks import DataPreprocessingTask

    for tool in ("srun", "sbatch", "sacct", "sinfo"):
        _fake_tool(fake_bin, tool, "exit 1\n")
    _fake_tool(fake_bin, "scontrol", "echo 'Slurmctld(primary) at vm is DOWN'\n")
    assert GAExperiment(training=GENS, infra={"cluster": "auto"}).infra.cluster == "local"
    assert DataPreprocessingTask(infra={"cluster": "auto"}).infra.cluster == "local"
    _fake_tool(fake_bin, "scontrol", "echo 'Slurmctld(primary) at vm is UP'\n")
    assert GAExperiment(training=GENS, infra={"cluster": "auto"}).infra.cluster == "slurm"
    assert GAExperiment(training=GENS, infra={"cluster": None}).infra.cluster is None


def _fake_cluster(bindir: Path) -> None:
    """A controller that answers and one CPU-only node in partition debug."""
    for tool in ("srun", "sbatch", "sacct"):
        _fake_tool(bindir, tool, "exit 1\n")
    _fake_tool(bindir, "scontrol", "echo 'Slurmctld(primary) at vm is UP'\n")
    _fake_tool(bindir, "sinfo", "echo 'localhost|debug*|2|4000|(null)|infinite'\n")


def test_run_experiments_checks_the_request_before_submitting(fake_bin: Path) -> None:
    from hbm_experiments import GAExperiment, run_experiments

    _fake_cluster(fake_bin)
    exps = [
        GAExperiment(seed=s, training=GENS, infra={"cluster": "slurm", "gpus_per_node": 1})
        for s in (0, 1)
    ]
    with pytest.raises(SlurmRequestError, match=r"GAExperiment\.infra\.gpus_per_node=1: no node"):
        run_experiments(exps)
    assert _calls(fake_bin, "sinfo") == ["sinfo -h -N -o %N|%P|%c|%m|%G|%l"]  # once per group
    assert _calls(fake_bin, "sbatch") == []
    assert all(e.infra.status() == "not submitted" for e in exps)


def test_cli_run_checks_the_config_files_infra(
    fake_bin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml
    from hbm_experiments.cli import main as hbm

    _fake_cluster(fake_bin)
    config = tmp_path / "ga.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "method": "ga_feedforward",
                "training": {"max_generations": 1},
                "infra": {"cpus_per_task": 8},
            }
        )
    )
    assert hbm(["run", str(config), "--cluster", "auto", "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert f"{config}: infra.cpus_per_task=8: no node of default partition 'debug'" in err
    assert _calls(fake_bin, "sbatch") == []


def test_num_threads_applies_inside_the_run_and_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch
    from hbm_experiments import GAExperiment

    seen: list[int] = []
    monkeypatch.setattr(
        GAExperiment, "_run_with_threads", lambda self, folder: seen.append(torch.get_num_threads())
    )
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    GAExperiment(num_threads=target, training=GENS)._run_in(Path("unused"))
    assert seen == [target]
    assert torch.get_num_threads() == before
