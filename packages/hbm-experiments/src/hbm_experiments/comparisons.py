"""Which report row is closer to the person: paired differences over shared training seeds.

Why: two rows of one person share their held-out episodes (same data, same split) and, where
their seeds match, their training seeds; comparing each row's own interval ignores that
pairing and the many comparisons a report makes. Here two rows that differ in one factor
(the method, the CL input, or one sweep value) are compared seed by seed on every metric
(`stats.paired_difference`), p-values are Holm-adjusted across the report's comparisons of
one metric, and each comparison becomes one sentence that says "cannot tell apart" when the
data cannot decide. Metrics that fail the validity suite on a game are marked with its reason
(`humanlike.metric_validity`) rather than read as if they worked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .stats import PairedComparison, comparison_sentence, holm, paired_difference

if TYPE_CHECKING:
    from .report import ConfigGroup

__all__ = [
    "TERMINAL_METRICS",
    "Contrast",
    "MetricSpec",
    "contrasts",
    "markdown_section",
    "metric_specs",
    "metric_validity",
    "terminal_lines",
]


@dataclass(frozen=True)
class MetricSpec:
    """One per-seed number a comparison is made on, and which way is better."""

    key: str  # "test_ce", "return_gap" or a humanlike metric key
    label: str
    value: Callable[[Mapping[str, Any]], float | None]  # from one result
    better: str  # "<winner> <better> <loser>"
    humanlike: bool  # a human-likeness gap (subject to the validity suite)


def _test_ce(result: Mapping[str, Any]) -> float | None:
    return _finite((result.get("metrics") or {}).get("test_ce"))


def _return_gap(result: Mapping[str, Any]) -> float | None:
    """|mean model return - mean person return| on the person's held-out seeds."""
    b = result.get("behaviour") or {}
    model, human = b.get("model_returns"), b.get("human_returns")
    if not model or not human:
        return None
    return abs(float(np.mean(model)) - float(np.mean(human)))


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def metric_specs(subject: str) -> list[MetricSpec]:
    """Test cross-entropy, the gap of each human-likeness metric from its ideal
    (`humanlike.gap`, lower = more like the person) and the gap in mean return."""
    from .humanlike import METRICS, gap

    specs = [
        MetricSpec("test_ce", "test CE", _test_ce, f"predicts {subject}'s actions better than",
                   humanlike=False),
    ]  # fmt: skip

    def gap_of(key: str) -> Callable[[Mapping[str, Any]], float | None]:
        def value(result: Mapping[str, Any]) -> float | None:
            return _finite(gap(key, _finite((result.get("humanlike") or {}).get(key))))

        return value

    for key, info in METRICS.items():
        if key == "return_diff":  # the same as the return gap below
            continue
        specs.append(
            MetricSpec(key, info.label, gap_of(key), "closer to the person than", humanlike=True)
        )
    specs.append(
        MetricSpec("return_gap", "mean return", _return_gap,
                   "closer to the person's mean return than", humanlike=False)
    )  # fmt: skip
    return specs


def metric_validity(env: str, key: str, protocol: str = "holdout") -> tuple[bool, str]:
    """Whether `key` passed the validity suite on `env` (and why not): the verdicts shipped
    with the package (`humanlike.metric_validity`, for the row's target `protocol`: one
    split's held-out episodes or, cross-fitted, every episode; for the Overcooked kitchens
    their own known-answer check on real players, `kitchen_validity`); an unknown game or
    metric is not valid."""
    from . import humanlike
    from .kitchen_validity import kitchen_validity

    kitchen = kitchen_validity(env, key)
    if kitchen is not None:
        ok, why = kitchen
        return ok, str(why or ("" if ok else "failed the kitchens' known-answer check"))
    try:
        # the callee's own default for a held-out row (stand-ins may take two arguments)
        args = (env, key) if protocol == "holdout" else (env, key, protocol)
        ok, reason = humanlike.metric_validity(*args)
    except (KeyError, ValueError) as exc:  # a game or metric the suite does not know
        return False, str(exc)
    return bool(ok), str(reason or ("" if ok else "failed the validity suite"))


@dataclass(frozen=True)
class Contrast:
    """Row `a` against row `b` of one person on one metric, over their shared seeds."""

    dataset: str
    subject: str
    a: str
    b: str
    metric: MetricSpec
    comparison: PairedComparison
    episodes: int  # the person's held-out episodes every value was measured on
    valid: bool = True
    reason: str = ""

    @property
    def context(self) -> str:
        n = self.comparison.n
        return f"{self.episodes} held-out episodes, {n} seed{'s' if n != 1 else ''}"

    @property
    def decided(self) -> bool:
        return self.valid and self.comparison.decided

    def sentence(self) -> str:
        text = comparison_sentence(
            self.a,
            self.b,
            self.metric.label,
            self.comparison,
            lower_is_better=True,
            context=self.context,
            better=self.metric.better,
        )
        if not self.valid:
            text += f" [✗ on {self.dataset}, validity suite: {self.reason}]"
        return text


