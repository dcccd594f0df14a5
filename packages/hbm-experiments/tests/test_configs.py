"""Configs: method names, YAML round trip, dotted overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hbm_experiments import (
    METHODS,
    ConfigError,
    apply_overrides,
    load_experiment_config,
    make_experiment,
    parse_method,
    save_experiment_config,
)
from hbm_experiments.configs import OBJECTIVES, read_yaml


def test_method_names_map_to_algorithm_and_model() -> None:
    assert parse_method("ga_feedforward") == ("ga", "feedforward")
    assert parse_method("es_recurrent") == ("es", "trainable")
    assert parse_method("sgd_reservoir") == ("sgd", "reservoir")
    assert parse_method("cmaes_feedforward") == ("cmaes", "feedforward")
    # 5 algorithms x 4 model suffixes, plus the other research lines (test_research_lines.py)
    assert len([m for m in METHODS if OBJECTIVES[m] == "person" and m != "ga_dynamic"]) == 20
    with pytest.raises(ValueError, match="ga_feedforward"):
        parse_method("gaa_feedforward")


def test_yaml_round_trip(tmp_path: Path) -> None:
    exp = make_experiment(
        {
            "method": "adam_trainable",
            "seed": 4,
            "experiment_number": 12,
            "dataset": "acrobot",
            "data": {"use_cl_info": True, "holdout_pct": 0.2},
            "model": {"hidden_size": 16, "rank": 2},
            "optimizer": {"learning_rate": 0.003},
            "training": {"max_epochs": None, "max_steps": 50, "batch_size": 8},
        }
    )
    path = save_experiment_config(exp, tmp_path / "cfg" / "exp.yaml")
    back = load_experiment_config(path)
    assert type(back) is type(exp)
    assert back.model_dump(exclude={"infra"}) == exp.model_dump(exclude={"infra"})
    assert back.infra.uid() == exp.infra.uid()
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_yaml_with_dotted_keys_infra_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "method: ga_reservoir\n"
        "model.hidden_size: 12\n"
        "optimizer:\n  population_size: 10\n"
        "training.max_optim_time: 30\n"
        "infra:\n  cluster: local\n  timeout_min: 30\n"
    )
    exp = load_experiment_config(
        path, ["model.hidden_size=20", "optimizer.adaptive_sigma_init=1e-2"]
    )
    assert exp.model.hidden_size == 20
    assert exp.optimizer.population_size == 10
    assert exp.optimizer.adaptive_sigma_init == pytest.approx(1e-2)
    assert exp.training.max_optim_time == 30 and exp.training.max_generations is None
    assert exp.infra.cluster == "local" and exp.infra.timeout_min == 30
    assert exp.infra.folder is not None  # injected although the YAML gave a cluster only


def test_overrides_parse_values() -> None:
    out = apply_overrides({"a": {"b": 1}}, ["a.b=2", "a.c=null", "d=true", "e=0.5", "f=x"])
    assert out == {"a": {"b": 2, "c": None}, "d": True, "e": 0.5, "f": "x"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["model.hidden_size"])
    with pytest.raises(ConfigError, match=r"a\.b is not a section"):
        apply_overrides({"a": {"b": 1}}, ["a.b.c=3"])


def test_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "method: ga_feedforward\nmodel:\n  hiden_size: 3\noptimizer:\n  population_size: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "model.hiden_size" in msg and "Extra inputs" in msg
    assert "population_size" in msg and "(got 1)" in msg
    with pytest.raises(ConfigError, match=r"model\.kind.*does not match"):
        make_experiment({"method": "sgd_reservoir", "model": {"kind": "feedforward"}})
    with pytest.raises(ConfigError, match="method: unknown method"):
        make_experiment({"method": "nope"})
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml(tmp_path / "missing.yaml")
    path.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(path)


def test_old_names_are_accepted_with_a_warning() -> None:
    old = {
        "method": "ga_feedforward",
        "data": {"dataset": "acrobot", "subject": "sim02", "use_cl_info": True},
        "optimizer": {"sigma_init": 0.02, "sigma_noise": 0.003},
        "training": {"max_time": 12},
    }
    with pytest.warns(DeprecationWarning) as caught:
        exp = make_experiment(old)
    words = " ".join(str(w.message) for w in caught)
    for name in ("data.dataset", "data.subject", "sigma_init", "sigma_noise", "max_time"):
        assert name in words
    assert (exp.dataset, exp.subject, exp.data.use_cl_info) == ("acrobot", "sim02", True)
    assert exp.optimizer.adaptive_sigma_init == 0.02  # type: ignore[union-attr]
    assert exp.optimizer.adaptive_sigma_noise == 0.003  # type: ignore[union-attr]
    assert exp.training.max_optim_time == 12
    new = make_experiment(
        {
            "method": "ga_feedforward",
            "dataset": "acrobot",
            "subject": "sim02",
            "data": {"use_cl_info": True},
            "optimizer": {"adaptive_sigma_init": 0.02, "adaptive_sigma_noise": 0.003},
            "training": {"max_optim_time": 12},
        }
    )
    assert new.infra.uid() == exp.infra.uid()
    with pytest.raises(ConfigError, match="give only max_optim_time"):
        make_experiment(
            {"method": "ga_feedforward", "training": {"max_time": 1, "max_optim_time": 2}}
        )


def test_saved_yaml_is_plain_and_complete(tmp_path: Path) -> None:
    exp = make_experiment({"method": "cmaes_feedforward", "training": {"max_generations": 100}})
    data = yaml.safe_load(save_experiment_config(exp, tmp_path / "x.yaml").read_text())
    assert data["optimizer"]["name"] == "cmaes"
    assert data["training"]["max_generations"] == 100
    assert data["dataset"] == "cartpole" and data["subject"] == "sim01"
    assert data["data"]["content_hash"].startswith("sha256:")
    assert "infra" not in data
