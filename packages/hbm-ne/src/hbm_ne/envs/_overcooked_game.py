"""The 2019 Overcooked game as tensors: B games x 2 players stepped together, and its codec.

The dynamics are those of the game the people of the 2019 human-human study played (Carroll
et al., "On the Utility of Learning about Humans for Human-AI Coordination", NeurIPS 2019, whose
recordings ship inside the `overcooked-ai` 1.1.0 package); they were fixed by replaying every
recorded transition, and differ from that package's current `OvercookedGridworld`:

1. Interactions first, player 0 then player 1 (player 1 sees what player 0 just did), from the
   positions and orientations before the step, on the cell a player faces:
   counter `X`: put the held object down if the counter is empty, or pick up what lies there if
   the hands are empty; dispenser `O` / `D`: take an onion / a dish if the hands are empty;
   pot `P`: an onion goes in while it holds fewer than three (each onion restarts its timer at
   0), a dish takes the soup out once three onions have cooked `COOK_TICKS` ticks;
   window `S`: a held soup is served for `DELIVERY_REWARD`.
2. Moves: a move action turns the player that way and moves it onto the next cell if that is
   floor; if both players would end on one cell, or swap cells, neither moves (both still turn).
3. Every pot with three onions cooks one tick: the soup starts cooking by itself as the third
   onion goes in, and the timer keeps counting after the soup is ready (the recordings show
   timers past 200). Soups held or on counters keep their timer.

The recorded state (a dict after `ast.literal_eval`) is `{'players': [{'position': [x, y],
'orientation': [dx, dy], 'held_object': {'name', 'position'[, 'state']}}, ...], 'objects':
{'x,y': {'name', 'position'[, 'state']}}, 'order_list': ['onion'], 'pot_explosion': False}`,
where a soup's state is `['onion', onions, ticks]` and onions in a pot are a soup of fewer than
three; `held_object` is absent from empty hands. `encode_states` / `decode_state` convert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

#: The kitchens of the 2019 study, as the recordings' `layout` column gives them (rows top to
#: bottom; `X` counter, `O` onion dispenser, `D` dish dispenser, `P` pot, `S` serving window,
#: `1`/`2` the start of player 0/1 on the floor, blank floor).
LAYOUTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cramped_room": ("XXPXX", "O  2O", "X1  X", "XDXSX"),
        "asymmetric_advantages": (
            "XXXXXXXXX", "O XSXOX S", "X   P 1 X", "X2  P   X", "XXXDXDXXX",
        ),
        "coordination_ring": ("XXXPX", "X 1 P", "D2X X", "O   X", "XOSXX"),
        "random0": ("XXXPX", "O X1P", "O2X X", "D X X", "XXXSX"),
        "random3": ("XXXPPXXX", "X      X", "D XXXX S", "X2    1X", "XXXOOXXX"),
    }
)  # fmt: skip

#: Ticks three onions cook before the soup can be taken out with a dish.
COOK_TICKS = 20
#: Onions a soup takes.
SOUP_ONIONS = 3
#: The team's reward for serving a soup (the recordings' `reward` column).
DELIVERY_REWARD = 5.0
#: The recordings' constant order list.
ORDER_LIST = ("onion",)

#: Overcooked-AI's `Direction.INDEX_TO_DIRECTION` (north, south, east, west) as (dx, dy).
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, -1), (0, 1), (1, 0), (-1, 0))
#: Overcooked-AI's `Action.ALL_ACTIONS` order: the four moves, stay, interact.
ACTION_NAMES = ("north", "south", "east", "west", "stay", "interact")
STAY, INTERACT = 4, 5
#: Object codes in the tensors (0: nothing).
OBJECTS = ("onion", "dish", "soup")
NOTHING, ONION, DISH, SOUP = 0, 1, 2, 3
#: Terrain codes in the tensors; cells outside a layout's grid are `WALL`.
TERRAIN = {" ": 0, "1": 0, "2": 0, "X": 1, "O": 2, "D": 3, "P": 4, "S": 5}
FLOOR, COUNTER, ONION_DISPENSER, DISH_DISPENSER, POT, WINDOW, WALL = 0, 1, 2, 3, 4, 5, 6


class StateFormatError(ValueError):
    """A recorded state that does not fit the game (an object where none can lie, ...)."""


@dataclass
class OvercookedState:
    """B games on grids of `width` columns; cells are flattened as `y * width + x`.

    Soups carry their onions and ticks wherever they are (pot, counter, hands): `*_onions` and
    `*_ticks` are 0 where the object is not a soup.
    """

    width: int
    terrain: torch.Tensor  # [B, N] int64 terrain code per cell
    pos: torch.Tensor  # [B, 2, 2] int64 (x, y) per player
    ori: torch.Tensor  # [B, 2] int64 index into DIRECTIONS
    held: torch.Tensor  # [B, 2] int64 object code
    held_onions: torch.Tensor  # [B, 2] int64
    held_ticks: torch.Tensor  # [B, 2] int64
    obj: torch.Tensor  # [B, N] int64 object code lying on each cell
    obj_onions: torch.Tensor  # [B, N] int64
    obj_ticks: torch.Tensor  # [B, N] int64

    @property
    def num_games(self) -> int:
        return int(self.pos.shape[0])

    def clone(self) -> OvercookedState:
        return OvercookedState(
            self.width,
            **{f.name: getattr(self, f.name).clone() for f in fields(self) if f.name != "width"},
        )

    def select(self, index: torch.Tensor | slice | int) -> OvercookedState:
        """The games `index` (a new state; an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return OvercookedState(
            self.width,
            **{f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "width"},
        )


def layout_grid(layout: str | Sequence[str]) -> tuple[str, ...]:
    """The grid of a kitchen: a name of `LAYOUTS`, or the rows themselves (the recordings'
    `layout` column, parsed), which must use only the layout characters and keep the floor
    off the edge (the step never looks outside the grid)."""
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown Overcooked layout {layout!r}; known: {', '.join(LAYOUTS)}")
        return LAYOUTS[layout]
    grid = tuple(str(row) for row in layout)
    bad = {c for row in grid for c in row} - set(TERRAIN)
    if not grid or bad:
        raise ValueError(f"layout {grid!r}: expected rows of {''.join(TERRAIN)!r}, found {bad}")
    for y, row in enumerate(grid):
        for x, c in enumerate(row):
            inside = 0 < y < len(grid) - 1 and 0 < x < len(row) - 1
            if TERRAIN[c] == FLOOR and not (
                inside and x < len(grid[y - 1]) and x < len(grid[y + 1])
            ):
                raise ValueError(
                    f"layout {grid!r}: floor at ({x}, {y}) on the edge; a kitchen is walled in"
                )
    return grid


def _terrain_rows(grid: tuple[str, ...], height: int, width: int) -> list[int]:
    cells = [WALL] * (height * width)
    for y, row in enumerate(grid):
        for x, c in enumerate(row):
            cells[y * width + x] = TERRAIN[c]
    return cells


def _direction(orientation: Any, where: str) -> int:
    try:
        return DIRECTIONS.index((int(orientation[0]), int(orientation[1])))
    except (ValueError, IndexError, TypeError):
        raise StateFormatError(
            f"{where}: orientation {orientation!r} is not one of {DIRECTIONS}"
        ) from None


def _object(obj: Any, where: str) -> tuple[int, int, int]:
    """(code, onions, ticks) of a recorded object dict."""
    if not isinstance(obj, Mapping) or obj.get("name") not in OBJECTS:
        raise StateFormatError(f"{where}: expected an object named one of {OBJECTS}, found {obj!r}")
    code = OBJECTS.index(obj["name"]) + 1
    if code != SOUP:
        return code, 0, 0
    state = obj.get("state")
    if not (
        isinstance(state, list | tuple)
        and len(state) == 3
        and state[0] == "onion"
        and isinstance(state[1], int)
        and 1 <= state[1] <= SOUP_ONIONS
        and isinstance(state[2], int)
        and state[2] >= 0
    ):
        raise StateFormatError(
            f"{where}: soup state {state!r}, expected ['onion', 1..{SOUP_ONIONS}, ticks >= 0]"
        )
    return code, state[1], state[2]


def action_index(action: Any) -> int:
    """A recorded action (`[dx, dy]`, `[0, 0]` for stay, or `'INTERACT'`) as its index in
    `ACTION_NAMES`."""
    if isinstance(action, str):
        if action.upper() == "INTERACT":
            return INTERACT
    elif isinstance(action, list | tuple) and len(action) == 2:
        move = (action[0], action[1])
        if move == (0, 0):
            return STAY
        if move in DIRECTIONS:
            return DIRECTIONS.index(move)
    raise ValueError(f"{action!r} is not an Overcooked action ([dx, dy] or 'INTERACT')")


def encode_states(
    states: Sequence[Mapping[str, Any]],
    layouts: Sequence[str | Sequence[str]] | str,
    *,
    device: torch.device | str = "cpu",
) -> OvercookedState:
    """B recorded states (dicts) on their kitchens (one layout for all, or one per state)."""
    b = len(states)
    if b < 1:
        raise ValueError("encode_states: expected at least one state")
    grids = (
        [layout_grid(layouts)] * b
        if isinstance(layouts, str)
        else [layout_grid(g) for g in layouts]
    )
    if len(grids) != b:
        raise ValueError(f"encode_states: {b} states but {len(grids)} layouts")
    height = max(len(g) for g in grids)
    width = max(len(row) for g in grids for row in g)
    n = height * width
    cache: dict[tuple[str, ...], list[int]] = {}
    terrain, pos, ori, held, obj = [], [], [], [], [[0] * n for _ in range(b)]
    obj_on, obj_t = [[0] * n for _ in range(b)], [[0] * n for _ in range(b)]
    for i, (state, grid) in enumerate(zip(states, grids, strict=True)):
        where = f"state {i}"
        if grid not in cache:
            cache[grid] = _terrain_rows(grid, height, width)
        cells = cache[grid]
        terrain.append(cells)
        players = state.get("players") if isinstance(state, Mapping) else None
        if not (isinstance(players, list | tuple) and len(players) == 2):
            raise StateFormatError(f"{where}: expected 'players' with two players")
        if tuple(state.get("order_list") or ()) != ORDER_LIST:
            raise StateFormatError(
                f"{where}: order_list {state.get('order_list')!r}, the recordings' is "
                f"{list(ORDER_LIST)}"
            )
        pos_i, ori_i, held_i = [], [], []
        for k, p in enumerate(players):
            x, y = (int(v) for v in p["position"])
            if not (0 <= x < width and 0 <= y < height) or cells[y * width + x] != FLOOR:
                raise StateFormatError(f"{where}: player {k} at {[x, y]}, which is not floor")
            pos_i.append([x, y])
            ori_i.append(_direction(p["orientation"], f"{where}, player {k}"))
            h = p.get("held_object")
            if h is not None and list(h.get("position", ())) != [x, y]:
                raise StateFormatError(
                    f"{where}: player {k} at {[x, y]} holds an object at {h.get('position')!r}"
                )
            held_i.append(_object(h, f"{where}, player {k}") if h is not None else (0, 0, 0))
        if pos_i[0] == pos_i[1]:
            raise StateFormatError(f"{where}: both players at {pos_i[0]}")
        pos.append(pos_i)
        ori.append(ori_i)
        held.append(held_i)
        for key, o in state["objects"].items():
            x, y = (int(v) for v in o["position"])
            if key != f"{x},{y}" or not (0 <= x < width and 0 <= y < height):
                raise StateFormatError(f"{where}: object {key!r} at {o['position']!r}")
            c = y * width + x
            code, onions, ticks = _object(o, f"{where}, object {key!r}")
            if (cells[c] == POT and code != SOUP) or cells[c] not in (POT, COUNTER):
                raise StateFormatError(
                    f"{where}: a {o['name']} at {[x, y]}, where only a counter or a pot "
                    "(soups) can hold it"
                )
            obj[i][c], obj_on[i][c], obj_t[i][c] = code, onions, ticks

    def t(values: list[Any]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int64, device=device)

    held_t = t(held)
    return OvercookedState(
        width, t(terrain), t(pos), t(ori), held_t[..., 0].contiguous(),
        held_t[..., 1].contiguous(), held_t[..., 2].contiguous(), t(obj), t(obj_on), t(obj_t),
    )  # fmt: skip


def _object_dict(code: int, onions: int, ticks: int, x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {"name": OBJECTS[code - 1], "position": [x, y]}
    if code == SOUP:
        out["state"] = ["onion", onions, ticks]
    return out


def decode_state(state: OvercookedState, game: int) -> dict[str, Any]:
    """Game `game` of `state` as the recordings write a state (compare with `==`)."""
    pos = state.pos[game].tolist()
    ori = state.ori[game].tolist()
    held = state.held[game].tolist()
    h_on, h_t = state.held_onions[game].tolist(), state.held_ticks[game].tolist()
    players = []
    for k in range(2):
        x, y = pos[k]
        p: dict[str, Any] = {"position": [x, y], "orientation": list(DIRECTIONS[ori[k]])}
        if held[k]:
            p["held_object"] = _object_dict(held[k], h_on[k], h_t[k], x, y)
        players.append(p)
    obj = state.obj[game]
    objects = {}
    w = state.width
    on, ti = state.obj_onions[game], state.obj_ticks[game]
    for c in torch.nonzero(obj).flatten().tolist():
        x, y = c % w, c // w
        objects[f"{x},{y}"] = _object_dict(int(obj[c]), int(on[c]), int(ti[c]), x, y)
    return {
        "players": players,
        "objects": objects,
        "order_list": list(ORDER_LIST),
        "pot_explosion": False,
    }


#: Each action's step (dx, dy): the four directions, then none for stay and interact.
_ACTION_STEPS = (*DIRECTIONS, (0, 0), (0, 0))


class _NumpyOps:
    """The step's arrays as numpy views of CPU tensors: at B ~ 1000 a numpy call costs ~1 µs
    where a torch kernel costs ~5 µs, and a tick is ~100 of them."""

    where = staticmethod(np.where)
    steps = np.asarray(_ACTION_STEPS, dtype=np.int64)

    @staticmethod
    def view(t: torch.Tensor) -> Any:
        return t.numpy()

    @staticmethod
    def flat(a: Any) -> Any:
        out = a.reshape(-1)
        assert np.shares_memory(out, a)  # contiguous by construction (step_games)
        return out

    @staticmethod
    def arange(n: int, like: Any) -> Any:
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def zeros(n: int, like: Any) -> Any:
        return np.zeros(n)

    nonzero = staticmethod(np.flatnonzero)


class _TorchOps:
    """The same in torch, for tensors on other devices."""

    where = staticmethod(torch.where)

    def __init__(self, device: torch.device) -> None:
        self.steps = torch.tensor(_ACTION_STEPS, dtype=torch.int64, device=device)

    @staticmethod
    def view(t: torch.Tensor) -> torch.Tensor:
        return t

    @staticmethod
    def flat(a: torch.Tensor) -> torch.Tensor:
        return a.view(-1)

    @staticmethod
    def arange(n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.arange(n, dtype=torch.int64, device=like.device)

    @staticmethod
    def zeros(n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.float32, device=like.device)

    @staticmethod
    def nonzero(mask: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(mask).view(-1)


def step_games(
    state: OvercookedState, joint_action: torch.Tensor, *, use_numpy: bool | None = None
) -> torch.Tensor:
    """Advance every game one tick in place; `joint_action` `[B, 2]` in 0..5
    (`ACTION_NAMES`). Returns the team reward `[B]` float32 (module docstring for the rules).

    On CPU the tick runs as numpy on the tensors' memory (`use_numpy=False` forces torch ops,
    which other devices use); both give the same integers.
    """
    b = state.num_games
    if joint_action.shape != (b, 2):
        raise ValueError(f"joint_action has shape {tuple(joint_action.shape)}, expected ({b}, 2)")
    dev = state.pos.device
    for f in fields(state):
        t = getattr(state, f.name)
        if isinstance(t, torch.Tensor) and not t.is_contiguous():
            setattr(state, f.name, t.contiguous())  # the tick writes through flat views
    if use_numpy is None:
        use_numpy = dev.type == "cpu"
    xp: Any = _NumpyOps if use_numpy else _TorchOps(dev)
    joint = xp.view(joint_action.to(device=dev, dtype=torch.int64).contiguous())
    reward = _tick(xp, state, joint)
    if use_numpy:
        return torch.from_numpy(reward.astype(np.float32))
    return reward.to(torch.float32)


def _tick(xp: Any, state: OvercookedState, joint: Any) -> Any:
    """The rules on arrays (numpy views or tensors): interactions, moves, cooking.

    Every floor cell lies inside its grid with a neighbour on each side (`layout_grid`), so a
    faced or entered cell never leaves the game's row of cells.
    """
    v = xp.view
    terrain, pos, ori = v(state.terrain), v(state.pos), v(state.ori)
    held, h_on, h_t = v(state.held), v(state.held_onions), v(state.held_ticks)
    obj, o_on, o_t = v(state.obj), v(state.obj_onions), v(state.obj_ticks)
    w, n = state.width, state.obj.shape[1]
    row0 = xp.arange(state.num_games, obj) * n  # [B] first cell of each game
    terrain_f, obj_f, o_on_f, o_t_f = (xp.flat(a) for a in (terrain, obj, o_on, o_t))
    step_cells = xp.steps[:, 1] * w + xp.steps[:, 0]  # [6] each action's step as a cell offset
    at = row0[:, None] + pos[..., 1] * w + pos[..., 0]  # [B, 2] flat cell of each player
    reward = xp.zeros(state.num_games, obj)  # [B] float64 (numpy) / float32 (torch)
    for k in range(2):
        # only the games where player k interacts (~1 in 9 ticks in the recordings)
        games = xp.nonzero(joint[:, k] == INTERACT)  # [I]
        if len(games) == 0:
            continue
        cell = at[games, k] + step_cells[ori[games, k]]  # [I] flat index of the faced cell
        terr, here, here_on, here_t = terrain_f[cell], obj_f[cell], o_on_f[cell], o_t_f[cell]
        h, hon, ht = held[games, k], h_on[games, k], h_t[games, k]
        empty_hands, empty_cell = h == NOTHING, here == NOTHING
        counter = terr == COUNTER
        drop = counter & ~empty_hands & empty_cell
        pick = counter & empty_hands & ~empty_cell
        onion = (terr == ONION_DISPENSER) & empty_hands
        dish = (terr == DISH_DISPENSER) & empty_hands
        pot = terr == POT
        ready = (here == SOUP) & (here_on == SOUP_ONIONS) & (here_t >= COOK_TICKS)
        serve_up = pot & (h == DISH) & ready
        fill = pot & (h == ONION) & (here_on < SOUP_ONIONS)
        deliver = (terr == WINDOW) & (h == SOUP)
        reward[games] += xp.where(deliver, DELIVERY_REWARD, 0.0)
        # the faced cell: a drop puts the hands' object there, a pick-up or serving empties
        # it, an onion fills the pot (and restarts its timer)
        take = pick | serve_up
        obj_f[cell] = xp.where(drop, h, xp.where(take, NOTHING, xp.where(fill, SOUP, here)))
        o_on_f[cell] = xp.where(drop, hon, xp.where(take, 0, xp.where(fill, here_on + 1, here_on)))
        o_t_f[cell] = xp.where(drop, ht, xp.where(take | fill, 0, here_t))
        # the hands
        gone = drop | fill | deliver
        keeps = ~(gone | onion | dish)
        new_h = xp.where(take, here, xp.where(onion, ONION, xp.where(dish, DISH, h)))
        held[games, k] = xp.where(gone, NOTHING, new_h)
        h_on[games, k] = xp.where(take, here_on, xp.where(keeps, hon, 0))
        h_t[games, k] = xp.where(take, here_t, xp.where(keeps, ht, 0))
    # moves: a move turns the player; it steps onto floor unless the two would meet or swap
    moving = joint < STAY  # [B, 2]
    ori[...] = xp.where(moving, joint, ori)
    target = at + step_cells[joint]  # [B, 2] (stay and interact: the own cell)
    free = terrain_f[target] == FLOOR
    new = xp.where(free, target, at)
    blocked = (new[:, 0] == new[:, 1]) | ((new[:, 0] == at[:, 1]) & (new[:, 1] == at[:, 0]))
    go = free & ~blocked[:, None]  # [B, 2]
    pos[...] = xp.where(go[..., None], pos + xp.steps[joint], pos)
    # cooking
    o_t += (terrain == POT) & (obj == SOUP) & (o_on == SOUP_ONIONS)
    return reward
