"""The method grammar: one table from a method name to what it means.

A method name (`ga_feedforward`, `sgd_reservoir`, `ga_dynamic`, `es_env_recurrent`,
`ga_adversarial_feedforward`) says which optimizer trains which kind of network on what. Every
reading of a name goes through `METHOD_TABLE`: the configs' checks, the task class that runs
it (`tasks.experiment_class`) and the library function it trains with (`trainer`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

__all__ = [
    "ALGORITHMS",
    "METHODS",
    "METHOD_TABLE",
    "NE_ALGORITHMS",
    "OBJECTIVES",
    "Method",
    "method_objective",
    "method_spec",
    "parse_method",
    "trainer",
]

Algorithm = Literal["ga", "es", "cmaes", "sgd", "adam"]
ModelKind = Literal["feedforward", "reservoir", "trainable", "dynamic"]
Objective = Literal["person", "returns", "adversarial"]

ALGORITHMS: tuple[str, ...] = ("ga", "es", "cmaes", "sgd", "adam")
NE_ALGORITHMS: tuple[str, ...] = ("ga", "es", "cmaes")
"""Neuroevolution (hbm-ne); the others are gradient descent (hbm-dl)."""


class Method(NamedTuple):
    """What a method name means."""

    algorithm: str
    kind: ModelKind
    objective: Objective
    """What it is trained on: "person" (imitate the person's actions: cross-entropy),
    "returns" (the game's reward), "adversarial" (fool a discriminator that tells the person's
    play from the model's). Every method is judged against the person."""
    trainer: str
    """The library function `build()`'s arguments are for, as `package.function`."""


def _trainer_of(algorithm: str, kind: str, objective: str) -> str:
    if objective == "returns":
        return "hbm_ne.evolve_env"
    if objective == "adversarial":
        return "hbm_ne.evolve_adversarial"
    if kind == "dynamic":
        return "hbm_ne.evolve_dynamic"
    return "hbm_ne.train_supervised" if algorithm in NE_ALGORITHMS else "hbm_dl.optimize_sgd"


def _table() -> dict[str, Method]:
    names: list[tuple[str, str, ModelKind, Objective]] = []
    # Suffix -> model kind. "recurrent" is the guide's name for a recurrent net whose recurrent
    # weights are learned too (the "trainable" kind); "reservoir" keeps them fixed.
    suffixes: dict[str, ModelKind] = {
        "feedforward": "feedforward",
        "reservoir": "reservoir",
        "trainable": "trainable",
        "recurrent": "trainable",
    }
    for algo in ALGORITHMS:
        for suffix, kind in suffixes.items():
            names.append((f"{algo}_{suffix}", algo, kind, "person"))
    # the other research lines: evolving-topology networks (GA only, imitating the person) ...
    names.append(("ga_dynamic", "ga", "dynamic", "person"))
    # ... and neuroevolution on the game's returns or against a discriminator of the person
    line_suffixes: dict[str, ModelKind] = {"feedforward": "feedforward", "recurrent": "trainable"}
    lines: tuple[tuple[Objective, str, tuple[str, ...]], ...] = (
        ("returns", "env", NE_ALGORITHMS),
        ("adversarial", "adversarial", ("ga", "es")),
    )
    for objective, infix, algos in lines:
        for algo in algos:
            for suffix, kind in line_suffixes.items():
                names.append((f"{algo}_{infix}_{suffix}", algo, kind, objective))
    return {
        name: Method(algo, kind, objective, _trainer_of(algo, kind, objective))
        for name, algo, kind, objective in names
    }


METHOD_TABLE: dict[str, Method] = _table()
METHODS: dict[str, tuple[str, str]] = {m: (s.algorithm, s.kind) for m, s in METHOD_TABLE.items()}
"""Method -> (algorithm, model kind): a view of `METHOD_TABLE`."""
OBJECTIVES: dict[str, Objective] = {m: s.objective for m, s in METHOD_TABLE.items()}
"""Method -> what it is trained on (`Method.objective`): a view of `METHOD_TABLE`."""


def method_spec(method: str) -> Method:
    """`"ga_feedforward"` -> its `Method`; raises with the list of valid names."""
    try:
        return METHOD_TABLE[method]
    except KeyError:
        raise ValueError(
            f"unknown method {method!r}; expected one of {', '.join(sorted(METHOD_TABLE))}"
        ) from None


def parse_method(method: str) -> tuple[str, str]:
    """`"ga_feedforward"` -> `("ga", "feedforward")`; raises with the list of valid names."""
    spec = method_spec(method)
    return spec.algorithm, spec.kind


def method_objective(method: str) -> Objective:
    """`"ga_env_feedforward"` -> `"returns"`; raises like `parse_method`."""
    return method_spec(method).objective


def trainer(method: str) -> Callable[..., Any]:
    """The library function that trains `method` (e.g. `hbm_ne.evolve_env` for
    `ga_env_feedforward`), imported on first use (hbm-ne and hbm-dl load torch)."""
    package, _, function = method_spec(method).trainer.partition(".")
    return getattr(importlib.import_module(package), function)  # type: ignore[no-any-return]
