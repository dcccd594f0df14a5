"""One run of an experiment at a time: a lock file per uid folder, and which process is alive.

Two `hbm run` of one config (two terminals, two `hbm seeds`, two nodes sharing the cache)
would train into the same checkpoint and overwrite each other's files. The run takes
`run.lock` in its uid folder (hbm-data's `OwnerLock`: created atomically, naming host, pid and
process start time, refreshed by a heartbeat); a second run waits for the first and then
reads its result. A lock whose process is gone (or whose pid now names another process) is
taken over on the same host; a lock of another host once its heartbeat stopped.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from hbm_data._atomic import LockHeldError, OwnerLock, host_tag, owner_is_dead, process_start_time

__all__ = [
    "LOCK_STALE_AFTER_S",
    "RUN_LOCK_FILE",
    "LockHeldError",
    "acquire_run_lock",
    "host_tag",
    "lock_holder",
    "process_identity",
    "process_is_alive",
    "run_lock",
]

logger = logging.getLogger(__name__)

RUN_LOCK_FILE = "run.lock"
"""In an experiment's uid folder while a process runs it."""

LOCK_STALE_AFTER_S = 600.0
"""A lock of another host whose heartbeat (every quarter of this) stopped this long ago is a
dead run's: the node crashed or was cut off."""

_POLL_S = 1.0


def run_lock(folder: Path) -> OwnerLock:
    return OwnerLock(folder / RUN_LOCK_FILE, stale_after_s=LOCK_STALE_AFTER_S)


def process_identity() -> dict[str, Any]:
    """This process as `run_context.json` records it: host, pid and start time (a pid alone
    may name another process later)."""
    pid = os.getpid()
    return {"host": host_tag(), "pid": pid, "pid_start": process_start_time(pid)}


def process_is_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process a record names (`process_identity`) still runs: None when it ran
    on another host (cannot be told from here)."""
    pid, start = record.get("pid"), record.get("pid_start")
    if record.get("host") != host_tag() or not isinstance(pid, int) or isinstance(pid, bool):
        return None
    dead = owner_is_dead(pid, start if isinstance(start, int) else None)
    return not dead if dead is not None else True


def lock_holder(folder: Path) -> dict[str, Any] | None:
    """The live owner of the uid folder's run lock, or None (no lock, or a dead owner's).
    Reads only: a stale lock is left for the next run to take over."""
    lock = run_lock(folder)
    path = lock.path
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    owner = lock.owner() or {}
    pid, start = owner.get("pid"), owner.get("start")
    if owner.get("host") == host_tag() and isinstance(pid, int):
        dead = owner_is_dead(pid, start if isinstance(start, int) else None, since=mtime)
        if dead is not None:
            return None if dead else owner
    return None if time.time() - mtime > LOCK_STALE_AFTER_S else owner


def acquire_run_lock(folder: Path, name: str) -> tuple[OwnerLock, bool]:
    """Take the run lock of `folder`, waiting while another live process holds it; returns
    the lock and whether this process waited (then the other run's files are new)."""
    lock = run_lock(folder)
    waited = False
    while True:
        try:
            lock.acquire()
            return lock, waited
        except LockHeldError as exc:
            if not waited:
                logger.warning("%s: already running (%s); waiting for it to finish", name, exc)
            waited = True
        time.sleep(_POLL_S)
