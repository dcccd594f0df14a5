"""`hbm compare`: which learner imitates this person best, as a verdict with its uncertainty.

Every learner gets the same budget (`training.max_samples`: samples seen, counted alike for a
population and for gradient descent), optionally the same tuning (`--tune-trials` trials of
the same per-trial budget, judged on validation CE, on a seed none of the verdict's runs
uses), and then runs on the same seeds (one job array). The verdict ranks the learners on test
CE and on every human-likeness yardstick, and compares every pair with the paired
differences over the shared seeds (`stats.paired_difference`, a t-interval), Holm-corrected
over the pairs of each yardstick (`stats.holm`), in one plain sentence per pair: a pair whose
interval holds 0 is "cannot tell apart". Runs under different budgets are never put in one
verdict silently: the verdict says so at the top.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .configs import ConfigError, parse_value
from .method_defaults import unchecked_defaults

if TYPE_CHECKING:
    from .stats import Interval, PairedComparison
    from .tasks import Experiment

__all__ = [
    "TUNE_SEED",
    "Verdict",
    "build_verdict",
    "compare_learners",
    "learner_config",
    "write_verdict",
]

logger = logging.getLogger(__name__)

TUNE_SEED = 1000
"""The seed of tuning trials: none of the verdict's runs (seeds 0..n-1) was chosen on it."""


def learner_config(
    method: str,
    *,
    dataset: str,
    subject: str,
    budget_samples: int,
    overrides: Sequence[str] = (),
    seed: int = 0,
    **infra: Any,
) -> Experiment:
    """The learner's config: its method's defaults, the budget in samples seen, the
    `overrides` (`KEY=VALUE` for every learner, `METHOD:KEY=VALUE` for one)."""
    from .configs import apply_overrides
    from .tasks import make_experiment

    mine = []
    for item in overrides:
        target, sep, rest = item.partition(":")
        if sep and "=" not in target:  # METHOD:KEY=VALUE
            if target == method:
                mine.append(rest)
        else:
            mine.append(item)
    data = {
        "method": method,
        "dataset": dataset,
        "subject": subject,
        "seed": seed,
        "training": {"max_samples": int(budget_samples)},
    }
    data = apply_overrides(data, mine)
    if infra:
        data["infra"] = infra
    return make_experiment(data, source=f"hbm compare: {method}")


def run_waves(
    experiments: Sequence[Experiment], *, parallel: int, retry: bool = False
) -> list[dict[str, Any] | None]:
    """Results in input order (None for a failed run). On Slurm one job array (its
    parallelism `parallel`); locally waves of `parallel` (`tune.run_wave`), so that K jobs,
    not all of them, share the machine's cores."""
    from .tune import run_wave, wave_workers

    if not experiments:
        return []
    cluster = experiments[0].infra.cluster
    size = parallel if cluster != "slurm" else len(experiments)
    out: list[dict[str, Any] | None] = []
    # local waves share one set of worker processes (their imports paid once, not per wave)
    with wave_workers(cluster, parallel) as pool:
        for start in range(0, len(experiments), size):
            wave = experiments[start : start + size]
            out += run_wave(wave, retry=retry, max_workers=parallel, workers=pool)
    return out


