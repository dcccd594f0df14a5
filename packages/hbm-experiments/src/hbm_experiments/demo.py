"""The demo comparison: GA and gradient descent, with and without CL features, on simulated
subjects; cached, so a second run answers from the cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .tasks import Experiment, make_experiment

__all__ = ["DEMO_BUDGETS", "DEMO_ENVS", "demo_experiments"]

#: CartPole (2 actions) and LunarLander (4 actions, Box2D): about a minute on 2 quiet cores.
DEMO_ENVS: tuple[str, ...] = ("cartpole", "lunarlander")

# Budgets sized for about 3 minutes on 2 CPU cores ("default") and a few seconds ("tiny").
DEMO_BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        "ga": {
            "optimizer": {"population_size": 64, "adaptive_sigma_init": 0.05},
            "training": {"max_generations": 120, "eval_every": 10},
        },
        "adam": {
            "optimizer": {"learning_rate": 0.01},
            "training": {"max_epochs": 8, "eval_every": 40},
        },
        "model": {"hidden_size": 32},
    },
    "tiny": {
        "ga": {
            "optimizer": {"population_size": 8},
            "training": {"max_generations": 3, "eval_every": 1},
        },
        "adam": {
            "optimizer": {"learning_rate": 0.01},
            "training": {"max_steps": 3, "eval_every": 1},
        },
        "model": {"hidden_size": 8},
    },
}


def demo_experiments(
    envs: Sequence[str] = DEMO_ENVS,
    *,
    budget: str = "default",
    subject: str = "sim01",
    seed: int = 0,
    **infra: Any,
) -> list[Experiment]:
    """GA (feedforward) and Adam (feedforward), each without and with CL features, per env."""
    if budget not in DEMO_BUDGETS:
        raise ValueError(f"budget {budget!r}: expected one of {sorted(DEMO_BUDGETS)}")
    b = DEMO_BUDGETS[budget]
    exps = []
    for env in envs:
        for algo in ("ga", "adam"):
            for cl in (False, True):
                cfg = {
                    "method": f"{algo}_feedforward",
                    "seed": seed,
                    "dataset": env,
                    "subject": subject,
                    "data": {"use_cl_info": cl},
                    "model": b["model"],
                    **b[algo],
                }
                exps.append(make_experiment(cfg, source="demo", **infra))
    return exps
