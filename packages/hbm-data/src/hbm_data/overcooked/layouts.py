"""The five 2019 Overcooked kitchens and a fixed-length, player-centred encoding of a state.

The grids are the game's maps as Overcooked-AI's layout files and the recordings' own `layout`
column give them (`X` counter, `O` onion dispenser, `D` dish dispenser, `P` pot, `S` serving
window, `1`/`2` the start of player 0/1, blank floor); the importer refuses a recording whose
`layout` differs. `random0` and `random3` are the paper's "forced coordination" (the package's
`forced_coordination.layout`) and "counter circuit" (the walls of its
`counter_circuit_o_1order.layout`, with the start cells the 2019 games used).

One observation (D = `LayoutEncoding.size` values) from player `i`'s point of view:

- 0-1 own x, y (grid column, row; row 0 is the top); 2-5 own orientation one-hot (north, south,
  east, west); 6-8 what the player holds, one-hot (onion, dish, soup; all 0: nothing);
- 9-10 the partner's position minus one's own (dx, dy); 11-14 the partner's orientation;
  15-17 what the partner holds;
- per pot, in reading order (row by row, left to right): onions in it / 3, cooking progress
  (ticks cooked / `COOK_TICKS`, at most 1), soup ready (0/1);
- per counter a player can reach (an `X` next to floor), in reading order: what lies on it,
  one-hot (onion, dish, soup).

So `D = 18 + 3·pots + 3·counters`; `LayoutEncoding.slot_names` names every value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

import numpy as np

#: The kitchens as the 2019 study played them (rows top to bottom).
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

#: Ticks a full pot (three onions) cooks before its soup is ready, in the 2019 game.
COOK_TICKS = 20
#: Onions a soup takes.
SOUP_ONIONS = 3

#: Overcooked-AI's `Direction.INDEX_TO_DIRECTION` (north, south, east, west) as (dx, dy).
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, -1), (0, 1), (1, 0), (-1, 0))
#: The objects the recordings hold or put down, in encoding order.
OBJECTS = ("onion", "dish", "soup")
_FLOOR = " 12"
_PLAYER_SLOTS = ("x", "y", "north", "south", "east", "west", *(f"holds_{o}" for o in OBJECTS))
_PARTNER_SLOTS = (
    "partner_dx", "partner_dy", *(f"partner_{d}" for d in ("north", "south", "east", "west")),
    *(f"partner_holds_{o}" for o in OBJECTS),
)  # fmt: skip


class StateFormatError(ValueError):
    """A recorded state that does not fit the layout (an object where none can lie, ...)."""


@dataclass(frozen=True)
class LayoutEncoding:
    """Where the pots and reachable counters of one kitchen are, and how a state encodes."""

    name: str
    grid: tuple[str, ...]
    pots: tuple[tuple[int, int], ...]  # (x, y) in reading order
    counters: tuple[tuple[int, int], ...]  # reachable `X` cells, (x, y) in reading order

    @property
    def size(self) -> int:
        return (
            len(_PLAYER_SLOTS) + len(_PARTNER_SLOTS) + 3 * len(self.pots) + 3 * len(self.counters)
        )

    @property
    def slot_names(self) -> list[str]:
        """A name per observation value, in order (the sidecar records them)."""
        pots = [
            f"pot_{x}_{y}_{what}" for x, y in self.pots for what in ("onions", "cooking", "ready")
        ]
        counters = [f"counter_{x}_{y}_{o}" for x, y in self.counters for o in OBJECTS]
        return [*_PLAYER_SLOTS, *_PARTNER_SLOTS, *pots, *counters]

    def encode(self, state: Mapping[str, Any], player: int) -> np.ndarray:
        """`[D]` float64: the state as `player` (0 or 1) sees it (module docstring)."""
        players = state["players"]
        me, other = players[player], players[1 - player]
        out = np.zeros(self.size)
        x, y = me["position"]
        ox, oy = other["position"]
        out[0:2] = x, y
        out[2 + _direction(me["orientation"])] = 1.0
        _held(me, out, 6)
        out[9:11] = ox - x, oy - y
        out[11 + _direction(other["orientation"])] = 1.0
        _held(other, out, 15)
        base = len(_PLAYER_SLOTS) + len(_PARTNER_SLOTS)
        counter_base = base + 3 * len(self.pots)
        for key, obj in state["objects"].items():
            pos = tuple(obj["position"])
            if pos in self._pot_index:
                if obj["name"] != "soup":
                    raise StateFormatError(f"{self.name}: a {obj['name']!r} in the pot at {pos}")
                _, onions, ticks = obj["state"]
                k = base + 3 * self._pot_index[pos]
                out[k] = onions / SOUP_ONIONS
                out[k + 1] = min(ticks, COOK_TICKS) / COOK_TICKS
                out[k + 2] = float(onions == SOUP_ONIONS and ticks >= COOK_TICKS)
            elif pos in self._counter_index:
                out[counter_base + 3 * self._counter_index[pos] + _object(obj)] = 1.0
            else:
                raise StateFormatError(
                    f"{self.name}: object {key!r} ({obj.get('name')!r}) at {pos}, which is "
                    "neither a pot nor a counter a player can reach"
                )
        return out

    @property
    def _pot_index(self) -> dict[tuple[int, int], int]:
        return _index(self.pots)

    @property
    def _counter_index(self) -> dict[tuple[int, int], int]:
        return _index(self.counters)


@cache
def _index(cells: tuple[tuple[int, int], ...]) -> dict[tuple[int, int], int]:
    return {c: i for i, c in enumerate(cells)}


def _direction(orientation: Sequence[int]) -> int:
    try:
        return DIRECTIONS.index((int(orientation[0]), int(orientation[1])))
    except (ValueError, IndexError, TypeError):
        raise StateFormatError(f"orientation {orientation!r} is not one of {DIRECTIONS}") from None


def _object(obj: Mapping[str, Any]) -> int:
    try:
        return OBJECTS.index(obj["name"])
    except ValueError:
        raise StateFormatError(f"unknown object {obj['name']!r}; known: {OBJECTS}") from None


def _held(player: Mapping[str, Any], out: np.ndarray, at: int) -> None:
    held = player.get("held_object")
    if held is not None:
        out[at + _object(held)] = 1.0


def _cells(grid: Sequence[str], wanted: str) -> list[tuple[int, int]]:
    return [(x, y) for y, row in enumerate(grid) for x, c in enumerate(row) if c in wanted]


def _reachable(grid: Sequence[str], x: int, y: int) -> bool:
    """A counter a player can use: floor on one of its four sides."""
    for dx, dy in DIRECTIONS:
        cx, cy = x + dx, y + dy
        if 0 <= cy < len(grid) and 0 <= cx < len(grid[cy]) and grid[cy][cx] in _FLOOR:
            return True
    return False


@cache
def layout_encoding(layout: str) -> LayoutEncoding:
    """The encoding of a kitchen of `LAYOUTS` (`cramped_room`, ...)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown Overcooked layout {layout!r}; known: {', '.join(LAYOUTS)}")
    grid = LAYOUTS[layout]
    counters = [c for c in _cells(grid, "X") if _reachable(grid, *c)]
    return LayoutEncoding(layout, grid, tuple(_cells(grid, "P")), tuple(counters))
