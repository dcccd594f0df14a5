"""The generational loop: budgets, evaluation of the train-best member, atomic checkpoints.

`evolve` is generic over the fitness (supervised cross-entropy here, environment returns in
`hbm_ne.envs`); `train_supervised` is a thin wrapper that builds the supervised fitness and
evaluation. A run killed and resumed from its checkpoint reproduces the uninterrupted run bit
for bit on CPU: the checkpoint holds the population, the algorithm (with its generator), the
loop's generator, the history and the generation counter.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from hbm_ne.algorithms import Algorithm
from hbm_ne.fitness import (
    EpisodeData,
    as_episode_data,
    cross_entropy,
    population_metrics,
    sequence_cross_entropy,
)
from hbm_ne.population import BatchedFeedforward, BatchedRecurrent, Population, _NetworkPopulation

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "hbm_ne.evolve"
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, foreign, or from another configuration."""


@dataclass
class Progress:
    """What a callback receives after every generation.

    `evaluation` is the history row when this generation was evaluated, else None. A callback
    that returns True stops the run after this generation.
    """

    generation: int
    elapsed: float
    best_fitness: float
    mean_fitness: float
    max_generations: int | None
    max_time: float | None
    evaluation: dict[str, Any] | None = None


Callback = Callable[[Progress], bool | None]


class FitnessFn(Protocol):
    def __call__(
        self, population: Population, generation: int, generator: torch.Generator
    ) -> Tensor: ...


#: `eval_fn(population, best_index, generator) -> dict of metrics` for the train-best member.
EvalFn = Callable[[Population, int, torch.Generator], dict[str, float]]


@dataclass
class EvolveResult:
    """History rows, the train-best member of the last generation, and where the run stopped."""

    history: list[dict[str, Any]]
    best: nn.Module | None
    best_params: Tensor
    generations: int
    elapsed: float
    stop_reason: str
    extra: dict[str, Any] = field(default_factory=dict)


TrainResult = EvolveResult


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an `evolve` checkpoint; raise `CheckpointError` if it is not one."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{p}: not a readable hbm_ne checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{p}: field 'format' is {found!r}, expected {CHECKPOINT_FORMAT!r} "
            "(a foreign file; refusing to resume from or overwrite it)"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{p}: field 'version' is {state.get('version')!r}, expected {CHECKPOINT_VERSION}"
        )
    keys = ("population", "algorithm", "generator", "history", "generation")
    for key in (*keys, "elapsed", "best_params"):
        if key not in state:
            raise CheckpointError(f"{p}: missing field {key!r}")
    return state


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj if obj.dtype == torch.uint8 and obj.dim() == 1 else obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return (a.index if a.index is not None else current) == (
        b.index if b.index is not None else current
    )


