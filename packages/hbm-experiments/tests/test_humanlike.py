"""Human-likeness metrics: known answers on plain arrays, then on rollouts."""

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


def test_every_gymnasium_game_has_a_state_grid_of_its_observation_size() -> None:
    assert {"cartpole", "mountaincar", "acrobot", "lunarlander"} <= set(H.STATE_GRIDS)
    for name, grid in H.STATE_GRIDS.items():
        spec = ENVIRONMENTS[name]
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


def test_shift_accuracy_known_answers() -> None:
    actions = np.array([0, 0, 1, 1, 0, 0])
    pred = np.array([0, 1, 1, 0, 0, 0])  # the actions one frame early
    assert H.shift_accuracy(pred, actions, [6], 0) == pytest.approx(4 / 6)
    # against the action one frame later: steps 0..4 compared, all match
    assert H.shift_accuracy(pred, actions, [6], 1) == 1.0
    # the shift never crosses into the next episode: pairs (0,1) and (2,3) only
    assert H.shift_accuracy(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), [2, 2], 1) == 1.0
    assert H.shift_accuracy(np.array([1, 0, 0, 1]), np.array([0, 0, 1, 1]), [2, 2], 1) == 0.0
    # a batch of predictions [P, N]; no pair at all: NaN
    assert H.shift_accuracy(np.stack([pred, actions]), actions, [6], 1).tolist() == [1.0, 0.6]
    assert math.isnan(H.shift_accuracy(pred, actions, [6], 6))


