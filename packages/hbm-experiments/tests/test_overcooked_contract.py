"""hbm-data's recorded Overcooked kitchens and hbm-ne's playable ones are the same game: the
same grids, observation sizes, actions, step limit and rules' constants, and the same
player-centred observation of every state (the importer's numpy encoding against the batched
game's), on synthetic states and, where overcooked-ai is installed, on recorded ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from hbm_data import get_env_spec
from hbm_data.overcooked import layouts as data_layouts
from hbm_data.overcooked import trials as data_trials
from hbm_ne.envs import _overcooked_game as ne_game
from hbm_ne.envs import make_env
from hbm_ne.envs import overcooked as ne

KITCHENS = sorted(data_layouts.LAYOUTS)


def test_both_packages_know_the_same_five_kitchens() -> None:
    assert KITCHENS == sorted(ne.LAYOUTS) == sorted(ne.KITCHENS)
    assert len(KITCHENS) == 5
    for layout in KITCHENS:
        assert tuple(data_layouts.LAYOUTS[layout]) == tuple(ne.LAYOUTS[layout]), layout
        assert ne_game.layout_grid(layout) == tuple(data_layouts.LAYOUTS[layout]), layout


@pytest.mark.parametrize("layout", KITCHENS)
def test_kitchen_specs_agree(layout: str) -> None:
    spec = get_env_spec(f"overcooked-{layout}")
    env = make_env(f"overcooked-{layout}", 1)
    try:
        enc = data_layouts.layout_encoding(layout)
        assert spec.obs_size == enc.size == ne.observation_size(layout) == env.obs_size
        assert len(enc.slot_names) == enc.size
        assert spec.num_actions == env.num_actions == 6
        assert data_trials.ACTION_NAMES == ne.ACTION_NAMES
        assert spec.noop_action == ne.ACTION_NAMES.index("stay")
        assert spec.max_episode_steps == env.max_episode_steps == 1204
        assert not spec.gymnasium  # recorded, not a Gymnasium game (hbm-ne has no fps)
        # the pots and counters each side encodes, in the same reading order
        width = max(len(row) for row in enc.grid)
        pots, counters = ne._pots_and_counters(layout)
        assert [y * width + x for x, y in enc.pots] == list(pots)
        assert [y * width + x for x, y in enc.counters] == list(counters)
    finally:
        env.close()


def test_rule_constants_agree() -> None:
    assert data_layouts.COOK_TICKS == ne_game.COOK_TICKS
    assert data_layouts.SOUP_ONIONS == ne_game.SOUP_ONIONS
    assert data_layouts.DIRECTIONS == ne_game.DIRECTIONS
    assert data_layouts.OBJECTS == ne_game.OBJECTS


def _both(states: Sequence[Mapping[str, Any]], layout: str) -> None:
    """hbm-data's encoding of each state equals hbm-ne's observation, for both players."""
    enc = data_layouts.layout_encoding(layout)
    batch = ne.encode_states(states, layout)
    for player in (0, 1):
        out = torch.empty(len(states), enc.size)
        ne.observe(batch, layout, player, out)
        want = np.stack([enc.encode(s, player) for s in states])
        # float32 (hbm-ne) against float64 (hbm-data): thirds and twentieths differ by rounding
        np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=1e-6, err_msg=layout)


def _rich_state(layout: str) -> dict[str, Any]:
    """Every object kind at once: a part-filled pot, a cooking or ready one, an onion, a dish
    and a soup on counters, a dish and a soup in hand."""
    enc = data_layouts.layout_encoding(layout)
    starts = [
        [x, y] for mark in "12" for y, row in enumerate(enc.grid)
        for x, c in enumerate(row) if c == mark
    ]  # fmt: skip
    objects: dict[str, Any] = {}
    for (x, y), state in zip(enc.pots, (["onion", 2, 0], ["onion", 3, 25]), strict=False):
        objects[f"{x},{y}"] = {"name": "soup", "position": [x, y], "state": state}
    for (x, y), name in zip(enc.counters[1::2], ("onion", "dish", "soup"), strict=False):
        objects[f"{x},{y}"] = {"name": name, "position": [x, y]}
        if name == "soup":
            objects[f"{x},{y}"]["state"] = ["onion", 3, 20]
    players = [
        {"position": starts[0], "orientation": [1, 0],
         "held_object": {"name": "dish", "position": starts[0]}},
        {"position": starts[1], "orientation": [0, 1],
         "held_object": {"name": "soup", "position": starts[1], "state": ["onion", 3, 20]}},
    ]  # fmt: skip
    return {"players": players, "objects": objects, "order_list": ["onion"], "pot_explosion": False}


@pytest.mark.parametrize("layout", KITCHENS)
def test_observations_agree_on_synthetic_states(layout: str) -> None:
    """The rich state, and states reached by seeded random play from the start (the game's own
    `decode_state` writes them in the recordings' format)."""
    states = [_rich_state(layout)]
    game = ne.start_state(layout, 16)
    gen = torch.Generator().manual_seed(5)
    for t in range(300):
        ne.step_games(game, torch.randint(0, 6, (16, 2), generator=gen))
        if t % 25 == 0:
            states += [ne.decode_state(game, g) for g in range(16)]
    assert any(s["objects"] for s in states[1:]), "random play never put anything down"
    _both(states, layout)


def test_an_observation_differs_where_the_states_differ() -> None:
    """The agreement above is not two all-zero vectors: moving a player changes both sides."""
    state = _rich_state("cramped_room")
    moved = _rich_state("cramped_room")
    moved["players"][0]["orientation"] = [0, -1]
    enc = data_layouts.layout_encoding("cramped_room")
    assert not np.array_equal(enc.encode(state, 0), enc.encode(moved, 0))
    _both([state, moved], "cramped_room")


@pytest.mark.slow  # reads the recorded test pickle (tens of seconds)
@pytest.mark.usefixtures("overcooked_recordings")
def test_observations_agree_on_recorded_states() -> None:
    trials = data_trials.read_trials("test")
    seen = set()
    for trial in trials:
        if trial.layout in seen:  # one trial per kitchen
            continue
        seen.add(trial.layout)
        _both(trial.states[::7], trial.layout)
    assert seen == set(KITCHENS)
