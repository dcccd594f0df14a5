"""The contracts hbm-ne and hbm-dl share, in one file that both packages hold word for word.

The learner packages never import each other, so this module exists twice, byte-identical:
`packages/hbm-ne/src/hbm_ne/_shared.py` and `packages/hbm-dl/src/hbm_dl/_shared.py`
(`packages/hbm-experiments/tests/test_contracts.py` compares them). Edit both copies together;
docs/interfaces.md states each contract once.

- Networks: `FeedforwardMLP`, `RecurrentMLP` (+ `RecurrentMLPReservoir`,
  `RecurrentMLPTrainable`), `is_recurrent`, initialised by `init="normal"|"uniform"`.
- Metrics: `f1_seed`, `sampled_macro_f1`, `evaluate` (test CE, accuracy, sampled macro F1).
- Training-loop vocabulary: `Progress` (what callbacks get), `notify` (True stops the run),
  `ResultMapping` (results read like the design guide's dicts).
- Checkpoints: `CheckpointError`, `atomic_write` (temp + fsync + rename, umask permissions,
  orphaned temp files removed), `load_checkpoint_file`, fingerprints and `CheckpointInfo`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import itertools
import json
import math
import os
import secrets
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, Protocol, cast

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
    """`nn.Linear` initialised by `init` from `gen` (weight first, then bias; no global RNG)."""
    layer = nn.utils.skip_init(nn.Linear, in_features, out_features, device="cpu")
    with torch.no_grad():
        layer.weight.copy_(_drawn((out_features, in_features), in_features, init, gen))
        layer.bias.copy_(_drawn((out_features,), in_features, init, gen))
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
        hidden_size: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if hidden_size is not None:
            warnings.warn(
                "FeedforwardMLP(hidden_size=...) is deprecated: use hidden_sizes=(...) "
                "(or pass the width positionally)",
                DeprecationWarning,
                stacklevel=2,
            )
            hidden_sizes = hidden_size
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


# --------------------------------------------------------------------------------------------
# Metrics: one macro F1 for both packages
# --------------------------------------------------------------------------------------------

_EVAL_ROWS = 1 << 16  # feedforward evaluation chunk (rows)
_EVAL_STEPS = 1 << 18  # recurrent evaluation chunk (sequences x padded steps)


def f1_seed(seed: int, step: int) -> int:
    """The seed of the F1 draws of an evaluation at `step` of a run seeded `seed`:
    `(seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9) mod 2**63`."""
    return (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9) % (1 << 63)


def macro_f1_from_confusion(confusion: Tensor) -> Tensor:
    """Macro F1 from `confusion [..., A, A]` (rows = truth); classes absent from both truth and
    prediction score 0, as sklearn's `f1_score(average="macro", labels=range(A),
    zero_division=0)`. Returns `[...]` float64."""
    c = confusion.double()
    tp = torch.diagonal(c, dim1=-2, dim2=-1)
    denom = c.sum(dim=-1) + c.sum(dim=-2)  # = 2TP + FP + FN
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1.0), torch.zeros_like(tp))
    return f1.mean(dim=-1)


def sample_actions(logits: Tensor, f1_samples: int, seed: int) -> Tensor:
    """`f1_samples` actions per row by inverse CDF: `logits [M, A]` -> `[K, M]` int64.

    u[k, m] ~ U[0, 1) from a CPU `torch.Generator` seeded `seed`, drawn as one float64
    `[K, M]` tensor (so the draws do not depend on the device); the action is the number of
    classes j < A - 1 whose cumulative float64 softmax probability is below `u · Σp`.
    """
    if f1_samples < 1:
        raise ValueError(f"f1_samples must be >= 1, got {f1_samples}")
    m = logits.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(f1_samples, m, generator=gen, dtype=torch.float64).to(logits.device)
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)  # [M, A]
    u = u * cdf[:, -1]
    inner = cdf[:, :-1]
    return torch.stack([(inner < u[k, :, None]).sum(-1) for k in range(f1_samples)])


def sampled_macro_f1(
    logits: Tensor,
    actions: Tensor,
    mask: Tensor | None = None,
    *,
    f1_samples: int = 10,
    seed: int = 0,
) -> float:
    """Mean over `f1_samples` draws of the macro F1 (over classes `range(A)`) of one action
    sampled per valid step from `softmax(logits)` (`sample_actions`), against `actions`.

    `logits [..., A]`, `actions [...]`, `mask [...]`; rows are taken in their flattened order,
    which is the order of the data's steps. For a run's evaluation at `step` use
    `seed=f1_seed(run_seed, step)`. NaN when there is no valid step.
    """
    if logits.shape[:-1] != actions.shape:
        raise ValueError(
            f"logits [..., A] and actions [...] disagree: {tuple(logits.shape)} vs "
            f"{tuple(actions.shape)}"
        )
    lg = logits.reshape(-1, logits.shape[-1])
    ac = actions.reshape(-1)
    if mask is not None:
        if mask.shape != actions.shape:
            raise ValueError(f"mask must have shape {tuple(actions.shape)}, got {mask.shape}")
        keep = mask.reshape(-1).bool()
        lg, ac = lg[keep], ac[keep]
    if ac.numel() == 0:
        return float("nan")
    a = lg.shape[-1]
    samples = sample_actions(lg, f1_samples, seed)  # [K, M]
    offsets = torch.arange(f1_samples, device=lg.device)[:, None] * (a * a)
    counts = torch.bincount(
        (offsets + ac[None, :].long() * a + samples).reshape(-1), minlength=f1_samples * a * a
    ).reshape(f1_samples, a, a)
    return float(macro_f1_from_confusion(counts).mean())


class SupervisedData(Protocol):
    """What `evaluate` reads of an `EpisodeData` (either package's)."""

    @property
    def obs(self) -> Tensor: ...  # [N, in]

    @property
    def actions(self) -> Tensor: ...  # [N]

    @property
    def episode_lengths(self) -> tuple[int, ...] | None: ...


@dataclass(frozen=True)
class _Steps:
    """A plain `(obs, actions)` pair as `SupervisedData` (independent steps)."""

    obs: Tensor
    actions: Tensor
    episode_lengths: tuple[int, ...] | None = None


def as_supervised_data(data: SupervisedData | tuple[Any, Any]) -> SupervisedData:
    """`data`, or a plain `(obs [N, in], actions [N])` tuple as independent steps."""
    if isinstance(data, tuple):
        if len(data) != 2:
            raise TypeError(f"expected EpisodeData or an (obs, actions) tuple, got {len(data)}")
        obs = torch.as_tensor(data[0]).to(torch.float32)
        return _Steps(obs, torch.as_tensor(data[1]).to(device=obs.device, dtype=torch.long))
    return data


def sequence_rows(
    episode_lengths: Sequence[int], sessions: Sequence[int] | None, unit: str = "episode"
) -> list[Tensor]:
    """Row indices (into the data's flat arrays) of each sequence a recurrent model runs from
    a zero state: one per episode (`unit="episode"`), or the episodes of each session in
    order (`unit="session"`, sessions in order of first appearance; no `sessions` = one)."""
    if unit not in ("episode", "session"):
        raise ValueError(f"unit must be 'episode' or 'session', got {unit!r}")
    starts = list(itertools.accumulate(episode_lengths, initial=0))
    episodes = [torch.arange(starts[i], starts[i + 1]) for i in range(len(episode_lengths))]
    if unit == "episode":
        return episodes
    sess = list(sessions) if sessions is not None else [0] * len(episodes)
    groups: dict[int, list[Tensor]] = {}
    for i, s in enumerate(sess):
        groups.setdefault(int(s), []).append(episodes[i])
    return [torch.cat(g) for g in groups.values()]


@torch.no_grad()
def model_logits(
    model: nn.Module, data: SupervisedData | tuple[Any, Any], unit: str = "episode"
) -> Tensor:
    """Logits `[N, A]` of `model` for every step of `data`, in the data's row order.

    Recurrent models run each sequence (`sequence_rows`) from a zero state. Observations are
    cast to the model's parameter device and dtype.
    """
    data = as_supervised_data(data)
    first = next(iter(model.parameters()))
    dev = first.device
    obs = data.obs.to(device=dev, dtype=first.dtype)
    if not is_recurrent(model):
        return torch.cat([model(chunk) for chunk in obs.split(_EVAL_ROWS)])
    if data.episode_lengths is None:
        raise ValueError(
            "a recurrent model needs episode boundaries: "
            "EpisodeData.from_arrays(obs, actions, episode_lengths)"
        )
    seqs = sequence_rows(data.episode_lengths, getattr(data, "sessions", None), unit)
    out: Tensor | None = None
    per_chunk = max(1, _EVAL_STEPS // max(1, max(len(s) for s in seqs)))
    for c in range(0, len(seqs), per_chunk):
        chunk = seqs[c : c + per_chunk]
        t = max(len(s) for s in chunk)
        index = torch.full((len(chunk), t), -1, dtype=torch.long)
        for k, rows in enumerate(chunk):
            index[k, : len(rows)] = rows
        index = index.to(dev)
        mask = index >= 0
        logits, _ = model(obs[index.clamp(min=0)], mask)
        if out is None:
            out = logits.new_empty(obs.shape[0], logits.shape[-1])
        out[index[mask]] = logits[mask]
    assert out is not None
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: SupervisedData | tuple[Any, Any],
    *,
    f1_samples: int = 10,
    seed: int = 0,
    step: int = 0,
    unit: str = "episode",
) -> dict[str, float]:
    """`{"ce", "accuracy", "f1"}` of `model` on all of `data`: mean cross-entropy (nats),
    argmax accuracy and `sampled_macro_f1(..., f1_samples, seed=f1_seed(seed, step))`.

    The training loops evaluate with this function, the run's `seed` and the row's `step`, so
    calling it on a result's model with `step=result.history[-1]["step"]` reproduces the last
    history row (to float rounding). Recurrent models run each episode (`unit="episode"`) or
    session (`unit="session"`) from a zero state. `data`: an `EpisodeData` of either package
    or a plain `(obs, actions)` tuple.
    """
    data = as_supervised_data(data)
    logits = model_logits(model, data, unit)
    actions = data.actions.to(logits.device)
    if actions.numel() == 0:
        nan = float("nan")
        return {"ce": nan, "accuracy": nan, "f1": nan}
    return {
        "ce": float(F.cross_entropy(logits, actions)),
        "accuracy": float((logits.argmax(-1) == actions).double().mean()),
        "f1": sampled_macro_f1(logits, actions, f1_samples=f1_samples, seed=f1_seed(seed, step)),
    }


def data_signature(data: SupervisedData) -> dict[str, Any]:
    """A cheap content signature of supervised data for checkpoint fingerprints: shape,
    float64 sums of observations and actions (computed on CPU: the same bits on any device),
    episode lengths and sessions."""
    sessions = getattr(data, "sessions", None)
    return {
        "shape": list(data.obs.shape),
        "obs_sum": float(data.obs.detach().cpu().double().sum()),
        "actions_sum": int(data.actions.detach().cpu().sum()),
        "episode_lengths": None if data.episode_lengths is None else list(data.episode_lengths),
        "sessions": None if sessions is None else list(sessions),
    }


# --------------------------------------------------------------------------------------------
# Training-loop vocabulary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What a training callback receives, once per step (hbm-ne: generation; hbm-dl:
    optimizer step), fields documented in docs/interfaces.md.

    `step` is the history row's `step` for this point of the run (hbm-ne: the generation
    index g, whose population has had g updates; hbm-dl: optimizer steps done). `train_loss`
    is the history row's value when `evaluated`, else this step's own training loss (hbm-ne:
    the best member's fitness on the generation's batch; hbm-dl: the minibatch loss).
    `test_*` are None when the step was not evaluated. `samples_seen` counts training samples
    processed so far (a generation over N samples x P members adds N*P; an SGD step adds its
    batch's steps). `elapsed` sums every process's time. `resumed_from` is the step this
    process resumed at (None for a fresh run).
    """

    step: int
    epoch: float | None
    samples_seen: int
    elapsed: float
    train_loss: float
    test_ce: float | None = None
    test_f1: float | None = None
    test_accuracy: float | None = None
    evaluated: bool = False
    resumed_from: int | None = None


Callback = Callable[[Progress], object]


def notify(callbacks: Sequence[Callback], progress: Progress) -> bool:
    """Call every callback with `progress`; True when any returned True (stop the run)."""
    stop = False
    for callback in callbacks:
        if callback(progress) is True:
            stop = True
    return stop


class ResultMapping:
    """Read access by key, so a result reads like the design guide's result dicts
    (`result["fitness_history"]`): `keys()` lists what it holds; `result[key] = value` sets an
    attribute of that name or an entry of `extra`."""

    _mapping_keys: ClassVar[tuple[str, ...]] = ()
    extra: dict[str, Any]

    def keys(self) -> list[str]:
        return [*self._mapping_keys, *(k for k in self.extra if k not in self._mapping_keys)]

    def __getitem__(self, key: str) -> Any:
        if key in self._mapping_keys:
            return getattr(self, key)
        if key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._mapping_keys:
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._mapping_keys or key in self.extra

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


# --------------------------------------------------------------------------------------------
# Files and checkpoints
# --------------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another program, or of another run
    (its fingerprint differs). The message names the file and the differing field(s); the file
    is never modified."""


def _temp_files_of(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically: `write(f)` into a temp file next to `path`, fsync, rename.

    A crash leaves the old file or the new one, never half of one. The file gets the
    permissions the user's umask allows (0o666 & ~umask; parent directories 0o777 & ~umask).
    Temp files of earlier writes to `path` that were killed mid-write (`.{name}.*.tmp`) are
    removed first: one path has one writer.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    for orphan in _temp_files_of(p):
        with contextlib.suppress(FileNotFoundError):
            orphan.unlink()
    tmp = p.parent / f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where directories fsync
        dir_fd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save_checkpoint_file(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """`torch.save(payload)` to `path` by `atomic_write`."""
    atomic_write(path, lambda f: torch.save(dict(payload), f))


def load_checkpoint_file(
    path: str | os.PathLike[str], *, format_name: str, version: int, required: Sequence[str] = ()
) -> dict[str, Any]:
    """Read a checkpoint (tensors on CPU, `weights_only`: no pickled code) and check its
    `format` / `version` tags and `required` fields; anything else raises `CheckpointError`
    naming the file."""
    p = Path(path)
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"{p}: cannot read checkpoint ({type(exc).__name__}: {exc}); the file is corrupt "
            "or not a torch file. It was left untouched: pass resume=False to start afresh "
            "(it is replaced when the first new checkpoint is written), or move it away."
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != format_name:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"{p}: field 'format' is {found!r}, expected {format_name!r} "
            "(not a checkpoint of this program; it was left untouched)"
        )
    if blob.get("version") != version:
        raise CheckpointError(
            f"{p}: field 'version' is {blob.get('version')!r}, expected {version} (written by "
            "another version of this program; it was left untouched: pass resume=False to "
            "start afresh)"
        )
    missing = [k for k in required if k not in blob]
    if missing:
        raise CheckpointError(f"{p}: missing fields {missing} (truncated or foreign checkpoint)")
    return cast(dict[str, Any], blob)


def now_iso() -> str:
    """The current local time, ISO 8601 with its UTC offset (seconds)."""
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def jsonable(value: Mapping[str, Any] | None, what: str = "fingerprint") -> dict[str, Any]:
    """`value` as plain JSON types (tuples become lists, paths strings), or TypeError."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        out = json.loads(json.dumps(dict(value), sort_keys=True, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-able: {exc}") from exc
    return cast(dict[str, Any], out)


def build_fingerprint(
    caller: Mapping[str, Any] | None, package: str, own: Mapping[str, Any]
) -> dict[str, Any]:
    """The fingerprint a checkpoint stores: the caller's mapping, plus the library's own
    settings under the reserved key `package` ("hbm_ne" / "hbm_dl")."""
    fingerprint = jsonable(caller)
    if package in fingerprint:
        raise ValueError(f"fingerprint key {package!r} is reserved for {package}'s own settings")
    fingerprint[package] = jsonable(own, f"{package} settings")
    return fingerprint


_MISSING = object()


def fingerprint_differences(
    stored: Any, now: Any, prefix: str = "fingerprint"
) -> list[tuple[str, Any, Any]]:
    """(dotted path, stored value, current value) of every leaf that differs."""
    if isinstance(stored, Mapping) and isinstance(now, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(stored) | set(now), key=str):
            out += fingerprint_differences(
                stored.get(key, _MISSING), now.get(key, _MISSING), f"{prefix}.{key}"
            )
        return out
    if stored is _MISSING or now is _MISSING:
        return [] if stored is now else [(prefix, stored, now)]
    same = stored == now or json.dumps(stored, sort_keys=True) == json.dumps(now, sort_keys=True)
    return [] if same else [(prefix, stored, now)]  # (json: NaN equals NaN)


def _show(value: Any) -> str:
    if value is _MISSING:
        return "absent"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_fingerprint(path: str | os.PathLike[str], stored: Any, now: Mapping[str, Any]) -> None:
    """Raise `CheckpointError` naming every differing field when the checkpoint at `path`
    (fingerprint `stored`) belongs to another run than `now`."""
    differences = fingerprint_differences(stored if stored is not None else {}, now)
    if not differences:
        return
    shown = "; ".join(
        f"{name} is {_show(old)} in the checkpoint, {_show(new)} now"
        for name, old, new in differences
    )
    raise CheckpointError(
        f"{path}: the checkpoint belongs to another run: {shown}. It was left untouched: pass "
        "resume=False to start afresh (the file is replaced when the first new checkpoint is "
        "written), or use another checkpoint_path."
    )


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about its run, without resuming it: the step it holds (hbm-ne:
    generations done; hbm-dl: optimizer steps done), when it was written (ISO time), the run's
    time so far (seconds, every process), and its fingerprint."""

    path: Path
    format: str
    step: int
    written_at: str | None
    elapsed: float
    fingerprint: dict[str, Any]


def read_checkpoint_info(
    path: str | os.PathLike[str], *, format_name: str, version: int
) -> CheckpointInfo:
    blob = load_checkpoint_file(
        path, format_name=format_name, version=version, required=("step", "elapsed")
    )
    return CheckpointInfo(
        Path(path),
        format_name,
        int(blob["step"]),
        blob.get("written_at"),
        float(blob["elapsed"]),
        dict(blob.get("fingerprint") or {}),
    )
