"""Supervised evolution of dynamic networks: `DynamicFitness` (cross-entropy on recorded
actions), `DynamicEvaluation` (the shared `evaluate` on the exported best) and `evolve_dynamic`,
which drives them with GA through hbm-ne's `evolve`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hbm_ne._shared import Callback, data_signature, evaluate
from hbm_ne.algorithms import make_algorithm
from hbm_ne.dynamic.packed import PackedEpisodes, pack_episodes
from hbm_ne.dynamic.population import (
    DynamicPopulation,
)
from hbm_ne.fitness import EpisodeData, as_episode_data, check_fits
from hbm_ne.population import Population
from hbm_ne.training import VALIDATION_FIELDS, EvolveResult, combine_evaluations, evolve


class DynamicFitness:
    """Training fitness for `evolve`: each member's mean cross-entropy on `batch_size` whole
    episodes drawn each generation (None: all), run side by side from a zero state; the
    members' Welford statistics take the samples. `last_num_samples` is the steps scored."""

    def __init__(self, data: EpisodeData, *, batch_size: int | None = None) -> None:
        if data.episode_lengths is None:
            raise ValueError(
                "dynamic networks are recurrent: EpisodeData.from_arrays(obs, actions, "
                "episode_lengths)"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.last_num_samples = 0
        self._lengths = list(data.episode_lengths)
        self._starts = list(np.cumsum([0, *self._lengths[:-1]]))
        self._full: PackedEpisodes | None = None

    def __call__(
        self, population: Population, generation: int, generator: torch.Generator
    ) -> Tensor:
        if not isinstance(population, DynamicPopulation):
            raise TypeError(f"DynamicFitness needs a DynamicPopulation, got {type(population)}")
        data = self.data
        e = len(self._lengths)
        if self.batch_size is None or self.batch_size >= e:
            if self._full is None:
                self._full = pack_episodes(data.obs, self._lengths, data.actions)
            packed = self._full
        else:
            pick = torch.randperm(e, generator=generator, device=generator.device)
            chosen = [int(k) for k in pick[: self.batch_size].tolist()]
            packed = pack_episodes(
                data.obs, self._lengths, data.actions, episodes=chosen, starts=self._starts
            )
        self.last_num_samples = packed.num_steps
        return population.packed_cross_entropy(packed, update_stats=True)


class DynamicEvaluation:
    """Test cross-entropy, accuracy and sampled macro F1 for `evolve`, of the exported member
    in slot 0 (GA with elitism ≥ 1 puts the generation's train-best member there, unmutated,
    before `evolve` evaluates), its statistics frozen; each episode runs from a zero state.
    hbm-ne's shared `evaluate` (F1 draws seeded `f1_seed(seed, step)`). `split="validation"`
    names the metrics `VALIDATION_FIELDS` instead of the test keys."""

    def __init__(
        self,
        data: EpisodeData,
        population: DynamicPopulation,
        *,
        f1_samples: int = 10,
        seed: int = 0,
        split: str = "test",
    ) -> None:
        if data.episode_lengths is None:
            raise ValueError("test data need episode_lengths (dynamic networks are recurrent)")
        if split not in ("test", "validation"):
            raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
        self.keys = (
            ("test_ce", "test_accuracy", "test_f1") if split == "test" else VALIDATION_FIELDS
        )
        self.data = data
        self.population = population
        self.f1_samples = f1_samples
        self.seed = seed

    def __call__(self, best_params: Tensor, step: int) -> dict[str, float]:
        module = self.population.export(0)
        m = evaluate(module, self.data, f1_samples=self.f1_samples, seed=self.seed, step=step)
        ce, accuracy, f1 = self.keys
        return {ce: m["ce"], accuracy: m["accuracy"], f1: m["f1"]}


def evolve_dynamic(
    population: DynamicPopulation,
    train_data: EpisodeData | tuple[Any, Any],
    test_data: EpisodeData | tuple[Any, Any] | None = None,
    *,
    survival: float = 0.5,
    elitism: int = 1,
    max_generations: int | None = None,
    max_time: float | None = None,
    max_samples: int | None = None,
    validation_data: EpisodeData | tuple[Any, Any] | None = None,
    eval_every: int | None = 10,
    eval_every_seconds: float | None = None,
    batch_size: int | None = None,
    f1_samples: int = 10,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_every_seconds: float | None = 300.0,
    resume: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
    logger: logging.Logger | None = None,
) -> EvolveResult:
    """Evolve dynamic networks to imitate recorded actions with GA (fitness = cross-entropy).

    `GA(population, survival, elitism)` seeded from `seed` (as `train_supervised` seeds its
    algorithms) driven by hbm-ne's `evolve`, so budgets (`max_generations`, `max_samples`,
    `max_time`),
    cadences, atomic checkpoints (`checkpoint_path`, `checkpoint_every`,
    `checkpoint_every_seconds`), bitwise resume, `fingerprint`, callbacks and history rows
    (`generation`, `train_loss`, `test_ce`, `test_accuracy`, `test_f1`, `elapsed`, ...) are
    the other methods'. `validation_data` adds `VALIDATION_FIELDS` to the rows, as in
    `train_supervised`. `batch_size` counts episodes per generation (None: all). The
    fingerprint also holds the data signatures and these settings (under "hbm_ne_dynamic").

    The result's `model` (= `best`) is the exported train-best member of the last generation
    (statistics frozen); `elitism` must be ≥ 1 so that slot 0 holds it unmutated.
    """
    if elitism < 1:
        raise ValueError("evolve_dynamic needs elitism >= 1 (slot 0 holds the train-best member)")
    if not isinstance(population, DynamicPopulation):
        raise TypeError(f"population must be a DynamicPopulation, got {type(population)}")
    dev = population.device
    train = as_episode_data(train_data, dev)
    test = None if test_data is None else as_episode_data(test_data, dev)
    val = None if validation_data is None else as_episode_data(validation_data, dev)
    for name, d in (("train_data", train), ("test_data", test), ("validation_data", val)):
        if d is None:
            continue
        if d.episode_lengths is None:
            raise ValueError(f"{name}: dynamic networks need episodes (episode_lengths)")
        check_fits(name, d, population.input_size, population.output_size)
    caller = dict(fingerprint or {})
    if "hbm_ne_dynamic" in caller:
        raise ValueError("fingerprint key 'hbm_ne_dynamic' is reserved for evolve_dynamic")
    caller["hbm_ne_dynamic"] = {
        "batch_size": batch_size,
        "f1_samples": f1_samples,
        "train_data": data_signature(train),
        "test_data": None if test is None else data_signature(test),
        **({} if val is None else {"validation_data": data_signature(val)}),
    }
    algorithm = make_algorithm("ga", population, seed=seed, survival=survival, elitism=elitism)
    evaluation = combine_evaluations(
        *(
            DynamicEvaluation(d, population, f1_samples=f1_samples, seed=seed, split=split)
            for d, split in ((test, "test"), (val, "validation"))
            if d is not None
        )
    )
    result = evolve(
        population,
        algorithm,
        DynamicFitness(train, batch_size=batch_size),
        max_generations=max_generations,
        max_time=max_time,
        max_samples=max_samples,
        eval_fn=evaluation,
        eval_every=eval_every,
        eval_every_seconds=eval_every_seconds,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        checkpoint_every_seconds=checkpoint_every_seconds,
        resume=resume,
        fingerprint=caller,
        callbacks=callbacks,
        seed=seed,
        device=device,
        logger=logger,
    )
    result.model = population.export(0)
    return result
