"""`DynamicNet`: one evolved graph exported as a plain `torch.nn.Module` (statistics frozen by
default), the way a population member of the other network kinds is exported."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

NONLINEARITIES = ("tanh", "identity")


def _check_nonlinearity(name: str) -> str:
    if name not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {name!r}")
    return name


class DynamicNet(nn.Module):
    """One evolved graph as a plain recurrent `nn.Module` (docs/interfaces.md "Recurrent API").

    N = in + out + hidden nodes (inputs, then outputs, then hidden). Keys: `weight [N - in, 3]`
    (a parameter that nothing trains: the frozen edge weights of each non-input node),
    `source [N - in, 3]` (int64: the node each weight reads), `center [N]`, `scale [N]` (the
    frozen standardisation, z = (a - center) * scale, from the member's Welford statistics:
    center = mean, scale = 1 / max(std, min_std), 0 while fewer than two samples), and extra
    state `{"passes", "min_std", "nonlinearity"}`. The state `h [B, N]` holds every node's
    value; `initial_state` is zero. Evaluation never changes the module.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        num_hidden: int = 0,
        *,
        passes: int = 1,
        min_std: float = 1e-3,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if input_size < 1 or output_size < 1 or num_hidden < 0:
            raise ValueError(
                f"need input_size, output_size >= 1 and num_hidden >= 0, got "
                f"{input_size}, {output_size}, {num_hidden}"
            )
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.num_hidden = int(num_hidden)
        self.num_nodes = n = self.input_size + self.output_size + self.num_hidden
        self.passes = int(passes)
        self.min_std = float(min_std)
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        k = n - self.input_size
        self.weight = nn.Parameter(
            torch.zeros(k, 3, device=device, dtype=dtype), requires_grad=False
        )
        self.source: Tensor
        self.center: Tensor
        self.scale: Tensor
        self.register_buffer("source", torch.zeros(k, 3, dtype=torch.long, device=device))
        self.register_buffer("center", torch.zeros(n, device=device, dtype=dtype))
        self.register_buffer("scale", torch.zeros(n, device=device, dtype=dtype))

    def get_extra_state(self) -> dict[str, Any]:
        return {"passes": self.passes, "min_std": self.min_std, "nonlinearity": self.nonlinearity}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.passes = int(state["passes"])
        self.min_std = float(state["min_std"])
        self.nonlinearity = _check_nonlinearity(str(state["nonlinearity"]))

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Zero state `[B, N]`."""
        w = self.weight
        return torch.zeros(
            batch_size, self.num_nodes, device=w.device if device is None else device, dtype=w.dtype
        )

    def forward_step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step: `x [B, in]`, `h [B, N]` -> (logits `[B, out]`, h `[B, N]`)."""
        i = self.input_size
        v = torch.cat([(x.to(h.dtype) - self.center[:i]) * self.scale[:i], h[:, i:]], 1)
        center, scale = self.center[i:], self.scale[i:]
        for _ in range(self.passes):
            a = (v[:, self.source] * self.weight).sum(-1)  # [B, N - in]
            if self.nonlinearity == "tanh":
                a = torch.tanh(a)
            v = torch.cat([v[:, :i], (a - center) * scale], 1)
        return v[:, i : i + self.output_size], v

    def forward(
        self, x: Tensor, mask: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Whole sequences: `x [B, T, in]`, `mask [B, T]` (bool), `h0 [B, N]` -> (logits
        `[B, T, out]`, h_T `[B, N]`). Masked steps never change the state, so h_T is the state
        after each sequence's last valid step; their logits are unspecified."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be [B, T, {self.input_size}], got {tuple(x.shape)}")
        b, t, _ = x.shape
        h = self.initial_state(b, x.device) if h0 is None else h0
        if h.shape != (b, self.num_nodes):
            raise ValueError(f"h0 must be [{b}, {self.num_nodes}], got {tuple(h.shape)}")
        if mask is not None and mask.shape != (b, t):
            raise ValueError(f"mask must be [{b}, {t}], got {tuple(mask.shape)}")
        out = []
        for s in range(t):
            logits, h_new = self.forward_step(x[:, s], h)
            h = h_new if mask is None else torch.where(mask[:, s, None].bool(), h_new, h)
            out.append(logits)
        if not out:
            return x.new_zeros(b, 0, self.output_size), h
        return torch.stack(out, 1), h

    def get_probs(
        self, x: Tensor, mask: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Probabilities `[B, T, out]` and h_T `[B, N]` (as `forward`)."""
        logits, h = self.forward(x, mask, h0)
        return torch.softmax(logits, dim=-1), h
