"""What is in a cache folder: one record per experiment, its state, its result and its error.

Reads files only (exca's `config.yaml` and `job.pkl`, plus the `result.json`/`error.txt` that
`Experiment.run` writes), so listing hundreds of experiments never unpickles a result. Jobs
still queued or running on Slurm are looked up with ONE batched query for all their ids.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .configs import read_yaml
from .files import CHECKPOINT_FILE, ERROR_FILE, MODEL_FILE, RESULT_FILE, RUN_CONTEXT_FILE
from .infra import cache_root
from .slurm import job_states  # one batched sacct query; {} without Slurm

__all__ = [
    "ExperimentRecord",
    "find_experiments",
    "format_status_table",
    "job_states",
]

logger = logging.getLogger(__name__)

# exca's method folder: "<module>.<Class>.run,<version>" (any Experiment subclass, also user ones)
_METHOD_DIR = re.compile(r"^(?P<module>[\w.]+)\.(?P<cls>\w+)\.run,(?P<version>[^/]+)$")


@dataclass
class ExperimentRecord:
    """One cached experiment (a uid folder)."""

    folder: Path
    task: str  # e.g. "GAExperiment"
    version: str
    config: dict[str, Any]
    status: str  # completed | failed | submitted | running | pending | not submitted | <SLURM>
    job_id: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def uid(self) -> str:
        return self.folder.name

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def error_summary(self) -> str | None:
        """Last line of the stored traceback (the exception)."""
        if not self.error:
            return None
        lines = [ln for ln in self.error.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else None


def _job_id(folder: Path) -> str | None:
    """Job id of a submitit job: the `submitit` link points to `.../logs/<user>/<job id>`."""
    link = folder / "submitit"
    if link.is_symlink():
        return Path(os.readlink(link)).name
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _checkpoint_position(folder: Path) -> str | None:
    """`generation 25` / `step 300` of the training checkpoint, if there is one."""
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        import torch

        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt checkpoint is reported, not fatal to the listing
        return f"unreadable checkpoint: {type(exc).__name__}"
    for key in ("generation", "step"):
        if isinstance(blob, dict) and isinstance(blob.get(key), int):
            return f"{key} {blob[key]}"
    return "checkpoint"


def _process_state(folder: Path) -> str | None:
    """State of a run that exca does not know yet: in this process, a `local` job, or killed.

    `run_context.json` names the host and pid of the run; on this host a live pid is a run
    still going, a dead one a run that was interrupted (with its checkpoint position).
    """
    try:
        ctx = json.loads((folder / RUN_CONTEXT_FILE).read_text())
        pid, host = int(ctx["pid"]), str(ctx["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != os.uname().nodename:
        return f"running? (on {host})"
    if _pid_alive(pid):
        return "running"
    position = _checkpoint_position(folder)
    return f"interrupted ({position})" if position else "interrupted"


def _is_slurm_job(folder: Path) -> bool:
    """Whether the job exca saved is a Slurm job (a local job's id is a process id)."""
    import pickle

    try:
        with (folder / "job.pkl").open("rb") as f:
            job = pickle.load(f)
    except Exception:
        return False
    return type(job).__name__ == "SlurmJob"


def _read_record(folder: Path, task: str, version: str, load_result: bool) -> ExperimentRecord:
    # uid.yaml (non-default fields only) is enough for the table; config.yaml (every field) is
    # read when results are wanted too, for `hbm collect`.
    config_file = folder / ("config.yaml" if load_result else "uid.yaml")
    if not config_file.exists():
        config_file = folder / "uid.yaml"
    try:
        config = read_yaml(config_file)
    except Exception as exc:  # a corrupt file must not hide the other experiments
        logger.warning("%s: unreadable config (%s)", folder, exc)
        config = {}
    config.pop("infra", None)
    rec = ExperimentRecord(folder=folder, task=task, version=version, config=config, status="")
    result_file = folder / RESULT_FILE
    error_file = folder / ERROR_FILE
    has_job = (folder / "job.pkl").exists()
    if has_job and result_file.exists():
        rec.status = "completed"
        if load_result:
            try:
                rec.result = json.loads(result_file.read_text())
            except (OSError, ValueError) as exc:
                logger.warning("%s: unreadable result (%s)", result_file, exc)
    elif error_file.exists():
        rec.status = "failed"
        rec.error = error_file.read_text(errors="replace")
    elif has_job:
        rec.job_id = _job_id(folder)
        if rec.job_id and _is_slurm_job(folder):
            rec.status = "submitted"  # its Slurm state comes from one batched sacct call
        else:
            rec.status = _process_state(folder) or "running"
    else:
        rec.status = _process_state(folder) or "not submitted"
    if rec.job_id is None:
        rec.job_id = _job_id(folder)
    return rec


def find_experiments(
    root: str | Path | None = None,
    *,
    load_results: bool = False,
    job_state_fn: Callable[[Sequence[str]], dict[str, str]] | None = None,
) -> list[ExperimentRecord]:
    """Every experiment under a cache root (default `$HBM_CACHE`), sorted by task then uid.

    Experiments submitted but not finished get their Slurm state from one call of
    `job_state_fn` (default `job_states`) with all their job ids.
    """
    root = Path(root) if root is not None else cache_root()
    records: list[ExperimentRecord] = []
    if not root.is_dir():
        return records
    for method_dir in sorted(root.iterdir()):
        match = _METHOD_DIR.match(method_dir.name)
        if match is None or not method_dir.is_dir():
            continue
        task, version = match["cls"], match["version"]
        for uid_dir in sorted(method_dir.iterdir()):
            if uid_dir.name == "logs" or not (uid_dir / "uid.yaml").exists():
                continue
            records.append(_read_record(uid_dir, task, version, load_results))
    pending = [r for r in records if r.status in ("submitted",) and r.job_id]
    if pending:
        states = (job_state_fn or job_states)([r.job_id for r in pending if r.job_id])
        for r in pending:
            state = states.get(r.job_id or "")
            if state:
                r.status = state.lower() if state in ("PENDING", "RUNNING") else state
    return records


def _flat(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _flat(v, key + ".")
        else:
            yield key, v


def describe(rec: ExperimentRecord) -> dict[str, Any]:
    """The short fields of a record for tables: method, data, seed, state."""
    c = rec.config
    data = c.get("data", {}) if isinstance(c.get("data"), dict) else {}
    defaults = {"GAExperiment": "ga_feedforward", "ESExperiment": "es_feedforward"}
    defaults |= {"CMAESExperiment": "cmaes_feedforward", "SGDExperiment": "sgd_feedforward"}
    return {
        "method": c.get("method", defaults.get(rec.task, "?")),
        "dataset": c.get("dataset", "cartpole"),
        "subject": c.get("subject", "sim01"),
        "cl": "yes" if data.get("use_cl_info") else "no",
        # the episode file's content the experiment ran on (sha256, first 8 hex digits)
        "data": str(data.get("content_hash") or "-").rpartition(":")[2][:8],
        "seed": c.get("seed", 0),
        "status": rec.status,
        "job": rec.job_id or "-",
        "uid": rec.uid,
    }


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain fixed-width text table."""
    rows = list(rows)
    if not rows:
        return "(nothing)"
    cols = list(columns or rows[0].keys())
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def format_status_table(records: Sequence[ExperimentRecord], *, show_errors: bool = True) -> str:
    """The `hbm status` table, then the last traceback line of each failed experiment."""
    text = format_table([describe(r) for r in records])
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    text += f"\n\n{len(records)} experiments: {summary or 'none'}"
    failed = [r for r in records if r.status == "failed" and r.error]
    if show_errors and failed:
        text += "\n\nFailures (full traceback in <uid folder>/error.txt):"
        for r in failed:
            text += f"\n  {r.folder}\n    {r.error_summary}"
    return text


def flat_config(rec: ExperimentRecord) -> dict[str, Any]:
    """Config as dotted columns."""
    return dict(_flat(rec.config))
