"""Experiment configurations: pydantic v2 models, method names, YAML files and dotted overrides.

Every model forbids unknown keys, so a typo in a YAML file or a `--set` override fails before
anything is submitted, with the dotted path of the bad key in the message.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pydantic
import yaml

__all__ = [
    "ALGORITHMS",
    "ENVIRONMENTS",
    "METHODS",
    "AdamConfig",
    "CMAESConfig",
    "ConfigError",
    "DataConfig",
    "ESConfig",
    "ExperimentConfig",
    "GAConfig",
    "ModelConfig",
    "OptimizerConfig",
    "SGDConfig",
    "TrainingConfig",
    "apply_overrides",
    "atomic_write_text",
    "format_validation_error",
    "parse_method",
    "read_yaml",
]

Algorithm = Literal["ga", "es", "cmaes", "sgd", "adam"]
ModelKind = Literal["feedforward", "reservoir", "trainable"]

ALGORITHMS: tuple[str, ...] = ("ga", "es", "cmaes", "sgd", "adam")
ENVIRONMENTS: tuple[str, ...] = ("cartpole", "mountaincar", "acrobot", "lunarlander")
# Suffix of a method name -> model kind. "recurrent" is the guide's name for a recurrent net whose
# recurrent weights are learned too (the "trainable" kind); "reservoir" keeps them fixed.
_MODEL_SUFFIXES: dict[str, ModelKind] = {
    "feedforward": "feedforward",
    "reservoir": "reservoir",
    "trainable": "trainable",
    "recurrent": "trainable",
}
METHODS: dict[str, tuple[str, str]] = {
    f"{algo}_{suffix}": (algo, kind)
    for algo in ALGORITHMS
    for suffix, kind in _MODEL_SUFFIXES.items()
}


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and the key."""


def parse_method(method: str) -> tuple[str, str]:
    """`"ga_feedforward"` -> `("ga", "feedforward")`; raises with the list of valid names."""
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown method {method!r}; expected one of {', '.join(sorted(METHODS))}"
        ) from None


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Which person's data, and how it is split (the split seed is not the training seed)."""

    dataset: Literal["cartpole", "mountaincar", "acrobot", "lunarlander"] = "cartpole"
    subject: str = "sim01"
    use_cl_info: bool = False
    holdout_pct: float = pydantic.Field(default=0.1, gt=0.0, lt=1.0)
    split_seed: int = 42


class ModelConfig(_Strict):
    """Architecture. `kind` defaults to the one named by the method."""

    kind: ModelKind | None = None
    hidden_size: int = pydantic.Field(default=50, ge=1)
    rank: int | None = pydantic.Field(default=1, ge=1)
    """Rank of the learned recurrent matrix for `trainable` (None = full matrix)."""


class GAConfig(_Strict):
    """Truncation selection of the best `selection_fraction`, one elite, then mutation with
    per-parameter sigmas starting at `sigma_init` (self-adapted with rate `sigma_noise` when
    `adaptive`)."""

    name: Literal["ga"] = "ga"
    population_size: int = pydantic.Field(default=50, ge=2)
    sigma_init: float = pydantic.Field(default=1e-2, gt=0)
    sigma_noise: float = pydantic.Field(default=1e-2, ge=0)
    selection_fraction: float = pydantic.Field(default=0.5, gt=0, lt=1)
    adaptive: bool = True


class ESConfig(_Strict):
    """The lab's simple ES: softmax-weighted recombination, then mutation of every member."""

    name: Literal["es"] = "es"
    population_size: int = pydantic.Field(default=50, ge=2)
    sigma_init: float = pydantic.Field(default=1e-2, gt=0)
    sigma_noise: float = pydantic.Field(default=1e-2, ge=0)
    adaptive: bool = True
    temperature: float = pydantic.Field(default=1.0, gt=0)


class CMAESConfig(_Strict):
    """CMA-ES; `sigma_init` is the initial step size (sigma0), parents are the best half."""

    name: Literal["cmaes"] = "cmaes"
    population_size: int = pydantic.Field(default=50, ge=2)
    sigma_init: float = pydantic.Field(default=1e-2, gt=0)


class SGDConfig(_Strict):
    name: Literal["sgd"] = "sgd"
    learning_rate: float = pydantic.Field(default=1e-2, gt=0)


class AdamConfig(_Strict):
    name: Literal["adam"] = "adam"
    learning_rate: float = pydantic.Field(default=1e-3, gt=0)


OptimizerConfig = Annotated[
    GAConfig | ESConfig | CMAESConfig | SGDConfig | AdamConfig,
    pydantic.Field(discriminator="name"),
]
_OPTIMIZER_CLASSES: dict[str, type[_Strict]] = {
    "ga": GAConfig,
    "es": ESConfig,
    "cmaes": CMAESConfig,
    "sgd": SGDConfig,
    "adam": AdamConfig,
}


