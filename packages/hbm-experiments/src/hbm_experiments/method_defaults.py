"""Defaults that depend on the method: the hyperparameters a learner is compared with.

A learner compared at defaults that handicap it loses for its defaults, not for what it is (a
GA at mutation scale 1e-3 barely leaves its starting point in a budget where Adam converges).
So the feedforward learners that imitate a person run at defaults re-derived from tuning
(`tools/derive_defaults.py`, the README's "Defaults against tuning"): per parameter the
consensus of the tuned values over four simulated players × four games at 48 000 samples
seen, which beat the previous defaults in 14–16 of 16 cells each (Wilcoxon p ≤ 1.5e-4) and
again at a 3–10× budget. Adam's proposal could not be told apart from its defaults at 3×
(p = 0.09), so Adam keeps them. Every other method keeps hbm-ne's and the lab's defaults
(`LAB_DEFAULTS`): nothing was measured for it.

Each field here defaults to None in its config section, meaning "the method's default":
`ExperimentConfig.resolved(section)` fills it in where a run is built, and the result records
what it was. The config keeps the None, so a value set explicitly (even the lab's) survives
exca's round trips (`config(exclude_defaults=True)` drops only None), and a config moved to
another method takes that method's defaults. None is left out of the cache uid like any
default, so the tables here are pinned to the cache version (`EXPERIMENT_VERSION`): a test
holds their fingerprint per version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import pydantic

__all__ = [
    "CHECKED_AGAINST_TUNING",
    "DERIVED_DEFAULTS",
    "LAB_DEFAULTS",
    "lab_value",
    "method_defaults",
    "unchecked_defaults",
    "with_lab_defaults",
]

M = TypeVar("M", bound=pydantic.BaseModel)

LAB_DEFAULTS: Mapping[str, Any] = {
    "model.hidden_size": 50,
    "optimizer.population_size": 50,
    "optimizer.adaptive_sigma_init": 1e-3,
    "optimizer.adaptive_sigma_noise": 1e-2,
    "optimizer.adaptive": True,
    "optimizer.selection_fraction": 0.5,
    "optimizer.temperature": 1.0,
    "optimizer.learning_rate": 1e-3,
}
"""hbm-ne's and the lab's defaults (hbm-dl's learning rate): every method not in
`DERIVED_DEFAULTS`. `training.batch_size` keeps its own None (NE: every sample; SGD/Adam: 32)."""

_NE_POPULATION = {"optimizer.population_size", "optimizer.selection_fraction"}

DERIVED_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "ga_feedforward": {
        "model.hidden_size": 14,
        "optimizer.population_size": 11,
        "optimizer.adaptive_sigma_init": 0.0171,
        "optimizer.adaptive_sigma_noise": 0.101,
        "optimizer.adaptive": False,
        "optimizer.selection_fraction": 0.29,
        "training.batch_size": 49,
    },
    "es_feedforward": {
        "model.hidden_size": 16,
        "optimizer.population_size": 11,
        "optimizer.adaptive_sigma_init": 0.0134,
        "optimizer.adaptive_sigma_noise": 0.0609,
        "optimizer.adaptive": False,
        "optimizer.temperature": 0.246,
        "training.batch_size": 49,
    },
    "cmaes_feedforward": {
        "model.hidden_size": 14,
        "optimizer.population_size": 14,
        "training.batch_size": 42,
    },
    "sgd_feedforward": {
        "model.hidden_size": 28,
        "optimizer.learning_rate": 0.139,
        "training.batch_size": 16,
    },
}
"""Method -> its re-derived defaults (dotted config keys). For `es_feedforward` they are the
softmax variant's; the OpenAI variant keeps the lab's (its antithetic pairs need an even
population)."""


CHECKED_AGAINST_TUNING: frozenset[str] = frozenset({*DERIVED_DEFAULTS, "adam_feedforward"})
"""The methods whose defaults were measured against tuning: re-derived, or kept where the
evidence did not favour a change (Adam). Any other method compared untuned may lose or win for
its defaults, which a verdict says."""


def unchecked_defaults(methods: Iterable[str]) -> list[str]:
    """The `methods` whose defaults were never measured against tuning."""
    return [m for m in methods if m not in CHECKED_AGAINST_TUNING]


def method_defaults(
    method: str, *, kind: str, applies: set[str], variant: str | None = None
) -> dict[str, Any]:
    """The defaults of `method` for the dotted keys in `applies` (the fields its sections
    have): the derived ones where measured, else the lab's. `kind` "dynamic" evolves its own
    topology and mutation: only its population's size and selection take a default."""
    derived = DERIVED_DEFAULTS.get(method, {}) if variant in (None, "softmax") else {}
    keys = applies & _NE_POPULATION if kind == "dynamic" else applies
    out = {k: v for k, v in LAB_DEFAULTS.items() if k in keys}
    out.update({k: v for k, v in derived.items() if k in keys})
    return out


def lab_value(config: pydantic.BaseModel, section: str, name: str) -> Any:
    """The field `name` of `config` (an experiment config's `section`), or its lab default
    while it is None (see `with_lab_defaults`)."""
    value = getattr(config, name)
    return LAB_DEFAULTS.get(f"{section}.{name}") if value is None else value


def with_lab_defaults(config: M, section: str) -> M:
    """`config` (the `section` of an experiment config) with every field still None that has a
    lab default set to it. An experiment config has written its method's defaults in already;
    a section built on its own (`GAConfig().build(...)`) gets the lab's, as before."""
    unset = {
        name: LAB_DEFAULTS[f"{section}.{name}"]
        for name in type(config).model_fields
        if getattr(config, name) is None and f"{section}.{name}" in LAB_DEFAULTS
    }
    return config.model_copy(update=unset) if unset else config
