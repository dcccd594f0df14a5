"""Slurm helpers: is a cluster there, job states of many jobs in one `sacct` call, a pre-check
of resource requests before submission, and requeue-on-time-limit for training jobs.

Why these exist next to exca/submitit:

- exca's `cluster="auto"` picks Slurm whenever `srun` is on PATH, even when no controller
  answers; `slurm_available()` asks the controller.
- `hbm status` over hundreds of experiments must not call `sacct` once per job; `query_jobs`
  asks for every id at once and expands array jobs (`12_[0-3]` pending rows included).
- A job that can never fit (a GPU on a GPU-less partition, more CPUs or memory than any node has)
  pends forever on clusters without `EnforcePartLimits`; `check_request` fails before `sbatch`.
- exca submits a plain (not checkpointable) callable, so submitit fails a job that reaches its
  time limit. `requeue_on_timeout()` around the training loop requeues the job instead; on the
  restart the loop resumes from its checkpoint in the experiment's uid folder.
  `REQUEUE_INFRA` are the infra fields that make Slurm deliver the warning signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

__all__ = [
    "REQUEUE_INFRA",
    "JobState",
    "NodeResources",
    "SlurmError",
    "SlurmJob",
    "SlurmRequestError",
    "TimeLimitReached",
    "check_infra",
    "check_request",
    "cluster_nodes",
    "expand_job_id",
    "job_states",
    "normalize_state",
    "query_jobs",
    "requeue_infra",
    "requeue_on_timeout",
    "resolve_cluster",
    "slurm_available",
]

logger = logging.getLogger(__name__)

_TIMEOUT_S = 30.0


class SlurmError(RuntimeError):
    """A Slurm command failed or could not be run."""


class SlurmRequestError(ValueError):
    """A resource request that no node of the partition can ever satisfy."""


class TimeLimitReached(RuntimeError):
    """A job reached its time limit more often than `max_requeues` allows."""


# ----------------------------------------------------------------------------------------------
# Is Slurm there?


def slurm_available(timeout: float = 10.0) -> bool:
    """True when the Slurm client tools are on PATH and a controller answers `scontrol ping`."""
    return _unavailable_reason(timeout) is None


def _unavailable_reason(timeout: float = 10.0) -> str | None:
    for tool in ("sbatch", "scontrol", "sacct", "sinfo"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH"
    try:
        out = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`scontrol ping` failed: {exc}"
    if " is UP" not in out.stdout:
        said = (out.stdout + out.stderr).strip().splitlines()
        return f"no Slurm controller answers (`scontrol ping`: {said[0] if said else 'nothing'})"
    return None


def resolve_cluster(cluster: str | None) -> str | None:
    """Turn `"auto"` into `"slurm"` when a controller answers, else `"local"`; keep the rest.

    submitit's own "auto" chooses Slurm as soon as `srun` exists, which fails on a machine with
    the client tools but no running cluster.
    """
    if cluster != "auto":
        return cluster
    return "slurm" if slurm_available() else "local"


# ----------------------------------------------------------------------------------------------
# Job states


class JobState(enum.StrEnum):
    """Normalised Slurm job state (sacct/squeue spell some of them in several ways)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    REQUEUED = "REQUEUED"  # waiting to restart after a requeue
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    UNKNOWN = "UNKNOWN"

    @property
    def finished(self) -> bool:
        """The job will not run again by itself."""
        return self in _FINISHED

    @property
    def succeeded(self) -> bool:
        return self is JobState.COMPLETED


_FINISHED = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
    }
)

_STATE_ALIASES: dict[str, JobState] = {
    # still to run
    "PENDING": JobState.PENDING,
    "PD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "REQUEUED": JobState.REQUEUED,
    "RQ": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    # running (finishing counts as running: the result is not there yet)
    "RUNNING": JobState.RUNNING,
    "R": JobState.RUNNING,
    "CONFIGURING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "CG": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SUSPENDED": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED,
    # finished
    "COMPLETED": JobState.COMPLETED,
    "CD": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "F": JobState.FAILED,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "CA": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "TO": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "OOM": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
    "NF": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
    "PR": JobState.PREEMPTED,
}


