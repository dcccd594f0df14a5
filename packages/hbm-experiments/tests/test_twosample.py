"""Two-sample tests of play: relabelling within seeds, the distances against scipy, the null
rejected at its rate, `compare_play` and `hbm compare-play`, one play per model."""

from __future__ import annotations

import json
import math

import hbm_dl
import numpy as np
import pytest
import torch
from hbm_data import SIMULATED_PROFILES, load_human_data
from hbm_data.simulate import write_simulated_subject
from hbm_experiments import cli
from hbm_experiments import humanlike as H
from hbm_experiments.evaluation import compare_returns, evaluate_policy
from hbm_experiments.humanlike import twosample as T
from scipy.stats import binom


def _traj(actions: list[np.ndarray], obs: list[np.ndarray], seeds: list[int]) -> H.Trajectories:
    return H.Trajectories(
        tuple(obs), tuple(actions), np.array([float(len(a)) for a in actions]),
        np.zeros(len(actions), np.int64), np.asarray(seeds, np.int64),
    )  # fmt: skip


def _player(rng: np.random.Generator, n: int, hold: tuple[int, int], seeds: list[int]):  # type: ignore[no-untyped-def]
    """Episodes of a player holding each key `hold` frames (uniform), states drifting with
    the key pressed; episode lengths vary."""
    acts, obs = [], []
    for _ in seeds:
        length = int(rng.integers(n // 2, n))
        a: list[int] = []
        while len(a) < length:
            a += [int(rng.integers(2))] * int(rng.integers(*hold))
        act = np.asarray(a[:length], np.int64)
        o = np.cumsum(0.02 * (2 * act[:, None] - 1) + rng.normal(0, 0.02, (length, 4)), axis=0)
        acts.append(act)
        obs.append(o)
    return _traj(acts, obs, seeds)


# ------------------------------------------------------------------------------ relabelling


def test_seed_permutations_keep_each_seeds_counts() -> None:
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0])
    groups = np.array([5, 5, 5, 7, 7, 7, 9, 9, 9])
    y = H.seed_permutations(labels, groups, 500, np.random.default_rng(0))
    assert y.shape == (501, 9) and (y[0] == labels).all()
    for g in (5, 7, 9):
        assert (y[:, groups == g].sum(axis=1) == 1).all()  # one target per seed, always
    # every one of the 3^3 relabellings turns up, about equally often
    codes = np.unique(y[1:] @ (2 ** np.arange(9)), return_counts=True)[1]
    assert len(codes) == 27 and codes.min() > 5
    assert T.relabelings(labels, groups) == pytest.approx(27)
    assert H.smallest_p(labels, groups, 199) == pytest.approx(1 / 27)
    assert H.smallest_p(labels, groups, 9) == pytest.approx(1 / 10)


def test_permutation_p_counts_ties_and_is_never_zero() -> None:
    assert H.permutation_p(np.array([3.0, 1.0, 2.0, 0.5])) == pytest.approx(1 / 4)
    assert H.permutation_p(np.array([1.0, 1.0, 2.0, 0.5])) == pytest.approx(3 / 4)  # ties count
    assert H.permutation_p(np.array([math.nan, 1.0])) is None
    assert H.permutation_p(np.array([1.0, math.nan, 0.0])) == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------ distances


def test_distance_statistics_equal_the_plain_metrics() -> None:
    """Per-episode counts relabelled by a matrix product against scipy and the plain-array
    metrics computed on the relabelled episodes themselves: 1e-9."""
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(1)
    pool = _player(rng, 60, (1, 4), list(range(6))).subset(range(6))
    other = _player(rng, 60, (3, 9), list(range(6)))
    both = H.Trajectories(
        pool.obs + other.obs, pool.actions + other.actions, np.r_[pool.returns, other.returns],
        np.zeros(12, np.int64), np.r_[pool.seeds, other.seeds],
    )  # fmt: skip
    stats = H.EpisodeStats.of(both, "cartpole")
    y = H.seed_permutations(np.r_[np.ones(6), np.zeros(6)], both.seeds, 4, rng)
    out = T.distance_statistics(stats, y, 15.0)
    for b, row in enumerate(y):
        t, c = both.subset(np.flatnonzero(row == 1)), both.subset(np.flatnonzero(row == 0))
        w1 = wasserstein_distance(H.hold_durations(c.actions), H.hold_durations(t.actions))
        assert out["hold_duration_w1"][0][b] == pytest.approx(w1, abs=1e-9)
        ratio = H.switch_rate_ratio(c.actions, t.actions, 15.0)
        assert out["switch_rate_ratio"][0][b] == pytest.approx(ratio, abs=1e-9)
        assert out["state_jsd"][0][b] == pytest.approx(H.state_jsd(c.obs, t.obs, "cartpole"))
        diff = c.returns.mean() - t.returns.mean()
        assert out["return_diff"][0][b] == pytest.approx(diff, abs=1e-9)
        assert out["return_diff"][1][b] == pytest.approx(abs(diff), abs=1e-9)


