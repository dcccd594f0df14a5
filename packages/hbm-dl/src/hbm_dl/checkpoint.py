"""Atomic, validated checkpoint files.

Written with `torch.save` to a temp file in the same directory, fsynced, then `os.replace`d, so a
crash leaves either the old file or the new one. Read with `weights_only=True` (no pickled code);
anything unreadable or foreign raises `CheckpointError` naming the file and never gets overwritten.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or belongs to another run or another program."""


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write `payload` to `path` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_checkpoint(
    path: str | Path, *, format_name: str, version: int, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` and check its `format` / `version` tags and
    `required` fields; tensors are loaded on CPU."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); the file is corrupt "
            f"or not a torch file. It was left untouched: move it away to start afresh."
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != format_name:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"{path}: field 'format' is {found!r}, expected {format_name!r} "
            f"(not a checkpoint of this program; it was left untouched)"
        )
    if blob.get("version") != version:
        raise CheckpointError(
            f"{path}: field 'version' is {blob.get('version')!r}, expected {version}"
        )
    missing = [k for k in required if k not in blob]
    if missing:
        raise CheckpointError(f"{path}: missing fields {missing} (truncated or foreign checkpoint)")
    return blob
