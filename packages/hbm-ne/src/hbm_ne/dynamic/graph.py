"""One member's graph on the host, during mutation: nodes with exactly three weighted inputs,
grown and pruned by rates that themselves mutate (`_Graph`), drawn from the member's own
`random.Random`."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass


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
