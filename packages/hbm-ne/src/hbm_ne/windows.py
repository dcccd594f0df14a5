"""Sliding windows of episodes: what an adversarial discriminator sees of a play.

A window is `window` consecutive steps of one episode, each step the observation with
`hide_elements` zeroed (what the discriminator may not see; the generators still see it)
followed by the one-hot action: `[window * (obs_size + num_actions)]`, step-major. Windows
start at every step t <= L - window of an episode of length L, so none spans two episodes; an
episode shorter than `window` gives one window, padded with zero steps after its end (a zero
step has no action bit set, so it never looks like a real step). The discriminators
standardise their input by the person's observation mean and spread (fixed, part of the
exported module), so one mutation size suits every environment's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["EpisodeWindows", "WindowDiscriminator", "episode_windows", "step_features"]


def step_features(
    obs: Tensor, actions: Tensor, lengths: Tensor, num_actions: int, hide: Sequence[int] = ()
) -> Tensor:
    """What the discriminator sees of each step: `obs [B, T, O]` (hidden columns zeroed) and
    one-hot `actions [B, T]` -> `[B, T, O + num_actions]` float32, zero past `lengths [B]`."""
    t = obs.shape[1]
    x = torch.cat([obs.float(), F.one_hot(actions, num_actions).float()], dim=-1)
    if hide:
        x[..., list(hide)] = 0.0
    real = torch.arange(t, device=obs.device) < lengths.to(obs.device)[:, None]
    return x * real[..., None]


class EpisodeWindows(NamedTuple):
    """Every sliding window of a batch of episodes, gathered on demand (all at once they would
    take `window` times the memory of the steps).

    Starts t = 0 .. max(L - window, 0) of each episode of length L: no window crosses into
    another episode; an episode shorter than `window` gives one window ending in zero steps.
    """

    padded: Tensor  # [B, T + window, C] the steps, zero past each episode's end
    episode: Tensor  # [N] int64, the episode of each window
    start: Tensor  # [N] int64, its first step
    window: int

    @classmethod
    def of(cls, steps: Tensor, lengths: Tensor, window: int) -> EpisodeWindows:
        """`steps [B, T, C]` (zero past each episode's end), `lengths [B]`."""
        b, t, c = steps.shape
        dev = steps.device
        padded = torch.cat([steps, steps.new_zeros(b, window, c)], dim=1)
        last_start = (lengths.to(dev) - window).clamp_min(0)
        starts = torch.arange(t, device=dev) <= last_start[:, None]
        episode, start = torch.nonzero(starts, as_tuple=True)
        return cls(padded, episode, start, window)

    def __len__(self) -> int:
        return int(self.episode.shape[0])

    def gather(self, index: Tensor | slice = slice(None)) -> Tensor:
        """Windows `index` -> `[n, window * C]`, step-major."""
        episode, start = self.episode[index], self.start[index]
        rows = start[:, None] + torch.arange(self.window, device=start.device)
        return self.padded[episode[:, None], rows].reshape(episode.shape[0], -1)


def episode_windows(steps: Tensor, lengths: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """All windows of `steps [B, T, C]` (see `EpisodeWindows`) -> (windows `[N, window * C]`,
    episode index `[N]` int64)."""
    windows = EpisodeWindows.of(steps, lengths, window)
    return windows.gather(), windows.episode


class WindowDiscriminator(nn.Module):
    """Logit that a window is the person's: `x [B, window*(obs+A)]` -> `[B]`.

    `x * scale + shift` (the person's standardisation, zero for hidden columns) feeds an
    `mlp` with one output."""

    scale: Tensor
    shift: Tensor

    def __init__(self, mlp: nn.Module, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.mlp = mlp
        self.register_buffer("scale", scale.clone())
        self.register_buffer("shift", shift.clone())

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.mlp(x * self.scale + self.shift)
        return out.squeeze(-1)


def _bce(logits: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of `logits [..., N]` against 0/1 `labels [N]`, mean over N (float64)."""
    z = logits.double()
    return (F.softplus(z) - labels.double() * z).mean(dim=-1)


def _accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    return ((logits > 0) == labels.bool()).double().mean(dim=-1)
