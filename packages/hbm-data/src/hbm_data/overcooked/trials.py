"""The recorded trials, read from the user's installed `overcooked-ai` package, as episodes.

`overcooked-ai` 1.1.0 ships the 2019 human-human study (Carroll et al., "On the Utility of
Learning about Humans for Human-AI Coordination", NeurIPS 2019) as two pandas pickles,
`overcooked_ai_py/data/human_data/clean_{train,test}_trials.pickle`: one row per game tick with
the state and next state (Python-literal strings, parsed with `ast.literal_eval`, never
`eval`), the joint action of both players, the team's reward and the wall-clock time. A trial is
one 180 s game of one pair on one layout; `workerid_num` is the worker whose browser logged it.
Nothing of the data is copied into hbm: it is read where the package put it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..episodes import Episode
from ..extras import MissingExtraError, require
from .layouts import DIRECTIONS, LAYOUTS, StateFormatError, layout_encoding

logger = logging.getLogger(__name__)

PACKAGE = "overcooked-ai"
PACKAGE_VERSION = "1.1.0"
SPLITS = ("train", "test")
PICKLE = "overcooked_ai_py/data/human_data/clean_{split}_trials.pickle"
#: Both steps: the extra brings pandas; the package goes in without its dependencies (it
#: declares an old `gym`, `ipython` and `ipywidgets`, none of which reading the data needs).
INSTALL = (
    f'pip install "hbm-data[overcooked]" && pip install --no-deps "{PACKAGE}=={PACKAGE_VERSION}"'
)

#: Overcooked-AI's `Action.ALL_ACTIONS` order: the action of a step is its index here.
ACTION_NAMES = ("north", "south", "east", "west", "stay", "interact")
_COLUMNS = (
    "workerid_num", "layout_name", "layout", "run", "cur_gameloop", "datetime", "state",
    "next_state", "joint_action", "reward",
)  # fmt: skip


class OvercookedDataError(ValueError):
    """A recording that does not read as the 2019 trials do; the message names the file, the
    trial, the row and the field."""


def trials_file(split: str) -> Path:
    """The installed pickle of `split` ("train" or "test"); says how to install it if absent."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtraError(
            "importing the Overcooked-AI human-human recordings",
            "overcooked",
            PACKAGE,
            f"it holds the data; install it without its dependencies: pip install --no-deps "
            f'"{PACKAGE}=={PACKAGE_VERSION}"',
        ) from None
    path = Path(str(dist.locate_file(PICKLE.format(split=split))))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not in the installed {PACKAGE} {dist.version} (the recordings ship with "
            f"{PACKAGE} {PACKAGE_VERSION}: {INSTALL})"
        )
    return path


@dataclass(frozen=True, eq=False)
class Trial:
    """One game of one pair on one layout (T ticks), as recorded."""

    split: str  # "train" or "test": the study's own split, kept as the holdout
    run: str
    worker: int  # workerid_num: the worker whose browser logged the trial
    layout: str
    states: tuple[Mapping[str, Any], ...]  # [T] state before the joint action
    next_states: tuple[Mapping[str, Any], ...]  # [T] state after it
    actions: np.ndarray  # [T, 2] int64, index into ACTION_NAMES, per player
    rewards: np.ndarray  # [T] float64, the team's reward of the tick
    times_ms: np.ndarray  # [T] float64, wall-clock time of the tick (ms since 1970, UTC)

    @property
    def name(self) -> str:
        """`w02-cramped_room`: a worker played each layout once over both splits."""
        return f"w{self.worker:02d}-{self.layout}"

    @property
    def length(self) -> int:
        return len(self.actions)

    def time(self, step: int) -> datetime:
        return datetime.fromtimestamp(float(self.times_ms[step]) / 1000.0, tz=UTC)


def action_index(action: Any) -> int:
    """A recorded action (`[dx, dy]` or `'INTERACT'`) as its index in `ACTION_NAMES`."""
    if isinstance(action, str):
        if action.lower() == "interact":
            return 5
    elif isinstance(action, list | tuple) and len(action) == 2:
        move = (action[0], action[1])
        if move == (0, 0):
            return 4
        if move in DIRECTIONS:
            return DIRECTIONS.index(move)
    raise ValueError(f"{action!r} is not an Overcooked action ([dx, dy] or 'INTERACT')")


def read_trials(split: str) -> list[Trial]:
    """The trials of one split, in the order they started.

    Only the installed package's own pickle is read (reading a pickle runs code: this one is
    part of the package the user installed, trusted as its code is); its strings are parsed as
    literals, never evaluated.
    """
    path = trials_file(split)  # first: its message gives both install steps
    pandas = require("pandas", "overcooked", "reading the Overcooked-AI recordings")
    frame = pandas.read_pickle(path)
    return trials_from_frame(frame, split, source=str(path))


def _parse(text: Any, where: str) -> Any:
    if not isinstance(text, str):
        raise OvercookedDataError(f"{where}: expected a Python-literal string, found {text!r}")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise OvercookedDataError(f"{where}: not a Python literal ({exc})") from None


def _parse_state(text: Any, where: str) -> Mapping[str, Any]:
    state = _parse(text, where)
    players = state.get("players") if isinstance(state, dict) else None
    if not (
        isinstance(players, list) and len(players) == 2 and isinstance(state.get("objects"), dict)
    ):
        raise OvercookedDataError(
            f"{where}: expected a dict with 'players' (two) and 'objects', found {text[:120]!r}"
        )
    return state


