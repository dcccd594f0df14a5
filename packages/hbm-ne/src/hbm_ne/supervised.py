"""The supervised objective for `evolve`: imitate recorded actions.

`SupervisedFitness` scores a population by cross-entropy on (a minibatch of) the training
episodes, `SupervisedEvaluation` scores the train-best member on test or validation episodes
with the shared `evaluate` (hbm-dl's function and seeding rule), and `train_supervised` builds
both and runs the generic loop of `hbm_ne.evolution`. Its public names are also importable from
`hbm_ne.training`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from hbm_ne._shared import Callback, data_signature, evaluate
from hbm_ne.algorithms import OPTIMIZERS, Algorithm, make_algorithm
from hbm_ne.evolution import (
    EvalFn,
    EvolveResult,
    _evolve,
    _member_module,
    _per_member_reservoir,
)
from hbm_ne.evolution import logger as _loop_logger
from hbm_ne.fitness import (
    EpisodeData,
    as_episode_data,
    check_fits,
    cross_entropy,
    sequence_cross_entropy,
)
from hbm_ne.population import BatchedFeedforward, BatchedRecurrent, Population, _NetworkPopulation

__all__ = [
    "VALIDATION_FIELDS",
    "SupervisedEvaluation",
    "SupervisedFitness",
    "combine_evaluations",
    "train_supervised",
]

#: Keys a history row gains when the run has validation data (`validation_data=`): the
#: evaluated member's cross-entropy, accuracy and sampled macro F1 on the validation episodes,
#: next to the test ones (hbm-dl's rows use the same names).
VALIDATION_FIELDS = ("val_loss", "val_accuracy", "val_f1")


class SupervisedFitness:
    """Cross-entropy on a minibatch (or all) of the training data, for `evolve`.

    Feedforward: `batch_size` steps drawn without replacement each generation. Recurrent:
    `batch_size` whole sequences, each run from its own state according to `state_mode`:
    `"episode"` (reset at every episode start), `"session"` (state carried across the episodes
    of a session: a session is one sequence), `"generation"` (as "session", and each member's
    final state seeds its next generation, following its lineage through selection).
    After each call `last_num_samples` holds the number of steps each member was scored on.
    """

    def __init__(
        self,
        data: EpisodeData,
        *,
        batch_size: int | None = None,
        state_mode: str = "episode",
        max_bytes: int | None = None,
    ) -> None:
        if state_mode not in ("episode", "session", "generation"):
            raise ValueError(
                f"state_mode must be 'episode', 'session' or 'generation', got {state_mode!r}"
            )
        self.data = data
        self.batch_size = batch_size
        self.state_mode = state_mode
        self.max_bytes = max_bytes
        self.last_num_samples = 0
        self._sequences: list[list[int]] | None = None
        self._full: tuple[Tensor, Tensor, Tensor] | None = None

    def __call__(
        self, population: Population, generation: int, generator: torch.Generator
    ) -> Tensor:
        data = self.data
        if isinstance(population, BatchedRecurrent):
            if self._sequences is None:
                unit = "episode" if self.state_mode == "episode" else "session"
                self._sequences = data.sequences(unit)
            seqs = self._sequences
            if self.batch_size is None or self.batch_size >= len(seqs):
                if self._full is None:
                    self._full = data.padded(seqs)
                x, y, mask = self._full
                self.last_num_samples = data.num_steps
            else:
                pick = torch.randperm(len(seqs), generator=generator, device=generator.device)
                chosen = [seqs[int(i)] for i in pick[: self.batch_size]]
                x, y, mask = data.padded(chosen)
                lengths = data.episode_lengths or ()
                self.last_num_samples = sum(lengths[e] for seq in chosen for e in seq)
            h0 = None
            if self.state_mode == "generation" and population.carried_state is not None:
                h0 = population.carried_state[:, None, :].expand(-1, x.shape[0], -1)
            ce, h_t = sequence_cross_entropy(
                population, x, y, mask, h0=h0, max_bytes=self.max_bytes
            )
            if self.state_mode == "generation":
                population.carried_state = h_t[:, -1].clone()
            return ce
        if not isinstance(population, BatchedFeedforward):
            raise TypeError(
                f"supervised fitness needs a network population, got {type(population)}"
            )
        obs, act = data.obs, data.actions
        if self.batch_size is not None and self.batch_size < data.num_steps:
            idx = torch.randperm(data.num_steps, generator=generator, device=generator.device)
            idx = idx[: self.batch_size].to(obs.device)
            obs, act = obs[idx], act[idx]
        self.last_num_samples = int(obs.shape[0])
        return cross_entropy(population, obs, act, max_bytes=self.max_bytes)


#: The history keys of each split an evaluation can score: (cross-entropy, accuracy, F1).
_SPLIT_KEYS = {"test": ("test_ce", "test_accuracy", "test_f1"), "validation": VALIDATION_FIELDS}


class SupervisedEvaluation:
    """Test cross-entropy, accuracy and sampled macro F1 of one member, for `evolve`.

    `__call__(best_params, step)` exports the member as its `nn.Module` and runs the shared
    `evaluate` (the function and seeding rule hbm-dl uses: F1 draws seeded `f1_seed(seed,
    step)`); recurrent members run each episode (state_mode "episode") or session from zero.
    `split="validation"` names the metrics `VALIDATION_FIELDS` instead of the test keys, for
    the episodes that choose (tuning, model selection) while test only reports.
    """

    def __init__(
        self,
        data: EpisodeData,
        population: Population,
        *,
        f1_samples: int = 10,
        seed: int = 0,
        state_mode: str = "episode",
        split: str = "test",
    ) -> None:
        if not isinstance(population, _NetworkPopulation):
            raise TypeError("supervised evaluation needs a network population")
        if split not in _SPLIT_KEYS:
            raise ValueError(f"split must be one of {sorted(_SPLIT_KEYS)}, got {split!r}")
        self.keys = _SPLIT_KEYS[split]
        self.data = data
        self.population = population
        self.f1_samples = f1_samples
        self.seed = seed
        self.unit = "episode" if state_mode == "episode" else "session"

    def __call__(self, best_params: Tensor, step: int) -> dict[str, float]:
        reservoir = _per_member_reservoir(self.population)
        if reservoir is not None:
            # members with their own reservoir: only GA accepts them, and its selection puts
            # the train-best member (with its reservoir) in slot 0 before `evolve` evaluates
            reservoir = reservoir[0]
        module = _member_module(self.population, best_params, reservoir)
        assert module is not None
        m = evaluate(
            module, self.data, f1_samples=self.f1_samples, seed=self.seed, step=step, unit=self.unit
        )
        ce, accuracy, f1 = self.keys
        return {ce: m["ce"], accuracy: m["accuracy"], f1: m["f1"]}


def combine_evaluations(*evals: EvalFn | None) -> EvalFn | None:
    """One `eval_fn` whose row holds every given evaluation's metrics (None: none given),
    e.g. a test and a validation `SupervisedEvaluation` of the same member."""
    given = [f for f in evals if f is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]

    def both(best_params: Tensor, step: int) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for f in given:
            row.update(f(best_params, step))
        return row

    return both


def train_supervised(
    population: BatchedFeedforward | BatchedRecurrent,
    train_data: EpisodeData | tuple[Any, Any],
    test_data: EpisodeData | tuple[Any, Any] | None = None,
    optimizer: str | Algorithm | None = None,
    *,
    max_generations: int | None = None,
    max_time: float | None = None,
    max_samples: int | None = None,
    validation_data: EpisodeData | tuple[Any, Any] | None = None,
    eval_every: int | None = 10,
    eval_every_seconds: float | None = None,
    batch_size: int | None = None,
    state_mode: str = "episode",
    f1_samples: int = 10,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_every_seconds: float | None = 300.0,
    resume: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
    max_bytes: int | None = None,
    logger: logging.Logger | None = None,
    eval_interval: float | None = None,
) -> EvolveResult:
    """Evolve `population` to imitate recorded actions (fitness = cross-entropy, minimised).

    `optimizer`: "ga", "es" or "cmaes" (built on the population with its defaults by
    `make_algorithm`, seeded from `seed`; default "ga"), or an algorithm object built on this
    population. History rows (`HISTORY_FIELDS`): `step` (= `generation`), `epoch`, `elapsed`,
    `samples_seen`, `train_loss` (= `best_fitness`), `mean_fitness` and, with test data,
    `test_ce`, `test_accuracy`, `test_f1` of the member that was best on train at that
    generation (hbm-ne's `evaluate`, F1 over `f1_samples` draws seeded `f1_seed(seed,
    generation)`); without test data those are None. With `validation_data` (episodes held out
    of training to choose with, never the test ones) each row also has `VALIDATION_FIELDS`
    (`val_loss`, `val_accuracy`, `val_f1`) of the same member at the same cadence; without it
    rows have no such keys. Nothing here chooses by test: the returned member is the train-best
    of the last generation. `batch_size` counts steps (feedforward) or sequences (recurrent);
    None = all data every generation. Budgets (`max_generations`, `max_samples`, `max_time`),
    cadences, checkpoints, `resume`, `fingerprint` and callbacks as in `evolve`; the fingerprint
    also holds the data signatures (validation's when given) and `batch_size`, `state_mode`,
    `f1_samples`.

    The design guide's spellings work: `eval_interval` (seconds: `eval_every_seconds`) and
    `logger` (where progress lines go).
    """
    if eval_interval is not None:
        eval_every_seconds = eval_interval
    if optimizer is None:
        optimizer = "ga"
    algo = (
        make_algorithm(optimizer, population, seed=seed)
        if isinstance(optimizer, str)
        else optimizer
    )
    if not isinstance(algo, Algorithm):
        raise TypeError(
            f"optimizer must be one of {sorted(OPTIMIZERS)} or an Algorithm, got "
            f"{type(optimizer).__name__}"
        )
    dev = population.device if device is None else torch.device(device)
    train = as_episode_data(train_data, dev)
    test = None if test_data is None else as_episode_data(test_data, dev)
    val = None if validation_data is None else as_episode_data(validation_data, dev)
    for name, d in (("train_data", train), ("test_data", test), ("validation_data", val)):
        if d is not None:
            check_fits(name, d, population.input_size, population.output_size)
    fitness = SupervisedFitness(
        train, batch_size=batch_size, state_mode=state_mode, max_bytes=max_bytes
    )
    evaluations = [
        None
        if d is None
        else SupervisedEvaluation(
            d, population, f1_samples=f1_samples, seed=seed, state_mode=state_mode, split=split
        )
        for d, split in ((test, "test"), (val, "validation"))
    ]
    settings = {
        "batch_size": batch_size,
        "state_mode": state_mode,
        "f1_samples": f1_samples,
        "train_data": data_signature(train),
        "test_data": None if test is None else data_signature(test),
        # only when given, so that runs without validation keep their fingerprints
        **({} if val is None else {"validation_data": data_signature(val)}),
    }
    return _evolve(
        population,
        algo,
        fitness,
        max_generations=max_generations,
        max_time=max_time,
        max_samples=max_samples,
        eval_fn=combine_evaluations(*evaluations),
        eval_every=eval_every,
        eval_every_seconds=eval_every_seconds,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        checkpoint_every_seconds=checkpoint_every_seconds,
        resume=resume,
        fingerprint=fingerprint,
        callbacks=callbacks,
        seed=seed,
        device=dev,
        log=logger or _loop_logger,
        settings=settings,
        data_size=train.num_steps,
    )
