"""Evolving-topology networks (`hbm_ne.dynamic`): population fitness vs a per-net Python loop.

The figure (a same-process ratio): the training fitness (cross-entropy with the Welford
statistics updated as the samples flow) of P = 256 nets on CartPole-shaped data (4 inputs,
2 actions, about 3200 steps in episodes of person-like lengths) by `DynamicPopulation` (every
net and episode in one batched kernel sequence per time step) against a per-net Python loop:
each net run on its own over the same episodes, batched over the episodes still running (the
natural single-net code: a gather of each node's three inputs, the weighted sum, tanh, the
Welford update and the standardisation per pass, in eager torch). The loop is timed on a
sample of nets spread over the population and scaled to P (its cost is linear in the nets);
both results are checked equal first. The nets are grown by `initial_mutations` mutations to
sizes a run reaches after some generations (reported in `extra`), and the time of one
generation's mutation and selection is reported alongside.

Threads: both sides are timed with one intra-op thread and with torch's default, and each is
credited with its faster setting (as `bench_ne`).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _harness import Result, time_call, torch_threads
from hbm_ne import GA
from hbm_ne.dynamic import DynamicPopulation, PackedEpisodes, pack_episodes

SUITE = "dynamic"
P = 256
STEPS = 3200


def cartpole_like(
    seed: int = 0, steps: int = STEPS
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Episodes of 4 features and 2 actions, lengths like a person's CartPole (10 to 500
    steps), observations a smooth random walk, actions a noisy scripted rule on them."""
    g = torch.Generator().manual_seed(seed)
    lengths: list[int] = []
    while sum(lengths) < steps:
        lengths.append(int(torch.randint(10, 300, (1,), generator=g)))
    lengths[-1] -= sum(lengths) - steps
    if lengths[-1] < 1:
        lengths.pop()
        lengths[-1] += steps - sum(lengths)
    obs, acts = [], []
    for n in lengths:
        walk = torch.cumsum(torch.randn(n, 4, generator=g) * 0.1, 0)
        logit = 4 * (walk[:, 2] + 0.5 * walk[:, 3])
        acts.append((torch.rand(n, generator=g) < torch.sigmoid(logit)).long())
        obs.append(walk)
    return torch.cat(obs), torch.cat(acts), lengths


def _welford_z(a: torch.Tensor, count, mean, m2, min_std: float) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """One node block's batch Welford update and z-scores (single net, eager, float64 stats)."""
    b = a.shape[1]
    a64 = a.double()
    mb = a64.mean(1)
    m2b = ((a64 - mb[:, None]) ** 2).sum(1)
    n = count + b
    delta = mb - mean
    mean.add_(delta * b / n)
    m2.add_(m2b + delta**2 * count * b / n)
    count.copy_(n)
    std = (m2 / count).sqrt()
    inv = torch.where(count >= 2, 1 / std.clamp_min(min_std), torch.zeros_like(std))
    return ((a64 - mean[:, None]) * inv[:, None]).to(a.dtype)


def per_net_cross_entropy(pop: DynamicPopulation, i: int, packed: PackedEpisodes) -> float:
    """Member `i`'s training cross-entropy, computed on its own (the per-net loop)."""
    k, o = pop.input_size, pop.output_size
    n = pop.member_num_nodes(i)
    src, w = pop.source[i, k:n], pop.weight[i, k:n, :, None]
    count, mean, m2 = (t[i, :n].clone() for t in (pop.count, pop.mean, pop.m2))
    passes = int(pop.passes[i])
    assert packed.targets is not None
    v = torch.zeros(n, packed.num_episodes)
    total = torch.zeros((), dtype=torch.float64)
    off = 0
    for b in packed.batch_sizes:
        v = v[:, :b]
        z_in = _welford_z(packed.x[:, off : off + b], count[:k], mean[:k], m2[:k], pop.min_std)
        v = torch.cat([z_in, v[k:]])
        for _ in range(passes):
            a = torch.tanh((v[src] * w).sum(1))
            v = torch.cat([v[:k], _welford_z(a, count[k:], mean[k:], m2[k:], pop.min_std)])
        logits = v[k : k + o].T
        total += F.cross_entropy(logits, packed.targets[off : off + b], reduction="sum").double()
        off += b
    return float(total) / packed.num_steps


def run(args: argparse.Namespace) -> list[Result]:
    device = torch.device(args.device)
    obs, act, lengths = cartpole_like()
    packed = pack_episodes(obs.to(device), lengths, act.to(device))
    pop = DynamicPopulation(
        4, 2, P, initial_mutations=30, generator=torch.Generator().manual_seed(1), device=device
    )
    pop.fitness(obs, act, lengths)  # statistics as after a first generation
    state = pop.state_dict()
    sample = list(range(0, P, P // (4 if args.quick else 16)))

    ours = pop.packed_cross_entropy(packed)
    pop.load_state_dict(state)
    loop = [per_net_cross_entropy(pop, i, packed) for i in sample]
    err = max(abs(float(ours[i]) - v) for i, v in zip(sample, loop, strict=True))
    if err > 1e-4:
        raise AssertionError(f"population fitness differs from the per-net loop by {err}")

    def ours_call() -> None:
        pop.packed_cross_entropy(packed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def loop_call() -> None:
        for i in sample:
            per_net_cross_entropy(pop, i, packed)

    counts = sorted({1, torch.get_num_threads()}) if device.type == "cpu" else [0]
    best: dict[str, tuple[float, int]] = {}
    for t in counts:
        with torch_threads(t):
            for name, fn, scale, repeat in (
                ("ours", ours_call, 1.0, 3 if args.quick else 7),
                ("loop", loop_call, P / len(sample), 1 if args.quick else 3),
            ):
                sec = time_call(fn, repeat=repeat) * scale
                if name not in best or sec < best[name][0]:
                    best[name] = (sec, t)
    pop.load_state_dict(state)

    ga = GA(pop, seed=2)
    fitness = pop.packed_cross_entropy(packed)
    t0 = time.perf_counter()
    pop.select_(ga.selection_indices(fitness))
    t1 = time.perf_counter()
    pop.mutate_(ga.generator, start=ga.elitism)
    t2 = time.perf_counter()
    hidden = state["num_hidden"].double()
    extra = {
        "P": P,
        "steps": packed.num_steps,
        "episodes": packed.num_episodes,
        "longest_episode": packed.max_length,
        "hidden_mean": round(float(hidden.mean()), 1),
        "hidden_max": int(hidden.max()),
        "passes_max": int(state["passes"].max()),
        "loop_sampled_nets": len(sample),
        "ours_threads": best["ours"][1],
        "loop_threads": best["loop"][1],
        "ours_ms": round(best["ours"][0] * 1e3, 1),
        "loop_ms_scaled": round(best["loop"][0] * 1e3, 1),
        "selection_ms": round((t1 - t0) * 1e3, 2),
        "mutation_ms": round((t2 - t1) * 1e3, 1),
        "max_abs_diff_vs_loop": err,
    }
    return [
        Result(
            SUITE,
            f"training fitness cartpole-shaped P={P} N={packed.num_steps}",
            "gen/s",
            1 / best["ours"][0],
            "per-net Python loop (eager torch, episodes batched)",
            1 / best["loop"][0],
            target=20.0,
            extra=extra,
        )
    ]
