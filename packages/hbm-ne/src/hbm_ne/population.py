"""Populations: every member's parameters are one row of a `[P, D]` tensor; networks are views.

Keeping the whole population in one tensor lets every algorithm (GA, ES, CMA-ES) work with every
network kind, and moves a population between devices in one call. The forward passes are the
engineered kernels measured in `bench/bench_ne.py`: preallocated workspaces, activations laid
out `[P, H, N]` so that every layer multiplies the stored `[out, in]` weights from the left,
populations processed in chunks (side by side on worker threads on CPU) and each chunk in
cache-sized tiles by a TorchScript kernel (`_kernels`).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from hbm_ne._kernels import ChunkOperands, kernel
from hbm_ne._shared import DEFAULT_INIT, InitName, check_init, fill_init_
from hbm_ne.modules import FeedforwardMLP, RecurrentMLP

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Bytes a hidden-activation chunk may use. On CPU: about two dozen members at N = 3200
#: (H = 50), so that matmul, tanh and the next layer find the activations in cache while the
#: per-chunk op overheads stay small. Population cross-entropy, N = 3200, CartPole and
#: LunarLander shapes, same process: 16 MiB (with balanced chunks) ran 1.02-1.10x faster than
#: 8 MiB at P = 50/256/1024 on one thread, 0.88-1.69x (median 1.2x) on two (identical
#: results); 2 MiB ran 0.6-0.8x and 64 MiB or more 0.6-0.9x of 8 MiB. On accelerators: large.
CPU_CHUNK_BYTES = 16 * 2**20
GPU_CHUNK_BYTES = 512 * 2**20
#: Bytes of one tile of hidden activations inside a chunk (CPU): about one member at N = 3200,
#: H = 50, so that a tile stays in a core's L2 cache from one layer to the next.
CPU_TILE_BYTES = 640 * 2**10
#: A recurrent hidden sequence's chunk: its step loop is overhead-bound, so bigger chunks.
CPU_SEQUENCE_CHUNK_BYTES = 64 * 2**20
GPU_SEQUENCE_CHUNK_BYTES = 4 * 2**30


#: Arrays at least this large are split over the worker threads for numpy's tanh.
PARALLEL_MIN_ELEMENTS = 1 << 18
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_worker = threading.local()


def _forget_pools_in_child() -> None:
    """A forked child has none of the parent's threads: its pools would queue work forever."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_in_child)


def _one_intraop_thread() -> None:
    torch.get_num_threads()  # torch sets a thread's count lazily from the process default: now
    torch.set_num_threads(1)
    _worker.active = True


def worker_pool(threads: int) -> ThreadPoolExecutor:
    """`threads` persistent worker threads whose torch ops each run on one intra-op thread.

    Chunks of a population run side by side on them and on the calling thread
    (`parallel_map`). Splitting every kernel over torch's OpenMP threads instead scales poorly
    here: its workers spin between kernels and starve what runs in between.
    """
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            previous = torch.get_num_threads()
            pool = ThreadPoolExecutor(threads, "hbm_ne_worker", initializer=_one_intraop_thread)
            started = threading.Barrier(threads)
            list(pool.map(lambda _: started.wait(timeout=60), range(threads)))
            # `set_num_threads(1)` in a worker also set the process default: restore it
            torch.set_num_threads(previous)
            _pools[threads] = pool
    return pool


