"""The `optimizer` section: one model per algorithm (`name` picks it), each building its hbm-ne
algorithm, or naming hbm-dl's optimizer, with the library's names (`vocabulary`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from .config_base import StrictModel, renamed
from .vocabulary import RENAMED_0_1, library_kwargs

__all__ = [
    "AdamConfig",
    "CMAESConfig",
    "ESConfig",
    "GAConfig",
    "OptimizerConfig",
    "SGDConfig",
    "optimizer_class",
]


class GAConfig(StrictModel):
    """Truncation selection of the best `selection_fraction`, one elite, then mutation with
    per-parameter sigmas starting at `adaptive_sigma_init` (self-adapted with rate
    `adaptive_sigma_noise` when `adaptive`). Defaults are hbm-ne's and the lab's."""

    name: Literal["ga"] = "ga"
    population_size: int = pydantic.Field(default=50, ge=2)
    adaptive_sigma_init: float = pydantic.Field(default=1e-3, gt=0)
    adaptive_sigma_noise: float = pydantic.Field(default=1e-2, ge=0)
    selection_fraction: float = pydantic.Field(default=0.5, gt=0, lt=1)
    adaptive: bool = True

    @pydantic.model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return renamed(data, RENAMED_0_1["optimizer"], "optimizer.")

    def mutation(self) -> dict[str, Any]:
        """The population's mutation settings (hbm-ne's `sigma_init`, `adaptive`, `tau`)."""
        return library_kwargs(self, "adaptive_sigma_init", "adaptive", "adaptive_sigma_noise")

    def build(self, population: Any, *, generator: Any) -> Any:
        import hbm_ne

        return hbm_ne.GA(
            population, **library_kwargs(self, "selection_fraction"), generator=generator
        )


class ESConfig(StrictModel):
    """Evolution strategies (hbm-ne's `ES`). `variant="softmax"`: the lab's simple ES,
    softmax-weighted recombination (`temperature`), then mutation of every member (adaptive
    sigmas as in the GA). `variant="openai"`: OpenAI-style antithetic sampling θ ± σε
    (`noise_std`, even population), centred ranks, an `update` ("adam" or "sgd") step of
    `learning_rate` with optional `weight_decay`."""

    name: Literal["es"] = "es"
    population_size: int = pydantic.Field(default=50, ge=2)
    variant: Literal["softmax", "openai"] = "softmax"
    adaptive_sigma_init: float = pydantic.Field(default=1e-3, gt=0)
    adaptive_sigma_noise: float = pydantic.Field(default=1e-2, ge=0)
    adaptive: bool = True
    temperature: float = pydantic.Field(default=1.0, gt=0)
    noise_std: float = pydantic.Field(default=0.02, gt=0)
    learning_rate: float = pydantic.Field(default=0.01, gt=0)
    update: Literal["adam", "sgd"] = "adam"
    weight_decay: float = pydantic.Field(default=0.0, ge=0)

    @pydantic.model_validator(mode="after")
    def _even_for_antithetic(self) -> ESConfig:
        if self.variant == "openai" and self.population_size % 2:
            raise ValueError(
                f"optimizer.population_size={self.population_size}: variant 'openai' samples "
                "antithetic pairs, so it needs an even population"
            )
        return self

    @pydantic.model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return renamed(data, RENAMED_0_1["optimizer"], "optimizer.")

    def mutation(self) -> dict[str, Any]:
        return library_kwargs(self, "adaptive_sigma_init", "adaptive", "adaptive_sigma_noise")

    def build(self, population: Any, *, generator: Any) -> Any:
        import hbm_ne

        settings = ("variant", "temperature", "noise_std", "learning_rate", "update")
        return hbm_ne.ES(
            population,
            **library_kwargs(self, *settings, "weight_decay"),
            generator=generator,
        )


class CMAESConfig(StrictModel):
    """CMA-ES; `sigma0` is the initial step size (hbm-ne's default), parents the best half."""

    name: Literal["cmaes"] = "cmaes"
    population_size: int = pydantic.Field(default=50, ge=2)
    sigma0: float = pydantic.Field(default=0.1, gt=0)
    separable: bool | None = None
    """Diagonal covariance (sep-CMA-ES, O(λD) per generation) instead of the full one;
    None: hbm-ne's rule (separable above D = 1000 parameters)."""
    active: bool = True
    """Active covariance update (negative weights; pycma's default). False: positive weights
    only (hbm 0.1's update)."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return renamed(data, RENAMED_0_1["cmaes optimizer"], "optimizer.")

    def mutation(self) -> dict[str, Any]:
        return {"adaptive": False}  # CMA-ES owns the step size

    def build(self, population: Any, *, generator: Any) -> Any:
        import hbm_ne

        return hbm_ne.CMAES(
            population, **library_kwargs(self, "sigma0", "separable", "active"), generator=generator
        )


class SGDConfig(StrictModel):
    name: Literal["sgd"] = "sgd"
    learning_rate: float = pydantic.Field(default=1e-3, gt=0)
    """hbm-dl's and the lab's default."""


class AdamConfig(StrictModel):
    name: Literal["adam"] = "adam"
    learning_rate: float = pydantic.Field(default=1e-3, gt=0)


OptimizerConfig = Annotated[
    GAConfig | ESConfig | CMAESConfig | SGDConfig | AdamConfig,
    pydantic.Field(discriminator="name"),
]
_OPTIMIZER_CLASSES: dict[str, type[StrictModel]] = {
    "ga": GAConfig,
    "es": ESConfig,
    "cmaes": CMAESConfig,
    "sgd": SGDConfig,
    "adam": AdamConfig,
}


def optimizer_class(name: str) -> type[StrictModel]:
    return _OPTIMIZER_CLASSES[name]
