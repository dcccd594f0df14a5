"""The networks both learner packages build and export: `FeedforwardMLP`, `RecurrentMLP`
(+ `RecurrentMLPReservoir`, `RecurrentMLPTrainable`), `is_recurrent`, and their initialisation
(`init="normal"|"uniform"`, drawn from an explicit generator). The state_dict layout is stated
in docs/interfaces.md.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Device = torch.device | str | None

# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------

InitName = Literal["normal", "uniform"]
INITS: tuple[str, ...] = ("normal", "uniform")
DEFAULT_INIT: InitName = "normal"
DEFAULT_INIT_SEED = 0
"""Seed of the generator used when a network is built with `generator=None`."""


def check_init(init: str) -> InitName:
    """`init` validated: "normal" = N(0, 1/fan_in), "uniform" = U(-1/√fan_in, 1/√fan_in)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return cast(InitName, init)


def fill_init_(t: Tensor, fan_in: int, init: str, generator: torch.Generator) -> Tensor:
    """Fill `t` in place with the weight/bias distribution `init` for a layer of `fan_in`
    inputs: "normal" N(0, 1/fan_in), "uniform" U(-1/√fan_in, 1/√fan_in) (PyTorch's
    `nn.Linear` default). Biases use their layer's fan_in. `t` lives on the generator's device.
    """
    scale = 1.0 / math.sqrt(fan_in)
    if check_init(init) == "normal":
        return t.normal_(0.0, scale, generator=generator)
    return t.uniform_(-scale, scale, generator=generator)


def _init_generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(DEFAULT_INIT_SEED)
    return generator


def _drawn(shape: tuple[int, ...], fan_in: int, init: str, gen: torch.Generator) -> Tensor:
    """A float32 CPU tensor drawn on the generator's device (so any generator works)."""
    return fill_init_(torch.empty(shape, device=gen.device), fan_in, init, gen).cpu()


def _normal(shape: tuple[int, ...], std: float, gen: torch.Generator) -> Tensor:
    return torch.empty(shape, device=gen.device).normal_(0.0, std, generator=gen).cpu()


def _linear(
    in_features: int, out_features: int, init: str, gen: torch.Generator, device: Device
) -> nn.Linear:
    """`nn.Linear` initialised by `init` from `gen` (weight first, then bias; no global RNG).

    Built on the meta device (no default init, no global RNG) and given the drawn parameters:
    `nn.utils.skip_init` does the same through `to_empty`, whose first call in a process
    imports sympy (seconds per process, paid by every run and every worker)."""
    layer = nn.Linear(in_features, out_features, device="meta")
    layer.weight = nn.Parameter(_drawn((out_features, in_features), in_features, init, gen))
    layer.bias = nn.Parameter(_drawn((out_features,), in_features, init, gen))
    return layer.to(device)


def scaled_to_spectral_radius(w: Tensor, spectral_radius: float) -> Tensor:
    """`w [H, H]` rescaled so that its largest |eigenvalue| is `spectral_radius`."""
    radius = torch.linalg.eigvals(w.double().cpu()).abs().max().item()
    if radius == 0.0:
        raise ValueError("cannot rescale a matrix whose eigenvalues are all 0")
    return w * (spectral_radius / radius)


