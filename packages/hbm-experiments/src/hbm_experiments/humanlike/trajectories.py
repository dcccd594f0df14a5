"""The unit every human-likeness metric compares: E episodes of one player (a person or a
model), and the frame counts derived from the game's recorder frame rate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["REACTION_TIME_S", "WINDOW_S", "Ints", "Trajectories", "lag_frames", "window_frames"]

Ints = Sequence[int] | np.ndarray
"""Per-episode integers (lengths, sessions, seeds): a sequence or a 1-D array."""

REACTION_TIME_S = 0.3
"""Longest human reaction delay the shift metric searches (Atari-HEAD: 250–300 ms)."""
WINDOW_S = 0.5
"""Length of the discriminator's and the stylometry's trajectory windows, in seconds."""


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def lag_frames(fps: float) -> int:
    """k, the largest shift of `action_accuracy_shift`: ⌊0.3 s · fps + ½⌋ frames (5 at 15 fps,
    6 at 20 fps)."""
    return _half_up(REACTION_TIME_S * fps)


def window_frames(fps: float) -> int:
    """Window length W in frames: ⌊0.5 s · fps + ½⌋ (8 at 15 fps, 10 at 20 fps)."""
    return max(2, _half_up(WINDOW_S * fps))


@dataclass(frozen=True)
class Trajectories:
    """E episodes of one player (a person or a model), the unit every metric compares.

    `obs[e]` `[T_e, obs_size]` float (the environment's observation only, no CL features),
    `actions[e]` `[T_e]` int64, `returns` `[E]`, `sessions` `[E]` (the session of the person's
    episode it belongs to or replays), `seeds` `[E]` (start seed: the discriminator's CV group).
    """

    obs: tuple[np.ndarray, ...]
    actions: tuple[np.ndarray, ...]
    returns: np.ndarray
    sessions: np.ndarray
    seeds: np.ndarray

    def __post_init__(self) -> None:
        e = len(self.obs)
        sizes = {len(self.actions), len(self.returns), len(self.sessions), len(self.seeds)}
        if sizes != {e} or e == 0:
            raise ValueError(f"Trajectories: need E >= 1 equal lengths, got {e} and {sizes}")
        for i, (o, a) in enumerate(zip(self.obs, self.actions, strict=True)):
            if o.ndim != 2 or a.shape != (o.shape[0],) or o.shape[0] == 0:
                raise ValueError(f"episode {i}: obs {o.shape} and actions {a.shape} disagree")

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def lengths(self) -> np.ndarray:
        """`[E]` steps per episode."""
        return np.array([len(a) for a in self.actions], dtype=np.int64)

    @property
    def flat_actions(self) -> np.ndarray:
        """`[N]` all actions, episodes concatenated."""
        return np.concatenate(self.actions)

    @property
    def flat_obs(self) -> np.ndarray:
        """`[N, obs_size]` all observations, episodes concatenated."""
        return np.concatenate(self.obs)

    @classmethod
    def from_arrays(
        cls,
        obs: np.ndarray,
        actions: np.ndarray,
        lengths: Ints,
        *,
        returns: Sequence[float] | None = None,
        sessions: Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> Trajectories:
        """From flat `obs [N, D]`, `actions [N]` split by `lengths [E]` (defaults: 0, 0, 0..E-1)."""
        ends = np.cumsum(lengths)
        if ends[-1] != len(actions) or len(obs) != len(actions):
            raise ValueError(f"lengths sum to {ends[-1]}, arrays hold {len(obs)}, {len(actions)}")
        starts = ends - np.asarray(lengths)
        e = len(lengths)
        return cls(
            tuple(np.asarray(obs[s:t]) for s, t in zip(starts, ends, strict=True)),
            tuple(
                np.asarray(actions[s:t], dtype=np.int64) for s, t in zip(starts, ends, strict=True)
            ),
            np.zeros(e) if returns is None else np.asarray(returns, dtype=np.float64),
            np.zeros(e, np.int64) if sessions is None else np.asarray(sessions, dtype=np.int64),
            np.arange(e) if seeds is None else np.asarray(seeds, dtype=np.int64),
        )

    @classmethod
    def from_human(cls, data: Any, split: Literal["test", "train"] = "test") -> Trajectories:
        """One split of an `hbm_data.HumanData` (CL columns dropped)."""
        meta = data.metadata
        infos = meta.test_episodes if split == "test" else meta.train_episodes
        obs = data.test_obs if split == "test" else data.train_obs
        act = data.test_act if split == "test" else data.train_act
        if not infos:
            raise ValueError(f"{meta.source_file}: no {split} episodes")
        return cls(
            tuple(obs[i.start : i.start + i.length, : meta.obs_size] for i in infos),
            tuple(act[i.start : i.start + i.length] for i in infos),
            np.array([i.score for i in infos], dtype=np.float64),
            np.array([i.session for i in infos], dtype=np.int64),
            np.array([i.seed for i in infos], dtype=np.int64),
        )

    @classmethod
    def from_episodes(cls, episodes: Sequence[Any], *, gap_minutes: float = 30) -> Trajectories:
        """From `hbm_data.Episode`s (e.g. `simulate_subject`), sessions by the 30-minute rule."""
        from hbm_data.sessions import compute_session_run_ids

        sessions, _ = compute_session_run_ids([e.timestamp for e in episodes], gap_minutes)
        return cls(
            tuple(np.asarray(e.observations) for e in episodes),
            tuple(np.asarray(e.actions, dtype=np.int64) for e in episodes),
            np.array([e.score for e in episodes], dtype=np.float64),
            np.asarray(sessions, dtype=np.int64),
            np.array([e.seed_used for e in episodes], dtype=np.int64),
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> Trajectories:
        """The episodes `indices`, in that order."""
        idx = [int(i) for i in indices]
        return Trajectories(
            tuple(self.obs[i] for i in idx),
            tuple(self.actions[i] for i in idx),
            self.returns[idx],
            self.sessions[idx],
            self.seeds[idx],
        )