def compare_learners(
    methods: Sequence[str],
    *,
    dataset: str,
    subject: str,
    budget_samples: int,
    seeds: Sequence[int],
    tune_trials: int = 0,
    parallel: int = 1,
    overrides: Sequence[str] = (),
    retry: bool = False,
    **infra: Any,
) -> dict[str, list[dict[str, Any] | None]]:
    """Tune (with `tune_trials` > 0: each learner's default space, the same trials and budget),
    then run every learner on every seed; results per method in the order of `seeds`."""
    from .tasks import experiment_to_dict, infra_set, make_experiment
    from .tune import best_experiment, load_space, local_timeout, tune

    if len(set(methods)) != len(methods) or len(methods) < 2:
        raise ConfigError(f"hbm compare: give two or more different methods, got {list(methods)}")
    if parallel > 1 and infra.get("cluster") is None:
        infra = {**infra, "cluster": "local"}
    infra |= local_timeout(infra.get("cluster"), infra.get("timeout_min"))
    learners: dict[str, Experiment] = {}
    for method in methods:
        base = learner_config(
            method,
            dataset=dataset,
            subject=subject,
            budget_samples=budget_samples,
            overrides=overrides,
            **infra,
        )
        if tune_trials > 0:
            data = experiment_to_dict(base) | {"seed": TUNE_SEED}
            data["infra"] = infra_set(base)
            tuning_base = make_experiment(data, cls=type(base))
            study = tune(
                tuning_base,
                load_space("default", tuning_base),
                trials=tune_trials,
                parallel=parallel,
                retry=retry,
            )
            best, tuned = best_experiment(study, tuning_base)
            logger.info("%s: tuned on seed %d: %s", method, TUNE_SEED, best.params)
            base = tuned
        learners[method] = base
    exps: list[Experiment] = []
    for method in methods:
        data = experiment_to_dict(learners[method])
        for s in seeds:
            d = {**data, "seed": int(s), "infra": infra_set(learners[method])}
            if parallel > 1 and d.get("num_threads") is None:
                d["num_threads"] = 1  # out of the uid: K jobs, one core each
            exps.append(make_experiment(d, cls=type(learners[method])))
    results = run_waves(exps, parallel=parallel, retry=retry)
    out: dict[str, list[dict[str, Any] | None]] = {}
    for i, method in enumerate(methods):
        out[method] = results[i * len(seeds) : (i + 1) * len(seeds)]
    return out


# ----------------------------------------------------------------------------------------------
# The verdict


@dataclass(frozen=True)
class Yardstick:
    """One thing the learners are ranked on: lower `value` is better."""

    key: str
    label: str
    better: str  # the phrase between winner and loser in a sentence

    def value(self, result: Mapping[str, Any]) -> float | None:
        if self.key == "test_ce":
            v = result.get("metrics", {}).get("test_ce")
            return None if v is None else float(v)
        from .humanlike import gap

        return gap(self.key, (result.get("humanlike") or {}).get(self.key))


def yardsticks(subject: str) -> list[Yardstick]:
    """Test CE, then each human-likeness metric as its gap from the person (0 = the person;
    `humanlike.gap`), so that lower is better for every one."""
    from .humanlike import METRICS

    out = [Yardstick("test_ce", "test CE", f"predicts {subject}'s actions better than")]
    for key, info in METRICS.items():
        out.append(Yardstick(key, f"{info.label} (gap)", "is closer to the person than"))
    return out


@dataclass
class Verdict:
    """Rankings and pairwise comparisons of learners on one person and game."""

    subject: str
    dataset: str
    seeds: list[int]
    rankings: dict[str, list[tuple[str, Interval]]]  # yardstick label -> best first
    comparisons: dict[str, list[tuple[str, str, PairedComparison, str]]]  # label -> (a, b, c, s)
    warnings: list[str] = field(default_factory=list)
    budgets: dict[str, Any] = field(default_factory=dict)


def _budget(result: Mapping[str, Any]) -> str:
    b = result.get("budget")
    if b is None:
        return "unknown"
    return json.dumps(b, sort_keys=True) if isinstance(b, Mapping) else str(b)


