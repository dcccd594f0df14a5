"""The files of an experiment's uid folder, and the one way hbm-experiments writes a file.

Every write is atomic (a temp file in the same folder, fsync, `os.replace`), so a kill leaves the
old file or the new one, never half of one. The final file gets the permissions the user's umask
allows (`0o666 & ~umask`, like `open()`), not `mkstemp`'s 0600: a lab group sharing a cluster
filesystem can read results when its umask says so, and nobody can under umask 077. Temp files
orphaned by a kill during an earlier write of the same path are removed on the next write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CHECKPOINT_FILE",
    "ERROR_FILE",
    "MODEL_FILE",
    "RESULT_FILE",
    "RUN_CONTEXT_FILE",
    "atomic_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_mode",
]

RESULT_FILE = "result.json"
"""The result of a completed run (what `run()` returns), read by `hbm status`/`collect`."""
ERROR_FILE = "error.txt"
"""The traceback of the last failed run."""
MODEL_FILE = "model.pt"
"""The trained policy: `{"spec": ..., "state_dict": ...}` (`evaluation.load_model`)."""
CHECKPOINT_FILE = "checkpoint.pt"
"""The training checkpoint a restarted job resumes from (fingerprinted by the training loop)."""
RUN_CONTEXT_FILE = "run_context.json"
"""Where and how the last run ran: the uid-excluded fields (device, threads, resources) and
the process; tells a failure caused by one of them from a failure of the config itself."""


def _umask() -> int:
    """The process umask. Linux shows it in /proc (no race); elsewhere set-and-restore."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # racy with other threads creating files; only off Linux
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new file under the current umask (what `open(path, "w")` gives)."""
    return 0o666 & ~_umask()


_ORPHAN_AGE_S = 3600.0
"""A temp file of another host (or unnamed process) is orphaned after this long: no write of
a result, model or checkpoint takes anywhere near an hour."""


def _host() -> str:
    return os.uname().nodename.replace(".", "_")


def _is_orphan(tmp: Path, name: str) -> bool:
    """Whether a writer's temp file was left by a kill: its process (named in the file name,
    `.<name>.<host>.<pid>.<random>.tmp`) is gone, or it is an hour old."""
    parts = tmp.name[len(name) + 2 : -len(".tmp")].split(".")
    if len(parts) >= 3 and parts[0] == _host() and parts[1].isdigit():
        pid = int(parts[1])
        if pid == os.getpid():
            return False  # another thread of this process is writing it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        return time.time() - tmp.stat().st_mtime > _ORPHAN_AGE_S
    except OSError:
        return False


def _remove_orphans(path: Path) -> None:
    """Temp files of earlier writes of `path` that a kill left behind (a live writer's stay)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        if _is_orphan(tmp, path.name):
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file next to `path`; on a clean exit fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    prefix = f".{path.name}.{_host()}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_write(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_save(path: str | Path, save: Callable[[IO[bytes]], None]) -> Path:
    """`save(f)` into a temp file, then rename: for writers that take a file (torch.save,
    matplotlib's savefig)."""
    with atomic_write(path, "wb") as f:
        save(f)
    return Path(path)
