"""Evolving-topology networks (the lab's "dynamic networks", inventory §2.7), rebuilt without
its bugs, evolved by GA only.

A member is a graph: one input node per observation feature, one output node per action, and
hidden nodes that mutation grows and prunes. Every non-input node has exactly three inputs
(input, output or hidden nodes, itself included: cycles and self-loops are allowed) with
weights drawn N(0, 1) when the edge is made and never trained. Each time step writes the
observation into the input nodes (z-scored by each input node's own running statistics), then
runs `passes` synchronous passes: every non-input node takes the weighted sum of its three
inputs' values from the previous pass, applies tanh (or nothing: `nonlinearity="identity"`, as
the lab's code did), and standardises the result with its own running (Welford) mean and
variance, which the samples update as they flow. The output nodes' z-scores are the logits.
Node values are the recurrent state: carried across the steps of an episode, zero at each
episode's start.

What differs from the lab's code, on purpose:
- the Welford statistics belong to the member: selection copies them with the graph, the
  weights and the mutation rates (the lab rebuilt them from zero after every generation);
- every value of every valid step updates the statistics (no value-equality heuristic), and
  a node's spread is floored at `min_std` so that float rounding of a (near-)constant node is
  never amplified into signal;
- episodes run side by side from a zero state (the lab ran the whole data set as one sequence,
  one Python iteration per sample); at step t the statistics take the values of all episodes
  still running as one batch (Chan et al.'s batch form of Welford's update); results do not
  depend on the thread count (chunks of the population are fixed by the shapes);
- every non-input node always has three inputs (outputs start wired to the inputs), a pruned
  node's consumers are re-wired to one of its own inputs (the signal path is kept), and any
  hidden node from which no output can be reached is removed with it (the lab's cascade,
  extended to dead cycles); `max_hidden` and `max_passes` bound the cost;
- all randomness comes from an explicit `torch.Generator` (each member's mutation from its own
  `random.Random`, seeded from it), so a checkpointed run resumes bit for bit.

Evaluation (`export`, `DynamicEvaluation`, `forward` and `forward_step` by default) freezes the
statistics: evaluating a net must not change it. Training fitness (`fitness`,
`sequence_cross_entropy`, `DynamicFitness`) updates them.

The population subclasses `Population` with an empty parameter matrix `params [P, 0]` (the
graphs are not a vector), so hbm-ne's `GA` and `evolve` drive it unchanged; `evolve_dynamic`
wires them up for supervised imitation.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hbm_ne._dynamic_kernels import kernel
from hbm_ne._shared import Callback, data_signature, evaluate
from hbm_ne.algorithms import GA
from hbm_ne.fitness import EpisodeData, as_episode_data, check_fits
from hbm_ne.population import Population, parallel_map
from hbm_ne.training import VALIDATION_FIELDS, EvolveResult, combine_evaluations, evolve

__all__ = [
    "DynamicEvaluation",
    "DynamicFitness",
    "DynamicNet",
    "DynamicPopulation",
    "PackedEpisodes",
    "evolve_dynamic",
    "pack_episodes",
]

logger = logging.getLogger(__name__)

NONLINEARITIES = ("tanh", "identity")
#: Bytes of one chunk's node values `[Nmax, c, E]` (CPU): about a hundred nets of twenty nodes
#: over thirty episodes, so that a step's working set stays in cache and P = 256 splits into
#: chunks that worker threads take side by side.
CPU_CHUNK_BYTES = 1 << 19
GPU_CHUNK_BYTES = 1 << 28
_SEED_BOUND = 1 << 62


# ------------------------------------------------------------------------------------------
# Packed episodes
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# One graph on the host, during mutation
# ------------------------------------------------------------------------------------------


@dataclass
class _Rates:
    """A member's own mutation settings, themselves mutated (the lab's four)."""

    grow: float
    prune: float
    passes: int
    locality: float


def _count(rng: random.Random, rate: float) -> int:
    """⌊a⌋ + Bernoulli(frac a): an integer with mean `rate`."""
    whole = int(rate)
    return whole + (1 if rng.random() < rate - whole else 0)


class _Graph:
    """One net's graph as Python lists keyed by node id (not position), for mutation.

    Ids: inputs `0..I-1`, outputs `I..I+O-1`, hidden nodes in `hidden` (in order); new nodes
    get fresh ids from `old_n`. `src[u]`, `w[u]`: the three inputs and weights of node u ≥ I.
    """

    def __init__(
        self, num_inputs: int, num_outputs: int, src: list[list[int]], w: list[list[float]]
    ) -> None:
        self.num_inputs = i = num_inputs
        self.num_outputs = o = num_outputs
        self.src = {i + r: list(s) for r, s in enumerate(src)}
        self.w = {i + r: list(v) for r, v in enumerate(w)}
        self.old_n = i + len(src)
        self.hidden = list(range(i + o, self.old_n))
        self.next_id = self.old_n

    @property
    def outputs(self) -> list[int]:
        return list(range(self.num_inputs, self.num_inputs + self.num_outputs))

    def alive(self) -> list[int]:
        return [*range(self.num_inputs + self.num_outputs), *self.hidden]

    def adjacency(self) -> dict[int, set[int]]:
        """Undirected neighbours of every node (self-loops left out)."""
        adj: dict[int, set[int]] = {u: set() for u in self.alive()}
        for u, ss in self.src.items():
            for s in ss:
                if s != u:
                    adj[u].add(s)
                    adj[s].add(u)
        return adj

    @staticmethod
    def near(
        rng: random.Random,
        origin: int,
        candidates: list[int],
        adj: Mapping[int, set[int]],
        locality: float,
    ) -> int:
        """A candidate near `origin`: ring by ring (breadth first), take one of the ring's
        candidates with probability `locality`, else look further; past the last ring, any."""
        allowed = set(candidates)
        seen = {origin}
        frontier = [origin]
        while frontier:
            ring = sorted({v for u in frontier for v in adj.get(u, ()) if v not in seen})
            if not ring:
                break
            seen.update(ring)
            here = [v for v in ring if v in allowed]
            if here and rng.random() < locality:
                return here[rng.randrange(len(here))]
            frontier = ring
        return candidates[rng.randrange(len(candidates))]

    def grow(self, rng: random.Random, previous: int | None, locality: float) -> int:
        """Add a hidden node n with three inputs and one consumer; returns n.

        Inputs: the first is `previous` (chained grows, as the lab's) or an input node that
        feeds nothing yet, else any node; the second near the first, the third near the
        second (n itself is a candidate: a self-loop). Consumer: an output node that reads
        only input nodes, else an output or hidden node near the second input; one of its
        three input slots (uniform) now reads n, with a fresh weight.
        """
        i = self.num_inputs
        n = self.next_id
        self.next_id += 1
        alive = self.alive()
        if previous is not None:
            in1 = previous
        else:
            feeding = {s for ss in self.src.values() for s in ss}
            quiet = [j for j in range(i) if j not in feeding]
            in1 = quiet[rng.randrange(len(quiet))] if quiet else alive[rng.randrange(len(alive))]
        adj = self.adjacency()
        adj[n] = {in1}
        adj[in1].add(n)
        pool = [*alive, n]
        in2 = self.near(rng, in1, [v for v in pool if v != in1], adj, locality)
        if in2 != n:
            adj[n].add(in2)
            adj[in2].add(n)
        rest = [v for v in pool if v not in (in1, in2)] or pool
        in3 = self.near(rng, in2, rest, adj, locality)
        weights = [rng.gauss(0.0, 1.0) for _ in range(3)]
        fresh = [o for o in self.outputs if all(s < i for s in self.src[o])]
        if fresh:
            consumer = fresh[rng.randrange(len(fresh))]
        else:
            consumer = self.near(rng, in2, [*self.outputs, *self.hidden], adj, locality)
        slot = rng.randrange(3)
        self.src[consumer][slot] = n
        self.w[consumer][slot] = rng.gauss(0.0, 1.0)
        self.src[n] = [in1, in2, in3]
        self.w[n] = weights
        self.hidden.append(n)
        return n

    def prune(self, rng: random.Random) -> None:
        """Remove a uniformly drawn hidden node; each slot that read it now reads one of the
        node's own (other) inputs, keeping its weight, or an input node if it had none."""
        if not self.hidden:
            return
        v = self.hidden[rng.randrange(len(self.hidden))]
        bypass = [s for s in self.src[v] if s != v]
        for u, ss in self.src.items():
            if u == v:
                continue
            for q in range(3):
                if ss[q] == v:
                    ss[q] = (
                        bypass[rng.randrange(len(bypass))]
                        if bypass
                        else rng.randrange(self.num_inputs)
                    )
        del self.src[v], self.w[v]
        self.hidden = [h for h in self.hidden if h != v]

    def remove_dead(self) -> None:
        """Remove every hidden node from which no output can be reached (nothing live reads
        it, so nothing needs re-wiring)."""
        i = self.num_inputs
        live = set(self.outputs)
        stack = list(self.outputs)
        while stack:
            for s in self.src[stack.pop()]:
                if s >= i and s not in live:
                    live.add(s)
                    stack.append(s)
        for h in self.hidden:
            if h not in live:
                del self.src[h], self.w[h]
        self.hidden = [h for h in self.hidden if h in live]

    def mutate(self, rng: random.Random, rates: _Rates, cfg: _MutationConfig) -> None:
        """The lab's order: perturb the rates, prune, then grow (chained)."""
        noise = cfg.rate_noise
        rates.grow = max(0.0, rates.grow * (1.0 + noise * rng.gauss(0.0, 1.0)))
        rates.prune = max(0.0, rates.prune * (1.0 + noise * rng.gauss(0.0, 1.0)))
        u = rng.random()
        if u < noise:
            rates.passes = max(1, rates.passes - 1)
        elif u >= 1.0 - noise:
            rates.passes = min(cfg.max_passes, rates.passes + 1)
        rates.locality = min(1.0, max(0.0, rates.locality + noise * rng.gauss(0.0, 1.0)))
        for _ in range(_count(rng, rates.prune)):
            self.prune(rng)
        self.remove_dead()
        previous: int | None = None
        for _ in range(_count(rng, rates.grow)):
            if len(self.hidden) >= cfg.max_hidden:
                break
            previous = self.grow(rng, previous, rates.locality)
        self.remove_dead()

    def compact(self) -> tuple[list[list[int]], list[list[float]], list[int]]:
        """(sources and weights of nodes I.. by position, and for each new position the old
        one or -1 for a new node): inputs, outputs, then hidden nodes in order."""
        order = self.alive()
        pos = {u: k for k, u in enumerate(order)}
        i = self.num_inputs
        rows = [[pos[s] for s in self.src[u]] for u in order[i:]]
        weights = [list(self.w[u]) for u in order[i:]]
        perm = [u if u < self.old_n else -1 for u in order]
        return rows, weights, perm


@dataclass(frozen=True)
class _MutationConfig:
    max_hidden: int
    max_passes: int
    rate_noise: float


def _initial_graph(rng: random.Random, num_inputs: int, num_outputs: int) -> _Graph:
    """Input and output nodes only; each output reads three input nodes (distinct when
    there are three or more), weights N(0, 1)."""
    src, w = [], []
    for _ in range(num_outputs):
        if num_inputs >= 3:
            src.append(rng.sample(range(num_inputs), 3))
        else:
            src.append([rng.randrange(num_inputs) for _ in range(3)])
        w.append([rng.gauss(0.0, 1.0) for _ in range(3)])
    return _Graph(num_inputs, num_outputs, src, w)


# ------------------------------------------------------------------------------------------
# The exported member
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# The population
# ------------------------------------------------------------------------------------------


def _cpu_generator(generator: torch.Generator | None) -> torch.Generator:
    """Initial graphs are drawn on CPU so that a seed gives the same nets on every device."""
    if generator is not None and generator.device.type == "cpu":
        return generator
    seed = 0 if generator is None else int(generator.initial_seed())
    return torch.Generator().manual_seed(seed)


class DynamicPopulation(Population):
    """P evolving-topology nets, held padded to the largest: Nmax = in + out + max hidden.

    Per member (row p; node j: inputs `j < in`, outputs next, then `num_hidden[p]` hidden
    nodes, then padding): `source [P, Nmax, 3]` (int64) and `weight [P, Nmax, 3]` the three
    inputs of each non-input node (rows of input and padding nodes are 0), Welford statistics
    `count`, `mean`, `m2 [P, Nmax]` (float64; 0 for padding), and the member's own mutation
    rates `grow_rate`, `prune_rate`, `locality [P]` (float64) and `passes [P]` (int64).
    `params` is an empty `[P, 0]` (nothing here is a parameter vector); GA only.

    Every member starts with its outputs wired to the inputs, then `initial_mutations`
    mutations (the lab: one). Rates start at `grow_rate` (mean grows per mutation),
    `prune_rate`, `passes` (per step) and `locality` (the chance of taking a candidate at each
    breadth-first ring when wiring a new node); each mutation perturbs them: grow and prune
    rates ×(1 + `rate_noise`·N(0, 1)), passes ±1 with probability `rate_noise` each (within
    [1, `max_passes`]), locality +`rate_noise`·N(0, 1) (within [0, 1]).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        population_size: int,
        *,
        max_hidden: int = 64,
        max_passes: int = 4,
        initial_mutations: int = 1,
        grow_rate: float = 1.0,
        prune_rate: float = 0.5,
        passes: int = 1,
        locality: float = 0.5,
        rate_noise: float = 0.01,
        min_std: float = 1e-3,
        nonlinearity: str = "tanh",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, v in (
            ("input_size", input_size),
            ("output_size", output_size),
            ("population_size", population_size),
            ("max_passes", max_passes),
            ("passes", passes),
        ):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if max_hidden < 0 or initial_mutations < 0:
            raise ValueError("max_hidden and initial_mutations must be >= 0")
        if passes > max_passes:
            raise ValueError(f"passes ({passes}) must be <= max_passes ({max_passes})")
        if min_std <= 0:
            raise ValueError(f"min_std must be > 0, got {min_std}")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        super().__init__(torch.empty(population_size, 0, device=dev, dtype=dtype), adaptive=False)
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.max_hidden = int(max_hidden)
        self.max_passes = int(max_passes)
        self.initial_mutations = int(initial_mutations)
        self.initial_rates = (float(grow_rate), float(prune_rate), int(passes), float(locality))
        self.rate_noise = float(rate_noise)
        self.min_std = float(min_std)
        self.nonlinearity = _check_nonlinearity(nonlinearity)
        self._mutation = _MutationConfig(self.max_hidden, self.max_passes, self.rate_noise)
        gen = _cpu_generator(generator)
        seeds = torch.randint(0, _SEED_BOUND, (population_size,), generator=gen).tolist()
        built = []
        for seed in seeds:
            rng = random.Random(seed)
            graph = _initial_graph(rng, self.input_size, self.output_size)
            rates = _Rates(*self.initial_rates)
            for _ in range(self.initial_mutations):
                graph.mutate(rng, rates, self._mutation)
            built.append((graph.compact(), rates))
        self._assemble(
            [(rows, w) for (rows, w, _), _ in built],
            [r for _, r in built],
            stats=None,
        )

    # -- layout --------------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        """Nmax: nodes per member, padded to the largest member."""
        return int(self.source.shape[1])

    def member_num_nodes(self, i: int) -> int:
        return self.input_size + self.output_size + int(self.num_hidden[i])

    def _assemble(
        self,
        graphs: Sequence[tuple[list[list[int]], list[list[float]]]],
        rates: Sequence[_Rates],
        stats: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> None:
        """Set every tensor from host graphs (rows of nodes in.., by position), rates and
        statistics `[P, Nmax]` (None: zeros)."""
        i, o = self.input_size, self.output_size
        hidden = [len(rows) - o for rows, _ in graphs]
        nmax = i + o + max(hidden, default=0)
        p = len(graphs)
        src = np.zeros((p, nmax, 3), dtype=np.int64)
        w = np.zeros((p, nmax, 3), dtype=np.float64)
        for k, (rows, weights) in enumerate(graphs):
            if rows:
                src[k, i : i + len(rows)] = rows
                w[k, i : i + len(rows)] = weights
        dev, dt = self.device, self.dtype
        self.num_hidden = torch.tensor(hidden, dtype=torch.long, device=dev)
        self.source = torch.from_numpy(src).to(dev)
        self.weight = torch.from_numpy(w).to(device=dev, dtype=dt)
        if stats is None:
            zeros = np.zeros((p, nmax))
            stats = (zeros, zeros, zeros)
        self.count, self.mean, self.m2 = (torch.from_numpy(s.copy()).to(dev) for s in stats)
        f64 = torch.float64
        self.grow_rate = torch.tensor([r.grow for r in rates], dtype=f64, device=dev)
        self.prune_rate = torch.tensor([r.prune for r in rates], dtype=f64, device=dev)
        self.passes = torch.tensor([r.passes for r in rates], dtype=torch.long, device=dev)
        self.locality = torch.tensor([r.locality for r in rates], dtype=f64, device=dev)

    def _rates(self) -> list[_Rates]:
        return [
            _Rates(g, q, int(k), loc)
            for g, q, k, loc in zip(
                self.grow_rate.tolist(),
                self.prune_rate.tolist(),
                self.passes.tolist(),
                self.locality.tolist(),
                strict=True,
            )
        ]

    # -- evolution primitives ------------------------------------------------------------------
    def mutate_(self, generator: torch.Generator, start: int = 0) -> None:
        """Mutate members `start:` (those before are protected elites): each draws a seed from
        `generator` for its own `random.Random`, then perturbs its rates, prunes and grows.
        New nodes start with empty statistics; every other node keeps its own."""
        p = self.population_size
        seeds = torch.randint(
            0, _SEED_BOUND, (p,), generator=generator, device=generator.device
        ).tolist()
        if start >= p:
            return
        i, o = self.input_size, self.output_size
        hidden = self.num_hidden.tolist()
        src = self.source.cpu().numpy()
        w = self.weight.detach().to(device="cpu", dtype=torch.float64).numpy()
        old_stats = [s.cpu().numpy() for s in (self.count, self.mean, self.m2)]
        rates = self._rates()
        graphs: list[tuple[list[list[int]], list[list[float]]]] = []
        perms: list[list[int] | None] = []
        for k in range(p):
            n = i + o + hidden[k]
            rows, weights = src[k, i:n].tolist(), w[k, i:n].tolist()
            if k < start:
                graphs.append((rows, weights))
                perms.append(None)
                continue
            graph = _Graph(i, o, rows, weights)
            graph.mutate(random.Random(seeds[k]), rates[k], self._mutation)
            new_rows, new_weights, moved = graph.compact()
            graphs.append((new_rows, new_weights))
            perms.append(moved)
        nmax = i + o + max(len(r) - o for r, _ in graphs)
        new_stats = (np.zeros((p, nmax)), np.zeros((p, nmax)), np.zeros((p, nmax)))
        for k, perm in enumerate(perms):
            n_old = i + o + hidden[k]
            for new, old in zip(new_stats, old_stats, strict=True):
                if perm is None:
                    new[k, :n_old] = old[k, :n_old]
                else:
                    idx = np.asarray(perm, dtype=np.int64)
                    keep = idx >= 0
                    new[k, : len(perm)][keep] = old[k, idx[keep]]
        self._assemble(graphs, rates, new_stats)

    def select_(self, indices: Tensor) -> None:
        """Member i becomes a copy of member `indices[i]`: graph, weights, mutation rates and
        Welford statistics (the lab lost the statistics)."""
        idx = indices.to(device=self.device, dtype=torch.long)
        if idx.shape != (self.population_size,):
            raise ValueError(f"indices must be [{self.population_size}], got {tuple(idx.shape)}")
        for name in _MEMBER_TENSORS:
            setattr(self, name, getattr(self, name).index_select(0, idx))
        if self.carried_state is not None:
            self.carried_state = self.carried_state.index_select(0, idx)

    def broadcast_(self, params: Tensor, sigma: Tensor | None = None) -> None:
        raise TypeError(
            "dynamic networks have no parameter vector to recombine: evolve them with GA "
            "(ES and CMA-ES do not apply)"
        )

    # -- checkpoints ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        grow, prune, passes, locality = self.initial_rates
        return {
            **super().config(),
            "input_size": self.input_size,
            "output_size": self.output_size,
            "max_hidden": self.max_hidden,
            "max_passes": self.max_passes,
            "initial_mutations": self.initial_mutations,
            "initial_rates": {
                "grow": grow,
                "prune": prune,
                "passes": passes,
                "locality": locality,
            },
            "rate_noise": self.rate_noise,
            "min_std": self.min_std,
            "nonlinearity": self.nonlinearity,
        }

    def state_dict(self) -> dict[str, Any]:
        """`{"config", "num_hidden" [P], "source" [P, Nmax, 3], "weight" [P, Nmax, 3],
        "count", "mean", "m2" [P, Nmax] (float64), "grow_rate", "prune_rate", "locality" [P]
        (float64), "passes" [P] (int64)}`: the graphs as tensors (cloned)."""
        return {
            "config": self.config(),
            **{name: getattr(self, name).detach().clone() for name in _MEMBER_TENSORS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("config") != self.config():
            raise ValueError(
                f"population state is for {state.get('config')}, this population is {self.config()}"
            )
        p = self.population_size
        i, o = self.input_size, self.output_size
        hidden = state["num_hidden"]
        nmax = int(state["source"].shape[1])
        if hidden.shape != (p,) or (p and i + o + int(hidden.max()) > nmax):
            raise ValueError("population state: num_hidden does not fit the stored graphs")
        for name in _MEMBER_TENSORS:
            t = state[name]
            want: tuple[int, ...] = (p, nmax)
            if name in ("source", "weight"):
                want = (p, nmax, 3)
            elif name in ("num_hidden", "grow_rate", "prune_rate", "locality", "passes"):
                want = (p,)
            if tuple(t.shape) != want:
                raise ValueError(f"population state: {name} is {tuple(t.shape)}, expected {want}")
            dtype = self.dtype if name == "weight" else t.dtype
            setattr(self, name, t.detach().to(device=self.device, dtype=dtype).clone())
        self.carried_state = None

    # -- members -------------------------------------------------------------------------------
    def member_state_dict(self, i: int) -> dict[str, Any]:
        """Member `i` as a `DynamicNet` state_dict (frozen standardisation)."""
        if not -self.population_size <= i < self.population_size:
            raise IndexError(f"member {i} out of range for population of {self.population_size}")
        i %= self.population_size
        n = self.member_num_nodes(i)
        k = self.input_size
        count, m2 = self.count[i, :n], self.m2[i, :n]
        std = (m2 / count.clamp_min(1.0)).sqrt()
        inv = torch.where(count >= 2.0, 1.0 / std.clamp_min(self.min_std), torch.zeros_like(std))
        return {
            "weight": self.weight[i, k:n].detach().clone(),
            "source": self.source[i, k:n].clone(),
            "center": self.mean[i, :n].to(self.dtype),
            "scale": inv.to(self.dtype),
            "_extra_state": {
                "passes": int(self.passes[i]),
                "min_std": self.min_std,
                "nonlinearity": self.nonlinearity,
            },
        }

    def export(self, i: int) -> DynamicNet:
        """Member `i` as a plain `nn.Module` on this device, its statistics frozen."""
        sd = self.member_state_dict(i)
        module = DynamicNet(
            self.input_size,
            self.output_size,
            int(self.num_hidden[i]),
            passes=int(sd["_extra_state"]["passes"]),
            min_std=self.min_std,
            nonlinearity=self.nonlinearity,
            device=self.device,
            dtype=self.dtype,
        )
        module.load_state_dict(sd)
        return module.eval()

    # -- kernels -------------------------------------------------------------------------------
    def chunk_size(self, num_episodes: int) -> int:
        """Most members per chunk so that node values `[Nmax, c, E]` stay within the budget
        (fixed by the shapes, never by the thread count, so results do not depend on it)."""
        budget = CPU_CHUNK_BYTES if self.device.type == "cpu" else GPU_CHUNK_BYTES
        per_member = max(1, self.num_nodes * max(1, num_episodes) * self.weight.element_size())
        return max(1, budget // per_member)

    def chunks(self, num_episodes: int) -> list[Tensor]:
        """Member indices of each chunk: the members sorted by passes per step, dealt round
        robin into near-equal chunks, so that every chunk has the same mix of passes (a pass
        beyond the first runs only the nets that have it) and costs about the same."""
        count = -(-self.population_size // self.chunk_size(num_episodes))
        order = torch.argsort(self.passes, stable=True)
        return [order[j::count] for j in range(count)]

    @torch.no_grad()
    def _run(
        self,
        x: Tensor,
        batch_sizes: Sequence[int],
        num_episodes: int,
        *,
        targets: Tensor | None = None,
        h0: Tensor | None = None,
        update: bool,
        keep_outputs: bool,
        keep_final: bool,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Packed inputs `x [in, 1 | P, Ntot]` through every member -> (CE sums `[P]` float64
        when `targets`, outputs `[P, out, Ntot]`, final states `[P, Nmax, E]`), episodes in
        packed (sorted) order; `h0 [P, Nmax, E]` in that order too."""
        p, nmax = self.population_size, self.num_nodes
        i, o = self.input_size, self.output_size
        nh = nmax - i
        e = int(num_episodes)
        ntot = int(x.shape[-1])
        dev, dt = self.device, self.dtype
        fn = kernel("dynamic_chunk", dev)
        sizes = [int(b) for b in batch_sizes]
        ce = torch.zeros(p, dtype=torch.float64, device=dev) if targets is not None else None
        outputs = torch.empty(p, o, ntot, device=dev, dtype=dt) if keep_outputs else None
        final = torch.empty(p, nmax, e, device=dev, dtype=dt) if keep_final else None
        x = x.to(device=dev, dtype=dt)
        tgt = None if targets is None else targets.to(device=dev, dtype=torch.long)
        nodes = torch.arange(nh, device=dev)[:, None]

        def run(members: Tensor) -> None:
            members = members.to(dev)
            c = int(members.shape[0])
            q = torch.arange(c, device=dev).view(1, c, 1)
            src = self.source.index_select(0, members)[:, i:]
            bags = (src.permute(1, 0, 2) * c + q).reshape(-1)
            weights = self.weight.index_select(0, members)[:, i:].permute(1, 0, 2).reshape(-1)
            offsets = torch.arange(0, nh * c * 3, 3, device=dev)
            real = nodes < (o + self.num_hidden.index_select(0, members))[None, :]
            count, mean, m2 = (
                s.index_select(0, members).T.contiguous() for s in (self.count, self.mean, self.m2)
            )
            if h0 is None:
                values = torch.zeros(nmax, c, e, device=dev, dtype=dt)
            else:
                values = h0.index_select(0, members).permute(1, 0, 2).to(dt).contiguous()
            outs = torch.empty(o, c, ntot, device=dev, dtype=dt)
            fin = None if final is None else torch.empty(nmax, c, e, device=dev, dtype=dt)
            xs = x if x.shape[1] == 1 else x.index_select(1, members)
            sums = fn(
                xs,
                sizes,
                bags,
                offsets,
                weights,
                real,
                self.passes.index_select(0, members),
                count,
                mean,
                m2,
                values,
                outs,
                fin,
                tgt,
                i,
                o,
                update,
                self.min_std,
                self.nonlinearity == "tanh",
            )
            if update:
                self.count[members] = count.T
                self.mean[members] = mean.T
                self.m2[members] = m2.T
            if ce is not None:
                assert isinstance(sums, Tensor)
                ce[members] = sums
            if outputs is not None:
                outputs[members] = outs.permute(1, 0, 2)
            if final is not None and fin is not None:
                final[members] = fin.permute(1, 0, 2)

        if ntot or h0 is not None or keep_final:
            parallel_map(run, self.chunks(e), dev)
        return ce, outputs, final

    def packed_cross_entropy(self, packed: PackedEpisodes, *, update_stats: bool = True) -> Tensor:
        """Mean cross-entropy `[P]` over every step of packed episodes (with targets)."""
        if packed.targets is None:
            raise ValueError("packed episodes without targets: pack them with the actions")
        self._check_targets(packed.targets)
        ce, _, _ = self._run(
            packed.x[:, None],
            packed.batch_sizes,
            packed.num_episodes,
            targets=packed.targets,
            update=update_stats,
            keep_outputs=False,
            keep_final=False,
        )
        assert ce is not None
        return (ce / max(packed.num_steps, 1)).to(self.dtype)

    def fitness(
        self,
        obs: Tensor,
        actions: Tensor,
        episode_lengths: Sequence[int],
        *,
        update_stats: bool = True,
    ) -> Tensor:
        """Mean cross-entropy `[P]` (a loss) of every member on flat episodes `obs [N, in]`,
        `actions [N]`, run side by side from a zero state. Training fitness: the members'
        statistics take the samples (`update_stats=False` leaves them frozen)."""
        obs = self._check_obs(torch.as_tensor(obs), 2)
        actions = torch.as_tensor(actions).to(self.device)
        if actions.shape != obs.shape[:1]:
            raise ValueError(f"actions must be [{obs.shape[0]}], got {tuple(actions.shape)}")
        packed = pack_episodes(obs, episode_lengths, actions)
        return self.packed_cross_entropy(packed, update_stats=update_stats)

    def sequence_cross_entropy(
        self, x: Tensor, y: Tensor, mask: Tensor | None = None, *, update_stats: bool = True
    ) -> Tensor:
        """Mean cross-entropy `[P]` over the valid steps of padded episodes `x [E, T, in]`,
        `y [E, T]`, `mask [E, T]` (a prefix of each row; None = all valid)."""
        x = self._check_obs(x, 3)
        e, t = x.shape[0], x.shape[1]
        if y.shape != (e, t):
            raise ValueError(f"y must be [{e}, {t}], got {tuple(y.shape)}")
        lengths = _prefix_lengths(mask, e, t)
        packed = pack_episodes(x, lengths, y.to(self.device))
        return self.packed_cross_entropy(packed, update_stats=update_stats)

    def initial_state(self, batch_size: int) -> Tensor:
        """Zero state `[P, B, Nmax]` (valid until the next mutation or selection)."""
        return torch.zeros(
            self.population_size, batch_size, self.num_nodes, device=self.device, dtype=self.dtype
        )

    @torch.no_grad()
    def forward_step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step of every member, statistics frozen (rollouts): `x [P, B, in]` or `[B, in]`
        (shared), `h [P, B, Nmax]` -> (logits `[P, B, out]`, h `[P, B, Nmax]`)."""
        p, b = self.population_size, h.shape[1]
        if h.shape != (p, b, self.num_nodes):
            raise ValueError(f"h must be [{p}, B, {self.num_nodes}], got {tuple(h.shape)}")
        x = x.to(device=self.device, dtype=self.dtype)
        if x.dim() == 2:
            xp = x.T[:, None]  # [in, 1, B]
        elif x.dim() == 3 and x.shape[0] == p:
            xp = x.permute(2, 0, 1)  # [in, P, B]
        else:
            raise ValueError(f"x must be [B, {self.input_size}] or [P, B, {self.input_size}]")
        _, outputs, final = self._run(
            xp,
            [b],
            b,
            h0=h.transpose(1, 2),
            update=False,
            keep_outputs=True,
            keep_final=True,
        )
        assert outputs is not None and final is not None
        return outputs.transpose(1, 2), final.transpose(1, 2)

    @torch.no_grad()
    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        h0: Tensor | None = None,
        *,
        update_stats: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Padded episodes `x [E, T, in]`, `mask [E, T]` (a prefix of each row), `h0 [P, E,
        Nmax]` -> (logits `[P, E, T, out]`, h_T `[P, E, Nmax]`: each episode's state after its
        last valid step). Statistics frozen unless `update_stats`; logits at padded steps are
        0."""
        x = self._check_obs(x, 3)
        e, t = x.shape[0], x.shape[1]
        p, nmax = self.population_size, self.num_nodes
        lengths = _prefix_lengths(mask, e, t)
        packed = pack_episodes(x, lengths)
        order = packed.order.to(self.device)
        h0_sorted = None
        if h0 is not None:
            if h0.shape != (p, e, nmax):
                raise ValueError(f"h0 must be [{p}, {e}, {nmax}], got {tuple(h0.shape)}")
            h0_sorted = h0.to(self.device)[:, order].transpose(1, 2)
        _, outputs, final = self._run(
            packed.x[:, None],
            packed.batch_sizes,
            e,
            h0=h0_sorted,
            update=update_stats,
            keep_outputs=True,
            keep_final=True,
        )
        assert outputs is not None and final is not None
        logits = torch.zeros(p, e, t, self.output_size, device=self.device, dtype=self.dtype)
        ep, st = packed.episodes.to(self.device), packed.steps.to(self.device)
        logits[:, ep, st] = outputs.transpose(1, 2)
        h_t = torch.empty(p, e, nmax, device=self.device, dtype=self.dtype)
        h_t[:, order] = final.transpose(1, 2)
        return logits, h_t

    __call__ = forward

    def _check_obs(self, x: Tensor, dims: int) -> Tensor:
        if x.dim() != dims or x.shape[-1] != self.input_size:
            shape = "[N, in]" if dims == 2 else "[E, T, in]"
            raise ValueError(
                f"obs must be {shape} with in = {self.input_size}, got {tuple(x.shape)}"
            )
        return x.to(device=self.device, dtype=self.dtype)

    def _check_targets(self, targets: Tensor) -> None:
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= self.output_size):
            raise ValueError(f"actions must be in [0, {self.output_size})")


