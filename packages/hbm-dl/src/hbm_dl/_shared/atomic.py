"""Atomic writes, the stale-temp rule and owner locks: one rule for every package of hbm.

Standard library only and self-contained (it imports nothing else of its package), so the
packages that cannot depend on each other carry byte-identical copies of this file.

- `atomic_write` / `atomic_write_bytes` / `atomic_write_text`: a temp file in the same
  folder, fsync, `os.replace`, fsync of the folder. Readers see the old file or the new one,
  never half of one. A new file gets what the umask allows (`0o666 & ~umask`, as `open()`
  gives); rewriting a file keeps its mode (a `chmod` the user made stays).
- The stale-temp rule (`remove_stale_temps`, `is_stale_temp`): a temp file's name carries its
  owner, `.<name>.<host>.<pid>.<start>.<random>.tmp` (`start` = `process_start_time(pid)`).
  A temp is removed only when its owner is known dead: a process of this host whose pid is
  gone, whose pid now belongs to another process (its start time differs), or that wrote the
  file before this host last booted; or, for an owner that cannot be checked from here
  (another host, an older naming scheme), when the file is older than `FOREIGN_TEMP_AGE_S`.
  The temp file of a live writer is never removed, so two processes (or cluster nodes on a
  shared filesystem) writing one path never delete each other's file mid-write.
- `OwnerLock`: a lock file taken atomically (`os.link` of a complete file, so nobody reads a
  half-written owner), holding its owner (host, pid, process start time, when taken). A lock
  whose owner is dead by the same rule is taken over; a lock of another host is stale when
  it has not been refreshed for `stale_after_s` (a holder refreshes it from a heartbeat thread).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "FOREIGN_TEMP_AGE_S",
    "UNCHECKABLE_LIVE_TEMP_AGE_S",
    "LockHeldError",
    "OwnerLock",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "host_tag",
    "is_stale_temp",
    "owner_is_dead",
    "process_start_time",
    "remove_stale_temps",
    "temp_name",
]

FOREIGN_TEMP_AGE_S = 3600.0
"""A temp file whose owner cannot be checked from here (another host, an older naming scheme)
is stale after this long unchanged: no single write of a data file, result, model or
checkpoint takes anywhere near an hour, and a writer at work keeps changing its file."""

UNCHECKABLE_LIVE_TEMP_AGE_S = 24 * 3600.0
"""A temp file of a live pid of this host whose start time cannot be compared (no /proc, or a
name without one) is stale after this long: its pid may have been reused."""

_PREFIX_NAME_CHARS = 120
"""At most this many characters of the target's name go into a temp's name, so the temp name
stays within the 255 bytes most filesystems allow. Sharing a prefix with another path's temps
is harmless: the rule judges a temp by its owner, not by which path it was for."""


# ----------------------------------------------------------------------------- owners


def host_tag() -> str:
    """This host's name reduced to `[A-Za-z0-9_-]` (no dots, so a temp name splits on them)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"


def process_start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since this host booted; None if unknown.

    Together with the pid it names one process: a pid reused by a later process gets another
    start time. Read from `/proc/<pid>/stat` (field 22, `starttime`, proc(5)); None where
    there is no /proc (macOS) or no such process.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    try:  # the command name (field 2) is in parentheses and may hold spaces or ')'
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _boot_time() -> float | None:
    """When this host booted (epoch seconds), from /proc/stat's `btime`; None if unknown."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _pid_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def owner_is_dead(pid: int, start: int | None, since: float | None = None) -> bool | None:
    """Whether the process of this host named by (`pid`, `start`) is gone.

    True when the pid does not exist, when it now belongs to a process with another start
    time, or when `since` (epoch seconds, e.g. a file's mtime) predates this host's last boot.
    False when that very process runs. None when it cannot be told (the pid runs but its start
    time, or the recorded one, is unknown): callers then fall back to an age.
    """
    if not _pid_exists(pid):
        return True
    now_start = process_start_time(pid) if start is not None else None
    if now_start is not None:
        return now_start != start
    if since is not None:
        boot = _boot_time()
        if boot is not None and since < boot - 1.0:  # written before this host booted
            return True
    return None


_own_starts: dict[int, int] = {}


def _own_start() -> int:
    """This process's start time (0 where unknown), read once per pid (a fork is a new one)."""
    pid = os.getpid()
    if pid not in _own_starts:
        _own_starts[pid] = process_start_time(pid) or 0
    return _own_starts[pid]


# ----------------------------------------------------------------------------- temp files


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:_PREFIX_NAME_CHARS]}."


