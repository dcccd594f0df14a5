"""One vocabulary: the config-to-library names live in one table, every name in it is a real
config field and a real library argument, and the 0.1 spellings are read through one table."""

from __future__ import annotations

import inspect
import warnings

import hbm_dl
import hbm_ne
import pytest
from hbm_experiments import configs
from hbm_experiments.vocabulary import LIBRARY_NAMES, RENAMED_0_1, library_kwargs

SECTIONS = (
    configs.GAConfig,
    configs.ESConfig,
    configs.CMAESConfig,
    configs.TrainingConfig,
)
RECEIVERS = (
    hbm_ne.BatchedFeedforward,
    hbm_ne.GA,
    hbm_ne.ES,
    hbm_ne.CMAES,
    hbm_ne.train_supervised,
    hbm_ne.evolve_dynamic,
    hbm_ne.evolve_env,
    hbm_dl.optimize_sgd,
)


def _parameters(receiver: object) -> set[str]:
    return set(inspect.signature(receiver).parameters)  # type: ignore[arg-type]


def test_every_translation_joins_a_config_field_to_a_library_argument() -> None:
    fields = {name for section in SECTIONS for name in section.model_fields}
    arguments = set().union(*(_parameters(r) for r in RECEIVERS))
    for config_name, library_name in LIBRARY_NAMES.items():
        assert config_name in fields, config_name
        assert library_name in arguments, library_name
        assert config_name != library_name


def test_library_kwargs_renames_through_the_table_only() -> None:
    ga = configs.GAConfig(adaptive_sigma_noise=0.5, selection_fraction=0.25, population_size=7)
    assert library_kwargs(ga, "adaptive_sigma_noise", "selection_fraction", "population_size") == {
        "tau": 0.5,
        "survival": 0.25,
        "population_size": 7,
    }
    cmaes = configs.CMAESConfig(separable=True)
    assert library_kwargs(cmaes, "separable", "sigma0") == {"diagonal": True, "sigma0": 0.1}


def test_the_optimizer_sections_build_with_their_settings() -> None:
    import torch

    pop = hbm_ne.BatchedFeedforward(3, 2, 6, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    es = configs.ESConfig(population_size=6, variant="openai", update="sgd").build(
        pop, generator=gen
    )
    assert (es.method, es.optimizer) == ("openai", "sgd")  # type: ignore[attr-defined]
    cmaes = configs.CMAESConfig(population_size=6, separable=True).build(pop, generator=gen)
    assert cmaes.diagonal is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("section", "old", "new"),
    [(s, old, new) for s, names in RENAMED_0_1.items() for old, new in names.items()],
)
def test_each_0_1_spelling_is_read_with_a_warning(section: str, old: str, new: str) -> None:
    value: object = {"dataset": "acrobot", "subject": "sim02"}.get(old, 0.25)
    if section == "data":
        config, where = {"data": {old: value}}, lambda c: getattr(c, new)
    else:
        method = "cmaes_feedforward" if section.startswith("cmaes") else "ga_feedforward"
        key = section.split()[-1]
        config = {"method": method, key: {old: value}}
        where = lambda c: getattr(getattr(c, key), new)  # noqa: E731
    config.setdefault("training", {"max_generations": 1})  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = configs.ExperimentConfig(**config)  # type: ignore[arg-type]
    assert where(made) == value
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
