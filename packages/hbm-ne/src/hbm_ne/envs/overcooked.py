"""Overcooked as the 2019 human-human study played it, B kitchens stepped together in torch.

`step_games(state, joint_action [B, 2])` advances B two-player games (each on its own kitchen)
in tensor operations; its rules, in `_overcooked_game`, give the recorded next state and reward
on every one of the 91 102 recorded transitions of the study (the recordings ship inside the
`overcooked-ai` 1.1.0 package). `encode_states` / `decode_state` convert between the recorded
dict states and `OvercookedState`; `action_index` reads a recorded action.

Behind the `BatchedEnv` interface, `overcooked-<layout>` (one class per kitchen) lets a policy
play one player (`player`, 0 by default) while the caller drives the partner through
`partner_actions` (`[B]`, set before each `step`; "stay" unless set). Its observation is the
player-centred encoding that hbm-data's Overcooked importer writes (so a model trained on the
imported episodes plays here):

- 0-1 own x, y; 2-5 own orientation one-hot (north, south, east, west); 6-8 held object one-hot
  (onion, dish, soup); 9-10 partner position minus own; 11-14 partner orientation; 15-17 partner's
  held object;
- per pot in reading order: onions / 3, min(ticks, `COOK_TICKS`) / `COOK_TICKS`, ready (0/1);
- per counter with floor beside it, in reading order: the object on it, one-hot.

Every kitchen starts the same (players on the `1`/`2` cells facing north, nothing anywhere), so
`reset(seeds)` only checks the seeds. Episodes last `max_episode_steps` = 1204 ticks, the
longest recorded game (180 s at about 6.7 ticks/s); nothing terminates earlier.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from hbm_ne.envs._base import BatchedEnv
from hbm_ne.envs._overcooked_game import (
    ACTION_NAMES,
    COOK_TICKS,
    DIRECTIONS,
    LAYOUTS,
    SOUP,
    SOUP_ONIONS,
    STAY,
    OvercookedState,
    StateFormatError,
    _NumpyOps,
    _TorchOps,
    action_index,
    decode_state,
    encode_states,
    layout_grid,
    step_games,
)

__all__ = [
    "ACTION_NAMES",
    "LAYOUTS",
    "Overcooked",
    "OvercookedState",
    "StateFormatError",
    "action_index",
    "decode_state",
    "encode_states",
    "observation_size",
    "observe",
    "start_state",
    "step_games",
]


@cache
def _pots_and_counters(layout: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Flat cells (`y * width + x`) of the pots and of the counters beside floor."""
    grid = layout_grid(layout)
    width = max(len(row) for row in grid)

    def kind(x: int, y: int) -> str:
        return grid[y][x] if 0 <= y < len(grid) and 0 <= x < len(grid[y]) else "#"

    pots, counters = [], []
    for y, row in enumerate(grid):
        for x, c in enumerate(row):
            if c == "P":
                pots.append(y * width + x)
            elif c == "X" and any(kind(x + dx, y + dy) in " 12" for dx, dy in DIRECTIONS):
                counters.append(y * width + x)
    return tuple(pots), tuple(counters)


def observation_size(layout: str) -> int:
    """D = 18 + 3 per pot + 3 per counter beside floor (module docstring)."""
    pots, counters = _pots_and_counters(layout)
    return 18 + 3 * len(pots) + 3 * len(counters)


def start_state(
    layout: str, num_games: int, *, device: torch.device | str = "cpu"
) -> OvercookedState:
    """`num_games` copies of the kitchen's start: players on `1` and `2` facing north."""
    grid = layout_grid(layout)
    starts = [
        {"position": [x, y], "orientation": [0, -1]}
        for mark in "12"
        for y, row in enumerate(grid)
        for x, c in enumerate(row)
        if c == mark
    ]
    state = {"players": starts, "objects": {}, "order_list": ["onion"], "pot_explosion": False}
    one = encode_states([state], layout, device=device)
    return one.select(torch.zeros(num_games, dtype=torch.int64, device=one.pos.device))


