"""Batched environments and whole-population rollouts (placeholder docstring)."""

from hbm_ne.envs._base import BatchedEnv, StepResult, gymnasium_uniform
from hbm_ne.envs._registry import ENV_CLASSES, SHORT_NAMES, env_class, make_env, resolve_env_id
from hbm_ne.envs.classic import Acrobot, CartPole, MountainCar
from hbm_ne.envs.lunar import LunarLander
from hbm_ne.envs.rollout import EnvReturnFitness, evaluate_module, play, rollout, select_actions

__all__ = [
    "ENV_CLASSES",
    "SHORT_NAMES",
    "Acrobot",
    "BatchedEnv",
    "CartPole",
    "EnvReturnFitness",
    "LunarLander",
    "MountainCar",
    "StepResult",
    "env_class",
    "evaluate_module",
    "gymnasium_uniform",
    "make_env",
    "play",
    "resolve_env_id",
    "rollout",
    "select_actions",
]
