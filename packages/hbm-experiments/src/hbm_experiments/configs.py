"""Experiment configurations: the pydantic v2 models of an experiment and its sections.

The sections live in their own modules (`optimizers`, `line_configs`; their base in
`config_base`), the method grammar in `methods`, YAML files and dotted overrides in
`yaml_io`; their names are re-exported here. Every model forbids unknown keys, so a typo in
a YAML file or a `--set` override fails before anything is submitted, naming the bad key.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, overload

import pydantic
from hbm_data import ENVIRONMENTS as _DATA_ENVIRONMENTS

from .config_base import SEED_LIMIT
from .config_base import StrictModel as _Strict
from .config_base import renamed as _renamed
from .files import atomic_write_text
from .line_configs import AdversarialConfig, DynamicConfig, EnvObjectiveConfig
from .method_defaults import lab_value, method_defaults
from .methods import (
    ALGORITHMS,
    METHODS,
    NE_ALGORITHMS,
    OBJECTIVES,
    ModelKind,
    Objective,
    method_objective,
    parse_method,
)
from .optimizers import (
    AdamConfig,
    CMAESConfig,
    ESConfig,
    GAConfig,
    OptimizerConfig,
    SGDConfig,
    optimizer_class,
)
from .vocabulary import RENAMED_0_1
from .yaml_io import ConfigError, apply_overrides, parse_value, read_yaml

__all__ = [
    "ALGORITHMS",
    "ENVIRONMENTS",
    "METHODS",
    "OBJECTIVES",
    "AdamConfig",
    "AdversarialConfig",
    "CMAESConfig",
    "ConfigError",
    "DataConfig",
    "DynamicConfig",
    "ESConfig",
    "EnvObjectiveConfig",
    "ExperimentConfig",
    "GAConfig",
    "ModelConfig",
    "OptimizerConfig",
    "SGDConfig",
    "TrainingConfig",
    "apply_overrides",
    "atomic_write_text",
    "format_validation_error",
    "method_objective",
    "optimizer_class",
    "parse_method",
    "parse_value",
    "read_yaml",
]

ENVIRONMENTS: tuple[str, ...] = tuple(_DATA_ENVIRONMENTS)
"""The games, from hbm-data's registry (one list for configs, CLI and demo)."""


def check_subject_value(value: Any) -> Any:
    """hbm-data's subject check (a name that fits a file name, or the path of an episode file
    that does not climb with `..`), where the config is made; a path is made absolute (a
    queued job may start in another folder)."""
    from hbm_data import check_subject
    from hbm_data.paths import is_path_subject

    subject = check_subject(value, allow_path=True)
    return str(Path(subject).expanduser().absolute()) if is_path_subject(subject) else subject


def _known_dataset(name: str) -> str:
    """Environment short names come from hbm-data's registry (`hbm_data.ENVIRONMENTS`)."""
    if name not in _DATA_ENVIRONMENTS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(ENVIRONMENTS)}")
    return name


Dataset = Annotated[str, pydantic.AfterValidator(_known_dataset)]


