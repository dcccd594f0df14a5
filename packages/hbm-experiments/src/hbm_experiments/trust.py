"""Who may have written a cache file, and whether it is whole: checked before anything is loaded.

A pickle runs code while it loads, so a cache a lab group shares (a group-writable folder) is
only as safe as the least careful person who can write into it. Two rules follow:

- Read-only commands (`hbm status`, `collect`, `report`) never unpickle: they read the JSON and
  YAML files hbm writes, and look into exca's `job.pkl` only with `pickletools.genops`, which
  walks the pickle's opcodes without executing any of them (the job id and the job's class are
  plain strings in it; a truncated file ends before its STOP opcode).
- A run that must load one of exca's pickles (`job.pkl` of an existing uid, submitit's result
  pickles) first checks who could have written it: its owner must be this user (or root), or a
  user or group named in `HBM_TRUSTED_OWNERS`; a file that its group can write needs a trusted
  group, one that anybody can write is refused. Otherwise `UntrustedFileError` names the file,
  its owner and the setting.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pickletools
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "TRUSTED_OWNERS_ENV",
    "DamagedCacheError",
    "PickleSummary",
    "UntrustedFileError",
    "check_trusted",
    "json_damage",
    "read_pickle_summary",
    "trusted_owners",
]

TRUSTED_OWNERS_ENV = "HBM_TRUSTED_OWNERS"
"""Users and groups whose cache files a run may unpickle, besides this user and root:
comma- or space-separated user names or uids, and groups as `@name` or `@gid`."""


class UntrustedFileError(PermissionError):
    """A pickle that someone this user does not trust could have written; never loaded."""


class DamagedCacheError(RuntimeError):
    """A cache file that does not parse (truncated, half-written by a full disk): the message
    names it and the command that recomputes it."""


def _uid_of(name: str) -> int | None:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _gid_of(name: str) -> int | None:
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def trusted_owners(setting: str | None = None) -> tuple[set[int], set[int]]:
    """(uids, gids) trusted besides this user and root, from `setting` (default: the
    `HBM_TRUSTED_OWNERS` environment variable). An unknown name is an error, not ignored:
    a typo must not silently trust nobody (or, worse, somebody else)."""
    text = os.environ.get(TRUSTED_OWNERS_ENV, "") if setting is None else setting
    uids, gids = {os.getuid(), 0}, set()
    for item in text.replace(",", " ").split():
        if item.startswith("@"):
            gid = _gid_of(item[1:])
            if gid is None:
                raise ValueError(f"{TRUSTED_OWNERS_ENV}: no group {item[1:]!r}")
            gids.add(gid)
        else:
            uid = _uid_of(item)
            if uid is None:
                raise ValueError(f"{TRUSTED_OWNERS_ENV}: no user {item!r}")
            uids.add(uid)
    return uids, gids


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except KeyError:
        return f"gid {gid}"


def check_trusted(path: str | os.PathLike[str]) -> None:
    """Raise `UntrustedFileError` unless `path` (and, for a link, the link itself) could only
    have been written by trusted users; a missing file passes (nothing will be loaded)."""
    path = Path(path)
    uids, gids = trusted_owners()
    for st, what in _stats(path):
        hint = (
            f"a run loads only pickles it can trust; if this cache is shared with people you "
            f"trust, name them in {TRUSTED_OWNERS_ENV} (users, or groups as @name), else "
            f"remove the file"
        )
        if st.st_uid not in uids and st.st_gid not in gids:
            raise UntrustedFileError(
                f"{what}: owned by {_user_name(st.st_uid)}, not a trusted user; not loaded: {hint}"
            )
        if st.st_mode & stat.S_IWOTH and not stat.S_ISLNK(st.st_mode):
            raise UntrustedFileError(f"{what}: anybody can write it; not loaded: {hint}")
        if st.st_mode & stat.S_IWGRP and not stat.S_ISLNK(st.st_mode) and st.st_gid not in gids:
            raise UntrustedFileError(
                f"{what}: group {_group_name(st.st_gid)} can write it and is not trusted; "
                f"not loaded: {hint}"
            )


def _stats(path: Path) -> list[tuple[os.stat_result, Path]]:
    try:
        lst = path.lstat()
    except FileNotFoundError:
        return []
    out = [(lst, path)]
    if stat.S_ISLNK(lst.st_mode):
        with contextlib.suppress(FileNotFoundError):
            out.append((path.stat(), path.resolve()))
    return out


# ------------------------------------------------------------------------ reading, safely


@dataclass(frozen=True)
class PickleSummary:
    """What a pickle says about itself without being loaded."""

    classes: tuple[str, ...]
    """`module.Name` of every global it refers to, in order (the first is the job's class)."""
    job_id: str | None
    """The string stored under `_job_id` (submitit jobs), if any."""

    @property
    def kind(self) -> str | None:
        """`slurm`, `local` (a submitit subprocess) or `process` (exca's in-process job)."""
        first = self.classes[0] if self.classes else ""
        if first.startswith("submitit.slurm."):
            return "slurm"
        if first.startswith("submitit.local."):
            return "local"
        if first.startswith("exca."):
            return "process"
        return None


def read_pickle_summary(path: str | os.PathLike[str]) -> PickleSummary:
    """The classes a pickle names and its `_job_id`, by walking its opcodes
    (`pickletools.genops`): nothing in it is executed or imported. Raises `DamagedCacheError`
    naming the file when it is empty, truncated or not a pickle."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DamagedCacheError(f"{path}: unreadable ({exc})") from exc
    if not data:
        raise DamagedCacheError(f"{path}: empty file")
    strings: list[str] = []
    classes: list[str] = []
    job_id: str | None = None
    want_id = False
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                classes.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                classes.append(f"{strings[-2]}.{strings[-1]}")
            if isinstance(arg, str) and "UNICODE" in op.name:
                if want_id and job_id is None:
                    job_id = arg
                want_id = arg == "_job_id"
                strings.append(arg)
    except Exception as exc:  # genops raises ValueError for truncated or invalid data
        raise DamagedCacheError(f"{path}: not a complete pickle ({exc})") from exc
    return PickleSummary(tuple(classes), job_id)


def json_damage(path: str | os.PathLike[str]) -> str | None:
    """Why `path` is not a JSON object (None when it is): truncated, bare NaN, not a dict."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"bare {name} is not JSON")

    try:
        value = json.loads(Path(path).read_bytes(), parse_constant=no_constants)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    return None
