from __future__ import annotations

import math
import os

import pytest
import torch
from hbm_ne import CMAES, ES, GA, BatchedFeedforward, BatchedRecurrent, Population
from ne_helpers import assert_close


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- mutation -------------------------------------------------------------------------------
def test_fixed_mutation_statistics() -> None:
    pop = Population(torch.zeros(200, 500), sigma_init=0.03, adaptive=False)
    assert pop.sigma is None
    pop.mutate_(gen())
    delta = pop.params
    assert abs(delta.mean().item()) < 0.03 * 0.01
    assert abs(delta.std().item() / 0.03 - 1) < 0.01


def test_adaptive_mutation_statistics() -> None:
    pop = Population(torch.zeros(200, 500), sigma_init=0.1, tau=0.2, adaptive=True)
    assert pop.sigma is not None
    pop.mutate_(gen())
    # sigma ← sigma·(1 + τ ξ): mean 0.1, std 0.1·τ
    assert abs(pop.sigma.mean().item() / 0.1 - 1) < 0.005
    assert abs(pop.sigma.std().item() / (0.1 * 0.2) - 1) < 0.02
    # θ += σ_new·ε: the step is scaled by the *new* sigma, element by element
    z = pop.params / pop.sigma
    assert abs(z.std().item() - 1) < 0.01 and abs(z.mean().item()) < 0.01


def test_mutation_protects_elites_and_is_reproducible() -> None:
    a = Population(torch.zeros(6, 10), sigma_init=0.1)
    b = Population(torch.zeros(6, 10), sigma_init=0.1)
    a.mutate_(gen(3), start=2)
    b.mutate_(gen(3), start=2)
    assert torch.equal(a.params, b.params)
    assert not a.params[:2].any() and a.params[2:].all()
    assert a.sigma is not None and torch.equal(a.sigma[:2], torch.full((2, 10), 0.1))


