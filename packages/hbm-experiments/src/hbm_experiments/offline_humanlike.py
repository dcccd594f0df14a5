"""Imitation of a person where no game can be played: the model's teacher-forced choices.

Games that exist only as recordings (`hbm_data.EnvSpec.gymnasium` False, e.g. the Overcooked
kitchens) allow no rollouts, so a model's play cannot be recorded. What can be measured is the
model's argmax choice on each of the person's held-out steps (teacher-forced; a recurrent
model carries its state within each episode) against what the person did there: how often it
matches (`action_accuracy`), and whether the predicted action sequences hold keys as long
(`hold_duration_w1`, frames) and switch as often (`switch_rate_ratio`) as the person's.

A value means something only between two references made by the same code on the same
held-out steps (`offline_references`):

- the floor, `person`: the person's own choice in the nearest training state (k-nearest
  neighbours on the training steps, the rollout protocol's action floor) for the accuracy, and
  the person's own training play against the held-out play for the hold and switch metrics
  (how much the person differs from themselves);
- the ceiling, `random`: uniform draws over the actions (seeded).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "OFFLINE_METRICS",
    "PROTOCOL",
    "offline_block",
    "offline_humanlike",
    "offline_references",
]

PROTOCOL = "teacher-forced"
"""The `protocol` of an offline block (a rollout block has none): the report says which."""

OFFLINE_METRICS = ("action_accuracy", "hold_duration_w1", "switch_rate_ratio")
"""The `humanlike` metrics an offline block fills (the others are None: they need play)."""


def _episodes(flat: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    cuts = np.cumsum([0, *lengths])
    return [flat[a:b] for a, b in itertools.pairwise(cuts)]


def offline_block(
    predicted: np.ndarray,
    actions: np.ndarray,
    lengths: Sequence[int],
    *,
    reason: str,
    play: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """One `humanlike` block: `predicted [N]` teacher-forced choices against the person's
    held-out `actions [N]` (episodes of `lengths`). `play`: the action sequences compared for
    hold and switch (default: `predicted` cut into the episodes). `reason`: why no rollout."""
    from .humanlike import METRICS, action_accuracy, hold_duration_w1, switch_rate_ratio

    predicted = np.asarray(predicted, dtype=np.int64)
    actions = np.asarray(actions, dtype=np.int64)
    if predicted.shape != actions.shape or int(np.sum(lengths)) != len(actions):
        raise ValueError(
            f"predicted {predicted.shape}, actions {actions.shape} and episode lengths "
            f"(sum {int(np.sum(lengths))}) must describe the same held-out steps"
        )
    target = _episodes(actions, lengths)
    candidate = list(play) if play is not None else _episodes(predicted, lengths)
    block: dict[str, Any] = {k: None for k in METRICS}
    block |= {
        "protocol": PROTOCOL,
        "skipped": reason,
        "action_accuracy": float(np.mean(action_accuracy(predicted, actions))),
        "hold_duration_w1": hold_duration_w1(candidate, target),
        "switch_rate_ratio": switch_rate_ratio(candidate, target),
    }
    return block


def offline_humanlike(
    policy: nn.Module, data: Any, *, reason: str, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """The offline block of one trained policy on `hbm_data.HumanData`'s held-out steps."""
    from .humanlike.rollouts import predict_actions

    meta = data.metadata
    lengths = meta.test_episode_lengths
    policy = policy.to(torch.device(device)).eval()
    (predicted,) = predict_actions([policy], data.test_obs, lengths, device=device)
    return offline_block(predicted, data.test_act, lengths, reason=reason)


def offline_references(data: Any, *, seed: int = 0, reason: str) -> dict[str, dict[str, Any]]:
    """`{"person": floor, "random": ceiling}` offline blocks (module docstring) of one
    person's data. Deterministic given `seed`."""
    from .humanlike import Trajectories
    from .humanlike.references import _knn_predictions

    meta = data.metadata
    lengths = meta.test_episode_lengths
    own = list(Trajectories.from_human(data, "train").actions)
    person = offline_block(_knn_predictions(data), data.test_act, lengths, reason=reason, play=own)
    rng = np.random.default_rng([seed, 11])
    guesses = rng.integers(0, meta.num_actions, size=len(data.test_act))
    random = offline_block(guesses, data.test_act, lengths, reason=reason)
    return {"person": person, "random": random}
