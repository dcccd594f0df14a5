"""Behaviour rollouts on the Overcooked kitchens: a model plays its person's held-out segments
from their recorded starts, the partner open loop. Known answer: replaying the person's own
actions reproduces every recorded segment exactly (observations, actions, return), and its
humanlike block finds no difference. Synthetic trials are played by hbm-ne's game itself, so
they obey the 2019 rules; real recordings are used where overcooked-ai is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hbm_data import load_human_data
from hbm_data.overcooked import Trial, import_trials, layout_encoding
from hbm_experiments.evaluation import evaluate_policy, unplayable_reason
from hbm_experiments.overcooked_play import (
    CLOSED_LOOP_PARTNER,
    PARTNER,
    evaluate_overcooked,
    play_segments,
    recorded_segments,
    state_from_observation,
)
from hbm_experiments.overcooked_proxy import train_human_proxy
from hbm_ne.envs import overcooked as ne
from torch import nn

ENV = "overcooked-cramped_room"
T0 = 1_557_859_000_000.0  # ms since 1970: an evening in May 2019
N, S, E, W, STAY, INTERACT = range(6)

# cramped_room: player 0 fetches three onions, cooks, serves the soup and delivers it (+5)
_ONION = [W, INTERACT, E, N, INTERACT]
_COOK = [W, INTERACT, E, N, INTERACT] * 2 + [W, S, S, INTERACT, N, E, N] + [STAY] * 10
_SERVE = [INTERACT, S, E, S, INTERACT, N, W, N]
SCRIPT = [N, *_ONION, *_COOK, *_SERVE]


def play_trial(worker: int, split: str, start_ms: float, length: int = 120) -> Trial:
    """A trial made by the batched game: player 0 follows `SCRIPT` twice (then random keys),
    the partner turns and interacts in place at random (seeded by `worker`)."""
    rng = np.random.default_rng(worker)
    own = (SCRIPT * 2 + list(rng.integers(0, 6, length)))[:length]
    partner = rng.choice([N, E, STAY, INTERACT], size=length)
    game = ne.start_state("cramped_room", 1)
    states, rewards = [ne.decode_state(game, 0)], []
    for a, b in zip(own, partner, strict=True):
        rewards.append(float(ne.step_games(game, torch.tensor([[a, b]]))[0]))
        states.append(ne.decode_state(game, 0))
    actions = np.stack([np.asarray(own), partner], axis=1).astype(np.int64)
    times = start_ms + 150.0 * np.arange(length)
    return Trial(split, "run-1", worker, "cramped_room", tuple(states[:-1]), tuple(states[1:]),
                 actions, np.asarray(rewards), times)  # fmt: skip


@pytest.fixture
def kitchen(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    import_trials([play_trial(1, "train", T0), play_trial(2, "test", T0 + 600_000)], folder,
                  segments=4)  # fmt: skip
    return folder


def load(kitchen: Path, subject: str) -> Any:
    """Three of a player's four segments held out: mid-game starts and a delivery among them."""
    return load_human_data(ENV, subject, data_dir=kitchen, holdout_pct=0.75)


