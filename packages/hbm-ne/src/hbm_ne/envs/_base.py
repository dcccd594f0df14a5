"""Batched-environment interface shared by the torch and Gymnasium-backed environments."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from hbm_ne.envs._ops import ops_for

Seeds = Sequence[int] | np.ndarray | torch.Tensor


class StepResult(NamedTuple):
    """What `BatchedEnv.step` returns; the tensors are the env's own buffers (clone to keep).

    `reward` is 0 for environments whose episode ended at an earlier step; `terminated` and
    `truncated` are true only at the step where the episode ends (both may be true together,
    as in Gymnasium when the last allowed step also terminates).
    """

    obs: torch.Tensor  # [B, obs_size] float32
    reward: torch.Tensor  # [B] float32
    terminated: torch.Tensor  # [B] bool
    truncated: torch.Tensor  # [B] bool


def as_seed_list(seeds: Seeds, *, what: str = "seeds") -> list[int]:
    """Validate seeds the way Gymnasium does (non-negative Python ints) and return them."""
    if isinstance(seeds, torch.Tensor):
        values = seeds.detach().cpu().reshape(-1).tolist()
    elif isinstance(seeds, np.ndarray):
        values = seeds.reshape(-1).tolist()
    else:
        values = np.asarray(seeds, dtype=object).reshape(-1).tolist()
    out: list[int] = []
    for i, s in enumerate(values):
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or int(s) < 0:
            raise ValueError(f"{what}[{i}] = {s!r}: expected a non-negative integer seed")
        out.append(int(s))
    return out


@functools.lru_cache(maxsize=1 << 16)
def _uniform_draws(seed: int, low: float, high: float, size: int) -> tuple[float, ...]:
    # Generator(PCG64(SeedSequence(seed))).uniform(low, high, size) is low + (high - low) * u
    # with u = (next_uint64 >> 11) * 2**-53 (numpy's random_uniform / next_double for PCG64);
    # PCG64(seed) seeds through SeedSequence(seed). Skipping the Generator is ~3x faster.
    raw = np.random.PCG64(seed).random_raw(size)
    u = (raw >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return tuple((low + (high - low) * u).tolist())


def gymnasium_uniform(seeds: Sequence[int], low: float, high: float, size: int) -> np.ndarray:
    """The draws `np_random.uniform(low, high, size)` of Gymnasium's `reset(seed=s)`, per seed.

    Gymnasium seeds `np.random.Generator(PCG64(SeedSequence(seed)))`
    (`gymnasium.utils.seeding.np_random`); repeating that here makes a seed mean the same
    initial state without importing gymnasium. Seeding costs ~10 µs per seed, so the draws of
    recently used seeds are cached (replayed seeds, fixed evaluation seeds). Returns
    `[len(seeds), size]` float64.
    """
    out = np.empty((len(seeds), size), dtype=np.float64)
    for i, seed in enumerate(seeds):
        out[i] = _uniform_draws(seed, float(low), float(high), int(size))
    return out


class BatchedEnv:
    """B independent episodes of one environment, stepped together.

    All B episodes start at `reset(seeds)` and run until each terminates or reaches
    `max_episode_steps`; environments whose episode has ended keep being stepped (so the batch
    stays rectangular) but earn no reward and raise no further flags. `done`, `returns` and
    `lengths` track each episode. Subclasses implement `_reset` and `_step`.
    """

    env_id: str = ""
    obs_size: int = 0
    num_actions: int = 0
    max_episode_steps: int = 0

    def __init__(self, num_envs: int, *, device: torch.device | str = "cpu") -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs = {num_envs!r}: expected a positive integer")
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        b, dev = self.num_envs, self.device
        # Observations live in an [obs_size, B] buffer so that the torch envs fill them with one
        # contiguous copy from their [k, B] state; `obs` is its [B, obs_size] transpose view.
        self._obs_t = torch.zeros(self.obs_size, b, dtype=torch.float32, device=dev)
        self.obs = self._obs_t.T
        self.reward = torch.zeros(b, dtype=torch.float32, device=dev)
        self.terminated = torch.zeros(b, dtype=torch.bool, device=dev)
        self.truncated = torch.zeros(b, dtype=torch.bool, device=dev)
        self.done = torch.ones(b, dtype=torch.bool, device=dev)
        self._returns = torch.zeros(b, dtype=torch.float32, device=dev)
        # the step at which each episode ended (max_episode_steps while it runs): one masked
        # fill per step instead of a running count
        self._end_step = torch.zeros(b, dtype=torch.int64, device=dev)
        self.elapsed_steps = 0
        self._result = StepResult(self.obs, self.reward, self.terminated, self.truncated)
        # the step's elementwise work runs on numpy views of these buffers on CPU (see `_ops`)
        self._ops = ops = ops_for(self.device)
        self._reward_a, self._returns_a = ops.view(self.reward), ops.view(self._returns)
        self._terminated_a, self._truncated_a = ops.view(self.terminated), ops.view(self.truncated)
        self._done_a, self._end_step_a = ops.view(self.done), ops.view(self._end_step)
        self._obs_a = ops.view(self._obs_t)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, device={self.device})"
        )

    def _const(self, values: Any) -> Any:
        """A float64 constant on the env's device, as the step's ops take it."""
        return self._ops.view(torch.tensor(values, dtype=torch.float64, device=self.device))

    def reset(self, seeds: Seeds) -> torch.Tensor:
        """Start one episode per environment; `seeds[i]` gives Gymnasium's `reset(seed=...)` start.

        Returns the initial observations `[B, obs_size]` (the env's buffer).
        """
        seed_list = as_seed_list(seeds)
        if len(seed_list) != self.num_envs:
            raise ValueError(
                f"{self.env_id}: got {len(seed_list)} seeds for {self.num_envs} environments"
            )
        self.done.zero_()
        self.terminated.zero_()
        self.truncated.zero_()
        self.reward.zero_()
        self._returns.zero_()
        self._end_step.fill_(self.max_episode_steps)
        self.elapsed_steps = 0
        self._reset(seed_list)
        return self.obs

    def step(self, actions: torch.Tensor) -> StepResult:
        """Advance every environment by one step; `actions` is `[B]` integer.

        Returns `StepResult(obs [B, obs_size], reward [B], terminated [B], truncated [B])`,
        views of buffers that the next call overwrites.
        """
        if self.elapsed_steps >= self.max_episode_steps:
            raise RuntimeError(
                f"{self.env_id}: all episodes reached max_episode_steps="
                f"{self.max_episode_steps}; call reset() first"
            )
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"{self.env_id}: actions has shape {tuple(actions.shape)}, "
                f"expected ({self.num_envs},)"
            )
        self.elapsed_steps += 1
        # `_step` fills obs, reward and terminated as if every episode were still running;
        # masking by `done` (before this step) happens here.
        self._step(actions)
        ops, done, terminated = self._ops, self._done_a, self._terminated_a
        ops.fill_where(self._reward_a, 0.0, done)
        ops.add(self._returns_a, self._reward_a, self._returns_a)
        ops.fill_where(terminated, False, done)
        ops.fill_where(self._end_step_a, self.elapsed_steps, terminated)
        if self.elapsed_steps >= self.max_episode_steps:
            ops.logical_not(done, self._truncated_a)
            ops.fill(done, True)
        else:
            ops.logical_or(done, terminated, done)
        return self._result

    @property
    def alive(self) -> torch.Tensor:
        """Whether each episode is still running, `[B]` bool (a new tensor)."""
        return self.done.logical_not()

    @property
    def returns(self) -> torch.Tensor:
        """Sum of rewards of each episode so far, `[B]` float32."""
        return self._returns

    @property
    def lengths(self) -> torch.Tensor:
        """Steps taken in each episode so far (the terminating step included), `[B]` int64."""
        return torch.where(self.done, self._end_step, self.elapsed_steps)

    def all_done(self) -> bool:
        """Whether every episode has ended (a device sync)."""
        return self.elapsed_steps >= self.max_episode_steps or bool(self.done.all())

    def close(self) -> None:
        """Release resources held by the environment (nothing for the torch envs)."""

    def _reset(self, seeds: list[int]) -> None:
        raise NotImplementedError

    def _step(self, actions: torch.Tensor) -> None:
        raise NotImplementedError
