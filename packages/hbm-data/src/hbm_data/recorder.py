"""Record people playing: the lab's recorder, made safe to crash and to resume.

The game window comes from Gymnasium's play utilities (`PlayableGame`, `display_arr`) with the
lab's keys. Between episodes the game waits for SPACE; ESC (or closing the window) quits.
Episodes use seeds 0, 1, 2, ... and continue from the last recorded seed. The whole file is
rewritten atomically after every finished episode, so a crash loses at most the episode being
played and never damages what was recorded. An existing file that does not validate is never
overwritten: recording refuses to start.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .envs import get_env_spec
from .episodes import load_episodes, write_episodes, write_sidecar
from .paths import data_dir as default_data_dir
from .paths import find_episode_file

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
    with each saved episode record. Returns the episode file's path.
    """
    import gymnasium as gym
    import pygame

    with warnings.catch_warnings():  # play.py tries TkAgg for PlayPlot, which we do not use
        warnings.filterwarnings("ignore", message=".*matplotlib is not installed")
        from gymnasium.utils.play import PlayableGame, display_arr

    spec = get_env_spec(env_name)
    if path is None:
        directory = default_data_dir() if data_dir is None else Path(data_dir)
        path = find_episode_file(spec.name, subject, directory)
    path = Path(path)
    records: list[dict[str, Any]] = []
    if path.exists():  # raises EpisodeFormatError rather than risk overwriting anything
        records = [e.to_record() for e in load_episodes(path, env=spec)]
    next_seed = records[-1]["seed_used"] + 1 if records else 0
    logger.info("recording %s for %s into %s from seed %d", spec.name, subject, path, next_seed)

    pygame.init()
    keys: dict[tuple[int, ...], int] = {
        (pygame.key.key_code(name),): action for name, action in spec.keys.items()
    }
    get_events = events if events is not None else pygame.event.get
    try:
        env = gym.make(spec.env_id, render_mode="rgb_array")
    except BaseException:
        pygame.quit()
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
                    timestamp = datetime.now().isoformat()
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
                    episode = {
                        "episode_id": len(records),
                        "timestamp": timestamp,
                        "seed_used": next_seed,
                        "length": len(steps),
                        "score": float(sum(s["reward"] for s in steps)),
                        "steps": steps,
                    }
                    write_episodes(path, [*records, episode])
                    if len(records) == 0:
                        write_sidecar(path, _sidecar(spec.name, spec.env_id, subject))
                    records.append(episode)
                    logger.info("saved episode %d (seed %d, score %.1f)", len(records) - 1,
                                next_seed, episode["score"])  # fmt: skip
                    if on_episode is not None:
                        on_episode(episode)
                    next_seed += 1
                    recorded += 1
                    playing = False
            frame = np.asarray(env.render(), dtype=np.uint8)
            display_arr(game.screen, frame, transpose=True, video_size=game.video_size)
            if not playing and font is not None:
                text = f"SPACE: play episode {len(records)} (seed {next_seed})   ESC: quit"
                game.screen.blit(font.render(text, True, (255, 60, 60)), (10, 10))
            pygame.display.flip()
            clock.tick(spec.fps if fps is None else fps)
        if playing:
            logger.warning("quit during an episode: its %d steps were not saved", len(steps))
    finally:
        env.close()
        pygame.quit()
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
