"""`BatchedRecurrent`: a population of one-layer tanh RNNs (reservoir or evolved recurrence)
with a linear readout, run over whole padded sequences step by step for every member at once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from hbm_ne._parallel import tanh_
from hbm_ne._shared import DEFAULT_INIT, InitName, check_init, fill_init_
from hbm_ne.modules import RecurrentMLP
from hbm_ne.population import (
    CPU_SEQUENCE_CHUNK_BYTES,
    GPU_SEQUENCE_CHUNK_BYTES,
    _init_cpu_generator,
    _layout,
    _NetworkPopulation,
)


def spectral_scale_(w: Tensor, radius: float) -> Tensor:
    """Scale square matrices `[..., H, H]` in place to spectral radius `radius`."""
    eig = torch.linalg.eigvals(w.detach().to(device="cpu", dtype=torch.float64))
    rho = eig.abs().amax(dim=-1).clamp_min(1e-12).to(device=w.device, dtype=w.dtype)
    w.mul_((radius / rho)[..., None, None])
    return w


class BatchedRecurrent(_NetworkPopulation):
    """A population of one-layer tanh RNNs with a linear readout (hbm-dl's recurrent models).

    `kind="reservoir"`: W_rec is a fixed random matrix scaled to `spectral_radius` and not evolved;
    shared by all members (default, so ES/CMA-ES recombination is well-posed) or one per member
    (`shared_reservoir=False`, then it follows each member's lineage through selection).
    `kind="trainable"`: W_rec = u vᵀ with `rank` r (default 1), or a full evolved matrix
    (`rank=None`).

    Parameter row layout: `input.weight [H, in]`, `input.bias [H]`, then (trainable) either
    `recurrent_u [H, r]`, `recurrent_v [H, r]` or `recurrent_weight [H, H]`, then
    `output.weight [out, H]`, `output.bias [out]`. Input and output layers are initialised by
    `init` ("normal" N(0, 1/fan_in), "uniform" U(±1/√fan_in)); u, v ~ N(0, 1/H); recurrent
    matrices N(0, 1/H) scaled to `spectral_radius` (as hbm-dl's networks).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        population_size: int,
        hidden_size: int = 50,
        *,
        kind: str = "reservoir",
        rank: int | None = 1,
        spectral_radius: float = 0.9,
        shared_reservoir: bool = True,
        init: InitName = DEFAULT_INIT,
        sigma_init: float = 1e-3,
        adaptive: bool = True,
        tau: float = 1e-2,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if kind not in ("reservoir", "trainable"):
            raise ValueError(f"kind must be 'reservoir' or 'trainable', got {kind!r}")
        if rank is not None and rank < 1:
            raise ValueError(f"rank must be >= 1 or None, got {rank}")
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.hidden_size = h = int(hidden_size)
        self.kind = kind
        self.rank = rank if kind == "trainable" else None
        self.spectral_radius = float(spectral_radius)
        self.shared_reservoir = bool(shared_reservoir)
        entries: list[tuple[str, tuple[int, ...]]] = [
            ("input.weight", (h, self.input_size)),
            ("input.bias", (h,)),
        ]
        if kind == "trainable":
            if self.rank is None:
                entries.append(("recurrent_weight", (h, h)))
            else:
                entries += [("recurrent_u", (h, self.rank)), ("recurrent_v", (h, self.rank))]
        entries += [("output.weight", (self.output_size, h)), ("output.bias", (self.output_size,))]
        self.slots, dim = _layout(entries)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.init = check_init(init)
        gen = _init_cpu_generator(generator)
        p = population_size
        params = torch.empty(p, dim, dtype=torch.float64)
        fan_in = {"input": self.input_size, "output": h}
        for s in self.slots:
            block = params[:, s.offset : s.offset + s.size]
            if s.name == "recurrent_weight":
                w = torch.randn(p, h, h, generator=gen, dtype=torch.float64) / math.sqrt(h)
                block.copy_(spectral_scale_(w, self.spectral_radius).reshape(p, -1))
            elif s.name.startswith("recurrent_"):
                block.normal_(0.0, h**-0.5, generator=gen)
            else:  # input and output layers follow `init`, as in the single networks
                fill_init_(block, fan_in[s.name.split(".")[0]], init, gen)
        #: Fixed reservoir `[H, H]` (shared) or `[P, H, H]` (per member); None when trainable.
        self.reservoir: Tensor | None = None
        if kind == "reservoir":
            shape = (h, h) if self.shared_reservoir else (p, h, h)
            w = torch.randn(*shape, generator=gen, dtype=torch.float64) / math.sqrt(h)
            self.reservoir = spectral_scale_(w, self.spectral_radius).to(device=dev, dtype=dtype)
        super().__init__(
            params.to(device=dev, dtype=dtype), sigma_init=sigma_init, adaptive=adaptive, tau=tau
        )

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "hidden_size": self.hidden_size,
            "kind": self.kind,
            "rank": self.rank,
            "shared_reservoir": self.shared_reservoir,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "reservoir": self.reservoir}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.reservoir is not None:
            self.reservoir.copy_(state["reservoir"])

    def _select_extra(self, idx: Tensor) -> None:
        if self.reservoir is not None and not self.shared_reservoir:
            self.reservoir.copy_(self.reservoir.index_select(0, idx))

    def _new_module(self) -> nn.Module:
        return RecurrentMLP(
            self.input_size, self.hidden_size, self.output_size, kind=self.kind, rank=self.rank
        )

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        sd = super().member_state_dict(i)
        if self.reservoir is not None:
            w = self.reservoir if self.shared_reservoir else self.reservoir[i]
            sd["recurrent_weight"] = w.detach().clone()
        return sd

    # -- kernels -----------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> Tensor:
        """Zero state `[P, B, H]`."""
        return torch.zeros(
            self.population_size, batch_size, self.hidden_size, device=self.device, dtype=self.dtype
        )

    def _recurrent_term(self, h: Tensor, p0: int, p1: int, views: dict[str, Tensor]) -> Tensor:
        """`h [c, B, H]` -> `h @ W_rec^T [c, B, H]` for members p0:p1."""
        if self.reservoir is not None:
            if self.shared_reservoir:
                return h @ self.reservoir.T
            return torch.bmm(h, self.reservoir[p0:p1].transpose(1, 2))
        if self.rank is None:
            return torch.bmm(h, views["recurrent_weight"][p0:p1].transpose(1, 2))
        u, v = views["recurrent_u"][p0:p1], views["recurrent_v"][p0:p1]
        return torch.bmm(torch.bmm(h, v), u.transpose(1, 2))

    @torch.no_grad()
    def forward_step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """`x [P, B, in]` (or `[B, in]` shared), `h [P, B, H]` -> (logits `[P, B, out]`, h)."""
        views = self.views()
        p = self.population_size
        x = x.to(device=self.device, dtype=self.dtype)
        if x.dim() == 2:
            x = x.expand(p, *x.shape)
        pre = torch.baddbmm(
            views["input.bias"].unsqueeze(1), x, views["input.weight"].transpose(1, 2)
        )
        pre += self._recurrent_term(h, 0, p, views)
        h_new = tanh_(pre)
        logits = torch.baddbmm(
            views["output.bias"].unsqueeze(1), h_new, views["output.weight"].transpose(1, 2)
        )
        return logits, h_new

    def chunk_size(self, e: int, t: int) -> int:
        """Members per chunk so the hidden sequence `[c, E, T, H]` stays within the budget."""
        per_member = max(1, e * t * self.hidden_size * self.params.element_size())
        cpu = self.device.type == "cpu"
        budget = CPU_SEQUENCE_CHUNK_BYTES if cpu else GPU_SEQUENCE_CHUNK_BYTES
        return max(1, min(self.population_size, budget // per_member))

    @torch.no_grad()
    def iter_sequence_logits(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        h0: Tensor | None = None,
        chunk: int | None = None,
    ) -> Iterator[tuple[int, int, Tensor, Tensor]]:
        """Yield `(p0, p1, logits [c, E, T, out], h_T [c, E, H])` chunk by chunk.

        `x [E, T, in]` is shared by all members; `mask [E, T]` marks valid steps (padded steps
        leave the state unchanged); `h0 [P, E, H]` (default zeros). Logits live in a workspace
        that the next chunk overwrites.
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be [E, T, {self.input_size}], got {tuple(x.shape)}")
        x = x.to(device=self.device, dtype=self.dtype)
        e, t, _ = x.shape
        hsz = self.hidden_size
        if mask is not None:
            if mask.shape != (e, t):
                raise ValueError(f"mask must be [{e}, {t}], got {tuple(mask.shape)}")
            mask = mask.to(device=self.device, dtype=torch.bool)
        if h0 is not None and h0.shape != (self.population_size, e, hsz):
            raise ValueError(
                f"h0 must be [{self.population_size}, {e}, {hsz}], got {tuple(h0.shape)}"
            )
        c = chunk or self.chunk_size(e, t)
        views = self.views()
        flat_x = x.reshape(e * t, self.input_size)
        for p0 in range(0, self.population_size, c):
            p1 = min(p0 + c, self.population_size)
            cc = p1 - p0
            pre = self._buffer(("rnn_pre",), (cc, e, t, hsz))
            torch.baddbmm(
                views["input.bias"][p0:p1].unsqueeze(1),
                flat_x.expand(cc, e * t, self.input_size),
                views["input.weight"][p0:p1].transpose(1, 2),
                out=pre.view(cc, e * t, hsz),
            )
            hs = self._buffer(("rnn_hs",), (cc, e, t, hsz))
            h = (
                torch.zeros(cc, e, hsz, device=self.device, dtype=self.dtype)
                if h0 is None
                else h0[p0:p1].to(self.dtype).clone()
            )
            step = self._buffer(("rnn_step",), (cc, e, hsz))
            for s in range(t):
                torch.add(pre[:, :, s], self._recurrent_term(h, p0, p1, views), out=step)
                tanh_(step)
                h = step.clone() if mask is None else torch.where(mask[:, s, None], step, h)
                hs[:, :, s] = h
            logits = self._buffer(("rnn_out",), (cc, e, t, self.output_size))
            torch.baddbmm(
                views["output.bias"][p0:p1].unsqueeze(1),
                hs.view(cc, e * t, hsz),
                views["output.weight"][p0:p1].transpose(1, 2),
                out=logits.view(cc, e * t, self.output_size),
            )
            yield p0, p1, logits, h

    def forward(
        self, x: Tensor, mask: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """`x [E, T, in]` -> (logits `[P, E, T, out]`, h_T `[P, E, H]`), fresh tensors."""
        e, t = x.shape[0], x.shape[1]
        p = self.population_size
        out = torch.empty(p, e, t, self.output_size, device=self.device, dtype=self.dtype)
        h_t = torch.empty(p, e, self.hidden_size, device=self.device, dtype=self.dtype)
        for p0, p1, logits, h in self.iter_sequence_logits(x, mask, h0):
            out[p0:p1].copy_(logits)
            h_t[p0:p1].copy_(h)
        return out, h_t

    __call__ = forward
