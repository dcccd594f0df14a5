"""Human-likeness metrics (issue 15): known answers on plain arrays, then on rollouts."""

from __future__ import annotations

import json
import math

import hbm_dl
import hbm_ne
import numpy as np
import pytest
import torch
from hbm_data import ENVIRONMENTS, SIMULATED_PROFILES, load_human_data, simulate_subject
from hbm_experiments import humanlike as H
from hbm_ne.envs import evaluate_module, make_env


def _trajectories(
    actions: list[list[int]], *, obs_dim: int = 4, seed: int = 0, sessions: list[int] | None = None
) -> H.Trajectories:
    rng = np.random.default_rng(seed)
    acts = [np.asarray(a, dtype=np.int64) for a in actions]
    return H.Trajectories(
        tuple(rng.normal(0, 0.05, size=(len(a), obs_dim)) for a in acts),
        acts,
        np.arange(len(acts), dtype=np.float64) * 10,
        np.asarray(sessions if sessions is not None else range(len(acts)), dtype=np.int64),
        np.arange(len(acts), dtype=np.int64),
    )


def _held_actions(rng: np.random.Generator, length: int, num_actions: int = 2) -> list[int]:
    """A person-like action sequence: each key held 2-6 frames."""
    out: list[int] = []
    while len(out) < length:
        out += [int(rng.integers(num_actions))] * int(rng.integers(2, 7))
    return out[:length]


# ------------------------------------------------------------------------------ constants


def test_lag_and_window_frames_from_the_frame_rate() -> None:
    # 0.3 s at 15 fps is 4.5 frames: rounded half up to 5; at 20 fps exactly 6
    assert H.lag_frames(15) == 5 and H.lag_frames(20) == 6
    assert H.window_frames(15) == 8 and H.window_frames(20) == 10


def test_every_environment_has_a_state_grid_of_its_observation_size() -> None:
    for name, spec in ENVIRONMENTS.items():
        grid = H.STATE_GRIDS[name]
        assert len(grid.bins) == len(grid.low) == len(grid.high) == spec.obs_size
        assert all(hi > lo for lo, hi in zip(grid.low, grid.high, strict=True))


# ------------------------------------------------------------------------------ state JSD


def test_jensen_shannon_known_answers() -> None:
    assert H.jensen_shannon([3, 1, 0], [3, 1, 0]) == 0.0
    assert H.jensen_shannon([6, 2, 0], [3, 1, 0]) == pytest.approx(0.0, abs=1e-12)  # counts scale
    assert H.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: the base-2 maximum
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
    # JSD = 1/2 [1/2 log2(2/3) + 1/2 log2 2] + 1/2 log2(4/3)
    expected = 0.5 * (0.5 * math.log2(2 / 3) + 0.5) + 0.5 * math.log2(4 / 3)
    assert H.jensen_shannon([1, 1], [1, 0]) == pytest.approx(expected)
    batch = H.jensen_shannon(np.array([[1, 0], [1, 1]]), np.array([0, 1]))
    assert batch.shape == (2,) and batch[0] == pytest.approx(1.0)


def test_identical_histograms_give_state_jsd_zero() -> None:
    obs = np.random.default_rng(0).normal(0, 0.5, size=(300, 4))
    assert H.state_jsd(obs, obs.copy(), "cartpole") == 0.0
    assert H.state_jsd([obs[:100], obs[100:]], obs, "cartpole") == 0.0  # per-episode lists too
    shifted = obs + np.array([1.0, 0, 0, 0])
    assert 0.0 < H.state_jsd(shifted, obs, "cartpole") <= 1.0


def test_state_histograms_use_the_fixed_grid_with_edge_bins() -> None:
    grid = H.STATE_GRIDS["mountaincar"]  # position [-1.2, 0.6], velocity [-0.07, 0.07], 20 bins
    obs = np.array([[-1.2, 0.0], [0.6, -0.07], [5.0, 1.0], [-9.0, -1.0]])
    hist = H.state_histograms(obs, grid)
    assert hist.shape == (2, 20) and hist.sum(axis=1).tolist() == [4, 4]
    # -1.2 and -9 land in the first position bin; 0.6 (the top edge) and 5 in the last
    assert hist[0, 0] == 2 and hist[0, 19] == 2
    assert hist[1, 10] == 1 and hist[1, 0] == 2 and hist[1, 19] == 1


