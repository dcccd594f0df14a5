"""Record people playing: the lab's recorder, made safe to crash and to resume.

The game window comes from Gymnasium's play utilities (`PlayableGame`, `display_arr`) with the
lab's keys. Between episodes the game waits for SPACE; ESC (or closing the window) quits.
Episodes use seeds 0, 1, 2, ... and continue from the last recorded seed. The whole file is
rewritten atomically after every finished episode, so a crash loses at most the episode being
played and never damages what was recorded. An existing file that does not validate is never
overwritten: recording refuses to start. Rewriting keeps every field of the existing file,
including fields hbm does not know (per episode and per step), and a new episode is validated
with the file before it is written: the recorder never writes a file its validator rejects.

Timestamps are local time with the UTC offset (`2025-03-30T03:00:01.250000+02:00`), so a DST
change or an NTP correction between episodes compares correctly; a clock that went back is a
validator warning, never an error. Files of the lab's old recorder (naive local times) can be
extended: see `hbm_data.sessions.comparable_times` for how the two compare.

One recorder per file: `record` holds `recording_lock(path)` (the hidden file
`.<name>.lock` beside the episode file, naming its host, pid and start time) from before it
reads the file until it quits, so a second session on the same file (another window, another
machine on a shared folder) refuses to start instead of rewriting the file without the first
one's episodes. The lock of a recorder that died (a crash, a kill, a reboot) is taken over.

The file logic (`load_records`, `new_episode_numbers`, `episode_record`, `append_episode`) is
plain Python, testable without a display; only `record` needs `hbm-data[record]`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .envs import EnvSpec, get_env_spec
from .episodes import load_records, parse_episodes, write_episodes, write_sidecar
from .extras import MissingExtraError, require
from .files import LockHeldError, OwnerLock
from .paths import check_subject, find_episode_file
from .paths import data_dir as default_data_dir
from .validation import EpisodeFormatError, errors

__all__ = [
    "RECORDING_LOCK_STALE_S",
    "append_episode",
    "episode_record",
    "new_episode_numbers",
    "now_timestamp",
    "record",
    "recording_lock",
]

#: A recording lock of another host counts as abandoned after this long without a refresh (the
#: recorder refreshes it every quarter of this while it runs); one of this host is judged at
#: once by whether its process still runs.
RECORDING_LOCK_STALE_S = 600.0


def recording_lock(path: Path | str) -> OwnerLock:
    """The lock a recorder holds on episode file `path`: `.<name>.lock` beside it (hidden, so
    it is never taken for data). `acquire()` raises `LockHeldError` naming the holder."""
    p = Path(path)
    return OwnerLock(p.with_name(f".{p.name}.lock"), stale_after_s=RECORDING_LOCK_STALE_S)


def now_timestamp() -> str:
    """Now, in local time with its UTC offset: ISO 8601 that compares correctly across DST."""
    return datetime.now(UTC).astimezone().isoformat()


def new_episode_numbers(records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """`(episode_id, seed_used)` of the next episode: ids stay unique (one more than the
    largest), seeds continue from the last recorded one, as the lab recorder did."""
    if not records:
        return 0, 0
    next_id = max(int(r["episode_id"]) for r in records) + 1
    return next_id, int(records[-1]["seed_used"]) + 1


def episode_record(
    episode_id: int, timestamp: str, seed: int, steps: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """One episode as the recorder writes it (`score` is the sum of the step rewards)."""
    return {
        "episode_id": episode_id,
        "timestamp": timestamp,
        "seed_used": seed,
        "length": len(steps),
        "score": float(sum(float(s["reward"]) for s in steps)),
        "steps": list(steps),
    }


def append_episode(
    path: Path | str,
    records: Sequence[Mapping[str, Any]],
    episode: Mapping[str, Any],
    *,
    env: str | EnvSpec,
    sidecar: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Write `records + [episode]` to `path` atomically and return that list.

    The new file is validated first, exactly as `load_episodes` will read it: on any error
    `EpisodeFormatError` is raised and nothing is written. Warnings (a clock that went back)
    do not stop it. `records` are written as given, so fields hbm does not know survive.
    `sidecar` is written along with the first episode of a new file.
    """
    new = [dict(r) for r in records] + [dict(episode)]
    _, problems = parse_episodes(new, env=env, source=str(path))
    bad = errors(problems)
    if bad:
        raise EpisodeFormatError(bad)
    write_episodes(path, new)
    if not records and sidecar is not None:
        write_sidecar(path, sidecar)
    return new


logger = logging.getLogger(__name__)