def test_every_test_holds_its_null_rate_and_rejects_another_style() -> None:
    """Known answers on synthetic players: the same style with other luck (independent
    episodes of one generator on the same seeds) is rejected at about α; a player holding
    keys three times as long is rejected by the hold and switch tests nearly always. 40
    draws: at α = 0.05 more than 7 rejections happen with probability < 0.005 under the null
    (binomial)."""
    draws, alpha = 40, 0.05
    limit = int(binom.isf(0.005, draws, alpha))
    rejects = {k: 0 for k in H.TESTED_METRICS}
    power = {k: 0 for k in ("hold_duration_w1", "switch_rate_ratio")}
    combined = {"null": 0, "power": 0}
    seeds = list(range(6))
    for d in range(draws):
        rng = np.random.default_rng([d, 99])
        target = H.HumanlikeTarget(_player(rng, 50, (1, 5), seeds), "cartpole", seed=d)
        same = _player(rng, 50, (1, 5), seeds * 3)
        block = target.score(same, seed=d)
        for key in rejects:
            rejects[key] += block[H.METRICS[key].p_key] <= alpha  # type: ignore[index]
        combined["null"] += block["combined_p"] <= alpha
        if d < 10:
            slow = target.score(_player(rng, 50, (3, 15), seeds * 3), seed=d)
            for key in power:
                power[key] += slow[H.METRICS[key].p_key] <= alpha  # type: ignore[index]
            combined["power"] += slow["combined_p"] <= alpha
    assert all(v <= limit for v in rejects.values()), (rejects, limit)
    assert combined["null"] <= limit and combined["power"] >= 9, combined
    assert sum(rejects.values()) >= 1  # the tests do reject sometimes: not stuck at p = 1
    assert all(v >= 9 for v in power.values()), power


def test_combined_statistic_is_exact_under_the_null_and_ignores_units() -> None:
    """Every test's rows exchangeable (the observed row one more draw of the same law): the
    combined p is uniform, so 400 draws reject at α = 0.05 between 9 and 33 times (binomial,
    each side < 0.002); a play far out on one test of three gets the smallest p; scaling one
    test's units changes nothing (each is standardised by its own relabellings)."""
    from hbm_experiments.humanlike.compare import combined_statistic

    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        rows = {k: rng.gamma(1.0 + i, size=100) for i, k in enumerate("abc")}
        hits += combined_statistic(rows)[1] <= 0.05  # type: ignore[operator]
    assert int(binom.ppf(0.002, 400, 0.05)) <= hits <= int(binom.isf(0.002, 400, 0.05))
    rows = {k: rng.normal(size=200) for k in "abc"}
    rows["a"][0] = 50.0  # far out on one test
    z, p = combined_statistic(rows)
    assert p == pytest.approx(1 / 200) and z is not None and z > 10
    scaled = rows | {"b": rows["b"] * 1000.0 + 7.0}
    z2, p2 = combined_statistic(scaled)
    assert z2 == pytest.approx(z, rel=1e-9) and p2 == p
    # an undefined observed test is left out; nothing defined: None
    assert combined_statistic(rows | {"c": np.r_[np.nan, rows["c"][1:]]})[1] == p
    assert combined_statistic({"a": np.full(5, np.nan)}) == (None, None)


# ------------------------------------------------------------------------------ returns


def test_compare_returns_difference_of_means_with_scipys_bootstrap() -> None:
    from scipy.stats import bootstrap

    human = np.array([10.0, 200.0, 35.0, -0.5])
    model = np.array([12.0, 180.0, 30.0, 2.0, 15.0, 190.0, 40.0, 1.0])
    out = compare_returns(model, human, seed=3)
    assert out["diff_of_means"] == pytest.approx(model.mean() - human.mean())
    res = bootstrap(
        (model, human), lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        n_resamples=1999, vectorized=True, method="BCa",
        random_state=np.random.default_rng([3, 23]),
    )  # fmt: skip
    lo, hi = out["diff_of_means_ci"]
    assert lo == pytest.approx(res.confidence_interval.low, abs=1e-9)
    assert hi == pytest.approx(res.confidence_interval.high, abs=1e-9)
    assert lo < out["diff_of_means"] < hi
    # the same seeds' returns (a model that replays the person): nothing to reject
    assert out["diff_of_means_p"] > 0.5
    wide = np.r_[human, human + 1.0]  # 8 seeds, two rollouts each: 3^8 relabellings
    far = compare_returns(np.r_[wide, wide] + 500.0, wide)
    assert far["diff_of_means_p"] == pytest.approx(1 / 200)  # none as far: the smallest p
    assert far["diff_of_means_ci"][0] > 400