def build_verdict(
    results: Mapping[str, Sequence[Mapping[str, Any] | None]],
    *,
    subject: str,
    dataset: str,
    seeds: Sequence[int],
    confidence: float = 0.95,
    unchecked: Sequence[str] = (),
) -> Verdict:
    """The verdict over `results[method][i]` = the run of seed `seeds[i]` (None: failed).
    `unchecked`: learners run untuned at defaults never measured against tuning
    (`method_defaults.unchecked_defaults`), named in a note."""
    from .stats import comparison_sentence, holm, mean_interval, paired_difference

    methods = list(results)
    warnings: list[str] = []
    budgets = {m: sorted({_budget(r) for r in rs if r is not None}) for m, rs in results.items()}
    if len({b for bs in budgets.values() for b in bs}) > 1:
        warnings.append(
            "the learners ran under different budgets ("
            + "; ".join(f"{m}: {', '.join(b)}" for m, b in budgets.items())
            + "): the comparison is not one of equal compute"
        )
    if unchecked:
        warnings.append(
            f"{', '.join(unchecked)} ran untuned at hbm-ne's and the lab's defaults, which were "
            "never measured against tuning (only the feedforward learners' were): a difference "
            "may be their defaults'; --tune-trials gives every learner the same tuning"
        )
    for m, rs in results.items():
        failed = [s for s, r in zip(seeds, rs, strict=True) if r is None]
        if failed:
            warnings.append(f"{m}: seeds {failed} failed and are left out of its pairs")
    rankings: dict[str, list[tuple[str, Interval]]] = {}
    comparisons: dict[str, list[tuple[str, str, PairedComparison, str]]] = {}
    for y in yardsticks(subject):
        values = {m: [None if r is None else y.value(r) for r in rs] for m, rs in results.items()}
        if all(v is None for vs in values.values() for v in vs):
            continue  # a yardstick these results do not have
        ranked = sorted(
            ((m, mean_interval(values[m], confidence)) for m in methods),
            key=lambda mi: (mi[1].n == 0, mi[1].mean),
        )
        rankings[y.label] = ranked
        pairs = list(itertools.combinations([m for m, _ in ranked], 2))
        raw = [paired_difference(values[a], values[b], confidence=confidence) for a, b in pairs]
        adjusted = holm([c.p_value for c in raw])
        rows = []
        for (a, b), c, p in zip(pairs, raw, adjusted, strict=True):
            c = c.with_adjusted_p(p) if p is not None else c
            context = f"{c.n} seeds" + (f", Holm over {len(pairs)} pairs" if len(pairs) > 1 else "")
            sentence = comparison_sentence(
                a, b, y.label, c, lower_is_better=True, context=context, better=y.better
            )
            rows.append((a, b, c, sentence))
        comparisons[y.label] = rows
    return Verdict(subject, dataset, list(seeds), rankings, comparisons, warnings, budgets)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _interval(iv: Interval) -> str:
    if iv.n == 0:
        return "-"
    if iv.low is None or iv.high is None:
        return f"{iv.mean:.4g} (n={iv.n})"
    return f"{iv.mean:.4g} [{iv.low:.4g}, {iv.high:.4g}]"


def verdict_markdown(v: Verdict) -> str:
    """The verdict as markdown: warnings, one ranking table per yardstick, the sentences."""
    lines = [f"# Verdict: {v.dataset}, {v.subject} ({len(v.seeds)} seeds)", ""]
    for w in v.warnings:
        lines.append(f"> **Note:** {w}")
    if v.warnings:
        lines.append("")
    if v.budgets and len({b for bs in v.budgets.values() for b in bs}) == 1:
        lines += [f"Budget of every run: {next(iter(v.budgets.values()))[0]}", ""]
    lines += [
        "Lower is better on every yardstick (human-likeness as the gap from the person's own "
        "value). Intervals: 95 % t-intervals across seeds; pairs: paired differences over the "
        "shared seeds, p-values Holm-corrected over the pairs of each yardstick.",
        "",
    ]
    for label, ranked in v.rankings.items():
        lines += [f"## {label}", "", "| rank | learner | mean [95 % interval] |", "|---|---|---|"]
        lines += [f"| {i} | {m} | {_interval(iv)} |" for i, (m, iv) in enumerate(ranked, 1)]
        lines.append("")
        lines += [f"- {s}" for _, _, _, s in v.comparisons.get(label, [])]
        lines.append("")
    return "\n".join(lines)