def normalize_state(raw: str) -> JobState:
    """`"CANCELLED by 0"` -> CANCELLED, `"CG"` -> RUNNING, unknown words -> UNKNOWN."""
    word = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    state = _STATE_ALIASES.get(word)
    if state is None:
        if word:
            logger.warning("unknown Slurm state %r; reported as UNKNOWN", raw)
        return JobState.UNKNOWN
    return state


@dataclasses.dataclass(frozen=True)
class SlurmJob:
    """One job or one array task as Slurm's accounting sees it."""

    job_id: str  # "12" or "12_3"
    state: JobState
    raw_state: str  # as sacct printed it, e.g. "CANCELLED by 0"
    exit_code: str = ""  # "<code>:<signal>"
    elapsed: str = ""
    reason: str = ""
    requeues: int = 0  # times this job went back to the queue (REQUEUED records)

    @property
    def array_job_id(self) -> str | None:
        head, sep, _ = self.job_id.partition("_")
        return head if sep else None


_ARRAY_ID = re.compile(r"^(?P<job>\d+)_\[(?P<spec>[^\]]+)\]$")


def expand_job_id(job_id: str) -> list[str]:
    """`"12_[0-3,7%2]"` (a pending array in sacct/squeue) -> `["12_0", ..., "12_3", "12_7"]`."""
    match = _ARRAY_ID.match(job_id.strip())
    if match is None:
        return [job_id.strip()]
    spec = match["spec"].split("%", 1)[0]
    tasks: list[int] = []
    for part in spec.split(","):
        rng, _, step = part.partition(":")
        lo, _, hi = rng.partition("-")
        stop = int(hi) if hi else int(lo)
        tasks.extend(range(int(lo), stop + 1, int(step) if step else 1))
    return [f"{match['job']}_{t}" for t in tasks]


_SACCT_FIELDS = ("JobID", "State", "ExitCode", "Elapsed", "Reason")


def _run(cmd: Sequence[str], timeout: float) -> str:
    try:
        out = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"`{' '.join(cmd[:2])} ...` could not run: {exc}") from exc
    if out.returncode != 0:
        raise SlurmError(
            f"`{' '.join(cmd[:2])} ...` exited with {out.returncode}: {out.stderr.strip()}"
        )
    return out.stdout


def query_jobs(job_ids: Iterable[str], *, timeout: float = _TIMEOUT_S) -> dict[str, SlurmJob]:
    """States of many jobs from ONE `sacct` call, keyed by job id (`"12"` or `"12_3"`).

    An array id (`"12"`) brings back every task of the array; a task id only that task. Requeued
    jobs count their restarts. Ids sacct does not know yet (it lags the controller by a second or
    two) are looked up in one `squeue` call; ids neither knows are left out.
    """
    ids = [j.strip() for j in dict.fromkeys(job_ids) if j and j.strip()]
    if not ids:
        return {}
    out = _run(
        ["sacct", "-n", "-P", "-X", "-D", "-j", ",".join(ids), "-o", ",".join(_SACCT_FIELDS)],
        timeout,
    )
    jobs: dict[str, SlurmJob] = {}
    requeues: dict[str, int] = {}
    for line in out.splitlines():  # -D: older records of a requeued job come first
        parts = line.split("|")
        if len(parts) != len(_SACCT_FIELDS):
            continue
        jid, raw, exit_code, elapsed, reason = parts
        state = normalize_state(raw)
        for task in expand_job_id(jid):
            if task in jobs and jobs[task].state is JobState.REQUEUED:
                requeues[task] = requeues.get(task, 0) + 1
            jobs[task] = SlurmJob(task, state, raw.strip(), exit_code, elapsed, reason)
    for task, n in requeues.items():
        jobs[task] = dataclasses.replace(jobs[task], requeues=n)
    jobs = {k: v for k, v in jobs.items() if _wanted(k, ids)}
    missing = [j for j in ids if not any(k == j or k.startswith(j + "_") for k in jobs)]
    if missing:
        jobs.update(_squeue(missing, timeout))
    return jobs


