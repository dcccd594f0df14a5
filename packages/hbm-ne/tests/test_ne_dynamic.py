"""Evolving-topology networks (`hbm_ne.dynamic`): the batched population against a pure-Python
per-net reference, the exported module, mutation, selection, checkpoints and evolution."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import hbm_ne._dynamic_kernels as kernels
import hbm_ne.dynamic as dynamic
import pytest
import torch
import torch.nn.functional as F
from hbm_ne import (
    ES,
    GA,
    CheckpointError,
    DynamicNet,
    DynamicPopulation,
    EpisodeData,
    evaluate,
    evolve_dynamic,
)
from hbm_ne.dynamic import pack_episodes
from ne_helpers import intraop_threads
from torch import Tensor


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Tiny tensors: one torch thread (see conftest); tests of thread counts set their own."""


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------
# The reference: one net, one node, one episode at a time, in Python floats (float64)
# ------------------------------------------------------------------------------------------


def reference_member(
    state: dict[str, Any],
    i: int,
    x: list[list[list[float]]],
    lengths: list[int],
    *,
    update: bool,
    min_std: float,
    nonlinear: bool = True,
) -> tuple[list[list[list[float]]], list[list[float]], tuple[list[float], ...]]:
    """Member `i` of a population state on episodes `x[e][t][j]` (each `lengths[e]` steps).

    The semantics, written out: every episode starts from zero node values; at step t the
    episodes still running (`t < length`) give one batch. Input nodes take the observation,
    standardised; then `passes` times, every non-input node takes Σ_q w_q · value(source_q)
    from the previous pass (all nodes at once), tanh, standardised. With `update`, each node's
    statistics first absorb the batch of its new values (Chan's merge of (n, mean, M2) with the
    batch's own, computed two-pass). z = (a - mean) / max(sqrt(M2 / n), min_std), 0 if n < 2.
    Returns (logits[e][t] over the valid steps, final values[e], (count, mean, m2)).
    """
    cfg = state["config"]
    ni, no = cfg["input_size"], cfg["output_size"]
    n = ni + no + int(state["num_hidden"][i])
    src = state["source"][i, :n].tolist()
    w = state["weight"][i, :n].double().tolist()
    cnt = state["count"][i, :n].tolist()
    mean = state["mean"][i, :n].tolist()
    m2 = state["m2"][i, :n].tolist()
    passes = int(state["passes"][i])
    values = [[0.0] * n for _ in lengths]
    logits: list[list[list[float]]] = [[] for _ in lengths]

    def merge(j: int, batch: list[float]) -> None:
        m = len(batch)
        batch_mean = sum(batch) / m
        batch_m2 = sum((v - batch_mean) ** 2 for v in batch)
        total = cnt[j] + m
        delta = batch_mean - mean[j]
        mean[j] += delta * m / total
        m2[j] += batch_m2 + delta * delta * cnt[j] * m / total
        cnt[j] = total

    def z(j: int, a: float) -> float:
        if cnt[j] < 2:
            return 0.0
        return (a - mean[j]) / max(math.sqrt(m2[j] / cnt[j]), min_std)

    for t in range(max(lengths, default=0)):
        live = [e for e, length in enumerate(lengths) if t < length]
        for j in range(ni):
            raw = [x[e][t][j] for e in live]
            if update:
                merge(j, raw)
            for e, r in zip(live, raw, strict=True):
                values[e][j] = z(j, r)
        for _ in range(passes):
            act = {
                j: [
                    (math.tanh if nonlinear else float)(
                        sum(w[j][q] * values[e][src[j][q]] for q in range(3))
                    )
                    for e in live
                ]
                for j in range(ni, n)
            }
            if update:
                for j in range(ni, n):
                    merge(j, act[j])
            new = {(e, j): z(j, a) for j in range(ni, n) for e, a in zip(live, act[j], strict=True)}
            for (e, j), v in new.items():
                values[e][j] = v
        for e in live:
            logits[e].append(values[e][ni : ni + no])
    return logits, values, (cnt, mean, m2)