# ------------------------------------------------------------------------------ holds, switches


def test_hold_durations_and_switch_rate_known_answers() -> None:
    assert H.hold_durations([np.array([0, 0, 1, 1, 1, 0])]).tolist() == [2, 3, 1]
    # an episode boundary ends a hold even when the action does not change
    assert H.hold_durations([np.array([0, 0]), np.array([0, 1])]).tolist() == [2, 1, 1]
    # 2 changes in 6 frames at 15 fps = 2 / 0.4 s
    assert H.switch_rate([np.array([0, 0, 1, 1, 1, 0])], 15) == pytest.approx(5.0)
    assert H.switch_rate([np.array([1, 1]), np.array([0, 0])], 15) == 0.0


def test_hold_duration_w1_and_switch_ratio() -> None:
    held = [np.array([0, 0, 1, 1])]  # holds 2, 2
    tapped = [np.array([0, 1, 0, 1])]  # holds 1, 1, 1, 1
    assert H.hold_duration_w1(held, held) == 0.0
    assert H.hold_duration_w1(tapped, held) == pytest.approx(1.0)
    assert H.switch_rate_ratio(tapped, held) == pytest.approx(3.0)
    assert H.switch_rate_ratio([np.array([1, 1])], [np.array([0, 0])]) == 1.0  # neither switches
    assert H.switch_rate_ratio(tapped, [np.array([0, 0])]) is None  # infinite


# ------------------------------------------------------------------------------ action matching


def test_lag_accuracy_known_answers() -> None:
    actions = np.array([0, 0, 1, 1, 0, 0])
    pred = np.ones(6, dtype=np.int64)
    # k = 1: action 1 was pressed within ±1 frame at t = 1..4, not at t = 0 or 5
    assert H.lag_accuracy(pred, actions, [6], k=1) == pytest.approx(4 / 6)
    assert H.lag_accuracy(pred, actions, [6], k=0) == pytest.approx(
        H.action_accuracy(pred, actions)
    )
    # the window never crosses into the next episode
    two = np.array([0, 0, 1, 1])
    assert H.lag_accuracy(np.ones(4, np.int64), two, [2, 2], k=1) == pytest.approx(0.5)
    # a batch of predictions [P, N]
    both = H.lag_accuracy(np.stack([pred, actions]), actions, [6], k=1)
    assert both.tolist() == pytest.approx([4 / 6, 1.0])


def test_two_frames_late_copy_scores_higher_with_the_lag_window() -> None:
    rng = np.random.default_rng(1)
    episodes = [np.asarray(_held_actions(rng, n)) for n in (40, 55, 30)]
    actions = np.concatenate(episodes)
    late = np.concatenate([np.concatenate([[e[0], e[0]], e[:-2]]) for e in episodes])
    k = H.lag_frames(15)
    acc = H.action_accuracy(late, actions)
    lag = H.lag_accuracy(late, actions, [len(e) for e in episodes], k)
    assert acc < 0.9 and lag == 1.0 and lag > acc


def test_person_own_replay_is_a_perfect_match() -> None:
    rng = np.random.default_rng(2)
    person = _trajectories(
        [_held_actions(rng, n) for n in (30, 45, 25, 38, 33)], sessions=[0, 1, 2, 3, 3]
    )
    target = H.HumanlikeTarget(person, "cartpole")
    block = target.score(person, person.flat_actions)
    assert block["action_accuracy"] == 1.0 and block["action_accuracy_lag"] == 1.0
    assert block["hold_duration_w1"] == 0.0 and block["state_jsd"] == 0.0
    assert block["switch_rate_ratio"] == 1.0
    assert block["session_return_spearman"] == pytest.approx(1.0)
    # identical windows in both classes, episodes of one seed in one fold: chance (up to BLAS
    # rounding, which can order identical rows' scores)
    assert block["discriminator_auc"] == pytest.approx(0.5, abs=0.02)
    assert all(H.gap(k, block[k]) == pytest.approx(0.0, abs=0.02) for k in H.METRICS)


