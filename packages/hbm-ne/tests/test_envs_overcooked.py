"""The batched Overcooked: rules on hand-made kitchens, batch = single games, and conformance
with the 2019 human-human recordings (read from the installed `overcooked-ai` package)."""

from __future__ import annotations

import ast
import importlib.metadata
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from hbm_ne.envs import make_env
from hbm_ne.envs.overcooked import (
    LAYOUTS,
    Overcooked,
    OvercookedState,
    StateFormatError,
    action_index,
    decode_state,
    encode_states,
    observation_size,
    observe,
    start_state,
    step_games,
)

N, S, E, W, STAY, INTERACT = range(6)
PICKLE = "overcooked_ai_py/data/human_data/clean_{split}_trials.pickle"


def state(players: list[dict[str, Any]], objects: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    objs = {f"{o['position'][0]},{o['position'][1]}": o for o in objects}
    return {"players": players, "objects": objs, "order_list": ["onion"], "pot_explosion": False}


def player(x: int, y: int, o: tuple[int, int] = (0, -1), held: str | None = None, **soup: Any):
    p: dict[str, Any] = {"position": [x, y], "orientation": list(o)}
    if held:
        p["held_object"] = {"name": held, "position": [x, y], **soup}
    return p


def soup(x: int, y: int, onions: int, ticks: int) -> dict[str, Any]:
    return {"name": "soup", "position": [x, y], "state": ["onion", onions, ticks]}


def step_one(s: dict[str, Any], a: tuple[int, int], layout: str = "cramped_room"):
    st = encode_states([s], layout)
    reward = step_games(st, torch.tensor([a]))
    return decode_state(st, 0), float(reward[0])


# cramped_room: "XXPXX", "O  2O", "X1  X", "XDXSX" (pot at (2, 0), window at (3, 3))


def test_codec_round_trip_and_errors() -> None:
    s = state(
        [player(1, 1, (-1, 0), "onion"), player(3, 2, (0, 1), "soup", state=["onion", 3, 25])],
        [soup(2, 0, 2, 0), {"name": "dish", "position": [0, 2]}],
    )
    assert decode_state(encode_states([s], "cramped_room"), 0) == s
    with pytest.raises(StateFormatError, match="only a counter or a pot"):
        encode_states([state([player(1, 1), player(3, 2)], [soup(1, 2, 1, 0)])], "cramped_room")
    with pytest.raises(StateFormatError, match="both players"):
        encode_states([state([player(1, 1), player(1, 1)])], "cramped_room")
    with pytest.raises(StateFormatError, match="holds an object at"):
        bad = player(1, 1, held="dish")
        bad["held_object"]["position"] = [2, 1]
        encode_states([state([bad, player(3, 2)])], "cramped_room")
    with pytest.raises(ValueError, match="on the edge"):
        encode_states([s], [("X1X", "X2X")])
    with pytest.raises(StateFormatError, match="not floor"):
        encode_states([state([player(0, 0), player(3, 2)])], "cramped_room")
    with pytest.raises(ValueError, match="unknown Overcooked layout"):
        encode_states([s], "kitchen")
    assert [action_index(a) for a in ([0, -1], [0, 1], [1, 0], [-1, 0], [0, 0], "INTERACT")] == [
        N, S, E, W, STAY, INTERACT,
    ]  # fmt: skip


def test_third_onion_starts_cooking_and_the_timer_keeps_counting() -> None:
    s = state([player(2, 1, held="onion"), player(3, 2)], [soup(2, 0, 2, 0)])
    nxt, _ = step_one(s, (INTERACT, STAY))
    assert (
        nxt["objects"]["2,0"]["state"] == ["onion", 3, 1] and "held_object" not in nxt["players"][0]
    )
    # a ready soup keeps counting; an onion more does not go in
    s = state([player(2, 1, held="onion"), player(3, 2)], [soup(2, 0, 3, 40)])
    nxt, _ = step_one(s, (INTERACT, STAY))
    assert nxt["objects"]["2,0"]["state"] == ["onion", 3, 41]
    assert nxt["players"][0]["held_object"]["name"] == "onion"


def test_dish_takes_a_ready_soup_only_and_serving_pays() -> None:
    s = state([player(2, 1, held="dish"), player(3, 2)], [soup(2, 0, 3, 19)])
    nxt, _ = step_one(s, (INTERACT, STAY))  # not ready before the pick-up: nothing happens
    assert nxt["objects"]["2,0"]["state"] == ["onion", 3, 20]
    nxt2, _ = step_one(nxt, (INTERACT, STAY))
    held = nxt2["players"][0]["held_object"]
    assert held == {"name": "soup", "position": [2, 1], "state": ["onion", 3, 20]}
    assert nxt2["objects"] == {}
    s = state([player(1, 1), player(3, 2, (0, 1), "soup", state=["onion", 3, 30])])
    nxt, r = step_one(s, (STAY, INTERACT))
    assert r == 5.0 and "held_object" not in nxt["players"][1]


def test_counters_and_dispensers_in_player_order() -> None:
    s = state([player(1, 1, (-1, 0)), player(1, 2, (0, 1), "dish")])
    nxt, _ = step_one(s, (INTERACT, INTERACT))  # onion taken; a dish at the dish dispenser: kept
    assert nxt["players"][0]["held_object"]["name"] == "onion"
    assert nxt["players"][1]["held_object"]["name"] == "dish"
    # coordination_ring's middle counter (2, 2) between (2, 1) and (2, 3): player 0 acts first,
    # so its onion put down is picked up by player 1 in the same tick, but not the other way
    onion = ("onion",)
    s = state([player(2, 1, (0, 1), *onion), player(2, 3, (0, -1))])
    nxt, _ = step_one(s, (INTERACT, INTERACT), "coordination_ring")
    assert nxt["objects"] == {} and nxt["players"][1]["held_object"]["name"] == "onion"
    s = state([player(2, 1, (0, 1)), player(2, 3, (0, -1), *onion)])
    nxt, _ = step_one(s, (INTERACT, INTERACT), "coordination_ring")
    assert nxt["objects"] == {"2,2": {"name": "onion", "position": [2, 2]}}
    assert "held_object" not in nxt["players"][0]


def test_moves_turn_and_collisions_keep_both_in_place() -> None:
    s = state([player(1, 2), player(2, 2)])
    nxt, _ = step_one(s, (E, W))  # a swap: neither moves, both turn
    assert [p["position"] for p in nxt["players"]] == [[1, 2], [2, 2]]
    assert [p["orientation"] for p in nxt["players"]] == [[1, 0], [-1, 0]]
    s = state([player(1, 1), player(3, 1)])
    nxt, _ = step_one(s, (E, W))  # both onto (2, 1)
    assert [p["position"] for p in nxt["players"]] == [[1, 1], [3, 1]]
    nxt, _ = step_one(s, (N, S))  # into a wall: turn only; south onto (3, 2): moves
    assert nxt["players"][0] == player(1, 1, (0, -1)) and nxt["players"][1] == player(3, 2, (0, 1))


def test_batched_step_equals_single_games_on_every_kitchen() -> None:
    """B games on mixed kitchens, random play for 200 ticks: each equals its game alone, and
    the torch ops (other devices) equal the numpy ones (CPU)."""
    gen = torch.Generator().manual_seed(0)
    layouts = [name for name in LAYOUTS for _ in range(2)]
    batch = [start_state(name, 1) for name in layouts]
    dicts = [decode_state(s, 0) for s in batch]
    together = encode_states(dicts, layouts)
    alone = [encode_states([d], name) for d, name in zip(dicts, layouts, strict=True)]
    rewards = torch.zeros(len(layouts))
    # bias towards interact so that objects move about
    probs = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5, 2.0])
    torch_ops = encode_states(dicts, layouts)  # the same games by torch ops (other devices)
    for _ in range(200):
        joint = torch.multinomial(probs, 2 * len(layouts), replacement=True, generator=gen)
        joint = joint.view(-1, 2)
        reward = step_games(together, joint)
        assert torch.equal(step_games(torch_ops, joint, use_numpy=False), reward)
        rewards += reward
        for b, game in enumerate(alone):
            rewards[b] -= step_games(game, joint[b : b + 1])[0]
    for b, game in enumerate(alone):
        assert decode_state(together, b) == decode_state(game, 0), layouts[b]
        assert decode_state(torch_ops, b) == decode_state(game, 0), layouts[b]
    assert torch.equal(rewards, torch.zeros(len(layouts)))
    assert any(decode_state(together, b)["objects"] for b in range(len(layouts)))
    # the observation by numpy (CPU) and by torch ops, per kitchen and player
    for name in LAYOUTS:
        games = together.select(torch.tensor([b for b, x in enumerate(layouts) if x == name]))
        for p in (0, 1):
            outs = [torch.full((2, observation_size(name)), -1.0) for _ in range(2)]
            observe(games, name, p, outs[0])
            observe(games, name, p, outs[1], use_numpy=False)
            assert torch.equal(outs[0], outs[1]), (name, p)
            rest = torch.cat([outs[0][:, 2:9], outs[0][:, 11:]], dim=1)  # all but positions
            assert rest.min() >= 0.0 and rest.max() <= 1.0  # every -1 overwritten


