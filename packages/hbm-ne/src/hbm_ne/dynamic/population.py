"""`DynamicPopulation`: every member's graph packed into padded tensors, run side by side over
packed episodes by the TorchScript time loop (`_dynamic_kernels`); mutation on the host.

The chunk budget is `hbm_ne.dynamic.CPU_CHUNK_BYTES` / `GPU_CHUNK_BYTES`, read at call time."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hbm_ne import dynamic as _dynamic
from hbm_ne._dynamic_kernels import kernel
from hbm_ne.dynamic.graph import _Graph, _initial_graph, _MutationConfig, _Rates
from hbm_ne.dynamic.net import DynamicNet, _check_nonlinearity
from hbm_ne.dynamic.packed import PackedEpisodes, _prefix_lengths, pack_episodes
from hbm_ne.population import Population, parallel_map

_SEED_BOUND = 1 << 62


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
        budget = _dynamic.CPU_CHUNK_BYTES if self.device.type == "cpu" else _dynamic.GPU_CHUNK_BYTES
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
