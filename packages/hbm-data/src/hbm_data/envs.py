"""The games people play, with the lab recorder's keys, frame rates and no-op actions.

The four Gymnasium games are recorded with `hbm-data record`; the five Overcooked kitchens
(`overcooked-<layout>`) are the 2019 human-human recordings of Overcooked-AI, imported with
`hbm-data import-overcooked` (`hbm_data.overcooked`): no Gymnasium game, so nothing simulates,
records or replays them (`EnvSpec.gymnasium` is False)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class EnvSpec:
    """One game as the recorder presents it to a person.

    `keys` maps a pygame key name (`pygame.key.key_code(name)`) to the action it triggers;
    `noop_action` is what the recorder logs for a frame with no (or an unknown) key held.
    One environment step is one displayed frame at `fps` frames per second. `gymnasium`: the
    game is `gymnasium.make(env_id)` (simulated players, the recorder and seeded replays exist).
    """

    name: str
    env_id: str
    obs_size: int
    num_actions: int
    fps: float
    noop_action: int
    keys: Mapping[str, int] = field(default_factory=dict)
    max_episode_steps: int = 500
    gymnasium: bool = True

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
    | {
        # Overcooked-AI 2019: actions in its Action.ALL_ACTIONS order (north, south, east, west,
        # stay, interact); one step per 150 ms game tick (time_elapsed: median 0.150 s), a
        # 180 s trial is at most 1204 steps; observation sizes from hbm_data.overcooked.
        f"overcooked-{layout}": EnvSpec(
            f"overcooked-{layout}", f"overcooked-{layout}", obs, 6, fps=20 / 3, noop_action=4,
            max_episode_steps=1204, gymnasium=False,
        )
        for layout, obs in (
            ("cramped_room", 36), ("asymmetric_advantages", 60), ("coordination_ring", 45),
            ("random0", 45), ("random3", 72),
        )
    }
)  # fmt: skip

#: The games that are Gymnasium environments (simulated players, recorder, seeded replays).
GYMNASIUM_ENVIRONMENTS: Mapping[str, EnvSpec] = MappingProxyType(
    {name: spec for name, spec in ENVIRONMENTS.items() if spec.gymnasium}
)


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
