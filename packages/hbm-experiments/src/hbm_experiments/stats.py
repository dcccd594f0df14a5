"""Intervals and paired comparisons that say when the data cannot decide.

Why: a report row aggregates a handful of training seeds, and two learners are compared on
the same seeds (same data split, same held-out game seeds). A t-interval over 2 seeds has
t = 12.7 and is honest but useless; a difference between two rows' separate intervals
ignores that the seeds are shared. So:

- `mean_interval(values)` -> `Interval`: mean and t-interval, honest for its n; with fewer
  than 2 values there is no interval (`decided` False) and with fewer than `MIN_DECIDING`
  values a note says the interval is too wide to decide anything.
- `paired_difference(a, b, method=...)` -> `PairedComparison`: `a[i] - b[i]` over shared
  seeds, as a t-interval with the paired t-test (`"t"`, `scipy.stats.ttest_rel`), a BCa
  bootstrap interval of the mean difference with an exact sign-flip permutation p-value
  (`"bootstrap"`, `scipy.stats.bootstrap` / `permutation_test`), or the Hodges-Lehmann shift
  with its exact signed-rank interval and the Wilcoxon p-value (`"wilcoxon"`,
  `scipy.stats.wilcoxon`; Hollander, Wolfe & Chicken, *Nonparametric Statistical Methods*,
  3rd ed., section 3.3). `decided` is True when the interval excludes 0.
- `difference_of_means(a, b)` -> `Interval`: mean(a) - mean(b) of two independent samples
  (a model's returns against the person's) with a BCa bootstrap interval: unlike a
  per-episode percentage it does not explode where the person's returns are near 0.
- `holm(p_values)`: Holm-Bonferroni adjusted p-values (Holm 1979), for the many comparisons
  of one report; `PairedComparison.with_adjusted_p` keeps the adjusted p with the comparison,
  and a comparison whose adjusted p is not below 1 - confidence is not decided.
- `comparison_sentence(...)`: "adam_feedforward closer to the person than ga_feedforward on
  disc AUC: Δ -0.12 [-0.18, -0.06], p = 0.002, 5 seeds", or "... cannot tell apart with this
  data (...)" when it is not decided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

__all__ = [
    "MIN_DECIDING",
    "Interval",
    "PairedComparison",
    "comparison_sentence",
    "difference_of_means",
    "holm",
    "mean_interval",
    "paired_difference",
]

MIN_DECIDING = 3
"""Fewer values than this get a note: a t-interval over 2 values multiplies the standard
error by 12.7 (at 95 %), which decides nothing in practice."""

Method = Literal["t", "bootstrap", "wilcoxon"]
Values = Sequence[float | None] | np.ndarray


@dataclass(frozen=True)
class Interval:
    """A mean over `n` values with its `confidence` interval [low, high] (None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95
    note: str | None = None

    @property
    def decided(self) -> bool:
        """Whether there is an interval at all (n >= 2 finite values)."""
        return self.low is not None and self.high is not None

    @property
    def half_width(self) -> float | None:
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class PairedComparison:
    """`a - b` over `n` shared seeds: its estimate `delta`, interval [low, high], p-value."""

    delta: float
    low: float | None
    high: float | None
    p_value: float | None
    n: int
    method: str
    confidence: float = 0.95
    p_adjusted: float | None = None
    note: str | None = None

    @property
    def p(self) -> float | None:
        """The p-value to judge by: Holm-adjusted where `with_adjusted_p` set it."""
        return self.p_adjusted if self.p_adjusted is not None else self.p_value

    @property
    def decided(self) -> bool:
        """The interval excludes 0 (and the adjusted p, where set, is below 1 - confidence)."""
        if self.low is None or self.high is None:
            return False
        if not (self.low > 0 or self.high < 0):
            return False
        return self.p_adjusted is None or self.p_adjusted < 1 - self.confidence

    def with_adjusted_p(self, p_adjusted: float) -> PairedComparison:
        return replace(self, p_adjusted=float(p_adjusted))

    def flipped(self) -> PairedComparison:
        """The same comparison as `b - a`."""
        return replace(
            self,
            delta=-self.delta,
            low=None if self.high is None else -self.high,
            high=None if self.low is None else -self.low,
        )


def _finite(values: Values) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return arr[np.isfinite(arr)]


def _few_note(n: int, confidence: float) -> str | None:
    if n < 2:
        return f"{n} value{'s' if n != 1 else ''}: no interval, cannot decide"
    if n < MIN_DECIDING:
        t = float(_t_quantile(confidence, n - 1))
        return f"only {n} values: the t-interval is {t:.1f} standard errors wide each side"
    return None


def _t_quantile(confidence: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def mean_interval(values: Values, confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of the finite `values` (None and NaN are left out: count
    them yourself where a missing value means a failed run)."""
    arr = _finite(values)
    n = int(arr.size)
    note = _few_note(n, confidence)
    if n == 0:
        return Interval(float("nan"), None, None, 0, confidence, note)
    mean = float(arr.mean())
    if n == 1:
        return Interval(mean, None, None, 1, confidence, note)
    half = _t_quantile(confidence, n - 1) * float(arr.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence, note)


def _signed_rank_counts(n: int) -> np.ndarray:
    """Number of sign patterns of ranks 1..n giving each signed-rank sum 0..n(n+1)/2."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=float)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()
    return counts


def _hodges_lehmann(d: np.ndarray, confidence: float) -> tuple[float, float | None, float | None]:
    """Median of the Walsh averages and their order-statistic interval, exact for the
    signed-rank null distribution (Hollander, Wolfe & Chicken, section 3.3)."""
    i, j = np.triu_indices(d.size)
    walsh = np.sort((d[i] + d[j]) / 2)
    estimate = float(np.median(walsh))
    counts = _signed_rank_counts(d.size)
    cdf = np.cumsum(counts) / counts.sum()
    alpha = 1 - confidence
    # largest c with P(T <= c - 1) <= alpha/2: the interval is [W_(c), W_(M+1-c)] (1-based)
    c = int(np.searchsorted(cdf, alpha / 2, side="right"))
    if c < 1:
        return estimate, None, None  # too few pairs for this confidence
    return estimate, float(walsh[c - 1]), float(walsh[walsh.size - c])


def paired_difference(
    a: Values,
    b: Values,
    *,
    confidence: float = 0.95,
    method: Method = "t",
    seed: int = 0,
) -> PairedComparison:
    """`a[i] - b[i]` over pairs sharing a seed (a NaN or None on either side drops the pair).

    `"t"`: mean difference, paired t-interval and t-test. `"bootstrap"`: mean difference,
    BCa bootstrap interval (9999 resamples, generator `seed`) and the exact two-sided sign-flip
    permutation p-value. `"wilcoxon"`: Hodges-Lehmann shift, its exact signed-rank interval and
    the two-sided Wilcoxon signed-rank p-value. Fewer than 2 pairs: no interval, no p.
    """
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired_difference: {len(a)} values against {len(b)}; pairs expected")
    if method not in ("t", "bootstrap", "wilcoxon"):
        raise ValueError(f"method {method!r}: expected 't', 'bootstrap' or 'wilcoxon'")
    x = np.asarray([np.nan if v is None else v for v in a], dtype=float)
    y = np.asarray([np.nan if v is None else v for v in b], dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    n = int(d.size)
    note = _few_note(n, confidence) if method == "t" else None
    if n == 0:
        return PairedComparison(float("nan"), None, None, None, 0, method, confidence, note=note)
    if n < 2:
        note = _few_note(n, confidence)
        return PairedComparison(float(d[0]), None, None, None, n, method, confidence, note=note)
    if np.all(d == d[0]):  # no spread: every test is degenerate; the difference is exact
        p = 1.0 if d[0] == 0 else 0.0
        note = "every pair differs by the same amount: no spread to test against"
        return PairedComparison(
            float(d[0]), float(d[0]), float(d[0]), p, n, method, confidence, note=note
        )
    if method == "t":
        res = stats.ttest_rel(x[keep], y[keep])
        ci = res.confidence_interval(confidence)
        return PairedComparison(
            float(d.mean()), float(ci.low), float(ci.high), float(res.pvalue), n, "t",
            confidence, note=note,
        )  # fmt: skip
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        boot = stats.bootstrap(
            (d,), np.mean, confidence_level=confidence, n_resamples=9999, method="BCa", rng=rng
        )
        perm = stats.permutation_test(
            (d,),
            np.mean,
            permutation_type="samples",
            n_resamples=9999 if n > 13 else np.inf,  # exact below 2**13 sign patterns
            alternative="two-sided",
            rng=rng,
        )
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        if n < 10:
            note = f"only {n} pairs: a bootstrap interval is too narrow at this size"
        return PairedComparison(
            float(d.mean()),
            low if np.isfinite(low) else None,
            high if np.isfinite(high) else None,
            float(perm.pvalue),
            n,
            "bootstrap",
            confidence,
            note=note,
        )
    est, low_w, high_w = _hodges_lehmann(d, confidence)
    p = float(stats.wilcoxon(x[keep], y[keep]).pvalue)
    if low_w is None:
        note = f"only {n} pairs: no signed-rank interval at {confidence:.0%}"
    return PairedComparison(est, low_w, high_w, p, n, "wilcoxon", confidence, note=note)


def difference_of_means(
    a: Values, b: Values, *, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """mean(a) - mean(b) with a BCa bootstrap interval (each sample resampled on its own,
    9999 resamples, generator `seed`); `n` is the smaller sample's size. Fewer than 2 values
    on a side: no interval."""
    from scipy import stats

    x, y = _finite(a), _finite(b)
    n = int(min(x.size, y.size))
    if n == 0:
        return Interval(float("nan"), None, None, 0, confidence, "no values on one side")
    delta = float(x.mean() - y.mean())
    if n < 2:
        return Interval(delta, None, None, n, confidence, "1 value on one side: no interval")
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Interval(delta, delta, delta, n, confidence, "no spread on either side")

    def diff(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(u.mean(axis=axis) - v.mean(axis=axis))

    res = stats.bootstrap(
        (x, y),
        diff,
        confidence_level=confidence,
        n_resamples=9999,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        return Interval(delta, None, None, n, confidence, "bootstrap interval undefined")
    note = f"only {n} values on one side: a bootstrap interval is too narrow" if n < 10 else None
    return Interval(delta, low, high, n, confidence, note)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values in the input order (None stays None and does not
    count as a test): the k-th smallest of m p-values is multiplied by m - k + 1, made
    monotone, capped at 1."""
    idx = [i for i, p in enumerate(p_values) if p is not None and np.isfinite(p)]
    out: list[float | None] = [None] * len(p_values)
    m = len(idx)
    running = 0.0
    for k, i in enumerate(sorted(idx, key=lambda i: float(p_values[i] or 0.0))):
        running = max(running, min(1.0, (m - k) * float(p_values[i] or 0.0)))
        out[i] = running
    return out


def _num(value: float) -> str:
    return f"{value:+.3g}" if value != 0 else "0"


def _p(value: float) -> str:
    return f"p = {value:.2g}" if value >= 0.001 else "p < 0.001"


def comparison_sentence(
    a_name: str,
    b_name: str,
    metric_label: str,
    cmp: PairedComparison,
    *,
    lower_is_better: bool,
    context: str,
    better: str = "closer to the person than",
) -> str:
    """One line for a report: "A closer to the person than B on <metric>: Δ -0.12 [-0.18,
    -0.06], p = 0.002, <context>" (Δ is winner minus loser), or "A vs B on <metric>: cannot
    tell apart with this data (Δ A-B ..., <context>)". `better` is the phrase between the
    winner and the loser ("predicts sim01's actions better than"); `context` names the data
    ("12 held-out episodes, 5 seeds")."""
    p = cmp.p
    if cmp.decided and cmp.low is not None and cmp.high is not None:
        a_wins = (cmp.delta < 0) == lower_is_better
        win, lose, c = (a_name, b_name, cmp) if a_wins else (b_name, a_name, cmp.flipped())
        assert c.low is not None and c.high is not None
        tail = f", {_p(p)}" if p is not None else ""
        return (
            f"{win} {better} {lose} on {metric_label}: "
            f"Δ {_num(c.delta)} [{_num(c.low)}, {_num(c.high)}]{tail}, {context}"
        )
    if cmp.low is not None and cmp.high is not None:
        detail = f"Δ {_num(cmp.delta)} [{_num(cmp.low)}, {_num(cmp.high)}]"
        if p is not None:
            detail += f", {_p(p)}"
    elif np.isfinite(cmp.delta):
        detail = f"Δ {_num(cmp.delta)}, no interval from {cmp.n} pair{'s' if cmp.n != 1 else ''}"
    else:
        detail = "no shared seeds"
    return (
        f"{a_name} vs {b_name} on {metric_label}: cannot tell apart with this data "
        f"({detail}; {context})"
    )
