"""Per-method defaults: the feedforward learners imitating a person run at their re-derived
defaults, every other method at hbm-ne's and the lab's. The config keeps None for a field
left unset, so a value set by the user (even the lab's) survives exca's round trips, and a
config moved to another method takes that method's defaults."""

from __future__ import annotations

import inspect
from typing import Any

import hbm_dl
import hbm_ne
import pytest
from hbm_experiments.method_defaults import DERIVED_DEFAULTS, LAB_DEFAULTS
from hbm_experiments.optimizers import ESConfig, GAConfig
from hbm_experiments.tasks import experiment_to_dict, make_experiment
from hbm_experiments.tune import load_space

BUDGET = {"max_generations": 1, "max_steps": 1}


def _config(method: str, **extra: Any) -> Any:
    return make_experiment({"method": method, "training": BUDGET, **extra}, source="test")


def _resolved(exp: Any) -> dict[str, Any]:
    return {
        section: exp.resolved(section).model_dump()
        for section in ("model", "optimizer", "training")
    }


def _dotted(data: dict[str, Any], key: str) -> Any:
    section, _, name = key.partition(".")
    return data[section][name]


@pytest.mark.parametrize("method", sorted(DERIVED_DEFAULTS))
def test_a_derived_learner_runs_at_its_derived_defaults(method: str) -> None:
    exp = _config(method)
    runs = _resolved(exp)
    for key, value in DERIVED_DEFAULTS[method].items():
        assert _dotted(runs, key) == value, key
        assert _dotted(experiment_to_dict(exp), key) is None, key  # the config keeps None


@pytest.mark.parametrize("method", ["ga_recurrent", "es_reservoir", "cmaes_trainable"])
def test_other_methods_run_at_the_lab_defaults(method: str) -> None:
    runs = _resolved(_config(method))
    assert runs["model"]["hidden_size"] == LAB_DEFAULTS["model.hidden_size"]
    assert runs["optimizer"]["population_size"] == LAB_DEFAULTS["optimizer.population_size"]
    assert runs["training"]["batch_size"] is None  # every sample per fitness evaluation


def test_adam_keeps_its_defaults() -> None:
    runs = _resolved(_config("adam_feedforward"))
    assert runs["optimizer"]["learning_rate"] == LAB_DEFAULTS["optimizer.learning_rate"]
    assert runs["model"]["hidden_size"] == 50
    assert runs["training"]["batch_size"] is None  # hbm-dl's 32


def test_a_value_set_by_the_user_wins_even_the_lab_default() -> None:
    exp = _config("ga_feedforward", optimizer={"population_size": 50, "adaptive": True})
    opt = exp.resolved("optimizer")
    assert opt.population_size == 50 and opt.adaptive is True
    assert (
        opt.adaptive_sigma_init
        == DERIVED_DEFAULTS["ga_feedforward"]["optimizer.adaptive_sigma_init"]
    )
    # exca's clone keeps what differs from a field's default (None): the 50 set here
    clone = exp.infra.clone_obj(seed=3)
    assert clone.resolved("optimizer").population_size == 50 and clone.seed == 3
    assert clone.infra.uid() != _config("ga_feedforward", seed=3).infra.uid()


def test_a_config_moved_to_another_method_takes_that_methods_defaults() -> None:
    """A sweep over methods edits the method of one base config: each method must run at its
    own defaults, not at the ones the base config's method had."""
    data = experiment_to_dict(_config("ga_feedforward"))
    data["method"], data["optimizer"] = "sgd_feedforward", {"name": "sgd"}
    data["training"]["max_steps"] = 1  # the GA's config dropped the budget it does not use
    moved = make_experiment(data, source="test")
    assert _resolved(moved) == _resolved(_config("sgd_feedforward"))
    data["method"], data["optimizer"] = "ga_dynamic", {"name": "ga"}
    make_experiment(data, source="test")  # no GA feedforward value carried into it


def test_the_openai_es_keeps_an_even_lab_population() -> None:
    exp = _config("es_feedforward", optimizer={"variant": "openai"})
    pop = exp.resolved("optimizer").population_size
    assert pop == LAB_DEFAULTS["optimizer.population_size"] and pop % 2 == 0


def test_an_evolved_topology_takes_only_its_population_defaults() -> None:
    exp = _config("ga_dynamic")
    opt = exp.resolved("optimizer")
    assert opt.population_size == LAB_DEFAULTS["optimizer.population_size"]
    assert opt.adaptive_sigma_init is None  # its mutation is the dynamic section's
    assert exp.resolved("model").hidden_size is None


def test_a_section_on_its_own_has_the_libraries_defaults() -> None:
    """`LAB_DEFAULTS` are hbm-ne's and hbm-dl's own defaults: a section built outside an
    experiment config (`GAConfig().mutation()`) means what the library means."""
    population = inspect.signature(hbm_ne.BatchedFeedforward).parameters
    assert GAConfig().mutation() == {
        name: population[name].default for name in ("sigma_init", "adaptive", "tau")
    }
    ga = inspect.signature(hbm_ne.GA).parameters
    es = inspect.signature(hbm_ne.ES).parameters
    assert LAB_DEFAULTS["optimizer.selection_fraction"] == ga["survival"].default
    assert LAB_DEFAULTS["optimizer.temperature"] == es["temperature"].default
    assert ESConfig().mutation() == GAConfig().mutation()
    sgd = inspect.signature(hbm_dl.optimize_sgd).parameters
    assert LAB_DEFAULTS["optimizer.learning_rate"] == sgd["learning_rate"].default


@pytest.mark.parametrize("method", sorted(DERIVED_DEFAULTS))
def test_the_default_space_holds_the_derived_defaults(method: str) -> None:
    """Tuning starts from a space that holds the defaults (they are a point of it)."""
    space = load_space("default", _config(method))
    for key, value in DERIVED_DEFAULTS[method].items():
        spec = space[key]
        if spec.kind == "categorical":
            assert value in spec.choices, key
        else:
            assert spec.low <= value <= spec.high, key
