"""The research lines' config sections, each on its own methods only: `dynamic` (evolving
topologies), `environment` (training on the game's returns), `adversarial` (against a
discriminator of the person's play). Each builds its hbm-ne object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pydantic

from .config_base import StrictModel

__all__ = ["AdversarialConfig", "DynamicConfig", "EnvObjectiveConfig"]


class DynamicConfig(StrictModel):
    """Evolving-topology networks (`ga_dynamic`; hbm-ne's `DynamicPopulation` and
    `evolve_dynamic`, whose defaults these are). GA selection keeps the best
    `optimizer.selection_fraction` (hbm-ne's `survival`); `elitism` members pass unmutated
    (at least one: slot 0 holds the train-best member that is evaluated and exported)."""

    elitism: int = pydantic.Field(default=1, ge=1)
    max_hidden: int = pydantic.Field(default=64, ge=0)
    """Most hidden nodes a net may grow."""
    max_passes: int = pydantic.Field(default=4, ge=1)
    """Most synchronous passes per time step a net may evolve."""
    initial_mutations: int = pydantic.Field(default=1, ge=0)
    """Mutations of each initial net (outputs wired to the inputs), the lab's one."""
    grow_rate: float = pydantic.Field(default=1.0, ge=0)
    """Initial mean number of nodes grown per mutation (self-adapted per member)."""
    prune_rate: float = pydantic.Field(default=0.5, ge=0)
    """Initial mean number of nodes pruned per mutation (self-adapted per member)."""
    passes: int = pydantic.Field(default=1, ge=1)
    """Initial passes per time step."""
    locality: float = pydantic.Field(default=0.5, ge=0, le=1)
    """Initial chance of wiring a new node to a near one, ring by ring."""
    rate_noise: float = pydantic.Field(default=0.01, ge=0)
    """How much each mutation perturbs the member's own rates."""
    min_std: float = pydantic.Field(default=1e-3, gt=0)
    """Floor of a node's running standard deviation."""
    nonlinearity: Literal["tanh", "identity"] = "tanh"

    @pydantic.model_validator(mode="after")
    def _passes_fit(self) -> DynamicConfig:
        if self.passes > self.max_passes:
            raise ValueError(
                f"dynamic.passes={self.passes} must be <= dynamic.max_passes={self.max_passes}"
            )
        return self

    def population_kwargs(self) -> dict[str, Any]:
        """`DynamicPopulation`'s keyword arguments (all but sizes, generator and device)."""
        return self.model_dump(exclude={"elitism"})

    def build(
        self,
        input_size: int,
        output_size: int,
        population_size: int,
        *,
        generator: Any,
        device: Any,
    ) -> Any:
        """An hbm-ne `DynamicPopulation` of `population_size` evolving-topology networks."""
        import hbm_ne

        return hbm_ne.DynamicPopulation(
            input_size,
            output_size,
            population_size,
            **self.population_kwargs(),
            generator=generator,
            device=device,
        )


class EnvObjectiveConfig(StrictModel):
    """Training on the game's returns (`*_env_*` methods; hbm-ne's `ContinualEnvFitness`, whose
    defaults these are): each member plays `episodes` episodes per generation, at most
    `steps_per_generation` steps (None: whole episodes), fitness = minus its mean return.
    Fresh episodes start from seeds drawn from the experiment's seed and the generation.

    The lab's transfer modes: `env_transfer` (an episode cut by the step budget continues next
    generation; not for LunarLander, whose Box2D state cannot be saved), `mem_transfer`
    (recurrent methods: the hidden state carries over), `fit_transfer` (returns accumulate
    over a member's lineage, reduced by `fit_reduction`). The transfer state follows each
    member through GA selection; ES and CMA-ES draw new members, so it restarts every
    generation there. `deterministic`: argmax actions (False: sampled)."""

    episodes: int = pydantic.Field(default=1, ge=1)
    steps_per_generation: int | None = pydantic.Field(default=None, ge=1)
    env_transfer: bool = False
    mem_transfer: bool = False
    fit_transfer: bool = False
    fit_reduction: Literal["sum", "mean"] = "sum"
    deterministic: bool = True

    def fitness_kwargs(self) -> dict[str, Any]:
        """`ContinualEnvFitness`'s keyword arguments (all but env, seed and fixed seeds)."""
        return self.model_dump()

    def build(self, env_id: str, *, seed: int) -> Any:
        """hbm-ne's `ContinualEnvFitness` on `env_id`, its fresh episodes' seeds drawn from
        `seed` (the experiment's)."""
        import hbm_ne

        return hbm_ne.ContinualEnvFitness(env_id, **self.fitness_kwargs(), seed=seed)


class AdversarialConfig(StrictModel):
    """Adversarial imitation (`{ga,es}_adversarial_{feedforward,recurrent}`; hbm-ne's
    `AdversarialFitness`, whose names and defaults these are). Every generation the generators
    (the population the method evolves) replay the seeds of the person's training episodes;
    the discriminator then takes one update on `windows_per_class` windows of the person's
    play against as many of the generators' (`window` steps of observation, `hide_elements`
    zeroed, and one-hot action), and a generator's loss is 1 - how often it is taken for the
    person. `discriminator`: "ga" / "es" (a population of `discriminator_population_size`
    MLPs evolved on their cross-entropy, mutation `discriminator_sigma_init`; the `judges` best
    score the generators) or "adam" (one MLP, `discriminator_steps` Adam steps of
    `discriminator_learning_rate` a generation, GAIL's update). `max_episode_steps` caps the
    replayed episodes (None: the game's limit); `deterministic` plays argmax actions."""

    discriminator: Literal["ga", "es", "adam"] = "ga"
    discriminator_population_size: int = pydantic.Field(default=50, ge=2)
    discriminator_hidden_sizes: tuple[int, ...] = (32,)
    window: int = pydantic.Field(default=8, ge=1)
    hide_elements: tuple[int, ...] = ()
    windows_per_class: int = pydantic.Field(default=512, ge=1)
    discriminator_learning_rate: float = pydantic.Field(default=1e-3, gt=0)
    discriminator_steps: int = pydantic.Field(default=10, ge=1)
    discriminator_sigma_init: float = pydantic.Field(default=0.02, gt=0)
    judges: int = pydantic.Field(default=1, ge=1)
    max_episode_steps: int | None = pydantic.Field(default=None, ge=1)
    deterministic: bool = False

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> AdversarialConfig:
        if any(h < 1 for h in self.discriminator_hidden_sizes):
            raise ValueError(
                "adversarial.discriminator_hidden_sizes must be positive, got "
                f"{list(self.discriminator_hidden_sizes)}"
            )
        if self.discriminator == "adam" and self.judges != 1:
            raise ValueError(
                f"adversarial.judges={self.judges}: discriminator 'adam' is one network (judges 1)"
            )
        if self.judges > self.discriminator_population_size:
            raise ValueError(
                f"adversarial.judges={self.judges} exceeds "
                f"adversarial.discriminator_population_size={self.discriminator_population_size}"
            )
        return self

    def fitness_kwargs(self) -> dict[str, Any]:
        """`AdversarialFitness`'s keyword arguments (all but env, person, seeds, seed, device)."""
        return self.model_dump()

    def build(
        self, env_id: str, person: Any, seeds: Sequence[int], *, seed: int, device: Any
    ) -> Any:
        """hbm-ne's `AdversarialFitness`: discriminators of the person's play (`person`, an
        hbm-ne `EpisodeData` of whole episodes) against the generators replaying `seeds`, the
        seeds of those episodes."""
        import hbm_ne

        return hbm_ne.AdversarialFitness(
            env_id, person, list(seeds), **self.fitness_kwargs(), seed=seed, device=device
        )