@contextmanager
def _one_thread_here() -> Iterator[None]:
    """The calling thread runs torch on one intra-op thread (and nested `parallel_map`
    inline) until the block ends; its own setting comes back after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    _worker.active = True
    try:
        yield
    finally:
        _worker.active = False
        torch.set_num_threads(previous)


def parallel_map(fn: Callable[[_T], _R], items: Sequence[_T], device: torch.device) -> list[_R]:
    """`[fn(i) for i in items]`, on CPU spread over `torch.get_num_threads()` threads: the
    calling thread and workers from `worker_pool`, each taking the next item as it is free.

    Results come back in order. Every item runs on one intra-op thread whatever the caller's
    setting, so results do not depend on the thread count as long as the items do not (fixed
    chunks, per-chunk sums). Calls from inside a worker run inline.
    """
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    if threads <= 1 or getattr(_worker, "active", False):
        return [fn(i) for i in items]
    results: list[_R] = [None] * len(items)  # type: ignore[list-item]
    claim = itertools.count()  # `next` on it is atomic under the GIL
    failed = threading.Event()  # an error (or Ctrl-C) anywhere: nobody claims another item

    def drain() -> None:
        try:
            while not failed.is_set() and (i := next(claim)) < len(items):
                results[i] = fn(items[i])
        except BaseException:
            failed.set()
            raise

    pool = worker_pool(threads - 1)
    futures = [pool.submit(drain) for _ in range(min(threads, len(items)) - 1)]
    try:
        with _one_thread_here():
            drain()
    finally:
        wait(futures)
    for f in futures:
        f.result()  # a worker's exception
    return results


def _tanh_inplace(a: np.ndarray) -> None:
    np.tanh(a, out=a)


def tanh_(x: Tensor) -> Tensor:
    """In-place tanh for the main-thread kernels (recurrent steps); on CPU numpy's SIMD tanh,
    else `Tensor.tanh_`.

    numpy's tanh matches torch's (≥ 2.15) on one thread, and several times older torch's;
    large arrays are split over `parallel_map`'s threads (numpy releases the GIL) rather than
    torch's OpenMP workers, whose spin-waits would starve the numpy passes around them.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous():
        a = x.detach().numpy().reshape(-1)
        threads = torch.get_num_threads()
        if threads > 1 and a.size >= PARALLEL_MIN_ELEMENTS:
            parallel_map(_tanh_inplace, np.array_split(a, threads), x.device)
        else:
            np.tanh(a, out=a)
        return x
    return x.tanh_()


#: Per-member batches up to this many samples (environment steps) take the numpy path.
SMALL_BATCH = 16


def _numpy_ok(t: Tensor) -> bool:
    """Whether `t` can be handed to numpy zero-copy (CPU, float32/64, no autograd)."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def chunk_bytes(device: torch.device) -> int:
    """Default budget of one activation chunk on `device`."""
    return CPU_CHUNK_BYTES if device.type == "cpu" else GPU_CHUNK_BYTES


def balanced_chunk(population_size: int, max_chunk: int) -> int:
    """Members per chunk: the smallest size that needs no more chunks than `max_chunk` does, so
    chunks come out near-equal (50 members at most 26 per chunk run as 25 + 25, not 26 + 24)."""
    max_chunk = max(1, min(population_size, max_chunk))
    chunks = -(-population_size // max_chunk)
    return -(-population_size // chunks)


@dataclass(frozen=True)
class ParamSlot:
    """Where one named tensor of a member lives in its parameter row."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _layout(entries: Sequence[tuple[str, tuple[int, ...]]]) -> tuple[tuple[ParamSlot, ...], int]:
    slots, offset = [], 0
    for name, shape in entries:
        slots.append(ParamSlot(name, shape, offset))
        offset += math.prod(shape)
    return tuple(slots), offset