class DataConfig(_Strict):
    """How the person's data is split (the split seed is not the training seed). Which game
    and which person are the experiment's top-level `dataset` and `subject`."""

    use_cl_info: bool = False
    holdout: Literal["session", "source"] = "session"
    """What is held out for test: "session" draws `holdout_pct` of each session's episodes
    (hbm-data's rule); "source" keeps the split the recording's authors made (the sidecar's
    `source_split`, e.g. the Overcooked-AI study's train/test trials; `holdout_pct` unused).
    Data without a recorded split is refused, naming the subject."""
    holdout_pct: float = pydantic.Field(default=0.1, gt=0.0, lt=1.0)
    split_seed: int = pydantic.Field(default=42, ge=0, lt=SEED_LIMIT)
    content_hash: str | None = None
    """sha256 of the subject's episode file, filled from the file when an experiment is made:
    the data's content, not the subject's name, keys the cache (see `hbm_experiments.data`)."""
    max_train_episodes: int | None = pydantic.Field(default=None, ge=1)
    """Train on the person's first N training episodes only (in the order they were played);
    the held-out episodes stay the same, so rows of a data-size sweep compare on one test
    set. None: all of them."""
    validation_pct: float = pydantic.Field(default=0.1, ge=0.0, lt=1.0)
    """Validation episodes, per session, drawn from the training episodes by the holdout's
    rule (`max(1, int(n * pct))` of a session's n training episodes), never from test: what
    chooses (tuning, model selection) reads them, test only reports. 0: no validation split."""
    crossfit_folds: int | None = pydantic.Field(default=None, ge=2)
    """Cross-fitting: the person's episodes dealt into K folds per session
    (`hbm_data.splits.crossfit_folds`, drawn from `split_seed`); this experiment tests fold
    `crossfit_fold` and trains on the others (`holdout_pct` unused). `hbm crossfit` runs the K
    folds and pools every metric over all the person's episodes. None: one holdout."""
    crossfit_fold: int | None = pydantic.Field(default=None, ge=0)
    """The fold tested (0..crossfit_folds-1); set with `crossfit_folds`."""

    @pydantic.model_validator(mode="after")
    def _crossfit(self) -> DataConfig:
        if (self.crossfit_folds is None) != (self.crossfit_fold is None):
            raise ValueError("data.crossfit_folds and data.crossfit_fold: set both or neither")
        if self.crossfit_folds is not None and self.crossfit_fold is not None:
            if self.crossfit_fold >= self.crossfit_folds:
                raise ValueError(
                    f"data.crossfit_fold={self.crossfit_fold}: expected 0.."
                    f"{self.crossfit_folds - 1} (data.crossfit_folds={self.crossfit_folds})"
                )
            if self.holdout != "session":
                raise ValueError(
                    f"data.crossfit_folds with data.holdout={self.holdout!r}: cross-fitting "
                    "deals the episodes per session; use data.holdout: session"
                )
        return self


class ModelConfig(_Strict):
    """Architecture. `kind` defaults to the one named by the method. hbm-ne's populations and
    hbm-dl's models of the same config have the same layout and initial distribution
    (docs/interfaces.md), so GA and SGD start from the same kind of network."""

    kind: ModelKind | None = None
    hidden_size: int | None = pydantic.Field(default=None, ge=1)
    """Units of the hidden layer; None: the method's default (`method_defaults`)."""
    rank: int | None = pydantic.Field(default=1, ge=1)
    """Rank of the learned recurrent matrix for `trainable` (None = full matrix)."""
    init: Literal["normal", "uniform"] = "normal"
    """Initial weights and biases: "normal" N(0, 1/fan_in), "uniform" U(±1/√fan_in) — the same
    rule in hbm-ne and hbm-dl (their default is "normal")."""

    def build_population(
        self,
        input_size: int,
        output_size: int,
        population_size: int,
        *,
        kind: str,
        mutation: Mapping[str, Any],
        generator: Any,
        device: Any,
    ) -> Any:
        """An hbm-ne population of `population_size` networks of this architecture."""
        import hbm_ne

        common = {"init": self.init, "generator": generator, "device": device, **mutation}
        hidden = lab_value(self, "model", "hidden_size")
        if kind == "feedforward":
            return hbm_ne.BatchedFeedforward(
                input_size,
                output_size,
                population_size,
                hidden_sizes=(hidden,),
                **common,
            )
        return hbm_ne.BatchedRecurrent(
            input_size,
            output_size,
            population_size,
            hidden,
            kind=kind,
            rank=self.rank,
            **common,
        )

    def build_module(self, input_size: int, output_size: int, *, kind: str, generator: Any) -> Any:
        """One hbm-dl model of this architecture (same layout as an hbm-ne member)."""
        import hbm_dl

        h = lab_value(self, "model", "hidden_size")
        common = {"init": self.init, "generator": generator}
        if kind == "feedforward":
            return hbm_dl.FeedforwardMLP(input_size, h, output_size, **common)
        if kind == "reservoir":
            return hbm_dl.RecurrentMLPReservoir(input_size, h, output_size, **common)
        return hbm_dl.RecurrentMLPTrainable(input_size, h, output_size, rank=self.rank, **common)