class Replay(nn.Module):
    """A recurrent policy that presses, in column b at step t, `actions[b][t]` (stay after)."""

    def __init__(self, actions: list[np.ndarray]) -> None:
        super().__init__()
        t_max = max(len(a) for a in actions)
        table = np.full((len(actions), t_max + 1), STAY, dtype=np.int64)
        for b, a in enumerate(actions):
            table[b, : len(a)] = a
        self.table = torch.as_tensor(table)
        self.unused = nn.Parameter(torch.zeros(1))  # hbm's evaluation reads a parameter dtype

    def forward(self, x: torch.Tensor, mask: Any = None) -> tuple[torch.Tensor, None]:
        """Whole sequences `x [B, T, in]` (teacher-forced metrics) -> logits `[B, T, 6]`."""
        b, t = x.shape[:2]
        return torch.where(nn.functional.one_hot(self.table[:b, :t], 6).bool(), 0.0, -1e9), None

    def initial_state(self, batch: int, device: Any = None) -> torch.Tensor:
        return torch.zeros((), dtype=torch.int64)

    def forward_step(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step = min(int(t), self.table.shape[1] - 1)
        logits = torch.full((x.shape[0], 6), -1e9)
        logits[torch.arange(x.shape[0]), self.table[: x.shape[0], step]] = 0.0
        return logits, t + 1


def test_the_script_scores_so_the_replay_has_a_return_to_match() -> None:
    trial = play_trial(1, "train", T0)
    assert trial.rewards.sum() >= 5.0  # at least one soup delivered


def test_a_start_decoded_from_its_observation_encodes_back(kitchen: Path) -> None:
    enc = layout_encoding("cramped_room")
    for tick, state in enumerate(play_trial(3, "train", T0).states):
        for player in (0, 1):
            obs = enc.encode(state, player)
            back = state_from_observation(obs, "cramped_room", player)
            np.testing.assert_array_equal(enc.encode(back, 0), enc.encode(state, 0), f"{tick}")
            np.testing.assert_array_equal(enc.encode(back, 1), enc.encode(state, 1), f"{tick}")


def test_an_observation_that_encodes_no_state_is_refused() -> None:
    obs = layout_encoding("cramped_room").encode(play_trial(1, "train", T0).states[0], 0)
    obs[2:6] = [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="orientation"):
        state_from_observation(obs, "cramped_room", 0)
    with pytest.raises(ValueError, match="shape"):
        state_from_observation(obs[:-1], "cramped_room", 0)


@pytest.mark.parametrize("subject", ["oc-w02-p0", "oc-w01-p1", "oc-all"])
def test_replaying_the_persons_actions_reproduces_the_segments(kitchen: Path, subject: str) -> None:
    data = load(kitchen, subject)
    segments = recorded_segments(data)
    assert segments and len(segments) == data.metadata.n_test
    assert any(s.segment > 0 for s in segments)  # starts mid-game
    repeats = 2
    replay = Replay([s.actions for s in segments] * repeats)
    (play,) = play_segments(replay, "cramped_room", segments, repeats=repeats, deterministic=True)
    scores = [s.score for s in segments] * repeats
    np.testing.assert_array_equal(play.returns, scores)
    for r in range(repeats):
        for e, s in enumerate(segments):
            k = r * len(segments) + e
            np.testing.assert_array_equal(play.actions[k], s.actions)
            np.testing.assert_allclose(play.obs[k], s.obs, rtol=0, atol=1e-6)
            assert play.seeds[k] == s.index
    if subject == "oc-w02-p0":
        assert sum(s.score for s in segments) > 0  # the known answer includes deliveries


def test_a_different_player_scores_differently(kitchen: Path) -> None:
    """Guards the known answer: replaying someone else's keys does not reproduce the person."""
    data = load(kitchen, "oc-w02-p0")
    segments = recorded_segments(data)
    (play,) = play_segments(
        Replay([s.partner_actions for s in segments]), "cramped_room", segments,
        deterministic=True,
    )  # fmt: skip
    assert any(
        not np.array_equal(a, s.actions) for a, s in zip(play.actions, segments, strict=True)
    )
    assert any(
        o.shape != s.obs.shape or not np.allclose(o, s.obs)
        for o, s in zip(play.obs, segments, strict=True)
    )


def test_a_closed_loop_partner_replaying_the_recorded_partner_is_the_open_loop(
    kitchen: Path,
) -> None:
    data = load(kitchen, "oc-w02-p1")
    segments = recorded_segments(data)
    own = [s.actions for s in segments]
    proxy = Replay([s.partner_actions for s in segments])
    (closed,) = play_segments(
        Replay(own), "cramped_room", segments, deterministic=True, partner_policy=proxy
    )
    np.testing.assert_array_equal(closed.returns, [s.score for s in segments])
    for o, s in zip(closed.obs, segments, strict=True):
        np.testing.assert_allclose(o, s.obs, rtol=0, atol=1e-6)
    # a partner that only waits is another game: the partner is seen elsewhere
    idle = Replay([np.full_like(s.partner_actions, STAY) for s in segments])
    (waited,) = play_segments(
        Replay(own), "cramped_room", segments, deterministic=True, partner_policy=idle
    )
    assert any(
        not np.array_equal(o[:, 9:11], s.obs[:, 9:11])
        for o, s in zip(waited.obs, segments, strict=True)
    )


def test_the_result_says_which_partner_played(kitchen: Path) -> None:
    data = load(kitchen, "oc-w02-p0")
    segments = recorded_segments(data)
    proxy = Replay([s.partner_actions for s in segments])
    own = Replay([s.actions for s in segments])
    behaviour, block = evaluate_overcooked(
        own, data, generator=torch.Generator(), humanlike=False, partner_policy=proxy
    )
    assert behaviour["partner"] == CLOSED_LOOP_PARTNER != PARTNER and block is None
    # replaying both recorded players, whatever the draws: every segment's recorded return
    assert behaviour["model_returns"] == [s.score for s in segments]


def _proxy_weights(folder: Path, train_worker: int, test_worker: int) -> list[torch.Tensor]:
    trials = [play_trial(train_worker, "train", T0), play_trial(test_worker, "test", T0 + 6e5)]
    import_trials(trials, folder, segments=4, force=True)
    proxy = train_human_proxy(folder, "cramped_room", hidden_sizes=(8,), max_epochs=2, seed=1)
    return [p.detach().clone() for p in proxy.parameters()]


def test_the_human_proxy_learns_from_the_training_trials_only(tmp_path: Path) -> None:
    base = _proxy_weights(tmp_path / "a", 1, 2)
    other_test = _proxy_weights(tmp_path / "b", 1, 5)  # another held-out trial: no change
    other_train = _proxy_weights(tmp_path / "c", 3, 2)  # another training trial: a change
    assert all(torch.equal(x, y) for x, y in zip(base, other_test, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(base, other_train, strict=True))
    with pytest.raises(FileNotFoundError, match="import-overcooked"):
        train_human_proxy(tmp_path / "none", "cramped_room")


def test_evaluate_policy_plays_the_kitchen_and_keeps_the_teacher_forced_block(
    kitchen: Path,
) -> None:
    data = load(kitchen, "oc-w02-p0")
    segments = recorded_segments(data)
    replay = Replay([s.actions for s in segments])
    out = evaluate_policy(replay, data, seed=3, repeats=1, humanlike=False)
    assert out["humanlike"]["protocol"] == "teacher-forced"  # kept
    behaviour = out["behaviour"]
    assert behaviour["partner"] == PARTNER
    assert behaviour["model_returns"] == behaviour["human_returns"] == [s.score for s in segments]
    assert behaviour["diff_of_means"] == 0.0 and "humanlike" not in behaviour


@pytest.mark.slow  # the discriminator's cross-validated permutations: about 20 s
def test_the_persons_own_play_replayed_is_not_told_apart(kitchen: Path) -> None:
    data = load(kitchen, "oc-w02-p0")
    segments = recorded_segments(data)
    out = evaluate_policy(Replay([s.actions for s in segments]), data, seed=3, repeats=1)
    block = out["behaviour"]["humanlike"]
    assert block["partner"] == PARTNER and block["repeats"] == 1
    assert block["paired_seeds"] == len(segments)
    # the person's own play, replayed: nothing tells it apart
    assert block["state_jsd"] == pytest.approx(0.0, abs=1e-12)
    assert block["hold_duration_w1"] == pytest.approx(0.0, abs=1e-12)
    assert block["action_accuracy"] == 1.0


def test_evaluate_policy_draws_actions_reproducibly(kitchen: Path) -> None:
    data = load(kitchen, "oc-w01-p1")
    policy = nn.Linear(data.metadata.obs_size, 6)
    torch.nn.init.normal_(policy.weight, generator=torch.Generator().manual_seed(0))
    one = evaluate_policy(policy, data, seed=4, repeats=2, humanlike=False)["behaviour"]
    two = evaluate_policy(policy, data, seed=4, repeats=2, humanlike=False)["behaviour"]
    assert one["model_returns"] == two["model_returns"]
    assert len(one["model_returns"]) == 2 * data.metadata.n_test
    assert "humanlike" not in one


def test_without_the_partners_file_behaviour_is_skipped_with_the_reason(kitchen: Path) -> None:
    for f in kitchen.glob("oc-w02-p1_*"):
        f.unlink()
    data = load(kitchen, "oc-w02-p0")
    with pytest.raises(FileNotFoundError, match="oc-w02-p1"):
        recorded_segments(data)
    out = evaluate_policy(nn.Linear(data.metadata.obs_size, 6), data, seed=0)
    assert out["behaviour"] == {"skipped": unplayable_reason(ENV)}


@pytest.mark.slow  # reads the recorded test pickle and imports it (tens of seconds)
@pytest.mark.usefixtures("overcooked_recordings")
def test_replaying_real_players_reproduces_their_recorded_segments(tmp_path: Path) -> None:
    from hbm_data.overcooked import read_trials

    trials = read_trials("test")
    import_trials(trials, tmp_path, pooled=False)
    checked = 0
    for trial in {t.layout: t for t in trials}.values():  # one trial per kitchen
        for player in (0, 1):
            subject = f"oc-w{trial.worker:02d}-p{player}"
            data = load_human_data(f"overcooked-{trial.layout}", subject, data_dir=tmp_path)
            segments = recorded_segments(data)
            (play,) = play_segments(
                Replay([s.actions for s in segments]), trial.layout, segments, deterministic=True
            )
            np.testing.assert_array_equal(play.returns, [s.score for s in segments])
            for o, s in zip(play.obs, segments, strict=True):
                np.testing.assert_allclose(o, s.obs, rtol=0, atol=1e-6)
            checked += len(segments)
    assert checked > 0


def test_returns_against_one_held_out_segment_have_no_interval() -> None:
    """A kitchen's per-session holdout leaves one segment: a person's spread is unknown, so the
    difference of means has no interval (and varied rollouts must not break the run)."""
    from hbm_experiments.evaluation import compare_returns

    out = compare_returns([0.0, 5.0, 0.0, 0.0, 0.0], [5.0], seed=0)
    assert out["diff_of_means"] == pytest.approx(1.0 - 5.0)
    assert out["diff_of_means_ci"] == [None, None]
    same = compare_returns([5.0, 5.0], [5.0], seed=0)  # nothing varies: the point itself
    assert same["diff_of_means_ci"] == [0.0, 0.0]
