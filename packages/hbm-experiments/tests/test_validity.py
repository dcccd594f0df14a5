"""The validity suite: verdicts from its table, the verdicts shipped with the package
(`metric_validity`), `hbm validate`, and a reduced run whose rates are checked (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hbm_experiments import cli, validate
from hbm_experiments import humanlike as H
from hbm_experiments.humanlike import validity as V
from scipy.stats import binom


def _row(fpr: float | None, detection: float, n: int = 100) -> dict[str, object]:
    return {
        "null_fpr": fpr, "null_n": n, "null_gap_median": 0.1, "null_gap_q95": 0.3,
        "random_detection": detection, "random_n": n, "identification": 0.8,
        "confusion": [[1, 0], [0, 1]],
    }  # fmt: skip


def _suite(rows: dict[str, object], protocol: str = "holdout") -> dict[str, object]:
    return {
        "settings": {"draws": 25, "players": ["a", "b"], "repeats": 5, "pool": 8, "seed": 0,
                     "alpha": 0.05, "protocol": protocol},
        "games": {"cartpole": rows},
        "seconds": 1.0,
    }  # fmt: skip


def test_verdicts_name_what_failed() -> None:
    rows = {
        "hold_duration_w1": _row(0.05, 1.0),
        "switch_rate_ratio": _row(0.12, 1.0),  # rejects the null far too often
        "state_jsd": _row(0.04, 0.6),  # cannot tell random play apart
        "action_accuracy": _row(None, 1.0),  # a prediction score: no null rate to hold
        "session_return_spearman": {"applicable": 0, "null_n": 100, "note": "-"},
    }
    v = V.verdicts(_suite(rows))["cartpole"]
    assert v["hold_duration_w1"] == {"ok": True, "reason": None}
    assert v["action_accuracy"]["ok"] is True
    assert not v["switch_rate_ratio"]["ok"] and "12%" in v["switch_rate_ratio"]["reason"]
    assert not v["state_jsd"]["ok"] and "random" in v["state_jsd"]["reason"]
    assert "held-out episodes are too few" in v["state_jsd"]["reason"]  # why, not only what
    assert not v["session_return_spearman"]["ok"]
    assert "not checked" in v["discriminator_auc"]["reason"]  # missing from the table
    table = validate.format_table(_suite(rows), V.verdicts(_suite(rows)))
    assert "| switch_rate_ratio | 0.120 [0.06, 0.20] (100) |" in table and "FAILS: null" in table


def test_a_null_rate_fails_only_when_significantly_above_alpha() -> None:
    """At n = 100 a calibrated test rejects 1 to 10 times in 95 % of suites: 8 of 100 is
    binomial noise (one-sided p = 0.13), 10 of 100 is not (p = 0.028); with n = 400 the
    same 8 % is (p = 0.006)."""
    rows = {"hold_duration_w1": _row(0.08, 1.0), "switch_rate_ratio": _row(0.10, 1.0)}
    v = V.verdicts(_suite(rows))["cartpole"]
    assert v["hold_duration_w1"]["ok"]
    reason = v["switch_rate_ratio"]["reason"]
    assert not v["switch_rate_ratio"]["ok"] and "10%" in reason and "5%-18%" in reason
    assert not V.verdicts(_suite({"hold_duration_w1": _row(0.08, 1.0, n=400)}))["cartpole"][
        "hold_duration_w1"
    ]["ok"]
    lo, hi, p = V.null_rate_interval(0.09, 100)
    assert (round(lo, 3), round(hi, 3), round(p, 3)) == (0.042, 0.164, 0.063)


def _sitter(sessions: list[int], seed0: int = 0) -> V._Person:
    """A person whose episode e (seed seed0 + e) has return e and one frame per episode."""
    n = len(sessions)
    eps = H.Trajectories(
        tuple(np.zeros((1, 4)) for _ in range(n)), tuple(np.zeros(1, np.int64) for _ in range(n)),
        np.arange(n, dtype=np.float64), np.asarray(sessions), np.arange(seed0, seed0 + n),
    )  # fmt: skip
    return V._Person(eps, eps, eps)


def test_the_null_pairs_episodes_by_stage_of_learning_not_by_seed() -> None:
    """A simulated person's skill follows the sitting and the place in it; how many episodes
    a sitting holds is luck. The target held out episodes 1 (sitting 0, last) and 3 (sitting
    1, middle); another person with sittings of 4 and 5 episodes is at those stages in their
    episodes 3 and 6, not 1 and 3. They are relabelled with the target's seeds (the groups)."""
    target = _sitter([0, 0, 1, 1, 1, 2])
    target = V._Person(target.episodes, target.episodes.subset([1, 3]), target.episodes)
    other = _sitter([0] * 4 + [1] * 5, seed0=100)
    short = _sitter([0, 0, 0], seed0=200)  # one sitting: its last stands in for later ones
    out = V._on_stages([other, short], target)
    assert out.returns.tolist() == [3.0, 6.0, 2.0, 1.0]
    assert out.seeds.tolist() == [1, 3, 1, 3]


