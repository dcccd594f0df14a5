"""Populations: every member's parameters are one row of a `[P, D]` tensor; networks are views.

Keeping the whole population in one tensor lets every algorithm (GA, ES, CMA-ES) work with every
network kind, and moves a population between devices in one call. This module holds that
storage (`Population`: selection, mutation, state) and what the network kinds share
(`_NetworkPopulation`: layout, views, workspaces, export), with the memory budgets of their
kernels. The network kinds live in `hbm_ne.feedforward` (`BatchedFeedforward`) and
`hbm_ne.recurrent` (`BatchedRecurrent`), the worker threads in `hbm_ne._parallel`; their names
are importable from here too. The forward passes are the engineered kernels measured in
`bench/bench_ne.py`: preallocated workspaces, activations laid out `[P, H, N]` so that every
layer multiplies the stored `[out, in]` weights from the left, populations processed in chunks
(side by side on worker threads on CPU) and each chunk in cache-sized tiles by a TorchScript
kernel (`_kernels`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hbm_ne._parallel import PARALLEL_MIN_ELEMENTS, parallel_map, tanh_, worker_pool

logger = logging.getLogger(__name__)

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


# The network kinds, importable from here as before (imported last: they build on the above).
from hbm_ne.feedforward import BatchedFeedforward  # noqa: E402
from hbm_ne.recurrent import BatchedRecurrent  # noqa: E402

__all__ = [
    "CPU_CHUNK_BYTES",
    "CPU_SEQUENCE_CHUNK_BYTES",
    "CPU_TILE_BYTES",
    "GPU_CHUNK_BYTES",
    "GPU_SEQUENCE_CHUNK_BYTES",
    "PARALLEL_MIN_ELEMENTS",
    "SMALL_BATCH",
    "BatchedFeedforward",
    "BatchedRecurrent",
    "ParamSlot",
    "Population",
    "balanced_chunk",
    "chunk_bytes",
    "parallel_map",
    "tanh_",
    "worker_pool",
]
