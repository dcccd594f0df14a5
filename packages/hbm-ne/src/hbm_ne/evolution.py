"""The generational loop: budgets, evaluation of the train-best member, atomic checkpoints.

`evolve` is generic over the fitness (supervised cross-entropy in `hbm_ne.supervised`,
environment returns in `hbm_ne.envs`). A run killed and resumed from its checkpoint reproduces
the uninterrupted run bit for bit on CPU: the checkpoint holds the population, the algorithm
(with its generator), the loop's generator, the history and the generation counter, and a
fingerprint of the run that a resume must match.

The loop speaks the language hbm-dl's `optimize_sgd` speaks (docs/interfaces.md): the same
budget, cadence, callback, fingerprint and result names, the same `Progress` record, the same
`evaluate` / macro-F1 rule; its budgets, cadences, closing row and callbacks are the shared
`RunSchedule` both loops run. Its public names are also importable from `hbm_ne.training`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from hbm_ne._shared import (
    ROW_FIELDS,
    Callback,
    CheckpointError,
    CheckpointInfo,
    LoopResult,
    RunSchedule,
    build_fingerprint,
    check_fingerprint,
    check_loop_arguments,
    load_checkpoint_file,
    now_iso,
    read_checkpoint_info,
    save_checkpoint_file,
    wants_resume,
)
from hbm_ne.algorithms import Algorithm
from hbm_ne.population import Population, _NetworkPopulation

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "HISTORY_FIELDS",
    "EvalFn",
    "EvolveResult",
    "FitnessFn",
    "TrainResult",
    "checkpoint_info",
    "evolve",
    "load_checkpoint",
]

# The logger name docs/interfaces.md gives the progress and checkpoint lines.
logger = logging.getLogger("hbm_ne.training")

CHECKPOINT_FORMAT = "hbm_ne.evolve"
CHECKPOINT_VERSION = 2  # 2: fingerprint, written_at, samples_seen, fitness_history

#: Keys of every history row: the shared `ROW_FIELDS` (hbm-dl's rows have the same), then its own.
HISTORY_FIELDS = (*ROW_FIELDS, "generation", "best_fitness", "mean_fitness")


class FitnessFn(Protocol):
    """`fitness_fn(population, generation, generator) -> [P]` (a loss). It may set
    `last_num_samples` (samples each member was evaluated on by the last call) so that
    `samples_seen` counts them; otherwise each member counts one sample per generation."""

    def __call__(
        self, population: Population, generation: int, generator: torch.Generator
    ) -> Tensor: ...


#: `eval_fn(best_params [D], step) -> metrics` of the member that was best on train at
#: generation `step` (e.g. {"test_ce", "test_accuracy", "test_f1"}); seed its draws from `step`.
EvalFn = Callable[[Tensor, int], Mapping[str, Any]]


@dataclass
class EvolveResult(LoopResult):
    """How an `evolve` / `train_supervised` run ended (names shared with hbm-dl's `SGDResult`).

    `history`: one row per evaluation (keys `HISTORY_FIELDS`); its last row describes `model`,
    the member that was best on train at the last generation, as a plain `nn.Module` (None for
    raw-vector populations; `best` is the same object). `best_params [D]` its parameters.
    `generations` (= `steps`) generations done; `stop_reason`: "max_generations",
    "max_samples", "max_time" or "callback". `elapsed` and `samples_seen` count every process
    of a resumed run;
    `resumed_from` is the generation this process resumed at (None: fresh start) and
    `checkpoint_time` when that checkpoint was written (ISO). `fitness_history`: the best
    fitness of every generation. Read by key too, like the design guide's result dicts:
    `result["fitness_history"]`, `result["test_loss_history"]`, `result["final_generation"]`,
    `result["checkpoint_path"]`.
    """

    history: list[dict[str, Any]]
    model: nn.Module | None
    best_params: Tensor
    generations: int
    elapsed: float
    stop_reason: str
    samples_seen: int = 0
    fitness_history: list[float] = field(default_factory=list)
    resumed_from: int | None = None
    checkpoint_time: str | None = None
    checkpoint_path: Path | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _mapping_keys = (
        "history",
        "model",
        "best",
        "best_params",
        "generations",
        "steps",
        "final_generation",
        "elapsed",
        "stop_reason",
        "samples_seen",
        "fitness_history",
        "test_loss_history",
        "f1_history",
        "resumed_from",
        "checkpoint_time",
        "checkpoint_path",
        "fingerprint",
    )

    @property
    def best(self) -> nn.Module | None:
        """The same as `model` (the train-best member of the last generation)."""
        return self.model

    @property
    def steps(self) -> int:
        return self.generations

    @property
    def final_generation(self) -> int:
        """Generations done (the design guide's name)."""
        return self.generations


TrainResult = EvolveResult


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an `evolve` checkpoint; raise `CheckpointError` if it is not one."""
    return load_checkpoint_file(
        path,
        format_name=CHECKPOINT_FORMAT,
        version=CHECKPOINT_VERSION,
        required=(
            "fingerprint",
            "population",
            "algorithm",
            "generator",
            "history",
            "generation",
            "step",
            "elapsed",
            "best_params",
            "samples_seen",
            "fitness_history",
        ),
    )


def checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Generations done (`step`), write time, elapsed time and fingerprint of a checkpoint."""
    return read_checkpoint_info(path, format_name=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)


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


def _scalars(obj: object, skip: Sequence[str] = ()) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(obj).items()
        if not k.startswith("_") and k not in skip and isinstance(v, bool | int | float | str)
    }


def _own_fingerprint(population: Population, algorithm: Algorithm, seed: int) -> dict[str, Any]:
    """hbm_ne's own part of the checkpoint fingerprint (budgets and cadences may differ)."""
    from hbm_ne import __version__

    return {
        "version": __version__,
        "seed": seed,
        "algorithm": {**_scalars(algorithm, ("generation",)), **algorithm.config()},
        "population": {
            **population.config(),
            "sigma_init": population.sigma_init,
            "tau": population.tau,
        },
    }


def _has_state(fitness_fn: object) -> bool:
    """A fitness with its own evolving state (`state_dict()` / `load_state_dict(state)`, e.g.
    an adversary): it travels in the checkpoint under "fitness_state"."""
    return callable(getattr(fitness_fn, "state_dict", None)) and callable(
        getattr(fitness_fn, "load_state_dict", None)
    )


def _per_member_reservoir(population: Population) -> Tensor | None:
    reservoir = getattr(population, "reservoir", None)
    if reservoir is None or getattr(population, "shared_reservoir", True):
        return None
    return reservoir  # type: ignore[no-any-return]


def _member_module(
    population: Population, params: Tensor, reservoir: Tensor | None
) -> nn.Module | None:
    """Parameter row `params [D]` as a module (with its own fixed reservoir, when members
    have one each)."""
    if not isinstance(population, _NetworkPopulation):
        return None
    module = population.export_params(params)
    if reservoir is not None:
        with torch.no_grad():
            module.get_buffer("recurrent_weight").copy_(reservoir)
    return module


def evolve(
    population: Population,
    algorithm: Algorithm,
    fitness_fn: FitnessFn,
    *,
    max_generations: int | None = None,
    max_time: float | None = None,
    max_samples: int | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int | None = 1,
    eval_every_seconds: float | None = None,
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
    """Run ask → fitness → tell → (evaluate the train-best member) until a budget is spent.

    `fitness_fn(population, generation, generator) -> [P]` is a loss (lower is better).
    `eval_fn(best_params, generation) -> metrics` evaluates the member that was best on train at
    that generation (chosen *before* selection): at generation 0, every `eval_every`
    generations (None: no count cadence), whenever `eval_every_seconds` passed since the last
    row, and at the last generation, so the last history row always describes the returned
    model. Budgets: `max_generations`, `max_time`
    (seconds, summed over every process of a resumed run), `max_samples` (stop once
    `samples_seen`, the samples every member was scored on summed over members and
    generations, reaches it: the count hbm-dl's `optimize_sgd` stops on too, so learners given
    the same `max_samples` see the same data to within one generation); at least one.
    Budgets are not in the fingerprint: a resume with a larger budget continues the run.

    Callbacks get a `Progress` after every generation (`step` = that generation's index); one
    returning True stops the run (`stop_reason="callback"`, final checkpoint written).

    Checkpoints are written atomically every `checkpoint_every` generations and/or
    `checkpoint_every_seconds`, and at the end. An existing checkpoint is resumed when `resume`
    is True; it must belong to this run: its fingerprint (the caller's JSON-able `fingerprint`
    plus hbm_ne's own under "hbm_ne": version, seed, algorithm and population settings; and,
    from `train_supervised`, the data signatures and supervised settings) must equal this
    call's, else `CheckpointError` names the differing fields and the file is left untouched.
    `resume=False` ignores an existing file; the first new checkpoint replaces it.
    A fitness with state of its own (methods `state_dict()` and `load_state_dict(state)`, e.g.
    `AdversarialFitness`'s discriminators) has it saved under "fitness_state" and restored on
    resume (its `load_state_dict` may refuse a foreign state with `CheckpointError`).
    """
    return _evolve(
        population,
        algorithm,
        fitness_fn,
        max_generations=max_generations,
        max_time=max_time,
        max_samples=max_samples,
        eval_fn=eval_fn,
        eval_every=eval_every,
        eval_every_seconds=eval_every_seconds,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        checkpoint_every_seconds=checkpoint_every_seconds,
        resume=resume,
        fingerprint=fingerprint,
        callbacks=callbacks,
        seed=seed,
        device=device,
        log=logger or globals()["logger"],
        settings={},
        data_size=None,
    )


def _evolve(
    population: Population,
    algorithm: Algorithm,
    fitness_fn: FitnessFn,
    *,
    max_generations: int | None,
    max_time: float | None,
    max_samples: int | None,
    eval_fn: EvalFn | None,
    eval_every: int | None,
    eval_every_seconds: float | None,
    checkpoint_path: str | os.PathLike[str] | None,
    checkpoint_every: int | None,
    checkpoint_every_seconds: float | None,
    resume: bool,
    fingerprint: Mapping[str, Any] | None,
    callbacks: Sequence[Callback],
    seed: int,
    device: torch.device | str | None,
    log: logging.Logger,
    settings: Mapping[str, Any],
    data_size: int | None,
) -> EvolveResult:
    budgets = {
        "max_generations": max_generations,
        "max_samples": max_samples,
        "max_time": max_time,
    }
    check_loop_arguments(
        "evolve",
        budgets,
        {
            "eval_every": eval_every,
            "eval_every_seconds": eval_every_seconds,
            "checkpoint_every": checkpoint_every,
            "checkpoint_every_seconds": checkpoint_every_seconds,
        },
    )
    if algorithm.population is not population:
        raise ValueError("algorithm was built for another population")
    dev = torch.device(device) if device is not None else population.device
    if not _same_device(dev, population.device):
        raise ValueError(
            f"device={dev} but the population lives on {population.device}: build the population "
            "(and then the algorithm) on the device you want"
        )
    full_fingerprint = build_fingerprint(
        fingerprint, "hbm_ne", {**_own_fingerprint(population, algorithm, seed), **settings}
    )
    generator = torch.Generator(device=population.device).manual_seed(seed)
    stateful = _has_state(fitness_fn)
    p = population.population_size
    history: list[dict[str, Any]] = []
    fitness_history: list[float] = []
    generation, elapsed_before, samples_seen = 0, 0.0, 0
    last_mean = math.nan
    best_params = population.params[0].detach().clone()
    best_reservoir: Tensor | None = None
    resumed_from: int | None = None
    checkpoint_time: str | None = None
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    if wants_resume(ckpt, resume, log):
        assert ckpt is not None
        state = load_checkpoint(ckpt)
        check_fingerprint(ckpt, state["fingerprint"], full_fingerprint)
        if stateful and "fitness_state" not in state:
            raise CheckpointError(
                f"{ckpt}: holds no fitness state, and this fitness "
                f"({type(fitness_fn).__name__}) has one; refusing to resume from or overwrite it"
            )
        try:
            population.load_state_dict(_to_device(state["population"], population.device))
            algorithm.load_state_dict(_to_device(state["algorithm"], population.device))
            generator.set_state(state["generator"])
            if stateful:
                fitness_fn.load_state_dict(state["fitness_state"])  # type: ignore[attr-defined]
        except CheckpointError:
            raise
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"{ckpt}: does not match this population/algorithm ({exc}); refusing to resume "
                "from or overwrite it"
            ) from exc
        history = list(state["history"])
        fitness_history = [float(f) for f in state["fitness_history"].tolist()]
        generation = int(state["generation"])
        elapsed_before = float(state["elapsed"])
        samples_seen = int(state["samples_seen"])
        last_mean = float(state.get("last_mean_fitness", math.nan))
        best_params = state["best_params"].to(population.device)
        if state.get("best_reservoir") is not None:
            best_reservoir = state["best_reservoir"].to(population.device)
        resumed_from, checkpoint_time = generation, state.get("written_at")
        log.info(
            "resumed from generation %d (checkpoint of %s): %s", generation, checkpoint_time, ckpt
        )

    def epoch() -> float | None:
        return None if not data_size else samples_seen / (p * data_size)

    def make_row(g: int, best_fitness: float, mean_fitness: float) -> dict[str, Any]:
        row = schedule.row(g, epoch(), samples_seen, best_fitness)
        row.update(generation=g, best_fitness=best_fitness, mean_fitness=mean_fitness)
        if eval_fn is not None:
            row.update(eval_fn(best_params, g))
        log.info(
            "generation %d: best %.5g mean %.5g%s",
            g,
            best_fitness,
            mean_fitness,
            "".join(
                f" {k} {v:.5g}"
                for k, v in row.items()
                if k.startswith(("test_", "val_")) and isinstance(v, float)
            ),
        )
        return row

    def save() -> None:
        assert ckpt is not None
        save_checkpoint_file(
            ckpt,
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "written_at": now_iso(),
                "fingerprint": full_fingerprint,
                "population": population.state_dict(),
                "algorithm": algorithm.state_dict(),
                "generator": generator.get_state(),
                "best_params": best_params,
                "best_reservoir": best_reservoir,
                "history": history,
                "fitness_history": torch.tensor(fitness_history, dtype=torch.float64),
                "last_mean_fitness": last_mean,
                "generation": generation,
                "step": generation,
                "elapsed": schedule.elapsed(),
                "samples_seen": samples_seen,
                **({"fitness_state": fitness_fn.state_dict()} if stateful else {}),  # type: ignore[attr-defined]
            },
        )
        log.debug("checkpoint %s at generation %d", ckpt, generation)

    schedule = RunSchedule(
        budgets=budgets,
        eval_every=eval_every,
        eval_every_seconds=eval_every_seconds,
        checkpoint_every=checkpoint_every,
        checkpoint_every_seconds=checkpoint_every_seconds,
        callbacks=callbacks,
        history=history,
        save=None if ckpt is None else save,
        start_step=generation,
        elapsed_before=elapsed_before,
        resumed_from=resumed_from,
    )

    def stop_reason() -> str:
        return schedule.stop_reason(max_generations=generation, max_samples=samples_seen)

    reason = stop_reason()
    while not reason:
        g = generation
        algorithm.ask()
        fitness = fitness_fn(population, g, generator)
        finite = torch.nan_to_num(fitness.double(), nan=math.inf)  # a NaN member is never best
        best = int(torch.argmin(finite))
        best_params = population.params[best].detach().clone()
        reservoir = _per_member_reservoir(population)
        best_reservoir = None if reservoir is None else reservoir[best].detach().clone()
        best_fitness, last_mean = float(finite[best]), float(fitness.double().mean())
        fitness_history.append(best_fitness)
        samples_seen += p * int(getattr(fitness_fn, "last_num_samples", 1))
        algorithm.tell(fitness)
        generation += 1
        reason = stop_reason()
        row = schedule.record(g, reason, partial(make_row, g, best_fitness, last_mean), due=g == 0)
        if schedule.report(
            row, step=g, epoch=epoch(), samples_seen=samples_seen, train_loss=best_fitness
        ):
            reason = reason or "callback"
        schedule.checkpoint(generation, reason)
    schedule.finish(generation)
    rows = schedule.rows(
        generation - 1 if generation > 0 else None,
        lambda: make_row(generation - 1, fitness_history[-1], last_mean),
    )
    return EvolveResult(
        rows,
        _member_module(population, best_params, best_reservoir),
        best_params,
        generation,
        schedule.elapsed(),
        reason,
        samples_seen=samples_seen,
        fitness_history=fitness_history,
        resumed_from=resumed_from,
        checkpoint_time=checkpoint_time,
        checkpoint_path=ckpt,
        fingerprint=full_fingerprint,
    )
