"""The four games people play, with the lab recorder's keys, frame rates and no-op actions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class EnvSpec:
    """One game as the recorder presents it to a person.

    `keys` maps a pygame key name (`pygame.key.key_code(name)`) to the action it triggers;
    `noop_action` is what the recorder logs for a frame with no (or an unknown) key held.
    One environment step is one displayed frame at `fps` frames per second.
    """

    name: str
    env_id: str
    obs_size: int
    num_actions: int
    fps: int
    noop_action: int
    keys: Mapping[str, int] = field(default_factory=dict)
    max_episode_steps: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        bad = {k: a for k, a in self.keys.items() if not 0 <= a < self.num_actions}
        if bad or not 0 <= self.noop_action < self.num_actions:
            raise ValueError(f"{self.name}: actions out of range [0, {self.num_actions}): {bad}")

    @property
    def seconds_per_step(self) -> float:
        return 1.0 / self.fps


ENVIRONMENTS: Mapping[str, EnvSpec] = MappingProxyType(
    {
        "cartpole": EnvSpec(
            "cartpole", "CartPole-v1", 4, 2, fps=15, noop_action=0,
            keys={"left": 0, "right": 1}, max_episode_steps=500,
        ),
        "mountaincar": EnvSpec(
            "mountaincar", "MountainCar-v0", 2, 3, fps=15, noop_action=1,
            keys={"left": 0, "down": 1, "right": 2}, max_episode_steps=200,
        ),
        "acrobot": EnvSpec(
            "acrobot", "Acrobot-v1", 6, 3, fps=15, noop_action=1,
            keys={"left": 0, "down": 1, "right": 2}, max_episode_steps=500,
        ),
        "lunarlander": EnvSpec(
            "lunarlander", "LunarLander-v3", 8, 4, fps=20, noop_action=0,
            keys={"up": 2, "left": 1, "right": 3}, max_episode_steps=1000,
        ),
    }
)  # fmt: skip


def get_env_spec(env: str | EnvSpec) -> EnvSpec:
    """The spec for a short name (`cartpole`) or versioned id (`CartPole-v1`)."""
    if isinstance(env, EnvSpec):
        return env
    if env in ENVIRONMENTS:
        return ENVIRONMENTS[env]
    for spec in ENVIRONMENTS.values():
        if spec.env_id == env:
            return spec
    known = ", ".join(f"{s.name} ({s.env_id})" for s in ENVIRONMENTS.values())
    raise ValueError(f"unknown environment {env!r}; expected one of: {known}")
