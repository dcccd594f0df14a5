"""The names of neuroevolution training in one import: the generic generational loop
(`evolve`, its checkpoints and `EvolveResult`, from `hbm_ne.evolution`) and the supervised
objective (`SupervisedFitness`, `SupervisedEvaluation`, `train_supervised`, from
`hbm_ne.supervised`).

A run killed and resumed from its checkpoint reproduces the uninterrupted run bit for bit on
CPU. The loop speaks the language hbm-dl's `optimize_sgd` speaks (docs/interfaces.md): the same
budget, cadence, callback, fingerprint and result names, the same `Progress` record, the same
`evaluate` / macro-F1 rule.
"""

from hbm_ne._shared import CheckpointError, Progress
from hbm_ne.algorithms import OPTIMIZERS, make_algorithm
from hbm_ne.evolution import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    HISTORY_FIELDS,
    EvalFn,
    EvolveResult,
    FitnessFn,
    TrainResult,
    checkpoint_info,
    evolve,
    load_checkpoint,
)
from hbm_ne.supervised import (
    VALIDATION_FIELDS,
    SupervisedEvaluation,
    SupervisedFitness,
    combine_evaluations,
    train_supervised,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "HISTORY_FIELDS",
    "OPTIMIZERS",
    "VALIDATION_FIELDS",
    "CheckpointError",
    "EvalFn",
    "EvolveResult",
    "FitnessFn",
    "Progress",
    "SupervisedEvaluation",
    "SupervisedFitness",
    "TrainResult",
    "checkpoint_info",
    "combine_evaluations",
    "evolve",
    "load_checkpoint",
    "make_algorithm",
    "train_supervised",
]