def verdict_html(v: Verdict) -> str:
    """The same as `verdict_markdown`, as one self-contained page."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Verdict: {e(v.dataset)}, {e(v.subject)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        ".note{background:#fff3cd;padding:4px}</style></head><body>",
        f"<h1>Verdict: {e(v.dataset)}, {e(v.subject)} ({len(v.seeds)} seeds)</h1>",
    ]
    parts += [f"<p class='note'><b>Note:</b> {e(w)}</p>" for w in v.warnings]
    parts.append(
        "<p>Lower is better on every yardstick (human-likeness as the gap from the person's "
        "own value). Intervals: 95 % t-intervals across seeds; pairs: paired differences over "
        "the shared seeds, p-values Holm-corrected over the pairs of each yardstick.</p>"
    )
    for label, ranked in v.rankings.items():
        parts.append(f"<h2>{e(label)}</h2><table><tr><th>rank</th><th>learner</th>")
        parts.append("<th>mean [95 % interval]</th></tr>")
        parts += [
            f"<tr><td>{i}</td><td>{e(m)}</td><td>{e(_interval(iv))}</td></tr>"
            for i, (m, iv) in enumerate(ranked, 1)
        ]
        parts.append("</table><ul>")
        parts += [f"<li>{e(s)}</li>" for _, _, _, s in v.comparisons.get(label, [])]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_verdict(v: Verdict, out: Path) -> list[Path]:
    """`verdict.md` and `verdict.html` in `out` (atomic writes)."""
    from .files import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    return [
        atomic_write_text(out / "verdict.md", verdict_markdown(v) + "\n"),
        atomic_write_text(out / "verdict.html", verdict_html(v) + "\n"),
    ]


# ----------------------------------------------------------------------------------------------
# The command line


def add_parser(sub: Any) -> None:
    """`hbm compare`: registered by `cli.build_parser`; `args.handler` runs it."""
    from .cli import _add_common
    from .configs import ENVIRONMENTS

    p = sub.add_parser(
        "compare", help="which learner imitates a person best: tuned, same seeds, a verdict"
    )
    p.add_argument("--subject", required=True, help="the person (or simulated player)")
    p.add_argument("--dataset", required=True, choices=list(ENVIRONMENTS))
    p.add_argument("--methods", required=True, nargs="+", help="two or more learners")
    p.add_argument(
        "--budget-samples",
        type=int,
        required=True,
        metavar="S",
        help="training.max_samples of every run (samples seen, counted alike for every learner)",
    )
    p.add_argument("--seeds", type=int, default=10, metavar="N", help="seeds 0..N-1")
    p.add_argument(
        "--tune-trials",
        type=int,
        default=0,
        metavar="T",
        help="tune each learner first: T trials of its default space, judged on validation CE",
    )
    p.add_argument("--parallel", type=int, default=1, metavar="K", help="runs at a time")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="[METHOD:]KEY=VALUE",
        help="a config value for every learner (or one: adam_feedforward:training.batch_size=64)",
    )
    p.add_argument("--cluster", choices=["none", "local", "slurm", "auto"])
    p.add_argument("--retry", action="store_true", help="rerun runs that failed")
    p.add_argument("--out", type=Path, default=Path("results/compare"))
    _add_common(p)
    p.set_defaults(handler=run_cli)


def run_cli(args: Any) -> str:
    """`hbm compare`: the verdict's markdown (what `cli` prints), written with its HTML."""
    from .cli import _infra

    infra = _infra(args)
    retry = infra.pop("mode", None) == "retry"
    if args.seeds < 1 or args.tune_trials < 0 or args.parallel < 1 or args.budget_samples < 1:
        raise ConfigError("hbm compare: --seeds, --parallel, --budget-samples >= 1, trials >= 0")
    for item in args.overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected [METHOD:]KEY=VALUE")
        parse_value(item.partition("=")[2])
    seeds = list(range(args.seeds))
    results = compare_learners(
        args.methods,
        dataset=args.dataset,
        subject=args.subject,
        budget_samples=args.budget_samples,
        seeds=seeds,
        tune_trials=args.tune_trials,
        parallel=args.parallel,
        overrides=args.overrides,
        retry=retry,
        **infra,
    )
    unchecked = [] if args.tune_trials else unchecked_defaults(args.methods)
    verdict = build_verdict(
        results, subject=args.subject, dataset=args.dataset, seeds=seeds, unchecked=unchecked
    )
    files = write_verdict(verdict, args.out)
    return verdict_markdown(verdict) + "\n" + "\n".join(f"wrote {f}" for f in files)
