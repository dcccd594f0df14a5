"""Whole-population rollouts, the matched-seed rollout of one module, env-return fitness."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from hbm_ne.envs._base import BatchedEnv, Seeds, as_seed_list
from hbm_ne.envs._registry import make_env, resolve_env_id

log = logging.getLogger(__name__)

#: `step(x [P, E, in], state) -> (logits [P, E, out], state)`
PolicyStep = Callable[[Tensor, Any], tuple[Tensor, Any]]


class PopulationPolicy(Protocol):
    """What `rollout` needs of a population (`hbm_ne.BatchedFeedforward` / `BatchedRecurrent`).

    Feedforward: `forward(x [P, B, in]) -> logits [P, B, out]`. Recurrent (has `forward_step`):
    `initial_state(batch_size) -> h [P, B, H]`, `forward_step(x, h) -> (logits, h)`.
    """

    @property
    def population_size(self) -> int: ...

    @property
    def input_size(self) -> int: ...

    @property
    def output_size(self) -> int: ...

    def forward(self, x: Tensor) -> Any: ...


def _population_step(population: Any, num_episodes: int) -> tuple[PolicyStep, Any]:
    if hasattr(population, "forward_step"):
        return population.forward_step, population.initial_state(num_episodes)
    return (lambda x, state: (population.forward(x), None)), None


class _ModuleAsPopulation:
    """One `nn.Module` policy seen as a population of size 1 (`[B, ...]` <-> `[1, B, ...]`)."""

    def __init__(self, policy: nn.Module, device: torch.device) -> None:
        self.policy = policy
        self.device = device
        self.population_size = 1

    def step_fn(self, num_episodes: int) -> tuple[PolicyStep, Any]:
        policy: Any = self.policy
        if hasattr(policy, "forward_step"):
            h0 = policy.initial_state(num_episodes, device=self.device)

            def step(x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
                logits, h_new = policy.forward_step(x[0], h)
                return logits.unsqueeze(0), h_new

            return step, h0
        return (lambda x, state: (policy(x[0]).unsqueeze(0), None)), None


def _check_features(
    extra_features: Tensor | np.ndarray | None,
    population_size: int,
    num_episodes: int,
    device: torch.device,
) -> Tensor | None:
    """`[E, k]` or `[P, E, k]` -> `[P, E, k]` float32 on device (None stays None)."""
    if extra_features is None:
        return None
    feats = torch.as_tensor(extra_features, dtype=torch.float32, device=device)
    if feats.dim() == 2 and feats.shape[0] == num_episodes:
        return feats.unsqueeze(0).expand(population_size, -1, -1)
    if feats.dim() == 3 and feats.shape[:2] == (population_size, num_episodes):
        return feats
    raise ValueError(
        f"extra_features has shape {tuple(feats.shape)}: expected [E={num_episodes}, k] "
        f"(one row per episode) or [P={population_size}, E={num_episodes}, k]"
    )


def _seed_grid(seeds: Seeds, population_size: int) -> tuple[list[int], int]:
    """`[E]` (every member plays the same seeds) or `[P, E]` -> (flat P*E seeds, E)."""
    shape = np.shape(seeds.cpu() if isinstance(seeds, Tensor) else seeds)
    flat = as_seed_list(seeds)
    if len(shape) == 1:
        if not flat:
            raise ValueError("seeds is empty: give at least one episode seed")
        return flat * population_size, len(flat)
    if len(shape) == 2 and shape[0] == population_size and shape[1] > 0:
        return flat, int(shape[1])
    raise ValueError(
        f"seeds has shape {shape}: expected [E] (shared by all members) or [P={population_size}, E]"
    )


def select_actions(
    logits: Tensor, *, deterministic: bool, generator: torch.Generator | None, out: Tensor
) -> Tensor:
    """Argmax, or a draw from softmax(logits) by inverse CDF: `logits [..., A]` -> `out [...]`.

    The unnormalised CDF of exp(logits - max) is compared with u * total, u ~ U[0, 1) from
    `generator`: one uniform per draw, and no `torch.softmax` (which splits even tiny batches
    over threads).
    """
    if deterministic:
        return torch.argmax(logits, dim=-1, out=out)
    weights = torch.sub(logits, logits.amax(dim=-1, keepdim=True)).exp_()
    cdf = weights.cumsum_(dim=-1)
    u = torch.rand((*out.shape, 1), generator=generator, device=logits.device, dtype=cdf.dtype)
    u.mul_(cdf[..., -1:])
    # the action is the number of bins whose upper edge lies at or below u (empty bins are
    # never drawn); the clamp guards against rounding at the top
    torch.sum(cdf <= u, dim=-1, out=out)
    return out.clamp_(max=logits.shape[-1] - 1)


@torch.no_grad()
def play(
    env: BatchedEnv,
    step_fn: PolicyStep,
    state: Any,
    seeds: list[int],
    population_size: int,
    *,
    input_size: int,
    extra_features: Tensor | None = None,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    max_steps: int | None = None,
    record: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Play one episode per environment of `env` (B = P*E) to the end; the shared core.

    Environment b = p*E + e is played by member p. Returns (returns, lengths) `[P, E]`.
    `max_steps` stops every episode after that many steps (lengths and returns so far).
    `record` = (obs `[T, P, E, obs_size]`, actions `[T, P, E]`), T >= the steps played: row t
    receives the observation seen and the action taken at step t (ended episodes keep being
    written; their `lengths` tell where they stopped).
    """
    p = population_size
    e = env.num_envs // p
    obs_size = env.obs_size
    k = 0 if extra_features is None else extra_features.shape[-1]
    if obs_size + k != input_size:
        raise ValueError(
            f"{env.env_id}: the policy takes {input_size} inputs but observations have "
            f"{obs_size} values and extra_features {k}: expected input_size = {obs_size + k}"
        )
    if not deterministic and generator is None:
        raise ValueError("sampling actions needs generator= (or pass deterministic=True)")
    dev = env.device
    x = torch.empty(p, e, input_size, dtype=torch.float32, device=dev)
    if extra_features is not None:
        x[..., obs_size:] = extra_features
    x_obs = x[..., :obs_size]
    actions = torch.empty(p, e, dtype=torch.int64, device=dev)
    flat_actions = actions.view(-1)
    obs = env.reset(seeds)
    # The all-done check syncs with the device: every step on CPU, every 16 on accelerators.
    check_every = 1 if dev.type == "cpu" else 16
    last = env.max_episode_steps if max_steps is None else min(max_steps, env.max_episode_steps)
    if last < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    while True:
        x_obs.copy_(obs.view(p, e, obs_size))
        logits, state = step_fn(x, state)
        select_actions(logits, deterministic=deterministic, generator=generator, out=actions)
        if record is not None:
            record[0][env.elapsed_steps].copy_(x_obs)
            record[1][env.elapsed_steps].copy_(actions)
        env.step(flat_actions)
        if env.elapsed_steps >= last:
            break
        if env.elapsed_steps % check_every == 0 and bool(env.done.all()):
            break
    return env.returns.view(p, e).clone(), env.lengths.view(p, e)