_MEMBER_TENSORS = (
    "num_hidden",
    "source",
    "weight",
    "count",
    "mean",
    "m2",
    "grow_rate",
    "prune_rate",
    "passes",
    "locality",
)


# ------------------------------------------------------------------------------------------
# Supervised evolution
# ------------------------------------------------------------------------------------------


class DynamicFitness:
    """Training fitness for `evolve`: each member's mean cross-entropy on `batch_size` whole
    episodes drawn each generation (None: all), run side by side from a zero state; the
    members' Welford statistics take the samples. `last_num_samples` is the steps scored."""

    def __init__(self, data: EpisodeData, *, batch_size: int | None = None) -> None:
        if data.episode_lengths is None:
            raise ValueError(
                "dynamic networks are recurrent: EpisodeData.from_arrays(obs, actions, "
                "episode_lengths)"
            )
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.last_num_samples = 0
        self._lengths = list(data.episode_lengths)
        self._starts = list(np.cumsum([0, *self._lengths[:-1]]))
        self._full: PackedEpisodes | None = None

    def __call__(
        self, population: Population, generation: int, generator: torch.Generator
    ) -> Tensor:
        if not isinstance(population, DynamicPopulation):
            raise TypeError(f"DynamicFitness needs a DynamicPopulation, got {type(population)}")
        data = self.data
        e = len(self._lengths)
        if self.batch_size is None or self.batch_size >= e:
            if self._full is None:
                self._full = pack_episodes(data.obs, self._lengths, data.actions)
            packed = self._full
        else:
            pick = torch.randperm(e, generator=generator, device=generator.device)
            chosen = [int(k) for k in pick[: self.batch_size].tolist()]
            packed = pack_episodes(
                data.obs, self._lengths, data.actions, episodes=chosen, starts=self._starts
            )
        self.last_num_samples = packed.num_steps
        return population.packed_cross_entropy(packed, update_stats=True)


