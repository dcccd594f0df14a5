"""Cached experiment tasks (exca `TaskInfra`): data preprocessing and GA/ES/CMA-ES/SGD training.

Design (see `exca-notes.md` in the reference material for why each choice):

- The cache root comes from `HBM_CACHE` (default `./results/exca_cache`) and is injected by a
  `model_validator(mode="before")`, so `infra={"cluster": "auto"}` validates without a folder.
- `run()` is decorated once, on `Experiment`; subclasses override the `_train` hook. Each subclass
  gets its own cache namespace `<folder>/hbm_experiments.tasks.<Class>.run,<version>/<uid>/`.
- Results are small (metrics, histories, file names). The trained model (`model.pt`), the
  training checkpoint (`checkpoint.pt`, resumed when a job restarts) and the traceback of a failed
  run (`error.txt`) are files in the experiment's uid folder, with `code.txt`, the fingerprint
  of the sources that started the training (a resume with other code logs a warning).

Version rule: bump `EXPERIMENT_VERSION` whenever the same config would give a different result:
an algorithm or evaluation change or bug fix in any hbm package, a changed field default, or a
changed result layout. Adding a field whose default reproduces the old behaviour needs no bump.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pydantic
import torch

from .configs import (
    AdamConfig,
    CMAESConfig,
    ConfigError,
    ESConfig,
    ExperimentConfig,
    GAConfig,
    OptimizerConfig,
    SGDConfig,
    apply_overrides,
    format_validation_error,
    read_yaml,
)
from .data import DataPreprocessingTask, content_hash, data_dir_setting
from .files import (
    CHECKPOINT_FILE,
    ERROR_FILE,
    MODEL_FILE,
    RESULT_FILE,
    atomic_save,
    atomic_write_text,
)
from .infra import ExperimentInfra, cache_root, with_default_folder

__all__ = [
    "EXPERIMENT_CLASSES",
    "EXPERIMENT_VERSION",
    "CMAESExperiment",
    "DataPreprocessingTask",
    "ESExperiment",
    "Experiment",
    "GAExperiment",
    "SGDExperiment",
    "TrainOutput",
    "cache_root",
    "experiment_class",
    "load_experiment_config",
    "make_experiment",
    "save_experiment_config",
]

logger = logging.getLogger(__name__)

EXPERIMENT_VERSION = "2"
CODE_FILE = "code.txt"
_CODE_PACKAGES = ("hbm_data", "hbm_ne", "hbm_dl", "hbm_experiments")


def code_fingerprint() -> str:
    """sha256 of the hbm packages' Python sources and the torch/numpy versions.

    The packages are usually installed editable, so a job restarted after a requeue imports the
    sources as they are *then*; `Experiment.run` compares this with the fingerprint stored when
    training started and warns when a resume runs other code than the start did.
    """
    import hashlib
    import importlib

    import numpy as np

    digest = hashlib.sha256(f"torch {torch.__version__} numpy {np.__version__}".encode())
    for name in _CODE_PACKAGES:
        module = importlib.import_module(name)
        if module.__file__ is None:
            continue
        root = Path(module.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _check_code(folder: Path) -> None:
    """Store the code fingerprint when training starts; warn when a resume runs other code."""
    code = code_fingerprint()
    stored = folder / CODE_FILE
    if not (folder / CHECKPOINT_FILE).exists():
        atomic_write_text(stored, code + "\n")
        return
    before = stored.read_text().strip() if stored.exists() else None
    if before is not None and before != code:
        logger.warning(
            "%s: resuming from %s with changed hbm sources (code %s; training started with %s): "
            "the result mixes two code versions; delete the checkpoint and rerun for a clean one",
            folder,
            CHECKPOINT_FILE,
            code,
            before,
        )


# ----------------------------------------------------------------------------------------------
# Experiments


class TrainOutput(NamedTuple):
    """What a `_train` hook returns: the trained policy and its history rows."""

    policy: torch.nn.Module
    history: list[dict[str, Any]]


class Experiment(ExperimentConfig):
    """Base of the cached experiment tasks; use a subclass (or `make_experiment`).

    Subclass to change how a method trains: override `_train` (never `run`, which exca
    caches), and set `infra_version = "2"` when the subclass's results differ from its
    parent's for the same config (the guide's §3.3 redeclared infra cannot work on exca 0.6:
    see docs/guide-departures.md).
    """

    _exclude_from_cls_uid: ClassVar[tuple[str, ...]] = (
        *ExperimentConfig._exclude_from_cls_uid,
        "max_requeues",
    )
    _algorithms: ClassVar[tuple[str, ...]] = ()
    infra_version: ClassVar[str] = EXPERIMENT_VERSION
    """The cache version of this class's results (exca's `infra.version`; in the cache path)."""
    # srun: Slurm's time-limit warning (`slurm.requeue_infra`) reaches job steps only
    infra: ExperimentInfra = ExperimentInfra(version=EXPERIMENT_VERSION, slurm_use_srun=True)
    max_requeues: int = pydantic.Field(default=10, ge=0)
    """Times a Slurm job that reaches its time limit is requeued (resuming its checkpoint)
    before it fails; the guide's `infra.max_num_timeout` sets it."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_folder(cls, data: Any) -> Any:
        data = with_default_folder(data)
        if not isinstance(data, Mapping) or not isinstance(data.get("infra") or {}, Mapping):
            return data
        infra = dict(data.get("infra") or {})
        if "max_num_timeout" in infra:  # the guide's name; exca 0.6 has no such field
            if "max_requeues" in data:
                raise ValueError("infra.max_num_timeout and max_requeues: give only max_requeues")
            data = {**data, "max_requeues": infra.pop("max_num_timeout"), "infra": infra}
        if cls.infra_version != EXPERIMENT_VERSION and "version" not in infra:
            data = {**data, "infra": {**infra, "version": cls.infra_version}}
        return data

    @pydantic.model_validator(mode="after")
    def _data_content(self) -> Experiment:
        """Key the experiment by the episode file's content (the data module says why)."""
        if self.data.content_hash is None:
            digest = content_hash(self.dataset, self.subject, data_dir_setting())
            # a copy: the default DataConfig instance is shared by every experiment
            self.data = self.data.model_copy(update={"content_hash": digest})
        return self

    @pydantic.model_validator(mode="after")
    def _algorithm_of_class(self) -> Experiment:
        if self._algorithms and self.algorithm not in self._algorithms:
            raise ValueError(
                f"method {self.method!r} is not run by {type(self).__name__} "
                f"(it runs {', '.join(self._algorithms)}); use "
                f"{experiment_class(self.method).__name__} or make_experiment()"
            )
        return self

    @infra.apply
    def run(self) -> dict[str, Any]:
        """Train, evaluate against the person, save the model; cached by uid."""
        folder = self.infra.uid_folder(create=True)
        assert folder is not None  # the folder is always injected
        (folder / RESULT_FILE).unlink(missing_ok=True)  # a forced rerun must not look finished
        self.infra.write_configs_now()  # `hbm status` lists a run while it goes, or if killed
        self.infra.write_run_context(folder)
        from .slurm import requeue_on_timeout  # no-op outside a Slurm job

        try:
            # near the time limit (in data loading too): requeue, resume from the checkpoint
            with requeue_on_timeout(max_requeues=self.max_requeues):
                result = self._run_in(folder)
        except Exception:
            atomic_write_text(folder / ERROR_FILE, traceback.format_exc())
            logger.exception("experiment %s failed", self.infra.uid())
            raise
        (folder / ERROR_FILE).unlink(missing_ok=True)
        atomic_write_text(folder / RESULT_FILE, json.dumps(result))
        return result

    # -- hooks ---------------------------------------------------------------------------------

    def _train(self, data: Any, checkpoint_path: Path, device: torch.device) -> TrainOutput:
        raise NotImplementedError(f"{type(self).__name__} does not define _train")

    # -- shared body ---------------------------------------------------------------------------

    def _episode_splits(
        self, episode_data: Any, data: Any, device: torch.device
    ) -> tuple[Any, Any]:
        """Train and test sets as `episode_data` (hbm-ne's or hbm-dl's `EpisodeData`, same
        `from_arrays`): recurrent models get whole episodes, feedforward ones a pool of steps."""
        meta = data.metadata
        recurrent = self.model_kind != "feedforward"

        def split(obs: Any, actions: Any, lengths: list[int]) -> Any:
            return episode_data.from_arrays(
                obs, actions, lengths if recurrent else None, device=device
            )

        return (
            split(data.train_obs, data.train_act, meta.train_episode_lengths),
            split(data.test_obs, data.test_act, meta.test_episode_lengths),
        )

    def data_task(self) -> DataPreprocessingTask:
        """The cached data this experiment trains on; a retry or a forced run of the
        experiment retries a failed data task too (its uid is the file's content)."""
        d = self.data
        mode = "retry" if self.infra.mode in ("retry", "force") else "cached"
        return DataPreprocessingTask(
            dataset=self.dataset,
            subject=self.subject,
            use_cl_info=d.use_cl_info,
            holdout_pct=d.holdout_pct,
            split_seed=d.split_seed,
            content_hash=d.content_hash,
            data_dir=data_dir_setting(),
            infra={"folder": self.infra.folder, "mode": mode},  # type: ignore[arg-type]
        )

    def _progress(self, unit: str, budget: int | None) -> Callable[[Any], None]:
        """A training callback that logs every `training.log_every`-th call: where the run is,
        its loss, and the time left under a time budget. Accepts hbm-ne `Progress` objects and
        hbm-dl history rows."""
        every = self.training.log_every
        max_time = self.training.max_optim_time
        calls = [0]
        name = f"{self.method} {self.dataset} seed={self.seed}"

        def report(progress: Any) -> None:
            calls[0] += 1
            if calls[0] % every:
                return
            row = progress if isinstance(progress, Mapping) else vars(progress)
            position = row.get(unit, calls[0])
            if isinstance(position, float):
                position = round(position, 2)
            loss = row.get("best_fitness", row.get("train_loss"))
            elapsed = float(row.get("elapsed", 0.0))
            if max_time:
                left = f", {max(0.0, max_time - elapsed):.0f}s left"
            elif budget and isinstance(position, int | float) and position > 0:
                left = f", ~{elapsed * max(0.0, budget - position) / position:.0f}s left"
            else:
                left = ""
            of = f"/{budget}" if budget else ""
            evaluation = row.get("evaluation") or row
            logger.info(
                "%s: %s %s%s loss %s test CE %s (%.1fs%s)",
                name,
                unit,
                position,
                of,
                _fmt(loss),
                _fmt(evaluation.get("test_ce")),
                elapsed,
                left,
            )

        return report

    def _run_in(self, folder: Path) -> dict[str, Any]:
        if self.num_threads is None:
            return self._run_with_threads(folder)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self._run_with_threads(folder)
        finally:  # an in-process run must not change its caller's thread count
            torch.set_num_threads(threads)

    def _run_with_threads(self, folder: Path) -> dict[str, Any]:
        from .evaluation import evaluate_policy, model_spec

        device = torch.device(self.device)
        t0 = time.perf_counter()
        data = self.data_task().load()
        _check_code(folder)
        trained = self._train(data, folder / CHECKPOINT_FILE, device)
        train_time = time.perf_counter() - t0
        policy = trained.policy.to(device).eval()
        spec = model_spec(policy, self.model_kind, self.model.rank)
        state = {k: v.cpu() for k, v in policy.state_dict().items()}
        atomic_save(
            folder / MODEL_FILE, lambda f: torch.save({"spec": spec, "state_dict": state}, f)
        )
        evaluation = evaluate_policy(
            policy,
            data,
            seed=self.seed,
            repeats=self.training.behaviour_repeats,
            device=device,
        )
        meta = data.metadata
        return {
            "method": self.method,
            "algorithm": self.algorithm,
            "model_kind": self.model_kind,
            "dataset": meta.env_name,
            "subject": meta.subject,
            "simulated": bool(meta.simulated),
            "data_content_hash": meta.content_hash,
            "use_cl_info": bool(meta.use_cl_info),
            "seed": self.seed,
            "num_params": int(sum(p.numel() for p in policy.parameters())),
            "train_time": train_time,
            "history": _jsonable(trained.history),
            "metrics": evaluation["metrics"],
            "behaviour": evaluation["behaviour"],
            "model_file": MODEL_FILE,
        }


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, int | float) else "-"


