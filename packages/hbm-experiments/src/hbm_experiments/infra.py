"""The exca infra of hbm's tasks: where the cache is, and what `force`/a cached failure mean.

Two things exca 0.6 leaves to its users:

- `mode="force"` clears exca's job but not the files the task wrote itself, so a forced rerun
  would resume from the old training checkpoint. `ExperimentInfra.clear_job` removes them when
  the mode is `force` (a `retry` keeps the checkpoint: a resumed retry reaches the same result).
- A failure is cached under the uid, and fields excluded from the uid (device, thread count,
  cluster resources) cannot change the uid: `device: banana` fails, then `device: cpu` would
  replay the banana error forever. Each run records those fields (`run_context.json`); a
  cached failure is replayed only to a caller whose fields match, any other gets a fresh run.

And two things a shared cache needs (`TrustedInfra`, the base of every hbm task's infra):
exca's pickles are loaded only when trusted users could have written them (`trust`), and a
`job.pkl` or `result.json` that does not parse is a damaged entry, named with its file, that
`retry`/`force` recompute (exca would fail on it in every mode).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import exca

from .files import (
    CHECKPOINT_FILE,
    ERROR_FILE,
    JOB_FILE,
    MODEL_FILE,
    RESULT_FILE,
    RUN_CONTEXT_FILE,
    atomic_write_text,
)
from .locks import lock_holder, process_identity
from .trust import DamagedCacheError, check_trusted, json_damage, read_pickle_summary

__all__ = ["ExperimentInfra", "TrustedInfra", "cache_root", "with_default_folder"]

logger = logging.getLogger(__name__)

# infra fields that decide where and with what a job runs (never what it computes)
_CONTEXT_INFRA_FIELDS = (
    "cluster",
    "timeout_min",
    "nodes",
    "tasks_per_node",
    "cpus_per_task",
    "gpus_per_node",
    "mem_gb",
    "slurm_constraint",
    "slurm_partition",
    "slurm_account",
    "slurm_qos",
    "conda_env",
)
# uid-excluded fields of the task that cannot cause a failure (labels)
_LABELS = ("experiment_number",)


def cache_root() -> Path:
    """The exca cache root: `$HBM_CACHE`, else `./results/exca_cache` (made absolute)."""
    return Path(os.environ.get("HBM_CACHE") or "results/exca_cache").expanduser().absolute()


def _submitit_job_id() -> str | None:
    """The id of the submitit job this process runs in (`12_3` for a Slurm array task, a pid
    for `cluster="local"`); None in-process."""
    import submitit

    try:
        return str(submitit.JobEnvironment().job_id)
    except RuntimeError:  # not inside a submitit job
        return None


LOCAL_TIMEOUT_MIN = 7 * 24 * 60
"""A local job's time limit when none is set: submitit's local executor kills a job after 2
minutes by default, and a local job has no scheduler whose limit it must respect."""


def local_timeout(cluster: str | None, timeout_min: float | None) -> dict[str, Any]:
    """`{"timeout_min": LOCAL_TIMEOUT_MIN}` for local jobs without a limit, else nothing."""
    return {"timeout_min": LOCAL_TIMEOUT_MIN} if cluster == "local" and timeout_min is None else {}


def with_default_folder(data: Any) -> Any:
    """Add the folder before exca validates the infra (exca refuses a `cluster` other than
    None without a folder, and validates an instance's infra before any `__init__` runs).

    Also turns `cluster="auto"` into "slurm" only when a Slurm controller answers, else "local"
    (`slurm.resolve_cluster`): submitit's own "auto" picks Slurm whenever `srun` is on PATH; and
    gives local jobs without a `timeout_min` `LOCAL_TIMEOUT_MIN` instead of submitit's 2 minutes.
    """
    if not isinstance(data, Mapping):
        return data
    infra = data.get("infra")
    if infra is None:
        infra = {}
    elif isinstance(infra, exca.TaskInfra):
        infra = {k: getattr(infra, k) for k in infra.model_fields_set}
    if not isinstance(infra, Mapping):
        return data
    changes: dict[str, Any] = {}
    if infra.get("folder") is None:
        changes["folder"] = cache_root()
    if infra.get("cluster") == "auto":
        from .slurm import resolve_cluster

        changes["cluster"] = resolve_cluster("auto")
    cluster = changes.get("cluster", infra.get("cluster"))
    changes |= local_timeout(cluster, infra.get("timeout_min"))
    if cluster in ("local", "slurm") and "workdir" not in infra:
        copied = editable_packages()
        if copied:  # the job (and a requeued job) runs this snapshot, not later edits
            changes["workdir"] = {"copied": copied}
    return {**data, "infra": {**infra, **changes}} if changes else data


_HBM_PACKAGES = ("hbm_data", "hbm_ne", "hbm_dl", "hbm_experiments")


def editable_packages() -> list[str]:
    """The hbm packages imported from a source tree (an editable install): their code can
    change while a job waits in a queue, so jobs run an exca `workdir` snapshot of them
    (`<uid folder>/code/`). Packages installed from wheels cannot change under a job."""
    import importlib.util
    import sysconfig

    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    out = []
    for name in _HBM_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin).resolve()
        if not any(origin.is_relative_to(s) for s in site):
            out.append(name)
    return out


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


_saving = threading.local()
"""Set while exca saves a job: its `clear_job` call then tidies exca's files only (a result
a concurrent run of the same uid just wrote must stay)."""


class TrustedInfra(exca.TaskInfra):
    """`exca.TaskInfra` that loads only pickles trusted users could have written (refusing
    others, naming file and owner), and treats a `job.pkl` that does not parse as damaged:
    `retry`/`force` recompute it, `cached` says so instead of failing inside exca."""

    def check_pickles(self) -> None:
        """Every pickle exca or submitit may load for this task: its `job.pkl` and, for a
        submitit job, the pickles in its log folder (the result)."""
        folder = self.uid_folder()
        if folder is None:
            return
        check_trusted(folder / JOB_FILE)
        logs = folder / "submitit"
        if logs.is_dir():
            for path in logs.glob("*.pkl"):
                check_trusted(path)

    def damage(self) -> str | None:
        """Why this task's cache entry cannot be used as it is (naming the file); None when
        it is whole or absent. Reads without unpickling (`trust.read_pickle_summary`)."""
        folder = self.uid_folder()
        if folder is None or not (folder / JOB_FILE).exists():
            return None
        try:
            read_pickle_summary(folder / JOB_FILE)
        except DamagedCacheError as exc:
            return str(exc)
        return None

    def _recover_damage(self) -> None:
        reason = self.damage()
        if reason is None:
            return
        if self._effective_mode in ("retry", "force"):
            logger.warning("%s: damaged cache entry (%s): recomputing", self.uid(), reason)
            self.clear_job()
            return
        raise DamagedCacheError(
            f"{reason}: a damaged cache entry; `hbm run --retry` (or `--force`) recomputes it"
        )

    def status(self) -> Any:
        if self.damage() is not None:
            return "failed"  # what a retry recomputes (exca's job_array clears "failed")
        self.check_pickles()
        return super().status()

    def job(self) -> Any:
        self._recover_damage()
        self.check_pickles()
        return super().job()

    def clear_job(self) -> None:
        folder = self.uid_folder()
        if folder is not None and self.damage() is not None:
            (folder / JOB_FILE).unlink(missing_ok=True)  # nothing to cancel in half a pickle
        self.check_pickles()  # exca loads the job to cancel it
        super().clear_job()

    def _set_job(self, job: Any) -> Any:
        self.check_pickles()  # exca reloads a job saved by a concurrent process
        _saving.active = True  # exca's tidy-up `clear_job` in here: not a user's clear
        try:
            out = super()._set_job(job)
        finally:
            _saving.active = False
        folder = self.uid_folder()
        path = None if folder is None else folder / JOB_FILE
        with contextlib.suppress(OSError):
            # readable as the umask allows, writable by this user only: a pickle that the
            # group could rewrite would need the whole group trusted
            if path is not None and path.stat().st_uid == os.getuid():
                path.chmod(path.stat().st_mode & ~0o022)
        return out


class ExperimentInfra(TrustedInfra):
    """`exca.TaskInfra` that makes `force` start from scratch and never serves a failure to
    a caller whose uid-excluded fields differ from those of the failed run."""

    def run_context(self) -> dict[str, Any]:
        """The uid-excluded fields of this task and its infra: what a failure may depend on
        though the uid does not."""
        obj = self._obj
        excluded = getattr(type(obj), "_exclude_from_cls_uid", ())
        if callable(excluded):  # exca also accepts a method; ours are tuples
            excluded = ()
        context = {
            name: _plain(getattr(obj, name))
            for name in excluded
            if name not in _LABELS and hasattr(obj, name)
        }
        context |= {f"infra.{k}": _plain(getattr(self, k)) for k in _CONTEXT_INFRA_FIELDS}
        return context

    def damage(self) -> str | None:
        """Also a `result.json` that is not a JSON object (truncated, bare NaN)."""
        reason = super().damage()
        folder = self.uid_folder()
        if reason is not None or folder is None or not (folder / JOB_FILE).exists():
            return reason
        result = folder / RESULT_FILE
        why = json_damage(result) if result.exists() else None
        return None if why is None else f"{result}: {why}"

    def write_configs_now(self) -> None:
        """exca writes `uid.yaml`/`config.yaml` only once the job is saved, which for an
        in-process run is after it ended (and then tidies `config.yaml` away before saving,
        relying on a write that it marks as done). Written at the start of the run, `hbm status`
        sees a run while it is going, or after it was killed; the mark is reset so that exca's
        own write still happens."""
        self._check_configs(write=True)
        exca.base._fast_state(self).checked_configs = False

    def write_run_context(self, folder: Path) -> None:
        """Called by the task when its run starts (in the job's process)."""
        import importlib

        code = {
            name: str(Path(importlib.import_module(name).__file__ or "").parent)
            for name in _HBM_PACKAGES
        }
        record = {
            "context": self.run_context(),
            # host, pid and the pid's start time: `hbm status` tells a live run from a pid
            # that now belongs to another process
            **process_identity(),
            "cluster": self.cluster,
            "started_at": time.time(),
            "job_id": _submitit_job_id(),  # `hbm status` shows it for finished runs too
            "code": code,  # where this run's hbm packages came from (a `code/` snapshot?)
        }
        atomic_write_text(folder / RUN_CONTEXT_FILE, json.dumps(record, indent=1) + "\n")

    def _failed_elsewhere(self) -> str | None:
        """Which uid-excluded field differs from the run that failed, if any."""
        folder = self.uid_folder()
        if folder is None:
            return None
        try:
            stored = json.loads((folder / RUN_CONTEXT_FILE).read_text())["context"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # no record: exca's rule (replay the failure; --retry reruns it)
        now = self.run_context()
        diffs = [
            f"{k}={stored.get(k)!r} then, {now.get(k)!r} now"
            for k in sorted(set(stored) | set(now))
            if stored.get(k) != now.get(k)
        ]
        return "; ".join(diffs) or None

    def clear_if_failed_elsewhere(self) -> bool:
        """Clear a cached failure that another device/thread count/resource request caused."""
        if self.mode == "read-only" or self.status() != "failed":
            return False
        diff = self._failed_elsewhere()
        if diff is None:
            return False
        logger.warning(
            "%s: the cached failure ran with other settings (%s): running again", self.uid(), diff
        )
        self.clear_job()
        return True

    def discard_training_files(self) -> None:
        """What `force` recomputes from: no checkpoint, no model, no result, no error.
        Refused while a run holds the uid's lock: its files are the ones it trains into."""
        folder = self.uid_folder()
        if folder is None:
            return
        holder = lock_holder(folder)
        if holder is not None:
            raise RuntimeError(
                f"{folder}: this experiment is running now (pid {holder.get('pid')} on host "
                f"{holder.get('host')}); --force would delete the files it trains into: wait "
                "for it to finish (`hbm status`), or stop it first"
            )
        for name in (CHECKPOINT_FILE, MODEL_FILE, RESULT_FILE, ERROR_FILE, RUN_CONTEXT_FILE):
            (folder / name).unlink(missing_ok=True)

    def job(self) -> Any:
        if self._effective_mode == "force":
            self.discard_training_files()  # also when exca has no job to clear (a killed run)
        else:
            self.clear_if_failed_elsewhere()
        return super().job()

    def clear_job(self) -> None:
        folder = self.uid_folder()
        had_job = folder is not None and (folder / JOB_FILE).exists()
        super().clear_job()
        if getattr(_saving, "active", False):
            return
        # exca also calls clear_job right after an in-process run (to tidy up before saving the
        # job): with no job to clear, the run's own files are the new ones and must stay
        if folder is None or not had_job:
            return
        # exca removes only its own files; "force" means from scratch, so the task's go too
        if self.mode == "force":
            self.discard_training_files()
            return
        for name in (ERROR_FILE, RESULT_FILE, RUN_CONTEXT_FILE):
            (folder / name).unlink(missing_ok=True)
