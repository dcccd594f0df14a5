"""Imitation metrics on logits: cross-entropy, accuracy, macro F1 of sampled actions, confusion.

Macro F1 is computed on actions *sampled* from the policy (`f1_samples` draws seeded by
`f1_seed(seed, step)`, the algorithm shared with hbm-ne in `hbm_dl._shared`), as the lab did: it
measures the stochastic policy that is rolled out, not its argmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hbm_dl._shared import f1_seed, macro_f1_from_confusion, sample_actions, sampled_macro_f1
from hbm_dl._shared.metrics import action_accuracy

__all__ = [
    "accuracy",
    "action_accuracy",
    "confusion_matrix",
    "cross_entropy",
    "f1_seed",
    "macro_f1",
    "macro_f1_from_confusion",
    "sample_actions",
    "sampled_macro_f1",
]


def _flatten(logits: Tensor, actions: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """`logits [..., A]`, `actions [...]`, `mask [...]` -> valid rows `[M, A]`, `[M]`."""
    if logits.shape[:-1] != actions.shape:
        raise ValueError(
            f"logits [..., A] and actions [...] disagree: {tuple(logits.shape)} vs "
            f"{tuple(actions.shape)}"
        )
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_actions = actions.reshape(-1)
    if mask is None:
        return flat_logits, flat_actions
    if mask.shape != actions.shape:
        raise ValueError(f"mask must have shape {tuple(actions.shape)}, got {tuple(mask.shape)}")
    keep = mask.reshape(-1).bool()
    return flat_logits[keep], flat_actions[keep]


def cross_entropy(logits: Tensor, actions: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean CE (nats) over valid steps: `logits [..., A]`, `actions [...]`, `mask [...]`.

    Masked steps contribute nothing, so padding never changes the value.
    """
    if mask is None:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), actions.reshape(-1))
    per_step = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), actions.reshape(-1), reduction="none"
    )
    m = mask.reshape(-1).to(per_step.dtype)
    return (per_step * m).sum() / m.sum().clamp(min=1.0)


def accuracy(logits: Tensor, actions: Tensor, mask: Tensor | None = None) -> float:
    """Fraction of valid steps where the argmax action is the recorded one (`action_accuracy`,
    the definition `evaluate` uses)."""
    lg, ac = _flatten(logits, actions, mask)
    if ac.numel() == 0:
        return float("nan")
    return float(action_accuracy(lg.argmax(dim=-1), ac))


def confusion_matrix(predicted: Tensor, actions: Tensor, num_classes: int) -> Tensor:
    """`[A, A]` int64 counts; row = recorded action, column = predicted action."""
    if predicted.shape != actions.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} != actions {tuple(actions.shape)}")
    idx = actions.reshape(-1).long() * num_classes + predicted.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def macro_f1(predicted: Tensor, actions: Tensor, num_classes: int) -> float:
    """Macro F1 of `predicted [...]` against `actions [...]` over `range(num_classes)`."""
    return float(macro_f1_from_confusion(confusion_matrix(predicted, actions, num_classes)))