class DynamicEvaluation:
    """Test cross-entropy, accuracy and sampled macro F1 for `evolve`, of the exported member
    in slot 0 (GA with elitism ≥ 1 puts the generation's train-best member there, unmutated,
    before `evolve` evaluates), its statistics frozen; each episode runs from a zero state.
    hbm-ne's shared `evaluate` (F1 draws seeded `f1_seed(seed, step)`). `split="validation"`
    names the metrics `VALIDATION_FIELDS` instead of the test keys."""

    def __init__(
        self,
        data: EpisodeData,
        population: DynamicPopulation,
        *,
        f1_samples: int = 10,
        seed: int = 0,
        split: str = "test",
    ) -> None:
        if data.episode_lengths is None:
            raise ValueError("test data need episode_lengths (dynamic networks are recurrent)")
        if split not in ("test", "validation"):
            raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
        self.keys = (
            ("test_ce", "test_accuracy", "test_f1") if split == "test" else VALIDATION_FIELDS
        )
        self.data = data
        self.population = population
        self.f1_samples = f1_samples
        self.seed = seed

    def __call__(self, best_params: Tensor, step: int) -> dict[str, float]:
        module = self.population.export(0)
        m = evaluate(module, self.data, f1_samples=self.f1_samples, seed=self.seed, step=step)
        ce, accuracy, f1 = self.keys
        return {ce: m["ce"], accuracy: m["accuracy"], f1: m["f1"]}


