"""Episodes packed for the dynamic population's time loop: `[T, E, in]` steps with the
episodes still running at each step first, so a step touches a prefix of the batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class PackedEpisodes:
    """Episodes packed time-major, sorted by decreasing length (like `PackedSequence`).

    Column n of `x [in, Ntot]` is step `steps[n]` of episode `episodes[n]` (original index);
    step t occupies `batch_sizes[t]` consecutive columns, the longest episodes first, so an
    episode that has ended leaves the batch and no step is padded. `targets [Ntot]` (int64)
    the actions, when known. `order [E]`: for each packed episode slot (longest first, ties in
    the given order), its position among the packed episodes (= its original index when all
    episodes are packed).
    """

    x: Tensor
    batch_sizes: tuple[int, ...]
    order: Tensor
    episodes: Tensor
    steps: Tensor
    num_episodes: int
    max_length: int
    targets: Tensor | None = None

    @property
    def num_steps(self) -> int:
        return int(self.x.shape[1])


def pack_episodes(
    obs: Tensor,
    lengths: Sequence[int],
    actions: Tensor | None = None,
    *,
    episodes: Sequence[int] | None = None,
    starts: Sequence[int] | None = None,
) -> PackedEpisodes:
    """Pack flat contiguous episodes (`obs [N, in]`, `actions [N]`, `lengths`) or padded ones
    (`obs [E, T, in]`, `actions [E, T]`, `lengths [E]`) into `PackedEpisodes`.

    `episodes` picks a subset (in that order) of the flat episodes; `starts` are their first
    rows (default: the running sum of `lengths`).
    """
    lens = [int(n) for n in lengths]
    if any(n < 0 for n in lens):
        raise ValueError("episode lengths must be >= 0")
    dev = obs.device
    padded = obs.dim() == 3
    if padded:
        if obs.shape[0] != len(lens) or (lens and max(lens) > obs.shape[1]):
            raise ValueError(f"lengths {lens} do not fit padded obs of shape {tuple(obs.shape)}")
        pick = list(range(len(lens))) if episodes is None else [int(e) for e in episodes]
        first = [0] * len(lens)
    else:
        if obs.dim() != 2:
            raise ValueError(f"obs must be [N, in] or [E, T, in], got {tuple(obs.shape)}")
        first = list(np.cumsum([0, *lens[:-1]])) if starts is None else [int(s) for s in starts]
        if starts is None and sum(lens) != obs.shape[0]:
            raise ValueError(f"episode lengths sum to {sum(lens)}, obs has {obs.shape[0]} rows")
        pick = list(range(len(lens))) if episodes is None else [int(e) for e in episodes]
    sel = [lens[e] for e in pick]
    order = sorted(range(len(pick)), key=lambda k: -sel[k])  # stable: ties keep pick order
    t_max = max(sel, default=0)
    sorted_len = torch.tensor([sel[k] for k in order], dtype=torch.long)
    live = torch.arange(t_max)[:, None] < sorted_len[None, :]  # [T, E] in sorted order
    tk = live.nonzero()  # (t, k) in time-major order: the packed column order
    t_idx, k_idx = tk[:, 0], tk[:, 1]
    pick_t = torch.tensor(pick, dtype=torch.long)
    order_t = torch.tensor(order, dtype=torch.long)
    ep = pick_t[order_t[k_idx]] if len(pick) else torch.zeros(0, dtype=torch.long)
    batch_sizes = tuple(int(v) for v in live.sum(1).tolist())
    if padded:
        x = obs[ep.to(dev), t_idx.to(dev)]
        y = None if actions is None else actions[ep.to(dev), t_idx.to(dev)]
    else:
        rows = torch.tensor(first, dtype=torch.long)[ep] + t_idx
        x = obs[rows.to(dev)]
        y = None if actions is None else actions[rows.to(dev)]
    return PackedEpisodes(
        x=x.T.contiguous(),
        batch_sizes=batch_sizes,
        order=order_t,
        episodes=ep,
        steps=t_idx,
        num_episodes=len(pick),
        max_length=t_max,
        targets=None if y is None else y.to(dtype=torch.long).contiguous(),
    )


def _prefix_lengths(mask: Tensor | None, e: int, t: int) -> list[int]:
    """Episode lengths of a `[E, T]` mask whose valid steps form a prefix of each row."""
    if mask is None:
        return [t] * e
    if mask.shape != (e, t):
        raise ValueError(f"mask must be [{e}, {t}], got {tuple(mask.shape)}")
    m = mask.to(torch.bool)
    lengths = m.sum(1)
    prefix = torch.arange(t, device=m.device)[None, :] < lengths[:, None]
    if not torch.equal(prefix, m):
        raise ValueError(
            "a population runs whole episodes: mask must mark a prefix of each row (pad "
            "episodes at the end); the exported module accepts any mask"
        )
    return [int(v) for v in lengths.tolist()]
