"""Plain `torch.nn.Module` networks that population members export to.

Their state_dict keys and shapes are the contract shared with hbm-dl (docs/interfaces.md), so a
member evolved here can be evaluated or saved anywhere a hbm-dl model of the same architecture can.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn


class FeedforwardMLP(nn.Module):
    """MLP with tanh after each hidden layer and a linear readout.

    Keys: `hidden.{i}.weight [H_i, H_{i-1}]`, `hidden.{i}.bias [H_i]`, `output.weight [out, H_L]`,
    `output.bias [out]`.
    """

    def __init__(self, input_size: int, hidden_sizes: tuple[int, ...], output_size: int) -> None:
        super().__init__()
        sizes = (input_size, *hidden_sizes)
        self.input_size = input_size
        self.output_size = output_size
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.output = nn.Linear(sizes[-1], output_size)

    def forward(self, x: Tensor) -> Tensor:
        """`x [..., in]` -> logits `[..., out]`."""
        for layer in self.hidden:
            x = torch.tanh(layer(x))
        return self.output(x)

    def get_probs(self, x: Tensor) -> Tensor:
        """Action probabilities `[..., out]`."""
        return torch.softmax(self.forward(x), dim=-1)


class RecurrentMLP(nn.Module):
    """One tanh recurrent layer with a linear readout: `h_t = tanh(input(x_t) + h_{t-1} W_rec^T)`.

    `kind="reservoir"`: `recurrent_weight [H, H]` is a fixed buffer. `kind="trainable"` with
    `rank=r`: parameters `recurrent_u [H, r]`, `recurrent_v [H, r]`, W_rec = u vᵀ; with `rank=None`
    the parameter `recurrent_weight [H, H]`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        kind: str = "reservoir",
        rank: int | None = 1,
    ) -> None:
        super().__init__()
        if kind not in ("reservoir", "trainable"):
            raise ValueError(f"kind must be 'reservoir' or 'trainable', got {kind!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.kind = kind
        self.rank = rank if kind == "trainable" else None
        self.input = nn.Linear(input_size, hidden_size)
        if kind == "reservoir":
            self.register_buffer("recurrent_weight", torch.zeros(hidden_size, hidden_size))
        elif rank is None:
            self.recurrent_weight = nn.Parameter(torch.zeros(hidden_size, hidden_size))
        else:
            self.recurrent_u = nn.Parameter(torch.zeros(hidden_size, rank))
            self.recurrent_v = nn.Parameter(torch.zeros(hidden_size, rank))
        self.output = nn.Linear(hidden_size, output_size)

    def recurrent_matrix(self) -> Tensor:
        """W_rec `[H, H]`."""
        if self.kind == "trainable" and self.rank is not None:
            return self.recurrent_u @ self.recurrent_v.T
        w: Tensor = self.recurrent_weight
        return w

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Zero state `[B, H]`."""
        dev = device if device is not None else self.input.weight.device
        return torch.zeros(batch_size, self.hidden_size, device=dev, dtype=self.input.weight.dtype)

    def forward_step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """`x [B, in]`, `h [B, H]` -> (logits `[B, out]`, new h `[B, H]`)."""
        h = torch.tanh(self.input(x) + h @ self.recurrent_matrix().T)
        return self.output(h), h

    def forward(
        self, x: Tensor, mask: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """`x [B, T, in]`, `mask [B, T]` -> (logits `[B, T, out]`, h_T `[B, H]`).

        Padded steps (mask False) leave the state unchanged, so h_T is the state after each
        sequence's last valid step.
        """
        b, t, _ = x.shape
        h = self.initial_state(b, x.device) if h0 is None else h0
        w_rec_t = self.recurrent_matrix().T
        pre = self.input(x)
        states = []
        for step in range(t):
            new = torch.tanh(pre[:, step] + h @ w_rec_t)
            h = new if mask is None else torch.where(mask[:, step, None], new, h)
            states.append(h)
        hs = torch.stack(states, dim=1)
        return self.output(hs), h

    def get_probs(
        self, x: Tensor, mask: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Probabilities `[B, T, out]` and h_T `[B, H]`."""
        logits, h = self.forward(x, mask, h0)
        return torch.softmax(logits, dim=-1), h
