"""What is in a cache folder: one record per experiment, its state, its result and its error.

Listing never unpickles anything (a pickle runs code while it loads, and a shared cache may
hold one that a labmate's mistake or malice put there): each state is decided here, in
`_read_record`, from files hbm writes itself and validates as it reads them: `result.json`
(a result that does not parse is `damaged`, named with its file), `error.txt`,
`run_context.json` (host, pid and the pid's start time of the last run, so a pid reused by
another process is not "running" forever), the run lock of a live run (`locks`), and exca's
`job.pkl` read with `pickletools` only (`trust.read_pickle_summary`: the job's class and id,
or that the file is truncated). The folder of each task class is its `infra.uid_folder()`'s
parent. Jobs still queued or running on Slurm are looked up with ONE batched query for all
their ids.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .configs import read_yaml
from .files import (
    CHECKPOINT_FILE,
    ERROR_FILE,
    JOB_FILE,
    MODEL_FILE,
    RESULT_FILE,
    RUN_CONTEXT_FILE,
)
from .infra import cache_root
from .locks import host_tag, lock_holder, process_is_alive
from .slurm import job_states  # one batched sacct query; {} without Slurm
from .trust import DamagedCacheError, json_damage, read_pickle_summary

if TYPE_CHECKING:
    from .tasks import Experiment

__all__ = [
    "ExperimentRecord",
    "find_experiments",
    "format_status_table",
    "job_states",
]

logger = logging.getLogger(__name__)

# exca's folder of a task class, "<module>.<Class>.run,<version>": read only for folders of
# classes this process cannot import (a notebook's subclass listed from the `hbm` command)
_METHOD_DIR = re.compile(r"^(?P<module>[\w.]+)\.(?P<cls>\w+)\.run,(?P<version>[^/]+)$")


@dataclass
class ExperimentRecord:
    """One cached experiment (a uid folder)."""

    folder: Path
    task: str  # e.g. "GAExperiment"
    version: str
    config: dict[str, Any]
    status: str  # completed | failed | damaged | submitted | running | pending | not submitted
    # | interrupted (...) | <SLURM state>
    job_id: str | None = None
    error: str | None = None
    """The stored traceback of a failed run; for a damaged one, which file and why."""
    result: dict[str, Any] | None = field(default=None, repr=False)
    default_method: str | None = None
    """The task class's default method: `uid.yaml` leaves it out when the config kept it."""

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