def _wanted(job_id: str, ids: Sequence[str]) -> bool:
    array_id = job_id.partition("_")[0]
    return job_id in ids or array_id in ids


def _squeue(ids: Sequence[str], timeout: float) -> dict[str, SlurmJob]:
    """Jobs the controller knows but accounting does not show yet (one call; never raises)."""
    try:
        out = _run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r"], timeout)
    except SlurmError as exc:  # e.g. "Invalid job id specified" once the job is gone
        logger.debug("squeue fallback failed: %s", exc)
        return {}
    jobs: dict[str, SlurmJob] = {}
    for line in out.splitlines():
        jid, _, rest = line.partition("|")
        raw, _, reason = rest.partition("|")
        for task in expand_job_id(jid):
            if _wanted(task, ids):
                jobs[task] = SlurmJob(task, normalize_state(raw), raw, reason=reason)
    return jobs


def job_states(job_ids: Sequence[str]) -> dict[str, str]:
    """`query_jobs` as `{job id: state name}` (what `hbm status` shows); `{}` without Slurm."""
    ids = [j for j in job_ids if j]
    if not ids or shutil.which("sacct") is None:
        return {}
    try:
        return {k: v.state.value for k, v in query_jobs(ids).items()}
    except SlurmError as exc:
        logger.warning("Slurm states unknown: %s", exc)
        return {}


# ----------------------------------------------------------------------------------------------
# Resource pre-check


@dataclasses.dataclass(frozen=True)
class NodeResources:
    """What one node offers in one partition."""

    name: str
    partition: str
    default_partition: bool
    cpus: int
    memory_mb: int
    gpus: int
    max_time_min: int | None  # the partition's time limit; None = unlimited


def cluster_nodes(*, timeout: float = _TIMEOUT_S) -> list[NodeResources]:
    """Every (node, partition) pair with its CPUs, memory, GPUs and time limit (one `sinfo`)."""
    out = _run(["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%G|%l"], timeout)
    nodes = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) != 6:
            continue
        name, part, cpus, mem, gres, limit = (p.strip() for p in parts)
        nodes.append(
            NodeResources(
                name=name,
                partition=part.rstrip("*"),
                default_partition=part.endswith("*"),
                cpus=_int(cpus),
                memory_mb=_int(mem),
                gpus=_gpu_count(gres),
                max_time_min=_minutes(limit),
            )
        )
    return nodes


def _int(text: str) -> int:
    digits = re.match(r"\d+", text)
    return int(digits.group()) if digits else 0


def _gpu_count(gres: str) -> int:
    """`"gpu:a100:4(S:0-1),shard:8"` -> 4; `"(null)"` -> 0."""
    total = 0
    for item in gres.split(","):
        fields = item.split("(", 1)[0].split(":")
        if fields[0] == "gpu" and len(fields) >= 2 and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def _minutes(limit: str) -> int | None:
    """sinfo time limit (`infinite`, `30:00`, `2:00:00`, `1-00:00:00`) in minutes, rounded up."""
    if limit.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days, sep, clock = limit.partition("-")
    if not sep:
        days, clock = "0", limit
    parts = [int(p) for p in clock.split(":")]
    if sep:  # days-hours[:minutes[:seconds]]
        h, m, s = [*parts, 0, 0][:3]
    elif len(parts) == 1:  # minutes
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:  # minutes:seconds
        h, (m, s) = 0, parts
    else:
        h, m, s = parts[:3]
    return int(days) * 1440 + h * 60 + m + (1 if s else 0)