def _late_player(rng: np.random.Generator, n: int, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """A two-action player who presses at t what the state showed at t - delay (a jittery
    state: the wanted key changes every other frame or so)."""
    obs = rng.normal(0, 1, size=(n, 2))
    want = (obs[:, 0] > 0).astype(np.int64)
    return obs, np.concatenate([np.full(delay, want[0]), want[:-delay]])


def test_shift_is_chosen_on_training_episodes_and_random_stays_near_chance() -> None:
    """A player who reacts 3 frames late: `choose_shift` finds 3 from the training episodes;
    a model acting on the state at once matches every shifted step; random guesses on a
    two-action game score about one half. The old "any action within ±k frames" rule gave the
    same random guesses nearly full marks."""
    rng = np.random.default_rng(5)
    eps = [_late_player(rng, 120, 3) for _ in range(10)]
    train = H.Trajectories(
        tuple(o for o, _ in eps[:6]), tuple(a for _, a in eps[:6]),
        np.zeros(6), np.zeros(6, np.int64), np.arange(6),
    )  # fmt: skip
    delta, scores = H.choose_shift(train, 5)
    assert delta == 3 and len(scores) == 6 and scores[3] == max(scores)
    test_obs = np.concatenate([o for o, _ in eps[6:]])
    actions = np.concatenate([a for _, a in eps[6:]])
    lengths = [120] * 4
    instant = (test_obs[:, 0] > 0).astype(np.int64)  # acts on the state it sees
    assert H.shift_accuracy(instant, actions, lengths, delta) == 1.0
    assert H.action_accuracy(instant, actions) < 0.7
    guesses = rng.integers(0, 2, size=len(actions))
    shifted = float(H.shift_accuracy(guesses, actions, lengths, delta))
    assert abs(shifted - 0.5) < 0.06  # random stays at chance, clearly below the person's 1.0
    window = np.array([  # the retired rule: a hit if the person pressed it within ±5 frames
        guesses[t] in actions[(t // 120) * 120 + max(0, t % 120 - 5) : (t // 120) * 120
                              + min(120, t % 120 + 6)]
        for t in range(len(actions))
    ])  # fmt: skip
    assert window.mean() > 0.95


def test_person_floor_beats_random_on_the_shifted_accuracy(shared_data_dir) -> None:  # type: ignore[no-untyped-def]
    """On CartPole (two actions) the person's own k-NN choices, shifted by their reaction,
    score far above random guesses; the shift was chosen on the training episodes."""
    data = load_human_data("cartpole", "sim01", data_dir=shared_data_dir)
    target = H.target_of(data)
    assert target.shift is not None and 0 <= target.shift <= target.max_shift == 5
    person = H.person_reference(data, repeats=2, target=target)
    rng = np.random.default_rng(0)
    _, rnd = target.accuracy(rng.integers(0, 2, size=len(target.actions)))
    assert rnd is not None and abs(float(rnd) - 0.5) < 0.08
    assert person["action_accuracy_shift"] > float(rnd) + 0.2
    assert person["shift_frames"] == target.shift


def test_person_own_replay_is_a_perfect_match() -> None:
    rng = np.random.default_rng(2)
    person = _trajectories(
        [_held_actions(rng, n) for n in (30, 45, 25, 38, 33, 41, 29, 36, 30)],
        sessions=[0, 0, 0, 1, 1, 1, 2, 2, 2],
    )
    target = H.HumanlikeTarget(person, "cartpole", shift=0)
    block = target.score(person, person.flat_actions)
    assert block["action_accuracy"] == 1.0 and block["action_accuracy_shift"] == 1.0
    assert block["hold_duration_w1"] == 0.0 and block["state_jsd"] == 0.0
    assert block["switch_rate_ratio"] == 1.0 and block["return_diff"] == 0.0
    assert block["session_return_spearman"] == pytest.approx(1.0)
    # identical windows on both sides of every seed: chance (up to BLAS rounding, which can
    # order identical rows' scores), and no test can reject
    assert block["discriminator_auc"] == pytest.approx(0.5, abs=0.02)
    for key in H.TESTED_METRICS:
        assert block[H.METRICS[key].p_key] > 0.5, key  # type: ignore[index]
    assert all(abs(H.gap(k, block[k])) <= 0.02 for k in H.METRICS)  # type: ignore[arg-type]
    assert block["paired_seeds"] == 9 and block["p_min"] == pytest.approx(1 / 200)


# ------------------------------------------------------------------------------ discriminator


def _paired(first: H.Trajectories, second: H.Trajectories) -> H.Trajectories:
    """`second`'s episodes on `first`'s seeds (paired one to one)."""
    return H.Trajectories(
        second.obs, second.actions, second.returns, second.sessions, first.seeds.copy()
    )


def test_discriminator_tells_tapping_from_holding_deterministically() -> None:
    rng = np.random.default_rng(3)
    holding = _trajectories([_held_actions(rng, 60) for _ in range(8)])
    tapping = _trajectories([rng.integers(0, 2, 60).tolist() for _ in range(8)], seed=9)
    target = H.HumanlikeTarget(holding, "cartpole", seed=4)
    out = target.score(tapping)
    # 8 seeds, one episode a side: 2^8 relabellings, each with a mirror image
    assert out["p_min"] == pytest.approx(2 / 2**8)
    assert out["discriminator_auc"] > 0.9 and out["discriminator_p"] <= 0.02
    assert out["switch_rate_ratio_p"] <= 0.02 and out["hold_duration_w1_p"] <= 0.02
    assert target.score(tapping) == out  # deterministic given the seed
    same = target.score(_trajectories([_held_actions(rng, 60) for _ in range(8)], seed=5))
    assert same["discriminator_auc"] < out["discriminator_auc"] - 0.2
    assert same["discriminator_p"] > 0.05 and same["switch_rate_ratio_p"] > 0.05


def test_classifier_test_equals_sklearns_ridge_and_roc_auc() -> None:
    """The fast path (one factorisation per fold for every relabelling, AUC from ranks)
    against the textbook one (scikit-learn's `Ridge` refitted per relabelling and fold, less
    the training labels' mean, `roc_auc_score` on the pooled out-of-fold scores): 1e-9."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(8)
    holding = _trajectories([_held_actions(rng, 60) for _ in range(8)])
    mixed = _trajectories(
        [_held_actions(rng, 30) + rng.integers(0, 2, 30).tolist() for _ in range(8)], seed=9
    )
    pool = H.Trajectories(
        holding.obs + mixed.obs, holding.actions + mixed.actions, np.zeros(16),
        np.zeros(16, np.int64), np.r_[holding.seeds, holding.seeds],
    )  # fmt: skip
    z, owner = H.window_features(pool, "cartpole", label="episode")
    labels = np.r_[np.ones(8, np.int8), np.zeros(8, np.int8)]
    y = H.seed_permutations(labels, pool.seeds, 3, np.random.default_rng(1))
    aucs = H.classifier_test(z, owner, y, pool.seeds, seed=2)
    fold = H.twosample._fold_of(pool.seeds, H.twosample.FOLDS, np.random.default_rng([2, 17]))
    for row, auc in zip(y, aucs, strict=True):
        yw = row[owner].astype(float)
        scores = np.empty(len(z))
        for f in range(H.twosample.FOLDS):
            te = fold[owner] == f
            t = 2 * yw[~te] - 1
            scores[te] = Ridge(alpha=1.0).fit(z[~te], t).predict(z[te]) - t.mean()
        assert auc == pytest.approx(roc_auc_score(yw, scores), abs=1e-9)
    assert 0.55 < aucs[0] < 0.999  # neither chance nor perfect: the scores are ranked


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
    sessions = np.repeat([0, 1, 2, 3], 3)
    person = np.repeat([15.0, 30.0, 50.0, 40.0], 3)
    up = np.repeat([1.0, 2.0, 4.0, 3.0], 3)
    assert H.session_return_spearman(up, sessions, person, sessions) == pytest.approx(1.0)
    assert H.session_return_spearman(-up, sessions, person, sessions) == pytest.approx(-1.0)
    assert H.session_return_spearman(np.ones(12), sessions, person, sessions) is None  # constant
    two = np.repeat([0, 1], 6)
    assert H.session_return_spearman(up, two, person, two) is None  # fewer than 3 sessions
    # one held-out episode in a session: its mean is one seed's luck, so no ρ
    thin = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])
    assert H.session_return_spearman(up, thin, person, thin) is None


# ------------------------------------------------------------------------------ block helpers


def test_gap_and_columns() -> None:
    assert H.gap("action_accuracy", 0.75) == pytest.approx(0.25)
    assert H.gap("switch_rate_ratio", 2.0) == H.gap("switch_rate_ratio", 0.5) == 1.0
    assert H.gap("discriminator_auc", 0.8) == pytest.approx(0.3)
    assert H.gap("discriminator_auc", 0.3) == pytest.approx(-0.2)  # not truncated at chance
    assert H.gap("return_diff", -12.5) == 12.5
    assert H.gap("state_jsd", None) is None
    assert set(H.TESTED_METRICS) == {
        "hold_duration_w1", "switch_rate_ratio", "state_jsd", "discriminator_auc", "return_diff"
    }  # fmt: skip
    cols = H.humanlike_columns({"state_jsd": 0.1, "diff_ci": [0.4, 0.6], "fold": [0.5]})
    assert cols == {
        "humanlike.state_jsd": 0.1,
        "humanlike.diff_ci_lo": 0.4,
        "humanlike.diff_ci_hi": 0.6,
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
    block = H.evaluate_humanlike(model, cl_data, seed=3, repeats=2)
    assert set(H.METRICS) <= set(block)
    assert 0.0 <= block["action_accuracy"] <= 1.0 and 0.0 <= block["action_accuracy_shift"] <= 1
    assert 0.0 <= block["state_jsd"] <= 1.0 and block["hold_duration_w1"] >= 0.0
    assert 0.0 <= block["discriminator_auc"] <= 1.0
    for key in H.TESTED_METRICS:
        assert block["p_min"] <= block[H.METRICS[key].p_key] <= 1.0  # type: ignore[index]
    assert block["episodes"] == 2 * meta.n_test and block["person_episodes"] == meta.n_test
    assert block["paired_seeds"] == meta.n_test and block["repeats"] == 2
    assert block["max_shift_frames"] == 5 and block["window_frames"] == 8
    assert json.loads(json.dumps(block)) == block  # JSON-able as it is
    assert H.evaluate_humanlike(model, cl_data, seed=3, repeats=2) == block  # deterministic
    # the teacher-forced accuracy is the argmax on the held-out steps, CL columns included
    argmax = model(torch.as_tensor(cl_data.test_obs)).argmax(-1).numpy()
    assert block["action_accuracy"] == pytest.approx(float(np.mean(argmax == cl_data.test_act)))


def test_population_blocks_match_their_members(cl_data) -> None:  # type: ignore[no-untyped-def]
    meta = cl_data.metadata
    pop = hbm_ne.BatchedFeedforward(
        meta.input_size, 2, 3, (8,), generator=torch.Generator().manual_seed(4)
    )
    target = H.target_of(cl_data, seed=1)
    blocks = H.evaluate_humanlike_many(pop, cl_data, seed=1, repeats=1, target=target)
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        alone = H.evaluate_humanlike_many(pop.export(i), cl_data, seed=1, repeats=1, target=target)[
            0
        ]
        # teacher forcing is deterministic; rollouts draw their actions from one shared stream
        assert block["action_accuracy"] == alone["action_accuracy"]
        assert block["action_accuracy_shift"] == alone["action_accuracy_shift"]
        assert block["episodes"] == alone["episodes"]


ROBUST = ("action_accuracy", "action_accuracy_shift", "hold_duration_w1", "switch_rate_ratio")
"""The metrics on which random play is far from the person on every game (the validity suite
measures the others)."""


@pytest.mark.parametrize(
    "env",
    ["cartpole", pytest.param("acrobot", marks=pytest.mark.slow),
     pytest.param("lunarlander", marks=pytest.mark.slow)],
)  # fmt: skip
def test_random_policy_is_worse_than_the_person(env: str, shared_data_dir) -> None:  # type: ignore[no-untyped-def]
    data = load_human_data(env, "sim01", data_dir=shared_data_dir)
    refs = H.humanlike_references(data, seed=0, repeats=3)
    for key in ROBUST:
        person, rnd = H.gap(key, refs["person"][key]), H.gap(key, refs["random"][key])
        assert person is not None and rnd is not None and rnd > person, key
    for key in ("hold_duration_w1", "switch_rate_ratio", "discriminator_auc"):
        assert refs["random"][H.METRICS[key].p_key] <= 0.05, key  # type: ignore[index]
    # the floor by a model row's protocol: as many episodes, paired the same way
    assert refs["person"]["episodes"] == refs["random"]["episodes"] == 3 * data.metadata.n_test
    assert refs["person"]["paired_seeds"] == refs["random"]["paired_seeds"] == data.metadata.n_test


def test_same_style_other_luck_is_closer_than_another_style() -> None:
    env = "cartpole"
    sim01 = SIMULATED_PROFILES["sim01"]

    def play(profile):  # type: ignore[no-untyped-def]
        return H.Trajectories.from_episodes(simulate_subject(env, profile, max_episode_steps=300))

    target = H.HumanlikeTarget(play(sim01), env)
    same = target.score(play(sim01.with_seed(1001)))
    distribution = ["hold_duration_w1", "switch_rate_ratio", "discriminator_auc"]
    for other in ("sim03", "sim04"):  # twitchy, cautious: every distribution metric is further
        block = target.score(play(SIMULATED_PROFILES[other]))
        for key in distribution:
            assert H.gap(key, same[key]) < H.gap(key, block[key]), (other, key)  # type: ignore[operator]
            p_key = H.METRICS[key].p_key
            assert block[p_key] < same[p_key], (other, key)  # type: ignore[index]
