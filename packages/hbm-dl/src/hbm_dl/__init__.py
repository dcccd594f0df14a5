"""Behaviour-cloning models and an SGD/Adam training loop in PyTorch.

`FeedforwardMLP`, `RecurrentMLPReservoir` and `RecurrentMLPTrainable` share their code and
state-dict layout with hbm-ne's exported population members (docs/interfaces.md);
`optimize_sgd` trains any of them on `EpisodeData` with exact, resumable, fingerprinted
checkpoints, and speaks the same language as `hbm_ne.train_supervised` (`Progress`, budgets,
cadences, result fields, `evaluate`/`f1_seed` for the macro F1).
"""

from hbm_dl import metrics
from hbm_dl._shared import (
    DEFAULT_INIT,
    INITS,
    CheckpointInfo,
    Progress,
    f1_seed,
    sampled_macro_f1,
)
from hbm_dl.checkpoint import CheckpointError, checkpoint_info
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

TrainResult = SGDResult
"""The name hbm-ne gives its result; the same fields where they mean the same."""

__all__ = [
    "DEFAULT_INIT",
    "HISTORY_FIELDS",
    "INITS",
    "CheckpointError",
    "CheckpointInfo",
    "EpisodeData",
    "FeedforwardMLP",
    "PaddedEpisodes",
    "Progress",
    "RecurrentMLP",
    "RecurrentMLPReservoir",
    "RecurrentMLPTrainable",
    "SGDResult",
    "TrainResult",
    "checkpoint_info",
    "evaluate",
    "f1_seed",
    "is_recurrent",
    "metrics",
    "optimize_sgd",
    "sampled_macro_f1",
]
