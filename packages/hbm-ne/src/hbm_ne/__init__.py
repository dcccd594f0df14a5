"""Neuroevolution kernels in PyTorch: batched populations, GA, ES, CMA-ES, supervised fitness.

Fitness convention: a loss, minimised (lower is better). Batched environments and rollouts
live in `hbm_ne.envs` (needs the `envs` extra); adversarial imitation (generators against
discriminators of person-like windows) in `hbm_ne.adversarial`. The training loop, its
`Progress` record, result fields, checkpoint fingerprints, the exported networks, their
initialisation and the macro F1 (`evaluate`, `f1_seed`) are the contracts shared with hbm-dl
(docs/interfaces.md).
"""

from hbm_ne._shared import (
    DEFAULT_INIT,
    INITS,
    CheckpointInfo,
    evaluate,
    f1_seed,
    sampled_macro_f1,
)
from hbm_ne._shared.metrics import action_accuracy
from hbm_ne.adversarial import AdversarialFitness, evolve_adversarial
from hbm_ne.algorithms import CMAES, ES, GA, Algorithm
from hbm_ne.continual import ContinualEnvFitness, ContinualState, evolve_env
from hbm_ne.dynamic import DynamicNet, DynamicPopulation, evolve_dynamic
from hbm_ne.fitness import (
    EpisodeData,
    accuracy,
    as_episode_data,
    cross_entropy,
    macro_f1,
    population_metrics,
    sequence_cross_entropy,
    sequence_macro_f1,
)
from hbm_ne.modules import (
    FeedforwardMLP,
    RecurrentMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    is_recurrent,
)
from hbm_ne.population import BatchedFeedforward, BatchedRecurrent, Population
from hbm_ne.training import (
    HISTORY_FIELDS,
    OPTIMIZERS,
    CheckpointError,
    EvolveResult,
    Progress,
    SupervisedEvaluation,
    SupervisedFitness,
    TrainResult,
    checkpoint_info,
    evolve,
    load_checkpoint,
    make_algorithm,
    train_supervised,
)

__version__ = "0.1.0"

__all__ = [
    "CMAES",
    "DEFAULT_INIT",
    "ES",
    "GA",
    "HISTORY_FIELDS",
    "INITS",
    "OPTIMIZERS",
    "AdversarialFitness",
    "Algorithm",
    "BatchedFeedforward",
    "BatchedRecurrent",
    "CheckpointError",
    "CheckpointInfo",
    "ContinualEnvFitness",
    "ContinualState",
    "DynamicNet",
    "DynamicPopulation",
    "EpisodeData",
    "EvolveResult",
    "FeedforwardMLP",
    "Population",
    "Progress",
    "RecurrentMLP",
    "RecurrentMLPReservoir",
    "RecurrentMLPTrainable",
    "SupervisedEvaluation",
    "SupervisedFitness",
    "TrainResult",
    "accuracy",
    "action_accuracy",
    "as_episode_data",
    "checkpoint_info",
    "cross_entropy",
    "evaluate",
    "evolve",
    "evolve_adversarial",
    "evolve_dynamic",
    "evolve_env",
    "f1_seed",
    "is_recurrent",
    "load_checkpoint",
    "macro_f1",
    "make_algorithm",
    "population_metrics",
    "sampled_macro_f1",
    "sequence_cross_entropy",
    "sequence_macro_f1",
    "train_supervised",
]