def random_graphs(
    pop: DynamicPopulation, seed: int, *, max_hidden: int = 6, with_stats: bool = True
) -> dict[str, Any]:
    """A state for `pop` holding random graphs of different sizes: sources anywhere (cycles
    and self-loops forced in), 1-3 passes, and (`with_stats`) statistics of every kind
    (empty, one sample, many)."""
    rng = random.Random(seed)
    p, ni, no = pop.population_size, pop.input_size, pop.output_size
    hidden = [rng.randrange(max_hidden + 1) for _ in range(p)]
    hidden[0] = max_hidden
    nmax = ni + no + max(hidden)
    state = pop.state_dict()
    src = torch.zeros(p, nmax, 3, dtype=torch.long)
    w = torch.zeros(p, nmax, 3, dtype=torch.float64)
    count, mean, m2 = (torch.zeros(p, nmax, dtype=torch.float64) for _ in range(3))
    for k in range(p):
        n = ni + no + hidden[k]
        for j in range(ni, n):
            src[k, j] = torch.tensor([rng.randrange(n) for _ in range(3)])
            w[k, j] = torch.tensor([rng.gauss(0, 1) for _ in range(3)])
        if hidden[k] >= 2:
            a, b = ni + no, ni + no + 1
            src[k, a, 0], src[k, b, 1], src[k, b, 2] = a, a, b  # a cycle a <-> b, b self-loop
            src[k, ni, 0] = b  # an output reads the cycle
        if with_stats:
            for j in range(n):
                c = rng.choice([0.0, 1.0, 7.0, 40.0])
                count[k, j] = c
                mean[k, j] = rng.gauss(0, 0.5) if c else 0.0
                m2[k, j] = c * rng.uniform(0.05, 2.0) if c > 1 else 0.0
    state.update(
        num_hidden=torch.tensor(hidden),
        source=src,
        weight=w.to(pop.dtype),
        count=count,
        mean=mean,
        m2=m2,
        passes=torch.tensor([rng.randint(1, 3) for _ in range(p)]),
    )
    return state


