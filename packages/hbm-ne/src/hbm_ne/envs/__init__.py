"""Batched environments, whole-population rollouts and environment-return fitness.

Evaluating how a policy plays is the slow part of behaviour modelling when done one Gymnasium
step at a time; here every member of a population plays its own episodes, all at once.

- `make_env(env_id, num_envs, device=...)`: B episodes stepped together. CartPole-v1,
  MountainCar-v0 and Acrobot-v1 are torch re-implementations (any device) with Gymnasium's
  dynamics, rewards, termination and truncation (500 / 200 / 500 steps); their float64 state
  follows Gymnasium's arithmetic operation for operation, so on CPU every observation, reward
  and flag is Gymnasium's bit for bit (on other devices: to rounding). LunarLander-v3 runs
  Gymnasium's Box2D environments behind the same interface (install `hbm-ne[envs]`). Short
  names (`"cartpole"`, ...) are accepted everywhere. `reset(seeds)` gives episode b the start
  of Gymnasium's `reset(seed=seeds[b])`; `step(actions [B])` returns
  `StepResult(obs [B, obs], reward [B], terminated [B], truncated [B])`. Episodes that ended
  earn nothing more; `done`, `returns`, `lengths` track them.
- `rollout(population, env_id, seeds, deterministic=..., generator=...)`: members of a
  `BatchedFeedforward` / `BatchedRecurrent` (or anything with the same methods) each play
  the E episodes `seeds` (or their own row of a `[P, E]` grid) -> returns, lengths `[P, E]`;
  `record_rollout` also returns every observation and action (`Trajectories`).
- `evaluate_module(policy, env_id, seeds, extra_features=...)`: the matched-seed behaviour
  rollout of one `torch.nn.Module` (feedforward, or recurrent with `forward_step`): play the
  seeds a person played, with that episode's CL features appended -> returns `[E]`.
- `EnvReturnFitness(env_id, episodes)`: `fitness(population, generation, generator) -> [P]`
  = -mean return, for `hbm_ne.evolve` with `GA`, `ES` or `CMAES`.

Torch threads: at B ~ 1000 a step is a few dozen tiny kernels; on a CPU shared with other
work, `torch.set_num_threads(1)` avoids waiting on a busy second core.

```python
import torch
from hbm_ne import GA, BatchedFeedforward, evolve
from hbm_ne.envs import EnvReturnFitness, evaluate_module, make_env, rollout

env = make_env("CartPole-v1", 3)
obs = env.reset([0, 1, 2])                  # the starts of gymnasium's reset(seed=0, 1, 2)
out = env.step(torch.tensor([0, 1, 1]))     # obs [3, 4], reward, terminated, truncated

population = BatchedFeedforward(4, 2, 32, generator=torch.Generator().manual_seed(0))
returns, lengths = rollout(population, "cartpole", [10, 11], deterministic=True)  # [32, 2]

fitness = EnvReturnFitness("cartpole", episodes=2)   # -mean return, lower is better
result = evolve(population, GA(population), fitness, max_generations=2)
person_seeds = [3, 14, 15]                           # EpisodeInfo.seed of a person's episodes
model_returns = evaluate_module(result.best, "cartpole", person_seeds)  # [3], sampled actions
```
"""

from hbm_ne.envs._base import BatchedEnv, StepResult, gymnasium_uniform
from hbm_ne.envs._registry import ENV_CLASSES, SHORT_NAMES, env_class, make_env, resolve_env_id
from hbm_ne.envs.classic import Acrobot, CartPole, MountainCar
from hbm_ne.envs.lunar import LunarLander
from hbm_ne.envs.overcooked import KITCHENS, Overcooked
from hbm_ne.envs.rollout import (
    EnvReturnFitness,
    Trajectories,
    evaluate_module,
    play,
    record_rollout,
    rollout,
    select_actions,
)

__all__ = [
    "ENV_CLASSES",
    "KITCHENS",
    "SHORT_NAMES",
    "Acrobot",
    "BatchedEnv",
    "CartPole",
    "EnvReturnFitness",
    "LunarLander",
    "MountainCar",
    "Overcooked",
    "StepResult",
    "Trajectories",
    "env_class",
    "evaluate_module",
    "gymnasium_uniform",
    "make_env",
    "play",
    "record_rollout",
    "resolve_env_id",
    "rollout",
    "select_actions",
]
