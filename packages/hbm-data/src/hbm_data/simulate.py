"""Simulated players: deterministic, human-like stand-ins for people until real recordings exist.

Each simulated person plays the real Gymnasium game through the recorder's interface (one step
per frame at the recorder's frame rate, only the keys the recorder maps, the recorder's no-op
when no key is held) with a competent controller degraded the way people are: they see the
screen a reaction time late and imprecisely, hold keys for a few frames at least, sometimes
lapse (freeze on the current key) or press the wrong key, and get better over sessions.
Timestamps follow a person's schedule: a few sittings days apart, several runs per sitting,
a few seconds' pause between runs, each episode lasting `steps / fps` seconds.

A subject is a profile (a style of play: reaction time, how long keys are held, how readily
keys change, lapses, wrong keys, how fast skill grows) plus a seed (the person's luck).
`SIMULATED_PROFILES` holds four distinct styles, `sim01` to `sim04`; `profile.with_seed(s)` is
another person with the same style. Stepping the games needs `hbm-data[simulate]` (gymnasium,
with Box2D for LunarLander).
"""

from __future__ import annotations

import importlib
import logging
import math
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from . import __version__
from .envs import EnvSpec, get_env_spec
from .episodes import Episode, write_episodes, write_sidecar
from .extras import MissingExtraError, require
from .paths import data_dir as default_data_dir
from .paths import find_episode_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubjectProfile:
    """How one simulated person plays and learns. Skill is in [0, 1] (1 = the controller).

    "Clumsy" is `1 - skill`: every imperfection shrinks as the person learns. The defaults of
    the style fields are sim01's, the first simulated player's, so older profiles are unchanged.
    """

    name: str
    seed: int
    initial_skill: float
    final_skill: float
    learning_rate: float  # per session: skill_k = final - (final - initial)·exp(-rate·k)
    reaction_time: float  # seconds, at full skill
    extra_reaction_time: float  # seconds added at zero skill
    lapses_per_minute: float  # at zero skill
    n_sessions: int
    episodes_per_session: tuple[int, int]  # inclusive range
    first_session: datetime
    style: str = ""  # how this person plays, in a few words (README, sidecar)
    min_hold_frames: int = 0  # a new key is held at least this many extra frames...
    hold_jitter_frames: int = 1  # ...plus up to this many more...
    clumsy_hold_frames: float = 3.0  # ...plus up to this many more × clumsy
    deadband: float = 0.02  # how wrong things must look before a key is pressed, at full skill
    clumsy_deadband: float = 0.1  # added × clumsy
    wrong_key_rate: float = 0.08  # chance per decision of a random key, × clumsy
    perception_noise: float = 1.0  # scales the game's perceptual noise (× clumsy)

    def with_seed(self, seed: int, name: str | None = None) -> SubjectProfile:
        """Another person with the same style: same profile, other seed (so other luck, other
        sittings). Named `<name>-seed<seed>` unless `name` is given."""
        return replace(self, seed=seed, name=name or f"{self.name}-seed{seed}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields (the sidecar records them)."""
        d = asdict(self)
        d["first_session"] = self.first_session.isoformat()
        d["episodes_per_session"] = list(self.episodes_per_session)
        return d


SIMULATED_PROFILES: Mapping[str, SubjectProfile] = MappingProxyType({
    "sim01": SubjectProfile(
        "sim01", seed=1, initial_skill=0.15, final_skill=0.85, learning_rate=0.45,
        reaction_time=0.18, extra_reaction_time=0.25, lapses_per_minute=12.0, n_sessions=6,
        episodes_per_session=(7, 13), first_session=datetime(2025, 3, 3, 10, 12, 5),
        style="steady: average reactions and key holds, improves steadily over six sittings",
    ),
    "sim02": SubjectProfile(
        "sim02", seed=2, initial_skill=0.3, final_skill=0.95, learning_rate=0.7,
        reaction_time=0.15, extra_reaction_time=0.3, lapses_per_minute=8.0, n_sessions=4,
        episodes_per_session=(10, 17), first_session=datetime(2025, 3, 10, 14, 40, 31),
        style="fast learner: quick reactions, near-perfect after two of four sittings",
    ),
    "sim03": SubjectProfile(
        "sim03", seed=3, initial_skill=0.2, final_skill=0.8, learning_rate=0.5,
        reaction_time=0.12, extra_reaction_time=0.15, lapses_per_minute=4.0, n_sessions=5,
        episodes_per_session=(8, 14), first_session=datetime(2025, 3, 5, 19, 3, 47),
        style="twitchy: fastest reactions, taps keys for a frame or two and switches often, "
        "jittery aim and more wrong keys",
        min_hold_frames=0, hold_jitter_frames=0, clumsy_hold_frames=1.0, deadband=0.002,
        clumsy_deadband=0.01, wrong_key_rate=0.15, perception_noise=1.5,
    ),
    "sim04": SubjectProfile(
        "sim04", seed=4, initial_skill=0.1, final_skill=0.95, learning_rate=0.35,
        reaction_time=0.18, extra_reaction_time=0.4, lapses_per_minute=3.0, n_sessions=6,
        episodes_per_session=(7, 11), first_session=datetime(2025, 3, 4, 9, 31, 12),
        style="cautious: slow to react at first, holds keys long and changes them rarely, "
        "few mistakes, learns slowly",
        min_hold_frames=1, hold_jitter_frames=1, clumsy_hold_frames=5.0, deadband=0.02,
        clumsy_deadband=0.05, wrong_key_rate=0.02, perception_noise=0.7,
    ),
})  # fmt: skip

#: Subjects generated on first use by `load_human_data` (and `hbm-data simulate` by default).
DEFAULT_SUBJECTS: Mapping[str, SubjectProfile] = SIMULATED_PROFILES

# ----------------------------------------------------------------------------- controllers
# Each maps a (perceived) observation to the key the competent player would hold: an action,
# or None for no key. `noise` is the perceptual noise per observation dimension at zero skill.


def _cartpole(obs: np.ndarray, deadband: float) -> int | None:
    x, x_dot, theta, theta_dot = obs
    u = theta + 0.3 * theta_dot + 0.02 * x + 0.1 * x_dot
    return 1 if u > deadband else 0 if u < -deadband else None


def _mountaincar(obs: np.ndarray, deadband: float) -> int | None:
    v = obs[1]
    return 2 if v > deadband * 0.01 else 0 if v < -deadband * 0.01 else None


def _acrobot(obs: np.ndarray, deadband: float) -> int | None:
    w2 = obs[5]
    return 2 if w2 > deadband * 2 else 0 if w2 < -deadband * 2 else None


def _lunarlander_factory() -> Callable[[np.ndarray, float], int | None]:
    lander = _box2d_import(lambda: importlib.import_module("gymnasium.envs.box2d.lunar_lander"))
    heuristic = lander.heuristic

    class _Discrete:  # what `heuristic` reads from the env
        class unwrapped:
            continuous = False

    def control(obs: np.ndarray, deadband: float) -> int | None:
        a = int(heuristic(_Discrete, obs))
        return None if a == 0 else a

    return control


@dataclass(frozen=True)
class _Controller:
    control: Callable[[np.ndarray, float], int | None]
    noise: tuple[float, ...]


def _controller(spec: EnvSpec) -> _Controller:
    if spec.name == "cartpole":
        return _Controller(_cartpole, (0.3, 0.5, 0.06, 0.5))
    if spec.name == "mountaincar":
        return _Controller(_mountaincar, (0.1, 0.01))
    if spec.name == "acrobot":
        return _Controller(_acrobot, (0.1, 0.1, 0.1, 0.1, 0.8, 1.2))
    if spec.name == "lunarlander":
        return _Controller(_lunarlander_factory(), (0.1, 0.1, 0.15, 0.15, 0.15, 0.3, 0.0, 0.0))
    raise ValueError(f"no simulated controller for {spec.name!r}")


class _Player:
    """A person at the keyboard for one episode, at skill `skill`."""

    def __init__(
        self,
        spec: EnvSpec,
        controller: _Controller,
        profile: SubjectProfile,
        skill: float,
        rng: np.random.Generator,
    ) -> None:
        self.spec, self.controller, self.rng = spec, controller, rng
        clumsy = 1.0 - skill
        rt = profile.reaction_time + clumsy * profile.extra_reaction_time
        self.delay = max(1, round(rt * spec.fps))
        self.noise = np.asarray(controller.noise) * clumsy * profile.perception_noise
        self.deadband = profile.deadband + profile.clumsy_deadband * clumsy
        self.lapse_prob = profile.lapses_per_minute * clumsy / (60.0 * spec.fps)
        self.wrong_key_prob = profile.wrong_key_rate * clumsy
        self.min_hold = profile.min_hold_frames
        self.max_extra_hold = profile.hold_jitter_frames + round(
            profile.clumsy_hold_frames * clumsy
        )
        self.key_actions = sorted(set(spec.keys.values()))
        self.seen: deque[np.ndarray] = deque(maxlen=self.delay + 1)
        self.held: int | None = None
        self.hold_left = 0
        self.lapse_left = 0

    def act(self, obs: np.ndarray) -> int:
        self.seen.append(obs)
        rng = self.rng
        if self.lapse_left > 0:
            self.lapse_left -= 1
        elif rng.random() < self.lapse_prob:
            self.lapse_left = int(rng.integers(int(self.spec.fps) // 4, int(self.spec.fps)))
        elif self.hold_left > 0:
            self.hold_left -= 1
        else:
            perceived = self.seen[0] + self.noise * rng.standard_normal(len(obs))
            want = self.controller.control(perceived, self.deadband)
            if rng.random() < self.wrong_key_prob:
                want = self.key_actions[int(rng.integers(len(self.key_actions)))]
            if want != self.held:
                self.held = want
                lo = self.min_hold
                self.hold_left = int(rng.integers(lo, lo + self.max_extra_hold + 1))
        return self.spec.noop_action if self.held is None else self.held


def _box2d_import(load: Callable[[], Any]) -> Any:
    """`load()`, turning Gymnasium's "Box2D is not installed" into the extra to install."""
    try:
        return load()
    except MissingExtraError:
        raise
    except Exception as exc:
        if type(exc).__name__ != "DependencyNotInstalled" and not isinstance(exc, ImportError):
            raise
        raise MissingExtraError("simulating LunarLander", "simulate", "Box2D", str(exc)) from exc


def profile_for(subject: str | SubjectProfile) -> SubjectProfile:
    """The profile of a subject: a `SubjectProfile` as is, a name in `SIMULATED_PROFILES`, or
    for any other name a reproducible person drawn from the name (sim01-like style)."""
    if isinstance(subject, SubjectProfile):
        return subject
    if subject in SIMULATED_PROFILES:
        return SIMULATED_PROFILES[subject]
    # any other name: a reproducible person drawn from the name
    seed = zlib.crc32(subject.encode())
    r = np.random.default_rng(seed)
    return SubjectProfile(
        subject,
        seed=seed,
        initial_skill=float(r.uniform(0.1, 0.35)),
        final_skill=float(r.uniform(0.75, 0.95)),
        learning_rate=float(r.uniform(0.3, 0.8)),
        reaction_time=float(r.uniform(0.15, 0.22)),
        extra_reaction_time=float(r.uniform(0.2, 0.35)),
        lapses_per_minute=float(r.uniform(6, 14)),
        n_sessions=int(r.integers(4, 8)),
        episodes_per_session=(8, 15),
        first_session=datetime(2025, 3, 3, 9, 0) + timedelta(minutes=int(r.integers(0, 20000))),
    )


def _skill(
    profile: SubjectProfile, session: int, run: int, n_runs: int, rng: np.random.Generator
) -> float:
    base = profile.final_skill - (profile.final_skill - profile.initial_skill) * math.exp(
        -profile.learning_rate * session
    )
    warmup = 0.04 * (run / max(1, n_runs - 1))  # a little better as the sitting goes on
    return float(np.clip(base + warmup + rng.normal(0.0, 0.05), 0.0, 1.0))


def simulate_subject(
    env_name: str,
    subject: str | SubjectProfile = "sim01",
    *,
    n_sessions: int | None = None,
    episodes_per_session: tuple[int, int] | None = None,
    seed: int | None = None,
    start_time: datetime | None = None,
    max_episode_steps: int | None = None,
) -> list[Episode]:
    """Episodes of a simulated person playing `env_name`, exactly as the recorder would log them.

    `subject` is a name in `SIMULATED_PROFILES` (`sim01` ... `sim04`), any other name (a
    reproducible person drawn from the name) or a `SubjectProfile`; `seed` overrides the
    profile's (same style, another person). Same arguments → identical episodes. Episodes use
    seeds 0, 1, 2, ... like the recorder; `max_episode_steps` caps long episodes.
    Needs `hbm-data[simulate]`.
    """
    gym = require("gymnasium", "simulate", "simulating players")

    spec = get_env_spec(env_name)
    profile = profile_for(subject)
    if n_sessions is not None:
        profile = replace(profile, n_sessions=n_sessions)
    if episodes_per_session is not None:
        profile = replace(profile, episodes_per_session=episodes_per_session)
    lo, hi = profile.episodes_per_session
    if profile.n_sessions < 1 or not 1 <= lo <= hi:
        raise ValueError(
            f"need n_sessions ≥ 1 and 1 ≤ episodes_per_session[0] ≤ episodes_per_session[1], got "
            f"{profile.n_sessions} and {profile.episodes_per_session}"
        )
    base_seed = profile.seed if seed is None else seed
    rng = np.random.default_rng([base_seed, zlib.crc32(spec.name.encode())])
    controller = _controller(spec)
    kwargs: dict[str, Any] = {}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    env = _box2d_import(lambda: gym.make(spec.env_id, **kwargs))
    episodes: list[Episode] = []
    clock = start_time or profile.first_session
    try:
        for session in range(profile.n_sessions):
            n_runs = int(rng.integers(lo, hi + 1))
            for run in range(n_runs):
                skill = _skill(profile, session, run, n_runs, rng)
                player = _Player(spec, controller, profile, skill, rng)
                ep = _play(env, player, len(episodes), clock)
                episodes.append(ep)
                clock += timedelta(seconds=ep.length / spec.fps + float(rng.gamma(2.0, 2.5)))
                if rng.random() < 0.08:  # a short break, well under the session gap
                    clock += timedelta(minutes=float(rng.uniform(2, 12)))
            # next sitting: 0.5 to 3 days later, between 9:00 and 22:00
            day = clock.date() + timedelta(days=int(rng.integers(1, 4)))
            clock = datetime.combine(day, datetime.min.time()) + timedelta(
                hours=float(rng.uniform(9, 21)), microseconds=int(rng.integers(0, 10**6))
            )
    finally:
        env.close()
    logger.info(
        "simulated %s playing %s: %d episodes in %d sessions",
        profile.name, spec.name, len(episodes), profile.n_sessions,
    )  # fmt: skip
    return episodes


def _play(env: Any, player: _Player, index: int, start: datetime) -> Episode:
    obs, _ = env.reset(seed=index)
    observations, actions, rewards, next_observations, dones = [], [], [], [], []
    done = False
    while not done:
        action = player.act(obs)
        nxt, reward, terminated, truncated, _ = env.step(action)
        done = bool(terminated or truncated)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        next_observations.append(nxt)
        dones.append(done)
        obs = nxt
    rew = np.asarray(rewards, dtype=np.float64)
    return Episode(
        episode_id=index,
        timestamp=start.isoformat(timespec="microseconds"),
        seed_used=index,
        score=float(sum(rewards)),
        observations=np.asarray(observations, dtype=np.float64),
        actions=np.asarray(actions, dtype=np.int64),
        rewards=rew,
        next_observations=np.asarray(next_observations, dtype=np.float64),
        dones=np.asarray(dones, dtype=bool),
    )


def write_simulated_subject(
    env_name: str,
    subject: str | SubjectProfile = "sim01",
    *,
    path: Path | str | None = None,
    data_dir: Path | str | None = None,
    **kwargs: Any,
) -> Path:
    """Simulate and write `<subject>_data_<env>.json` (atomically) plus its sidecar.

    The sidecar (`<name>.meta.json`) marks the file as simulated; the episode file itself is
    plain recorder format. Returns the episode file's path.
    """
    spec = get_env_spec(env_name)
    profile = profile_for(subject)
    if path is None:
        directory = default_data_dir() if data_dir is None else Path(data_dir)
        path = directory / f"{profile.name}_data_{spec.name}.json"
    path = Path(path)
    episodes = simulate_subject(spec.name, profile, **kwargs)
    write_episodes(path, episodes)
    write_sidecar(
        path,
        {
            "subject": profile.name,
            "env_name": spec.name,
            "env_id": spec.env_id,
            "simulated": True,
            "note": "simulated player generated by hbm_data.simulate, not a person",
            "generator": f"hbm_data {__version__}",
            "style": profile.style,
            "profile": profile.to_dict(),
            "options": {k: str(v) for k, v in sorted(kwargs.items())},
        },
    )
    return path


def ensure_default_file(env_name: str, subject: str, directory: Path | str | None = None) -> Path:
    """The default subject's file, generated on first use (safe if several processes race).

    Generating needs `hbm-data[simulate]`; without it, `MissingExtraError` says so and names the
    file that could be copied in instead.
    """
    spec = get_env_spec(env_name)
    if subject not in DEFAULT_SUBJECTS:
        raise ValueError(f"{subject!r} is not a default subject ({', '.join(DEFAULT_SUBJECTS)})")
    path = find_episode_file(spec.name, subject, directory)
    if path.exists():
        return path
    logger.info("generating simulated subject %s for %s in %s", subject, spec.name, path.parent)
    try:
        return write_simulated_subject(spec.name, subject, path=path)
    except MissingExtraError as exc:
        raise MissingExtraError(
            f"{path} does not exist yet; generating the simulated subject {subject} for it",
            exc.extra,
            exc.missing,
            exc.detail,
        ) from exc