def temp_name(path: str | os.PathLike[str]) -> str:
    """A fresh temp file name for writing `path`: `.<name>.<host>.<pid>.<start>.<random>.tmp`."""
    p = Path(path)
    return f"{_temp_prefix(p)}{host_tag()}.{os.getpid()}.{_own_start()}.{secrets.token_hex(4)}.tmp"


_NEW = re.compile(r"(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.(?P<start>\d+)\.[A-Za-z0-9_]+")
_OLD_WITH_HOST = re.compile(r"(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+")


def _owner_of(rest: str) -> tuple[str | None, int | None, int | None]:
    """(host, pid, start) from the part of a temp name between the prefix and `.tmp`, read
    from its end (the target's name may hold dots); Nones where the name does not say."""
    parts = rest.split(".")
    m = _NEW.fullmatch(".".join(parts[-4:])) if len(parts) >= 4 else None
    if m is not None:
        start = int(m["start"])
        return m["host"], int(m["pid"]), (start or None)
    m = _OLD_WITH_HOST.fullmatch(".".join(parts[-3:])) if len(parts) >= 3 else None
    if m is not None:
        return m["host"], int(m["pid"]), None
    return None, None, None


def is_stale_temp(tmp: str | os.PathLike[str], *, now: float | None = None) -> bool:
    """Whether temp file `tmp` (named by `temp_name` or an older scheme) was left by a dead
    writer and may be removed (the rule in this module's docstring)."""
    tmp = Path(tmp)
    name = tmp.name
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    try:
        mtime = tmp.stat().st_mtime
    except OSError:
        return False
    age = (time.time() if now is None else now) - mtime
    host, pid, start = _owner_of(name[1 : -len(".tmp")])
    if host == host_tag() and pid is not None:
        dead = owner_is_dead(pid, start, since=mtime)
        if dead is not None:
            return dead
        return age > UNCHECKABLE_LIVE_TEMP_AGE_S
    return age > FOREIGN_TEMP_AGE_S


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the stale temp files of writes to `path` (`.<name>.*.tmp` next to it); returns
    what was removed. Temp files of live writers stay."""
    p = Path(path)
    prefix = _temp_prefix(p)
    try:
        names = [n for n in os.listdir(p.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return []
    removed = []
    now = time.time()
    for name in names:
        tmp = p.parent / name
        if is_stale_temp(tmp, now=now):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


# ----------------------------------------------------------------------------- writers


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; some filesystems cannot fsync a directory (ignored)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write `path` atomically and durably by `write(f)` on a binary temp file; returns it.

    Temp file next to `path` (`temp_name`), fsync, `os.replace`, fsync of the folder. The new
    file is created with mode 0o666 and the kernel applies the umask (parent folders get
    0o777 & ~umask); rewriting an existing file keeps that file's mode. Stale temp files of
    earlier, killed writes to `path` are removed first (`remove_stale_temps`). If `write` or
    the rename fails, the temp file is removed and `path` is untouched.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(p)
    try:
        keep_mode: int | None = p.stat().st_mode & 0o7777
    except FileNotFoundError:
        keep_mode = None
    tmp = p.parent / temp_name(p)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        if keep_mode is not None:
            os.fchmod(fd, keep_mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(p.parent)
    return p


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """`atomic_write` of `data`."""

    def write(f: IO[bytes]) -> None:
        f.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """`atomic_write` of `text` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- owner locks


