"""hbm-ne kernels: population cross-entropy fitness and one GA generation.

Every figure is a ratio against references measured in the same process:
- fitness: hbm-ne's `cross_entropy` vs the straightforward `baddbmm` + `tanh` + `cross_entropy`
  and vs a Python loop over `nn.Module` members; GFLOP/s shown as a share of the same run's
  `torch.matmul` peak;
- GA generation (fitness + selection + adaptive mutation) vs EvoTorch's GeneticAlgorithm on the
  same network, data and population size with a vectorised (batched) fitness; EvoTorch is
  imported lazily (installed in the bench nox session only) and reported missing otherwise;
- CMA-ES sample efficiency: evaluations to f < 1e-8 (median of 3 seeds) vs pycma's defaults
  (active CMA, same population size, x0 and sigma0) on standard functions, full covariance,
  and separable CMA-ES vs pycma's `CMA_diagonal=True`. The ratio is pycma's evaluations over
  ours (the target 1/1.2: at most 1.2x pycma's evaluations).

Threads: on CPU every implementation, subject and references alike, is timed both with one
intra-op thread and with torch's default, and credited with its faster setting (reported in
`extra`). On a loaded shared machine a second OpenMP thread turns each parallel kernel into a
wait for a descheduled core (several ms per kernel), on a quiet one it helps; best-of keeps
the comparison fair either way. Within one thread count the implementations alternate, each
sample after a short idle (`SETTLE_S`) so that none pays for the spinning OpenMP workers that
the previous one left, then an untimed call of its own (so that none pays for the idle).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _harness import Result, interleaved, time_call, torch_threads
from hbm_ne import CMAES, GA, BatchedFeedforward, Population, cross_entropy
from torch import nn

SUITE = "ne"
TASKS = {"cartpole": (4, 2), "lunarlander": (8, 4)}
H = 50
N = 3200
#: Idle before each fitness sample: outlasts the spin-wait of the OpenMP workers that the
#: previous sample (a reference on two threads) leaves behind (see `_harness.interleaved`).
SETTLE_S = 0.01


def _peak_gflops(device: torch.device, quick: bool) -> float:
    n = 1024 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)

    def mm() -> None:
        torch.matmul(a, b, out=c)
        _sync(device)

    t = time_call(mm, repeat=3 if quick else 7, number=2)
    return 2 * n**3 / t / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _thread_counts(device: torch.device) -> list[int]:
    return sorted({1, torch.get_num_threads()}) if device.type == "cpu" else [0]


def _best_of_threads(
    fns: dict[str, Callable[[], object]],
    device: torch.device,
    *,
    repeat: int,
    number: int = 1,
    settle: float = 0.0,
) -> tuple[dict[str, float], dict[str, object]]:
    """Every fn timed at every thread count -> (best seconds, details).

    One thread count at a time, the fns interleaved within it: switching the count between
    samples would leave each sample with caches and worker threads set up for the other.
    """
    counts = _thread_counts(device)
    timed: dict[int, dict[str, float]] = {}
    for t in counts:
        with torch_threads(t):
            timed[t] = interleaved(fns, repeat=repeat, number=number, settle=settle)
    best, detail = {}, {}
    for k in fns:
        per = {t: timed[t][k] for t in counts}
        t_best = min(per, key=per.__getitem__)
        best[k] = per[t_best]
        detail[f"{k}_threads"] = t_best
        if len(counts) > 1:
            detail[f"{k}_ms_by_threads"] = {t: round(v * 1e3, 2) for t, v in per.items()}
    return best, detail


def _flops(p: int, n: int, inp: int, out: int) -> float:
    return 2.0 * p * n * (inp * H + H * out)


def _straightforward(pop: BatchedFeedforward, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What one writes first: stacked weights, baddbmm, tanh, F.cross_entropy (fresh tensors)."""
    v = pop.views()
    p, n = pop.population_size, x.shape[0]
    h = torch.baddbmm(
        v["hidden.0.bias"].unsqueeze(1),
        x.expand(p, n, x.shape[1]),
        v["hidden.0.weight"].transpose(1, 2),
    ).tanh_()
    logits = torch.baddbmm(v["output.bias"].unsqueeze(1), h, v["output.weight"].transpose(1, 2))
    ce = F.cross_entropy(logits.reshape(p * n, -1), y.repeat(p), reduction="none").view(p, n)
    return ce.mean(1)


