"""Re-derive each learner's default hyperparameters from tuning, and say how far the current
defaults are from tuned.

For every learner, simulated player and game (a "cell"), at one budget (`training.max_samples`):

1. the learner's current defaults are run (validation CE: "default");
2. a study of `--trials` trials over the learner's shipped space (`hbm tune --space default`)
   finds the cell's best (validation CE: "tuned", the better of the best trial and the
   defaults, which are a point of the space too);
3. a default is the value that does well across cells, not on one: the consensus of the
   cells' tuned values (per parameter the median, on a log scale where the space is
   logarithmic; the most frequent choice for a categorical one). It is judged leaving one
   cell out: each cell runs the consensus of the *other* cells' tuned values ("proposed"),
   so a cell's own tuning never chose the values it is scored with. The proposed default
   printed is the consensus of all cells.

Everything is judged on the validation split; the test episodes are never read. All runs are
ordinary cached experiments (seed `TUNE_SEED`, as `hbm compare` tunes), so rerunning the
script reads them back and an interrupted run resumes where it stopped. Learners run one after
the other (every cell of one before the next), and the markdown table (`--out`) is rewritten
after each learner, so a partial run is a complete table for the learners it finished. One
line per cell is printed as it finishes. `--confirm-budget S` then runs the proposed default
against the current one at another budget, untuned, in every cell: a default chosen at one
budget must not handicap a learner at another.

    uv run python tools/derive_defaults.py --learners adam_feedforward --subjects sim01 sim02 \
        --games cartpole --budget-samples 20000 --trials 6
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

LEARNERS = ("ga_feedforward", "adam_feedforward", "cmaes_feedforward", "es_feedforward",
            "sgd_feedforward")  # fmt: skip
"""In run order: the learners whose defaults matter most to a first comparison first."""
SUBJECTS = ("sim01", "sim02", "sim03", "sim04")
GAMES = ("cartpole", "acrobot", "mountaincar", "lunarlander")
GOAL_PCT = 5.0
"""A default within this much of tuned validation CE does not handicap its learner."""

Cell = tuple[str, str]  # (player, game)


def consensus(tuned: Sequence[Mapping[str, Any]], space: Mapping[str, Any]) -> dict[str, Any]:
    """Per parameter of `space` (name -> `tune.ParamSpec`), the value that sits in the middle
    of the cells' tuned values: the median (of the logarithms where the space is on a log
    scale, so 1e-3 and 1e-1 meet at 1e-2), rounded for an integer; the most frequent choice
    of a categorical (ties: the earliest choice of the space)."""
    if not tuned:
        raise ValueError("no tuned values to take the consensus of")
    out: dict[str, Any] = {}
    for name, spec in space.items():
        values = [t[name] for t in tuned if name in t]
        if not values:
            continue
        if spec.kind == "categorical":
            counts = Counter(values)
            out[name] = max(spec.choices, key=lambda c: (counts[c], -spec.choices.index(c)))
            continue
        mid = (
            math.exp(statistics.median(math.log(v) for v in values))
            if spec.log
            else statistics.median(values)
        )
        out[name] = round(mid) if spec.kind == "int" else float(f"{mid:.3g}")
    return out


def leave_one_out(
    tuned: Mapping[Cell, Mapping[str, Any]], space: Mapping[str, Any]
) -> dict[Cell, dict[str, Any]]:
    """Per cell, the consensus of every other cell's tuned values (the cell itself left out);
    with a single cell, its own (nothing else to learn from: said so in the table)."""
    if len(tuned) == 1:
        return {c: dict(p) for c, p in tuned.items()}
    return {c: consensus([p for o, p in tuned.items() if o != c], space) for c in tuned}


def gap_pct(value: float, tuned: float) -> float:
    """How much worse than tuned, in % of tuned (validation CE: lower is better)."""
    return 100 * (value - tuned) / tuned


def _val(result: Mapping[str, Any] | None) -> float:
    from hbm_experiments.tune import VALIDATION_METRIC

    return float("nan") if result is None else float(result["metrics"][VALIDATION_METRIC])


def _dotted(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def derive(
    learner: str,
    *,
    subjects: Sequence[str],
    games: Sequence[str],
    budget_samples: int,
    trials: int,
    overrides: Sequence[str],
    report: Callable[[str], None] = print,
) -> dict[str, Any]:
    """One learner over every (player, game) cell: its rows, the current defaults of the
    space's parameters, the proposed default (consensus of all cells) and the tuned values."""
    from hbm_experiments.compare import TUNE_SEED, learner_config, run_waves
    from hbm_experiments.configs import RESOLVED_SECTIONS
    from hbm_experiments.tune import TuneError, best_experiment, load_space, trial_experiment, tune

    cells: list[Cell] = [(s, g) for g in games for s in subjects]
    bases = {
        c: learner_config(
            learner,
            dataset=c[1],
            subject=c[0],
            budget_samples=budget_samples,
            overrides=overrides,
            seed=TUNE_SEED,
        )
        for c in cells
    }
    space = load_space("default", bases[cells[0]])
    # the values the defaults run with (a field left None is the method's default)
    runs = {s: bases[cells[0]].resolved(s).model_dump(mode="json") for s in RESOLVED_SECTIONS}
    current = {k: _dotted(runs, k) for k in space}
    default: dict[Cell, float] = {}
    tuned: dict[Cell, tuple[float, dict[str, Any]]] = {}
    for c in cells:
        default[c] = _val(run_waves([bases[c]], parallel=1)[0])
        try:
            best, _ = best_experiment(tune(bases[c], space, trials=trials), bases[c])
            tuned[c] = (float(best.value), dict(best.params))
            if default[c] < tuned[c][0]:  # the defaults are a point of the space too
                tuned[c] = (default[c], {k: v for k, v in current.items() if v is not None})
        except TuneError as exc:  # every trial failed: the cell has no tuned value
            logging.warning("%s %s %s: %s", learner, *c, exc)
            tuned[c] = (float("nan"), {})
        report(
            f"{learner} {c[0]} {c[1]}: default {default[c]:.4f}, tuned {tuned[c][0]:.4f} "
            f"({gap_pct(default[c], tuned[c][0]):+.1f} %)"
        )
    ok = {c: p for c, (v, p) in tuned.items() if p and math.isfinite(v)}
    loo = leave_one_out(ok, space) if ok else {}
    rows = []
    for c in cells:
        t = tuned[c][0]
        proposed = float("nan")
        if c in loo:
            proposed = _val(run_waves([trial_experiment(bases[c], loo[c])], parallel=1)[0])
        report(f"{learner} {c[0]} {c[1]}: proposed {proposed:.4f} ({gap_pct(proposed, t):+.1f} %)")
        rows.append(
            {
                "learner": learner,
                "player": c[0],
                "game": c[1],
                "default": default[c],
                "tuned": t,
                "proposed": proposed,
                "tuned_params": tuned[c][1],
            }
        )
    return {
        "learner": learner,
        "rows": rows,
        "current": current,
        "proposed_params": consensus(list(ok.values()), space) if ok else {},
        "space": space,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per learner: the gaps of its defaults and of the proposed values to tuned, and how
    consistently the proposed values beat the defaults (cells won; Wilcoxon signed-rank on
    the paired differences, two-sided: one seed per cell, so a cell's difference holds the
    seed's luck and only a consistent sign across cells says more than noise)."""
    from scipy.stats import wilcoxon

    d = [gap_pct(r["default"], r["tuned"]) for r in rows]
    p = [gap_pct(r["proposed"], r["tuned"]) for r in rows]
    pairs = [(a, b) for a, b in zip(d, p, strict=True) if math.isfinite(a) and math.isfinite(b)]
    diffs = [b - a for a, b in pairs if b != a]
    pvalue = float(wilcoxon(diffs).pvalue) if len(diffs) >= 6 else float("nan")
    finite = [x for x in d if math.isfinite(x)]
    return {
        "cells": len(rows),
        "default_median": statistics.median(finite) if finite else float("nan"),
        "default_max": max(finite) if finite else float("nan"),
        "within_goal": sum(x <= GOAL_PCT for x in finite),
        "proposed_median": statistics.median(b for _, b in pairs) if pairs else float("nan"),
        "wins": sum(b < a for a, b in pairs),
        "compared": len(pairs),
        "wilcoxon_p": pvalue,
    }


def markdown(learners: Sequence[Mapping[str, Any]], *, budget_samples: int, trials: int) -> str:
    """The summary table per learner, the proposed values against the current ones with the
    spread of the cells' tuned values, and the table of every cell."""
    lines = [
        f"Validation CE at {budget_samples} samples seen, seed 1000, one run per cell; tuned = "
        f"best of {trials} TPE trials of the learner's default space in that cell; proposed = "
        "the consensus of the other cells' tuned values (leave one cell out); "
        "gap = (x - tuned) / tuned.",
        "",
        f"| learner | cells | default gap: median (max) | within {GOAL_PCT:g} % | "
        "proposed gap: median | proposed better than default | Wilcoxon p |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in learners:
        s = summary(item["rows"])
        lines.append(
            f"| {item['learner']} | {s['cells']} | {s['default_median']:+.1f} % "
            f"({s['default_max']:+.1f} %) | {s['within_goal']}/{s['cells']} | "
            f"{s['proposed_median']:+.1f} % | {s['wins']}/{s['compared']} | "
            f"{s['wilcoxon_p']:.2g} |"
        )
    lines.append("")
    for item in learners:
        parts = []
        for name, spec in item["space"].items():
            vals = sorted(
                r["tuned_params"][name] for r in item["rows"] if name in r["tuned_params"]
            )
            if not vals:
                continue
            spread = (
                f"{dict(Counter(vals))}"
                if spec.kind == "categorical"
                else f"tuned {_fmt(vals[0])}–{_fmt(vals[-1])}"
            )
            parts.append(
                f"`{name.split('.')[-1]}` {_fmt(item['current'].get(name))} → "
                f"{_fmt(item['proposed_params'].get(name))} ({spread})"
            )
        lines.append(f"- {item['learner']}: " + "; ".join(parts))
    lines += [
        "",
        "| learner | player | game | default | tuned | default gap | proposed | proposed gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in learners:
        for r in item["rows"]:
            lines.append(
                f"| {r['learner']} | {r['player']} | {r['game']} | {r['default']:.4f} | "
                f"{r['tuned']:.4f} | {gap_pct(r['default'], r['tuned']):+.1f} % | "
                f"{r['proposed']:.4f} | {gap_pct(r['proposed'], r['tuned']):+.1f} % |"
            )
    return "\n".join(lines) + "\n"


def confirm(
    item: Mapping[str, Any],
    *,
    budget_samples: int,
    overrides: Sequence[str],
    report: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The proposed default (consensus of all cells) against the current defaults at another
    budget, in every cell, untuned: does the proposal hold where it was not derived?"""
    from hbm_experiments.compare import TUNE_SEED, learner_config, run_waves
    from hbm_experiments.tune import trial_experiment

    rows = []
    for r in item["rows"]:
        base = learner_config(
            item["learner"],
            dataset=r["game"],
            subject=r["player"],
            budget_samples=budget_samples,
            overrides=overrides,
            seed=TUNE_SEED,
        )
        proposal = trial_experiment(base, item["proposed_params"])
        default, proposed = (_val(x) for x in run_waves([base, proposal], parallel=1))
        report(
            f"{item['learner']} {r['player']} {r['game']} at {budget_samples}: default "
            f"{default:.4f}, proposed {proposed:.4f} ({gap_pct(proposed, default):+.1f} %)"
        )
        rows.append({**r, "default": default, "proposed": proposed})
    return rows


def confirm_markdown(
    confirmed: Mapping[str, Sequence[Mapping[str, Any]]], *, budget_samples: int
) -> str:
    """Per learner, the proposal against the defaults at the confirming budget."""
    from scipy.stats import wilcoxon

    lines = [
        f"Validation CE at {budget_samples} samples seen, seed 1000, untuned: the proposed "
        "default (consensus of all cells) against the current defaults; change = "
        "(proposed - default) / default.",
        "",
        "| learner | cells | change: median (min, max) | proposed better | Wilcoxon p |",
        "|---|---|---|---|---|",
    ]
    for learner, rows in confirmed.items():
        ch = [gap_pct(r["proposed"], r["default"]) for r in rows]
        ch = [c for c in ch if math.isfinite(c)]
        if not ch:
            continue
        nonzero = [c for c in ch if c != 0]
        p = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 6 else float("nan")
        lines.append(
            f"| {learner} | {len(ch)} | {statistics.median(ch):+.1f} % ({min(ch):+.1f} %, "
            f"{max(ch):+.1f} %) | {sum(c < 0 for c in ch)}/{len(ch)} | {p:.2g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from hbm_experiments.files import atomic_write_text

    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--learners", nargs="+", default=list(LEARNERS))
    p.add_argument("--subjects", nargs="+", default=list(SUBJECTS))
    p.add_argument("--games", nargs="+", default=list(GAMES))
    p.add_argument("--budget-samples", type=int, default=48_000)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("results/derive_defaults.md"))
    p.add_argument(
        "--confirm-budget",
        type=int,
        help="also run the proposed defaults against the current ones at this budget",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    done: list[dict[str, Any]] = []
    confirmed: dict[str, list[dict[str, Any]]] = {}
    for learner in args.learners:
        done.append(
            derive(
                learner,
                subjects=args.subjects,
                games=args.games,
                budget_samples=args.budget_samples,
                trials=args.trials,
                overrides=args.overrides,
                report=lambda line: print(line, flush=True),
            )
        )
        text = markdown(done, budget_samples=args.budget_samples, trials=args.trials)
        if args.confirm_budget:
            confirmed[learner] = confirm(
                done[-1],
                budget_samples=args.confirm_budget,
                overrides=args.overrides,
                report=lambda line: print(line, flush=True),
            )
            text += "\n" + confirm_markdown(confirmed, budget_samples=args.confirm_budget)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
        print(f"wrote {args.out} ({len(done)} learner(s))", flush=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
