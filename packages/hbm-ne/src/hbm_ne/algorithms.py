"""Evolutionary algorithms over a population's `[P, D]` parameters, with one ask/tell interface.

`ask()` fills the population with the candidates to evaluate and returns `params [P, D]`;
`tell(fitness [P])` (a loss: lower is better) updates the algorithm and the population.
Every algorithm draws from its own explicit `torch.Generator` (on the population's device) and
saves it in `state_dict()`, so a checkpointed run resumes bit for bit.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor

from hbm_ne.population import Population

logger = logging.getLogger(__name__)


def _finite(fitness: Tensor) -> Tensor:
    """NaN fitness ranks last (a diverged member must never be selected)."""
    return torch.nan_to_num(fitness.double(), nan=math.inf)


class Algorithm:
    """Base class: holds the population, a generator and the generation counter."""

    def __init__(
        self,
        population: Population,
        *,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.population = population
        if generator is None:
            generator = torch.Generator(device=population.device).manual_seed(seed)
        elif generator.device != population.device:
            raise ValueError(
                f"generator is on {generator.device}, population on {population.device}"
            )
        self.generator = generator
        self.generation = 0

    def ask(self) -> Tensor:
        """Candidates to evaluate (the population's own `params [P, D]`)."""
        return self.population.params

    def tell(self, fitness: Tensor) -> None:
        raise NotImplementedError

    def _check_fitness(self, fitness: Tensor) -> Tensor:
        p = self.population.population_size
        if fitness.shape != (p,):
            raise ValueError(f"fitness must be [{p}], got {tuple(fitness.shape)}")
        return _finite(fitness.to(self.population.device))

    def center(self) -> Tensor | None:
        """The algorithm's own estimate of the solution `[D]` (a search mean), if it has one."""
        return None

    def config(self) -> dict[str, Any]:
        return {"class": type(self).__name__}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config(),
            "generation": self.generation,
            "generator": self.generator.get_state(),
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("config") != self.config():
            raise ValueError(
                f"algorithm state is for {state.get('config')}, this algorithm is {self.config()}"
            )
        self.generation = int(state["generation"])
        self.generator.set_state(state["generator"])
        self._load_extra_state(state)


class GA(Algorithm):
    """Truncation-selection GA with elitism.

    `tell`: the best `survival` fraction survives (at least one member, any P, odd included);
    slot i receives survivor `i mod k` in rank order, so slot 0 is the best member. The first
    `elitism` slots are kept unmutated; every other slot is mutated with the population's own
    mutation (fixed or self-adaptive sigma).
    """

    def __init__(
        self,
        population: Population,
        *,
        survival: float = 0.5,
        elitism: int = 1,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(population, seed=seed, generator=generator)
        if not 0 < survival <= 1:
            raise ValueError(f"survival must be in (0, 1], got {survival}")
        if not 0 <= elitism <= population.population_size:
            raise ValueError(f"elitism must be in [0, P], got {elitism}")
        self.survival = float(survival)
        self.elitism = int(elitism)
        self.num_survivors = max(1, int(population.population_size * self.survival))
        self.elitism = min(self.elitism, self.num_survivors)

    def selection_indices(self, fitness: Tensor) -> Tensor:
        """`[P]` parent of each slot: survivors in rank order, repeated cyclically."""
        order = torch.argsort(self._check_fitness(fitness), stable=True)
        p = self.population.population_size
        slots = torch.arange(p, device=order.device) % self.num_survivors
        return order[: self.num_survivors][slots]

    def tell(self, fitness: Tensor) -> None:
        self.population.select_(self.selection_indices(fitness))
        self.population.mutate_(self.generator, start=self.elitism)
        self.generation += 1

    def config(self) -> dict[str, Any]:
        return {**super().config(), "survival": self.survival, "elitism": self.elitism}


class ES(Algorithm):
    """Evolution strategies, two methods.

    `method="softmax"` (the lab's simple ES): z = −(f − mean f)/(std f + 1e-8), weights
    softmax(z / temperature), every parameter *and sigma* replaced by its weighted mean, then all
    members mutated with the population's mutation.

    `method="openai"`: antithetic sampling θ ± σε around a center (P must be even), centered-rank
    utilities, gradient estimate g = Σ u_i ε_i / (P σ), Adam (or plain SGD) step to *decrease*
    the loss, optional L2 weight decay.
    """

    def __init__(
        self,
        population: Population,
        *,
        method: str = "softmax",
        temperature: float = 1.0,
        noise_std: float = 0.02,
        learning_rate: float = 0.01,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(population, seed=seed, generator=generator)
        if method not in ("softmax", "openai"):
            raise ValueError(f"method must be 'softmax' or 'openai', got {method!r}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        _refuse_heterogeneous_reservoirs(population, "ES")
        self.method = method
        self.temperature = float(temperature)
        self.noise_std = float(noise_std)
        self.learning_rate = float(learning_rate)
        self.optimizer = optimizer
        self.weight_decay = float(weight_decay)
        p, d = population.population_size, population.num_params
        if method == "openai":
            if p % 2:
                raise ValueError(f"ES(method='openai') needs an even population size, got {p}")
            dev = population.device
            self._theta = population.params[0].detach().double().clone()
            self._m = torch.zeros(d, dtype=torch.float64, device=dev)
            self._v = torch.zeros(d, dtype=torch.float64, device=dev)
            self._eps = torch.zeros(p // 2, d, dtype=population.dtype, device=dev)
            self._steps = 0

    def config(self) -> dict[str, Any]:
        return {**super().config(), "method": self.method}

    def center(self) -> Tensor | None:
        return self._theta.to(self.population.dtype) if self.method == "openai" else None

    def softmax_weights(self, fitness: Tensor) -> Tensor:
        """Recombination weights `[P]` of the simple ES (higher for lower loss)."""
        f = self._check_fitness(fitness)
        finite = torch.isfinite(f)
        f = torch.where(finite, f, f[finite].max() if finite.any() else torch.zeros_like(f))
        z = -(f - f.mean()) / (f.std(unbiased=False) + 1e-8)
        z = torch.where(finite, z, torch.full_like(z, -math.inf))
        return torch.softmax(z / self.temperature, dim=0)

    @staticmethod
    def centered_ranks(fitness: Tensor) -> Tensor:
        """Utilities in [−0.5, 0.5], increasing with the loss (rank-based, scale-free)."""
        p = fitness.shape[0]
        ranks = torch.empty(p, dtype=torch.float64, device=fitness.device)
        ranks[torch.argsort(fitness, stable=True)] = torch.arange(
            p, dtype=torch.float64, device=fitness.device
        )
        return ranks / max(p - 1, 1) - 0.5

    def ask(self) -> Tensor:
        pop = self.population
        if self.method == "openai":
            h = pop.population_size // 2
            self._eps.normal_(generator=self.generator)
            theta = self._theta.to(pop.dtype)
            torch.add(theta, self._eps, alpha=self.noise_std, out=pop.params[:h])
            torch.add(theta, self._eps, alpha=-self.noise_std, out=pop.params[h:])
            pop.carried_state = None
        return pop.params

    def tell(self, fitness: Tensor) -> None:
        pop = self.population
        if self.method == "softmax":
            w = self.softmax_weights(fitness).to(pop.dtype)
            mean = w @ pop.params
            sigma = None if pop.sigma is None else w @ pop.sigma
            pop.broadcast_(mean, sigma)
            pop.mutate_(self.generator)
        else:
            u = self.centered_ranks(self._check_fitness(fitness))
            h = pop.population_size // 2
            grad = (u[:h] - u[h:]) @ self._eps.double() / (pop.population_size * self.noise_std)
            if self.weight_decay:
                grad = grad + self.weight_decay * self._theta
            self._steps += 1
            if self.optimizer == "adam":
                b1, b2 = 0.9, 0.999
                self._m.mul_(b1).add_(grad, alpha=1 - b1)
                self._v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                step = (self._m / (1 - b1**self._steps)) / (
                    (self._v / (1 - b2**self._steps)).sqrt() + 1e-8
                )
            else:
                step = grad
            self._theta.sub_(step, alpha=self.learning_rate)
        self.generation += 1

    def _extra_state(self) -> dict[str, Any]:
        if self.method != "openai":
            return {}
        return {
            "theta": self._theta.clone(),
            "adam_m": self._m.clone(),
            "adam_v": self._v.clone(),
            "eps": self._eps.clone(),
            "steps": self._steps,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if self.method == "openai":
            self._theta.copy_(state["theta"])
            self._m.copy_(state["adam_m"])
            self._v.copy_(state["adam_v"])
            self._eps.copy_(state["eps"])
            self._steps = int(state["steps"])


def _refuse_heterogeneous_reservoirs(population: Population, name: str) -> None:
    if getattr(population, "reservoir", None) is not None and not getattr(
        population, "shared_reservoir", True
    ):
        raise ValueError(
            f"{name} recombines members, which is ill-posed when each member has its own fixed "
            "reservoir: build the population with shared_reservoir=True"
        )


class CMAES(Algorithm):
    """CMA-ES with the active covariance update (Hansen's 2016 tutorial defaults), all in torch.

    `active=True` (default) is active CMA-ES (Jastrebski & Arnold 2006) with the tutorial's
    recombination weights: w'_i = ln((λ+1)/2) − ln i for all λ ranks; the μ = ⌊λ/2⌋ positive
    ones (normalised to sum 1) move the mean, the negative ones (scaled to sum
    −min(α_μ⁻, α_μeff⁻, α_posdef⁻)) also shrink C along the worst steps, each rescaled by
    n/‖C^−½ y‖² so that C stays positive definite. This is pycma's default; on ill-conditioned
    functions it needs up to ~2× fewer evaluations. `active=False` is the previous update
    (positive weights only, w_i ∝ ln(μ + ½) − ln i), kept bit for bit for old runs.

    `diagonal=True` is separable CMA-ES (Ros & Hansen 2008: diagonal covariance, c_1 and c_μ
    scaled by (n + 2)/3), O(λn) per generation, for large D; the active rule is the same with
    the diagonal C (α_posdef⁻ from the scaled rates, ‖C^−½ y‖² = Σ y²/c), which keeps every
    variance positive. `diagonal=False` keeps the full covariance (O(n²) memory, lazy
    eigendecomposition), for small D. Default: full up to D = 1000. The population size is
    λ = P. The search mean starts at member 0 (a properly initialised network) unless `mean`
    is given. The internal state is float64.
    """

    def __init__(
        self,
        population: Population,
        *,
        sigma0: float = 0.1,
        mean: Tensor | None = None,
        diagonal: bool | None = None,
        active: bool = True,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(population, seed=seed, generator=generator)
        _refuse_heterogeneous_reservoirs(population, "CMAES")
        n, lam = population.num_params, population.population_size
        if lam < 2:
            raise ValueError(f"CMAES needs a population of at least 2, got {lam}")
        if sigma0 <= 0:
            raise ValueError(f"sigma0 must be > 0, got {sigma0}")
        self.diagonal = n > 1000 if diagonal is None else bool(diagonal)
        self.active = bool(active)
        dev, f64 = population.device, torch.float64
        mu = lam // 2
        ranks = torch.arange(1, lam + 1, dtype=f64)
        # the tutorial's ln((λ+1)/2); the previous update's ln(μ + ½) (equal for even λ)
        raw = (math.log((lam + 1) / 2) if self.active else math.log(mu + 0.5)) - torch.log(ranks)
        positive = raw[:mu] / raw[:mu].sum()
        self.mu = mu
        self.mu_eff = me = float(1.0 / (positive**2).sum())
        self.c_sigma = (me + 2) / (n + me + 5)
        self.d_sigma = 1 + 2 * max(0.0, math.sqrt((me - 1) / (n + 1)) - 1) + self.c_sigma
        self.c_c = (4 + me / n) / (n + 4 + 2 * me / n)
        c1 = 2 / ((n + 1.3) ** 2 + me)
        cmu = min(1 - c1, 2 * (me - 2 + 1 / me) / ((n + 2) ** 2 + me))
        if self.diagonal:
            c1 = min(1.0, c1 * (n + 2) / 3)
            cmu = min(1 - c1, cmu * (n + 2) / 3)
        self.c_1, self.c_mu = c1, cmu
        weights = torch.zeros(lam, dtype=f64)
        weights[:mu] = positive
        negative = raw[mu:].clamp_max(0.0)  # the middle rank of an odd λ has weight 0
        if self.active and cmu > 0 and negative.sum() < 0:
            me_minus = float(negative.sum() ** 2 / (negative**2).sum())
            alpha = min(
                1 + c1 / cmu,  # no decay of C: c_1 + c_μ Σ w = 0
                1 + 2 * me_minus / (me + 2),  # the negative learning rate respects μ_eff⁻
                (1 - c1 - cmu) / (n * cmu),  # C stays positive definite
            )
            weights[mu:] = alpha * negative / negative.abs().sum()
        #: `[λ]` recombination weights by rank: μ positive (sum 1), then ≤ 0
        self.weights = weights.to(dev)
        self._weight_sum = float(weights.sum())
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        self.n = n
        m0 = population.params[0] if mean is None else mean
        if m0.shape != (n,):
            raise ValueError(f"mean must be [{n}], got {tuple(m0.shape)}")
        self.mean = m0.detach().to(device=dev, dtype=f64).clone()
        self.sigma = float(sigma0)
        self.sigma0 = float(sigma0)
        self.p_sigma = torch.zeros(n, dtype=f64, device=dev)
        self.p_c = torch.zeros(n, dtype=f64, device=dev)
        if self.diagonal:
            self.cov = torch.ones(n, dtype=f64, device=dev)
        else:
            self.cov = torch.eye(n, dtype=f64, device=dev)
            self._eig_b = torch.eye(n, dtype=f64, device=dev)
            self._eig_d = torch.ones(n, dtype=f64, device=dev)
            self._eig_generation = 0
            self._eig_every = max(1, int(1 / (10 * n * (c1 + cmu))))
        self._z = torch.zeros(lam, n, dtype=f64, device=dev)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "diagonal": self.diagonal,
            "sigma0": self.sigma0,
            "active": self.active,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        config = state.get("config")
        if isinstance(config, dict) and "active" not in config:
            # saved before the active update existed: that run used the positive-only update
            state = {**state, "config": {**config, "active": False}}
        super().load_state_dict(state)

    def center(self) -> Tensor | None:
        return self.mean.to(self.population.dtype)

    def _decompose(self) -> None:
        """Eigendecomposition C = B diag(D²) Bᵀ (full mode), refreshed lazily."""
        cov = (self.cov + self.cov.T) / 2
        evals, evecs = torch.linalg.eigh(cov)
        self._eig_d = evals.clamp_min(1e-300).sqrt()
        self._eig_b = evecs
        self.cov = cov
        self._eig_generation = self.generation

    def ask(self) -> Tensor:
        pop = self.population
        self._z.normal_(generator=self.generator)
        if self.diagonal:
            y = self._z * self.cov.sqrt()
        else:
            if self.generation - self._eig_generation >= self._eig_every:
                self._decompose()
            y = (self._z * self._eig_d) @ self._eig_b.T
        pop.params.copy_(self.mean + self.sigma * y)
        pop.carried_state = None
        return pop.params

    def _inv_sqrt_norm_sq(self, y: Tensor) -> Tensor:
        """‖C^−½ y_i‖² `[k]` of steps `y [k, n]` (C as last decomposed, as they were drawn)."""
        if self.diagonal:
            return (y * y / self.cov).sum(1)
        return ((y @ self._eig_b) / self._eig_d).square().sum(1)

    def tell(self, fitness: Tensor) -> None:
        f = self._check_fitness(fitness)
        weights = self.weights
        if not self.active:
            weights = weights[: self.mu]
        order = torch.argsort(f, stable=True)[: weights.shape[0]]
        # Steps of the samples actually evaluated (params may be float32), best first.
        y = (self.population.params.index_select(0, order).double() - self.mean) / self.sigma
        y_w = weights[: self.mu] @ y[: self.mu]
        self.mean += self.sigma * y_w
        if self.diagonal:
            c_inv_sqrt_yw = y_w / self.cov.sqrt()
        else:
            c_inv_sqrt_yw = self._eig_b @ ((self._eig_b.T @ y_w) / self._eig_d)
        cs, cc, c1, cmu = self.c_sigma, self.c_c, self.c_1, self.c_mu
        self.p_sigma.mul_(1 - cs).add_(c_inv_sqrt_yw, alpha=math.sqrt(cs * (2 - cs) * self.mu_eff))
        ps_norm = float(self.p_sigma.norm())
        denom = math.sqrt(1 - (1 - cs) ** (2 * (self.generation + 1)))
        h_sigma = float(ps_norm / denom < (1.4 + 2 / (self.n + 1)) * self.chi_n)
        self.p_c.mul_(1 - cc).add_(y_w, alpha=h_sigma * math.sqrt(cc * (2 - cc) * self.mu_eff))
        if self.active:
            # negative weights rescaled by n / ‖C^−½ y‖²: a long bad step cannot shrink C
            # more than a typical one (the tutorial's w°)
            scale = self.n / self._inv_sqrt_norm_sq(y[self.mu :]).clamp_min(1e-300)
            weights = torch.cat([weights[: self.mu], weights[self.mu :] * scale])
            decay = 1 + (1 - h_sigma) * c1 * cc * (2 - cc) - c1 - cmu * self._weight_sum
        else:
            decay = 1 - c1 - cmu + (1 - h_sigma) * c1 * cc * (2 - cc)
        if self.diagonal:
            rank_mu = weights @ (y * y)
            self.cov.mul_(decay).add_(self.p_c * self.p_c, alpha=c1).add_(rank_mu, alpha=cmu)
        else:
            rank_mu = (y.T * weights) @ y
            self.cov.mul_(decay).add_(torch.outer(self.p_c, self.p_c), alpha=c1)
            self.cov.add_(rank_mu, alpha=cmu)
        self.sigma *= math.exp((cs / self.d_sigma) * (ps_norm / self.chi_n - 1))
        self.generation += 1

    def _extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "mean": self.mean.clone(),
            "sigma": self.sigma,
            "p_sigma": self.p_sigma.clone(),
            "p_c": self.p_c.clone(),
            "cov": self.cov.clone(),
        }
        if not self.diagonal:
            state.update(
                eig_b=self._eig_b.clone(),
                eig_d=self._eig_d.clone(),
                eig_generation=self._eig_generation,
            )
        return state

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.mean.copy_(state["mean"])
        self.sigma = float(state["sigma"])
        self.p_sigma.copy_(state["p_sigma"])
        self.p_c.copy_(state["p_c"])
        self.cov.copy_(state["cov"])
        if not self.diagonal:
            self._eig_b.copy_(state["eig_b"])
            self._eig_d.copy_(state["eig_d"])
            self._eig_generation = int(state["eig_generation"])


#: Names `make_algorithm` (and `train_supervised(optimizer=...)`) accept, with the class each
#: builds.
OPTIMIZERS: dict[str, type[Algorithm]] = {"ga": GA, "es": ES, "cmaes": CMAES}


def make_algorithm(
    name: str, population: Population, *, seed: int = 0, **settings: Any
) -> Algorithm:
    """The algorithm `name` ("ga", "es", "cmaes") built on `population`, with its defaults
    where `settings` (e.g. GA's `survival`, `elitism`) do not say otherwise.

    Its generator is seeded `(seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) mod 2**63`, a
    value derived from `seed`, so that its draws differ from those of the loop's own generator
    (seeded `seed`). Every hbm-ne loop builds its algorithm here, so one seed gives one run.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in OPTIMIZERS:
        raise ValueError(
            f"optimizer must be one of {sorted(OPTIMIZERS)} or an Algorithm, got {name!r}"
        )
    derived = (int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 63)
    return OPTIMIZERS[key](population, seed=derived, **settings)