def episodes(lengths: list[int], size: int = 4, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Padded observations `[E, T, in]` (float64) and their prefix mask."""
    t = max(lengths)
    x = torch.randn(len(lengths), t, size, generator=gen(seed), dtype=torch.float64) * 1.5
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    return x, mask


def max_diff(a: list[float], b: Tensor) -> float:
    return max((abs(u - v) for u, v in zip(a, b.tolist(), strict=True)), default=0.0)


# ------------------------------------------------------------------------------------------
# Batched evaluation = reference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("update", [True, False])
@pytest.mark.parametrize(
    ("dtype", "tol"),
    # float64: the sums differ only in order (~1e-15); float32: values are z-scores of order 1,
    # rounded at every pass (observed ~5e-6 at most)
    [(torch.float64, 1e-9), (torch.float32, 1e-4)],
    ids=["float64", "float32"],
)
def test_batched_population_equals_the_per_net_reference(
    update: bool, dtype: torch.dtype, tol: float
) -> None:
    pop = DynamicPopulation(4, 3, 7, dtype=dtype, generator=gen(1))
    pop.load_state_dict(random_graphs(pop, seed=2))
    state = pop.state_dict()
    lengths = [9, 3, 6, 1, 9]
    x, mask = episodes(lengths)
    logits, h_t = pop.forward(x.to(dtype), mask, update_stats=update)
    after = pop.state_dict()
    assert logits.shape == (7, 5, 9, 3) and h_t.shape == (7, 5, pop.num_nodes)
    for i in range(7):
        ref, final, stats = reference_member(
            state, i, x.tolist(), lengths, update=update, min_std=pop.min_std
        )
        n = pop.member_num_nodes(i)
        for e, length in enumerate(lengths):
            for t in range(length):
                assert max_diff(ref[e][t], logits[i, e, t]) <= tol, (i, e, t)
            assert max_diff(final[e], h_t[i, e, :n]) <= tol, (i, e)
        for name, got in zip(("count", "mean", "m2"), stats, strict=True):
            scale = max(1.0, max(abs(v) for v in got))
            assert max_diff(got, after[name][i, :n]) <= tol * scale, (i, name)
    if not update:
        for name in ("count", "mean", "m2"):
            assert torch.equal(after[name], state[name])


def test_fitness_equals_the_reference_cross_entropy_flat_and_padded() -> None:
    pop = DynamicPopulation(4, 2, 5, dtype=torch.float64, generator=gen(3))
    pop.load_state_dict(random_graphs(pop, seed=4))
    state = pop.state_dict()
    lengths = [6, 2, 8]
    x, mask = episodes(lengths, seed=5)
    y = torch.randint(0, 2, mask.shape, generator=gen(6))
    expected = []
    for i in range(5):
        ref, _, _ = reference_member(state, i, x.tolist(), lengths, update=True, min_std=1e-3)
        total = sum(
            float(F.cross_entropy(torch.tensor([ref[e][t]], dtype=torch.float64), y[e, t : t + 1]))
            for e in range(3)
            for t in range(lengths[e])
        )
        expected.append(total / sum(lengths))
    flat_obs = torch.cat([x[e, :n] for e, n in enumerate(lengths)])
    flat_act = torch.cat([y[e, :n] for e, n in enumerate(lengths)])
    flat = pop.fitness(flat_obs, flat_act, lengths)
    pop.load_state_dict(state)
    padded = pop.sequence_cross_entropy(x, y, mask)
    for got in (flat, padded):
        assert got.shape == (5,)
        assert max(abs(a - b) for a, b in zip(got.tolist(), expected, strict=True)) < 1e-9


def test_state_is_carried_within_an_episode_and_reset_between_episodes() -> None:
    pop = DynamicPopulation(4, 2, 6, generator=gen(7))
    pop.load_state_dict(random_graphs(pop, seed=8))
    x, mask = episodes([8, 8], seed=9)
    x = x.float()
    together, _ = pop.forward(x, mask)  # frozen statistics: episodes do not interact
    alone, _ = pop.forward(x[1:], mask[1:])
    assert torch.equal(together[:, 1], alone[:, 0])  # each episode starts from zero
    changed = x.clone()
    changed[1, 0] += 3.0  # only the first step of episode 1
    after, _ = pop.forward(changed, mask)
    assert torch.equal(after[:, 0], together[:, 0])
    later = (after[:, 1, 1:] - together[:, 1, 1:]).abs().amax(dim=(1, 2))
    assert bool((later > 1e-4).any())  # a recurrent net remembers the first step
    # the same data as a second, separate call: no state survives between calls
    again, _ = pop.forward(x, mask)
    assert torch.equal(again, together)


def test_torchscript_and_python_kernels_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    pop = DynamicPopulation(4, 3, 9, generator=gen(10))
    pop.load_state_dict(random_graphs(pop, seed=11))
    state = pop.state_dict()
    x, mask = episodes([7, 4, 7, 2], seed=12)
    scripted, _ = pop.forward(x.float(), mask, update_stats=True)
    scripted_stats = pop.state_dict()["mean"]
    pop.load_state_dict(state)
    monkeypatch.setattr(kernels, "USE_TORCHSCRIPT", False)
    python, _ = pop.forward(x.float(), mask, update_stats=True)
    assert (scripted - python).abs().max() < 1e-5
    assert (scripted_stats - pop.state_dict()["mean"]).abs().max() < 1e-6


def test_results_do_not_depend_on_threads_and_chunks_only_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pop = DynamicPopulation(4, 2, 13, generator=gen(13))
    pop.load_state_dict(random_graphs(pop, seed=14))
    state = pop.state_dict()
    x, mask = episodes([6, 6, 3, 5], seed=15)
    y = torch.randint(0, 2, mask.shape, generator=gen(16))
    results = []
    for budget, threads in ((1 << 30, 1), (1 << 8, 1), (1 << 8, 2)):
        monkeypatch.setattr(dynamic, "CPU_CHUNK_BYTES", budget)
        pop.load_state_dict(state)
        with intraop_threads(threads):
            chunks = len(pop.chunks(4))
            ce = pop.sequence_cross_entropy(x.float(), y, mask)
        results.append((chunks, ce, pop.state_dict()["m2"]))
    (one, ce_one, m2_one), (many, ce_many, m2_many), (_, ce_two, m2_two) = results
    assert one == 1 and many == 13
    # the chunks are fixed by the shapes: threads change nothing, bit for bit
    assert torch.equal(ce_two, ce_many) and torch.equal(m2_two, m2_many)
    # other chunks: vectorised loops round a value differently by its position (last bits)
    assert (ce_one - ce_many).abs().max() < 1e-6
    assert ((m2_one - m2_many).abs() / m2_one.abs().clamp_min(1)).max() < 1e-6


# ------------------------------------------------------------------------------------------
# The exported member
# ------------------------------------------------------------------------------------------


def test_export_equals_the_population_with_frozen_statistics() -> None:
    pop = DynamicPopulation(4, 3, 5, generator=gen(17))
    pop.load_state_dict(random_graphs(pop, seed=18))
    before = pop.state_dict()
    x, mask = episodes([5, 2, 5], seed=19)
    x = x.float()
    logits, h_t = pop.forward(x, mask)
    for i in range(5):
        module = pop.export(i)
        assert isinstance(module, DynamicNet) and module.num_nodes == pop.member_num_nodes(i)
        out, h = module(x, mask)
        n = module.num_nodes
        assert (out[mask] - logits[i][mask]).abs().max() < 1e-5
        assert (h - h_t[i, :, :n]).abs().max() < 1e-5
        # stepping by hand gives the same, and evaluating twice changes nothing
        hs = module.initial_state(3)
        for t in range(5):
            step, hs_new = module.forward_step(x[:, t], hs)
            hs = torch.where(mask[:, t, None], hs_new, hs)
            assert (step[mask[:, t]] - out[:, t][mask[:, t]]).abs().max() < 1e-6
        assert torch.equal(module(x, mask)[0], out)
    after = pop.state_dict()
    for name in ("count", "mean", "m2", "source", "weight"):
        assert torch.equal(after[name], before[name])


def test_exported_module_is_a_plain_recurrent_module() -> None:
    pop = DynamicPopulation(4, 2, 3, initial_mutations=4, generator=gen(20))
    x, mask = episodes([6, 4], seed=21)
    y = torch.randint(0, 2, (10,), generator=gen(22))
    pop.fitness(torch.cat([x[0, :6], x[1, :4]]).float(), y, [6, 4])  # statistics to freeze
    module = pop.export(1)
    sd = module.state_dict()
    n = module.num_nodes
    assert {k: tuple(v.shape) for k, v in sd.items() if isinstance(v, Tensor)} == {
        "weight": (n - 4, 3),
        "source": (n - 4, 3),
        "center": (n,),
        "scale": (n,),
    }
    assert sd["_extra_state"]["passes"] == int(pop.passes[1])
    assert sum(p.numel() for p in module.parameters()) == 3 * (n - 4)
    assert not any(p.requires_grad for p in module.parameters())
    fresh = DynamicNet(4, 2, int(pop.num_hidden[1]))
    fresh.load_state_dict(sd)
    xf = x.float()
    assert torch.equal(fresh(xf, mask)[0], module(xf, mask)[0])
    # a general mask (a hole): masked steps hold the state
    holes = mask.clone()
    holes[0, 2] = False
    _, h_holes = module(xf, holes)
    skipped = torch.cat([xf[:1, :2], xf[:1, 3:6]], 1)
    _, h_skip = module(skipped)
    assert (h_holes[0] - h_skip[0]).abs().max() < 1e-6
    # hbm-ne's shared evaluation accepts it (test CE, accuracy, sampled F1)
    data = EpisodeData.from_arrays(torch.cat([x[0, :6], x[1, :4]]), y, [6, 4])
    m = evaluate(module, data, f1_samples=3)
    assert set(m) == {"ce", "accuracy", "f1"} and math.isfinite(m["ce"])
    probs, _ = module.get_probs(xf, mask)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 6))


def test_population_rollouts_match_the_exported_modules() -> None:
    from hbm_ne.envs import evaluate_module, rollout

    pop = DynamicPopulation(4, 2, 4, initial_mutations=6, generator=gen(23))
    x = torch.randn(40, 4, generator=gen(24)) * 0.1
    pop.fitness(x, (x[:, 2] > 0).long(), [20, 20])
    seeds = [3, 4]
    returns, _ = rollout(pop, "CartPole-v1", seeds, deterministic=True)
    assert returns.shape == (4, 2)
    for i in range(4):
        ret = evaluate_module(pop.export(i), "CartPole-v1", seeds, deterministic=True)
        assert torch.equal(ret, returns[i])


def test_population_forward_step_equals_forward() -> None:
    pop = DynamicPopulation(4, 2, 6, generator=gen(25))
    pop.load_state_dict(random_graphs(pop, seed=26))
    x, _ = episodes([5, 5, 5], seed=27)
    x = x.float()
    logits, h_t = pop.forward(x)
    h = pop.initial_state(3)
    for t in range(5):
        step, h = pop.forward_step(x[:, t], h)
        assert (step - logits[:, :, t]).abs().max() < 1e-6
    assert (h - h_t).abs().max() < 1e-6
    per_member = x[None].expand(6, -1, -1, -1)
    step, _ = pop.forward_step(per_member[:, :, 0], pop.initial_state(3))
    assert (step - logits[:, :, 0]).abs().max() < 1e-6


# ------------------------------------------------------------------------------------------
# Mutation and selection
# ------------------------------------------------------------------------------------------


def reachable(src: list[list[int]], ni: int, no: int) -> set[int]:
    live, stack = set(range(ni, ni + no)), list(range(ni, ni + no))
    while stack:
        for s in src[stack.pop()]:
            if s not in live:
                live.add(s)
                stack.append(s)
    return live


def check_graphs(pop: DynamicPopulation) -> None:
    """Every member's graph is well formed (see DynamicPopulation's docstring)."""
    ni, no = pop.input_size, pop.output_size
    st = pop.state_dict()
    assert st["source"].shape[1] == ni + no + int(st["num_hidden"].max())
    for k in range(pop.population_size):
        n = pop.member_num_nodes(k)
        src = st["source"][k].tolist()
        assert 0 <= int(st["num_hidden"][k]) <= pop.max_hidden
        assert all(src[j] == [0, 0, 0] for j in range(ni)), "input rows are empty"
        assert all(0 <= s < n for j in range(ni, n) for s in src[j]), "three valid inputs"
        assert set(range(ni + no, n)) <= reachable(src, ni, no), "no dead hidden node"
        for name in ("source", "weight", "count", "mean", "m2"):
            assert not st[name][k, n:].any(), f"{name} padding is zero"
        assert not st["weight"][k, :ni].any()
        assert 1 <= int(st["passes"][k]) <= pop.max_passes
        assert 0 <= float(st["locality"][k]) <= 1 and float(st["grow_rate"][k]) >= 0


def test_mutation_keeps_graphs_valid_and_grows_and_prunes() -> None:
    pop = DynamicPopulation(3, 2, 12, max_hidden=8, generator=gen(28))
    check_graphs(pop)
    g = gen(29)
    sizes = set()
    cycles = 0
    for _ in range(40):
        before = pop.num_hidden.clone()
        pop.mutate_(g)
        check_graphs(pop)
        sizes.update((pop.num_hidden - before).tolist())
        for k in range(12):
            n = pop.member_num_nodes(k)
            src = pop.source[k, :n].tolist()
            cycles += sum(j in src[j] for j in range(5, n))
    assert max(pop.num_hidden.tolist()) == 8  # the cap is reached, never passed
    assert min(sizes) < 0 < max(sizes)  # nets both grow and shrink
    assert cycles > 0  # self-loops occur


def test_mutation_keeps_each_node_statistics_and_protects_elites() -> None:
    pop = DynamicPopulation(4, 2, 10, initial_mutations=3, generator=gen(30))
    x = torch.randn(30, 4, generator=gen(31))
    pop.fitness(x, (x[:, 0] > 0).long(), [10, 20])
    before = pop.state_dict()
    pop.mutate_(gen(32), start=2)
    after = pop.state_dict()
    for name in ("source", "weight", "count", "mean", "m2"):
        assert torch.equal(after[name][:2, : before[name].shape[1]], before[name][:2])
    for k in range(2, 10):
        n_old, n_new = 6 + int(before["num_hidden"][k]), pop.member_num_nodes(k)
        old = before["count"][k, :n_old], before["mean"][k, :n_old], before["m2"][k, :n_old]
        new = after["count"][k, :n_new], after["mean"][k, :n_new], after["m2"][k, :n_new]
        for o, q in zip(old, new, strict=True):  # inputs and outputs keep their positions
            assert torch.equal(o[:6], q[:6])
        old_rows = {tuple(r) for r in torch.stack(old, 1)[6:].tolist()}
        for row in torch.stack(new, 1)[6:].tolist():
            assert tuple(row) in old_rows or row == [0.0, 0.0, 0.0]  # kept, or a new node


def test_mutation_draws_only_from_the_generator_and_is_reproducible() -> None:
    torch_state, py_state = torch.random.get_rng_state(), random.getstate()
    a = DynamicPopulation(4, 2, 8, generator=gen(33))
    b = DynamicPopulation(4, 2, 8, generator=gen(33))
    for _ in range(5):
        a.mutate_(gen(34))
        b.mutate_(gen(34))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if k != "config")
    c = DynamicPopulation(4, 2, 8, generator=gen(33))
    c.mutate_(gen(35))
    a2 = DynamicPopulation(4, 2, 8, generator=gen(33))
    a2.mutate_(gen(34))
    assert not torch.equal(c.source, a2.source) or not torch.equal(c.weight, a2.weight)


def test_rates_are_per_member_and_mutate() -> None:
    pop = DynamicPopulation(4, 2, 16, rate_noise=0.2, max_passes=3, generator=gen(36))
    g = gen(37)
    for _ in range(10):
        pop.mutate_(g)
    for name in ("grow_rate", "prune_rate", "locality"):
        values = getattr(pop, name)
        assert len(set(values.tolist())) == 16, f"each member has its own {name}"
    assert set(pop.passes.tolist()) > {1} and max(pop.passes.tolist()) <= 3
    check_graphs(pop)


def test_selection_copies_graphs_rates_and_welford_statistics() -> None:
    pop = DynamicPopulation(4, 2, 6, initial_mutations=5, generator=gen(38))
    x = torch.randn(24, 4, generator=gen(39))
    pop.fitness(x, (x[:, 1] > 0).long(), [12, 12])
    before = pop.state_dict()
    idx = torch.tensor([3, 3, 0, 5, 1, 3])
    pop.select_(idx)
    after = pop.state_dict()
    for name in ("num_hidden", "source", "weight", "count", "mean", "m2", "passes", "locality"):
        assert torch.equal(after[name], before[name][idx]), name
    assert bool(after["count"][0].gt(0).any())
    # GA: slot 0 is the best member, unmutated, with its statistics; the run continues from them
    ga = GA(pop, seed=1)
    fitness = pop.fitness(x, (x[:, 1] > 0).long(), [12, 12])
    best = int(fitness.argmin())
    n = pop.member_num_nodes(best)
    kept = {k: v[best].clone() for k, v in pop.state_dict().items() if k != "config"}
    ga.tell(fitness)
    assert pop.member_num_nodes(0) == n
    for k, v in kept.items():
        got = getattr(pop, k)[0]
        assert torch.equal(got[:n], v[:n]) if v.dim() else torch.equal(got, v), k


def test_recombination_is_refused_and_odd_sizes_work() -> None:
    pop = DynamicPopulation(4, 2, 5, generator=gen(40))
    with pytest.raises(TypeError, match="GA"):
        ES(pop).tell(torch.rand(5))
    x = torch.randn(20, 4, generator=gen(41))
    y = (x[:, 0] > 0).long()
    for p in (1, 5):
        small = DynamicPopulation(4, 2, p, generator=gen(42))
        ga = GA(small, seed=3)
        for _ in range(3):
            ga.tell(small.fitness(x, y, [20]))
        assert small.fitness(x, y, [20]).shape == (p,)
        check_graphs(small)


def test_bad_inputs_are_refused() -> None:
    pop = DynamicPopulation(4, 2, 3, generator=gen(43))
    x, mask = episodes([4, 2])
    holes = mask.clone()
    holes[0, 1] = False
    with pytest.raises(ValueError, match="prefix"):
        pop.forward(x, holes)
    with pytest.raises(ValueError, match="sum to"):
        pop.fitness(torch.zeros(5, 4), torch.zeros(5, dtype=torch.long), [2, 2])
    with pytest.raises(ValueError, match="actions must be in"):
        pop.fitness(torch.zeros(4, 4), torch.full((4,), 2), [4])
    with pytest.raises(ValueError, match="obs must be"):
        pop.fitness(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), [4])
    with pytest.raises(ValueError, match="population state is for"):
        DynamicPopulation(4, 2, 3, max_hidden=5).load_state_dict(pop.state_dict())


def test_pack_episodes_orders_steps_time_major_longest_first() -> None:
    obs = torch.arange(9.0)[:, None].expand(9, 4)
    packed = pack_episodes(obs, [2, 4, 3], torch.arange(9))
    assert packed.batch_sizes == (3, 3, 2, 1)
    assert packed.episodes.tolist() == [1, 2, 0, 1, 2, 0, 1, 2, 1]
    assert packed.steps.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 3]
    assert packed.x[0].tolist() == [2, 6, 0, 3, 7, 1, 4, 8, 5]
    assert packed.targets is not None and packed.targets.tolist() == packed.x[0].long().tolist()
    sub = pack_episodes(obs, [2, 4, 3], torch.arange(9), episodes=[2, 0])
    assert sub.x[0].tolist() == [6, 0, 7, 1, 8] and sub.num_steps == 5


# ------------------------------------------------------------------------------------------
# Checkpoints and evolution
# ------------------------------------------------------------------------------------------


def scripted_subject(
    num_episodes: int, seed: int, *, noise: float = 0.1
) -> tuple[Tensor, Tensor, list[int]]:
    """A simulated subject on CartPole-shaped data: smooth random-walk observations, action 1
    when x2 + 0.5·x3 > 0 (the pole falls right), flipped with probability `noise`."""
    g = gen(seed)
    lengths = [int(v) for v in torch.randint(15, 40, (num_episodes,), generator=g)]
    obs = torch.cat([torch.cumsum(torch.randn(n, 4, generator=g) * 0.3, 0) for n in lengths])
    act = (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()
    flip = torch.rand(len(act), generator=g) < noise
    return obs, torch.where(flip, 1 - act, act), lengths


def test_state_dict_round_trip_restores_every_member() -> None:
    pop = DynamicPopulation(4, 2, 6, initial_mutations=4, generator=gen(44))
    obs, act, lengths = scripted_subject(4, 45)
    pop.fitness(obs, act, lengths)
    other = DynamicPopulation(4, 2, 6, initial_mutations=4, generator=gen(99))
    other.load_state_dict(pop.state_dict())
    assert torch.equal(other.fitness(obs, act, lengths), pop.fitness(obs, act, lengths))
    x, mask = episodes([5, 3], seed=46)
    assert torch.equal(other.export(2)(x.float(), mask)[0], pop.export(2)(x.float(), mask)[0])


def test_evolve_resumes_bit_for_bit(tmp_path: Path) -> None:
    obs, act, lengths = scripted_subject(8, 47)
    train = EpisodeData.from_arrays(obs, act, lengths)
    tobs, tact, tlen = scripted_subject(3, 48)
    test = EpisodeData.from_arrays(tobs, tact, tlen)
    kw: dict[str, Any] = dict(
        batch_size=5, eval_every=2, seed=4, checkpoint_every=None, checkpoint_every_seconds=None
    )

    def make() -> DynamicPopulation:
        return DynamicPopulation(4, 2, 9, generator=gen(49))

    full_pop = make()
    full = evolve_dynamic(full_pop, train, test, max_generations=6, **kw)
    ckpt = tmp_path / "dyn.pt"
    evolve_dynamic(make(), train, test, max_generations=3, checkpoint_path=ckpt, **kw)
    assert ckpt.exists()
    resumed_pop = make()  # a fresh process would rebuild exactly this
    resumed = evolve_dynamic(
        resumed_pop, train, test, max_generations=6, checkpoint_path=ckpt, **kw
    )
    assert resumed.resumed_from == 3 and resumed.generations == 6
    a, b = full_pop.state_dict(), resumed_pop.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k != "config")
    strip = ("elapsed",)
    rows = [{k: v for k, v in r.items() if k not in strip} for r in full.history]
    assert rows == [{k: v for k, v in r.items() if k not in strip} for r in resumed.history]
    assert full.fitness_history == resumed.fitness_history
    assert isinstance(resumed.model, DynamicNet)
    sd_a, sd_b = full.model.state_dict(), resumed.model.state_dict()  # type: ignore[union-attr]
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a if k != "_extra_state")
    with pytest.raises(CheckpointError, match="batch_size"):
        evolve_dynamic(
            make(), train, test, max_generations=7, checkpoint_path=ckpt, **{**kw, "batch_size": 4}
        )


def test_evolution_improves_cross_entropy_on_a_simulated_subject() -> None:
    obs, act, lengths = scripted_subject(20, 50)
    train = EpisodeData.from_arrays(obs, act, lengths)
    tobs, tact, tlen = scripted_subject(8, 51)
    test = EpisodeData.from_arrays(tobs, tact, tlen)
    pop = DynamicPopulation(4, 2, 32, generator=gen(52))
    seen: list[int] = []
    result = evolve_dynamic(
        pop,
        train,
        test,
        max_generations=40,
        eval_every=13,
        batch_size=10,
        seed=5,
        callbacks=[lambda p: seen.append(p.step)],
    )
    assert result.stop_reason == "max_generations" and seen == list(range(40))
    rows = result.history
    assert [r["generation"] for r in rows] == [0, 13, 26, 39]
    assert all({"train_loss", "test_ce", "elapsed", "generation"} <= set(r) for r in rows)
    first, last = rows[0]["test_ce"], rows[-1]["test_ce"]
    assert last < first - 0.05 and last < math.log(2) - 0.05, (first, last)
    assert result.fitness_history[-1] < result.fitness_history[0]
    # the returned model is the last row's member: evaluating it again gives that row
    m = evaluate(result.model, test, f1_samples=10, seed=5, step=39)  # type: ignore[arg-type]
    assert abs(m["ce"] - last) < 1e-6


def test_evolve_dynamic_checks_its_arguments() -> None:
    pop = DynamicPopulation(4, 2, 4, generator=gen(53))
    obs, act, lengths = scripted_subject(3, 54)
    with pytest.raises(ValueError, match="elitism"):
        evolve_dynamic(pop, EpisodeData.from_arrays(obs, act, lengths), elitism=0)
    with pytest.raises(ValueError, match="episodes"):
        evolve_dynamic(pop, (obs, act), max_generations=1)
    stopped = evolve_dynamic(
        pop,
        EpisodeData.from_arrays(obs, act, lengths),
        max_generations=50,
        callbacks=[lambda p: p.step >= 2],
    )
    assert stopped.stop_reason == "callback" and stopped.generations == 3
