"""LunarLander-v3 behind the batched interface, over Gymnasium's own Box2D environments.

Box2D cannot be tensorised, so this steps B Gymnasium environments one after the other, like
Gymnasium's `SyncVectorEnv`, but skips environments whose episode has already ended (episodes
last from under 100 to 1000 steps, so this saves much of the work). Needs the optional
dependency: `pip install "hbm-ne[envs]"`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hbm_ne.envs._base import BatchedEnv


def import_gymnasium() -> Any:
    """Import gymnasium, or say how to install it."""
    try:
        import gymnasium
    except ImportError as exc:
        raise ImportError(
            "LunarLander-v3 runs on Gymnasium's Box2D environment, which is not installed: "
            'install the optional dependency with `pip install "hbm-ne[envs]"`'
        ) from exc
    return gymnasium


class LunarLander(BatchedEnv):
    """LunarLander-v3: noop (0), left engine (1), main engine (2), right engine (3);
    1000 steps at most."""

    env_id = "LunarLander-v3"
    obs_size = 8
    num_actions = 4
    max_episode_steps = 1000

    def __init__(self, num_envs: int, *, device: torch.device | str = "cpu") -> None:
        super().__init__(num_envs, device=device)
        gym = import_gymnasium()
        try:
            self._envs = [
                gym.make(self.env_id, disable_env_checker=True) for _ in range(self.num_envs)
            ]
        except gym.error.DependencyNotInstalled as exc:
            raise ImportError(
                f'{self.env_id} needs Box2D: install it with `pip install "hbm-ne[envs]"`'
            ) from exc
        b = self.num_envs
        self._obs_np = np.zeros((b, self.obs_size), dtype=np.float32)
        self._reward_np = np.zeros(b, dtype=np.float32)
        self._terminated_np = np.zeros(b, dtype=np.bool_)

    def _reset(self, seeds: list[int]) -> None:
        for i, (env, seed) in enumerate(zip(self._envs, seeds, strict=True)):
            self._obs_np[i], _ = env.reset(seed=seed)
        self.obs.copy_(torch.from_numpy(self._obs_np))

    def _step(self, actions: torch.Tensor) -> None:
        acts = actions.detach().cpu().numpy()
        alive = self.alive.cpu().numpy()
        self._reward_np[:] = 0.0
        self._terminated_np[:] = False
        envs, obs_np = self._envs, self._obs_np
        for i in np.flatnonzero(alive).tolist():
            obs, reward, terminated, _, _ = envs[i].step(int(acts[i]))
            obs_np[i] = obs
            self._reward_np[i] = reward
            self._terminated_np[i] = terminated
        self.obs.copy_(torch.from_numpy(obs_np))
        self.reward.copy_(torch.from_numpy(self._reward_np))
        self.terminated.copy_(torch.from_numpy(self._terminated_np))

    def close(self) -> None:
        """Close the Gymnasium environments."""
        for env in self._envs:
            env.close()
