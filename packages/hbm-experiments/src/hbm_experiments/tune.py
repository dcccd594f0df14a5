"""Hyperparameter tuning with Optuna (`hbm tune`): every trial an ordinary cached experiment.

Why this shape:

- A trial is the base config with the sampled values set (dotted keys), built and run like any
  `hbm run`: its uid keys its result, so a trial that was already computed (by this study, a
  sweep, or another study) is read from the cache, never trained again.
- Trials go out in waves of `parallel` (`run_wave`): one job array per wave on Slurm, locally
  one in this process and K - 1 on worker processes started once per tuning
  (`local_workers`: a process per trial would pay its imports every time). Optuna's ask/tell
  interface lets the sampler propose a whole wave (TPE's "constant liar" spreads the wave's
  proposals).
- The study is a journal file beside the cache (Optuna's `JournalFileBackend`: appends under
  a lock, no database server, made for shared filesystems). A tuning killed mid-wave left
  trials asked but not told: the next `hbm tune` adopts them (same trial number, same
  values), so their experiments resume from their checkpoints or are read from the cache.
- The sampler is re-seeded at every wave from the seed and the number of trials so far: an
  interrupted and resumed tuning proposes what an uninterrupted one would.
- Trials are judged on the validation split (`metrics.val_loss`, cross-entropy of the
  person's validation episodes): choosing on the test episodes would report a selected score.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .configs import ConfigError, read_yaml
from .files import atomic_write_text
from .infra import local_timeout
from .tune_spaces import DEFAULT_SPACES, ParamSpec, default_space, parse_space

if TYPE_CHECKING:  # the CLI imports this module to build its parser: torch only when it runs
    from .local_workers import LocalWorkers
    from .tasks import Experiment

__all__ = [
    "DEFAULT_SPACES",
    "VALIDATION_METRIC",
    "ParamSpec",
    "TuneError",
    "best_experiment",
    "default_space",
    "load_space",
    "open_study",
    "study_folder",
    "trial_experiment",
    "tune",
]

logger = logging.getLogger(__name__)

VALIDATION_METRIC = "val_loss"
"""The result's `metrics` key trials are judged on (lower is better)."""
STUDY_FILE = "journal.log"
META_FILE = "study.json"
LOCK_FILE = "tune.lock"


class TuneError(RuntimeError):
    """A tuning cannot go on (another process holds the study, a result lacks the metric)."""


def load_space(space: str | Path, base: Experiment) -> dict[str, ParamSpec]:
    """`"default"` (the method's shipped space) or a YAML file; every key is checked against
    the base config now, so a typo fails before any trial runs."""
    if str(space) == "default":
        spec = default_space(base.method)
        source = "default space"
    else:
        spec = parse_space(read_yaml(space), str(space))
        source = str(space)
    trial_experiment(base, {p.name: p.example() for p in spec.values()}, source=source)
    return spec


def trial_experiment(
    base: Experiment, params: Mapping[str, Any], *, source: str = "trial", **infra: Any
) -> Experiment:
    """The base config with `params` (dotted keys) set: the trial's cached experiment."""
    from .tasks import experiment_to_dict, infra_set, make_experiment

    data = experiment_to_dict(base)
    for key, value in params.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:  # e.g. a line's section left at its defaults (stored as None)
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: {key}: {part} is not a section of the config")
            node = child
        if last not in node and not parents:
            raise ConfigError(f"{source}: {key}: no such config key")
        node[last] = value
    data["infra"] = {**infra_set(base), **infra}
    return make_experiment(data, source=f"{source} {dict(params)}", cls=type(base))


# ----------------------------------------------------------------------------------------------
# The study on disk