def test_env_plays_one_player_and_the_partner_by_its_actions() -> None:
    env = make_env("overcooked-cramped_room", 2, device="cpu")
    assert isinstance(env, Overcooked) and env.layout == "cramped_room"
    obs = env.reset([0, 1])
    assert obs.shape == (2, env.obs_size) and env.obs_size == 36
    assert obs[0, :6].tolist() == [1.0, 2.0, 1.0, 0.0, 0.0, 0.0]  # (1, 2) facing north
    env.partner_actions[:] = torch.tensor([W, STAY])
    env.step(torch.tensor([E, E]))
    # game 0: the partner (3, 1) goes west to (2, 1); game 1: it stays
    assert env.obs[:, 9:11].tolist() == [[0.0, -1.0], [1.0, -1.0]]
    assert env.obs[:, 0].tolist() == [2.0, 2.0]
    assert isinstance(env.state, OvercookedState)
    with pytest.raises(ValueError, match="actions must lie"):
        env.step(torch.tensor([6, 0]))


# --- conformance with the recordings -------------------------------------------------------


def _pickle(split: str) -> Path:
    try:
        dist = importlib.metadata.distribution("overcooked-ai")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("overcooked-ai is not installed (pip install --no-deps overcooked-ai==1.1.0)")
    path = Path(str(dist.locate_file(PICKLE.format(split=split))))
    if not path.is_file():
        pytest.skip(f"{path}: the installed overcooked-ai has no human recordings")
    return path