# ------------------------------------------------------------------------------ discriminator


def test_discriminator_tells_tapping_from_holding_deterministically() -> None:
    rng = np.random.default_rng(3)
    holding = _trajectories([_held_actions(rng, 60) for _ in range(8)])
    tapping = _trajectories([rng.integers(0, 2, 60).tolist() for _ in range(8)], seed=9)
    zt, zc = (H.window_features(t, "cartpole") for t in (holding, tapping))
    out = H.discriminator_auc(zt, zc, seed=4)
    assert out["auc"] > 0.9 and len(out["fold_aucs"]) == H.FOLDS
    lo, hi = out["ci"]
    assert 0.0 <= lo <= out["auc"] <= hi <= 1.0
    assert H.discriminator_auc(zt, zc, seed=4) == out  # deterministic given the seed
    same = H.discriminator_auc(zt, H.window_features(_trajectories(
        [_held_actions(rng, 60) for _ in range(8)], seed=5), "cartpole"), seed=4)  # fmt: skip
    assert same["auc"] < out["auc"] - 0.2
    one_seed = H.window_features(tapping.subset([0]), "cartpole")
    assert H.discriminator_auc(zt, one_seed)["auc"] is None  # cannot group-cross-validate


def test_discriminator_fold_aucs_equal_sklearns_ridge_classifier_and_roc_auc() -> None:
    """The fast path (Ridge on ±1 labels, AUC as Mann-Whitney U / n1 n0) against the textbook
    one (`RidgeClassifier`, `roc_auc_score`) on the same folds: two code paths, 1e-9."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(8)
    holding = _trajectories([_held_actions(rng, 60) for _ in range(8)])
    mixed = _trajectories(
        [_held_actions(rng, 30) + rng.integers(0, 2, 30).tolist() for _ in range(8)], seed=9
    )
    (x1, g1), (x0, g0) = (H.window_features(t, "cartpole") for t in (holding, mixed))
    out = H.discriminator_auc((x1, g1), (x0, g0), seed=2, max_windows=10**6)
    assert len(x1) == len(x0)  # equal classes: discriminator_auc keeps every window
    x, y = np.concatenate([x1, x0]), np.r_[np.ones(len(x1), int), np.zeros(len(x0), int)]
    groups = np.concatenate([g1, g0])
    cv = StratifiedGroupKFold(n_splits=H.FOLDS, shuffle=True, random_state=2)
    expected = [
        roc_auc_score(y[te], RidgeClassifier(alpha=1.0).fit(x[tr], y[tr]).decision_function(x[te]))
        for tr, te in cv.split(x, y, groups)
    ]
    assert 0.55 < out["auc"] < 0.999  # neither chance nor perfect: the scores are ranked
    np.testing.assert_allclose(out["fold_aucs"], expected, rtol=0, atol=1e-9)


def test_trajectory_windows_pad_short_episodes_and_one_hot_actions() -> None:
    traj = _trajectories([[1, 0, 1], [0] * 10], obs_dim=2)
    x, owner = H.trajectory_windows(traj, num_actions=2, window=4, stride=2)
    # episode 0 (3 frames) padded to one window; episode 1 gives windows at 0, 2, 4, 6
    assert owner.tolist() == [0, 1, 1, 1, 1] and x.shape == (5, 4 * (2 + 2))
    first = x[0].reshape(4, 4)
    assert first[:, 2:].tolist() == [[0, 1], [1, 0], [0, 1], [0, 1]]  # last frame repeated
    np.testing.assert_array_equal(first[:3, :2], traj.obs[0])


# ------------------------------------------------------------------------------ sessions


def test_session_return_spearman_known_answers() -> None:
    sessions = np.array([0, 0, 1, 2, 3])
    person = np.array([10.0, 20.0, 30.0, 50.0, 40.0])  # session means 15, 30, 50, 40
    up = np.array([1.0, 1.0, 2.0, 4.0, 3.0])
    assert H.session_return_spearman(up, sessions, person, sessions) == pytest.approx(1.0)
    assert H.session_return_spearman(-up, sessions, person, sessions) == pytest.approx(-1.0)
    assert H.session_return_spearman(np.ones(5), sessions, person, sessions) is None  # constant
    two = np.array([0, 0, 1, 1, 1])
    assert H.session_return_spearman(up, two, person, two) is None  # fewer than 3 sessions


# ------------------------------------------------------------------------------ block helpers


def test_gap_and_columns() -> None:
    assert H.gap("action_accuracy", 0.75) == pytest.approx(0.25)
    assert H.gap("switch_rate_ratio", 2.0) == H.gap("switch_rate_ratio", 0.5) == 1.0
    assert H.gap("discriminator_auc", 0.8) == pytest.approx(0.3)
    assert H.gap("discriminator_auc", 0.3) == 0.0  # below chance: nothing generalised
    assert H.gap("state_jsd", None) is None
    cols = H.humanlike_columns(
        {"state_jsd": 0.1, "discriminator_auc_ci": [0.4, 0.6], "discriminator_fold_aucs": [0.5]}
    )
    assert cols == {
        "humanlike.state_jsd": 0.1,
        "humanlike.discriminator_auc_ci_lo": 0.4,
        "humanlike.discriminator_auc_ci_hi": 0.6,
    }


# ------------------------------------------------------------------------------ policies


@pytest.mark.parametrize("kind", ["feedforward", "recurrent", "population", "list"])
def test_predict_actions_teacher_forced(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = [5, 9, 3]
    obs = np.random.default_rng(0).normal(size=(sum(lengths), 6)).astype(np.float32)
    x = torch.as_tensor(obs)
    if kind == "recurrent":
        # a strong recurrence, so that a state carried over from the last episode shows
        model = hbm_dl.RecurrentMLPReservoir(6, 16, 3, spectral_radius=3.0, generator=gen)
        pred = H.predict_actions(model, obs, lengths)
        # each episode from a zero state, state carried within it
        expected = []
        start = 0
        for n in lengths:
            logits, _ = model(x[None, start : start + n])
            expected.append(logits[0].argmax(-1))
            start += n
        assert pred.shape == (1, sum(lengths))
        np.testing.assert_array_equal(pred[0], torch.cat(expected).numpy())
        whole, _ = model(x[None])  # one sequence across boundaries would differ
        assert not np.array_equal(pred[0], whole[0].argmax(-1).numpy())
    elif kind == "feedforward":
        model = hbm_dl.FeedforwardMLP(6, 8, 3, generator=gen)
        np.testing.assert_array_equal(
            H.predict_actions(model, obs, lengths)[0], model(x).argmax(-1)
        )
    else:
        pop = hbm_ne.BatchedRecurrent(6, 3, 4, 8, generator=gen)
        members = [pop.export(i) for i in range(4)]
        pred = H.predict_actions(pop if kind == "population" else members, obs, lengths)
        assert pred.shape == (4, sum(lengths))
        for i, m in enumerate(members):
            np.testing.assert_array_equal(pred[i], H.predict_actions(m, obs, lengths)[0])


def test_record_rollouts_match_evaluate_module_and_replay() -> None:
    model = hbm_dl.FeedforwardMLP(4, 16, 2, generator=torch.Generator().manual_seed(1))
    seeds = [3, 14, 15]
    (traj,) = H.record_rollouts(
        model, "cartpole", seeds, generator=torch.Generator().manual_seed(7)
    )
    returns = evaluate_module(model, "cartpole", seeds, generator=torch.Generator().manual_seed(7))
    np.testing.assert_allclose(traj.returns, returns.double().numpy())
    np.testing.assert_array_equal(traj.lengths, traj.returns)  # CartPole: +1 per step
    # replaying the recorded actions from the same seeds gives the recorded observations
    env = make_env("cartpole", 1)
    for e, s in enumerate(seeds):
        obs = env.reset([s]).clone()
        for t, a in enumerate(traj.actions[e]):
            np.testing.assert_allclose(traj.obs[e][t], obs[0].numpy(), rtol=1e-6)
            obs = env.step(torch.tensor([int(a)])).obs.clone()
        assert bool(env.done.all())


# ------------------------------------------------------------------------------ on data


@pytest.fixture(scope="module")
def cl_data(shared_data_dir):  # type: ignore[no-untyped-def]
    return load_human_data("cartpole", "sim01", use_cl_info=True, data_dir=shared_data_dir)


def test_evaluate_humanlike_block(cl_data) -> None:  # type: ignore[no-untyped-def]
    meta = cl_data.metadata
    model = hbm_dl.FeedforwardMLP(
        meta.input_size, 16, 2, generator=torch.Generator().manual_seed(2)
    )
    block = H.evaluate_humanlike(model, cl_data, seed=3)
    assert set(H.METRICS) <= set(block)
    assert 0.0 <= block["action_accuracy"] <= block["action_accuracy_lag"] <= 1.0
    assert 0.0 <= block["state_jsd"] <= 1.0 and block["hold_duration_w1"] >= 0.0
    assert 0.0 <= block["discriminator_auc"] <= 1.0
    assert block["episodes"] == block["person_episodes"] == meta.n_test
    assert block["lag_frames"] == 5 and block["window_frames"] == 8
    assert json.loads(json.dumps(block)) == block  # JSON-able as it is
    assert H.evaluate_humanlike(model, cl_data, seed=3) == block  # deterministic given the seed
    # the teacher-forced accuracy is the argmax on the held-out steps, CL columns included
    argmax = model(torch.as_tensor(cl_data.test_obs)).argmax(-1).numpy()
    assert block["action_accuracy"] == pytest.approx(float(np.mean(argmax == cl_data.test_act)))


def test_population_blocks_match_their_members(cl_data) -> None:  # type: ignore[no-untyped-def]
    meta = cl_data.metadata
    pop = hbm_ne.BatchedFeedforward(
        meta.input_size, 2, 3, (8,), generator=torch.Generator().manual_seed(4)
    )
    blocks = H.evaluate_humanlike_many(pop, cl_data, seed=1)
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        alone = H.evaluate_humanlike(pop.export(i), cl_data, seed=1)
        # teacher forcing is deterministic; rollouts draw their actions from one shared stream
        assert block["action_accuracy"] == alone["action_accuracy"]
        assert block["action_accuracy_lag"] == alone["action_accuracy_lag"]
        assert block["episodes"] == alone["episodes"]


@pytest.mark.parametrize("env", ["cartpole", "mountaincar", "acrobot", "lunarlander"])
def test_random_policy_is_worse_than_the_person_on_every_metric(env: str, shared_data_dir) -> None:  # type: ignore[no-untyped-def]
    data = load_human_data(env, "sim01", data_dir=shared_data_dir)
    refs = H.humanlike_references(data, seed=0)
    for key in H.METRICS:
        person, rnd = H.gap(key, refs["person"][key]), H.gap(key, refs["random"][key])
        assert person is not None, key
        # None for the random policy: its returns do not vary across sessions at all
        assert rnd is None or rnd > person, (key, refs["person"][key], refs["random"][key])


def test_same_style_other_seed_is_closer_than_another_style() -> None:
    env = "cartpole"
    sim01 = SIMULATED_PROFILES["sim01"]

    def play(profile):  # type: ignore[no-untyped-def]
        return H.Trajectories.from_episodes(simulate_subject(env, profile, max_episode_steps=300))

    target = H.HumanlikeTarget(play(sim01), env)
    same = target.score(play(sim01.with_seed(1001)))
    distribution = ["hold_duration_w1", "switch_rate_ratio", "state_jsd", "discriminator_auc"]
    for other in ("sim03", "sim04"):  # twitchy, cautious: every distribution metric is further
        block = target.score(play(SIMULATED_PROFILES[other]))
        for key in distribution:
            assert H.gap(key, same[key]) < H.gap(key, block[key]), (other, key)  # type: ignore[operator]
    # sim02 (a fast learner, same key habits) is further on most of them
    block = target.score(play(SIMULATED_PROFILES["sim02"]))
    further = [H.gap(k, same[k]) < H.gap(k, block[k]) for k in distribution]  # type: ignore[operator]
    assert sum(further) >= 3