def _study_key(base: Experiment, space: Mapping[str, ParamSpec], metric: str, seed: int) -> str:
    config = json.loads(
        json.dumps(dict(base.infra.config(uid=True, exclude_defaults=True)), default=str)
    )
    payload = {
        "task": f"{type(base).__name__} v{base.infra.version}",
        "config": config,
        "space": {k: asdict(v) for k, v in sorted(space.items())},
        "metric": metric,
        "sampler": "tpe",
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def study_folder(
    base: Experiment,
    space: Mapping[str, ParamSpec],
    *,
    metric: str = VALIDATION_METRIC,
    seed: int = 0,
    root: Path | None = None,
) -> Path:
    """`<cache>/tune/<method>-<dataset>-<subject>-<key>`: the key covers the base config's uid,
    the space, the metric and the sampler seed (the number of trials is not in it: asking for
    more trials extends the same study)."""
    from .infra import cache_root

    key = _study_key(base, space, metric, seed)[:16]
    root = cache_root() if root is None else root
    return root / "tune" / f"{base.method}-{base.dataset}-{base.subject}-{key}"


def _storage(folder: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(folder / STUDY_FILE)))


def open_study(folder: Path, *, create: bool = False) -> Any:
    """The Optuna study stored in `folder` (created when `create`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # hbm logs its own lines per wave
    if not create and not (folder / STUDY_FILE).exists():
        raise TuneError(f"{folder}: no study here yet (run `hbm tune` with --trials first)")
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(
        storage=_storage(folder),
        study_name="hbm",
        direction="minimize",
        load_if_exists=True,
    )


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """One `hbm tune` per study at a time: another one would adopt this one's running trials.
    The lock dies with its process (kill -9 included)."""
    with open(folder / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TuneError(f"{folder}: another `hbm tune` is running this study") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sampler(seed: int, n_trials: int, total: int) -> Any:
    import optuna

    # TPE's random start-up phase: optuna's 10, or a third of a smaller study
    startup = max(2, min(10, total // 3))
    return optuna.samplers.TPESampler(seed=seed + n_trials, n_startup_trials=startup)


def _value(result: Mapping[str, Any], metric: str, uid: str) -> float:
    try:
        value = float(result["metrics"][metric])
    except (KeyError, TypeError):
        raise TuneError(
            f"{uid}: the result has no metrics.{metric}: tuning judges trials on the "
            "validation split (data.validation_pct > 0)"
        ) from None
    return value if math.isfinite(value) else math.inf


def tune(
    base: Experiment,
    space: Mapping[str, ParamSpec],
    *,
    trials: int,
    parallel: int = 1,
    seed: int = 0,
    metric: str = VALIDATION_METRIC,
    retry: bool = False,
) -> Any:
    """Run (or resume) the study of `base` over `space` until it holds `trials` finished
    trials (a failed one counts: a space that often fails says so by its count of failures
    in `show`); returns the Optuna study. Waves of `parallel` experiments go out on the base's
    cluster (None with `parallel > 1`: local, `run_wave`; one torch thread each unless the
    config sets `num_threads`)."""
    from optuna.trial import TrialState

    from .tasks import experiment_to_dict

    if trials < 1 or parallel < 1:
        raise ValueError(f"trials={trials} and parallel={parallel} must be >= 1")
    infra: dict[str, Any] = {}
    if parallel > 1 and base.infra.cluster is None:
        infra["cluster"] = "local"
    infra |= local_timeout(infra.get("cluster", base.infra.cluster), base.infra.timeout_min)
    if parallel > 1 and base.num_threads is None:
        from .sweeps import with_threads

        base = with_threads(base, 1)
    folder = study_folder(base, space, metric=metric, seed=seed)
    study = open_study(folder, create=True)
    meta = {
        "method": base.method,
        "dataset": base.dataset,
        "subject": base.subject,
        "metric": metric,
        "seed": seed,
        "space": {k: asdict(v) for k, v in space.items()},
        "base_config": experiment_to_dict(base),
    }
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=1, default=str) + "\n")
    wave_number = 0
    cluster = infra.get("cluster", base.infra.cluster)
    with _exclusive(folder), wave_workers(cluster, parallel) as pool:
        while True:
            all_trials = study.get_trials(deepcopy=False)
            running = [t for t in all_trials if t.state == TrialState.RUNNING]
            finished = len(all_trials) - len(running)
            if finished >= trials:
                break
            wave: list[tuple[int, dict[str, Any]]] = [
                (t.number, dict(t.params)) for t in running[:parallel]
            ]
            if wave:
                logger.info(
                    "%s: adopting %d trial(s) asked but not told: %s",
                    folder.name,
                    len(wave),
                    [n for n, _ in wave],
                )
            study.sampler = _sampler(seed, len(all_trials), trials)
            # adopted trials are among `running`: every running one will be told eventually
            for _ in range(min(parallel - len(wave), trials - finished - len(running))):
                trial = study.ask()
                params = {p.name: p.suggest(trial) for p in space.values()}
                wave.append((trial.number, params))
            exps: list[tuple[int, Experiment]] = []
            for number, params in wave:
                try:
                    exp = trial_experiment(base, params, source=f"trial {number}", **infra)
                except ConfigError as exc:  # a combination the config refuses
                    logger.warning("trial %d: %s", number, exc)
                    study.tell(number, state=TrialState.FAIL)
                    continue
                exps.append((number, exp))
            results = run_wave([e for _, e in exps], retry=retry, workers=pool)
            for (number, exp), result in zip(exps, results, strict=True):
                if result is None:
                    study.tell(number, state=TrialState.FAIL)
                else:
                    study.tell(number, _value(result, metric, exp.infra.uid()))
            wave_number += 1
            best = _best(study)
            logger.info(
                "%s: wave %d: %d trial(s) told; best %s so far %s",
                folder.name,
                wave_number,
                len(exps),
                metric,
                "-" if best is None else f"{best.value:.4f} (trial {best.number})",
            )
    return study


def wave_workers(cluster: str | None, parallel: int) -> contextlib.AbstractContextManager[Any]:
    """Worker processes for the whole tuning when its waves run locally, else nothing."""
    from .local_workers import local_workers

    if cluster == "local":
        return local_workers(parallel)
    return contextlib.nullcontext()


def run_wave(
    experiments: Sequence[Experiment],
    *,
    retry: bool = False,
    max_workers: int = 256,
    workers: LocalWorkers | None = None,
) -> list[dict[str, Any] | None]:
    """Run experiments together; results in input order, None for a failed one (logged).

    A local wave (K jobs) first computes the data and reference rows its jobs share
    (`_prepare`), then runs its first experiment in this process (which would otherwise only
    wait) and the others on `workers` (without them: K - 1 workers for this wave alone).
    Elsewhere (Slurm, in-process) `sweeps.run_experiments` as it is."""
    from .local_workers import local_workers
    from .sweeps import run_or_none

    exps = list(experiments)
    if exps and exps[0].infra.cluster == "local":
        if len(exps) > 1:
            _prepare(exps[0])
        if workers is not None:
            return workers.run_wave(exps, retry=retry)
        with local_workers(min(len(exps), max_workers)) as own:
            return own.run_wave(exps, retry=retry)
    return run_or_none(exps, retry=retry, max_workers=max_workers)


def _prepare(exp: Experiment) -> None:
    """The data and the person/random reference rows every trial of a wave shares (cached
    tasks keyed by the data, not by the trial's values), computed once here: else each job of
    the wave would compute them at the same time. Built as `Experiment.run` builds them."""
    from .data import HumanlikeReferences

    HumanlikeReferences(
        data=exp.data_task(),
        repeats=exp.training.behaviour_repeats,
        infra={"folder": exp.infra.folder},  # type: ignore[arg-type]
    ).compute()


def _best(study: Any) -> Any:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    return min(done, key=lambda t: t.value) if done else None


def best_experiment(study: Any, base: Experiment) -> tuple[Any, Experiment]:
    """The best finished trial and its experiment (the base config with its values)."""
    best = _best(study)
    if best is None:
        raise TuneError("no trial of this study has finished")
    return best, trial_experiment(base, best.params, source=f"trial {best.number}")


def importances(study: Any) -> dict[str, float]:
    """fANOVA importance of each parameter (Optuna's default evaluator); empty with fewer than
    two finished trials or a space of one parameter."""
    import optuna

    if sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)) < 2:
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError) as exc:  # e.g. every trial has the same value
        logger.info("no parameter importances: %s", exc)
        return {}


def show(study: Any, base: Experiment) -> str:
    """The best config and the importance of each parameter, as text."""
    from optuna.trial import TrialState

    from .tasks import experiment_to_dict

    states = [t.state for t in study.get_trials(deepcopy=False)]
    lines = [
        f"trials: {states.count(TrialState.COMPLETE)} finished, "
        f"{states.count(TrialState.FAIL)} failed, {states.count(TrialState.RUNNING)} unfinished"
    ]
    best, exp = best_experiment(study, base)
    lines.append(f"best: trial {best.number}, validation CE {best.value:.4f}")
    lines.append(f"  experiment {exp.infra.uid()}")
    lines += [f"  {k} = {v!r}" for k, v in best.params.items()]
    imp = importances(study)
    if imp:
        lines.append("parameter importance (fANOVA, share of the variance of validation CE):")
        lines += [f"  {k:<34} {v:.3f}" for k, v in imp.items()]
    lines.append("best config:")
    cfg = yaml.safe_dump(experiment_to_dict(exp), sort_keys=False)
    lines += ["  " + line for line in cfg.splitlines()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The command line


def add_parser(sub: Any) -> None:
    """`hbm tune`: registered by `cli.build_parser`; `args.handler` runs it."""
    from .cli import _add_run_opts

    p = sub.add_parser(
        "tune", help="hyperparameter search with Optuna (TPE), every trial a cached experiment"
    )
    _add_run_opts(p)
    p.add_argument(
        "--space",
        default="default",
        help="search space: a YAML file of dotted keys ({low, high, log} or a list of "
        "choices), or 'default' (the method's shipped space)",
    )
    p.add_argument("--trials", type=int, help="finished trials the study should hold")
    p.add_argument(
        "--parallel", type=int, default=1, metavar="K", help="trials per wave (job array)"
    )
    p.add_argument("--sampler-seed", type=int, default=0, help="TPE's seed (part of the study)")
    p.add_argument(
        "--show", action="store_true", help="print the best config and parameter importances"
    )
    p.set_defaults(handler=run_cli, live=True)


def run_cli(args: Any) -> str:
    """`hbm tune`: run or resume the study (with --trials); the text `cli` prints: the best
    trial (and with --show its config and the parameter importances)."""
    from .cli import _infra
    from .tasks import load_experiment_config

    infra = _infra(args)
    mode = infra.pop("mode", None)
    if mode == "force":
        raise ConfigError(
            "hbm tune --force: tuning never recomputes a cached trial; `hbm run --force` one"
        )
    if args.trials is None and not args.show:
        raise ConfigError("hbm tune: give --trials N (or --show for a study that exists)")
    base = load_experiment_config(args.config, args.overrides, **infra)
    space = load_space(args.space, base)
    folder = study_folder(base, space, seed=args.sampler_seed)
    if args.trials is not None:
        study = tune(
            base,
            space,
            trials=args.trials,
            parallel=args.parallel,
            seed=args.sampler_seed,
            retry=mode == "retry",
        )
    else:
        study = open_study(folder)
    if args.show:
        text = show(study, base)
    else:
        best, exp = best_experiment(study, base)
        params = ", ".join(f"{k}={v!r}" for k, v in best.params.items())
        text = (
            f"best of {len(study.trials)} trials: trial {best.number}, validation CE "
            f"{best.value:.4f}: {params}\n  experiment {exp.infra.uid()}"
        )
    return f"{text}\nstudy: {folder}"
