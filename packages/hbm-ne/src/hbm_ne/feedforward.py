"""`BatchedFeedforward`: a population of MLPs whose forward pass runs every member at once, in
chunks of members (side by side on worker threads on CPU) and cache-sized tiles
(`population.CPU_TILE_BYTES`, read at call time so that it can be tuned), by the TorchScript
kernels of `_kernels`; batches of a few samples per member take a numpy path."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from hbm_ne import population as _population
from hbm_ne._kernels import ChunkOperands, kernel
from hbm_ne._parallel import parallel_map
from hbm_ne._shared import DEFAULT_INIT, InitName, check_init, fill_init_
from hbm_ne.modules import FeedforwardMLP
from hbm_ne.population import (
    SMALL_BATCH,
    _init_cpu_generator,
    _layout,
    _NetworkPopulation,
    _numpy_ok,
    balanced_chunk,
    chunk_bytes,
)

_R = TypeVar("_R")


class _Prepared(NamedTuple):
    """What one forward call of a feedforward population computes once for all its chunks."""

    x: Tensor  # [N, in] shared, or [P, N, in] per member
    chunk: int  # members per chunk
    x_aug_t: Tensor | None  # shared inputs only: [in+1, N], a ones row last
    weights: list[Tensor]  # [P, out, in] views, per layer
    biases: list[Tensor]  # [P, out] views, per layer
    margin: bool  # two outputs folded into one, l_1 - l_0

    def folded_layers(self) -> list[tuple[Tensor, Tensor]]:
        """(weight, bias) per layer, the margin unit in place of the two outputs where
        `margin` (the chunk kernel folds its own)."""
        layers = list(zip(self.weights, self.biases, strict=True))
        if not self.margin:
            return layers
        w, b = layers[-1]
        return [*layers[:-1], (w[:, 1:2] - w[:, 0:1], b[:, 1:2] - b[:, 0:1])]


class BatchedFeedforward(_NetworkPopulation):
    """A population of MLPs `in → hidden_sizes → out` (tanh hidden, linear output).

    Parameter row layout, in order: for each hidden layer i `hidden.{i}.weight [H_i, H_{i-1}]`,
    `hidden.{i}.bias [H_i]`, then `output.weight [out, H_L]`, `output.bias [out]` (row-major).
    Initial weights and biases follow `init` (docs/interfaces.md, the same rule as the single
    networks): "normal" N(0, 1/fan_in) (default), "uniform" U(-1/√fan_in, 1/√fan_in).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        population_size: int,
        hidden_sizes: Sequence[int] = (50,),
        *,
        init: InitName = DEFAULT_INIT,
        sigma_init: float = 1e-3,
        adaptive: bool = True,
        tau: float = 1e-2,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, v in (("input_size", input_size), ("output_size", output_size)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if population_size < 1:
            raise ValueError(f"population_size must be >= 1, got {population_size}")
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        sizes = (self.input_size, *self.hidden_sizes)
        entries: list[tuple[str, tuple[int, ...]]] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            entries += [(f"hidden.{i}.weight", (b, a)), (f"hidden.{i}.bias", (b,))]
        entries += [("output.weight", (self.output_size, sizes[-1]))]
        entries += [("output.bias", (self.output_size,))]
        self.slots, dim = _layout(entries)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        self.init = check_init(init)
        gen = _init_cpu_generator(generator)
        params = torch.empty(population_size, dim, dtype=torch.float64)
        for s in self.slots:
            fan_in = s.shape[-1] if s.name.endswith("weight") else sizes[_layer_of(s.name, sizes)]
            fill_init_(params[:, s.offset : s.offset + s.size], fan_in, init, gen)
        super().__init__(
            params.to(device=dev, dtype=dtype), sigma_init=sigma_init, adaptive=adaptive, tau=tau
        )

    def _new_module(self) -> nn.Module:
        return FeedforwardMLP(self.input_size, self.hidden_sizes, self.output_size)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "hidden_sizes": list(self.hidden_sizes)}

    def chunk_size(self, n: int) -> int:
        """Members per chunk so one hidden activation `[c, n, H]` stays within the budget."""
        widest = max((*self.hidden_sizes, self.output_size))
        per_member = max(1, n * widest * self.params.element_size())
        return balanced_chunk(self.population_size, chunk_bytes(self.device) // per_member)

    @torch.no_grad()
    def iter_logits(
        self, x: Tensor, chunk: int | None = None, *, margin: bool = False
    ) -> Iterator[tuple[int, int, Tensor]]:
        """Yield `(p0, p1, logits [p1-p0, N, out])` chunk by chunk over the population.

        `x` is `[N, in]` (shared by all members) or `[P, N, in]`. The yielded logits live in a
        workspace that the next chunk overwrites (a transposed view of `[c, out, N]`): consume
        them before advancing. `margin=True` (two outputs only) yields `l_1 - l_0 [c, N]`
        instead, computed as one output unit: all that a two-class cross-entropy needs, at
        half the output layer's cost.
        """
        prep = self._prepare(x, chunk, margin)
        c = prep.chunk
        if prep.x.dim() == 3 and self._small_batch(prep.x):
            for p0, p1, out in self._small_batch_logits(prep.x, prep.folded_layers(), c):
                yield p0, p1, out[..., 0] if margin else out
            return
        for p0 in range(0, self.population_size, c):
            p1 = min(p0 + c, self.population_size)
            out = self._chunk_logits(prep, p0, p1)
            yield p0, p1, out[..., 0] if margin else out

    @torch.no_grad()
    def map_logits(
        self,
        x: Tensor,
        fn: Callable[[int, int, Tensor], _R],
        chunk: int | None = None,
        *,
        margin: bool = False,
    ) -> list[_R]:
        """`[fn(p0, p1, logits) for each chunk]`, like `iter_logits`, but on CPU the chunks run
        side by side on `torch.get_num_threads()` worker threads (`parallel_map`).

        The logits live in the calling worker's workspace: `fn` may overwrite them, and must
        return what it keeps. The chunks, hence the results, are the same for any thread count.
        """
        prep = self._prepare(x, chunk, margin)
        c = prep.chunk
        if prep.x.dim() == 3 and self._small_batch(prep.x):
            return [
                fn(p0, p1, out[..., 0] if margin else out)
                for p0, p1, out in self._small_batch_logits(prep.x, prep.folded_layers(), c)
            ]

        def run(p0: int) -> _R:
            p1 = min(p0 + c, self.population_size)
            out = self._chunk_logits(prep, p0, p1)
            return fn(p0, p1, out[..., 0] if margin else out)

        return parallel_map(run, range(0, self.population_size, c), self.device)

    def _prepare(self, x: Tensor, chunk: int | None, margin: bool) -> _Prepared:
        """Checked input, chunk size and, for shared inputs, `[in+1, N]` inputs with a ones row
        that carries the first layer's bias (`_kernels.mlp_chunk_logits`)."""
        x = self._check_input(x)
        if margin and self.output_size != 2:
            raise ValueError(f"margin needs output_size = 2, got {self.output_size}")
        x_aug_t = None
        if x.dim() == 2:
            x_aug_t = torch.cat([x.T, x.new_ones(1, x.shape[0])])
        c = chunk or self.chunk_size(x.shape[-2])
        layers = self._layers()
        weights, biases = [w for w, _ in layers], [b for _, b in layers]
        return _Prepared(x, c, x_aug_t, weights, biases, margin)

    def _chunk_logits(self, prep: _Prepared, p0: int, p1: int) -> Tensor:
        """Logits `[p1-p0, N, out]` of members p0:p1, in the calling thread's workspace.

        Activations are computed transposed, `[c, H, N]`: every layer is then `W [c, H', H] @
        a [c, H, N]` (2× faster than `a @ W^T` for these skinny shapes), and with shared inputs
        the first layer's bias rides in the product on a ones row of `x_aug_t` (one pass less
        over the largest activation). On CPU the hidden activations go tile by tile
        (`tile_shape`), so that each layer reads the previous one from the core's own cache
        instead of the shared one or DRAM; the tile loop is a TorchScript kernel
        (`_kernels.mlp_chunk_logits`), which runs without the GIL.
        """
        args, logits = self._chunk_args(prep, p0, p1)
        kernel("mlp_chunk_logits", self.device)(*args, None)
        return logits.transpose(1, 2)

    def _chunk_args(self, prep: _Prepared, p0: int, p1: int) -> tuple[tuple[Any, ...], Tensor]:
        """The arguments of `_kernels.mlp_chunk_logits` for members p0:p1 but the targets, and
        the logits `[c, out, N]` among them; logits and the tiles' hidden layers live in the
        calling thread's workspace."""
        n = prep.x.shape[-2]
        cc = p1 - p0
        thread = threading.get_ident()
        width = 1 if prep.margin else self.output_size
        logits = self._buffer(("ff_out", thread), (cc, width, n))
        tile_c, tile_n = self.tile_shape(cc, n)
        work = [  # one workspace per hidden layer, for a full tile
            self._buffer(("ff", li, thread), (tile_c, h, tile_n))
            for li, h in enumerate(self.hidden_sizes)
        ]
        x_member = None if prep.x_aug_t is not None else prep.x
        operands = ChunkOperands(prep.weights, prep.biases, prep.x_aug_t, x_member, work, logits)
        return (operands, p0, tile_c, tile_n, prep.margin), logits

    @torch.no_grad()
    def cross_entropy_sums(self, x: Tensor, targets: Tensor, chunk: int | None = None) -> Tensor:
        """Summed cross-entropy `[P]` (float64) of every member on inputs `x [N, in]` shared by
        all, against class indices `targets [N]` in `[0, output_size)` (unchecked: see
        `fitness.cross_entropy`).

        `map_logits` with the loss fused into each chunk's kernel call
        (`_kernels.mlp_chunk_logits`); two outputs go through the margin `l_1 - l_0`, half the
        output layer. Same chunks, hence same results, for any thread count.
        """
        if x.dim() != 2:
            raise ValueError(f"x must be [N, {self.input_size}], got {tuple(x.shape)}")
        prep = self._prepare(x, chunk, self.output_size == 2)
        code = kernel("encode_targets", self.device)(
            targets.to(self.device), self.output_size, prep.margin, self.dtype
        )
        fused = kernel("mlp_chunk_logits", self.device)
        c = prep.chunk

        def run(p0: int) -> Tensor:
            args, _ = self._chunk_args(prep, p0, min(p0 + c, self.population_size))
            sums: Tensor = fused(*args, code)  # type: ignore[assignment]
            return sums

        return torch.cat(parallel_map(run, range(0, self.population_size, c), self.device))

    def tile_shape(self, members: int, n: int) -> tuple[int, int]:
        """(members, samples) per tile of hidden activations: within `CPU_TILE_BYTES`, whole
        sample rows first (fewer, longer kernels), balanced so the last tile is not a sliver."""
        if self.device.type != "cpu":
            return members, n
        widest = max((*self.hidden_sizes, self.output_size)) * self.params.element_size()
        per_member = max(1, n * widest)
        if per_member <= _population.CPU_TILE_BYTES:
            return balanced_chunk(members, _population.CPU_TILE_BYTES // per_member), n
        return 1, balanced_chunk(n, max(1, _population.CPU_TILE_BYTES // widest))

    def _check_input(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.input_size or x.dim() not in (2, 3):
            raise ValueError(
                f"x must be [N, {self.input_size}] or [P, N, {self.input_size}], "
                f"got {tuple(x.shape)}"
            )
        if x.dim() == 3 and x.shape[0] != self.population_size:
            raise ValueError(f"x has {x.shape[0]} members, population has {self.population_size}")
        return x.to(device=self.device, dtype=self.dtype)

    def _small_batch(self, x: Tensor) -> bool:
        return (
            x.dim() == 3 and x.shape[1] <= SMALL_BATCH and _numpy_ok(x) and _numpy_ok(self.params)
        )

    def _layers(self) -> list[tuple[Tensor, Tensor]]:
        """(weight `[P, out, in]`, bias `[P, out]`) views of each layer, cached like `views`."""
        cached = self._layers_cache
        if cached is not None and cached[0] is self.params:
            return cached[1]
        views = self.views()
        layers = [
            (views[f"hidden.{i}.weight"], views[f"hidden.{i}.bias"])
            for i in range(len(self.hidden_sizes))
        ]
        layers.append((views["output.weight"], views["output.bias"]))
        if self._views_cache is not None and self._views_cache[0] is self.params:
            self._layers_cache = (self.params, layers)
        return layers

    def _small_batch_logits(
        self,
        x: Tensor,
        layers: list[tuple[Tensor, Tensor]],
        c: int,
        result: Tensor | None = None,
    ) -> Iterator[tuple[int, int, Tensor]]:
        """Per-member inputs `x [P, n, in]` with small n (one env step of every member): numpy's
        batched matmul runs P tiny products in one call, where torch's `bmm` pays several
        microseconds per member (most of a population rollout's step time otherwise). The
        logits go to `result [P, n, out]` when given, else to a workspace."""
        xn = x.detach().numpy()
        n = x.shape[1]
        last = len(layers) - 1
        for p0 in range(0, self.population_size, c):
            p1 = min(p0 + c, self.population_size)
            a = xn[p0:p1]
            out = x
            for li, (w, b) in enumerate(layers):
                if li == last and result is not None:
                    out = result[p0:p1]
                else:
                    out = self._buffer(
                        ("ff_small", li, threading.get_ident()), (p1 - p0, n, w.shape[1])
                    )
                o = out.numpy()
                np.matmul(a, w[p0:p1].detach().numpy().transpose(0, 2, 1), out=o)
                o += b[p0:p1].detach().numpy()[:, None, :]
                if li < len(layers) - 1:
                    np.tanh(o, out=o)
                a = o
            yield p0, p1, out

    def forward(self, x: Tensor) -> Tensor:
        """`x [N, in]` or `[P, N, in]` -> logits `[P, N, out]` (a fresh tensor)."""
        n = x.shape[-2]
        out = torch.empty(
            self.population_size, n, self.output_size, device=self.device, dtype=self.dtype
        )
        x = self._check_input(x)
        if self._small_batch(x):
            for _ in self._small_batch_logits(x, self._layers(), self.population_size, out):
                pass
            return out
        self.map_logits(x, lambda p0, p1, logits: out[p0:p1].copy_(logits))
        return out

    __call__ = forward


def _layer_of(name: str, sizes: tuple[int, ...]) -> int:
    """Index into `sizes` of the fan-in of the layer that owns bias `name`."""
    if name.startswith("output"):
        return len(sizes) - 1
    return int(name.split(".")[1])
