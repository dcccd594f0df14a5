"""Environment-return training with the lab's continual transfer modes, following lineages.

`ContinualEnvFitness(env_id, episodes, steps_per_generation, env_transfer=..., mem_transfer=...,
fit_transfer=...)` is a fitness for `hbm_ne.evolve`: every member plays its own E episode
slots in one batched environment of P*E copies, for at most `steps_per_generation` steps, and
its fitness is minus the reward it earned (a loss, minimised). The lab's three modes:

- `env_transfer`: an episode still running when the generation's step budget is spent is
  saved (its environment state, observation, step counter and return so far) and continues
  next generation; an episode that ended idles until the end of the generation and a fresh
  one (the generation's seeds) starts next generation. Truncation at the environment's
  `max_episode_steps` counts the steps of the whole episode, over generations.
- `mem_transfer` (recurrent populations): the hidden state of each episode slot is carried
  to the next generation (and, as in the lab, into the slot's next episode).
- `fit_transfer`: the per-generation return is accumulated over the member's lineage;
  fitness is minus the running sum (`fit_reduction="sum"`, the lab's) or mean ("mean").

All of this per-member state lives in the population's `carried_state` (`[P, W]` float64,
see `ContinualState`), which `Population.select_` permutes and duplicates with the selection
indices, so the saved episodes, hidden states and accumulated fitness follow each member's
lineage through GA selection (the lab kept them per slot, so a member inherited a stranger's
episode). It is part of `Population.state_dict`, hence of `evolve`'s checkpoints: a resumed run
is bitwise identical on CPU. Algorithms that draw a new population from a search
distribution (ES, CMA-ES) have no lineage; they clear `carried_state`, and every generation
then starts afresh (with `fit_transfer`, the accumulation restarts).

Environment states can be saved for the torch environments (CartPole-v1, MountainCar-v0,
Acrobot-v1); LunarLander (Box2D) supports the modes without `env_transfer` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from hbm_ne.algorithms import Algorithm
from hbm_ne.envs._base import BatchedEnv, Seeds, as_seed_list
from hbm_ne.envs._registry import make_env, resolve_env_id
from hbm_ne.envs.rollout import select_actions
from hbm_ne.population import Population
from hbm_ne.training import EvolveResult, evolve

__all__ = ["ContinualEnvFitness", "ContinualState", "evolve_env"]

FitReduction = Literal["sum", "mean"]


def _env_state(env: BatchedEnv) -> Tensor:
    """The env's dynamic state `[k, B]` float64 (a view that can be written), or ValueError."""
    state = getattr(env, "_state_t", None)
    if not isinstance(state, Tensor):
        raise ValueError(
            f"{env.env_id}: env_transfer needs an environment whose state can be saved "
            "(CartPole-v1, MountainCar-v0, Acrobot-v1)"
        )
    return state


def _restore_columns(env: BatchedEnv, cols: Tensor, state: Tensor, obs: Tensor) -> None:
    """Environments `cols [n]` take `state [n, k]` and observation `obs [n, obs_size]`."""
    st = _env_state(env)
    st[:, cols] = state.T.to(st.dtype)
    obs_t: Tensor = env._obs_t
    obs_t[:, cols] = obs.T.to(obs_t.dtype)
    refresh = getattr(env, "_state_trig", None)  # Acrobot keeps cos/sin of its angles
    if refresh is not None:
        refresh()


@dataclass(frozen=True)
class ContinualState:
    """Layout of one member's row of `population.carried_state` `[P, W]` float64.

    Per episode slot e (E slots, F = k + obs_size + 2 + H values): the env state `[k]`, the
    observation `[obs_size]`, the episode's step count (0: start a fresh episode), its return
    so far, the hidden state `[H]`. Then per member: the accumulated return and the number
    of generations accumulated. Integers and float32 values are exact in float64.
    """

    episodes: int
    state_size: int
    obs_size: int
    hidden_size: int

    @property
    def slot_width(self) -> int:
        return self.state_size + self.obs_size + 2 + self.hidden_size

    @property
    def width(self) -> int:
        return self.episodes * self.slot_width + 2

    def slots(self, carried: Tensor) -> Tensor:
        """`[P, W]` -> per-slot values `[P, E, F]` (a view)."""
        p = carried.shape[0]
        return carried[:, : self.episodes * self.slot_width].view(p, self.episodes, -1)

    def unpack(self, carried: Tensor) -> dict[str, Tensor]:
        """`[P, W]` -> views: env_state `[P, E, k]`, obs `[P, E, obs]`, steps `[P, E]`,
        episode_return `[P, E]`, hidden `[P, E, H]`, accumulated `[P]`, generations `[P]`."""
        s = self.slots(carried)
        k, o = self.state_size, self.obs_size
        return {
            "env_state": s[..., :k],
            "obs": s[..., k : k + o],
            "steps": s[..., k + o],
            "episode_return": s[..., k + o + 1],
            "hidden": s[..., k + o + 2 :],
            "accumulated": carried[:, -2],
            "generations": carried[:, -1],
        }