@cache
def _frame(split: str) -> Any:
    pandas = pytest.importorskip("pandas", reason="reading the recordings needs pandas")
    return pandas.read_pickle(_pickle(split))


def _check(frame: Any) -> int:
    """Step every row's state with its joint action; assert the recorded next state and
    reward. Returns the number of transitions checked."""
    for name, rows in frame.groupby("layout_name"):
        grids = {tuple(ast.literal_eval(g)) for g in set(rows["layout"])}
        assert grids == {LAYOUTS[str(name)]}, name  # the data's own layout column
        states = [ast.literal_eval(s) for s in rows["state"]]
        wanted = [ast.literal_eval(s) for s in rows["next_state"]]
        joint = [[action_index(a) for a in ast.literal_eval(j)] for j in rows["joint_action"]]
        st = encode_states(states, str(name))
        reward = step_games(st, torch.tensor(joint))
        assert reward.tolist() == rows["reward"].astype(float).tolist(), name
        bad = [i for i, want in enumerate(wanted) if decode_state(st, i) != want]
        assert not bad, f"{name}: {len(bad)} mismatches, first at row {rows.index[bad[0]]}"
    return len(frame)


@pytest.mark.parametrize("split", ["train", "test"])
def test_recorded_transitions_sample(split: str) -> None:
    """Every 50th tick, every 7th tick where someone interacts, and every delivery of one
    split: the recorded next state and reward."""
    frame = _frame(split)
    interacts = frame["joint_action"].str.contains("INTERACT") & (frame["cur_gameloop"] % 7 == 0)
    sample = frame[(frame["cur_gameloop"] % 50 == 0) | interacts | (frame["reward"] > 0)]
    assert (sample["reward"] > 0).sum() > 500  # deliveries, pick-ups and fills are in it
    assert _check(sample) == len(sample)
    starts = frame[frame["cur_gameloop"] == 0]
    assert len(starts) > 30
    for name, first in zip(starts["layout_name"], starts["state"], strict=True):
        # every game starts as `start_state` has it
        assert decode_state(start_state(name, 1), 0) == ast.literal_eval(first), name


@pytest.mark.slow
def test_every_recorded_transition() -> None:
    """All 46 729 + 44 373 recorded transitions, zero mismatches."""
    assert _check(_frame("train")) + _check(_frame("test")) == 91102