def record(
    env_name: str,
    subject: str,
    *,
    path: Path | str | None = None,
    data_dir: Path | str | None = None,
    max_episodes: int | None = None,
    fps: int | None = None,
    zoom: float | None = None,
    events: Callable[[], Iterable[Any]] | None = None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Let a person play `env_name` and append their episodes to `<subject>_data_<env>.json`.

    `fps` defaults to the recorder's frame rate for the game (0 = as fast as possible);
    `events` replaces `pygame.event.get` (scripted input for tests); `on_episode` is called
    with each saved episode record (only after it is on disk). Returns the episode file's path.
    Needs `hbm-data[record]` (and Box2D for LunarLander: `hbm-data[record,simulate]`).
    """
    check_subject(subject)
    spec = get_env_spec(env_name)
    gym = require("gymnasium", "record", "recording a person")
    pygame = require("pygame", "record", "recording a person")
    with warnings.catch_warnings():  # play.py tries TkAgg for PlayPlot, which we do not use
        warnings.filterwarnings("ignore", message=".*matplotlib is not installed")
        play = require("gymnasium.utils.play", "record", "recording a person")
    PlayableGame, display_arr = play.PlayableGame, play.display_arr

    if path is None:
        directory = default_data_dir() if data_dir is None else Path(data_dir)
        path = find_episode_file(spec.name, subject, directory)
    path = Path(path)
    lock = recording_lock(path)
    try:
        lock.acquire()
    except LockHeldError as exc:
        raise LockHeldError(
            f"{path}: another recorder is adding episodes to this file ({exc}); finish that "
            "session first, or record into another file",
            exc.owner,
        ) from None
    try:
        records: list[dict[str, Any]] = []
        if path.exists():  # raises EpisodeFormatError rather than risk overwriting anything
            records = load_records(path, env=spec)
        next_id, next_seed = new_episode_numbers(records)
        logger.info("recording %s for %s into %s from seed %d", spec.name, subject, path, next_seed)

        pygame.init()
        keys: dict[tuple[int, ...], int] = {
            (pygame.key.key_code(name),): action for name, action in spec.keys.items()
        }
        get_events = events if events is not None else pygame.event.get
        try:
            env = gym.make(spec.env_id, render_mode="rgb_array")
        except BaseException as exc:
            pygame.quit()
            if type(exc).__name__ == "DependencyNotInstalled":  # Box2D, for LunarLander
                raise MissingExtraError(
                    f"recording {spec.env_id}", "record,simulate", "Box2D", str(exc)
                ) from exc
            raise
        try:
            obs, _ = env.reset(seed=next_seed)
            game = PlayableGame(env, keys, zoom)  # type: ignore[arg-type]
            font = pygame.font.Font(None, 28) if pygame.font.get_init() else None
            clock = pygame.time.Clock()
            playing = False
            steps: list[dict[str, Any]] = []
            timestamp = ""
            recorded = 0
            while game.running and (max_episodes is None or recorded < max_episodes):
                for event in get_events():
                    game.process_event(event)
                    if not playing and event.type == pygame.KEYDOWN and event.key == pygame.K_SPACE:
                        playing, steps = True, []
                        timestamp = now_timestamp()
                        obs, _ = env.reset(seed=next_seed)
                if not game.running:
                    break
                if playing:
                    action = keys.get(tuple(sorted(game.pressed_keys)), spec.noop_action)
                    nxt, reward, terminated, truncated, _ = env.step(action)
                    done = bool(terminated or truncated)
                    steps.append(
                        {
                            "observation": np.asarray(obs).tolist(),
                            "action": int(action),
                            "reward": float(reward),
                            "next_observation": np.asarray(nxt).tolist(),
                            "done": done,
                        }
                    )
                    obs = nxt
                    if done:
                        episode = episode_record(next_id, timestamp, next_seed, steps)
                        records = append_episode(
                            path, records, episode, env=spec,
                            sidecar=_sidecar(spec.name, spec.env_id, subject),
                        )  # fmt: skip
                        logger.info("saved episode %d (seed %d, score %.1f) in %s", next_id,
                                    next_seed, episode["score"], path)  # fmt: skip
                        if on_episode is not None:
                            on_episode(episode)
                        next_id, next_seed = next_id + 1, next_seed + 1
                        recorded += 1
                        playing = False
                frame = np.asarray(env.render(), dtype=np.uint8)
                display_arr(game.screen, frame, transpose=True, video_size=game.video_size)
                if not playing and font is not None:
                    text = f"SPACE: play episode {next_id} (seed {next_seed})   ESC: quit"
                    game.screen.blit(font.render(text, True, (255, 60, 60)), (10, 10))
                pygame.display.flip()
                clock.tick(spec.fps if fps is None else fps)
            if playing:
                logger.warning("quit during an episode: its %d steps were not saved", len(steps))
        finally:
            env.close()
            pygame.quit()
    finally:
        lock.release()
    return path


def _sidecar(env_name: str, env_id: str, subject: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "env_name": env_name,
        "env_id": env_id,
        "simulated": False,
        "note": "recorded from a person with `hbm-data record`",
        "generator": f"hbm_data {__version__}",
    }