class Population:
    """P parameter vectors `params [P, D]`, with per-parameter `sigma [P, D]` when adaptive.

    Usable on its own as a population of raw vectors (e.g. to run CMA-ES on a test function);
    the network populations below add a layout and a forward pass.

    Mutation: fixed, `θ += σ_init·ε`; self-adaptive, `σ ← σ·(1 + τ·ξ)` then `θ += σ·ε`
    (σ mutated first so the step uses the new σ), with ξ, ε ~ N(0, 1) from an explicit generator.
    """

    def __init__(
        self,
        params: Tensor,
        *,
        sigma_init: float = 1e-3,
        adaptive: bool = True,
        tau: float = 1e-2,
    ) -> None:
        if params.dim() != 2:
            raise ValueError(f"params must be [P, D], got shape {tuple(params.shape)}")
        if sigma_init <= 0:
            raise ValueError(f"sigma_init must be > 0, got {sigma_init}")
        self.params = params
        self.sigma_init = float(sigma_init)
        self.adaptive = bool(adaptive)
        self.tau = float(tau)
        self.sigma: Tensor | None = torch.full_like(params, sigma_init) if adaptive else None
        #: State carried across generations (recurrent "generation" mode), `[P, ...]`; follows
        #: each member's lineage through `select_`.
        self.carried_state: Tensor | None = None
        self._noise: Tensor | None = None

    # -- basic properties -------------------------------------------------------------------
    @property
    def population_size(self) -> int:
        return int(self.params.shape[0])

    @property
    def num_params(self) -> int:
        return int(self.params.shape[1])

    @property
    def device(self) -> torch.device:
        return self.params.device

    @property
    def dtype(self) -> torch.dtype:
        return self.params.dtype

    def __len__(self) -> int:
        return self.population_size

    # -- evolution primitives ----------------------------------------------------------------
    def mutate_(self, generator: torch.Generator, start: int = 0) -> None:
        """Mutate members `start:` in place (members before `start` are protected elites)."""
        theta = self.params[start:]
        if theta.numel() == 0:
            return
        if self._noise is None or self._noise.shape != self.params.shape:
            self._noise = torch.empty_like(self.params)
        noise = self._noise[start:]
        noise.normal_(generator=generator)
        if self.sigma is not None:
            s = self.sigma[start:]
            s.addcmul_(s, noise, value=self.tau)
            noise.normal_(generator=generator)
            theta.addcmul_(s, noise)
        else:
            theta.add_(noise, alpha=self.sigma_init)

    def select_(self, indices: Tensor) -> None:
        """Member i becomes a copy of member `indices[i]` (params, sigma and carried state)."""
        idx = indices.to(device=self.device, dtype=torch.long)
        if idx.shape != (self.population_size,):
            raise ValueError(f"indices must be [{self.population_size}], got {tuple(idx.shape)}")
        self.params.copy_(self.params.index_select(0, idx))
        if self.sigma is not None:
            self.sigma.copy_(self.sigma.index_select(0, idx))
        if self.carried_state is not None:
            self.carried_state = self.carried_state.index_select(0, idx)
        self._select_extra(idx)

    def broadcast_(self, params: Tensor, sigma: Tensor | None = None) -> None:
        """Every member becomes `params [D]` (and `sigma [D]`); lineage is lost, state reset."""
        self.params.copy_(params.expand_as(self.params))
        if self.sigma is not None and sigma is not None:
            self.sigma.copy_(sigma.expand_as(self.sigma))
        self.carried_state = None

    def _select_extra(self, idx: Tensor) -> None:
        """Subclasses reindex per-member non-evolved state (e.g. per-member reservoirs)."""

    # -- checkpoints -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """What identifies this population's architecture (checked when loading a state)."""
        return {
            "class": type(self).__name__,
            "population_size": self.population_size,
            "num_params": self.num_params,
            "adaptive": self.adaptive,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config(),
            "params": self.params.clone(),
            "sigma": None if self.sigma is None else self.sigma.clone(),
            "carried_state": self.carried_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("config") != self.config():
            raise ValueError(
                f"population state is for {state.get('config')}, this population is {self.config()}"
            )
        self.params.copy_(state["params"])
        if self.sigma is not None:
            self.sigma.copy_(state["sigma"])
        cs = state.get("carried_state")
        self.carried_state = None if cs is None else cs.to(self.device)


def _init_cpu_generator(generator: torch.Generator | None) -> torch.Generator:
    """Initial values are drawn on CPU so that a seed gives the same network on every device."""
    if generator is not None and generator.device.type == "cpu":
        return generator
    seed = 0 if generator is None else int(generator.initial_seed())
    return torch.Generator().manual_seed(seed)


class _NetworkPopulation(Population):
    """Shared machinery of the network populations: layout, views, workspaces, export."""

    slots: tuple[ParamSlot, ...]
    input_size: int
    output_size: int

    def __init__(self, params: Tensor, *, sigma_init: float, adaptive: bool, tau: float) -> None:
        super().__init__(params, sigma_init=sigma_init, adaptive=adaptive, tau=tau)
        # key -> (buffer, views of it by shape)
        self._workspace: dict[tuple[Any, ...], tuple[Tensor, dict[tuple[int, ...], Tensor]]] = {}
        self._views_cache: tuple[Tensor, dict[str, Tensor]] | None = None
        self._layers_cache: tuple[Tensor, list[tuple[Tensor, Tensor]]] | None = None

    def views(self, params: Tensor | None = None) -> dict[str, Tensor]:
        """Named views `[P, *shape]` into `params` (default: the population's own)."""
        if params is None:
            cached = self._views_cache
            if cached is not None and cached[0] is self.params:
                return dict(cached[1])
        p = self.params if params is None else params
        n = p.shape[0]
        views = {
            s.name: p[:, s.offset : s.offset + s.size].view(n, *s.shape)
            if p.stride(1) == 1
            else p[:, s.offset : s.offset + s.size].reshape(n, *s.shape)
            for s in self.slots
        }
        if params is None and p.stride(1) == 1:
            # views stay valid while `params` is updated in place (mutation, selection);
            # slicing them anew costs more than a small forward
            self._views_cache = (p, dict(views))
        return views

    def _buffer(self, key: tuple[Any, ...], shape: tuple[int, ...]) -> Tensor:
        """A reusable workspace tensor of at least `shape` (fresh large tensors page-fault)."""
        entry = self._workspace.get(key)
        if entry is not None and entry[0].device == self.device:
            view = entry[1].get(shape)  # per-step callers (rollouts) reuse the same shapes
            if view is not None:
                return view
        need = math.prod(shape)
        if entry is None or entry[0].numel() < need or entry[0].device != self.device:
            entry = (torch.empty(need, device=self.device, dtype=self.dtype), {})
            self._workspace[key] = entry
        view = entry[0][:need].view(shape)
        if len(entry[1]) >= 64:  # varying shapes (last chunks, minibatches): stay bounded
            entry[1].clear()
        entry[1][shape] = view
        return view

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        """Member `i` as a state_dict in the shared hbm-ne / hbm-dl layout."""
        if not -self.population_size <= i < self.population_size:
            raise IndexError(f"member {i} out of range for population of {self.population_size}")
        return {k: v[i].detach().clone() for k, v in self.views().items()}

    def _new_module(self) -> nn.Module:
        raise NotImplementedError

    def export(self, i: int) -> nn.Module:
        """Member `i` as a plain `nn.Module` (layout in docs/interfaces.md), on this device."""
        return self._module_from(self.member_state_dict(i))

    def export_params(self, row: Tensor, like: int = 0) -> nn.Module:
        """A parameter row `[D]` (e.g. a saved best member or a search mean) as a module.

        Non-evolved state (a per-member reservoir) is taken from member `like`.
        """
        if row.shape != (self.num_params,):
            raise ValueError(f"row must be [{self.num_params}], got {tuple(row.shape)}")
        sd = self.member_state_dict(like)
        sd.update({k: v[0].clone() for k, v in self.views(row[None].to(self.params)).items()})
        return self._module_from(sd)

    def _module_from(self, state: dict[str, Tensor]) -> nn.Module:
        module = self._new_module().to(device=self.device, dtype=self.dtype)
        module.load_state_dict(state)
        return module.eval()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "input_size": self.input_size, "output_size": self.output_size}


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
        if per_member <= CPU_TILE_BYTES:
            return balanced_chunk(members, CPU_TILE_BYTES // per_member), n
        return 1, balanced_chunk(n, max(1, CPU_TILE_BYTES // widest))

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
