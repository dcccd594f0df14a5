"""Many experiments at once: hyperparameter sweeps and seed replicates as exca job arrays.

Why job arrays of `TaskInfra` experiments rather than a `MapInfra` sweep: each experiment keeps
its own cache entry, status, logs, checkpoint and Slurm task (one `sbatch --array` for the whole
sweep); only missing (or, with `retry`, failed) configs are submitted; and no job sits holding an
allocation while it waits for others. A `MapInfra` sweep would cache every result twice, pack
several long runs into one job with no per-run status, and start a new sweep cache for every new
list of values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pydantic

from .configs import ConfigError, apply_overrides, format_validation_error
from .slurm import check_infra
from .tasks import (
    Experiment,
    experiment_class,
    experiment_to_dict,
    infra_set,
    make_experiment,
)

__all__ = [
    "ExperimentsFailed",
    "HyperparameterSweep",
    "run_experiments",
    "run_multiple_seeds",
    "run_or_none",
    "with_infra",
    "with_threads",
]

logger = logging.getLogger(__name__)


class ExperimentsFailed(RuntimeError):
    """Some experiments of a batch failed; the others' results are in `results` (None if failed)."""

    def __init__(self, failures: dict[str, BaseException], results: list[dict[str, Any] | None]):
        self.failures = failures
        self.results = results
        lines = [f"{len(failures)} of {len(results)} experiments failed:"]
        lines += [
            f"  {uid}: {type(e).__name__}: {str(e).splitlines()[-1:]}"
            for uid, e in failures.items()
        ]
        lines.append("See `hbm status` for tracebacks; rerun with --retry.")
        super().__init__("\n".join(lines))


def with_infra(exp: Experiment, **infra: Any) -> Experiment:
    """A copy of `exp` with some infra fields changed (cluster, mode, ...); `exp` may be frozen."""
    return make_experiment(exp, **infra)


def with_threads(exp: Experiment, threads: int, **infra: Any) -> Experiment:
    """A copy of `exp` on `threads` torch threads (and `infra` changed). `num_threads` is out
    of the uid: K parallel jobs of one thread each keep off each other's cores without
    changing any cache entry."""
    data = experiment_to_dict(exp)
    data["num_threads"] = threads
    data["infra"] = {**infra_set(exp), **infra}
    return make_experiment(data, cls=type(exp))


def run_experiments(
    experiments: Sequence[Experiment],
    *,
    retry: bool = False,
    force: bool = False,
    max_workers: int = 256,
) -> list[dict[str, Any]]:
    """Run experiments as one job array per task class; results in input order.

    Finished experiments are not resubmitted; with `retry`, failed ones are; with `force`,
    every one is recomputed from scratch (checkpoints dropped). Duplicates (same uid) run once.
    Each group's Slurm request is checked first (`slurm.check_infra`): one that no node can
    satisfy raises `SlurmRequestError` before anything is submitted.
    Raises `ExperimentsFailed` after every experiment has finished if any failed.
    """
    if retry and force:
        raise ValueError("retry and force: pick one (force recomputes everything)")
    mode = "force" if force else "retry" if retry else "cached"
    exps = [with_infra(e, mode=mode) if mode != "cached" else e for e in experiments]
    by_class: dict[type, list[Experiment]] = {}
    seen: set[str] = set()
    for e in exps:
        uid = e.infra.uid()
        if uid in seen:
            continue
        seen.add(uid)
        by_class.setdefault(type(e), []).append(e)
    for cls, group in by_class.items():
        # a request no node can ever satisfy fails here, before anything is submitted
        check_infra(group[0].infra, source=f"{cls.__name__}.infra")
    for group in by_class.values():
        for e in group:
            if force:  # exca clears only the jobs it knows; a killed run left files too
                e.infra.discard_training_files()
            else:  # a failure that another device or resource request caused is rerun
                e.infra.clear_if_failed_elsewhere()
        opener = with_infra(group[0], mode=mode)
        try:
            with opener.infra.job_array(max_workers=max_workers) as array:
                array.extend(group)
        except Exception as exc:  # cluster=None runs inline and may raise here; gathered below
            logger.debug("job array raised %s; collecting per-experiment errors", exc)
    results: list[dict[str, Any] | None] = []
    failures: dict[str, BaseException] = {}
    for e in exps:
        try:
            results.append(e.run())
        except Exception as exc:
            failures[e.infra.uid()] = exc
            results.append(None)
    if failures:
        raise ExperimentsFailed(failures, results)
    return [r for r in results if r is not None]


