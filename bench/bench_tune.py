"""`hbm tune --parallel K`: one local wave of K trials (`tune.run_wave`: the first in this
process, K - 1 on worker processes started by the tuning, one torch thread each) against the
same K trials trained one by one in this process (what `--parallel 1` does: torch's default
threads). Each side starts from an empty cache, data included, so both pay for every training
and evaluation; the wave also pays for starting its K - 1 workers (imports). This process
has built a network before either side is timed (imports, torch's first-use set-up), so that
neither side pays a once-per-process cost the other one is spared.
Target on 2 cores: >= 1.6x (K = 2).

Trials are GA runs long enough (about half a minute each on a quiet core) that the workers'
start is small beside them: a wave of second-long trials would measure Python's import time,
not the wave.
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
            "training": {"max_generations": 600 if quick else 2000, "eval_every": 500},
        }
    )


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
            t0 = time.perf_counter()
            study = tune(base, space, trials=k, parallel=k)
            wave = time.perf_counter() - t0
            failed = [t.number for t in study.trials if t.state.name != "COMPLETE"]
            if failed:  # a failed job would make the wave look fast
                raise RuntimeError(f"trials {failed} of the wave failed: see the job logs")
            params = [t.params for t in study.trials]
            os.environ["HBM_CACHE"] = b
            base = _base(args.quick)  # its data keyed into the second cache
            exps = [trial_experiment(base, p) for p in params]
            t0 = time.perf_counter()
            for e in exps:  # one by one, in this process (`--parallel 1`)
                run_experiments([e])
            one_by_one = time.perf_counter() - t0
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
            extra={"cpus": os.cpu_count(), "loadavg_after": os.getloadavg()},
        )
    ]
