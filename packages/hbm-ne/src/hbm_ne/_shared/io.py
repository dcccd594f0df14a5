"""Checkpoint files: `CheckpointError`, atomic save, validated load, fingerprints (what a
checkpoint must match to be resumed) and `CheckpointInfo`."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from .atomic import atomic_write


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another program, or of another run
    (its fingerprint differs). The message names the file and the differing field(s); the file
    is never modified."""


def save_checkpoint_file(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """`torch.save(payload)` to `path` by `atomic_write`."""
    atomic_write(path, lambda f: torch.save(dict(payload), f))


def load_checkpoint_file(
    path: str | os.PathLike[str], *, format_name: str, version: int, required: Sequence[str] = ()
) -> dict[str, Any]:
    """Read a checkpoint (tensors on CPU, `weights_only`: no pickled code) and check its
    `format` / `version` tags and `required` fields; anything else raises `CheckpointError`
    naming the file."""
    p = Path(path)
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"{p}: cannot read checkpoint ({type(exc).__name__}: {exc}); the file is corrupt "
            "or not a torch file. It was left untouched: pass resume=False to start afresh "
            "(it is replaced when the first new checkpoint is written), or move it away."
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != format_name:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"{p}: field 'format' is {found!r}, expected {format_name!r} "
            "(not a checkpoint of this program; it was left untouched)"
        )
    if blob.get("version") != version:
        raise CheckpointError(
            f"{p}: field 'version' is {blob.get('version')!r}, expected {version} (written by "
            "another version of this program; it was left untouched: pass resume=False to "
            "start afresh)"
        )
    missing = [k for k in required if k not in blob]
    if missing:
        raise CheckpointError(f"{p}: missing fields {missing} (truncated or foreign checkpoint)")
    return cast(dict[str, Any], blob)


def now_iso() -> str:
    """The current local time, ISO 8601 with its UTC offset (seconds)."""
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def jsonable(value: Mapping[str, Any] | None, what: str = "fingerprint") -> dict[str, Any]:
    """`value` as plain JSON types (tuples become lists, paths strings), or TypeError."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        out = json.loads(json.dumps(dict(value), sort_keys=True, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-able: {exc}") from exc
    return cast(dict[str, Any], out)


def build_fingerprint(
    caller: Mapping[str, Any] | None, package: str, own: Mapping[str, Any]
) -> dict[str, Any]:
    """The fingerprint a checkpoint stores: the caller's mapping, plus the library's own
    settings under the reserved key `package` ("hbm_ne" / "hbm_dl")."""
    fingerprint = jsonable(caller)
    if package in fingerprint:
        raise ValueError(f"fingerprint key {package!r} is reserved for {package}'s own settings")
    fingerprint[package] = jsonable(own, f"{package} settings")
    return fingerprint


_MISSING = object()


def fingerprint_differences(
    stored: Any, now: Any, prefix: str = "fingerprint"
) -> list[tuple[str, Any, Any]]:
    """(dotted path, stored value, current value) of every leaf that differs."""
    if isinstance(stored, Mapping) and isinstance(now, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(stored) | set(now), key=str):
            out += fingerprint_differences(
                stored.get(key, _MISSING), now.get(key, _MISSING), f"{prefix}.{key}"
            )
        return out
    if stored is _MISSING or now is _MISSING:
        return [] if stored is now else [(prefix, stored, now)]
    same = stored == now or json.dumps(stored, sort_keys=True) == json.dumps(now, sort_keys=True)
    return [] if same else [(prefix, stored, now)]  # (json: NaN equals NaN)


def _show(value: Any) -> str:
    if value is _MISSING:
        return "absent"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_fingerprint(path: str | os.PathLike[str], stored: Any, now: Mapping[str, Any]) -> None:
    """Raise `CheckpointError` naming every differing field when the checkpoint at `path`
    (fingerprint `stored`) belongs to another run than `now`."""
    differences = fingerprint_differences(stored if stored is not None else {}, now)
    if not differences:
        return
    shown = "; ".join(
        f"{name} is {_show(old)} in the checkpoint, {_show(new)} now"
        for name, old, new in differences
    )
    raise CheckpointError(
        f"{path}: the checkpoint belongs to another run: {shown}. It was left untouched: pass "
        "resume=False to start afresh (the file is replaced when the first new checkpoint is "
        "written), or use another checkpoint_path."
    )


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its run, without resuming it: the step it holds (hbm-ne:
    generations done; hbm-dl: optimizer steps done), when it was written (ISO time), the run's
    time so far (seconds, every process), and its fingerprint."""

    path: Path
    format: str
    step: int
    written_at: str | None
    elapsed: float
    fingerprint: dict[str, Any]


def read_checkpoint_info(
    path: str | os.PathLike[str], *, format_name: str, version: int
) -> CheckpointInfo:
    blob = load_checkpoint_file(
        path, format_name=format_name, version=version, required=("step", "elapsed")
    )
    return CheckpointInfo(
        Path(path),
        format_name,
        int(blob["step"]),
        blob.get("written_at"),
        float(blob["elapsed"]),
        dict(blob.get("fingerprint") or {}),
    )