def observe(
    state: OvercookedState,
    layout: str,
    player: int,
    out: torch.Tensor,
    *,
    use_numpy: bool | None = None,
) -> None:
    """Write the player-centred observation of every game into `out` `[B, D]` float32 (numpy
    on the tensors' memory on CPU, torch ops elsewhere or with `use_numpy=False`)."""
    pots, counters = _pots_and_counters(layout)
    me, other = player, 1 - player
    if use_numpy is None:
        use_numpy = out.device.type == "cpu"
    xp: Any = _NumpyOps if use_numpy else _TorchOps(out.device)
    o, pos, ori, held = xp.view(out), xp.view(state.pos), xp.view(state.ori), xp.view(state.held)
    obj, on, ticks = (xp.view(t) for t in (state.obj, state.obj_onions, state.obj_ticks))
    o[...] = 0.0
    rows = xp.arange(state.num_games, pos)
    o[:, 0:2] = pos[:, me]
    o[rows, 2 + ori[:, me]] = 1.0
    for base, k in ((6, me), (15, other)):
        h = held[:, k]
        o[rows, base - 1 + xp.where(h > 0, h, 1)] = xp.where(h > 0, 1.0, 0.0)
    o[:, 9:11] = pos[:, other] - pos[:, me]
    o[rows, 11 + ori[:, other]] = 1.0
    for j, c in enumerate(pots):
        is_soup = obj[:, c] == SOUP
        n, t = xp.where(is_soup, on[:, c], 0), xp.where(is_soup, ticks[:, c], 0)
        o[:, 18 + 3 * j] = n / SOUP_ONIONS
        o[:, 19 + 3 * j] = xp.where(t < COOK_TICKS, t, COOK_TICKS) / COOK_TICKS
        o[:, 20 + 3 * j] = xp.where((n == SOUP_ONIONS) & (t >= COOK_TICKS), 1.0, 0.0)
    start = 18 + 3 * len(pots)
    for j, c in enumerate(counters):
        what = obj[:, c]
        o[rows, start + 3 * j - 1 + xp.where(what > 0, what, 1)] = xp.where(what > 0, 1.0, 0.0)


class Overcooked(BatchedEnv):
    """One player of B games on one kitchen; the partner moves by `partner_actions`.

    Actions (`ACTION_NAMES`): north (0), south (1), east (2), west (3), stay (4), interact (5).
    The reward is the team's: `DELIVERY_REWARD` per soup served by either player.
    """

    layout: str = ""
    num_actions = len(ACTION_NAMES)
    max_episode_steps = 1204

    def __init__(
        self, num_envs: int, *, device: torch.device | str = "cpu", player: int = 0
    ) -> None:
        if player not in (0, 1):
            raise ValueError(f"player must be 0 or 1, got {player!r}")
        super().__init__(num_envs, device=device)
        self.player = player
        self.state = start_state(self.layout, self.num_envs, device=self.device)
        self.partner_actions = torch.full(
            (self.num_envs,), STAY, dtype=torch.int64, device=self.device
        )
        self._joint = torch.zeros(self.num_envs, 2, dtype=torch.int64, device=self.device)

    def _reset(self, seeds: list[int]) -> None:
        self.state = start_state(self.layout, self.num_envs, device=self.device)
        self.partner_actions.fill_(STAY)
        observe(self.state, self.layout, self.player, self.obs)

    def _step(self, actions: torch.Tensor) -> None:
        self._joint[:, self.player] = actions.to(self.device)
        self._joint[:, 1 - self.player] = self.partner_actions
        if bool(((self._joint < 0) | (self._joint >= self.num_actions)).any()):
            raise ValueError(f"{self.env_id}: actions must lie in 0..{self.num_actions - 1}")
        self.reward.copy_(step_games(self.state, self._joint))
        self.terminated.zero_()
        observe(self.state, self.layout, self.player, self.obs)


def _kitchen_class(layout: str) -> type[Overcooked]:
    name = "Overcooked" + "".join(part.title() for part in layout.split("_"))
    attrs = {
        "layout": layout,
        "env_id": f"overcooked-{layout}",
        "obs_size": observation_size(layout),
        "__doc__": f"Overcooked on the 2019 `{layout}` kitchen (see `Overcooked`).",
    }
    return type(name, (Overcooked,), attrs)


KITCHENS: dict[str, type[Overcooked]] = {layout: _kitchen_class(layout) for layout in LAYOUTS}
"""Layout name -> its `Overcooked` class (env id `overcooked-<layout>`)."""