def check_request(
    *,
    partition: str | None = None,
    nodes: int | None = 1,
    tasks_per_node: int | None = 1,
    cpus_per_task: int | None = None,
    gpus_per_node: int | None = None,
    mem_gb: float | None = None,
    timeout_min: int | None = None,
    available: Sequence[NodeResources] | None = None,
    source: str = "infra",
) -> None:
    """Raise `SlurmRequestError` when no node of the partition can ever run the request.

    The message names the field, what was asked and what the cluster has, e.g.
    `infra.gpus_per_node=1: no node of partition 'debug' has GPUs (localhost: 0)`.
    """
    all_nodes = list(cluster_nodes() if available is None else available)
    if partition is None:
        in_part = [n for n in all_nodes if n.default_partition]
        label = f"default partition {in_part[0].partition!r}" if in_part else "default partition"
        if not in_part:
            raise SlurmRequestError(
                f"{source}.slurm_partition is not set and the cluster has no default partition; "
                f"partitions: {sorted({n.partition for n in all_nodes})}"
            )
    else:
        in_part = [n for n in all_nodes if n.partition == partition]
        label = f"partition {partition!r}"
        if not in_part:
            raise SlurmRequestError(
                f"{source}.slurm_partition={partition!r}: no such partition; "
                f"the cluster has {sorted({n.partition for n in all_nodes})}"
            )
    have = ", ".join(
        f"{n.name}: {n.cpus} CPUs, {n.memory_mb} MB, {n.gpus} GPUs" for n in in_part[:5]
    )
    cpus = (cpus_per_task or 1) * (tasks_per_node or 1)
    checks: list[tuple[str, Any, bool]] = [
        (
            "gpus_per_node",
            gpus_per_node,
            bool(gpus_per_node) and max(n.gpus for n in in_part) < (gpus_per_node or 0),
        ),
        ("cpus_per_task", cpus_per_task, max(n.cpus for n in in_part) < cpus),
        (
            "mem_gb",
            mem_gb,
            mem_gb is not None and max(n.memory_mb for n in in_part) < mem_gb * 1024,
        ),
    ]
    for name, value, bad in checks:
        if bad:
            many = name == "cpus_per_task" and (tasks_per_node or 1) > 1
            extra = f" x tasks_per_node={tasks_per_node}" if many else ""
            raise SlurmRequestError(
                f"{source}.{name}={value}{extra}: no node of {label} can satisfy it ({have})"
            )
    fitting = [
        n
        for n in in_part
        if n.cpus >= cpus
        and n.gpus >= (gpus_per_node or 0)
        and (mem_gb is None or n.memory_mb >= mem_gb * 1024)
    ]
    if nodes is not None and len(fitting) < nodes:
        raise SlurmRequestError(
            f"{source}.nodes={nodes}: only {len(fitting)} node(s) of {label} fit the request"
        )
    limits = [n.max_time_min for n in in_part]
    if timeout_min is not None and None not in limits:
        longest = max(m for m in limits if m is not None)
        if timeout_min > longest:
            raise SlurmRequestError(
                f"{source}.timeout_min={timeout_min}: {label} allows at most {longest} minutes"
            )


def check_infra(infra: Any, *, source: str = "infra") -> None:
    """`check_request` for an exca `TaskInfra`/`MapInfra` (or a mapping of its fields).

    Does nothing unless the infra's cluster resolves to Slurm, so it is safe to call always.
    """
    get = infra.get if isinstance(infra, Mapping) else (lambda k: getattr(infra, k, None))
    cluster = get("cluster")
    if cluster not in ("slurm", "auto") or resolve_cluster(cluster) != "slurm":
        return
    check_request(
        partition=get("slurm_partition"),
        nodes=get("nodes"),
        tasks_per_node=get("tasks_per_node"),
        cpus_per_task=get("cpus_per_task"),
        gpus_per_node=get("gpus_per_node"),
        mem_gb=get("mem_gb"),
        timeout_min=get("timeout_min"),
        source=source,
    )