def _algorithm_seed(seed: int) -> int:
    """The GA's seed, derived from the run's as `training.make_algorithm` derives it."""
    return (int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 63)


def evolve_dynamic(
    population: DynamicPopulation,
    train_data: EpisodeData | tuple[Any, Any],
    test_data: EpisodeData | tuple[Any, Any] | None = None,
    *,
    survival: float = 0.5,
    elitism: int = 1,
    max_generations: int | None = None,
    max_time: float | None = None,
    max_samples: int | None = None,
    validation_data: EpisodeData | tuple[Any, Any] | None = None,
    eval_every: int | None = 10,
    eval_every_seconds: float | None = None,
    batch_size: int | None = None,
    f1_samples: int = 10,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_every_seconds: float | None = 300.0,
    resume: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
    logger: logging.Logger | None = None,
) -> EvolveResult:
    """Evolve dynamic networks to imitate recorded actions with GA (fitness = cross-entropy).

    `GA(population, survival, elitism)` seeded from `seed` (as `train_supervised` seeds its
    algorithms) driven by hbm-ne's `evolve`, so budgets (`max_generations`, `max_samples`,
    `max_time`),
    cadences, atomic checkpoints (`checkpoint_path`, `checkpoint_every`,
    `checkpoint_every_seconds`), bitwise resume, `fingerprint`, callbacks and history rows
    (`generation`, `train_loss`, `test_ce`, `test_accuracy`, `test_f1`, `elapsed`, ...) are
    the other methods'. `validation_data` adds `VALIDATION_FIELDS` to the rows, as in
    `train_supervised`. `batch_size` counts episodes per generation (None: all). The
    fingerprint also holds the data signatures and these settings (under "hbm_ne_dynamic").

    The result's `model` (= `best`) is the exported train-best member of the last generation
    (statistics frozen); `elitism` must be ≥ 1 so that slot 0 holds it unmutated.
    """
    if elitism < 1:
        raise ValueError("evolve_dynamic needs elitism >= 1 (slot 0 holds the train-best member)")
    if not isinstance(population, DynamicPopulation):
        raise TypeError(f"population must be a DynamicPopulation, got {type(population)}")
    dev = population.device
    train = as_episode_data(train_data, dev)
    test = None if test_data is None else as_episode_data(test_data, dev)
    val = None if validation_data is None else as_episode_data(validation_data, dev)
    for name, d in (("train_data", train), ("test_data", test), ("validation_data", val)):
        if d is None:
            continue
        if d.episode_lengths is None:
            raise ValueError(f"{name}: dynamic networks need episodes (episode_lengths)")
        check_fits(name, d, population.input_size, population.output_size)
    caller = dict(fingerprint or {})
    if "hbm_ne_dynamic" in caller:
        raise ValueError("fingerprint key 'hbm_ne_dynamic' is reserved for evolve_dynamic")
    caller["hbm_ne_dynamic"] = {
        "batch_size": batch_size,
        "f1_samples": f1_samples,
        "train_data": data_signature(train),
        "test_data": None if test is None else data_signature(test),
        **({} if val is None else {"validation_data": data_signature(val)}),
    }
    algorithm = GA(population, survival=survival, elitism=elitism, seed=_algorithm_seed(seed))
    evaluation = combine_evaluations(
        *(
            DynamicEvaluation(d, population, f1_samples=f1_samples, seed=seed, split=split)
            for d, split in ((test, "test"), (val, "validation"))
            if d is not None
        )
    )
    result = evolve(
        population,
        algorithm,
        DynamicFitness(train, batch_size=batch_size),
        max_generations=max_generations,
        max_time=max_time,
        max_samples=max_samples,
        eval_fn=evaluation,
        eval_every=eval_every,
        eval_every_seconds=eval_every_seconds,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        checkpoint_every_seconds=checkpoint_every_seconds,
        resume=resume,
        fingerprint=caller,
        callbacks=callbacks,
        seed=seed,
        device=device,
        logger=logger,
    )
    result.model = population.export(0)
    return result
