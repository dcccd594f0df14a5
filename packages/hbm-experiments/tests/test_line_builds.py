"""Each research line's config section builds its own hbm-ne objects (as the model and optimizer
sections do): the same objects as hbm-ne's constructors given the section's settings."""

from __future__ import annotations

from typing import Any

import hbm_ne
import torch
from hbm_experiments import make_experiment
from hbm_experiments.configs import AdversarialConfig, DynamicConfig, EnvObjectiveConfig


def _equal(x: Any, y: Any, where: str) -> None:
    """Equal values: tensors element for element, containers item by item, objects with a
    state by their state, an `EpisodeData` by identity (the person's data is passed through)."""
    assert type(x) is type(y), where
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            _equal(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list | tuple):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _equal(u, v, f"{where}[{i}]")
    elif isinstance(x, hbm_ne.EpisodeData):
        assert x is y, where
    elif hasattr(x, "state_dict"):
        _equal(x.state_dict(), y.state_dict(), where)
    else:
        assert x == y, where


def _same(a: Any, b: Any) -> None:
    """Every attribute equal (`_equal`)."""
    assert type(a) is type(b)
    _equal(vars(a), vars(b), type(a).__name__)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def test_dynamic_section_builds_the_population() -> None:
    dyn = DynamicConfig(max_hidden=8, passes=2, grow_rate=2.0, nonlinearity="identity")
    built = dyn.build(4, 2, 6, generator=_gen(), device="cpu")
    direct = hbm_ne.DynamicPopulation(
        4, 2, 6, generator=_gen(), device="cpu", max_hidden=8, max_passes=4, initial_mutations=1,
        grow_rate=2.0, prune_rate=0.5, passes=2, locality=0.5, rate_noise=0.01, min_std=1e-3,
        nonlinearity="identity",
    )  # fmt: skip
    _equal(built.state_dict(), direct.state_dict(), "DynamicPopulation")


def test_environment_section_builds_the_fitness() -> None:
    env = EnvObjectiveConfig(episodes=3, steps_per_generation=40, fit_transfer=True)
    direct = hbm_ne.ContinualEnvFitness(
        "cartpole", episodes=3, steps_per_generation=40, env_transfer=False, mem_transfer=False,
        fit_transfer=True, fit_reduction="sum", deterministic=True, seed=11,
    )  # fmt: skip
    _same(env.build("cartpole", seed=11), direct)


def test_adversarial_section_builds_the_fitness() -> None:
    gen = torch.Generator().manual_seed(0)
    person = hbm_ne.EpisodeData.from_arrays(
        torch.randn(30, 4, generator=gen), torch.randint(0, 2, (30,), generator=gen), [10, 20]
    )
    adv = AdversarialConfig(windows_per_class=16, window=4, discriminator_population_size=6)
    direct = hbm_ne.AdversarialFitness(
        "cartpole", person, [1, 2], discriminator="ga", discriminator_population_size=6,
        discriminator_hidden_sizes=(32,), window=4, hide_elements=(), windows_per_class=16,
        discriminator_learning_rate=1e-3, discriminator_steps=10, discriminator_sigma_init=0.02,
        judges=1, max_episode_steps=None, deterministic=False, seed=5, device="cpu",
    )  # fmt: skip
    _same(adv.build("cartpole", person, (1, 2), seed=5, device="cpu"), direct)


def test_the_experiment_trains_with_its_sections_objects() -> None:
    exp = make_experiment(
        {
            "method": "ga_env_feedforward",
            "seed": 2,
            "optimizer": {"population_size": 4},
            "training": {"max_generations": 1},
            "environment": {"episodes": 2, "steps_per_generation": 30},
        }
    )
    assert exp.environment is not None
    _same(exp.build()["fitness"], exp.environment.build("cartpole", seed=2))