# ----------------------------------------------------------------------------------------------
# Requeue when the time limit comes


def requeue_infra(
    timeout_min: int | None = None, *, warning_s: int | None = None
) -> dict[str, Any]:
    """exca infra fields that let `requeue_on_timeout` see the time limit coming.

    `slurm_use_srun=True`: Slurm's `--signal` reaches job steps only, and exca (without srun) runs
    python in the batch shell, which would never get it. Slurm checks limits every 30 s and
    sends the warning as soon as less than `warning_s` + 30 s are left, so the default is
    submitit's 90 s for long limits and down to 5 s for a 1-minute one (warned 25-55 s in).
    """
    if warning_s is None:
        warning_s = 90 if timeout_min is None else max(5, min(90, timeout_min * 15 - 30))
    return {
        "slurm_use_srun": True,
        "slurm_additional_parameters": {"signal": f"USR2@{warning_s}"},
    }


REQUEUE_INFRA: dict[str, Any] = requeue_infra()


def _current_job_id() -> str | None:
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _requeue(job_id: str) -> None:
    """`scontrol requeue` in its own session: Slurm's SIGTERM to the job's process group, which
    follows the requeue at once, must not kill it before it returns."""
    proc = subprocess.run(
        ["scontrol", "requeue", job_id],
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SlurmError(f"scontrol requeue {job_id} failed: {proc.stderr.strip()}")


@contextlib.contextmanager
def requeue_on_timeout(
    *, max_requeues: int = 10, signum: int | None = None
) -> Iterator[str | None]:
    """Inside a Slurm job: when the time-limit warning signal comes, requeue the job and exit.

    Wrap the training call (which checkpoints into the experiment's uid folder); the requeued job
    runs the same exca task again and the training resumes from that checkpoint. After
    `max_requeues` restarts (`SLURM_RESTART_COUNT`) the signal raises `TimeLimitReached` instead,
    so the failure is recorded rather than looping. After the block ends normally a late warning
    is only logged, so a job that finishes just before its limit stays COMPLETED. Outside Slurm,
    or off the main thread, it does nothing. Yields the job id (or None). Needs
    `requeue_infra()` in the job's infra.
    """
    job_id = _current_job_id()
    if job_id is None or threading.current_thread() is not threading.main_thread():
        yield None
        return
    sig = signum if signum is not None else _warning_signal()
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)

    def handler(received: int, frame: FrameType | None) -> None:
        if restarts >= max_requeues:
            raise TimeLimitReached(
                f"Slurm job {job_id} reached its time limit after {restarts} requeues "
                f"(max_requeues={max_requeues}); raise timeout_min or max_requeues"
            )
        logger.warning(
            "Slurm job %s: time limit near (signal %s); requeueing (restart %d of at most %d)",
            job_id,
            signal.Signals(received).name,
            restarts + 1,
            max_requeues,
        )
        _requeue(job_id)
        raise SystemExit(f"requeued Slurm job {job_id}; it resumes from its checkpoint")

    def late_warning(received: int, frame: FrameType | None) -> None:
        logger.warning(
            "Slurm job %s: time limit near (signal %s) after its work finished; not requeued",
            job_id,
            signal.Signals(received).name,
        )

    previous = signal.signal(sig, handler)
    if restarts:
        logger.info("Slurm job %s restarted (%d requeues so far)", job_id, restarts)
    try:
        yield job_id
    except BaseException:
        signal.signal(sig, previous)
        raise
    # The work is done and only saving the result and exiting remain: a warning now must
    # neither requeue nor fail the job (submitit's own handler would record a failure, and the
    # default action would kill the process after its result was written).
    signal.signal(sig, late_warning)


def _warning_signal() -> int:
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return int(getattr(signal, "SIG" + name.upper().removeprefix("SIG")))
