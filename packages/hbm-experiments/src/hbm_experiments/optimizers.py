"""The `optimizer` section: one model per algorithm (`name` picks it), each building its hbm-ne
algorithm, or naming hbm-dl's optimizer, with the library's names (`vocabulary`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from .config_base import StrictModel, renamed
from .method_defaults import with_lab_defaults
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
    `adaptive_sigma_noise` when `adaptive`). A field left None is the method's default
    (`method_defaults`: re-derived for `ga_feedforward`, else hbm-ne's and the lab's)."""

    name: Literal["ga"] = "ga"
    population_size: int | None = pydantic.Field(default=None, ge=2)
    adaptive_sigma_init: float | None = pydantic.Field(default=None, gt=0)
    adaptive_sigma_noise: float | None = pydantic.Field(default=None, ge=0)
    selection_fraction: float | None = pydantic.Field(default=None, gt=0, lt=1)
    adaptive: bool | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return renamed(data, RENAMED_0_1["optimizer"], "optimizer.")

    def mutation(self) -> dict[str, Any]:
        """The population's mutation settings (hbm-ne's `sigma_init`, `adaptive`, `tau`)."""
        own = with_lab_defaults(self, "optimizer")
        return library_kwargs(own, "adaptive_sigma_init", "adaptive", "adaptive_sigma_noise")

    def build(self, population: Any, *, generator: Any) -> Any:
        import hbm_ne

        own = with_lab_defaults(self, "optimizer")
        return hbm_ne.GA(
            population, **library_kwargs(own, "selection_fraction"), generator=generator
        )


class ESConfig(StrictModel):
    """Evolution strategies (hbm-ne's `ES`). `variant="softmax"`: the lab's simple ES,
    softmax-weighted recombination (`temperature`), then mutation of every member (adaptive
    sigmas as in the GA). `variant="openai"`: OpenAI-style antithetic sampling θ ± σε
    (`noise_std`, even population), centred ranks, an `update` ("adam" or "sgd") step of
    `learning_rate` with optional `weight_decay`. A field left None is the method's default
    (`method_defaults`)."""

    name: Literal["es"] = "es"
    population_size: int | None = pydantic.Field(default=None, ge=2)
    variant: Literal["softmax", "openai"] = "softmax"
    adaptive_sigma_init: float | None = pydantic.Field(default=None, gt=0)
    adaptive_sigma_noise: float | None = pydantic.Field(default=None, ge=0)
    adaptive: bool | None = None
    temperature: float | None = pydantic.Field(default=None, gt=0)
    noise_std: float = pydantic.Field(default=0.02, gt=0)
    learning_rate: float = pydantic.Field(default=0.01, gt=0)
    update: Literal["adam", "sgd"] = "adam"
    weight_decay: float = pydantic.Field(default=0.0, ge=0)

    @pydantic.model_validator(mode="after")
    def _even_for_antithetic(self) -> ESConfig:
        if self.variant == "openai" and (self.population_size or 0) % 2:
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
        own = with_lab_defaults(self, "optimizer")
        return library_kwargs(own, "adaptive_sigma_init", "adaptive", "adaptive_sigma_noise")

    def build(self, population: Any, *, generator: Any) -> Any:
        import hbm_ne

        settings = ("variant", "temperature", "noise_std", "learning_rate", "update")
        return hbm_ne.ES(
            population,
            **library_kwargs(with_lab_defaults(self, "optimizer"), *settings, "weight_decay"),
            generator=generator,
        )


class CMAESConfig(StrictModel):
    """CMA-ES; `sigma0` is the initial step size (hbm-ne's default), parents the best half;
    `population_size` None is the method's default (`method_defaults`)."""

    name: Literal["cmaes"] = "cmaes"
    population_size: int | None = pydantic.Field(default=None, ge=2)
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
    learning_rate: float | None = pydantic.Field(default=None, gt=0)
    """None: the method's default (`method_defaults`: re-derived for `sgd_feedforward`, else
    hbm-dl's and the lab's 1e-3)."""


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