def _loop(modules: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([F.cross_entropy(m(x), y) for m in modules])


def _data(inp: int, out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, inp, generator=g)
    teacher = BatchedFeedforward(inp, out, 1, generator=g)
    y = torch.distributions.Categorical(logits=teacher(x)[0] * 3).sample()
    return x.to(device), y.to(device)


def bench_fitness(device: torch.device, quick: bool, peak: float) -> list[Result]:
    results = []
    sizes = (50, 1024) if quick else (50, 256, 1024)
    for task, (inp, out) in TASKS.items():
        x, y = _data(inp, out, device)
        for p in sizes:
            pop = BatchedFeedforward(
                inp, out, p, generator=torch.Generator().manual_seed(1), device=device
            )
            modules = [pop.export(i) for i in range(p)]
            ours = cross_entropy(pop, x, y)
            for ref in (_straightforward(pop, x, y), _loop(modules, x, y)):
                err = float((ours - ref).abs().max())
                if err > 1e-4:
                    raise AssertionError(f"{task} P={p}: fitness differs from reference by {err}")

            def run(fn):  # type: ignore[no-untyped-def]
                def call() -> None:
                    fn()
                    _sync(device)

                return call

            times, threads = _best_of_threads(
                {
                    "ours": run(lambda: cross_entropy(pop, x, y)),  # noqa: B023
                    "baddbmm": run(lambda: _straightforward(pop, x, y)),  # noqa: B023
                    "loop": run(lambda: _loop(modules, x, y)),  # noqa: B023
                },
                device,
                repeat=3 if quick else (15 if p <= 256 else 7),  # small P: cheap, noisier
                settle=SETTLE_S if device.type == "cpu" else 0.0,
            )
            if p >= 256:
                threads["breakdown_1thread"] = _ce_breakdown(pop, x, y, repeat=3 if quick else 5)
            flops = _flops(p, N, inp, out)
            gf = {k: flops / t / 1e9 for k, t in times.items()}
            extra = {
                "P": p,
                "N": N,
                "task": task,
                "peak_matmul_gflops": round(peak, 1),
                **threads,
                **{f"{k}_ms": round(t * 1e3, 2) for k, t in times.items()},
                **{f"{k}_share_of_peak": f"{100 * g / peak:.1f}%" for k, g in gf.items()},
            }
            for ref in ("baddbmm", "loop"):
                results.append(
                    Result(
                        SUITE,
                        f"fitness CE {task} P={p} N={N}",
                        "GFLOP/s",
                        gf["ours"],
                        f"{ref} ({100 * gf[ref] / peak:.1f}% of peak)",
                        gf[ref],
                        target=3.0,
                        extra={**extra, "ours_share_of_peak": f"{100 * gf['ours'] / peak:.1f}%"},
                    )
                )
    return results


def _ce_breakdown(
    pop: BatchedFeedforward, x: torch.Tensor, y: torch.Tensor, repeat: int
) -> dict[str, object]:
    """Where population cross-entropy spends its time, on one thread: each part of the
    kernel's per-member work timed alone over all P members (layer-1 product with the bias
    row, the hidden activation of the `[H, N]` tile, output product, loss over the logits),
    against the whole `cross_entropy` call and the `baddbmm` reference. The kernel computes
    tanh in sigmoid form (`_kernels._sigmoid_form`); `tanh` is what torch's tanh of the same
    tile costs, and `baddbmm_over_tanh` the ratio any kernel that calls it would be held to."""
    from hbm_ne._kernels import _multiclass_sums, _softplus_sums, class_indicator

    v = pop.views()
    p, n, out = pop.population_size, x.shape[0], pop.output_size
    w1 = torch.cat([v["hidden.0.weight"], v["hidden.0.bias"].unsqueeze(2)], 2)  # [P, H, in+1]
    x_aug = torch.cat([x.T, x.new_ones(1, n)])  # [in+1, N]
    w2 = v["output.weight"]  # [P, out, H]
    if out == 2:
        w2 = w2[:, 1:2] - w2[:, 0:1]  # the margin unit
    w1s, w2s = w1.unbind(0), w2.contiguous().unbind(0)
    h, h2 = torch.empty(H, n), torch.empty(H, n)
    torch.mm(w1s[0], x_aug, out=h)
    logits = torch.empty(p, w2.shape[1], n)
    rows = logits.unbind(0)
    signs = 1.0 - 2.0 * y.float()
    onehot = class_indicator(y, out, None, torch.float32)

    def layer1() -> None:
        for j in range(p):
            torch.mm(w1s[j], x_aug, out=h2)

    def tanh() -> None:
        for _ in range(p):
            torch.tanh(h, out=h2)

    def sigmoid() -> None:
        for _ in range(p):
            torch.sigmoid(h, out=h2)

    def layer2() -> None:
        for j in range(p):
            torch.mm(w2s[j], h, out=rows[j])

    def loss() -> None:
        if out == 2:
            _softplus_sums(logits[:, 0] * signs, None, False)
        else:
            _multiclass_sums(logits.clone(), onehot, None, True, False)

    with torch_threads(1):
        t = interleaved(
            {
                "layer1_mm": layer1,
                "sigmoid": sigmoid,
                "tanh": tanh,
                "layer2_mm": layer2,
                "loss": loss,
                "ours": lambda: cross_entropy(pop, x, y),
                "baddbmm": lambda: _straightforward(pop, x, y),
            },
            repeat=repeat,
            settle=SETTLE_S,
        )
    parts = ("layer1_mm", "sigmoid", "layer2_mm", "loss")
    return {
        "ms": {k: round(v * 1e3, 2) for k, v in t.items()},
        "share_of_ours": {k: f"{100 * t[k] / t['ours']:.0f}%" for k in parts},
        "parts_sum_share": f"{100 * sum(t[k] for k in parts) / t['ours']:.0f}%",
        "baddbmm_over_tanh": round(t["baddbmm"] / t["tanh"], 2),
    }


def bench_ga(device: torch.device, quick: bool) -> list[Result]:
    inp, out = TASKS["cartpole"]
    x, y = _data(inp, out, device)
    results = []
    for p in (50, 1024):
        gens = 5 if quick else 15
        if p == 50:
            gens *= 8
        pop = BatchedFeedforward(
            inp, out, p, sigma_init=0.01, device=device, generator=torch.Generator().manual_seed(2)
        )
        ga = GA(pop, seed=3)
        phases = {"fitness": 0.0, "selection": 0.0, "mutation": 0.0}
        generation = _ga_generation(pop, ga, x, y, device, phases)

        fns = {"hbm_ne": generation}
        evo = _evotorch_ga(pop, x, y, p, device)
        if evo is not None:
            fns["evotorch"] = evo
        times, threads = _best_of_threads(fns, device, repeat=3, number=max(1, gens // 3))
        total = sum(phases.values())
        shares = {k: f"{100 * v / total:.1f}%" for k, v in phases.items()}
        results.append(
            Result(
                SUITE,
                f"GA generation cartpole P={p} N={N}",
                "gen/s",
                1 / times["hbm_ne"],
                "evotorch GeneticAlgorithm, vectorised fitness"
                if evo is not None
                else "evotorch (not installed)",
                1 / times["evotorch"] if evo is not None else float("nan"),
                target=2.0,
                extra={
                    "phase_shares": shares,
                    **({} if evo is not None else {"note": "pip install evotorch"}),
                    **threads,
                },
            )
        )
    return results


def _ga_generation(pop, ga, x, y, device, phases):  # type: ignore[no-untyped-def]
    """One hbm-ne GA generation, timing each phase into `phases`."""

    def generation() -> None:
        t0 = time.perf_counter()
        ga.ask()
        f = cross_entropy(pop, x, y)
        _sync(device)
        t1 = time.perf_counter()
        pop.select_(ga.selection_indices(f))
        _sync(device)
        t2 = time.perf_counter()
        pop.mutate_(ga.generator, start=ga.elitism)
        _sync(device)
        t3 = time.perf_counter()
        phases["fitness"] += t1 - t0
        phases["selection"] += t2 - t1
        phases["mutation"] += t3 - t2

    return generation


def _evotorch_ga(
    pop: BatchedFeedforward, x: torch.Tensor, y: torch.Tensor, p: int, device: torch.device
):  # type: ignore[no-untyped-def]
    try:
        from evotorch import Problem
        from evotorch.algorithms import GeneticAlgorithm
        from evotorch.operators import GaussianMutation
    except ImportError:
        return None
    layout = pop.views(pop.params)
    shapes = {k: v.shape[1:] for k, v in layout.items()}
    inp = pop.input_size

    def fitness(solutions: torch.Tensor) -> torch.Tensor:
        # The natural vectorised fitness an EvoTorch user writes: views + baddbmm + tanh + CE.
        s = solutions.as_subclass(torch.Tensor)
        n_sol = s.shape[0]
        off, parts = 0, {}
        for k, shp in shapes.items():
            size = int(torch.Size(shp).numel())
            parts[k] = s[:, off : off + size].reshape(n_sol, *shp)
            off += size
        h = torch.baddbmm(
            parts["hidden.0.bias"].unsqueeze(1),
            x.expand(n_sol, -1, inp),
            parts["hidden.0.weight"].transpose(1, 2),
        ).tanh_()
        logits = torch.baddbmm(
            parts["output.bias"].unsqueeze(1), h, parts["output.weight"].transpose(1, 2)
        )
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.repeat(n_sol), reduction="none"
        )
        return ce.view(n_sol, -1).mean(1)

    problem = Problem(
        "min",
        fitness,
        solution_length=pop.num_params,
        vectorized=True,
        initial_bounds=(-0.5, 0.5),
        device=device,
    )
    searcher = GeneticAlgorithm(
        problem, operators=[GaussianMutation(problem, stdev=0.01)], popsize=p, re_evaluate=False
    )

    def step() -> None:
        searcher.step()
        _sync(device)

    return step


def _scales(d: int, name: str) -> torch.Tensor:
    i = torch.arange(d, dtype=torch.float64)
    if name in ("ellipsoid", "rot_ellipsoid"):
        return 1e6 ** (i / max(d - 1, 1))
    s = torch.ones(d, dtype=torch.float64)
    if name == "tablet":
        s[0] = 1e6
    elif name == "cigar":
        s[1:] = 1e6
    return s


def test_function(name: str, d: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Standard CMA-ES test functions of `x [P, D]` -> `[P]` float64 (f* = 0)."""
    s = _scales(d, name)
    if name in ("sphere", "ellipsoid", "tablet", "cigar"):
        return lambda x: (s * x.double() ** 2).sum(-1)
    if name == "rot_ellipsoid":  # a fixed random rotation
        g = torch.Generator().manual_seed(12345)
        q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        rot = q * torch.sign(torch.diagonal(r))
        return lambda x: (s * (x.double() @ rot.T) ** 2).sum(-1)
    if name == "diffpow":
        e = 2 + 4 * torch.arange(d, dtype=torch.float64) / max(d - 1, 1)
        return lambda x: (x.double().abs() ** e).sum(-1)
    if name == "rosenbrock":
        return lambda x: (
            100 * (x[..., 1:].double() - x[..., :-1].double() ** 2) ** 2
            + (1 - x[..., :-1].double()) ** 2
        ).sum(-1)
    raise KeyError(name)


def _ours_evals(name: str, d: int, seed: int, diagonal: bool) -> int:
    fn, lam = test_function(name, d), 4 + int(3 * math.log(d))
    x0 = torch.full((d,), 0.0 if name == "rosenbrock" else 0.5, dtype=torch.float64)
    es = CMAES(Population(torch.zeros(lam, d, dtype=torch.float64)), sigma0=0.5, mean=x0,
               diagonal=diagonal, seed=seed)  # fmt: skip
    evals = 0
    while evals < 10**6:
        f = fn(es.ask())
        evals += lam
        if float(f.min()) < 1e-8:
            return evals
        es.tell(f)
    raise AssertionError(f"hbm-ne CMA-ES did not reach 1e-8 on {name} D={d}")


def _pycma_evals(cma, name: str, d: int, seed: int, diagonal: bool) -> int:  # type: ignore[no-untyped-def]
    import numpy as np

    fn = test_function(name, d)
    opts = {"seed": seed + 1, "verbose": -9, "ftarget": 1e-8, "maxfevals": 10**6}
    if diagonal:
        opts["CMA_diagonal"] = True
    es = cma.CMAEvolutionStrategy(np.full(d, 0.0 if name == "rosenbrock" else 0.5), 0.5, opts)
    while not es.stop():
        x = es.ask()
        es.tell(x, fn(torch.as_tensor(np.asarray(x))).tolist())
    if es.result.fbest >= 1e-8:
        raise AssertionError(f"pycma did not reach 1e-8 on {name} D={d}: {es.stop()}")
    return int(es.result.evaluations)


def bench_cmaes(quick: bool) -> list[Result]:
    try:
        import cma
    except ImportError:
        return []
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    functions = ("sphere", "ellipsoid", "rot_ellipsoid", "tablet", "cigar", "diffpow", "rosenbrock")
    cases = [(f, d, False) for d in ((10,) if quick else (10, 40)) for f in functions]
    if not quick:
        cases += [(f, 100, False) for f in ("sphere", "cigar")]  # the others take minutes
        cases += [(f, 40, True) for f in ("sphere", "ellipsoid", "tablet", "cigar", "diffpow")]
    results = []
    seeds = range(3)
    with torch_threads(1):
        for name, d, diagonal in cases:
            ours = [_ours_evals(name, d, s, diagonal) for s in seeds]
            theirs = [_pycma_evals(cma, name, d, s, diagonal) for s in seeds]
            kind = "sep-CMA-ES" if diagonal else "CMA-ES"
            results.append(
                Result(
                    SUITE,
                    f"{kind} evaluations to 1e-8, {name} D={d}",
                    "evaluations",
                    statistics.median(ours),
                    "pycma " + ("CMA_diagonal=True" if diagonal else "defaults (active)"),
                    statistics.median(theirs),
                    higher_is_better=False,
                    target=1 / 1.2,
                    extra={"ours": ours, "pycma": theirs, "popsize": 4 + int(3 * math.log(d))},
                )
            )
    return results


def run(args: argparse.Namespace) -> list[Result]:
    device = torch.device(getattr(args, "device", "cpu"))
    quick = bool(getattr(args, "quick", False))
    peak = _peak_gflops(device, quick)
    return bench_fitness(device, quick, peak) + bench_ga(device, quick) + bench_cmaes(quick)
