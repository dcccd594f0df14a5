"""Environment names and the factory."""

from __future__ import annotations

import torch

from hbm_ne.envs._base import BatchedEnv
from hbm_ne.envs.classic import Acrobot, CartPole, MountainCar
from hbm_ne.envs.lunar import LunarLander
from hbm_ne.envs.overcooked import KITCHENS

ENV_CLASSES: dict[str, type[BatchedEnv]] = {
    cls.env_id: cls for cls in (CartPole, MountainCar, Acrobot, LunarLander)
}
"""Gymnasium id (and `overcooked-<layout>`) -> batched environment class."""
ENV_CLASSES.update({cls.env_id: cls for cls in KITCHENS.values()})

SHORT_NAMES: dict[str, str] = {
    "cartpole": "CartPole-v1",
    "mountaincar": "MountainCar-v0",
    "acrobot": "Acrobot-v1",
    "lunarlander": "LunarLander-v3",
}
"""The short names used by hbm-data and hbm-experiments -> Gymnasium id."""


def resolve_env_id(env_id: str) -> str:
    """The Gymnasium id for a Gymnasium id or a short name (`"cartpole"` -> `"CartPole-v1"`)."""
    if env_id in ENV_CLASSES:
        return env_id
    key = env_id.lower()
    if key in SHORT_NAMES:
        return SHORT_NAMES[key]
    raise ValueError(
        f"unknown environment {env_id!r}: expected one of {sorted(ENV_CLASSES)} "
        f"or a short name {sorted(SHORT_NAMES)}"
    )


def env_class(env_id: str) -> type[BatchedEnv]:
    """The batched environment class for a Gymnasium id or short name."""
    return ENV_CLASSES[resolve_env_id(env_id)]


def make_env(env_id: str, num_envs: int, *, device: torch.device | str = "cpu") -> BatchedEnv:
    """A batched environment of `num_envs` episodes on `device`."""
    return env_class(env_id)(num_envs, device=device)