def test_crossfit_targets_every_episode_each_with_a_stage_matched_candidate() -> None:
    """Cross-fitting pools every episode of the person as target: each gets the other person's
    episode at its stage (sittings of 2, 3 and 1 episodes against sittings of 4 and 5; the
    third sitting, which the other lacks, takes the other's last sitting's first episode)."""
    target = _sitter([0, 0, 1, 1, 1, 2])
    other = _sitter([0] * 4 + [1] * 5, seed0=100)
    out = V._on_stages([other], target)
    assert out.returns.tolist() == [0.0, 3.0, 4.0, 6.0, 8.0, 4.0]
    assert out.seeds.tolist() == [0, 1, 2, 3, 4, 5]


def test_the_protocols_choose_the_target_episodes() -> None:
    """The holdout targets one episode per session, cross-fitting all of a person's episodes
    (and chooses the shift on all of them); the same person under both."""
    held = V._person("cartpole", "sim01", 0, "holdout")
    pooled = V._person("cartpole", "sim01", 0, "crossfit")
    sessions = len(np.unique(held.episodes.sessions))
    assert len(held.test) == sessions and len(held.train) == len(held.episodes) - sessions
    assert len(pooled.test) == len(pooled.train) == len(pooled.episodes) == len(held.episodes)
    assert pooled.test.seeds.tolist() == list(range(len(held.episodes)))
    with pytest.raises(ValueError, match="protocol 'kfold'"):
        V.run_suite(["cartpole"], draws=1, protocol="kfold")


def test_verdicts_under_crossfit() -> None:
    """No few-held-out-episodes excuse under cross-fitting (its target is every episode), and
    session tracking, computable there, is held to random play like a prediction score."""
    rows = {
        "state_jsd": _row(0.04, 0.6),
        "return_diff": _row(0.05, 1.0),
        "session_return_spearman": _row(None, 0.8),
    }
    v = V.verdicts(_suite(rows, protocol="crossfit"))["cartpole"]
    assert not v["state_jsd"]["ok"] and "random told apart in 60%" in v["state_jsd"]["reason"]
    assert "held-out episodes" not in v["state_jsd"]["reason"]
    assert v["return_diff"]["ok"]
    assert not v["session_return_spearman"]["ok"]
    assert "random told apart in 80%" in v["session_return_spearman"]["reason"]
    table = validate.format_table(_suite(rows, "crossfit"), V.verdicts(_suite(rows, "crossfit")))
    assert "crossfit protocol (target: every episode of the person" in table


def test_metric_validity_reads_the_shipped_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Verdicts by protocol: state_jsd misses random play on the holdout's few target episodes
    and passes on all of them (crossfit); a report asks for the protocol its row used."""
    path = tmp_path / "validity.json"
    monkeypatch.setattr(V, "VALIDITY_FILE", path)
    V._shipped.cache_clear()
    try:
        holdout = _suite({"state_jsd": _row(0.04, 0.6), "hold_duration_w1": _row(0.05, 1)})
        path.write_text(json.dumps(V.shipped_with(holdout)))
        V._shipped.cache_clear()
        crossfit = _suite({"state_jsd": _row(0.04, 1.0)}, protocol="crossfit")
        path.write_text(json.dumps(V.shipped_with(crossfit)))  # the holdout's verdicts kept
        V._shipped.cache_clear()
        assert H.metric_validity("CartPole-v1", "hold_duration_w1") == (True, None)
        ok, reason = H.metric_validity("cartpole", "state_jsd")
        assert not ok and reason is not None and "random" in reason
        assert H.metric_validity("cartpole", "state_jsd", "crossfit") == (True, None)
        ok, reason = H.metric_validity("cartpole", "hold_duration_w1", "crossfit")
        assert not ok and reason is not None and "not checked" in reason  # not in that table
        ok, reason = H.metric_validity("acrobot", "state_jsd")
        assert (
            not ok and reason == "not checked by the validity suite on acrobot (holdout protocol)"
        )
        with pytest.raises(ValueError, match="unknown metric 'action_accuracy_lag'"):
            H.metric_validity("cartpole", "action_accuracy_lag")
        with pytest.raises(ValueError, match="protocol 'kfold'"):
            H.metric_validity("cartpole", "state_jsd", "kfold")
        path.write_text("{not json")
        V._shipped.cache_clear()
        with pytest.raises(ValueError, match=r"validity\.json"):
            H.metric_validity("cartpole", "state_jsd")
    finally:
        V._shipped.cache_clear()


def test_the_package_ships_a_verdict_for_every_game_metric_and_protocol() -> None:
    for protocol in V.PROTOCOLS:
        for env in V.SUITE_ENVS:
            for key in H.METRICS:
                ok, reason = H.metric_validity(env, key, protocol)
                assert ok or (reason and "not checked" not in reason), (protocol, env, key, reason)
                settings = V._shipped()["protocols"][protocol]["settings"][env]
                assert settings["protocol"] == protocol and settings["draws"] >= 1


def test_hbm_validate_is_a_command() -> None:
    args = cli.build_parser().parse_args(["validate", "--envs", "cartpole", "--draws", "3"])
    assert args.command == "validate" and args.draws == 3 and args.handler is validate.run
    assert args.envs == ["cartpole"] and not args.write


def test_hbm_validate_loads_saved_suites(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Tables saved with --json are re-judged without running; one protocol only."""
    a, b, odd = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "odd.json"
    a.write_text(json.dumps(_suite({"hold_duration_w1": _row(0.05, 1.0)})))
    other = _suite({"hold_duration_w1": _row(0.12, 1.0)})
    other["games"] = {"acrobot": other["games"]["cartpole"]}  # type: ignore[index]
    b.write_text(json.dumps(other))
    args = cli.build_parser().parse_args(["validate", "--load", str(a), str(b)])
    out = validate.run(args)
    assert "cartpole:" in out and "acrobot:" in out and "FAILS: null" in out
    odd.write_text(json.dumps(_suite({}) | {"settings": {"draws": 3}}))
    args = cli.build_parser().parse_args(["validate", "--load", str(a), str(odd)])
    with pytest.raises(SystemExit, match="differ"):
        validate.run(args)
    crossfit, older = tmp_path / "crossfit.json", tmp_path / "older.json"
    crossfit.write_text(json.dumps(_suite({"hold_duration_w1": _row(0.05, 1.0)}, "crossfit")))
    with pytest.raises(SystemExit, match="differ"):  # one protocol per table
        validate.run(cli.build_parser().parse_args(["validate", "--load", str(a), str(crossfit)]))
    suite = _suite({"hold_duration_w1": _row(0.05, 1.0)})
    del suite["settings"]["protocol"]  # type: ignore[attr-defined]
    older.write_text(json.dumps(suite))  # written before the protocols: the holdout's
    out = validate.run(cli.build_parser().parse_args(["validate", "--load", str(a), str(older)]))
    assert "holdout protocol" in out


