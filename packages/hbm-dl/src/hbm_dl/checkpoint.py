"""Atomic, validated checkpoint files (the helpers live in `hbm_dl._shared`, shared with hbm-ne).

Written with `torch.save` to a temp file in the same directory, fsynced, then `os.replace`d, so a
crash leaves either the old file or the new one; the file gets the permissions the user's umask
allows, and temp files orphaned by a kill mid-write are removed at the next write. Read with
`weights_only=True` (no pickled code); anything unreadable, foreign or of another run raises
`CheckpointError` naming the file (and the differing fingerprint fields) and is never modified.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hbm_dl._shared import (
    CheckpointError,
    CheckpointInfo,
    atomic_write,
    load_checkpoint_file,
    read_checkpoint_info,
    save_checkpoint_file,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointInfo",
    "atomic_write",
    "checkpoint_info",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "hbm_dl.optimize_sgd"
CHECKPOINT_VERSION = 2  # 2: fingerprint with the caller's part and hbm_dl's own, written_at


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """Write `payload` to `path` atomically (temp file + fsync + rename, umask permissions)."""
    save_checkpoint_file(path, payload)


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    format_name: str = CHECKPOINT_FORMAT,
    version: int = CHECKPOINT_VERSION,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` and check its `format` / `version` tags and
    `required` fields; tensors are loaded on CPU."""
    return load_checkpoint_file(path, format_name=format_name, version=version, required=required)


def checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Step, write time, elapsed time and fingerprint of an `optimize_sgd` checkpoint."""
    return read_checkpoint_info(path, format_name=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)