def _check_sizes(input_size: int, output_size: int | None, hidden: Sequence[int]) -> int:
    if output_size is None:
        raise TypeError("output_size is required (the number of actions)")
    for name, value in (("input_size", input_size), ("output_size", output_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
        raise ValueError(f"hidden sizes must be positive ints, got {list(hidden)!r}")
    return output_size


# --------------------------------------------------------------------------------------------
# Networks (state_dict layout: docs/interfaces.md)
# --------------------------------------------------------------------------------------------


def is_recurrent(model: nn.Module) -> bool:
    """The interface rule: a module is recurrent iff it has `forward_step`."""
    return callable(getattr(model, "forward_step", None))


class FeedforwardMLP(nn.Module):
    """MLP with tanh after each hidden layer and linear logits out.

    `FeedforwardMLP(input_size, hidden_sizes=(50,), output_size, *, init, generator, device)`;
    `hidden_sizes` is a sequence of widths (one per layer) or one int (one layer).
    Keys: `hidden.{i}.weight [H_i, H_{i-1}]`, `hidden.{i}.bias [H_i]`, `output.weight [out, H_L]`,
    `output.bias [out]`. Layers are drawn in order (weight, then bias) from `generator`
    (None: a fixed seed-0 generator).
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: int | Sequence[int] = (50,),
        output_size: int | None = None,
        *,
        init: InitName = DEFAULT_INIT,
        generator: torch.Generator | None = None,
        device: Device = None,
    ) -> None:
        super().__init__()
        hidden = (hidden_sizes,) if isinstance(hidden_sizes, int) else tuple(hidden_sizes)
        out = _check_sizes(input_size, output_size, hidden)
        check_init(init)
        gen = _init_generator(generator)
        sizes = (input_size, *hidden)
        self.input_size = input_size
        self.hidden_sizes = hidden
        self.output_size = out
        self.init = init
        self.hidden = nn.ModuleList(
            _linear(a, b, init, gen, device) for a, b in itertools.pairwise(sizes)
        )
        self.output = _linear(sizes[-1], out, init, gen, device)

    def forward(self, x: Tensor) -> Tensor:
        """`x [..., in]` -> logits `[..., out]`."""
        # F.linear on the parameters skips nn.Module call overhead (~4 µs a layer), which is a
        # visible share of a batch-32 SGD step.
        for layer in self.hidden:
            linear = cast(nn.Linear, layer)
            x = torch.tanh(F.linear(x, linear.weight, linear.bias))
        return F.linear(x, self.output.weight, self.output.bias)

    def get_probs(self, x: Tensor) -> Tensor:
        """Action probabilities `[..., out]`."""
        return torch.softmax(self.forward(x), dim=-1)


class RecurrentMLP(nn.Module):
    """One tanh recurrent layer with a linear readout.

    `h_t = tanh(input(x_t) + h_{t-1} @ W_rec.T)`, `logits_t = output(h_t)`, `h_0 = 0`.
    `kind="reservoir"`: `recurrent_weight [H, H]` is a fixed buffer, N(0, 1/H) scaled to
    `spectral_radius`. `kind="trainable"` with `rank=r`: parameters `recurrent_u`,
    `recurrent_v [H, r]` ~ N(0, 1/H), W_rec = u vᵀ; with `rank=None` a parameter
    `recurrent_weight [H, H]` (drawn like the reservoir). `init` sets the input and output
    layers (drawn first: input weight, input bias, output weight, output bias).
    """

    input: nn.Linear
    output: nn.Linear
    _zero_bias: Tensor

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 50,
        output_size: int | None = None,
        *,
        kind: str = "reservoir",
        rank: int | None = 1,
        spectral_radius: float = 0.9,
        init: InitName = DEFAULT_INIT,
        generator: torch.Generator | None = None,
        device: Device = None,
    ) -> None:
        super().__init__()
        if kind not in ("reservoir", "trainable"):
            raise ValueError(f"kind must be 'reservoir' or 'trainable', got {kind!r}")
        out = _check_sizes(input_size, output_size, (hidden_size,))
        if (
            kind == "trainable"
            and rank is not None
            and not (isinstance(rank, int) and 1 <= rank <= hidden_size)
        ):
            raise ValueError(f"rank must be None or an int in [1, {hidden_size}], got {rank!r}")
        if spectral_radius <= 0:
            raise ValueError(f"spectral_radius must be > 0, got {spectral_radius}")
        check_init(init)
        gen = _init_generator(generator)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = out
        self.kind = kind
        self.rank = rank if kind == "trainable" else None
        self.spectral_radius = float(spectral_radius)
        self.init = init
        self.input = _linear(input_size, hidden_size, init, gen, None)
        self.output = _linear(hidden_size, out, init, gen, None)
        self.register_buffer("_zero_bias", torch.zeros(hidden_size), persistent=False)
        std = 1.0 / math.sqrt(hidden_size)
        if kind == "reservoir":
            w = _normal((hidden_size, hidden_size), std, gen)
            self.register_buffer("recurrent_weight", scaled_to_spectral_radius(w, spectral_radius))
        elif self.rank is None:
            w = _normal((hidden_size, hidden_size), std, gen)
            self.recurrent_weight = nn.Parameter(scaled_to_spectral_radius(w, spectral_radius))
        else:
            self.recurrent_u = nn.Parameter(_normal((hidden_size, self.rank), std, gen))
            self.recurrent_v = nn.Parameter(_normal((hidden_size, self.rank), std, gen))
        self.to(device)

    def recurrent_matrix(self) -> Tensor:
        """W_rec `[H, H]`."""
        if self.kind == "trainable" and self.rank is not None:
            return self.recurrent_u @ self.recurrent_v.T
        w: Tensor = self.recurrent_weight
        return w

    def initial_state(self, batch_size: int, device: Device = None) -> Tensor:
        """Zero state `[B, H]`."""
        w = self.input.weight
        return torch.zeros(
            batch_size,
            self.hidden_size,
            device=w.device if device is None else device,
            dtype=w.dtype,
        )

    def forward_step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step for rollouts: `x [B, in]`, `h [B, H]` -> (logits `[B, out]`, h `[B, H]`)."""
        pre = torch.addmm(self.input.bias, x, self.input.weight.T)
        h = torch.tanh(torch.addmm(pre, h, self.recurrent_matrix().T))
        return F.linear(h, self.output.weight, self.output.bias), h

    def forward(
        self, x: Tensor, mask: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Whole sequences: `x [B, T, in]`, `mask [B, T]` (bool), `h0 [B, H]`.

        Returns (logits `[B, T, out]`, h_T `[B, H]`). Padded steps (mask False) never change the
        state, so h_T is the state after each sequence's last valid step; logits at padded steps
        are unspecified (mask them out of any loss).
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: x must be [B, T, {self.input_size}], got {tuple(x.shape)}"
            )
        b, t, _ = x.shape
        if h0 is not None and h0.shape != (b, self.hidden_size):
            raise ValueError(f"h0 must be [B, H] = {[b, self.hidden_size]}, got {list(h0.shape)}")
        h = self.initial_state(b, x.device) if h0 is None else h0
        w_rec = self.recurrent_matrix()
        lengths = None
        if mask is not None:
            if mask.shape != (b, t):
                raise ValueError(f"mask must be [B, T] = {[b, t]}, got {list(mask.shape)}")
            mask = mask.bool()
            lengths = mask.sum(dim=1)
            prefix = torch.arange(t, device=mask.device) < lengths[:, None]
            if not torch.equal(prefix, mask):
                return self._forward_loop(x, mask, h, w_rec)
        if t == 0:
            return x.new_zeros(b, 0, self.output_size), h
        hs = self._scan(x, h, w_rec)
        logits = F.linear(hs, self.output.weight, self.output.bias)
        if lengths is None:
            return logits, hs[:, -1]
        # Valid steps form a prefix: steps past each sequence's end do not influence the valid
        # ones, so run unmasked (fast path) and read the state at the last valid step.
        last = hs[torch.arange(b, device=hs.device), (lengths - 1).clamp(min=0)]
        return logits, torch.where((lengths > 0)[:, None], last, h)

    def _scan(self, x: Tensor, h: Tensor, w_rec: Tensor) -> Tensor:
        """All states `[B, T, H]` of the unmasked recurrence (the fused kernel nn.RNN uses)."""
        params = [self.input.weight, w_rec, self.input.bias, self._zero_bias]
        args = (x, h.unsqueeze(0).contiguous(), params, True, 1, 0.0, self.training, False, True)
        if x.device.type == "cpu":
            hs: Tensor = torch._VF.rnn_tanh(*args)[0]  # type: ignore[attr-defined]
            return hs
        with warnings.catch_warnings():
            # cuDNN wants its weights in one block; ours are separate parameters (and the
            # recurrence may be computed from factors): one small copy per call is expected
            warnings.filterwarnings("ignore", "RNN module weights are not part", UserWarning)
            hs = torch._VF.rnn_tanh(*args)[0]  # type: ignore[attr-defined]
        return hs

    def _forward_loop(
        self, x: Tensor, mask: Tensor, h: Tensor, w_rec: Tensor
    ) -> tuple[Tensor, Tensor]:
        """General masks (holes, left padding): a Python loop that holds state on masked steps."""
        pre = F.linear(x, self.input.weight, self.input.bias)
        w_t = w_rec.T
        states = []
        for step in range(x.shape[1]):
            new = torch.tanh(torch.addmm(pre[:, step], h, w_t))
            h = torch.where(mask[:, step, None], new, h)
            states.append(h)
        hs = torch.stack(states, dim=1)
        return F.linear(hs, self.output.weight, self.output.bias), h

    def get_probs(
        self, x: Tensor, mask: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Probabilities `[B, T, out]` and h_T `[B, H]` (as `forward`)."""
        logits, h = self.forward(x, mask, h0)
        return torch.softmax(logits, dim=-1), h


class RecurrentMLPReservoir(RecurrentMLP):
    """Echo-state network: `RecurrentMLP(kind="reservoir")`; only the input layer and the
    readout are trained."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 50,
        output_size: int | None = None,
        *,
        spectral_radius: float = 0.9,
        init: InitName = DEFAULT_INIT,
        generator: torch.Generator | None = None,
        device: Device = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            output_size,
            kind="reservoir",
            rank=None,
            spectral_radius=spectral_radius,
            init=init,
            generator=generator,
            device=device,
        )


class RecurrentMLPTrainable(RecurrentMLP):
    """Trainable recurrence: `RecurrentMLP(kind="trainable")`, rank-`r` W_rec = u vᵀ
    (default r = 1: +2H parameters over the reservoir) or full with `rank=None`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 50,
        output_size: int | None = None,
        *,
        rank: int | None = 1,
        spectral_radius: float = 0.9,
        init: InitName = DEFAULT_INIT,
        generator: torch.Generator | None = None,
        device: Device = None,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            output_size,
            kind="trainable",
            rank=rank,
            spectral_radius=spectral_radius,
            init=init,
            generator=generator,
            device=device,
        )