class ContinualEnvFitness:
    """`fitness(population, generation, generator) -> [P]` = minus the return earned (a loss).

    `episodes` slots per member; fresh episodes start from `seeds_for(generation)` (shared by
    every member starting one, so members are compared on equal terms; a pure function of
    `seed` and the generation, or `seeds` fixed). `steps_per_generation` (default: the env's
    `max_episode_steps`, i.e. whole episodes) bounds each generation. Actions: argmax by
    default, or drawn with `evolve`'s generator (`deterministic=False`). Modes: see the module
    docstring. After a call: `last_returns [P, E]` the reward of each slot in this generation,
    `last_completed [P, E]` the full return of the episodes that ended in it (NaN where none),
    `last_steps [P, E]` each slot's episode step count at the end of the generation, and
    `last_num_samples` (environment steps per member, for `samples_seen`).
    """

    def __init__(
        self,
        env_id: str,
        episodes: int = 1,
        *,
        steps_per_generation: int | None = None,
        env_transfer: bool = False,
        mem_transfer: bool = False,
        fit_transfer: bool = False,
        fit_reduction: FitReduction = "sum",
        seed: int = 0,
        seeds: Seeds | None = None,
        deterministic: bool = True,
    ) -> None:
        self.env_id = resolve_env_id(env_id)
        self.fixed_seeds = None if seeds is None else as_seed_list(seeds)
        self.episodes = len(self.fixed_seeds) if self.fixed_seeds is not None else int(episodes)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        if fit_reduction not in ("sum", "mean"):
            raise ValueError(f"fit_reduction must be 'sum' or 'mean', got {fit_reduction!r}")
        self.steps_per_generation = steps_per_generation
        self.env_transfer = bool(env_transfer)
        self.mem_transfer = bool(mem_transfer)
        self.fit_transfer = bool(fit_transfer)
        self.fit_reduction: FitReduction = fit_reduction
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.last_returns: Tensor | None = None
        self.last_completed: Tensor | None = None
        self.last_steps: Tensor | None = None
        self.last_num_samples = 0
        self._env: BatchedEnv | None = None

    @property
    def transfers(self) -> bool:
        return self.env_transfer or self.mem_transfer or self.fit_transfer

    def config(self) -> dict[str, Any]:
        """JSON-able settings, for checkpoint fingerprints."""
        return {
            "class": type(self).__name__,
            "env_id": self.env_id,
            "episodes": self.episodes,
            "steps_per_generation": self.steps_per_generation,
            "env_transfer": self.env_transfer,
            "mem_transfer": self.mem_transfer,
            "fit_transfer": self.fit_transfer,
            "fit_reduction": self.fit_reduction,
            "seed": self.seed,
            "seeds": self.fixed_seeds,
            "deterministic": self.deterministic,
        }

    def seeds_for(self, generation: int) -> list[int]:
        """Seeds `[E]` of the episodes that start at `generation`."""
        if self.fixed_seeds is not None:
            return list(self.fixed_seeds)
        rng = np.random.default_rng([self.seed, generation])
        return rng.integers(0, 2**31 - 1, size=self.episodes).tolist()

    def _env_for(self, n: int, device: torch.device) -> BatchedEnv:
        if self._env is None or self._env.num_envs != n or self._env.device != device:
            if self._env is not None:
                self._env.close()
            self._env = make_env(self.env_id, n, device=device)
        return self._env

    def layout(self, population: Any) -> ContinualState:
        """The `carried_state` layout for `population` in this fitness's environment."""
        env = self._env_for(int(population.population_size) * self.episodes, population.device)
        k = _env_state(env).shape[0] if self.env_transfer else 0
        h = int(population.hidden_size) if self.mem_transfer else 0
        return ContinualState(self.episodes, k, env.obs_size if k else 0, h)

    def state(self, population: Population) -> dict[str, Tensor] | None:
        """Views of the population's carried state (see `ContinualState.unpack`), or None."""
        if population.carried_state is None:
            return None
        return self.layout(population).unpack(population.carried_state)

    @torch.no_grad()
    def __call__(
        self, population: Any, generation: int = 0, generator: torch.Generator | None = None
    ) -> Tensor:
        """`[P]` fitness (float64): minus this generation's (or the lineage's) mean return."""
        p, e = int(population.population_size), self.episodes
        recurrent = hasattr(population, "forward_step")
        if self.mem_transfer and not recurrent:
            raise ValueError("mem_transfer needs a recurrent population (BatchedRecurrent)")
        if not self.deterministic and generator is None:
            raise ValueError("sampling actions needs generator= (or pass deterministic=True)")
        dev = population.device
        b = p * e
        env = self._env_for(b, dev)
        max_steps = env.max_episode_steps
        budget = max_steps if self.steps_per_generation is None else self.steps_per_generation
        if not 1 <= budget <= max_steps:
            raise ValueError(f"steps_per_generation must be in [1, {max_steps}], got {budget}")
        if int(population.input_size) != env.obs_size:
            raise ValueError(
                f"{env.env_id}: the policy takes {population.input_size} inputs, "
                f"observations have {env.obs_size}"
            )
        lay = self.layout(population)
        carried = population.carried_state if self.transfers else None
        if carried is None:
            carried = torch.zeros(p, lay.width, dtype=torch.float64, device=dev)
        elif carried.shape != (p, lay.width) or carried.dtype != torch.float64:
            raise ValueError(
                f"population.carried_state is {tuple(carried.shape)} {carried.dtype}: this "
                f"fitness expects [{p}, {lay.width}] float64 (set by another fitness?)"
            )
        saved = lay.unpack(carried)

        obs = env.reset(self.seeds_for(generation) * p)
        steps = torch.zeros(b, dtype=torch.int64, device=dev)
        ep_return = torch.zeros(b, dtype=torch.float64, device=dev)
        if self.env_transfer:
            saved_steps = saved["steps"].reshape(b)
            cont = torch.nonzero(saved_steps > 0).view(-1)
            if cont.numel():
                _restore_columns(
                    env,
                    cont,
                    saved["env_state"].reshape(b, -1)[cont],
                    saved["obs"].reshape(b, -1)[cont],
                )
                steps[cont] = saved_steps[cont].long()
                ep_return[cont] = saved["episode_return"].reshape(b)[cont]
        h: Tensor | None = None
        if recurrent:
            h = population.initial_state(e)
            if self.mem_transfer and population.carried_state is not None:
                h = saved["hidden"].to(h.dtype).clone()
        x = torch.empty(p, e, env.obs_size, dtype=torch.float32, device=dev)
        actions = torch.empty(p, e, dtype=torch.int64, device=dev)
        alive = torch.ones(b, dtype=torch.bool, device=dev)
        earned = torch.zeros(b, dtype=torch.float64, device=dev)
        completed = torch.full((b,), float("nan"), dtype=torch.float64, device=dev)
        played = torch.zeros((), dtype=torch.int64, device=dev)
        check_every = 1 if dev.type == "cpu" else 16
        for t in range(budget):
            x.copy_(obs.view(p, e, -1))
            if h is None:
                logits = population.forward(x)
            else:
                logits, h_new = population.forward_step(x, h)
                h = torch.where(alive.view(p, e, 1), h_new, h)
            select_actions(
                logits, deterministic=self.deterministic, generator=generator, out=actions
            )
            out = env.step(actions.view(-1))
            played += alive.sum()
            reward = torch.where(alive, out.reward.double(), 0.0)
            earned += reward
            ep_return += reward
            steps += alive
            ended = alive & (out.terminated | (steps >= max_steps))
            completed = torch.where(ended, ep_return, completed)
            alive &= ~ended
            if (t + 1) % check_every == 0 and not bool(alive.any()):
                break

        returns = earned.view(p, e)
        gen_return = returns.mean(dim=1)
        self.last_returns = returns.clone()
        self.last_completed = completed.view(p, e)
        self.last_steps = torch.where(alive, steps, 0).view(p, e)
        self.last_num_samples = int(played) // p
        fitness = -gen_return
        if self.transfers:
            new = torch.zeros_like(carried)
            cur = lay.unpack(new)
            if self.env_transfer:
                keep = alive.view(p, e)
                cur["steps"].copy_(torch.where(alive, steps, 0).view(p, e))
                cur["episode_return"].copy_(torch.where(alive, ep_return, 0.0).view(p, e))
                st = _env_state(env).T.to(torch.float64).view(p, e, -1)
                cur["env_state"].copy_(torch.where(keep[..., None], st, 0.0))
                ob = env.obs.to(torch.float64).view(p, e, -1)
                cur["obs"].copy_(torch.where(keep[..., None], ob, 0.0))
            if self.mem_transfer and h is not None:
                cur["hidden"].copy_(h)
            if self.fit_transfer:
                cur["accumulated"].copy_(saved["accumulated"] + gen_return)
                cur["generations"].copy_(saved["generations"] + 1)
                acc = cur["accumulated"]
                fitness = -(acc if self.fit_reduction == "sum" else acc / cur["generations"])
            population.carried_state = new
        return fitness


def evolve_env(
    population: Population,
    algorithm: Algorithm,
    fitness: ContinualEnvFitness,
    *,
    fingerprint: Mapping[str, Any] | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> EvolveResult:
    """`hbm_ne.evolve` with `fitness`'s settings in the checkpoint fingerprint.

    The transfer state travels in `population.carried_state` (checkpointed by `evolve`), so
    resume is bitwise. History rows: `train_loss` = `best_fitness` = minus the best member's
    return (or accumulated return with `fit_transfer`); `samples_seen` counts environment
    steps. Other keyword arguments go to `evolve` unchanged.
    """
    fp = {**(fingerprint or {}), "continual_env_fitness": fitness.config()}
    return evolve(
        population, algorithm, fitness, fingerprint=fp, checkpoint_path=checkpoint_path, **kwargs
    )
