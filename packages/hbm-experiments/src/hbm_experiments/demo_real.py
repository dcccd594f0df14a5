"""`hbm demo --real`: the demo on two real people, the Overcooked-AI 2019 human-human
recordings (Carroll et al., NeurIPS 2019) read from the user's installed `overcooked-ai`.

Imports the recordings into the data folder once (`hbm-data import-overcooked`'s files; a
second run finds them), trains GA and Adam (feedforward, small budgets, `--num-seeds` seeds) on the
two players of one worker's cramped_room trial, and writes the report: each learner's
teacher-forced imitation of each person (test CE/F1, action accuracy, hold durations and
switch rate of its predictions) between the person floor and the random ceiling, and the
returns of its play from each held-out segment's recorded start where hbm can play the kitchen
(`hbm_experiments.overcooked_play`).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .tasks import Experiment, make_experiment

__all__ = [
    "REAL_BUDGETS",
    "REAL_ENV",
    "REAL_SEEDS",
    "REAL_SUBJECTS",
    "ensure_imported",
    "real_experiments",
    "run",
]

logger = logging.getLogger(__name__)

REAL_ENV = "overcooked-cramped_room"
#: Both players of worker 1's cramped_room trial (the study's training trials): two people.
REAL_SUBJECTS: tuple[str, ...] = ("oc-w01-p0", "oc-w01-p1")
REAL_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
# The GA's settings are spelled out (self-adapted mutation from 0.05, every training sample
# per fitness evaluation: a batch at least the training set's size), so that the README's
# table of this demo stays what it runs, whatever `ga_feedforward`'s defaults become.
REAL_BUDGETS: dict[str, dict[str, Any]] = {
    "ga": {
        "optimizer": {
            "population_size": 32,
            "adaptive_sigma_init": 0.05,
            "adaptive": True,
            "adaptive_sigma_noise": 0.01,
            "selection_fraction": 0.5,
        },
        "training": {"max_generations": 30, "eval_every": 10, "batch_size": 10**9},
    },
    "adam": {
        "optimizer": {"learning_rate": 0.01},
        "training": {"max_epochs": 5, "eval_every": 20},
        "num_threads": 1,
    },
}


def ensure_imported(data_dir: Path | str | None = None) -> list[Path]:
    """The Overcooked subject files in `data_dir` (default: hbm-data's data folder), imported
    from the installed package when the demo's players are missing (every layout, once).
    Raises `hbm_data.MissingExtraError` (saying how to install) without the package."""
    from hbm_data.overcooked import import_trials, read_all_trials
    from hbm_data.paths import data_dir as default_dir
    from hbm_data.paths import find_episode_file

    folder = Path(data_dir) if data_dir is not None else default_dir()
    wanted = [find_episode_file(REAL_ENV, s, folder) for s in REAL_SUBJECTS]
    if all(p.exists() for p in wanted):
        return wanted
    logger.info("importing the Overcooked-AI recordings into %s (once)", folder)
    import_trials(read_all_trials(), folder)
    return [find_episode_file(REAL_ENV, s, folder) for s in REAL_SUBJECTS]


def real_experiments(
    subjects: Sequence[str] = REAL_SUBJECTS, seeds: Sequence[int] = REAL_SEEDS, **infra: Any
) -> list[Experiment]:
    """GA and Adam (feedforward) per real player and seed, on `REAL_ENV`."""
    exps = []
    for subject in subjects:
        for algo in ("ga", "adam"):
            for seed in seeds:
                cfg = {"method": f"{algo}_feedforward", "seed": seed, "dataset": REAL_ENV,
                       "subject": subject, "model": {"hidden_size": 32},
                       **REAL_BUDGETS[algo]}  # fmt: skip
                exps.append(make_experiment(cfg, source="demo --real", **infra))
    return exps


def run(args: argparse.Namespace, infra: dict[str, Any]) -> tuple[int, str]:
    """`hbm demo --real`: (exit code, text for the CLI to print); progress goes to the log."""
    from hbm_data import MissingExtraError
    from hbm_data.overcooked import INSTALL

    from .data import data_dir_setting
    from .report import make_report
    from .status import find_experiments
    from .sweeps import run_experiments

    t0 = time.perf_counter()
    try:
        ensure_imported(data_dir_setting())
    except (MissingExtraError, ImportError) as exc:
        return 2, f"hbm demo --real needs the recordings' package: {INSTALL}\n({exc})"
    imported = time.perf_counter() - t0
    retry = infra.pop("mode", None) == "retry"
    exps = real_experiments(seeds=range(args.num_seeds), **infra)
    done = sum(e.infra.status() == "completed" for e in exps)
    logger.info(
        "demo --real: %d experiments on %d real players of %s (%d already cached; data ready "
        "in %.1fs)", len(exps), len(REAL_SUBJECTS), REAL_ENV, done, imported,
    )  # fmt: skip
    run_experiments(exps, retry=retry)
    folders = {e.infra.uid_folder() for e in exps}
    records = [r for r in find_experiments(load_results=True) if r.folder in folders]
    table, files = make_report(records, args.out, html=True)
    note = (
        "The subjects are real people (the Overcooked-AI 2019 human-human study, Carroll et "
        "al., NeurIPS 2019). Action accuracy, hold W1 and switch ratio are the models' "
        "teacher-forced choices on the person's held-out steps, between the person floor and "
        "the random ceiling; returns, where hbm can play the kitchen, come from playing each "
        "held-out segment from its recorded start beside the recorded partner (open loop)."
    )
    wrote = "\n".join(f"wrote {f}" for f in files)
    took = f"finished in {time.perf_counter() - t0:.1f}s (data ready after {imported:.1f}s)"
    return 0, f"{took}\n\n{table}\n\n{note}\n{wrote}"