NE_BUDGETS = ("max_generations", "max_samples", "max_optim_time")
SGD_BUDGETS = ("max_epochs", "max_steps", "max_samples", "max_optim_time")


class TrainingConfig(_Strict):
    """Budgets and cadences (the design guide's names).

    Neuroevolution stops at `max_generations` or `max_optim_time` (seconds, summed over resumed
    runs), gradient descent at `max_epochs`, `max_steps` or `max_optim_time`, whichever comes
    first; every method also at `max_samples`, the equal budget across learners. A budget left
    unset is no limit; at least one that the method uses must be set (`max_optim_time` alone
    is a pure time budget). Budgets the method does not use are dropped, so they never change
    its uid. Count budgets are reproducible, time budgets not.

    Cadences only change how often something is logged, evaluated or saved, never the trained
    model, so they are excluded from the cache uid: `log_every_seconds`, `checkpoint_every`,
    `loss_eval_interval_seconds`, `ckpt_and_behav_eval_interval_seconds`.
    """

    _exclude_from_cls_uid: ClassVar[tuple[str, ...]] = (
        "log_every_seconds",
        "checkpoint_every",
        "loss_eval_interval_seconds",
        "ckpt_and_behav_eval_interval_seconds",
    )

    max_generations: int | None = pydantic.Field(default=None, ge=1)
    max_steps: int | None = pydantic.Field(default=None, ge=1)
    max_epochs: int | None = pydantic.Field(default=None, ge=1)
    max_optim_time: float | None = pydantic.Field(default=None, gt=0)
    """Seconds of training, summed over every process of a resumed run."""
    max_samples: int | None = pydantic.Field(default=None, ge=1)
    """Samples seen, counted as the history's `samples_seen` (a generation over N samples × P
    members counts N·P, an SGD/Adam step over a batch its samples; for methods trained on
    the game, environment steps): the same budget for every learner, met to within one
    generation or step."""
    eval_every: int = pydantic.Field(default=10, ge=1)
    """Test evaluation every N generations (neuroevolution) or optimizer steps (SGD/Adam)."""
    loss_eval_interval_seconds: float | None = pydantic.Field(default=None, gt=0)
    """Also evaluate when this many seconds passed since the last evaluation (the lab's)."""
    batch_size: int | None = pydantic.Field(default=None, ge=1)
    """Minibatch size (SGD: samples or episodes; NE: samples per fitness evaluation). None:
    the method's default (`method_defaults`), else 32 for SGD/Adam and every sample for
    neuroevolution; a batch at least the training set's size is every sample too."""
    behaviour_repeats: int = pydantic.Field(default=5, ge=1)
    """Matched-seed rollouts per held-out human episode: the one recorded play that gives the
    returns and every human-likeness test. Several per seed (default 5, `humanlike.REPEATS`):
    a person leaves 4–6 held-out episodes, too few candidates for the two-sample tests to
    decide with one rollout each."""
    behaviour_partner: Literal["recorded", "proxy"] = "recorded"
    """Two-player games (the Overcooked kitchens): who plays the person's partner in the
    behaviour rollouts, "recorded" (the recorded partner's actions, open loop) or "proxy" (a
    human proxy behaviour-cloned on the study's training trials, closed loop; needs the
    kitchen's pooled `oc-all` file). The result's `behaviour.partner` says which."""
    state_mode: Literal["episode", "session", "generation"] = "episode"
    """Recurrent neuroevolution: where a member's hidden state starts — zero at each episode,
    carried through the episodes of a session, or carried across generations (hbm-ne's
    `train_supervised(state_mode=...)`). Gradient descent always starts each episode at zero."""
    log_every_seconds: float = pydantic.Field(default=30.0, gt=0)
    """Off a terminal (Slurm logs, CI, pipes): a progress line at most this often, plus one at
    each evaluation; on a terminal a live bar instead."""
    checkpoint_every: int = pydantic.Field(default=50, ge=1)
    """Checkpoint every N generations / optimizer steps."""
    ckpt_and_behav_eval_interval_seconds: float = pydantic.Field(default=300.0, gt=0)
    """Also checkpoint when this many seconds passed since the last checkpoint. The design
    guide's name (the lab's code also evaluated behaviour on this clock); here it sets only the
    checkpoint cadence: behaviour is evaluated once, on the final model."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "log_every" in data:  # 0.1: a line every N calls
            warnings.warn(
                "training.log_every is deprecated and ignored: progress is a live bar on a "
                "terminal, else a line every training.log_every_seconds (30 s)",
                DeprecationWarning,
                stacklevel=5,
            )
            data = {k: v for k, v in data.items() if k != "log_every"}
        return _renamed(data, RENAMED_0_1["training"], "training.")

    def budgets(self, algorithm: str) -> tuple[str, ...]:
        """The budget fields `algorithm` uses."""
        return NE_BUDGETS if algorithm in NE_ALGORITHMS else SGD_BUDGETS


_SCHEMA_CACHE: dict[type, dict[str, Any]] = {}
RESOLVED_SECTIONS = ("model", "optimizer", "training")
"""The config sections with fields whose default depends on the method (`method_defaults`)."""


class ExperimentConfig(_Strict):
    """One experiment: a method trained on one person's data with one seed (the design
    guide's shape: `dataset`, `method`, `subject`, `seed` at the top level).

    `experiment_number` (a label), `device` and `num_threads` cannot change a result on CPU, so
    they are excluded from the cache uid: two configs that differ only there share a result.
    """

    _exclude_from_cls_uid: ClassVar[tuple[str, ...]] = (
        "experiment_number",
        "device",
        "num_threads",
    )

    experiment_number: int = 0
    dataset: Dataset = "cartpole"
    method: str = "ga_feedforward"
    subject: str = "sim01"
    """The person (or simulated player: `sim01`…); their file is
    `<subject>_data_<dataset>.json` in the data folder. The guide's default `sub01` is a real
    person whose recording is not shipped, so hbm's default is a simulated player."""
    seed: int = pydantic.Field(default=0, ge=0, lt=SEED_LIMIT)
    device: str = "cpu"
    num_threads: int | None = pydantic.Field(default=None, ge=1)
    """torch intra-op threads inside the run (in the Slurm job too; restored afterwards when the
    run is in-process). None: torch's default (every core it sees). On CPU the result does not
    depend on it (a GA run gives the same bits with 1 and 2 threads); set 1 for many parallel
    jobs on one machine so they do not oversubscribe it."""
    # Instances (not default factories) as defaults: exca then drops a sub-config whose only
    # non-default fields are uid-excluded ones (e.g. training.checkpoint_every) from the uid.
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = GAConfig()
    training: TrainingConfig = TrainingConfig()
    # The other research lines' settings: None (out of the uid) except for their own methods.
    dynamic: DynamicConfig | None = None
    """`ga_dynamic` only: the evolving-topology networks (default `DynamicConfig()`)."""
    environment: EnvObjectiveConfig | None = None
    """`*_env_*` methods only: how the game's returns are earned (default
    `EnvObjectiveConfig()`)."""
    adversarial: AdversarialConfig | None = None
    """`*_adversarial_*` methods only: the discriminator (default `AdversarialConfig()`)."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _guide_shape(cls, data: Any) -> Any:
        """Fill the optimizer's `name` from the method (YAML files need not repeat it), and move
        0.1's `data.dataset` / `data.subject` to the top level (deprecated)."""
        if not isinstance(data, Mapping):
            return data
        sub = data.get("data")
        if isinstance(sub, Mapping) and any(k in sub for k in RENAMED_0_1["data"]):
            moved = {k: sub[k] for k in RENAMED_0_1["data"] if k in sub}
            for key in moved:
                if key in data:
                    raise ValueError(f"{key} and data.{key} are the same field: give only {key}")
                warnings.warn(
                    f"data.{key} is deprecated: write {key} at the top level (the design guide's"
                    " shape)",
                    DeprecationWarning,
                    stacklevel=5,
                )
            rest = {k: v for k, v in sub.items() if k not in moved}
            data = {**data, **moved, "data": rest}
        method = data.get("method", cls.model_fields["method"].default)
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

    @pydantic.field_validator("subject", mode="before")
    @classmethod
    def _subject_is_a_name(cls, v: Any) -> Any:
        """Subject ids are names: `42` (a YAML int) is subject "42". Leading zeros are kept by
        the YAML reader (`007` stays "007"); a bool is a mistake, not a name."""
        if isinstance(v, bool):
            raise ValueError(f"subject must be a name like 'sim01' or '007', got {v!r}")
        return check_subject_value(str(v) if isinstance(v, int) else v)

    @pydantic.field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        """A torch device string ("cpu", "cuda", "cuda:1", "mps"); checked here because the
        device is not in the uid, so a run that fails on a bad name must not get that far."""
        import torch

        try:
            torch.device(v)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"not a torch device: {v!r} (expected e.g. 'cpu', 'cuda', 'cuda:0'): {exc}"
            ) from None
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
        t = self.training
        used = t.budgets(algo)
        if all(getattr(t, b) is None for b in used):
            raise ValueError(
                f"training: no budget for method {self.method!r}: set one of "
                f"{', '.join('training.' + b for b in used)} (max_optim_time alone is a pure "
                "time budget, in seconds)"
            )
        if t.state_mode != "episode" and (algo not in NE_ALGORITHMS or kind == "feedforward"):
            raise ValueError(
                f"training.state_mode={t.state_mode!r} applies to recurrent neuroevolution "
                f"only, not to method {self.method!r}"
            )
        if t.behaviour_partner != "recorded" and not self.dataset.startswith("overcooked-"):
            raise ValueError(
                f"training.behaviour_partner={t.behaviour_partner!r}: {self.dataset} is played "
                "alone; a partner applies to the two-player Overcooked kitchens only"
            )
        self._check_lines()
        unused = {
            b: None
            for b in ("max_generations", "max_steps", "max_epochs")
            if b not in used and getattr(t, b) is not None
        }
        if unused:  # e.g. a shared base config: a budget the method ignores stays out of its uid
            self.training = t.model_copy(update=unused)
        return self

    def method_defaults(self) -> dict[str, Any]:
        """The method's defaults (`method_defaults`, dotted keys) of the fields left None."""
        unset = {
            f"{name}.{field}"
            for name in RESOLVED_SECTIONS
            for field in type(getattr(self, name)).model_fields
            if getattr(getattr(self, name), field) is None
        }
        return method_defaults(
            self.method,
            kind=self.model_kind,
            applies=unset,
            variant=getattr(self.optimizer, "variant", None),
        )

    @overload
    def resolved(self, section: Literal["model"]) -> ModelConfig: ...
    @overload
    def resolved(self, section: Literal["optimizer"]) -> OptimizerConfig: ...
    @overload
    def resolved(self, section: Literal["training"]) -> TrainingConfig: ...
    def resolved(self, section: str) -> Any:
        """The `section` ("model", "optimizer" or "training") as the method runs it: a field
        left None holds the method's default. The config itself keeps the None, so a sweep
        over methods gives each its own defaults (their meaning is pinned by the cache
        version: `EXPERIMENT_VERSION`)."""
        if section not in RESOLVED_SECTIONS:
            raise ValueError(f"section {section!r}: expected one of {RESOLVED_SECTIONS}")
        prefix = section + "."
        update = {
            k.removeprefix(prefix): v
            for k, v in self.method_defaults().items()
            if k.startswith(prefix)
        }
        current = getattr(self, section)
        return current.model_copy(update=update) if update else current

    def _check_lines(self) -> None:
        """The research lines' own sub-configs, only on their methods; what does not apply to
        them refused, naming the field. A sub-config equal to its defaults is stored as None,
        so writing `dynamic: {}` is the same config (and uid) as leaving it out."""
        objective, kind = self.objective, self.model_kind
        own = {
            "dynamic": kind == "dynamic",
            "environment": objective == "returns",
            "adversarial": objective == "adversarial",
        }
        defaults = {
            "dynamic": DynamicConfig(),
            "environment": EnvObjectiveConfig(),
            "adversarial": AdversarialConfig(),
        }
        for name, allowed in own.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not allowed:
                owners = sorted(m for m in METHODS if _owns(m, name))
                raise ValueError(
                    f"{name}: applies to the methods {', '.join(owners)} only, not to "
                    f"{self.method!r}; remove {name} from the config"
                )
            if value == defaults[name]:
                setattr(self, name, None)
        t = self.training
        if (objective != "person" or kind == "dynamic") and t.state_mode != "episode":
            raise ValueError(
                f"training.state_mode={t.state_mode!r} does not apply to method "
                f"{self.method!r} (every episode starts from a zero state)"
            )
        if objective != "person":
            from hbm_data import get_env_spec

            if not get_env_spec(self.dataset).gymnasium:
                raise ValueError(
                    f"method {self.method!r} is trained on {objective}, which needs the game "
                    f"played, and {self.dataset} exists only as recordings (no game hbm can "
                    "play); use a method trained on the person (e.g. ga_feedforward)"
                )
            if self.data.use_cl_info:
                raise ValueError(
                    f"data.use_cl_info=True: method {self.method!r} plays the game itself, and "
                    "environments give raw observations (no session/run CL features)"
                )
            if t.batch_size is not None:
                raise ValueError(
                    f"training.batch_size does not apply to method {self.method!r} (it is "
                    f"trained on {objective}, not on minibatches of the person's steps)"
                )
        if kind == "dynamic":
            set_model = sorted(set(self.model.model_dump(exclude_defaults=True)) - {"kind"})
            if set_model:
                raise ValueError(
                    f"model.{set_model[0]} does not apply to method {self.method!r} (its "
                    "topology is evolved: see the dynamic section)"
                )
            opt = self.optimizer
            assert isinstance(opt, GAConfig)
            set_opt = sorted(set(opt.model_dump(exclude_defaults=True)) - {"population_size"})
            set_opt = [k for k in set_opt if k not in ("name", "selection_fraction")]
            if set_opt:
                raise ValueError(
                    f"optimizer.{set_opt[0]} does not apply to method {self.method!r} (its "
                    "mutation settings are in the dynamic section)"
                )
        adv = self.adversarial or AdversarialConfig()
        spec = _DATA_ENVIRONMENTS[self.dataset]
        bad = [i for i in adv.hide_elements if not 0 <= i < spec.obs_size]
        if bad:
            raise ValueError(
                f"adversarial.hide_elements {bad}: {self.dataset} observations have indices "
                f"0..{spec.obs_size - 1}"
            )
        cap = adv.max_episode_steps
        if cap is not None and cap > spec.max_episode_steps:
            raise ValueError(
                f"adversarial.max_episode_steps={cap} exceeds {self.dataset}'s limit of "
                f"{spec.max_episode_steps} steps"
            )
        env = self.environment or EnvObjectiveConfig()
        if objective == "returns":
            if env.mem_transfer and kind == "feedforward":
                raise ValueError(
                    f"environment.mem_transfer=True needs a recurrent method, not "
                    f"{self.method!r} (a feedforward net has no hidden state to carry)"
                )
            if env.env_transfer and self.dataset == "lunarlander":
                raise ValueError(
                    "environment.env_transfer=True is not supported for lunarlander (its Box2D "
                    "state cannot be saved and restored); use mem_transfer or fit_transfer"
                )

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

    @property
    def objective(self) -> Objective:
        """What the method is trained on: "person", "returns" or "adversarial"."""
        return method_objective(self.method)


def _owns(method: str, section: str) -> bool:
    """Whether `method` takes the top-level sub-config `section`."""
    if section == "dynamic":
        return METHODS[method][1] == "dynamic"
    return OBJECTIVES[method] == {"environment": "returns", "adversarial": "adversarial"}[section]


def format_validation_error(exc: pydantic.ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (got value)`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<top level>"
        got = err.get("input")
        got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{source}: {loc}: {err['msg']}{got_txt}")
    return "\n".join(lines)
