"""The sidecar `<name>.meta.json` beside an episode file (who made the data, the game, which
seeds replay), and the data's content hash, which covers both files."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .files import HASH_PREFIX, atomic_write_bytes, file_content_hash
from .paths import sidecar_path

__all__ = [
    "data_content_hash",
    "parse_sidecar",
    "read_sidecar",
    "sidecar_bytes",
    "with_sidecar",
    "write_sidecar",
]

logger = logging.getLogger(__name__)


def read_sidecar(path: Path | str) -> dict[str, Any] | None:
    """The `<name>.meta.json` next to an episode file, or None if absent or unreadable."""
    return parse_sidecar(sidecar_path(path), sidecar_bytes(path))


def sidecar_bytes(path: Path | str) -> bytes | None:
    """The sidecar's bytes; None if there is none (or it cannot be read, which is logged)."""
    side = sidecar_path(path)
    try:
        return side.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("ignoring unreadable sidecar %s: %s", side, exc)
        return None


def parse_sidecar(side: Path, data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as exc:
        logger.warning("ignoring unreadable sidecar %s: %s", side, exc)
        return None
    return meta if isinstance(meta, dict) else None


def with_sidecar(file_hash: str, sidecar: bytes | None) -> str:
    """The data's hash: the episode file's alone without a sidecar (so such files keep their
    hash), else one over both, since the sidecar changes what the data is (who made it,
    which seeds replay)."""
    if sidecar is None:
        return file_hash
    h = hashlib.sha256(b"hbm-data episode file + sidecar\n")
    h.update(file_hash.encode("ascii") + b"\n")
    h.update(sidecar)
    return HASH_PREFIX + h.hexdigest()


def data_content_hash(path: Path | str) -> str:
    """`"sha256:<hex>"` identifying an episode file's data: `file_content_hash` of the file,
    combined with the bytes of its `<name>.meta.json` sidecar where there is one (source kind,
    replayable seeds). Equal to `load_human_data(...).metadata.content_hash` for the same files;
    key caches by it. Raises FileNotFoundError naming the file when it is absent."""
    return with_sidecar(file_content_hash(path), sidecar_bytes(path))


def write_sidecar(path: Path | str, meta: Mapping[str, Any]) -> None:
    """Atomically write the `<name>.meta.json` describing an episode file."""
    atomic_write_bytes(sidecar_path(path), (json.dumps(dict(meta), indent=2) + "\n").encode())
