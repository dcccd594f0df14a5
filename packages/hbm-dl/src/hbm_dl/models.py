"""Behaviour-cloning networks: a feedforward MLP and single-layer tanh recurrent networks.

The classes live in `hbm_dl._shared.nets`, code hbm-dl and hbm-ne hold word for word: a member
exported by hbm-ne is an instance of the same code, with the same state-dict keys and shapes
(docs/interfaces.md). Initialisation (`init="normal"`: N(0, 1/fan_in) weights and biases, or
`"uniform"`: U(±1/√fan_in)) draws only from the `generator` given (a fixed seed-0 generator
when None), never from torch's global RNG.
"""

from __future__ import annotations

from hbm_dl._shared import (
    DEFAULT_INIT,
    DEFAULT_INIT_SEED,
    INITS,
    FeedforwardMLP,
    InitName,
    RecurrentMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    is_recurrent,
    scaled_to_spectral_radius,
)

__all__ = [
    "DEFAULT_INIT",
    "DEFAULT_INIT_SEED",
    "INITS",
    "FeedforwardMLP",
    "InitName",
    "RecurrentMLP",
    "RecurrentMLPReservoir",
    "RecurrentMLPTrainable",
    "is_recurrent",
    "scaled_to_spectral_radius",
]