class TrainingConfig(_Strict):
    """Budgets and cadences. Generation/step/epoch budgets are reproducible; time budgets are not.

    Neuroevolution stops at `max_generations` or `max_time`; gradient descent at `max_epochs`,
    `max_steps` or `max_time`, whichever comes first. Set a budget to null to drop it.

    `log_every` and `checkpoint_every` only change how often progress is logged and a checkpoint
    written, never the result, so they are excluded from the cache uid.
    """

    _exclude_from_cls_uid: ClassVar[tuple[str, ...]] = ("log_every", "checkpoint_every")

    max_generations: int | None = pydantic.Field(default=100, ge=1)
    max_steps: int | None = pydantic.Field(default=None, ge=1)
    max_epochs: int | None = pydantic.Field(default=20, ge=1)
    max_time: float | None = pydantic.Field(default=None, gt=0)
    eval_every: int = pydantic.Field(default=10, ge=1)
    """Test evaluation every N generations (neuroevolution) or optimizer steps (SGD/Adam)."""
    batch_size: int | None = pydantic.Field(default=None, ge=1)
    """Minibatch size (SGD: samples or episodes; NE: samples per fitness evaluation, None = all)."""
    behaviour_repeats: int = pydantic.Field(default=1, ge=1)
    """Matched-seed rollouts per held-out human episode."""
    log_every: int = pydantic.Field(default=1, ge=1)
    """Progress line every N generations (neuroevolution) or evaluations (SGD/Adam)."""
    checkpoint_every: int = pydantic.Field(default=50, ge=1)
    """Checkpoint every N generations / optimizer steps (and every few minutes)."""

    @pydantic.model_validator(mode="after")
    def _has_budget(self) -> TrainingConfig:
        if all(
            v is None
            for v in (self.max_generations, self.max_steps, self.max_epochs, self.max_time)
        ):
            raise ValueError(
                "no training budget: set one of max_generations, max_steps, max_epochs, max_time"
            )
        return self


_SCHEMA_CACHE: dict[type, dict[str, Any]] = {}


class ExperimentConfig(_Strict):
    """One experiment: a method trained on one person's data with one seed.

    `experiment_number` (a label), `device` and `num_threads` cannot change a result on CPU, so
    they are excluded from the cache uid: two configs that differ only there share a result.
    """

    _exclude_from_cls_uid: ClassVar[tuple[str, ...]] = (
        "experiment_number",
        "device",
        "num_threads",
    )

    method: str = "ga_feedforward"
    seed: int = 0
    experiment_number: int = 0
    device: str = "cpu"
    num_threads: int | None = pydantic.Field(default=None, ge=1)
    """torch intra-op threads inside the run (in the Slurm job too; restored afterwards when the
    run is in-process). None: torch's default (every core it sees). On CPU the result does not
    depend on it (a GA run gives the same bits with 1 and 2 threads); set 1 for many parallel
    jobs on one machine so they do not oversubscribe it."""
    # Instances (not default factories) as defaults: exca then drops a sub-config whose only
    # non-default fields are uid-excluded ones (e.g. training.log_every) from the uid.
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = GAConfig()
    training: TrainingConfig = TrainingConfig()

    @pydantic.model_validator(mode="before")
    @classmethod
    def _optimizer_from_method(cls, data: Any) -> Any:
        """Fill the optimizer's `name` from the method, so YAML files need not repeat it."""
        if not isinstance(data, Mapping):
            return data
        method = data.get("method")
        if not isinstance(method, str) or method not in METHODS:
            return data
        algo = METHODS[method][0]
        opt = data.get("optimizer")
        if opt is None:
            return {**data, "optimizer": {"name": algo}}
        if isinstance(opt, Mapping) and "name" not in opt:
            return {**data, "optimizer": {**opt, "name": algo}}
        return data

    @pydantic.field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        parse_method(v)
        return v

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        algo, kind = parse_method(self.method)
        if self.optimizer.name != algo:
            raise ValueError(
                f"optimizer.name={self.optimizer.name!r} does not match method {self.method!r} "
                f"(expected {algo!r})"
            )
        if self.model.kind is not None and self.model.kind != kind:
            raise ValueError(
                f"model.kind={self.model.kind!r} does not match method {self.method!r} "
                f"(expected {kind!r})"
            )
        return self

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """Cached per class: exca asks for it on every uid (to find union discriminators), and
        building it costs tens of milliseconds."""
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        if cls not in _SCHEMA_CACHE:
            _SCHEMA_CACHE[cls] = super().model_json_schema()
        return copy.deepcopy(_SCHEMA_CACHE[cls])

    @property
    def algorithm(self) -> str:
        return parse_method(self.method)[0]

    @property
    def model_kind(self) -> str:
        return parse_method(self.method)[1]


# ----------------------------------------------------------------------------------------------
# YAML and overrides


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` through a temp file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _expand_dotted(data: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}` (YAML files may use dotted keys, as exca writes them)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            value = _expand_dotted(value)
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"key {key!r} conflicts with a non-mapping value at {part!r}")
        last = parts[-1]
        if isinstance(node.get(last), dict) and isinstance(value, dict):
            node[last] = {**node[last], **value}
        else:
            node[last] = value
    return out


_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (dotted keys expanded); errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
    try:
        data = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping of config keys at top level, got {type(data).__name__}"
        )
    return _expand_dotted(data)


def _parse_value(text: str) -> Any:
    """Override values are YAML scalars: `64` -> int, `1e-3` -> float, `null` -> None."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and value.lower() in ("none",):
        return None
    # YAML 1.1 reads "1e-3" as a string; accept the usual float spellings.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides to a nested dict (a copy). Values are parsed as YAML."""
    out = _expand_dotted(dict(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. model.hidden_size=64")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r}: empty key")
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = _parse_value(raw)
    return out


def format_validation_error(exc: pydantic.ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (got value)`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<top level>"
        got = err.get("input")
        got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{source}: {loc}: {err['msg']}{got_txt}")
    return "\n".join(lines)


def optimizer_class(name: str) -> type[_Strict]:
    return _OPTIMIZER_CLASSES[name]
