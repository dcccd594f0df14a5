"""Behaviour-cloning models and an SGD/Adam training loop in PyTorch.

`FeedforwardMLP`, `RecurrentMLPReservoir` and `RecurrentMLPTrainable` share their state-dict
layout with hbm-ne's exported population members (docs/interfaces.md); `optimize_sgd` trains any
of them on `EpisodeData` with exact, resumable checkpoints.
"""

from hbm_dl import metrics
from hbm_dl.checkpoint import CheckpointError
from hbm_dl.data import EpisodeData, PaddedEpisodes
from hbm_dl.models import (
    FeedforwardMLP,
    RecurrentMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    is_recurrent,
)
from hbm_dl.sgd import HISTORY_FIELDS, SGDResult, evaluate, optimize_sgd

__version__ = "0.1.0"

__all__ = [
    "HISTORY_FIELDS",
    "CheckpointError",
    "EpisodeData",
    "FeedforwardMLP",
    "PaddedEpisodes",
    "RecurrentMLP",
    "RecurrentMLPReservoir",
    "RecurrentMLPTrainable",
    "SGDResult",
    "evaluate",
    "is_recurrent",
    "metrics",
    "optimize_sgd",
]
