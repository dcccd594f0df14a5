"""Intervals and paired comparisons on known answers: numbers worked by hand from their
formulas, scipy's own tests, and the duality of a test and its interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hbm_experiments.stats import (
    comparison_sentence,
    difference_of_means,
    holm,
    mean_interval,
    paired_difference,
)
from scipy import stats

A = [0.80, 0.75, 0.90, 0.85, 0.70]
B = [0.70, 0.72, 0.80, 0.78, 0.69]  # A - B = .10 .03 .10 .07 .01: mean .062, sd .04087


def test_mean_interval_is_the_t_interval_and_says_when_too_few() -> None:
    iv = mean_interval([1.0, 2.0, 4.0, None, float("nan")])  # None/NaN are not values
    assert iv.n == 3 and iv.mean == pytest.approx(7 / 3)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 df), tabulated
    assert iv.half_width == pytest.approx(half, rel=1e-9)
    assert (iv.low, iv.high) == pytest.approx(
        stats.t.interval(0.95, 2, loc=7 / 3, scale=sd / math.sqrt(3)), rel=1e-12
    )
    assert iv.decided and iv.note is None
    two = mean_interval([0.6, 0.8])  # t = 12.7: honest, and said to be useless
    assert two.decided and two.half_width == pytest.approx(12.7062 * 0.1, rel=1e-4)
    assert two.note is not None and "12.7" in two.note
    one = mean_interval([0.7])
    assert one.mean == 0.7 and not one.decided and one.low is None
    assert one.note is not None and "cannot decide" in one.note
    assert mean_interval([]).n == 0 and math.isnan(mean_interval([]).mean)


def test_paired_t_matches_the_hand_computation_and_scipy() -> None:
    cmp = paired_difference(A, B)
    d = np.subtract(A, B)
    se = d.std(ddof=1) / math.sqrt(5)
    assert cmp.delta == pytest.approx(0.062, abs=1e-12)
    assert d.std(ddof=1) == pytest.approx(0.040866, abs=1e-6)
    t = 0.062 / se
    assert cmp.p_value == pytest.approx(2 * stats.t.sf(t, 4), rel=1e-9)
    assert cmp.p_value == pytest.approx(0.0275, abs=2e-4)  # t = 3.392 on 4 df
    assert (cmp.low, cmp.high) == pytest.approx((0.062 - 2.776445 * se, 0.062 + 2.776445 * se))
    assert cmp.decided and cmp.n == 5 and cmp.method == "t"
    # pairs matter: the same values unpaired (shuffled b) no longer decide
    shuffled = paired_difference(A, [B[4], B[2], B[0], B[3], B[1]])
    assert not shuffled.decided
    # a missing value on either side drops the pair, not the seed's partner only
    dropped = paired_difference([*A, None], [*B, 0.5])
    assert dropped.n == 5 and dropped.delta == pytest.approx(cmp.delta)
    with pytest.raises(ValueError, match="pairs expected"):
        paired_difference(A, B[:4])


def test_too_few_pairs_never_decide() -> None:
    one = paired_difference([0.9], [0.1])
    assert not one.decided and one.low is None and one.delta == pytest.approx(0.8)
    two = paired_difference([0.9, 0.8], [0.1, 0.3])
    assert two.note is not None and "12.7" in two.note
    assert paired_difference([], []).n == 0


def test_bootstrap_interval_and_exact_sign_flip_p() -> None:
    # five positive differences: 2 of 32 sign patterns are as extreme, p = 1/16 exactly
    cmp = paired_difference([1, 2, 3, 4, 5], [0, 0, 0, 0, 0.0], method="bootstrap")
    assert cmp.p_value == pytest.approx(2 / 32, abs=1e-12)
    assert cmp.note is not None and "too narrow" in cmp.note
    # 40 pairs: the BCa interval agrees with the t-interval to a few percent of its width
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.6, 1.0, 40)
    boot = paired_difference(a, b, method="bootstrap", seed=1)
    t = paired_difference(a, b, method="t")
    assert boot.delta == pytest.approx(t.delta)
    assert t.low is not None and t.high is not None and boot.low is not None
    assert abs(boot.low - t.low) < 0.1 * (t.high - t.low)
    assert boot == paired_difference(a, b, method="bootstrap", seed=1)  # reproducible


def test_wilcoxon_hodges_lehmann_and_its_interval_invert_the_exact_test() -> None:
    small = paired_difference([1, 2, 3], [0, 0, 0.0], method="wilcoxon")
    assert small.delta == pytest.approx(2.0)  # Walsh averages 1 1.5 2 2 2.5 3
    assert small.low is None and not small.decided  # 3 pairs cannot reach 95 %
    rng = np.random.default_rng(0)
    d = rng.normal(0.5, 1.0, 12)
    cmp = paired_difference(d, np.zeros(12), method="wilcoxon")
    assert cmp.p_value == pytest.approx(stats.wilcoxon(d).pvalue)
    assert cmp.low is not None and cmp.high is not None
    # the interval is the set of shifts the exact two-sided test does not reject at 5 %
    for shift in np.linspace(cmp.low - 1.0, cmp.high + 1.0, 41):
        p = stats.wilcoxon(d - shift, method="exact").pvalue
        assert (cmp.low < shift < cmp.high) == (p > 0.05), (shift, p)


def test_difference_of_means_bootstrap_matches_welch_on_large_samples() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(5.0, 1.0, 200), rng.normal(3.0, 2.0, 100)
    iv = difference_of_means(a, b, seed=2)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert iv.mean == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert iv.low is not None and iv.high is not None and iv.low < 2.0 < iv.high
    width = welch.high - welch.low
    assert abs(iv.low - welch.low) < 0.1 * width and abs(iv.high - welch.high) < 0.1 * width
    # person's returns around 0 (where a per-episode % explodes): a finite, sized interval
    near_zero = difference_of_means([2.0, 3.0, 1.0, 2.5] * 5, [0.1, -0.1, 0.05, -0.02, 0.0])
    assert near_zero.low is not None and near_zero.high is not None
    assert 1.0 < near_zero.low < near_zero.mean < near_zero.high < 3.0
    assert near_zero.note is not None and "too narrow" in near_zero.note  # 5 person episodes
    assert not difference_of_means([1.0, 2.0], [0.5]).decided
    assert difference_of_means([1.0, 1.0], [0.0, 0.0]).low == 1.0  # no spread: exact


def test_holm_against_a_worked_example() -> None:
    # sorted .005 .01 .03 .04 -> x4 x3 x2 x1 = .02 .03 .06 .04 -> monotone .02 .03 .06 .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.3, None, 0.02]) == [pytest.approx(0.3), None, pytest.approx(0.04)]
    assert holm([]) == []
    cmp = paired_difference(A, B).with_adjusted_p(0.08)
    assert not cmp.decided and cmp.p == 0.08  # the interval excludes 0, the family does not


def test_comparison_sentences() -> None:
    cmp = paired_difference([0.60, 0.62, 0.58, 0.61, 0.59], [0.70, 0.69, 0.66, 0.72, 0.68])
    line = comparison_sentence(
        "adam_feedforward",
        "ga_feedforward",
        "test CE",
        cmp,
        lower_is_better=True,
        context="5 seeds",
        better="predicts sim01's actions better than",
    )
    assert line.startswith(
        "adam_feedforward predicts sim01's actions better than ga_feedforward on test CE: Δ -0.09"
    )
    assert line.endswith(", p < 0.001, 5 seeds")  # t = -12.7 on 4 df: p = 0.0002
    # higher is better: the same numbers make b the winner, Δ shown as winner minus loser
    flipped = comparison_sentence("a", "b", "F1", cmp, lower_is_better=False, context="5 seeds")
    assert flipped.startswith("b closer to the person than a on F1: Δ +0.09 [")
    context = "6 held-out episodes, 3 seeds"
    undecided = paired_difference([0.5, 0.7, 0.6], [0.6, 0.5, 0.65])
    line = comparison_sentence(
        "a", "b", "disc AUC", undecided, lower_is_better=True, context=context
    )
    assert line.startswith("a vs b on disc AUC: cannot tell apart with this data (Δ ")
    assert line.endswith("; 6 held-out episodes, 3 seeds)")
    lone = comparison_sentence(
        "a", "b", "m", paired_difference([1.0], [0.0]), lower_is_better=True, context="1 seed"
    )
    assert "cannot tell apart" in lone and "no interval from 1 pair" in lone