def run_or_none(
    experiments: Sequence[Experiment], *, retry: bool = False, max_workers: int = 256
) -> list[dict[str, Any] | None]:
    """`run_experiments`, with a failed experiment logged and given as None (a wave of trials
    or a comparison goes on without it) instead of raising."""
    if not experiments:
        return []
    try:
        return list(run_experiments(experiments, retry=retry, max_workers=max_workers))
    except ExperimentsFailed as exc:
        for uid, err in exc.failures.items():
            logger.warning("experiment %s failed: %s", uid, err)
        return list(exc.results)


def run_multiple_seeds(
    base_config: Experiment, seeds: Iterable[int], *, retry: bool = False, force: bool = False
) -> list[dict[str, Any]]:
    """The same experiment for each seed, as one job array; results in the order of `seeds`."""
    data = experiment_to_dict(base_config)
    infra = infra_set(base_config)
    exps = [
        make_experiment({**data, "seed": int(s), "infra": infra}, cls=type(base_config))
        for s in seeds
    ]
    return run_experiments(exps, retry=retry, force=force)


class HyperparameterSweep(pydantic.BaseModel):
    """One experiment per value of a dotted parameter (e.g. `model.hidden_size`)."""

    model_config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    base_config: Experiment
    param_name: str
    param_values: list[Any]

    @pydantic.model_validator(mode="after")
    def _check(self) -> HyperparameterSweep:
        if not self.param_values:
            raise ValueError("param_values is empty")
        node: Any = experiment_to_dict(self.base_config)
        for part in self.param_name.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(
                    f"param_name {self.param_name!r}: no such config key ({part!r} not found)"
                )
            node = node[part]
        self.experiments()  # every value must validate
        return self

    def experiments(self) -> list[Experiment]:
        """The configs of the sweep, in the order of `param_values`."""
        base = experiment_to_dict(self.base_config)
        infra = {
            k: getattr(self.base_config.infra, k) for k in self.base_config.infra.model_fields_set
        }
        out = []
        for v in self.param_values:
            data = apply_overrides(base, [])
            node = data
            *parents, last = self.param_name.split(".")
            for p in parents:
                node = node[p]
            node[last] = v
            data["infra"] = infra
            try:
                out.append(
                    make_experiment(
                        data, source=f"sweep {self.param_name}={v!r}", cls=self._class_for(data)
                    )
                )
            except ConfigError:
                raise
            except pydantic.ValidationError as exc:  # pragma: no cover - make_experiment wraps
                raise ConfigError(format_validation_error(exc, "sweep")) from None
        return out

    def _class_for(self, data: dict[str, Any]) -> type[Experiment] | None:
        """The base config's class, unless a swept `method` needs another one (a sweep over
        methods of several lines: `--param method --values ga_feedforward ga_env_feedforward`,
        "trained on the person" against "trained on returns" in one report)."""
        cls = type(self.base_config)
        try:
            runs = issubclass(cls, experiment_class(str(data.get("method"))))
        except ValueError:  # an unknown method: make_experiment names it
            return cls
        return cls if runs else None

    def run(self, *, retry: bool = False, force: bool = False) -> list[dict[str, Any]]:
        """Run (or read from the cache) every value; results in the order of `param_values`,
        each with the guide's `param_name` and `param_value`."""
        results = run_experiments(self.experiments(), retry=retry, force=force)
        return [
            {**r, "param_name": self.param_name, "param_value": v}
            for r, v in zip(results, self.param_values, strict=True)
        ]

    def run_sweep(
        self, param_values: Sequence[Any] | None = None, *, retry: bool = False, force: bool = False
    ) -> list[dict[str, Any]]:
        """The guide's call (§4.2): `sweep.run_sweep(sweep.param_values)`, or other values of
        the same parameter. One job array (not exca's MapInfra: see the module docstring)."""
        if param_values is None or list(param_values) == self.param_values:
            return self.run(retry=retry, force=force)
        other = HyperparameterSweep(
            base_config=self.base_config,
            param_name=self.param_name,
            param_values=list(param_values),
        )
        return other.run(retry=retry, force=force)