def trials_from_frame(frame: Any, split: str, *, source: str = "<frame>") -> list[Trial]:
    """Trials from a DataFrame with the recordings' columns (one row per tick), grouped by
    (`workerid_num`, `layout_name`), ticks ordered by `cur_gameloop` (which must count 0, 1, …).
    """
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise OvercookedDataError(f"{source}: missing columns {missing}; has {list(frame.columns)}")
    trials = []
    for (worker, layout), rows in frame.groupby(["workerid_num", "layout_name"], sort=True):
        rows = rows.sort_values("cur_gameloop", kind="stable")
        trials.append(_trial(rows, split, int(worker), str(layout), source))
    trials.sort(key=lambda t: (float(t.times_ms[0]), t.worker))
    logger.info("%s: %d trials (%s)", source, len(trials), split)
    return trials


def _trial(rows: Any, split: str, worker: int, layout: str, source: str) -> Trial:
    where = f"{source}: trial of worker {worker} on {layout}"
    if layout not in LAYOUTS:
        raise OvercookedDataError(f"{where}: unknown layout; known: {', '.join(LAYOUTS)}")
    runs = set(rows["run"])
    if len(runs) != 1:
        raise OvercookedDataError(f"{where}: rows from several runs {sorted(runs)}")
    loops = rows["cur_gameloop"].to_numpy()
    if not np.array_equal(loops, np.arange(len(rows))):
        raise OvercookedDataError(
            f"{where}: field cur_gameloop: expected the ticks 0, 1, …, {len(rows) - 1} once each"
        )
    for grid in set(rows["layout"]):
        if tuple(_parse(grid, f"{where}, field layout")) != LAYOUTS[layout]:
            raise OvercookedDataError(
                f"{where}: field layout: {grid!r} is not the 2019 {layout} {LAYOUTS[layout]}"
            )
    index = rows.index.tolist()
    states, next_states, actions = [], [], []
    cache: dict[str, Mapping[str, Any] | None] = {}
    columns = (rows["state"], rows["next_state"], rows["joint_action"])
    for i, (s, n, a) in enumerate(zip(*columns, strict=True)):
        at = f"{where}, row {index[i]}"
        states.append(cache.pop(s, None) or _parse_state(s, f"{at}, field state"))
        parsed_next = _parse_state(n, f"{at}, field next_state")
        cache = {n: parsed_next}  # the next row's state is usually this string again
        next_states.append(parsed_next)
        joint = _parse(a, f"{at}, field joint_action")
        try:
            if not (isinstance(joint, list | tuple) and len(joint) == 2):
                raise ValueError(f"expected two actions, found {joint!r}")
            actions.append([action_index(joint[0]), action_index(joint[1])])
        except ValueError as exc:
            raise OvercookedDataError(f"{at}, field joint_action: {exc}") from None
    rewards = rows["reward"].to_numpy(dtype=np.float64)
    times = rows["datetime"].to_numpy(dtype=np.float64)
    for field, values in (("reward", rewards), ("datetime", times)):
        if not np.isfinite(values).all():
            raise OvercookedDataError(f"{where}: field {field}: non-finite values")
    return Trial(
        split, str(next(iter(runs))), worker, layout, tuple(states), tuple(next_states),
        np.asarray(actions, dtype=np.int64), rewards, times,
    )  # fmt: skip


def segment_bounds(length: int, segments: int) -> list[tuple[int, int]]:
    """`[start, stop)` of `segments` nearly equal consecutive parts of `length` ticks."""
    if segments < 1:
        raise ValueError(f"segments must be ≥ 1, got {segments}")
    edges = np.linspace(0, length, min(segments, length) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def trial_episodes(trial: Trial, player: int, segments: int = 1) -> list[Episode]:
    """The trial from `player`'s side, cut into `segments` consecutive episodes.

    Observations are `layout_encoding(trial.layout)` of each state from that player's side;
    the reward is the team's (both players share it); `done` is True on the trial's last tick
    only; each episode starts at the wall-clock time of its first tick (UTC). `seed_used` is 0:
    a kitchen always starts the same, so only the first segment starts where a replay would.
    """
    if player not in (0, 1):
        raise ValueError(f"player must be 0 or 1, got {player}")
    enc = layout_encoding(trial.layout)
    try:
        obs = np.stack([enc.encode(s, player) for s in trial.states])
        nxt = np.stack([enc.encode(s, player) for s in trial.next_states])
    except (StateFormatError, KeyError, TypeError, ValueError) as exc:
        raise OvercookedDataError(f"trial {trial.name} ({trial.split}): {exc}") from exc
    dones = np.zeros(trial.length, dtype=bool)
    dones[-1] = True
    episodes = []
    for k, (a, b) in enumerate(segment_bounds(trial.length, segments)):
        rewards = trial.rewards[a:b]
        episodes.append(
            Episode(
                episode_id=k,
                timestamp=trial.time(a).isoformat(),
                seed_used=0,
                score=float(rewards.sum()),
                observations=obs[a:b],
                actions=trial.actions[a:b, player].copy(),
                rewards=rewards.copy(),
                next_observations=nxt[a:b],
                dones=dones[a:b].copy(),
            )
        )
    return episodes


def read_all_trials(splits: Iterable[str] = SPLITS) -> list[Trial]:
    """The trials of several splits, in the order they started."""
    trials = [t for split in splits for t in read_trials(split)]
    return sorted(trials, key=lambda t: (float(t.times_ms[0]), t.worker))


def by_layout(trials: Sequence[Trial]) -> dict[str, list[Trial]]:
    out: dict[str, list[Trial]] = {}
    for t in trials:
        out.setdefault(t.layout, []).append(t)
    return out
