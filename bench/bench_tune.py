"""`hbm tune --parallel K`: one local wave of K trials (`tune.run_wave`: the first in this
process, K - 1 on worker processes started by the tuning, one torch thread each) against the
same K trials trained one by one in this process (what `--parallel 1` does: torch's default
threads). Each side starts from an empty cache, data included, so both pay for every training
and evaluation; the wave also pays for starting its K - 1 workers (imports). This process
has run one tiny experiment before either side is timed (imports, torch's first use), so
that neither side pays a once-per-process cost the other one is spared. The CPU seconds of
each side (this process and its workers) and the load average are recorded beside the
times: on a shared machine a wall-clock ratio is only as clean as the load around it.
Target on 2 cores: >= 1.6x (K = 2).

Trials are GA runs long enough (8000 generations: about a minute each on a quiet core, 13 s
of CPU per 2000 generations measured) that the workers' start and the wave's shared data
preparation (reference rows, once per tuning and computed on one core by both sides) are
small beside them: a wave of second-long trials would measure Python's import time, not the
wave.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from _harness import Result

SUITE = "tune"


def _base(quick: bool) -> Any:
    from hbm_experiments import make_experiment

    return make_experiment(
        {
            "method": "ga_feedforward",
            "dataset": "cartpole",
            "subject": "sim01",
            "model": {"hidden_size": 32},
            "optimizer": {"population_size": 32},
            "training": {"max_generations": 2000 if quick else 8000, "eval_every": 500},
        }
    )


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the workers)."""
    import resource

    own, ended = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def _warm_up() -> None:
    """What a process does once, whichever side comes first (imports, most of them lazy in
    a run's evaluation; torch's first use): one tiny run, in a cache of its own."""
    from hbm_experiments import make_experiment

    with tempfile.TemporaryDirectory() as cache:
        os.environ["HBM_CACHE"] = cache
        tiny = {
            "method": "ga_feedforward",
            "dataset": "cartpole",
            "subject": "sim01",
            "model": {"hidden_size": 4},
            "optimizer": {"population_size": 4},
            "training": {"max_generations": 2},
        }
        make_experiment(tiny).run()


def run(args: argparse.Namespace) -> list[Result]:
    from hbm_experiments.sweeps import run_experiments
    from hbm_experiments.tune import parse_space, trial_experiment, tune

    k = 2
    space = parse_space(
        {"optimizer.adaptive_sigma_init": {"low": 0.01, "high": 0.1, "log": True}}, "bench"
    )
    old = os.environ.get("HBM_CACHE")
    try:
        _warm_up()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            os.environ["HBM_CACHE"] = a
            base = _base(args.quick)
            load_before = os.getloadavg()
            c0, t0 = _cpu(), time.perf_counter()
            study = tune(base, space, trials=k, parallel=k)
            wave, wave_cpu = time.perf_counter() - t0, _cpu() - c0
            failed = [t.number for t in study.trials if t.state.name != "COMPLETE"]
            if failed:  # a failed job would make the wave look fast
                raise RuntimeError(f"trials {failed} of the wave failed: see the job logs")
            params = [t.params for t in study.trials]
            os.environ["HBM_CACHE"] = b
            base = _base(args.quick)  # its data keyed into the second cache
            exps = [trial_experiment(base, p) for p in params]
            c0, t0 = _cpu(), time.perf_counter()
            for e in exps:  # one by one, in this process (`--parallel 1`)
                run_experiments([e])
            one_by_one, one_by_one_cpu = time.perf_counter() - t0, _cpu() - c0
    finally:
        if old is None:
            os.environ.pop("HBM_CACHE", None)
        else:
            os.environ["HBM_CACHE"] = old
    return [
        Result(
            SUITE,
            f"tuning wave of {k} GA trials, local (--parallel {k})",
            "s",
            wave,
            "the same trials one by one",
            one_by_one,
            higher_is_better=False,
            target=1.6,
            extra={
                "cpus": os.cpu_count(),
                "wave_cpu_s": round(wave_cpu, 1),
                "one_by_one_cpu_s": round(one_by_one_cpu, 1),
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            },
        )
    ]
