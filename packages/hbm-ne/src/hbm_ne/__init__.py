"""Neuroevolution kernels in PyTorch: batched populations, GA, ES, CMA-ES, supervised fitness.

Fitness convention: a loss, minimised (lower is better). Batched environments and rollouts
live in `hbm_ne.envs` (needs the `envs` extra).
"""

from hbm_ne.algorithms import CMAES, ES, GA, Algorithm
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
from hbm_ne.modules import FeedforwardMLP, RecurrentMLP
from hbm_ne.population import BatchedFeedforward, BatchedRecurrent, Population
from hbm_ne.training import (
    CheckpointError,
    EvolveResult,
    Progress,
    SupervisedEvaluation,
    SupervisedFitness,
    TrainResult,
    evolve,
    load_checkpoint,
    train_supervised,
)

__version__ = "0.1.0"

__all__ = [
    "CMAES",
    "ES",
    "GA",
    "Algorithm",
    "BatchedFeedforward",
    "BatchedRecurrent",
    "CheckpointError",
    "EpisodeData",
    "EvolveResult",
    "FeedforwardMLP",
    "Population",
    "Progress",
    "RecurrentMLP",
    "SupervisedEvaluation",
    "SupervisedFitness",
    "TrainResult",
    "accuracy",
    "as_episode_data",
    "cross_entropy",
    "evolve",
    "load_checkpoint",
    "macro_f1",
    "population_metrics",
    "sequence_cross_entropy",
    "sequence_macro_f1",
    "train_supervised",
]