def _jsonable(obj: Any) -> Any:
    """History rows may hold tensors or numpy scalars; keep plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


class _NEExperiment(Experiment):
    """Neuroevolution (hbm-ne): a batched population trained by GA, ES or CMA-ES."""

    def _train(self, data: Any, checkpoint_path: Path, device: torch.device) -> TrainOutput:
        import hbm_ne

        meta = data.metadata
        opt = self.optimizer
        assert isinstance(opt, GAConfig | ESConfig | CMAESConfig)
        gen = torch.Generator(device=device).manual_seed(self.seed)
        mutation: dict[str, Any] = {"generator": gen}
        if isinstance(opt, GAConfig | ESConfig):
            mutation |= {
                "sigma_init": opt.adaptive_sigma_init,
                "adaptive": opt.adaptive,
                "tau": opt.adaptive_sigma_noise,
            }
        else:
            mutation["adaptive"] = False  # CMA-ES owns the step size
        pop: Any
        if self.model_kind == "feedforward":
            pop = hbm_ne.BatchedFeedforward(
                meta.input_size,
                meta.num_actions,
                opt.population_size,
                hidden_sizes=(self.model.hidden_size,),
                device=device,
                **mutation,
            )
        else:
            pop = hbm_ne.BatchedRecurrent(
                meta.input_size,
                meta.num_actions,
                opt.population_size,
                self.model.hidden_size,
                kind=self.model_kind,
                rank=self.model.rank,
                device=device,
                **mutation,
            )
        algorithm: Any
        if isinstance(opt, GAConfig):
            algorithm = hbm_ne.GA(pop, survival=opt.selection_fraction, generator=gen)
        elif isinstance(opt, ESConfig):
            algorithm = hbm_ne.ES(pop, temperature=opt.temperature, generator=gen)
        else:
            algorithm = hbm_ne.CMAES(pop, sigma0=opt.sigma0, generator=gen)
        train, test = self._episode_splits(hbm_ne.EpisodeData, data, device)
        t = self.training
        result = hbm_ne.train_supervised(
            pop,
            train,
            test,
            algorithm,
            max_generations=t.max_generations,
            max_time=t.max_optim_time,
            eval_every=t.eval_every,
            batch_size=t.batch_size,
            checkpoint_path=checkpoint_path,
            checkpoint_every=t.checkpoint_every,
            callbacks=(self._progress("generation", t.max_generations),),
            seed=self.seed,
            device=device,
        )
        if result.best is None:
            raise RuntimeError("train_supervised returned no best member")
        return TrainOutput(result.best, list(result.history))


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


class SGDExperiment(Experiment):
    """Gradient descent (SGD or Adam) on one hbm-dl model."""

    _algorithms: ClassVar[tuple[str, ...]] = ("sgd", "adam")
    method: str = "sgd_feedforward"
    optimizer: OptimizerConfig = SGDConfig()

    def _train(self, data: Any, checkpoint_path: Path, device: torch.device) -> TrainOutput:
        import hbm_dl

        meta = data.metadata
        h = self.model.hidden_size
        gen = torch.Generator().manual_seed(self.seed)
        model: torch.nn.Module
        if self.model_kind == "feedforward":
            model = hbm_dl.FeedforwardMLP(meta.input_size, h, meta.num_actions, generator=gen)
        elif self.model_kind == "reservoir":
            model = hbm_dl.RecurrentMLPReservoir(
                meta.input_size, h, meta.num_actions, generator=gen
            )
        else:
            model = hbm_dl.RecurrentMLPTrainable(
                meta.input_size, h, meta.num_actions, rank=self.model.rank, generator=gen
            )
        train, test = self._episode_splits(hbm_dl.EpisodeData, data, device)
        t = self.training
        assert isinstance(self.optimizer, SGDConfig | AdamConfig)
        result = hbm_dl.optimize_sgd(
            model,
            train,
            test,
            optimizer=self.optimizer.name,
            learning_rate=self.optimizer.learning_rate,
            batch_size=t.batch_size or 32,
            max_epochs=t.max_epochs,
            max_steps=t.max_steps,
            max_time=t.max_optim_time,
            eval_every=t.eval_every,
            checkpoint_path=checkpoint_path,
            checkpoint_every_steps=t.checkpoint_every,
            seed=self.seed,
            device=device,
            callbacks=(
                self._progress("step", t.max_steps)
                if t.max_steps
                else self._progress("epoch", t.max_epochs),
            ),
        )
        return TrainOutput(result.model, list(result.history))


EXPERIMENT_CLASSES: dict[str, type[Experiment]] = {
    "ga": GAExperiment,
    "es": ESExperiment,
    "cmaes": CMAESExperiment,
    "sgd": SGDExperiment,
    "adam": SGDExperiment,
}


def experiment_class(method: str) -> type[Experiment]:
    """The task class that runs `method` (e.g. `sgd_reservoir` -> `SGDExperiment`)."""
    from .configs import parse_method

    return EXPERIMENT_CLASSES[parse_method(method)[0]]


def make_experiment(
    config: Mapping[str, Any] | ExperimentConfig,
    *,
    source: str = "config",
    cls: type[Experiment] | None = None,
    **infra: Any,
) -> Experiment:
    """Build the task for a config dict; `infra` entries (cluster, mode, ...) are merged in.

    The class is `cls`, else the class of `config` when it is a task, else the one that runs
    its method. Validation errors become a `ConfigError` naming `source` and every bad key.
    """
    if isinstance(config, ExperimentConfig):
        if cls is None and isinstance(config, Experiment):
            cls = type(config)
        data = experiment_to_dict(config)
        if isinstance(config, Experiment):
            data["infra"] = _set_infra(config)
    else:
        data = dict(config)
    if cls is None:
        try:
            cls = experiment_class(str(data.get("method", "ga_feedforward")))
        except ValueError as exc:
            raise ConfigError(f"{source}: method: {exc}") from None
    if infra:
        data["infra"] = {**dict(data.get("infra") or {}), **infra}
    try:
        return cls(**data)
    except pydantic.ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def _set_infra(exp: Experiment) -> dict[str, Any]:
    return {k: getattr(exp.infra, k) for k in exp.infra.model_fields_set}


def load_experiment_config(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), **infra: Any
) -> Experiment:
    """Read a YAML config (optionally with an `infra:` block), apply `key=value` overrides."""
    data = apply_overrides(read_yaml(path), overrides)
    return make_experiment(data, source=str(path), **infra)


def experiment_to_dict(exp: ExperimentConfig) -> dict[str, Any]:
    """The config as plain data (no infra): what `save_experiment_config` writes."""
    return exp.model_dump(mode="json", exclude={"infra"})


def save_experiment_config(exp: ExperimentConfig, path: str | Path) -> Path:
    """Write the full config (every field, no infra) as YAML, atomically."""
    import yaml

    return atomic_write_text(path, yaml.safe_dump(experiment_to_dict(exp), sort_keys=False))


# Re-exported for typing convenience.
_ = GAConfig
