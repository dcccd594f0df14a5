"""The method grammar is one table: names, objectives, task classes and library functions are
read from it, and the moved names stay importable from `hbm_experiments.configs`."""

from __future__ import annotations

import hbm_dl
import hbm_ne
import pytest
from hbm_experiments import configs, line_configs, methods, optimizers, tasks, yaml_io
from hbm_experiments.methods import METHOD_TABLE, method_spec, trainer

LIBRARY = {
    "ga_feedforward": hbm_ne.train_supervised,
    "cmaes_reservoir": hbm_ne.train_supervised,
    "es_recurrent": hbm_ne.train_supervised,
    "adam_trainable": hbm_dl.optimize_sgd,
    "sgd_feedforward": hbm_dl.optimize_sgd,
    "ga_dynamic": hbm_ne.evolve_dynamic,
    "cmaes_env_recurrent": hbm_ne.evolve_env,
    "es_adversarial_feedforward": hbm_ne.evolve_adversarial,
}


@pytest.mark.parametrize("method", sorted(LIBRARY))
def test_each_method_trains_with_its_library_function(method: str) -> None:
    assert trainer(method) is LIBRARY[method]


def test_the_table_is_the_one_source_of_every_reading() -> None:
    assert len(METHOD_TABLE) == 5 * 4 + 1 + 3 * 2 + 2 * 2
    for name, spec in METHOD_TABLE.items():
        assert methods.parse_method(name) == (spec.algorithm, spec.kind)
        assert methods.method_objective(name) == spec.objective
        cls = tasks.experiment_class(name)
        assert spec.algorithm in cls._algorithms
        # the class's build() feeds the function the table names
        package, _, function = spec.trainer.partition(".")
        assert callable(getattr({"hbm_ne": hbm_ne, "hbm_dl": hbm_dl}[package], function))
    assert method_spec("ga_recurrent") == method_spec("ga_trainable")
    with pytest.raises(ValueError, match="unknown method 'ga_lstm'; expected one of"):
        method_spec("ga_lstm")


def test_moved_names_are_the_same_objects_in_configs() -> None:
    for name in ("METHODS", "OBJECTIVES", "ALGORITHMS", "parse_method", "method_objective"):
        assert getattr(configs, name) is getattr(methods, name)
    for name in ("ConfigError", "read_yaml", "apply_overrides", "parse_value"):
        assert getattr(configs, name) is getattr(yaml_io, name)
    for name in ("GAConfig", "ESConfig", "CMAESConfig", "SGDConfig", "AdamConfig"):
        assert getattr(configs, name) is getattr(optimizers, name)
    for name in ("DynamicConfig", "EnvObjectiveConfig", "AdversarialConfig"):
        assert getattr(configs, name) is getattr(line_configs, name)


def test_parse_value_reads_command_line_values_as_yaml_scalars() -> None:
    parse = yaml_io.parse_value
    assert parse("64") == 64 and parse("1e-3") == 1e-3 and parse("null") is None
    assert parse("None") is None and parse("007") == "007" and parse("true") is True
    assert parse("[1, 2]") == [1, 2] and parse("a: [") == "a: ["