@pytest.mark.slow
def test_reduced_suite_holds_the_rates_on_cartpole() -> None:
    """6 draws x 4 players on CartPole (24 null comparisons per metric). Tolerances
    (binomial): at a true null rate of 0.05, more than 5 rejections of 24 happen with
    probability < 0.002; a metric whose shipped verdict passes (random detection ≥ 0.99)
    misses random play more than twice in 24 with probability < 0.002."""
    suite = V.run_suite(["cartpole"], draws=6, pool=6)
    rows = suite["games"]["cartpole"]
    max_false = int(binom.isf(0.002, 24, 0.05))
    max_miss = int(binom.isf(0.002, 24, 0.01))
    assert (max_false, max_miss) == (5, 2)
    for key in H.TESTED_METRICS:
        row = rows[key]
        assert row["null_n"] == 24 and row["null_fpr"] * 24 <= max_false, (key, row)
    for key in H.METRICS:
        ok, _ = H.metric_validity("cartpole", key)
        if ok and key != "session_return_spearman":
            assert (1 - rows[key]["random_detection"]) * 24 <= max_miss, (key, rows[key])
    assert rows["combined"]["identification"] > 0.25  # better than chance among four
    assert rows["combined"]["null_n"] == 24 and rows["combined"]["null_fpr"] * 24 <= max_false


@pytest.mark.slow
def test_reduced_crossfit_suite_holds_the_rates_on_cartpole() -> None:
    """4 draws x 4 players under cross-fitting (16 null comparisons per metric, every episode
    of each target). Tolerances (binomial): at a true null rate of 0.05, more than 4
    rejections of 16 happen with probability < 0.001; a metric whose shipped crossfit verdict
    passes misses random play more than twice in 16 with probability < 0.001. Every draw but
    the last hands its partial table over, with the draws done."""
    parts: list[int] = []
    suite = V.run_suite(
        ["cartpole"], draws=4, repeats=2, protocol="crossfit",
        partial=lambda part: parts.append(part["settings"]["draws"]),
    )  # fmt: skip
    assert parts == [1, 2, 3] and suite["settings"]["protocol"] == "crossfit"
    rows = suite["games"]["cartpole"]
    max_false, max_miss = int(binom.isf(0.002, 16, 0.05)), int(binom.isf(0.002, 16, 0.01))
    assert (max_false, max_miss) == (4, 2)
    for key in (*H.TESTED_METRICS, "combined"):
        row = rows[key]
        assert row["null_n"] == 16 and row["null_fpr"] * 16 <= max_false, (key, row)
    for key in H.METRICS:
        if H.metric_validity("cartpole", key, "crossfit")[0]:
            assert (1 - rows[key]["random_detection"]) * 16 <= max_miss, (key, rows[key])
    assert rows["combined"]["identification"] > 0.25  # better than chance among four
