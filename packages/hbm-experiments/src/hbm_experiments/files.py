"""The files of an experiment's uid folder, and how hbm-experiments writes a file.

Every write goes through hbm-data's atomic writer (`hbm_data._atomic`: a temp file in the same
folder, fsync, `os.replace`), so a kill leaves the old file or the new one, never half of one,
and the final file gets the permissions the user's umask allows (a lab group sharing a cluster
filesystem can read results when its umask says so, and nobody can under umask 077). Temp files
name their writer (host, pid, process start time) and only those of dead writers are removed:
two processes writing one path never delete each other's temp file mid-write. One writer and
one stale-temp rule for every hbm package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from hbm_data._atomic import atomic_write as _atomic_write
from hbm_data._atomic import atomic_write_bytes as _write_bytes
from hbm_data._atomic import atomic_write_text as _write_text

__all__ = [
    "CHECKPOINT_FILE",
    "ERROR_FILE",
    "JOB_FILE",
    "MODEL_FILE",
    "RESULT_FILE",
    "RUN_CONTEXT_FILE",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
]

RESULT_FILE = "result.json"
"""The result of a completed run (what `run()` returns), read by `hbm status`/`collect`."""
ERROR_FILE = "error.txt"
"""The traceback of the last failed run."""
MODEL_FILE = "model.pt"
"""The trained policy: `{"spec": ..., "state_dict": ...}` (`evaluation.load_model`)."""
CHECKPOINT_FILE = "checkpoint.pt"
"""The training checkpoint a restarted job resumes from (fingerprinted by the training loop)."""
JOB_FILE = "job.pkl"
"""exca's saved job (a pickle: loaded only when trusted, read by `hbm status` without loading)."""
RUN_CONTEXT_FILE = "run_context.json"
"""Where and how the last run ran: the uid-excluded fields (device, threads, resources) and
the process; tells a failure caused by one of them from a failure of the config itself."""


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _write_bytes(path, data)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _write_text(path, text)


def atomic_save(path: str | Path, save: Callable[[IO[bytes]], None]) -> Path:
    """`save(f)` into a temp file, then rename: for writers that take a file (torch.save,
    matplotlib's savefig)."""
    return _atomic_write(path, save)