def _resolve_env(env: str | BatchedEnv, num_envs: int, device: torch.device) -> BatchedEnv:
    if isinstance(env, BatchedEnv):
        if env.num_envs != num_envs:
            raise ValueError(
                f"{env!r} holds {env.num_envs} environments, this rollout needs {num_envs}"
            )
        if env.device != device:
            raise ValueError(f"{env!r} lives on {env.device}, the rollout runs on {device}")
        return env
    return make_env(resolve_env_id(env), num_envs, device=device)


def _device_of(obj: Any, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    found = getattr(obj, "device", None)
    if isinstance(found, torch.device):
        return found
    return torch.device("cpu")


def rollout(
    population: PopulationPolicy,
    env_id: str | BatchedEnv,
    seeds: Seeds,
    *,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    extra_features: Tensor | np.ndarray | None = None,
    max_steps: int | None = None,
    record: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Every member of `population` plays its own episodes; all P*E environments step at once.

    `seeds` `[E]` gives every member the same E starts (Gymnasium's `reset(seed=...)`), or
    `[P, E]` one row per member. Actions are the argmax of the logits (`deterministic=True`) or
    drawn from their softmax with `generator` (on `device`). Recurrent populations (with
    `forward_step`) keep one hidden state per environment, zero at the start. `extra_features`
    `[E, k]` or `[P, E, k]` (e.g. the CL features of a session/run) are appended to every
    observation of episode e. `env_id` may also be a `BatchedEnv` of P*E environments, to reuse
    it across calls. `max_steps` and `record` as in `play` (see `record_rollout`). Returns
    (returns, lengths), `[P, E]` float32 and int64.
    """
    p = int(population.population_size)
    dev = _device_of(population, device)
    flat_seeds, e = _seed_grid(seeds, p)
    env = _resolve_env(env_id, p * e, dev)
    feats = _check_features(extra_features, p, e, dev)
    step_fn, state = _population_step(population, e)
    return play(
        env,
        step_fn,
        state,
        flat_seeds,
        p,
        input_size=int(population.input_size),
        extra_features=feats,
        deterministic=deterministic,
        generator=generator,
        max_steps=max_steps,
        record=record,
    )


class Trajectories(NamedTuple):
    """What `record_rollout` returns; step t < lengths[p, e] of episode (p, e) is real."""

    obs: Tensor  # [P, E, T, obs_size] float32, the observation each action was taken in
    actions: Tensor  # [P, E, T] int64
    lengths: Tensor  # [P, E] int64
    returns: Tensor  # [P, E] float32


def record_rollout(
    population: PopulationPolicy,
    env_id: str | BatchedEnv,
    seeds: Seeds,
    *,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    max_steps: int | None = None,
) -> Trajectories:
    """`rollout` that also records every observation and action (for imitation by
    discrimination: the trajectories are the data). T is the longest episode played;
    `max_steps` caps every episode. Steps past an episode's end are zero."""
    p = int(population.population_size)
    dev = _device_of(population, device)
    env = _resolve_env(env_id, p * _seed_grid(seeds, p)[1], dev)
    cap = env.max_episode_steps if max_steps is None else min(max_steps, env.max_episode_steps)
    obs = torch.zeros(max(cap, 1), p, env.num_envs // p, env.obs_size, device=dev)
    actions = torch.zeros(obs.shape[:3], dtype=torch.int64, device=dev)
    returns, lengths = rollout(
        population,
        env,
        seeds,
        deterministic=deterministic,
        generator=generator,
        device=dev,
        max_steps=max_steps,
        record=(obs, actions),
    )
    t = int(lengths.max())
    real = torch.arange(t, device=dev)[:, None, None] < lengths
    obs = (obs[:t] * real[..., None]).permute(1, 2, 0, 3).contiguous()
    actions = (actions[:t] * real).permute(1, 2, 0).contiguous()
    return Trajectories(obs, actions, lengths.clone(), returns)


def evaluate_module(
    policy: nn.Module,
    env_id: str | BatchedEnv,
    seeds: Seeds,
    *,
    extra_features: Tensor | np.ndarray | None = None,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Matched-seed behaviour rollout: `policy` plays episode e from `seeds[e]`; returns `[E]`.

    The seeds are those a person played (`EpisodeInfo.seed`), so model and person start from
    the same states; `extra_features` `[E, k]` are that episode's CL features. Any module with
    `policy(x [B, in]) -> logits [B, out]` works; a module with `forward_step` is recurrent
    (`initial_state(B, device=...)`, `forward_step(x [B, in], h) -> (logits, h)`), with a zero
    state per episode. Actions are sampled from the softmax, as people's behaviour is compared
    with the stochastic policy; `generator=None` then means `torch.Generator(device)` seeded
    with 0, so the same call gives the same returns. The policy must live on `device`.
    """
    dev = torch.device(device)
    seed_list = as_seed_list(seeds)
    if not seed_list:
        raise ValueError("seeds is empty: give at least one episode seed")
    e = len(seed_list)
    env = _resolve_env(env_id, e, dev)
    feats = _check_features(extra_features, 1, e, dev)
    if not deterministic and generator is None:
        generator = torch.Generator(device=dev).manual_seed(0)
    input_size = env.obs_size + (0 if feats is None else feats.shape[-1])
    step_fn, state = _ModuleAsPopulation(policy, dev).step_fn(e)
    returns, _ = play(
        env,
        step_fn,
        state,
        seed_list,
        1,
        input_size=input_size,
        extra_features=feats,
        deterministic=deterministic,
        generator=generator,
    )
    return returns[0]


class EnvReturnFitness:
    """Fitness for `hbm_ne.evolve`: minus the mean return of each member over its episodes.

    Each call plays `episodes` fresh starts per member, the same seeds for every member of the
    generation (drawn from `seed`, so a run is reproducible and members are compared on equal
    terms), unless `seeds` fixes them for every generation. Actions are the argmax by default;
    with `deterministic=False` they are drawn with the generator that `evolve` passes.
    `extra_features` `[E, k]` are appended to observations (e.g. CL features). The environment
    is built once and reused. After a call, `last_returns` holds the `[P, E]` returns.
    """

    def __init__(
        self,
        env_id: str,
        episodes: int = 4,
        *,
        seed: int = 0,
        seeds: Seeds | None = None,
        extra_features: Tensor | np.ndarray | None = None,
        deterministic: bool = True,
    ) -> None:
        self.env_id = resolve_env_id(env_id)
        self.fixed_seeds = None if seeds is None else as_seed_list(seeds)
        self.episodes = len(self.fixed_seeds) if self.fixed_seeds is not None else int(episodes)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        self.seed = int(seed)
        self.extra_features = extra_features
        self.deterministic = deterministic
        self.last_returns: Tensor | None = None
        self._env: BatchedEnv | None = None

    def seeds_for(self, generation: int) -> list[int]:
        """The episode seeds played at `generation` (a pure function of seed and generation)."""
        if self.fixed_seeds is not None:
            return list(self.fixed_seeds)
        rng = np.random.default_rng([self.seed, generation])
        return rng.integers(0, 2**31 - 1, size=self.episodes).tolist()

    def __call__(
        self, population: Any, generation: int = 0, generator: torch.Generator | None = None
    ) -> Tensor:
        """`[P]` fitness = -mean return (lower is better)."""
        p = int(population.population_size)
        dev = _device_of(population, None)
        n = p * self.episodes
        if self._env is None or self._env.num_envs != n or self._env.device != dev:
            if self._env is not None:
                self._env.close()
            self._env = make_env(self.env_id, n, device=dev)
        returns, _ = rollout(
            population,
            self._env,
            self.seeds_for(generation),
            deterministic=self.deterministic,
            generator=generator,
            device=dev,
            extra_features=self.extra_features,
        )
        self.last_returns = returns
        return -returns.mean(dim=1)