# ------------------------------------------------------------------------------ compare_play


@pytest.fixture(scope="module")
def null_pair(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Two recordings of sim01's style with other luck, seeds 0, 1, 2, ... (the null pair),
    and one of sim04's (cautious: long holds, few switches)."""
    folder = tmp_path_factory.mktemp("plays")
    sim01 = SIMULATED_PROFILES["sim01"]
    paths = {}
    for name, profile in (
        ("a", sim01.with_seed(7)), ("b", sim01.with_seed(8)),
        ("c", SIMULATED_PROFILES["sim04"].with_seed(9)),
    ):  # fmt: skip
        paths[name] = write_simulated_subject(
            "cartpole", profile, path=folder / f"{name}_data_cartpole.json",
            n_sessions=2, max_episode_steps=200,
        )  # fmt: skip
    return paths


def test_compare_play_null_pair_and_another_style(null_pair) -> None:  # type: ignore[no-untyped-def]
    from hbm_data import load_episodes

    a, b, c = (load_episodes(null_pair[k]) for k in "abc")
    same = H.compare_play(a, b, "cartpole")
    other = H.compare_play(a, c, "cartpole")
    assert same["paired_seeds"] == min(len(a), len(b))
    assert same["action_accuracy"] is None  # a recording has no policy to ask
    for block in (same, other):
        assert set(H.METRICS) <= set(block)
        for key in H.TESTED_METRICS:
            assert block["p_min"] <= block[H.METRICS[key].p_key] <= 1  # type: ignore[index]
    for key in ("hold_duration_w1", "switch_rate_ratio"):  # sim04 holds keys far longer
        p_key = H.METRICS[key].p_key
        assert other[p_key] <= 0.01 < same[p_key], key  # type: ignore[index]
    # every test at once: the mean over tests dilutes the two that differ with those that
    # do not, so its p is less extreme than theirs, but still far from the null pair's
    assert other["combined_p"] <= 0.05 < same["combined_p"]
    assert other["combined_z"] > 1.0 > same["combined_z"]
    # the experiments' code path: the same block from a HumanlikeTarget
    traj = H.Trajectories.from_episodes
    assert H.HumanlikeTarget(traj(a), "cartpole").score(traj(b)) == same


def test_hbm_compare_play_prints_the_block(null_pair, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["compare-play", str(null_pair["a"]), str(null_pair["c"]), "--json"]) == 0
    block = json.loads(capsys.readouterr().out)
    assert block["switch_rate_ratio_p"] <= 0.01 and "discriminator_p" in block
    assert cli.main(["compare-play", str(null_pair["a"]), str(null_pair["b"])]) == 0
    text = capsys.readouterr().out
    assert "switch-rate ratio" in text and "p = " in text and "seeds paired" in text


def test_hbm_compare_play_names_a_file_it_cannot_place(tmp_path, null_pair, capsys) -> None:  # type: ignore[no-untyped-def]
    odd = tmp_path / "recording.json"
    odd.write_bytes(null_pair["a"].read_bytes())
    assert cli.main(["compare-play", str(odd), str(null_pair["b"])]) == 1
    err = capsys.readouterr().err
    assert str(odd) in err and "--env" in err


# ------------------------------------------------------------------------------ one play


def test_one_play_feeds_returns_and_every_metric(shared_data_dir) -> None:  # type: ignore[no-untyped-def]
    data = load_human_data("cartpole", "sim02", data_dir=shared_data_dir)
    meta = data.metadata
    model = hbm_dl.FeedforwardMLP(4, 16, 2, generator=torch.Generator().manual_seed(1))
    out = evaluate_policy(model, data, seed=5, repeats=2)
    b, block = out["behaviour"], out["humanlike"]
    # the same recorded rollouts (the generator of the returns) gave both
    gen = torch.Generator().manual_seed(5 * 1_000_003 + 2)
    (rollouts,) = H.record_rollouts(
        model, meta.env_id, [e.seed for e in meta.test_episodes] * 2, generator=gen
    )
    np.testing.assert_array_equal(b["model_returns"], rollouts.returns)
    assert block["mean_return"] == pytest.approx(b["model_mean_return"])
    assert block["return_diff"] == pytest.approx(b["diff_of_means"])
    assert block["episodes"] == len(b["model_returns"]) == 2 * meta.n_test
