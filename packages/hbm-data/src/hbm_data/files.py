"""Files on disk: the one atomic writer of hbm-data, and content hashes of episode files.

Every file hbm-data writes (episode files, sidecars, recorder updates, simulated subjects,
plots) goes through `atomic_write_bytes`, so they all get the same guarantees: readers see the
old or the new file, never half of one; a new file gets the permissions the user's umask allows
(`0o666 & ~umask`, like a plain `open()`), so a lab group can share data under umask 002 and a
person's recordings stay private under 077; and temp files orphaned by a kill are removed, while
those of live writers stay (`hbm_data._atomic` holds the writer and that rule).

`file_content_hash` keys data by what a file contains, not by its name.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

from . import _atomic
from ._atomic import (
    LockHeldError,
    OwnerLock,
    atomic_write,
    atomic_write_text,
    process_start_time,
    remove_stale_temps,
)

__all__ = [
    "HASH_PREFIX",
    "LockHeldError",
    "OwnerLock",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "current_umask",
    "file_content_hash",
    "process_start_time",
    "remove_stale_temps",
]

#: Prefix of every content hash, so a stored hash names its algorithm.
HASH_PREFIX = "sha256:"

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


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically and durably; returns the path.

    Temp file in the same folder, fsync, `os.replace`, fsync of the folder: readers see the old
    or the new file, never half, even after a power cut. A new file gets `0o666 & ~umask`;
    rewriting an existing file keeps its mode. Temp files of earlier writes killed mid-write
    are removed first, those of live writers never (the rule of `hbm_data._atomic`).
    """
    return _atomic.atomic_write_bytes(path, data)


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