def evolve(
    population: Population,
    algorithm: Algorithm,
    fitness_fn: FitnessFn,
    *,
    max_generations: int | None = None,
    max_time: float | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int = 1,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = 100,
    checkpoint_interval: float | None = 300.0,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
) -> EvolveResult:
    """Run ask → fitness → (evaluate the train-best member) → tell until a budget is spent.

    `fitness_fn(population, generation, generator) -> [P]` is a loss (lower is better).
    `eval_fn(population, best_index, generator) -> metrics` runs every `eval_every` generations
    (and at the last) on the member that was best on train, chosen *before* selection/mutation.
    `max_time` counts the whole run including time before a resume. Checkpoints are written
    atomically every `checkpoint_every` generations or `checkpoint_interval` seconds, and at the
    end; an existing checkpoint is resumed (and must match this population and algorithm).
    """
    if max_generations is None and max_time is None:
        raise ValueError("give max_generations or max_time (or both): the loop needs a budget")
    if algorithm.population is not population:
        raise ValueError("algorithm was built for another population")
    dev = torch.device(device) if device is not None else population.device
    if not _same_device(dev, population.device):
        raise ValueError(
            f"device={dev} but the population lives on {population.device}: build the population "
            "(and then the algorithm) on the device you want"
        )
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    generator = torch.Generator(device=population.device).manual_seed(seed)
    # Evaluation draws from its own stream, reseeded from (seed, generation), so evaluating never
    # changes the training run and each evaluation is reproducible on its own.
    eval_generator = torch.Generator(device=population.device)
    history: list[dict[str, Any]] = []
    generation, elapsed_before = 0, 0.0
    best_params = population.params[0].detach().clone()
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    if ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        try:
            population.load_state_dict(_to_device(state["population"], population.device))
            algorithm.load_state_dict(_to_device(state["algorithm"], population.device))
            generator.set_state(state["generator"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"{ckpt}: does not match this population/algorithm ({exc}); refusing to resume "
                "from or overwrite it"
            ) from exc
        history = list(state["history"])
        generation = int(state["generation"])
        if max_generations is None or max_generations > generation:
            # An earlier, shorter budget's closing evaluation is off this run's schedule.
            history = [r for r in history if r["generation"] % eval_every == 0]
        elapsed_before = float(state["elapsed"])
        best_params = state["best_params"].to(population.device)
        logger.info("resumed %s at generation %d (%.1f s)", ckpt, generation, elapsed_before)

    start = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    def save() -> None:
        if ckpt is None:
            return
        _atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "population": population.state_dict(),
                "algorithm": algorithm.state_dict(),
                "generator": generator.get_state(),
                "best_params": best_params,
                "history": history,
                "generation": generation,
                "elapsed": elapsed(),
            },
            ckpt,
        )
        logger.debug("checkpoint %s at generation %d", ckpt, generation)

    stop_reason = "max_generations"
    last_save = time.perf_counter()
    while True:
        if max_generations is not None and generation >= max_generations:
            stop_reason = "max_generations"
            break
        if max_time is not None and elapsed() >= max_time:
            stop_reason = "max_time"
            break
        algorithm.ask()
        fitness = fitness_fn(population, generation, generator)
        finite = torch.nan_to_num(fitness.double(), nan=math.inf)
        best = int(torch.argmin(finite))
        best_params = population.params[best].detach().clone()
        best_fitness, mean_fitness = float(finite[best]), float(fitness.double().mean())
        last = max_generations is not None and generation + 1 >= max_generations
        row: dict[str, Any] | None = None
        if generation % eval_every == 0 or last:
            row = {
                "generation": generation,
                "elapsed": elapsed(),
                "best_fitness": best_fitness,
                "mean_fitness": mean_fitness,
            }
            if eval_fn is not None:
                eval_generator.manual_seed(((seed + 1) * 0x9E3779B1 + generation) % 2**63)
                row.update(eval_fn(population, best, eval_generator))
            history.append(row)
            logger.info(
                "generation %d: best %.5g mean %.5g%s",
                generation,
                best_fitness,
                mean_fitness,
                "".join(f" {k} {v:.5g}" for k, v in row.items() if k.startswith("test_")),
            )
        algorithm.tell(fitness)
        generation += 1
        progress = Progress(
            generation, elapsed(), best_fitness, mean_fitness, max_generations, max_time, row
        )
        stop = any([bool(cb(progress)) for cb in callbacks])
        due = (checkpoint_every is not None and generation % checkpoint_every == 0) or (
            checkpoint_interval is not None
            and time.perf_counter() - last_save >= checkpoint_interval
        )
        if due:
            save()
            last_save = time.perf_counter()
        if stop:
            stop_reason = "callback"
            break
    save()
    best_module = None
    if isinstance(population, _NetworkPopulation):
        best_module = population.export_params(best_params)
    return EvolveResult(history, best_module, best_params, generation, elapsed(), stop_reason)


