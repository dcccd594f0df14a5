"""Re-derive each learner's default hyperparameters from tuning, and say how far the current
defaults are from tuned.

For every learner, simulated player and game, at one budget (`training.max_samples`):

1. the learner's current defaults are run (validation CE: "default");
2. a study of `--trials` trials over the learner's shipped space (`hbm tune --space default`)
   finds the task's best (validation CE: "tuned");
3. every task's best values become a candidate default; each candidate is run on every task
   (cached experiments: a candidate already run is read back), and the proposed default is
   the candidate with the lowest mean of validation CE relative to each task's tuned CE
   (a default is the value that does well across players and games, not on one).

Everything is judged on the validation split; the test episodes are never read. All runs are
ordinary cached experiments (seed `TUNE_SEED`, as `hbm compare` tunes), so rerunning the
script reads them back and an interrupted run resumes. It writes a markdown table
(`--out`, default `results/derive_defaults.md`).

    uv run python tools/derive_defaults.py --learners adam_feedforward --subjects sim01 \
        --games cartpole --budget-samples 20000 --trials 6
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

from hbm_experiments.compare import TUNE_SEED, learner_config, run_waves
from hbm_experiments.files import atomic_write_text
from hbm_experiments.tune import (
    VALIDATION_METRIC,
    best_experiment,
    load_space,
    trial_experiment,
    tune,
)

LEARNERS = ("ga_feedforward", "es_feedforward", "cmaes_feedforward", "sgd_feedforward",
            "adam_feedforward")  # fmt: skip
SUBJECTS = ("sim01", "sim02", "sim03", "sim04")
GAMES = ("cartpole", "mountaincar", "acrobot", "lunarlander")


def _val(result: dict[str, Any] | None) -> float:
    return float("nan") if result is None else float(result["metrics"][VALIDATION_METRIC])


def derive(
    learner: str,
    *,
    subjects: list[str],
    games: list[str],
    budget_samples: int,
    trials: int,
    parallel: int,
    overrides: list[str],
) -> list[dict[str, Any]]:
    """One row per task (player, game) of `learner`, plus the proposed default's params."""
    infra: dict[str, Any] = {"cluster": "local"} if parallel > 1 else {}
    tasks = [(s, g) for g in games for s in subjects]
    bases = {
        t: learner_config(
            learner,
            dataset=t[1],
            subject=t[0],
            budget_samples=budget_samples,
            overrides=overrides,
            seed=TUNE_SEED,
            **infra,
        )
        for t in tasks
    }
    defaults = dict(zip(tasks, run_waves(list(bases.values()), parallel=parallel), strict=True))
    tuned: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    for t, base in bases.items():
        space = load_space("default", base)
        study = tune(base, space, trials=trials, parallel=parallel)
        best, _ = best_experiment(study, base)
        tuned[t] = (float(best.value), dict(best.params))
    # every task's best values, tried on every task: the one that does well across them
    candidates = {t: p for t, (_, p) in tuned.items()}
    exps = [trial_experiment(bases[t], p) for p in candidates.values() for t in tasks]
    values = [_val(r) for r in run_waves(exps, parallel=parallel)]
    score: dict[tuple[str, str], float] = {}
    for i, origin in enumerate(candidates):
        rel = [values[i * len(tasks) + j] / tuned[t][0] for j, t in enumerate(tasks)]
        score[origin] = statistics.fmean(rel)
    chosen = min(score, key=lambda c: score[c])
    rows = []
    for j, t in enumerate(tasks):
        d, best = _val(defaults[t]), tuned[t][0]
        proposed = values[list(candidates).index(chosen) * len(tasks) + j]
        rows.append(
            {
                "learner": learner,
                "player": t[0],
                "game": t[1],
                "default": d,
                "tuned": best,
                "default_gap_pct": 100 * (d - best) / best,
                "proposed": proposed,
                "proposed_gap_pct": 100 * (proposed - best) / best,
                "proposed_params": candidates[chosen],
                "tuned_params": tuned[t][1],
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], *, budget_samples: int, trials: int) -> str:
    lines = [
        f"Validation CE at {budget_samples} samples seen, seed {TUNE_SEED}; tuned = best of "
        f"{trials} TPE trials of the learner's default space; gap = (x - tuned) / tuned.",
        "",
        "| learner | player | game | default | tuned | default gap | proposed | proposed gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['learner']} | {r['player']} | {r['game']} | {r['default']:.4f} | "
            f"{r['tuned']:.4f} | {r['default_gap_pct']:+.1f} % | {r['proposed']:.4f} | "
            f"{r['proposed_gap_pct']:+.1f} % |"
        )
    lines.append("")
    for learner in dict.fromkeys(r["learner"] for r in rows):
        mine = [r for r in rows if r["learner"] == learner]
        lines.append(f"- {learner}: proposed default {mine[0]['proposed_params']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learners", nargs="+", default=list(LEARNERS))
    p.add_argument("--subjects", nargs="+", default=list(SUBJECTS))
    p.add_argument("--games", nargs="+", default=list(GAMES))
    p.add_argument("--budget-samples", type=int, default=1_000_000)
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("results/derive_defaults.md"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rows = []
    for learner in args.learners:
        rows += derive(
            learner,
            subjects=args.subjects,
            games=args.games,
            budget_samples=args.budget_samples,
            trials=args.trials,
            parallel=args.parallel,
            overrides=args.overrides,
        )
    text = markdown(rows, budget_samples=args.budget_samples, trials=args.trials)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
