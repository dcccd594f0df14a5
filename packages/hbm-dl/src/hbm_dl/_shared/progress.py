"""The training loops' vocabulary: `Progress` (what callbacks get), `notify` (True stops the
run) and `ResultMapping` (results read like the design guide's dicts)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Progress:
    """What a training callback receives, once per step (hbm-ne: generation; hbm-dl:
    optimizer step), fields documented in docs/interfaces.md.

    `step` is the history row's `step` for this point of the run (hbm-ne: the generation
    index g, whose population has had g updates; hbm-dl: optimizer steps done). `train_loss`
    is the history row's value when `evaluated`, else this step's own training loss (hbm-ne:
    the best member's fitness on the generation's batch; hbm-dl: the minibatch loss).
    `test_*` are None when the step was not evaluated; `val_*` (the row's `val_loss`,
    `val_f1`, `val_accuracy`) too, and without validation data. `samples_seen` counts training
    samples processed so far (a generation over N samples x P members adds N*P; an SGD step
    adds its batch's steps). `elapsed` sums every process's time. `resumed_from` is the step this
    process resumed at (None for a fresh run).
    """

    step: int
    epoch: float | None
    samples_seen: int
    elapsed: float
    train_loss: float
    test_ce: float | None = None
    test_f1: float | None = None
    test_accuracy: float | None = None
    val_loss: float | None = None
    val_f1: float | None = None
    val_accuracy: float | None = None
    evaluated: bool = False
    resumed_from: int | None = None


Callback = Callable[[Progress], object]


def notify(callbacks: Sequence[Callback], progress: Progress) -> bool:
    """Call every callback with `progress`; True when any returned True (stop the run)."""
    stop = False
    for callback in callbacks:
        if callback(progress) is True:
            stop = True
    return stop


class ResultMapping:
    """Read access by key, so a result reads like the design guide's result dicts
    (`result["fitness_history"]`): `keys()` lists what it holds; `result[key] = value` sets an
    attribute of that name or an entry of `extra`."""

    _mapping_keys: ClassVar[tuple[str, ...]] = ()
    extra: dict[str, Any]

    def keys(self) -> list[str]:
        return [*self._mapping_keys, *(k for k in self.extra if k not in self._mapping_keys)]

    def __getitem__(self, key: str) -> Any:
        if key in self._mapping_keys:
            return getattr(self, key)
        if key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._mapping_keys:
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._mapping_keys or key in self.extra

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default
