"""Search spaces for `hbm tune`: one dimension per dotted config key (`ParamSpec`), the spaces
that ship with hbm per algorithm (`DEFAULT_SPACES`), and the YAML form a user writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .configs import ConfigError

__all__ = ["DEFAULT_SPACES", "RECURRENT_BATCH", "ParamSpec", "default_space", "parse_space"]


@dataclass(frozen=True)
class ParamSpec:
    """One dimension of a search space: a dotted config key and its Optuna distribution."""

    name: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value of this dimension for an Optuna `Trial`."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def example(self) -> Any:
        """A value inside the space (for checking that the key applies to the config)."""
        if self.kind == "categorical":
            return self.choices[0]
        return int(self.low) if self.kind == "int" else float(self.low)  # type: ignore[arg-type]


def _float(lo: float, hi: float, *, log: bool = True) -> dict[str, Any]:
    return {"type": "float", "low": lo, "high": hi, "log": log}


def _int(lo: int, hi: int, *, log: bool = True) -> dict[str, Any]:
    return {"type": "int", "low": lo, "high": hi, "log": log}


_HIDDEN = {"model.hidden_size": _int(8, 64)}
# neuroevolution: samples per fitness evaluation decide how many generations a sample budget
# buys (all of a person's steps: a few generations; 256 of them: hundreds)
_NE_BATCH = {"training.batch_size": _int(32, 4096)}
_MUTATION = {
    "optimizer.adaptive_sigma_init": _float(1e-3, 0.5),
    "optimizer.adaptive_sigma_noise": _float(1e-3, 0.3),
    "optimizer.adaptive": {"choices": [True, False]},
    "optimizer.population_size": _int(8, 128),
    **_NE_BATCH,
}
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "ga": {**_MUTATION, "optimizer.selection_fraction": _float(0.1, 0.7, log=False), **_HIDDEN},
    "es": {**_MUTATION, "optimizer.temperature": _float(0.1, 10.0), **_HIDDEN},
    "cmaes": {
        "optimizer.sigma0": _float(0.01, 1.0),
        "optimizer.population_size": _int(8, 128),
        **_NE_BATCH,
        **_HIDDEN,
    },
    "sgd": {
        "optimizer.learning_rate": _float(1e-4, 0.3),
        "training.batch_size": _int(8, 256),
        **_HIDDEN,
    },
    "adam": {
        "optimizer.learning_rate": _float(1e-4, 0.1),
        "training.batch_size": _int(8, 256),
        **_HIDDEN,
    },
}
"""What matters per algorithm (`hbm tune --space default`): mutation scale and its
self-adaptation, population size and selection fraction (GA), softmax temperature (ES), the
initial step size (CMA-ES), learning rate (SGD/Adam), batch size (all: samples per step or
per fitness evaluation), and the hidden size.
Every range holds hbm's default value (the whole of CartPole's training steps for a
neuroevolution batch); scales are logarithmic where a factor, not a difference, matters."""


_SPEC_FIELDS = frozenset({"type", "low", "high", "log", "choices"})


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections (`optimizer: {learning_rate: {...}}`, as a YAML file's dotted keys are
    read) -> dotted keys; a mapping of spec fields or a list is one dimension."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not set(value) & _SPEC_FIELDS:
            out |= _flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


def parse_space(raw: Mapping[str, Any], source: str) -> dict[str, ParamSpec]:
    """Dotted key -> `{type: float|int, low, high, log}` or `{choices: [...]}` (a bare list is
    the choices); errors name `source` and the key."""
    if not raw:
        raise ConfigError(f"{source}: the search space is empty")
    out: dict[str, ParamSpec] = {}
    for name, spec in _flatten(raw).items():
        where = f"{source}: {name}"
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected {{low, high[, log, type]}} or a list of choices")
        unknown = set(spec) - {"type", "low", "high", "log", "choices"}
        if unknown:
            raise ConfigError(f"{where}: unknown fields {sorted(unknown)}")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            out[name] = ParamSpec(name, "categorical", choices=tuple(choices))
            continue
        lo, hi = spec.get("low"), spec.get("high")
        if not isinstance(lo, int | float) or not isinstance(hi, int | float) or not lo < hi:
            raise ConfigError(f"{where}: expected numbers low < high, got low={lo!r} high={hi!r}")
        log = bool(spec.get("log", False))
        if log and lo <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0, got {lo!r}")
        kind = spec.get("type") or (
            "int" if isinstance(lo, int) and isinstance(hi, int) else "float"
        )
        if kind not in ("int", "float"):
            raise ConfigError(f"{where}: type must be 'int' or 'float', got {kind!r}")
        out[name] = ParamSpec(name, "int" if kind == "int" else "float", float(lo), float(hi), log)
    return out


RECURRENT_BATCH = {"training.batch_size": _int(2, 128)}
"""A recurrent learner's batch counts whole episodes, not steps: a person leaves tens of
training episodes (a simulated player 45 to 65), so 2 to 128 spans two episodes per step to
all of them (a batch at least the training set's size is every episode, the neuroevolution
default)."""


def default_space(method: str) -> dict[str, ParamSpec]:
    """The shipped space of `method`'s algorithm (`DEFAULT_SPACES`), fitted to what it trains
    on: a recurrent learner's batch in episodes (`RECURRENT_BATCH`); no batch for a method
    trained on the game's returns or against a discriminator (it has no minibatches of the
    person's steps, and its config refuses one)."""
    from .methods import method_spec

    spec = method_spec(method)
    if spec.kind == "dynamic":
        raise ConfigError(
            f"no default search space for {method!r} (its settings are in the dynamic section):"
            " give --space a YAML file"
        )
    raw = dict(DEFAULT_SPACES[spec.algorithm])
    if spec.objective != "person":
        del raw["training.batch_size"]
    elif spec.kind != "feedforward":
        raw |= RECURRENT_BATCH
    return parse_space(raw, f"default space of {method}")
