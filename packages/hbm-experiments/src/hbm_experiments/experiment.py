"""The base of the cached experiment tasks (exca `TaskInfra`): run, lock, fingerprint, train,
evaluate, save.

Design:

- The cache root comes from `HBM_CACHE` (default `./results/exca_cache`) and is injected by a
  `model_validator(mode="before")`, so `infra={"cluster": "auto"}` validates without a folder.
- `run()` is decorated once, on `Experiment`; subclasses override the `_train` hook. Each subclass
  gets its own cache namespace `<folder>/hbm_experiments.tasks.<Class>.run,<version>/<uid>/`.
- Results are small (metrics, histories, file names). The trained model (`model.pt`), the
  training checkpoint (`checkpoint.pt`, resumed when a job restarts) and the traceback of a failed
  run (`error.txt`) are files in the experiment's uid folder, with `code.txt`, the fingerprint
  of the sources that started the training (a resume with other code logs a warning).

Version rule: bump `EXPERIMENT_VERSION` whenever the same config would give a different result:
an algorithm or evaluation change or bug fix in any hbm package, a changed field default or
method default (`method_defaults`), or a changed result layout. Adding a field whose default
reproduces the old behaviour needs no bump.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pydantic
import torch

from .code_version import check_code
from .configs import ExperimentConfig
from .data import (
    DataPreprocessingTask,
    HumanlikeReferences,
    check_recorded_split,
    content_hash,
    data_dir_setting,
)
from .files import (
    CHECKPOINT_FILE,
    ERROR_FILE,
    MODEL_FILE,
    RESULT_FILE,
    atomic_save,
    atomic_write_text,
)
from .guards import (
    checkpoint_advice,
    finished_result,
    finite_result,
    set_aside_unreadable_checkpoint,
)
from .infra import ExperimentInfra, with_default_folder
from .locks import acquire_run_lock
from .results import VALIDATION_KEYS, build_result, resume_info

__all__ = ["EXPERIMENT_VERSION", "TASK_MODULE", "Experiment", "TrainOutput"]

logger = logging.getLogger(__name__)

# 6: the feedforward learners' re-derived defaults (`method_defaults`: a field left None is
# the method's default, and None is left out of the uid); 5: training.behaviour_repeats
# defaults to 5 (was 1: a default is left out of the uid, so only the version tells those
# results apart); 4: one recorded play feeds returns and metrics
EXPERIMENT_VERSION = "6"
TASK_MODULE = "hbm_experiments.tasks"
"""Where every task class is found: exca names a task's cache folder after its class's module, so
the classes defined in other modules pin their `__module__` to this address (`tasks.py`)."""


class TrainOutput(NamedTuple):
    """What a `_train` hook returns: the trained policy, its history rows, and how the run
    went (`stop_reason`, `resumed_from`, `checkpoint_time`, `elapsed`, ...)."""

    policy: torch.nn.Module
    history: list[dict[str, Any]]
    info: dict[str, Any] = {}  # noqa: RUF012 - NamedTuple default, never mutated


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
    _line: ClassVar[str] = "imitating the person"
    """Which methods of `_algorithms` the class runs (for the message naming the right one)."""
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
        if self.data.holdout == "source":  # refused here, naming the subject, not in the job
            check_recorded_split(self.dataset, self.subject, data_dir_setting())
        return self

    @pydantic.model_validator(mode="after")
    def _algorithm_of_class(self) -> Experiment:
        from .experiment_io import experiment_class  # the table imports the subclasses

        expected = experiment_class(self.method)
        if self._algorithms and not isinstance(self, expected):
            raise ValueError(
                f"method {self.method!r} is not run by {type(self).__name__} "
                f"(it runs {', '.join(self._algorithms)} {self._line}); use "
                f"{expected.__name__} or make_experiment()"
            )
        return self

    @infra.apply
    def run(self) -> dict[str, Any]:
        """Train, evaluate against the person, save the model; cached by uid.

        One process at a time per uid (`locks`): a second run of the same experiment waits
        for the first and returns its result (or its error) instead of training again."""
        folder = self.infra.uid_folder(create=True)
        assert folder is not None  # the folder is always injected
        lock, waited = acquire_run_lock(folder, self.infra.uid())
        try:
            if self.infra.mode != "force":  # finished by the run waited for, or killed late
                done = finished_result(folder, waited=waited)
                if done is not None:
                    return done
            return self._run_locked(folder)
        finally:
            lock.release()

    def _run_locked(self, folder: Path) -> dict[str, Any]:
        # a forced or retried rerun must not look finished, nor failed, while it runs
        for name in (RESULT_FILE, ERROR_FILE):
            (folder / name).unlink(missing_ok=True)
        self.infra.write_configs_now()  # `hbm status` lists a run while it goes, or if killed
        self.infra.write_run_context(folder)
        from .slurm import requeue_on_timeout  # no-op outside a Slurm job

        try:
            if self.infra.mode == "retry":
                set_aside_unreadable_checkpoint(folder / CHECKPOINT_FILE)
            # near the time limit (in data loading too): requeue, resume from the checkpoint
            with requeue_on_timeout(max_requeues=self.max_requeues):
                result = finite_result(self._run_in(folder))
            # inside the recorded part: a full disk here is a failure with its traceback
            atomic_write_text(folder / RESULT_FILE, json.dumps(result, allow_nan=False))
        except Exception:
            atomic_write_text(folder / ERROR_FILE, traceback.format_exc())
            logger.exception("experiment %s failed", self.infra.uid())
            raise
        return result

    # -- hooks ---------------------------------------------------------------------------------

    def build(
        self, data: Any = None, *, device: torch.device | str | None = None
    ) -> dict[str, Any]:
        """The arguments `run()` trains with: `hbm_ne.train_supervised(**exp.build())` or
        `hbm_dl.optimize_sgd(**exp.build())` is the same training as the cached experiment
        (same history, without its checkpoint, progress display and cache). `data` defaults to
        the experiment's cached data (`data_task().load()`)."""
        raise NotImplementedError(f"{type(self).__name__} does not define build")

    def _train(self, data: Any, checkpoint_path: Path, device: torch.device) -> TrainOutput:
        """Train on `data`, checkpointing to `checkpoint_path`; subclasses override this to
        change how a method trains (never `run`, which exca caches)."""
        setup = self.build(data, device=device)
        return self._fit(setup, checkpoint_path)

    def _fit(self, setup: dict[str, Any], checkpoint_path: Path) -> TrainOutput:
        raise NotImplementedError(f"{type(self).__name__} does not define _fit")

    def _run_trainer(
        self, setup: dict[str, Any], checkpoint_path: Path, unit: str, budget: int | None
    ) -> Any:
        """The method's library function (`methods.trainer`) on `build()`'s arguments, with
        the checkpoint, its cadence, the fingerprint and the progress callbacks (closed after)."""
        from .methods import trainer
        from .vocabulary import library_kwargs

        t = self.training
        callbacks = self._callbacks(checkpoint_path.parent, unit, budget)
        try:
            return trainer(self.method)(
                **setup,
                checkpoint_path=checkpoint_path,
                **library_kwargs(t, "checkpoint_every", "ckpt_and_behav_eval_interval_seconds"),
                fingerprint=self.fingerprint(),
                callbacks=callbacks,
            )
        finally:
            for callback in callbacks:
                callback.close()

    # -- shared body ---------------------------------------------------------------------------

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint belongs to: the uid config (data content hash included) and the
        package versions. The training loops refuse to resume a checkpoint whose fingerprint
        differs, naming the field."""
        from importlib.metadata import PackageNotFoundError, version

        config = json.loads(
            json.dumps(dict(self.infra.config(uid=True, exclude_defaults=True)), default=str)
        )
        versions: dict[str, str] = {}
        for package in ("hbm-data", "hbm-ne", "hbm-dl", "hbm-experiments"):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:  # pragma: no cover - installed from a source tree
                versions[package] = "unknown"
        return {
            "experiment": f"{type(self).__name__} v{self.infra.version}",
            "config": config,
            "data_content_hash": self.data.content_hash,
            "versions": versions,
        }

    def budget(self) -> dict[str, int | float]:
        """The budgets this run is under (`training.max_samples`, `max_generations`, ...,
        those its method uses and that are set): rows compare fairly only under equal ones."""
        t = self.training
        return {b: getattr(t, b) for b in t.budgets(self.algorithm) if getattr(t, b) is not None}

    def _callbacks(self, folder: Path, unit: str, budget: int | None) -> list[Any]:
        """Progress (a bar on a terminal, a log line every 30 s elsewhere) and TensorBoard
        scalars in the uid folder (when the extra is installed)."""
        from .progress import LogDisplay, active_display, progress_callback, session_open
        from .tracking import open_tracker

        t = self.training
        # inside a CLI session its display (bars or lines); in a job, lines at this run's pace
        display = active_display() if session_open() else LogDisplay(t.log_every_seconds)
        name = f"{self.method} {self.dataset}/{self.subject} seed={self.seed}"
        bar = progress_callback(
            name,
            unit,
            budget,
            max_time=t.max_optim_time,
            max_samples=t.max_samples,
            display=display,
        )
        return [bar, open_tracker(folder)]

    def _split_data(
        self, episode_data: Any, obs: Any, actions: Any, episodes: Any, device: torch.device
    ) -> Any:
        """One split as `episode_data` (hbm-ne's or hbm-dl's `EpisodeData`, same
        `from_arrays`): recurrent models get whole episodes, feedforward ones a pool of steps."""
        if self.model_kind == "feedforward":
            return episode_data.from_arrays(obs, actions, None, device=device)
        # the session of each episode: `state_mode="session"` carries state through them
        return episode_data.from_arrays(
            obs,
            actions,
            [e.length for e in episodes],
            sessions=[e.session for e in episodes],
            device=device,
        )

    def _episode_splits(
        self, episode_data: Any, data: Any, device: torch.device
    ) -> tuple[Any, Any]:
        """Train and test sets as `episode_data` (`_split_data`)."""
        meta = data.metadata
        return (
            self._split_data(
                episode_data, data.train_obs, data.train_act, meta.train_episodes, device
            ),
            self._split_data(
                episode_data, data.test_obs, data.test_act, meta.test_episodes, device
            ),
        )

    def _validation_split(self, episode_data: Any, data: Any, device: torch.device) -> Any:
        """The validation set as `episode_data`, or None: no validation episodes (data without
        them, e.g. a plain `hbm_data.HumanData`, or `data.validation_pct` 0)."""
        episodes = getattr(data, "val_episodes", ())
        if not episodes:
            return None
        return self._split_data(episode_data, data.val_obs, data.val_act, episodes, device)

    def _validation_metrics(
        self, policy: torch.nn.Module, data: Any, step: int, device: torch.device
    ) -> dict[str, float | None]:
        """`val_loss`, `val_accuracy`, `val_f1` of the trained model (None without validation
        episodes): the F1 draws of the last history row, so they equal its validation
        columns."""
        from .evaluation import classification_metrics

        episodes = getattr(data, "val_episodes", ())
        if not episodes:
            return dict.fromkeys(VALIDATION_KEYS)
        m = classification_metrics(
            policy,
            data.val_obs,
            data.val_act,
            [e.length for e in episodes],
            seed=self.seed,
            step=step,
            device=device,
        )
        return dict(
            zip(VALIDATION_KEYS, (m["test_ce"], m["test_accuracy"], m["test_f1"]), strict=True)
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
            max_train_episodes=d.max_train_episodes,
            validation_pct=d.validation_pct,
            holdout=d.holdout,
            crossfit_folds=d.crossfit_folds,
            crossfit_fold=d.crossfit_fold,
            data_dir=data_dir_setting(),
            infra={"folder": self.infra.folder, "mode": mode},  # type: ignore[arg-type]
        )

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
        check_code(folder)
        try:
            trained = self._train(data, folder / CHECKPOINT_FILE, device)
        except Exception as exc:
            advised = checkpoint_advice(exc)  # what to do, in `hbm run` terms
            if advised is None:
                raise
            raise advised from exc
        policy = trained.policy.to(device).eval()
        spec = model_spec(policy, self.model_kind, self.model.rank)
        # tensors to CPU; a DynamicNet's graph settings travel as its `_extra_state` dict
        state = {
            k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in policy.state_dict().items()
        }
        atomic_save(
            folder / MODEL_FILE, lambda f: torch.save({"spec": spec, "state_dict": state}, f)
        )
        last_step = int(trained.history[-1].get("step") or 0) if trained.history else 0
        evaluation = evaluate_policy(
            policy,
            data,
            seed=self.seed,
            step=last_step,  # the last history row describes this model: same F1 draws
            repeats=self.training.behaviour_repeats,
            partner=self.training.behaviour_partner,  # two-player kitchens: who plays beside
            device=device,
        )
        references = HumanlikeReferences(
            data=self.data_task(),
            repeats=self.training.behaviour_repeats,  # the model row's protocol
            infra={"folder": self.infra.folder},  # type: ignore[arg-type]
        ).compute()
        from .tracking import open_tracker

        with open_tracker(folder) as tracker:  # TensorBoard: humanlike scalars at the last step
            step = int(trained.info.get("samples_seen") or 0)
            tracker.log_humanlike(evaluation["humanlike"], step=step)
        resumed = resume_info(self.algorithm, trained.info)
        if resumed is not None:
            logger.info(
                "%s: resumed from %s %d (checkpoint of %s)",
                self.infra.uid(),
                resumed["unit"],
                resumed["from"],
                resumed["checkpoint_time"],
            )
        result = build_result(
            self,
            data,
            history=_jsonable(trained.history),
            info=trained.info,
            num_params=int(sum(p.numel() for p in policy.parameters())),
            evaluation=evaluation,
            validation=self._validation_metrics(policy, data, last_step, device),
            references=references,
            budget=self.budget(),
            model_file=MODEL_FILE,
            checkpoint_path=str(folder / CHECKPOINT_FILE),
            started=t0,
        )
        return dict(result)


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


def _train_info(result: Any) -> dict[str, Any]:
    """What the experiment's result reports of a training run (hbm-ne's `TrainResult`,
    hbm-dl's `SGDResult`: the same names)."""
    info = {
        k: getattr(result, k, None)
        for k in ("stop_reason", "resumed_from", "checkpoint_time", "elapsed", "samples_seen")
    }
    for key in ("fitness_history", "final_generation"):
        with contextlib.suppress(KeyError, TypeError):  # hbm-dl's result has neither
            info[key] = _jsonable(result[key])
    return info
