"""Every hbm-ne option is reachable from a config: OpenAI-style antithetic ES, separable and
active CMA-ES, the recurrent state mode, fixed vs self-adaptive mutation. Each runs through
`hbm run`, enters the uid, and reaches the library (read back from the checkpoint's
fingerprint, which records the algorithm's and the population's settings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hbm_ne
import pytest
from hbm_experiments import make_experiment
from hbm_experiments.cli import main as hbm
from hbm_experiments.configs import ConfigError, apply_overrides

BASE: dict[str, Any] = {
    "model": {"hidden_size": 3},
    "training": {"max_generations": 2, "eval_every": 1, "checkpoint_every": 1},
}


def _run(tmp_path: Path, config: dict[str, Any], *overrides: str) -> dict[str, Any]:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(config))
    args = [a for o in overrides for a in ("--set", o)]
    assert hbm(["run", str(path), *args, "-q"]) == 0
    exp = make_experiment(apply_overrides(config, list(overrides)))  # the one hbm ran
    assert exp.infra.status() == "completed"
    return dict(hbm_ne.checkpoint_info(exp.infra.uid_folder() / "checkpoint.pt").fingerprint)


@pytest.mark.parametrize(
    ("method", "override", "where", "key", "value"),
    [
        ("es_feedforward", "optimizer.variant=openai", "algorithm", "method", "openai"),
        ("cmaes_feedforward", "optimizer.separable=true", "algorithm", "diagonal", True),
        ("cmaes_feedforward", "optimizer.active=false", "algorithm", "active", False),
        ("ga_reservoir", "training.state_mode=session", None, "state_mode", "session"),
        ("ga_feedforward", "optimizer.adaptive=true", "population", "adaptive", True),
        ("ga_recurrent", "optimizer.adaptive=false", "population", "adaptive", False),
    ],
)
def test_option_reaches_the_library(
    tmp_path: Path, method: str, override: str, where: str | None, key: str, value: Any
) -> None:
    config = {**BASE, "method": method, "optimizer": {"population_size": 4}}
    default = _run(tmp_path, config)["hbm_ne"]
    chosen = _run(tmp_path, config, override)["hbm_ne"]
    got = chosen[where][key] if where else chosen[key]
    before = default[where][key] if where else default[key]
    assert got == value and before != value

    uid_default = make_experiment(config).infra.uid()
    uid_chosen = make_experiment(apply_overrides(config, [override])).infra.uid()
    assert uid_chosen != uid_default  # the option is part of the uid


def test_options_that_cannot_apply_are_refused() -> None:
    with pytest.raises(ConfigError, match="even population"):
        make_experiment(
            {
                **BASE,
                "method": "es_feedforward",
                "optimizer": {"population_size": 5, "variant": "openai"},
            }
        )
    with pytest.raises(ConfigError, match="recurrent neuroevolution only"):
        make_experiment(
            {
                **BASE,
                "method": "ga_feedforward",
                "training": {**BASE["training"], "state_mode": "session"},
            }
        )
    with pytest.raises(ConfigError, match="recurrent neuroevolution only"):
        make_experiment(
            {"method": "adam_reservoir", "training": {"max_steps": 1, "state_mode": "generation"}}
        )
