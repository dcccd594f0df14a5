"""Files on disk: the one atomic writer of hbm-data, and content hashes of episode files.

Every file hbm-data writes (episode files, sidecars, recorder updates, simulated subjects,
plots) goes through `atomic_write_bytes`, so they all get the same guarantees: readers see the
old or the new file, never half of one; a new file gets the permissions the user's umask allows
(`0o666 & ~umask`, like a plain `open()`), so a lab group can share data under umask 002 and a
person's recordings stay private under 077; and temp files orphaned by a kill are removed.

`file_content_hash` keys data by what a file contains, not by its name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

__all__ = ["HASH_PREFIX", "atomic_write_bytes", "current_umask", "file_content_hash"]

#: Prefix of every content hash, so a stored hash names its algorithm.
HASH_PREFIX = "sha256:"

#: Temp files of another host (or an older naming scheme) count as orphaned after this long;
#: no single write of an episode file takes anywhere near an hour.
ORPHAN_AGE_SECONDS = 3600.0

#: A temp file of a live process of this host is left alone for this long: its pid may have
#: been reused by another process after the writer died, so it cannot stay forever.
LIVE_WRITER_AGE_SECONDS = 24 * 3600.0

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux reports it in `/proc/self/status` (`Umask:`, kernel ≥ 4.7). Elsewhere the only way is
    to set a umask and put the old one back: a thread creating a file between the two calls gets
    the temporary one, so it is the strict 077 (never a looser mode), and the lock keeps
    concurrent callers of this function consistent. hbm-data falls back to it only where /proc
    is missing (macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        old = os.umask(0o077)
        os.umask(old)
    return old


def _host_tag() -> str:
    """This host's name, reduced to characters safe in a file name without dots."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def _remove_orphans(path: Path) -> None:
    """Remove `.<name>.*.tmp` left next to `path` by a writer killed mid-write.

    A temp file is orphaned when its writer (host and pid are in its name) is a dead process of
    this host, or when it is older than `ORPHAN_AGE_SECONDS` (another host's, whose pid cannot
    be checked from here, or an older naming scheme), or `LIVE_WRITER_AGE_SECONDS` (a live pid of
    this host, possibly reused). So two processes, or cluster nodes on a shared filesystem,
    writing one file never remove each other's temp file mid-write.
    """
    prefix = _tmp_prefix(path)
    host = _host_tag()
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    now = time.time()
    for name in names:
        tmp = path.parent / name
        m = re.fullmatch(
            re.escape(prefix) + r"(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\..*\.tmp", name
        )
        pid = int(m["pid"]) if m is not None and m["host"] == host else None  # ours: checkable
        ours = pid is not None
        if pid is not None and not _pid_alive(pid):
            orphaned = True
        else:
            try:
                age = now - tmp.stat().st_mtime
            except OSError:
                continue
            orphaned = age > (LIVE_WRITER_AGE_SECONDS if ours else ORPHAN_AGE_SECONDS)
        if orphaned:
            tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically and durably; returns the path.

    Temp file in the same directory (named `.<name>.<host>.<pid>.<random>.tmp`), fsync, then
    `os.replace`, then fsync of the directory: readers see the old or the new file, never half,
    even after a power cut. A new file gets `0o666 & ~umask`; rewriting an existing file keeps
    its mode (a `chmod` the user made stays). Temp files orphaned by an earlier killed write to
    the same path are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()  # mkstemp's own 0600 ignores the umask
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f"{_tmp_prefix(path)}{_host_tag()}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some filesystems cannot fsync a directory (ignored)."""
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


# ----------------------------------------------------------------------------- content hashes


class _Version(NamedTuple):
    """What identifies one version of a file without reading it."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int


_MEMO_SIZE = 4096
_memo: OrderedDict[_Version, str] = OrderedDict()
_memo_lock = threading.Lock()


def _version(path: str, st: os.stat_result) -> _Version:
    return _Version(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _remember(key: _Version, digest: str) -> None:
    with _memo_lock:
        _memo[key] = digest
        _memo.move_to_end(key)
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)


def _recall(key: _Version) -> str | None:
    with _memo_lock:
        digest = _memo.get(key)
        if digest is not None:
            _memo.move_to_end(key)
        return digest


def read_bytes_hashed(path: Path | str) -> tuple[bytes, str]:
    """A file's bytes and their content hash, from one read (the hash is of exactly these bytes).

    Loaders use this so the hash they report belongs to the data they parsed, even when the
    file is rewritten meanwhile; the hash is memoised for `file_content_hash`.
    """
    resolved = str(Path(path).resolve())
    with open(resolved, "rb") as f:
        before = os.fstat(f.fileno())
        data = f.read()
        after = os.fstat(f.fileno())
    digest = HASH_PREFIX + hashlib.sha256(data).hexdigest()
    if _version(resolved, before) == _version(resolved, after):
        _remember(_version(resolved, after), digest)
    return data, digest


def file_content_hash(path: Path | str) -> str:
    """`"sha256:<64 hex digits>"` of a file's bytes (a `.json.gz` is hashed compressed).

    Computed once per file version: memoised in this process by (resolved path, device, inode,
    size, mtime in ns), so asking again for an unchanged file costs one `stat`. Any rewrite
    (an atomic replace makes a new inode; an edit in place changes size or mtime) is hashed
    afresh; a `touch` rehashes and gives the same hash. A file changing while it is hashed is
    hashed again. Raises FileNotFoundError naming the file when it is absent.
    """
    resolved = str(Path(path).resolve())
    for _ in range(5):
        try:
            st = os.stat(resolved)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file to hash") from None
        digest = _recall(_version(resolved, st))
        if digest is not None:
            return digest
        with open(resolved, "rb") as f:
            before = os.fstat(f.fileno())
            digest = HASH_PREFIX + hashlib.file_digest(f, "sha256").hexdigest()
            after = os.fstat(f.fileno())
        if _version(resolved, before) == _version(resolved, after):
            _remember(_version(resolved, after), digest)
            return digest
    raise OSError(f"{path}: the file kept changing while it was hashed")
