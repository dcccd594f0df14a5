"""The neuroevolution tasks (hbm-ne): a batched population trained by GA, ES or CMA-ES to imitate
the person, and the research lines (evolving topologies, the game's returns, a discriminator).
Their cache address is `hbm_experiments.tasks.<Class>` (`tasks.py` pins it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from .configs import (
    NE_ALGORITHMS,
    AdversarialConfig,
    CMAESConfig,
    DynamicConfig,
    EnvObjectiveConfig,
    ESConfig,
    GAConfig,
    OptimizerConfig,
)
from .evaluation import F1_SAMPLES
from .experiment import Experiment, TrainOutput, _train_info
from .methods import method_spec
from .vocabulary import library_kwargs

__all__ = [
    "AdversarialExperiment",
    "CMAESExperiment",
    "DynamicExperiment",
    "ESExperiment",
    "EnvExperiment",
    "GAExperiment",
]

Device = torch.device | str | None


class _NEExperiment(Experiment):
    """Neuroevolution (hbm-ne): a batched population trained by GA, ES or CMA-ES."""

    def build(
        self, data: Any = None, *, device: torch.device | str | None = None
    ) -> dict[str, Any]:
        import hbm_ne

        device, data = self._setup(data, device)
        pop, algorithm, train, test = self._population(data, device)
        t = self.resolved("training")
        return {
            "population": pop,
            "train_data": train,
            "test_data": test,
            "validation_data": self._validation_split(hbm_ne.EpisodeData, data, device),
            "optimizer": algorithm,
            "batch_size": t.batch_size,
            "state_mode": t.state_mode,
            **self._loop_kwargs(device),
        }

    def _setup(self, data: Any, device: Device) -> tuple[torch.device, Any]:
        """The device to build on (default the config's) and the data (default the cached)."""
        device = torch.device(device if device is not None else self.device)
        return device, self.data_task().load() if data is None else data

    def _loop_kwargs(self, device: torch.device) -> dict[str, Any]:
        """Budgets, evaluation cadence, seed and device: the same for every hbm-ne loop."""
        budgets = ("max_generations", "max_samples", "max_optim_time")
        return {
            **library_kwargs(self.training, *budgets, "eval_every", "loss_eval_interval_seconds"),
            "seed": self.seed,
            "device": device,
        }

    def _population(self, data: Any, device: torch.device) -> tuple[Any, Any, Any, Any]:
        """(the population, its algorithm, the person's training and held-out data as
        hbm-ne's `EpisodeData`), from one generator seeded with the experiment's seed."""
        import hbm_ne

        meta = data.metadata
        opt = self.resolved("optimizer")
        assert isinstance(opt, GAConfig | ESConfig | CMAESConfig)
        assert opt.population_size is not None  # every method has a default
        gen = torch.Generator(device=device).manual_seed(self.seed)
        pop = self.resolved("model").build_population(
            meta.input_size,
            meta.num_actions,
            opt.population_size,
            kind=self.model_kind,
            mutation=opt.mutation(),
            generator=gen,
            device=device,
        )
        train, test = self._episode_splits(hbm_ne.EpisodeData, data, device)
        return pop, opt.build(pop, generator=gen), train, test

    def _person_evaluation(self, pop: Any, test: Any, data: Any, device: torch.device) -> Any:
        """The train-best member's CE/F1 on the person's test and validation episodes, for the
        lines trained on something else than those actions (returns, a discriminator): their
        validation columns let tuning judge them on the same validation CE as every method."""
        import hbm_ne
        from hbm_ne.training import combine_evaluations

        val = self._validation_split(hbm_ne.EpisodeData, data, device)
        return combine_evaluations(
            hbm_ne.SupervisedEvaluation(test, pop, f1_samples=F1_SAMPLES, seed=self.seed),
            None
            if val is None
            else hbm_ne.SupervisedEvaluation(
                val, pop, f1_samples=F1_SAMPLES, seed=self.seed, split="validation"
            ),
        )

    def _fit(self, setup: dict[str, Any], checkpoint_path: Path) -> TrainOutput:
        """Train with the method's hbm-ne function (`methods.trainer`), adding checkpoints,
        the fingerprint and callbacks to `build()`'s arguments."""
        result = self._run_trainer(
            setup, checkpoint_path, "generation", self.training.max_generations
        )
        if result.model is None:
            raise RuntimeError(f"{method_spec(self.method).trainer} returned no best member")
        return TrainOutput(result.model, list(result.history), _train_info(result))


class GAExperiment(_NEExperiment):
    """Genetic algorithm (truncation selection, adaptive mutation) on a batched population."""

    _algorithms: ClassVar[tuple[str, ...]] = ("ga",)


class ESExperiment(_NEExperiment):
    """Evolution strategy on a batched population."""

    _algorithms: ClassVar[tuple[str, ...]] = ("es",)
    method: str = "es_feedforward"
    optimizer: OptimizerConfig = ESConfig()


class CMAESExperiment(_NEExperiment):
    """CMA-ES on a batched population."""

    _algorithms: ClassVar[tuple[str, ...]] = ("cmaes",)
    method: str = "cmaes_feedforward"
    optimizer: OptimizerConfig = CMAESConfig()


class DynamicExperiment(_NEExperiment):
    """Evolving-topology networks (`ga_dynamic`): hbm-ne's `DynamicPopulation` evolved by GA
    to imitate the person (`evolve_dynamic`); the exported member is a recurrent `DynamicNet`."""

    _algorithms: ClassVar[tuple[str, ...]] = ("ga",)
    _line: ClassVar[str] = "evolving-topology networks"
    method: str = "ga_dynamic"

    def build(
        self, data: Any = None, *, device: torch.device | str | None = None
    ) -> dict[str, Any]:
        """`hbm_ne.evolve_dynamic(**exp.build())` is the cached experiment's training."""
        import hbm_ne

        device, data = self._setup(data, device)
        meta = data.metadata
        opt = self.resolved("optimizer")
        assert isinstance(opt, GAConfig) and opt.population_size is not None
        dyn = self.dynamic or DynamicConfig()
        gen = torch.Generator(device=device).manual_seed(self.seed)
        pop = dyn.build(
            meta.input_size,
            meta.num_actions,
            opt.population_size,
            generator=gen,
            device=device,
        )
        train, test = self._episode_splits(hbm_ne.EpisodeData, data, device)
        return {
            "population": pop,
            "train_data": train,
            "test_data": test,
            "validation_data": self._validation_split(hbm_ne.EpisodeData, data, device),
            **library_kwargs(opt, "selection_fraction"),
            "elitism": dyn.elitism,
            "batch_size": self.training.batch_size,
            "f1_samples": F1_SAMPLES,
            **self._loop_kwargs(device),
        }


class EnvExperiment(_NEExperiment):
    """Neuroevolution on the game's returns (`{ga,es,cmaes}_env_{feedforward,recurrent}`):
    hbm-ne's `ContinualEnvFitness` with the lab's transfer modes (`environment`), driven by
    `evolve_env`. The history's test rows are the train-best member's CE/F1 on the person's
    held-out actions (as for every method), so "trained on returns" and "trained on the
    person" compare in one report."""

    _algorithms: ClassVar[tuple[str, ...]] = NE_ALGORITHMS
    _line: ClassVar[str] = "trained on returns"
    method: str = "ga_env_feedforward"

    def build(
        self, data: Any = None, *, device: torch.device | str | None = None
    ) -> dict[str, Any]:
        """`hbm_ne.evolve_env(**exp.build())` is the cached experiment's training."""
        device, data = self._setup(data, device)
        env = self.environment or EnvObjectiveConfig()
        pop, algorithm, _, test = self._population(data, device)
        return {
            "population": pop,
            "algorithm": algorithm,
            "fitness": env.build(data.metadata.env_id, seed=self.seed),
            "eval_fn": self._person_evaluation(pop, test, data, device),
            **self._loop_kwargs(device),
        }


class AdversarialExperiment(_NEExperiment):
    """Adversarial imitation (`{ga,es}_adversarial_{feedforward,recurrent}`): the population
    (generators) is evolved against hbm-ne's `AdversarialFitness`, discriminators of windows of
    the person's training episodes replayed on their own seeds (`adversarial`), by
    `evolve_adversarial`. History rows add the discriminator's loss and accuracy; the test
    rows are the person's held-out CE/F1, as for every method."""

    _algorithms: ClassVar[tuple[str, ...]] = ("ga", "es")
    _line: ClassVar[str] = "against a discriminator"
    method: str = "ga_adversarial_feedforward"

    def build(
        self, data: Any = None, *, device: torch.device | str | None = None
    ) -> dict[str, Any]:
        """`hbm_ne.evolve_adversarial(**exp.build())` is the cached experiment's training."""
        import hbm_ne

        device, data = self._setup(data, device)
        meta = data.metadata
        if not getattr(meta, "seeds_replayable", True):
            raise ValueError(
                f"{meta.source_file}: method {self.method!r} replays the person's episodes on "
                "their own seeds, and this recording has no replayable seeds (an expert data "
                "set): train it with a method that imitates the person instead"
            )
        adv = self.adversarial or AdversarialConfig()
        pop, algorithm, _, test = self._population(data, device)
        person = hbm_ne.EpisodeData.from_arrays(
            data.train_obs, data.train_act, meta.train_episode_lengths, device=device
        )
        fitness = adv.build(
            meta.env_id,
            person,
            [int(e.seed) for e in meta.train_episodes],
            seed=self.seed,
            device=device,
        )
        return {
            "population": pop,
            "algorithm": algorithm,
            "fitness": fitness,
            "eval_fn": self._person_evaluation(pop, test, data, device),
            **self._loop_kwargs(device),
        }