class LockHeldError(RuntimeError):
    """The lock is held by a live owner; the message names the lock file and its owner."""

    def __init__(self, message: str, owner: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.owner = owner


def _describe(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "an owner that did not record itself"
    taken = owner.get("taken_at")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(taken)) if taken else "?"
    return f"pid {owner.get('pid')} on host {owner.get('host')} since {when}"


class OwnerLock:
    """An exclusive lock file naming its owner; use as a context manager or `acquire`/`release`.

    `acquire()` creates `path` atomically or raises `LockHeldError` naming the owner. A lock
    left by a dead process of this host (pid gone or reused, judged as temp files are) is taken
    over at once; a lock of another host once it has not been refreshed for `stale_after_s`.
    With `heartbeat=True` (the default) a daemon thread refreshes the lock's mtime every
    `stale_after_s / 4`, so a long-held lock of a live owner never looks stale to other hosts.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, stale_after_s: float = 3600.0, heartbeat: bool = True
    ) -> None:
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s must be > 0, got {stale_after_s!r}")
        self.path = Path(path)
        self.stale_after_s = float(stale_after_s)
        self.heartbeat = heartbeat
        self._held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading
    def owner(self) -> dict[str, Any] | None:
        """The recorded owner of the lock file, or None if absent or unreadable."""
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _is_stale(self) -> bool:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        owner = self.owner()
        if owner is not None and owner.get("host") == host_tag():
            pid, start = owner.get("pid"), owner.get("start")
            if isinstance(pid, int) and not isinstance(pid, bool):
                dead = owner_is_dead(pid, start if isinstance(start, int) else None, since=mtime)
                if dead is not None:
                    return dead
        return time.time() - mtime > self.stale_after_s

    # -- taking
    def _create(self) -> bool:
        """Create the lock file complete, atomically; False if it exists."""
        record = {
            "host": host_tag(),
            "pid": os.getpid(),
            "start": _own_start() or None,
            "taken_at": time.time(),
        }
        data = (json.dumps(record) + "\n").encode()
        tmp = self.path.parent / temp_name(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError as exc:  # a filesystem without hard links: exclusive create
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
            try:
                lfd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(lfd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _break_stale(self) -> None:
        """Remove a stale lock; breakers take `<lock>.break` first so that two of them cannot
        judge the same stale lock and then remove the fresh lock the other just created."""
        breaker = OwnerLock(self.path.with_name(self.path.name + ".break"), heartbeat=False)
        breaker.stale_after_s = 60.0  # breaking takes milliseconds
        if not breaker._create():
            if not breaker._is_stale():
                return
            with contextlib.suppress(FileNotFoundError):
                breaker.path.unlink()
            if not breaker._create():
                return
        try:
            if self._is_stale():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            with contextlib.suppress(FileNotFoundError):
                breaker.path.unlink()

    def acquire(self) -> OwnerLock:
        """Take the lock or raise `LockHeldError` naming the file and its live owner."""
        if self._held:
            raise RuntimeError(f"{self.path}: this lock object already holds the lock")
        for _ in range(3):
            if self._create():
                self._held = True
                if self.heartbeat:
                    self._start_heartbeat()
                return self
            if self._is_stale():
                self._break_stale()
                continue
            break
        owner = self.owner()
        raise LockHeldError(f"{self.path} is held by {_describe(owner)}", owner)

    def refresh(self) -> None:
        """Mark the lock as still held (its mtime), for other hosts judging it by age."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        interval = self.stale_after_s / 4

        def beat() -> None:
            while not self._stop.wait(interval):
                self.refresh()

        self._thread = threading.Thread(target=beat, name=f"lock {self.path.name}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Give the lock back (removes the file if it is still ours)."""
        if not self._held:
            return
        self._held = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        owner = self.owner()
        if (
            owner is not None
            and owner.get("pid") == os.getpid()
            and owner.get("host") == host_tag()
        ):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    @property
    def held(self) -> bool:
        return self._held

    def __enter__(self) -> OwnerLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
