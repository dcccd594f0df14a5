"""Cached, reproducible hbm experiments with exca: configs, sweeps, Slurm arrays, reports."""

from .configs import (
    METHODS,
    OBJECTIVES,
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
    AdversarialExperiment,
    CMAESExperiment,
    DataPreprocessingTask,
    DynamicExperiment,
    EnvExperiment,
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
    "OBJECTIVES",
    "AdversarialExperiment",
    "CMAESExperiment",
    "ConfigError",
    "DataConfig",
    "DataPreprocessingTask",
    "DynamicExperiment",
    "ESExperiment",
    "EnvExperiment",
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
