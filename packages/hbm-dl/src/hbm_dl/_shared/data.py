"""Supervised behaviour data held as tensors on the training device: `EpisodeData`.

Training never goes through a per-item `DataLoader`: steps are gathered with a pre-shuffled
permutation, and whole episodes (or sessions: several episodes run as one sequence) are padded
to `[S, T_max, in]` once, so building a minibatch is one indexing op per tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

ArrayLike = np.ndarray | Tensor | Sequence[float] | Sequence[int]


class PaddedEpisodes(NamedTuple):
    """Sequences padded at the end: `obs [S, T, in]` (0 on padding), `actions [S, T]` (0 on
    padding), `mask [S, T]` (True on real steps). A tuple, so `x, y, mask = data.padded(...)`
    unpacks it."""

    obs: Tensor
    actions: Tensor
    mask: Tensor

    @property
    def lengths(self) -> Tensor:
        """Real steps of each sequence, `[S]` int64."""
        return self.mask.sum(dim=1)

    def select(self, index: Tensor) -> PaddedEpisodes:
        """The sequences `index [B]`, trimmed to the longest of them."""
        lengths = self.lengths[index]
        t = int(lengths.max()) if index.numel() else 0
        return PaddedEpisodes(self.obs[index, :t], self.actions[index, :t], self.mask[index, :t])


@dataclass(frozen=True, eq=False)
class EpisodeData:
    """`obs [N, in]` float32, `actions [N]` int64, contiguous episodes in order.

    `episode_lengths` None means a pool of independent steps (feedforward models only);
    `sessions` optionally gives each episode's session id (a recurrent model may run a session
    as one sequence, `sequences("session")`). Fields and rules: docs/interfaces.md.
    """

    obs: Tensor
    actions: Tensor
    episode_lengths: tuple[int, ...] | None = None
    sessions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_padded", {})  # cache, not a field

    @classmethod
    def from_arrays(
        cls,
        obs: ArrayLike,
        actions: ArrayLike,
        episode_lengths: Sequence[int] | None = None,
        *,
        sessions: Sequence[int] | None = None,
        device: torch.device | str | None = None,
    ) -> EpisodeData:
        """Validate and convert to float32 observations and int64 actions on `device`."""
        o = torch.as_tensor(obs)
        if o.dim() != 2:
            raise ValueError(
                f"EpisodeData: obs must be [N, input_size], got shape {tuple(o.shape)}"
            )
        o = o.to(device=device, dtype=torch.float32)
        a = torch.as_tensor(actions)
        if a.dim() != 1 or a.shape[0] != o.shape[0]:
            raise ValueError(
                f"EpisodeData: actions must be [N] with N = {o.shape[0]} (the obs rows), "
                f"got shape {tuple(a.shape)}"
            )
        if a.is_floating_point() and not torch.equal(a, a.round()):
            raise ValueError("EpisodeData: actions must be integer class indices, got fractions")
        a = a.to(device=o.device, dtype=torch.long)
        if a.numel() and int(a.min()) < 0:
            raise ValueError(f"EpisodeData: actions must be >= 0, got min {int(a.min())}")
        if not bool(torch.isfinite(o).all()):
            bad = int((~torch.isfinite(o)).any(dim=1).nonzero()[0, 0])
            raise ValueError(f"EpisodeData: obs has NaN or infinite values (first at row {bad})")
        lengths = None
        if episode_lengths is not None:
            lengths = tuple(int(n) for n in episode_lengths)
            if any(n < 1 for n in lengths):
                raise ValueError(f"EpisodeData: episode_lengths must all be >= 1, got {lengths}")
            if sum(lengths) != o.shape[0]:
                raise ValueError(
                    f"EpisodeData: episode_lengths sum to {sum(lengths)}, "
                    f"expected N = {o.shape[0]} (the obs rows)"
                )
        sess = None
        if sessions is not None:
            if lengths is None:
                raise ValueError("EpisodeData: sessions needs episode_lengths")
            sess = tuple(int(s) for s in sessions)
            if len(sess) != len(lengths):
                raise ValueError(
                    f"EpisodeData: sessions has {len(sess)} entries, expected one per episode "
                    f"({len(lengths)})"
                )
        return cls(o, a, lengths, sess)

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.obs.shape[0])

    @property
    def input_size(self) -> int:
        return int(self.obs.shape[1])

    @property
    def num_episodes(self) -> int:
        """Number of episodes (0 for a pool of independent steps)."""
        return 0 if self.episode_lengths is None else len(self.episode_lengths)

    def to(self, device: torch.device | str) -> EpisodeData:
        """The same data on `device` (self when already there)."""
        if self.obs.device == torch.device(device):
            return self
        return EpisodeData(
            self.obs.to(device), self.actions.to(device), self.episode_lengths, self.sessions
        )

    def _require_episodes(self) -> tuple[int, ...]:
        if self.episode_lengths is None:
            raise ValueError(
                "EpisodeData has no episode_lengths (episode boundaries); recurrent models "
                "need them: EpisodeData.from_arrays(obs, actions, episode_lengths)"
            )
        return self.episode_lengths

    def sequences(self, unit: str = "episode") -> list[list[int]]:
        """Episode indices of each sequence: one per episode, or one per session (in order of
        first appearance)."""
        self._require_episodes()
        if unit == "episode":
            return [[i] for i in range(self.num_episodes)]
        if unit != "session":
            raise ValueError(f"unit must be 'episode' or 'session', got {unit!r}")
        sessions = self.sessions if self.sessions is not None else (0,) * self.num_episodes
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(sessions):
            groups.setdefault(s, []).append(i)
        return list(groups.values())

    def padded(self, sequences: Sequence[Sequence[int]] | None = None) -> PaddedEpisodes:
        """Sequences of whole episodes, each its episodes' steps in order, padded at the end to
        the longest: `sequences` lists each sequence's episode indices (`sequences(unit)`);
        None = every episode on its own (built once, cached)."""
        lengths = self._require_episodes()
        cache: dict[str, PaddedEpisodes] = self._padded  # type: ignore[attr-defined]
        if sequences is None:
            cached = cache.get("all")
            if cached is None:
                cached = cache["all"] = self.padded([[i] for i in range(len(lengths))])
            return cached
        starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        rows = [
            np.concatenate([np.arange(starts[i], starts[i + 1]) for i in seq]).astype(np.int64)
            for seq in sequences
        ]
        t = max((len(r) for r in rows), default=0)
        index = np.zeros((len(rows), t), dtype=np.int64)
        mask = np.zeros((len(rows), t), dtype=bool)
        for k, r in enumerate(rows):
            index[k, : len(r)] = r
            mask[k, : len(r)] = True
        idx = torch.from_numpy(index).to(self.obs.device)
        m = torch.from_numpy(mask).to(self.obs.device)
        obs = self.obs[idx].masked_fill_(~m[..., None], 0.0)
        actions = self.actions[idx].masked_fill_(~m, 0)
        return PaddedEpisodes(obs, actions, m)


def as_episode_data(
    data: EpisodeData | tuple[ArrayLike, ArrayLike],
    device: torch.device | str | None = None,
    name: str | None = None,
) -> EpisodeData:
    """Accept `EpisodeData` or a plain `(obs, actions)` tuple; place it on `device` (None:
    where it is). `name` is the argument named in error messages."""
    if isinstance(data, EpisodeData):
        return data if device is None else data.to(device)
    if isinstance(data, tuple) and len(data) == 2:
        try:
            return EpisodeData.from_arrays(data[0], data[1], device=device)
        except ValueError as exc:
            if name is None:
                raise
            raise ValueError(f"{name}: {exc}") from exc
    raise TypeError(
        f"{name or 'data'} must be EpisodeData or an (obs, actions) tuple, "
        f"got {type(data).__name__}"
    )