class SupervisedFitness:
    """Cross-entropy on a minibatch (or all) of the training data, for `evolve`.

    Feedforward: `batch_size` steps drawn without replacement each generation. Recurrent:
    `batch_size` whole sequences, each run from its own state according to `state_mode`:
    `"episode"` (reset at every episode start), `"session"` (state carried across the episodes
    of a session: a session is one sequence), `"generation"` (as "session", and each member's
    final state seeds its next generation, following its lineage through selection).
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
            else:
                pick = torch.randperm(len(seqs), generator=generator, device=generator.device)
                x, y, mask = data.padded([seqs[int(i)] for i in pick[: self.batch_size]])
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
        return cross_entropy(population, obs, act, max_bytes=self.max_bytes)


class SupervisedEvaluation:
    """Test cross-entropy and sampled macro F1 of the train-best member, for `evolve`."""

    def __init__(self, data: EpisodeData, *, num_samples: int = 10, state_mode: str = "episode"):
        self.data = data
        self.num_samples = num_samples
        self.unit = "episode" if state_mode == "episode" else "session"

    def __call__(
        self, population: Population, best: int, generator: torch.Generator
    ) -> dict[str, float]:
        if not isinstance(population, _NetworkPopulation):
            raise TypeError("supervised evaluation needs a network population")
        member = _single_member(population, best)
        ce, f1 = population_metrics(
            member, self.data, num_samples=self.num_samples, generator=generator, unit=self.unit
        )
        return {"test_ce": float(ce[0]), "test_f1": float(f1[0])}


def _single_member(population: _NetworkPopulation, i: int) -> Any:
    """A population of one that views member `i` (shares layout and reservoir)."""
    one = object.__new__(type(population))
    one.__dict__.update(population.__dict__)
    one.params = population.params[i : i + 1]
    one.sigma = None
    one.carried_state = None
    one._workspace = {}
    one._views_cache = None
    one._layers_cache = None
    one._noise = None
    reservoir = getattr(population, "reservoir", None)
    if reservoir is not None and not getattr(population, "shared_reservoir", True):
        setattr(one, "reservoir", reservoir[i : i + 1])  # noqa: B010
    return one


def train_supervised(
    population: BatchedFeedforward | BatchedRecurrent,
    train_data: EpisodeData | tuple[Any, Any],
    test_data: EpisodeData | tuple[Any, Any] | None,
    algorithm: Algorithm,
    *,
    max_generations: int | None = None,
    max_time: float | None = None,
    eval_every: int = 10,
    batch_size: int | None = None,
    state_mode: str = "episode",
    f1_samples: int = 10,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = 100,
    checkpoint_interval: float | None = 300.0,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
    max_bytes: int | None = None,
) -> EvolveResult:
    """Evolve `population` to imitate recorded actions (fitness = cross-entropy, minimised).

    History rows: `generation, elapsed, best_fitness, mean_fitness` and, with test data,
    `test_ce, test_f1` of the member that was best on train at that generation. `batch_size`
    counts steps (feedforward) or sequences (recurrent); None = all data every generation.
    """
    dev = population.device if device is None else torch.device(device)
    train = as_episode_data(train_data, dev)
    test = None if test_data is None else as_episode_data(test_data, dev)
    for name, d in (("train_data", train), ("test_data", test)):
        if d is not None and d.input_size != population.input_size:
            raise ValueError(
                f"{name}: obs has {d.input_size} features, population expects "
                f"{population.input_size}"
            )
        if d is not None and d.num_steps and int(d.actions.max()) >= population.output_size:
            raise ValueError(
                f"{name}: actions go up to {int(d.actions.max())}, population has "
                f"{population.output_size} outputs"
            )
    fitness = SupervisedFitness(
        train, batch_size=batch_size, state_mode=state_mode, max_bytes=max_bytes
    )
    evaluation = (
        None
        if test is None
        else SupervisedEvaluation(test, num_samples=f1_samples, state_mode=state_mode)
    )
    return evolve(
        population,
        algorithm,
        fitness,
        max_generations=max_generations,
        max_time=max_time,
        eval_fn=evaluation,
        eval_every=eval_every,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        checkpoint_interval=checkpoint_interval,
        callbacks=callbacks,
        seed=seed,
        device=dev,
    )