# -- GA -------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [5, 7, 8, 1])
def test_ga_truncation_selection_any_p(p: int) -> None:
    pop = Population(torch.arange(float(p))[:, None].repeat(1, 3), sigma_init=1e-3)
    ga = GA(pop, survival=0.5, elitism=1, generator=gen())
    fitness = torch.tensor([float((7 * i) % p) for i in range(p)])  # a permutation
    order = torch.argsort(fitness)
    k = max(1, p // 2)
    idx = ga.selection_indices(fitness)
    assert idx.shape == (p,)
    assert torch.equal(idx, order[:k][torch.arange(p) % k])
    ga.tell(fitness)
    assert pop.params.shape == (p, 3)
    # elite: the best member, unmutated, in slot 0
    assert torch.equal(pop.params[0], torch.full((3,), float(order[0])))
    # every other slot descends from a survivor, mutated
    if p > 1:
        parents = pop.params[1:].round()
        assert set(parents[:, 0].tolist()) <= set(order[:k].float().tolist())
        assert not torch.equal(pop.params[1:], parents)
    assert ga.generation == 1


def test_ga_nan_fitness_is_never_selected() -> None:
    pop = Population(torch.arange(4.0)[:, None], sigma_init=1e-6)
    ga = GA(pop, elitism=2, generator=gen())
    ga.tell(torch.tensor([float("nan"), 3.0, 1.0, 2.0]))
    assert sorted(pop.params[:2, 0].tolist()) == [2.0, 3.0]


def test_ga_selection_follows_lineage_of_sigma() -> None:
    pop = Population(torch.zeros(4, 2), sigma_init=1.0)
    assert pop.sigma is not None
    pop.sigma.copy_(torch.tensor([[1.0], [2.0], [3.0], [4.0]]).expand(4, 2))
    pop.tau = 0.0  # sigma is not mutated: only selection moves it
    ga = GA(pop, elitism=1, generator=gen())
    ga.tell(torch.tensor([4.0, 3.0, 2.0, 1.0]))
    assert pop.sigma[:, 0].tolist() == [4.0, 3.0, 4.0, 3.0]


# -- ES -------------------------------------------------------------------------------------
def test_softmax_es_weights_and_recombination() -> None:
    pop = Population(torch.arange(4.0)[:, None].repeat(1, 2), sigma_init=0.5)
    es = ES(pop, method="softmax", generator=gen())
    f = torch.tensor([3.0, 1.0, 2.0, 5.0])
    z = -(f - f.mean()) / f.std(unbiased=False)
    expected = torch.softmax(z, 0)
    w = es.softmax_weights(f)
    assert_close(w, expected.double())
    assert int(w.argmax()) == 1 and abs(float(w.sum()) - 1) < 1e-12
    mean = float(expected @ torch.arange(4.0))
    assert pop.sigma is not None
    pop.sigma.copy_(torch.arange(4.0)[:, None].expand(4, 2))
    sigma_mean = mean  # sigmas are recombined with the same weights
    pop.tau = 0.0  # isolate the recombination: σ stays at its mean
    es.tell(f)
    assert_close(pop.sigma, torch.full((4, 2), sigma_mean), atol=1e-6, rtol=1e-6)
    assert abs(pop.params.mean().item() - mean) < 4 * sigma_mean
    assert pop.params.std().item() > 0  # re-diversified by mutation


def test_openai_es_antithetic_and_gradient_direction() -> None:
    d = 5
    pop = Population(torch.ones(10, d), sigma_init=1e-3, adaptive=False)
    es = ES(pop, method="openai", noise_std=0.1, learning_rate=0.05, optimizer="sgd")
    x = es.ask()
    assert_close(x[:5] - 1, -(x[5:] - 1))  # θ ± σε
    for _ in range(300):
        x = es.ask()
        es.tell((x**2).sum(1))
    center = es.center()
    assert center is not None and float((center**2).sum()) < 0.05
    ranks = ES.centered_ranks(torch.tensor([3.0, 1.0, 2.0]))
    assert ranks.tolist() == [0.5, -0.5, 0.0]
    with pytest.raises(ValueError, match="even"):
        ES(Population(torch.zeros(5, 2)), method="openai")


def test_es_refuses_per_member_reservoirs() -> None:
    pop = BatchedRecurrent(3, 2, 4, 5, shared_reservoir=False, generator=gen())
    with pytest.raises(ValueError, match="shared_reservoir"):
        ES(pop)
    with pytest.raises(ValueError, match="shared_reservoir"):
        CMAES(pop)


# -- CMA-ES ---------------------------------------------------------------------------------
def sphere(x: torch.Tensor) -> torch.Tensor:
    return (x.double() ** 2).sum(-1)


def ellipsoid(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1]
    scale = 1e6 ** (torch.arange(n, dtype=torch.float64) / max(n - 1, 1))
    return (scale * x.double() ** 2).sum(-1)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return (100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2).sum(-1)


def run_cmaes(fn, d: int, diagonal: bool, seed: int = 0, max_evals: int = 10**6) -> int | None:  # type: ignore[no-untyped-def]
    lam = 4 + int(3 * math.log(d))
    pop = Population(torch.zeros(lam, d, dtype=torch.float64))
    mean = torch.full((d,), 0.5 if fn is not rosenbrock else 0.0, dtype=torch.float64)
    es = CMAES(pop, sigma0=0.5, mean=mean, diagonal=diagonal, seed=seed)
    evals = 0
    while evals < max_evals:
        f = fn(es.ask())
        evals += lam
        if float(f.min()) < 1e-8:
            return evals
        es.tell(f)
    return None


@pytest.mark.parametrize("diagonal", [True, False])
def test_cmaes_solves_small_sphere_and_ellipsoid(diagonal: bool) -> None:
    evals = run_cmaes(sphere, 8, diagonal, max_evals=20000)
    assert evals is not None and evals < 5000
    evals = run_cmaes(ellipsoid, 6, diagonal, max_evals=40000)
    assert evals is not None


def test_cmaes_state_dict_round_trip() -> None:
    def make() -> CMAES:
        return CMAES(Population(torch.zeros(8, 4, dtype=torch.float64)), sigma0=0.3, seed=5)

    a, b = make(), make()
    for _ in range(5):
        a.tell(sphere(a.ask()))
    b.load_state_dict(a.state_dict())
    xa, xb = a.ask().clone(), b.ask().clone()
    assert torch.equal(xa, xb)
    with pytest.raises(ValueError, match="algorithm state"):
        CMAES(Population(torch.zeros(8, 4)), diagonal=True).load_state_dict(a.state_dict())


def test_cmaes_on_network_population_starts_at_member_zero() -> None:
    pop = BatchedFeedforward(4, 2, 10, generator=gen())
    first = pop.params[0].clone()
    es = CMAES(pop, sigma0=1e-9)
    x = es.ask()
    assert_close(x, first.expand_as(x), atol=1e-6, rtol=0)
    assert not es.diagonal and CMAES(pop, diagonal=True).diagonal


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "d", "diagonal"),
    [
        ("sphere", 10, False),
        ("sphere", 100, False),
        ("sphere", 100, True),
        ("ellipsoid", 10, False),
        ("ellipsoid", 30, False),
        ("ellipsoid", 100, True),
        ("rosenbrock", 10, False),
        ("rosenbrock", 30, False),
    ],
)
def test_cmaes_within_twice_the_evaluations_of_pycma(name: str, d: int, diagonal: bool) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cma = pytest.importorskip("cma")
    import numpy as np

    fns = {"sphere": sphere, "ellipsoid": ellipsoid, "rosenbrock": rosenbrock}
    fn = fns[name]
    x0 = 0.0 if name == "rosenbrock" else 0.5
    theirs, ours = [], []
    for seed in range(3):
        opts = {"seed": seed + 1, "verbose": -9, "ftarget": 1e-8, "maxfevals": 10**6}
        if diagonal:
            opts["CMA_diagonal"] = True
        es = cma.CMAEvolutionStrategy(np.full(d, x0), 0.5, opts)
        es.optimize(lambda x: float(fn(torch.as_tensor(np.asarray(x)))))
        assert es.result.fbest < 1e-8
        theirs.append(es.result.evaluations)
        got = run_cmaes(fn, d, diagonal, seed=seed)
        assert got is not None
        ours.append(got)
    assert np.median(ours) <= 2 * np.median(theirs), (ours, theirs)