def _held_out_episodes(g: ConfigGroup) -> int:
    """The person's held-out episodes behind every value of the group (games without
    returns too: the count the data split recorded)."""
    n = (g.results()[0].get("data") or {}).get("n_test_episodes")
    return int(n) if n is not None else len(g.human_returns())


def _factors(g: ConfigGroup, varying: Sequence[str]) -> dict[str, Any]:
    return {"method": g.method, "CL": g.cl, **{k: g.config.get(k) for k in varying}}


# The fields that choose the person's held-out episodes: rows that differ in one were tested
# on other episodes (cross-fitting's folds above all), so their seeds do not pair.
SPLIT_KEYS = ("data.holdout", "data.holdout_pct", "data.split_seed", "data.crossfit_folds",
              "data.crossfit_fold")  # fmt: skip


def _one_factor_apart(a: ConfigGroup, b: ConfigGroup, varying: Sequence[str]) -> bool:
    if any(a.config.get(k) != b.config.get(k) for k in SPLIT_KEYS):
        return False
    fa, fb = _factors(a, varying), _factors(b, varying)
    return sum(fa[k] != fb[k] for k in fa) == 1


def _by_seed(g: ConfigGroup, spec: MetricSpec) -> dict[int, float | None]:
    return {int(r.config.get("seed", 0)): spec.value(res) for r, res in zip(
        g.records, g.results(), strict=True)}  # fmt: skip


def contrasts(
    groups: Sequence[ConfigGroup],
    varying: Sequence[str],
    *,
    confidence: float = 0.95,
    method: str = "t",
) -> list[Contrast]:
    """Every pair of one person's rows that differ in one factor and were tested on the same
    held-out episodes (`SPLIT_KEYS` equal: never two folds of a cross-fit), on every metric
    both rows have, paired over their shared seeds; p-values Holm-adjusted per metric across
    the report. A metric that fails the validity suite on the game is kept, marked invalid."""
    from .stats import Method

    out: list[Contrast] = []
    for i, ga in enumerate(groups):
        for gb in groups[i + 1 :]:
            if (ga.dataset, ga.subject) != (gb.dataset, gb.subject):
                continue
            if not _one_factor_apart(ga, gb, varying):
                continue
            episodes = _held_out_episodes(ga)
            for spec in metric_specs(ga.subject):
                va, vb = _by_seed(ga, spec), _by_seed(gb, spec)
                shared = sorted(set(va) & set(vb))
                a = [va[s] for s in shared]
                b = [vb[s] for s in shared]
                if all(x is None for x in a) or all(x is None for x in b):
                    continue
                m: Method = method  # type: ignore[assignment]
                cmp = paired_difference(a, b, confidence=confidence, method=m)
                valid, reason = (
                    metric_validity(ga.dataset, spec.key) if spec.humanlike else (True, "")
                )
                out.append(
                    Contrast(ga.dataset, ga.subject, ga.label(varying), gb.label(varying), spec,
                             cmp, episodes, valid, reason)
                )  # fmt: skip
    # Holm across the report's comparisons of each metric
    for key in {c.metric.key for c in out}:
        idx = [i for i, c in enumerate(out) if c.metric.key == key]
        adjusted = holm([out[i].comparison.p_value for i in idx])
        for i, p in zip(idx, adjusted, strict=True):
            if p is not None:
                out[i] = replace(out[i], comparison=out[i].comparison.with_adjusted_p(p))
    return out


def markdown_section(found: Sequence[Contrast]) -> str:
    """The comparisons of a report as markdown, one list per person (decided ones bold)."""
    if not found:
        return "_no two rows of one person differ in a single factor_\n"
    lines = [
        "Rows of one person that differ in one factor (method, CL input or one sweep value), "
        "compared seed by seed over their shared seeds (paired t), p-values Holm-adjusted per "
        "metric across this report. Each metric is its gap from the person (lower = closer).\n"
    ]
    people = sorted({(c.dataset, c.subject) for c in found})
    for dataset, subject in people:
        lines.append(f"### {dataset}, {subject}\n")
        lines += [
            f"- {'**' if c.decided else ''}{c.sentence()}{'**' if c.decided else ''}"
            for c in found
            if (c.dataset, c.subject) == (dataset, subject)
        ]
        lines.append("")
    return "\n".join(lines)


# The comparisons a terminal shows (markdown and HTML show every metric)
TERMINAL_METRICS = ("test_ce", "discriminator_auc")


def terminal_lines(found: Sequence[Contrast]) -> str:
    """The headline comparisons (`TERMINAL_METRICS`) under the terminal table."""
    shown = [c for c in found if c.metric.key in TERMINAL_METRICS]
    if not shown:
        return ""
    head = "\n\nPaired over shared seeds (Holm-adjusted; every metric in report.md):\n"
    return head + "\n".join(f"  {c.sentence()}" for c in shown)
