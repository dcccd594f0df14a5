"""Cached, reproducible hbm experiments with exca: configs, sweeps, Slurm arrays, reports."""

from .configs import (
    METHODS,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainingConfig,
    apply_overrides,
    parse_method,
)
from .sweeps import ExperimentsFailed, HyperparameterSweep, run_experiments, run_multiple_seeds
from .tasks import (
    EXPERIMENT_VERSION,
    CMAESExperiment,
    DataPreprocessingTask,
    ESExperiment,
    Experiment,
    GAExperiment,
    SGDExperiment,
    cache_root,
    experiment_class,
    load_experiment_config,
    make_experiment,
    save_experiment_config,
)

__version__ = "0.1.0"

__all__ = [
    "EXPERIMENT_VERSION",
    "METHODS",
    "CMAESExperiment",
    "ConfigError",
    "DataConfig",
    "DataPreprocessingTask",
    "ESExperiment",
    "Experiment",
    "ExperimentConfig",
    "ExperimentsFailed",
    "GAExperiment",
    "HyperparameterSweep",
    "ModelConfig",
    "SGDExperiment",
    "TrainingConfig",
    "apply_overrides",
    "cache_root",
    "experiment_class",
    "load_experiment_config",
    "make_experiment",
    "parse_method",
    "run_experiments",
    "run_multiple_seeds",
    "save_experiment_config",
]
