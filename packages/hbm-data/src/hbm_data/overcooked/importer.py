"""Writing the trials as subject files: one per (worker, player) and layout, plus a pooled one.

Subjects. `oc-wWW-pP` is player P of the trials logged by worker WW: the recordings keep one
player index per person across a worker's trials (the evidence is in the README and
`hbm_data.overcooked.players`), so the file of `oc-w02-p0` for `overcooked-random3` and the one
for `overcooked-cramped_room` are the same person. A worker played each layout once, so such a
file holds one trial, cut into `segments` (≥ 2) consecutive episodes (one session, `segments`
runs: the per-session holdout then holds out whole segments). `oc-all` pools every trial of a
layout, both players, the way Carroll et al. trained their behaviour-cloned "human model": its
sidecar's `source_split` marks each episode with the study's own train/test split of trials.

The sidecar (`<name>.meta.json`) says, per episode, its trial, player, segment, first tick and
split (`episodes`, `source_split`), names every observation value (`observation`) and lists
the episodes that do not start at the kitchen's start (`placeholder_seeds`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..envs import get_env_spec
from ..episodes import Episode, parse_episodes, read_sidecar, write_episodes, write_sidecar
from ..paths import data_dir as default_data_dir
from ..paths import episode_file_name
from ..validation import EpisodeFormatError, errors
from .layouts import layout_encoding
from .trials import (
    ACTION_NAMES,
    PACKAGE,
    PACKAGE_VERSION,
    PICKLE,
    Trial,
    by_layout,
    segment_bounds,
    trial_episodes,
)

logger = logging.getLogger(__name__)

POOLED_SUBJECT = "oc-all"
#: Marks the files this importer wrote (a re-import replaces them; other files are kept).
IMPORTER = "hbm_data.overcooked"
DEFAULT_SEGMENTS = 10
CITATION = (
    "Carroll, Shah, Ho, Griffiths, Seshia, Abbeel, Dragan: On the Utility of Learning about "
    "Humans for Human-AI Coordination, NeurIPS 2019"
)


def env_name(layout: str) -> str:
    return f"overcooked-{layout}"


def subject_name(worker: int, player: int) -> str:
    return f"oc-w{worker:02d}-p{player}"


@dataclass(frozen=True)
class _Part:
    """One episode of a subject file and where it comes from."""

    trial: Trial
    player: int
    segment: int
    start: int
    episode: Episode

    def describe(self) -> dict[str, Any]:
        return {
            "trial": self.trial.name,
            "split": self.trial.split,
            "run": self.trial.run,
            "worker": self.trial.worker,
            "player": self.player,
            "segment": self.segment,
            "first_step": self.start,
            "steps": self.episode.length,
        }


def _parts(trial: Trial, player: int, segments: int) -> list[_Part]:
    bounds = segment_bounds(trial.length, segments)
    episodes = trial_episodes(trial, player, segments)
    return [
        _Part(trial, player, k, a, e)
        for k, ((a, _), e) in enumerate(zip(bounds, episodes, strict=True))
    ]


@dataclass(frozen=True)
class ImportedFile:
    path: Path
    subject: str
    env_name: str
    episodes: int
    steps: int


def _write(
    directory: Path, subject: str, layout: str, parts: Sequence[_Part], *, pooled: bool,
    segments: int, force: bool, compress: bool,
) -> ImportedFile:  # fmt: skip
    spec = get_env_spec(env_name(layout))
    path = directory / episode_file_name(spec.name, subject, compressed=compress)
    other = directory / episode_file_name(spec.name, subject, compressed=not compress)
    ours = (read_sidecar(path) or {}).get("importer") == IMPORTER
    for existing in (path, other):
        if existing.exists() and not (ours or force):
            raise FileExistsError(
                f"{existing}: exists and was not written by the Overcooked import; kept "
                "(--force replaces it)"
            )
    episodes = [replace(p.episode, episode_id=i) for i, p in enumerate(parts)]
    _, problems = parse_episodes([e.to_record() for e in episodes], env=spec, source=str(path))
    if errors(problems):  # never write a file `hbm-data check` would refuse
        raise EpisodeFormatError(errors(problems))
    placeholders = [i for i, p in enumerate(parts) if p.start != 0]
    who = (
        f"every trial of {layout}, both players, pooled (not one person)"
        if pooled
        else f"player {parts[0].player} of the trials logged by worker {parts[0].trial.worker}"
    )
    sidecar: dict[str, Any] = {
        "subject": subject,
        "env_name": spec.name,
        "env_id": spec.env_id,
        "simulated": False,
        "source_kind": "person",
        "note": f"Overcooked-AI 2019 human-human recordings: {who}",
        "generator": f"hbm_data {__version__}",
        "importer": IMPORTER,
        "source": {
            "package": f"{PACKAGE} {PACKAGE_VERSION}",
            "files": sorted({PICKLE.format(split=p.trial.split) for p in parts}),
            "study": CITATION,
        },
        "pooled": pooled,
        "segments_per_trial": segments,
        "source_split": [p.trial.split for p in parts],
        "episodes": [p.describe() for p in parts],
        "actions": list(ACTION_NAMES),
        "observation": layout_encoding(layout).slot_names,
    }
    if placeholders:
        sidecar["placeholder_seeds"] = placeholders
    write_sidecar(path, sidecar)
    write_episodes(path, episodes)
    other.unlink(missing_ok=True)  # the loader would prefer a stale plain .json
    steps = sum(e.length for e in episodes)
    logger.info("%s: %d episodes (%d steps) of %s", path, len(episodes), steps, subject)
    return ImportedFile(path, subject, spec.name, len(episodes), steps)


def import_trials(
    trials: Iterable[Trial],
    data_dir: Path | str | None = None,
    *,
    segments: int = DEFAULT_SEGMENTS,
    pooled: bool = True,
    force: bool = False,
    compress: bool = True,
) -> list[ImportedFile]:
    """Write the subject files of `trials` (module docstring) into `data_dir` (default: hbm's
    data folder), gzip-compressed unless `compress` is False (the plain JSON of all trials
    takes 600 MB); returns what was written, per-player files first. Files of the same names
    that this importer did not write are refused unless `force`."""
    if segments < 2:  # a per-player file holds one trial: one episode could not be split
        raise ValueError(
            f"segments must be ≥ 2, got {segments}: a player's file holds one trial, and a "
            "single episode would go entirely to the test split"
        )
    directory = default_data_dir() if data_dir is None else Path(data_dir)
    groups = by_layout(list(trials))
    parts_of = {
        (t.name, player): _parts(t, player, segments)
        for ts in groups.values()
        for t in ts
        for player in (0, 1)
    }
    written = []
    for layout, layout_trials in groups.items():
        per_subject: dict[str, list[_Part]] = {}
        for trial in layout_trials:
            for player in (0, 1):
                subject = subject_name(trial.worker, player)
                per_subject.setdefault(subject, []).extend(parts_of[trial.name, player])
        for subject, parts in sorted(per_subject.items()):
            parts.sort(key=lambda p: (p.episode.start_time, p.segment))
            written.append(
                _write(directory, subject, layout, parts, pooled=False, segments=segments,
                       force=force, compress=compress)
            )  # fmt: skip
    for layout, layout_trials in groups.items() if pooled else ():
        everyone = [p for t in layout_trials for pl in (0, 1) for p in parts_of[t.name, pl]]
        everyone.sort(key=lambda p: (p.episode.start_time, p.trial.worker, p.player, p.segment))
        written.append(
            _write(directory, POOLED_SUBJECT, layout, everyone, pooled=True, segments=segments,
                   force=force, compress=compress)
        )  # fmt: skip
    return written
