"""From a config to its task and back: the task class of each method, `make_experiment` (dict or
config -> validated task, errors naming the file and key), YAML load and save."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from .configs import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    format_validation_error,
    read_yaml,
)
from .experiment import Experiment
from .files import atomic_write_text
from .methods import method_spec
from .ne_experiments import (
    AdversarialExperiment,
    CMAESExperiment,
    DynamicExperiment,
    EnvExperiment,
    ESExperiment,
    GAExperiment,
)
from .sgd_experiment import SGDExperiment

__all__ = [
    "EXPERIMENT_CLASSES",
    "experiment_class",
    "experiment_to_dict",
    "load_experiment_config",
    "make_experiment",
    "save_experiment_config",
]


EXPERIMENT_CLASSES: dict[str, type[Experiment]] = {
    "ga": GAExperiment,
    "es": ESExperiment,
    "cmaes": CMAESExperiment,
    "sgd": SGDExperiment,
    "adam": SGDExperiment,
}
"""The class of each algorithm's methods that imitate the person with a fixed architecture."""
_LINE_CLASSES: dict[str, type[Experiment]] = {
    "hbm_ne.evolve_dynamic": DynamicExperiment,
    "hbm_ne.evolve_env": EnvExperiment,
    "hbm_ne.evolve_adversarial": AdversarialExperiment,
}
"""The research lines' classes, by the library function that trains them."""


def experiment_class(method: str) -> type[Experiment]:
    """The task class that runs `method` (e.g. `sgd_reservoir` -> `SGDExperiment`,
    `ga_dynamic` -> `DynamicExperiment`, `es_env_recurrent` -> `EnvExperiment`), read from the
    method table (`methods.METHOD_TABLE`)."""
    spec = method_spec(method)
    return _LINE_CLASSES.get(spec.trainer) or EXPERIMENT_CLASSES[spec.algorithm]


def make_experiment(
    config: Mapping[str, Any] | ExperimentConfig,
    *,
    source: str = "config",
    cls: type[Experiment] | None = None,
    **infra: Any,
) -> Experiment:
    """Build the task for a config dict; `infra` entries (cluster, mode, ...) are merged in.

    The class is `cls`, else the class of `config` when it is a task, else the one that runs
    its method. Validation errors become a `ConfigError` naming `source` and every bad key.
    """
    if isinstance(config, ExperimentConfig):
        if cls is None and isinstance(config, Experiment):
            cls = type(config)
        data = experiment_to_dict(config)
        if isinstance(config, Experiment):
            data["infra"] = infra_set(config)
    else:
        data = dict(config)
    if cls is None:
        if "method" not in data:
            from .configs import METHODS

            raise ConfigError(f"{source}: method is required: one of {', '.join(sorted(METHODS))}")
        try:
            cls = experiment_class(str(data["method"]))
        except ValueError as exc:
            raise ConfigError(f"{source}: method: {exc}") from None
    if infra:
        data["infra"] = {**dict(data.get("infra") or {}), **infra}
    try:
        return cls(**data)
    except pydantic.ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def infra_set(exp: Experiment) -> dict[str, Any]:
    """The infra fields the user set (the rest keep their defaults when a copy is made)."""
    return {k: getattr(exp.infra, k) for k in exp.infra.model_fields_set}


def load_experiment_config(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), **infra: Any
) -> Experiment:
    """Read a YAML config (optionally with an `infra:` block), apply `key=value` overrides."""
    data = apply_overrides(read_yaml(path), overrides)
    return make_experiment(data, source=str(path), **infra)


def experiment_to_dict(exp: ExperimentConfig) -> dict[str, Any]:
    """The config as plain data (no infra): what `save_experiment_config` writes."""
    return exp.model_dump(mode="json", exclude={"infra"})


def save_experiment_config(exp: ExperimentConfig, path: str | Path) -> Path:
    """Write the full config (every field, no infra) as YAML, atomically."""
    import yaml

    return atomic_write_text(path, yaml.safe_dump(experiment_to_dict(exp), sort_keys=False))