def _run_context(folder: Path) -> dict[str, Any]:
    """`run_context.json`, written by `Experiment.run` when a run starts: host, pid, job id."""
    try:
        ctx = json.loads((folder / RUN_CONTEXT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return ctx if isinstance(ctx, dict) else {}


def _process_state(folder: Path) -> str | None:
    """State of a run that exca cannot know: in this process, a `local` job, or killed.

    `run_context.json` names the host, pid and the pid's start time of the last run; on this
    host that very process still going is a running run; a gone pid, or one now naming
    another process (its start time differs), a run that was interrupted (with its
    checkpoint position).
    """
    ctx = _run_context(folder)
    if "pid" not in ctx or "host" not in ctx:
        return None
    alive = process_is_alive(ctx)
    if alive is None:
        return f"running? (on {ctx['host']})"
    if alive:
        return "running"
    position = _checkpoint_position(folder)
    return f"interrupted ({position})" if position else "interrupted"


def _task_classes() -> list[type[Experiment]]:
    """Every experiment class this process knows: hbm's and any imported subclass."""
    from .tasks import Experiment

    found: list[type[Experiment]] = []
    todo = [Experiment]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


def _class_folders(root: Path) -> dict[Path, tuple[type[Experiment], str]]:
    """exca's folder of each known task class under `root` (the parent of any of its uid
    folders), with the class and its cache version."""
    folders: dict[Path, tuple[type[Experiment], str]] = {}
    for cls in _task_classes():
        try:
            # any valid instance: the folder depends on the class and version, not the config
            probe = cls.model_validate(
                {
                    "data": {"content_hash": "probe"},
                    "training": {"max_generations": 1, "max_steps": 1},
                    "infra": {"folder": root, "mode": "read-only"},
                }
            )
            folder = probe.infra.uid_folder()
        except Exception as exc:  # a subclass with required fields of its own
            logger.debug("%s: cannot place its cache folder (%s)", cls.__name__, exc)
            continue
        if folder is not None:
            folders.setdefault(folder.parent, (cls, str(probe.infra.version)))
    return folders


def _read_record(
    folder: Path, cls: type[Experiment] | None, task: str, version: str, load_result: bool
) -> ExperimentRecord:
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
    if cls is not None:
        rec.default_method = str(cls.model_fields["method"].default)
    rec.job_id = _run_context(folder).get("job_id")  # the job that ran last, if any did
    _decide_state(rec, load_result)
    return rec


def _damaged(rec: ExperimentRecord, reason: str) -> None:
    rec.status = "damaged"
    rec.error = f"{reason}\n(`hbm run --retry` or `--force` recomputes it)"


def _decide_state(rec: ExperimentRecord, load_result: bool) -> None:
    """The one place that says what state an experiment is in, from what `hbm run` would
    find: a whole result is completed, a file that does not parse is damaged, a stored
    traceback is failed; then a live run (its lock or its process), a queued job, a killed
    run. Nothing is unpickled."""
    folder = rec.folder
    summary = None
    if (folder / JOB_FILE).exists():
        try:
            summary = read_pickle_summary(folder / JOB_FILE)
        except DamagedCacheError as exc:
            return _damaged(rec, str(exc))
    result_file, error_file = folder / RESULT_FILE, folder / ERROR_FILE
    if result_file.exists():
        why = json_damage(result_file)
        if why is not None:
            return _damaged(rec, f"{result_file}: {why}")
        rec.status = "completed"  # a run serves a whole result.json, saved job or not
        if load_result:
            rec.result = json.loads(result_file.read_text())
        return None
    if error_file.exists():
        rec.status = "failed"
        rec.error = error_file.read_text(errors="replace")
        return None
    kind = summary.kind if summary is not None else None
    if summary is not None and summary.job_id and kind in ("slurm", "local"):
        rec.job_id = summary.job_id  # the job queued now (a retry's, not the failed one's)
    if kind == "slurm":
        rec.status = "submitted"  # its Slurm state comes from one batched sacct call
        return None
    holder = lock_holder(folder)
    if holder is not None:
        on = "" if holder.get("host") == host_tag() else f" (on {holder.get('host')})"
        rec.status = f"running{on}"
        return None
    if kind == "process":  # exca's in-process job, saved when the run ended
        rec.status = "completed"
        return None
    # a `local` job, or a run of this process or another: exca cannot tell running from killed
    rec.status = _process_state(folder) or ("running" if kind == "local" else "not submitted")
    return None


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
    known = _class_folders(root)
    for method_dir in sorted(root.iterdir()):
        if not method_dir.is_dir():
            continue
        cls: type[Experiment] | None = None
        if method_dir in known:
            cls, version = known[method_dir]
            task = cls.__name__
        else:
            match = _METHOD_DIR.match(method_dir.name)
            if match is None:
                continue
            task, version = match["cls"], match["version"]
            logger.info("%s: class not importable here; listed from its files", method_dir)
        for uid_dir in sorted(method_dir.iterdir()):
            if uid_dir.name == "logs" or not (uid_dir / "uid.yaml").exists():
                continue
            records.append(_read_record(uid_dir, cls, task, version, load_results))
    records.sort(key=lambda r: (r.task, r.uid))
    pending = [r for r in records if r.status in ("submitted",) and r.job_id]
    if pending:
        states = (job_state_fn or job_states)([r.job_id for r in pending if r.job_id])
        for r in pending:
            state = states.get(r.job_id or "")
            if state:
                r.status = state.lower() if state in ("PENDING", "RUNNING") else state
            elif lock_holder(r.folder) is not None:  # Slurm did not say (no accounting)
                r.status = "running"
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
    return {
        "method": c.get("method", rec.default_method or "?"),
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
