"""What a run checks before it trusts its own output or the files it resumes from.

- A loss that became NaN or infinite is a failed run, named with its generation or step, not
  a success cached with NaN in it; other undefined statistics (a p-value of two identical
  samples) are stored as `null`, so `result.json` is always valid JSON.
- A run that waited for another process running the same experiment serves that run's
  result (or re-raises its failure) instead of training a second time; a whole result a
  killed run left before exca saved its job is served too (what `hbm status` calls it).
- A retry after an unreadable checkpoint starts from scratch; the checkpoint is kept aside.
- A checkpoint error says what to do in `hbm` terms.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .files import ERROR_FILE, RESULT_FILE
from .trust import json_damage

__all__ = [
    "LOSS_FIELDS",
    "NonFiniteLossError",
    "checkpoint_advice",
    "finished_result",
    "finite_result",
    "set_aside_unreadable_checkpoint",
]

logger = logging.getLogger(__name__)

LOSS_FIELDS = ("train_loss", "test_ce", "val_loss", "best_fitness", "mean_fitness")
"""History fields whose non-finite value means training diverged."""


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _nulls(obj: Any, path: str, found: list[str]) -> Any:
    if isinstance(obj, Mapping):
        return {k: _nulls(v, f"{path}.{k}" if path else str(k), found) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nulls(v, f"{path}[{i}]", found) for i, v in enumerate(obj)]
    if _non_finite(obj):
        found.append(path)
        return None
    return obj


def finite_result(result: dict[str, Any]) -> dict[str, Any]:
    """`result` with no NaN/inf: raise `NonFiniteLossError` for a diverged loss in the history
    (naming the row's generation or step), turn any other non-finite number into None."""
    for row in result.get("history") or []:
        if not isinstance(row, Mapping):
            continue
        bad = [k for k in LOSS_FIELDS if _non_finite(row.get(k))]
        if bad:
            where = (
                f"generation {row['generation']}"
                if row.get("generation") is not None
                else f"step {row.get('step')}"
            )
            values = ", ".join(f"{k}={row[k]}" for k in bad)
            raise NonFiniteLossError(
                f"training diverged: {values} at {where}; lower the learning rate or mutation "
                "sigma, then rerun with `hbm run --force`"
            )
    found: list[str] = []
    clean = _nulls(result, "", found)
    if found:
        logger.warning("undefined values stored as null: %s", ", ".join(found[:10]))
    return clean  # type: ignore[no-any-return]


def finished_result(folder: Path, *, waited: bool) -> dict[str, Any] | None:
    """A whole `result.json` already in `folder` (written by the run this process waited for,
    or by a run killed before exca saved its job): served, not trained again. After waiting,
    the other run's failure is re-raised. None: nothing finished (a killed run: this process
    trains, resuming its checkpoint)."""
    result, error = folder / RESULT_FILE, folder / ERROR_FILE
    if result.exists() and json_damage(result) is None:
        logger.info("%s: already computed (%s)", folder.name, result)
        return json.loads(result.read_text())  # type: ignore[no-any-return]
    if waited and error.exists():
        lines = [ln for ln in error.read_text(errors="replace").splitlines() if ln.strip()]
        raise RuntimeError(
            f"{folder.name}: the concurrent run of this experiment failed: "
            f"{lines[-1] if lines else '?'} (traceback in {error}); rerun with --retry"
        )
    return None


def set_aside_unreadable_checkpoint(path: Path) -> Path | None:
    """A checkpoint torch cannot read is renamed `<name>.unreadable-<time>` (kept, not
    deleted), so the retried run starts from scratch; returns the new name."""
    if not path.exists():
        return None
    try:
        import torch

        torch.load(path, map_location="cpu", weights_only=True)
        return None
    except Exception as exc:
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        path.rename(aside)
        logger.warning(
            "%s: unreadable (%s: %s); kept as %s, training starts from scratch",
            path,
            type(exc).__name__,
            exc,
            aside.name,
        )
        return aside


def checkpoint_advice(exc: BaseException) -> BaseException | None:
    """A checkpoint error of the training loops with the `hbm` command that gets past it
    (same exception type); None for other errors."""
    if type(exc).__name__ != "CheckpointError":
        return None
    unreadable = "cannot read checkpoint" in str(exc)
    advice = (
        "`hbm run --retry` keeps the unreadable checkpoint aside and starts from scratch; "
        "`hbm run --force` recomputes from scratch"
        if unreadable
        else "`hbm run --force` recomputes this experiment from scratch (dropping the checkpoint)"
    )
    try:
        return type(exc)(f"{exc}\nWith hbm: {advice}.")
    except Exception:
        return None
