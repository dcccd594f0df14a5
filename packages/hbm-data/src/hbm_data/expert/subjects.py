"""An imported expert set written as an ordinary hbm subject (episode file + sidecar):
`import_hf_dataset`, `import_minari_dataset`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..envs import EnvSpec
from ..episodes import parse_episodes, write_episodes
from ..episodes import write_sidecar as _write_sidecar
from ..loading import SOURCE_KINDS
from ..paths import (
    EXPERT_FILE_PREFIX,
    check_subject,
    episode_file_name,
    find_episode_file,
    subject_file_stem,
)
from ..paths import data_dir as default_data_dir
from ..validation import EpisodeFormatError, errors
from ._common import (
    ImportedEpisodes,
)
from .huggingface import read_hf_dataset
from .minari import read_minari_dataset

logger = logging.getLogger(__name__)


def _target(
    spec: EnvSpec, subject: str, data_dir: Path | str | None, compress: bool, force: bool
) -> Path:
    directory = default_data_dir() if data_dir is None else Path(data_dir)
    path = directory / episode_file_name(spec.name, subject, compressed=compress)
    existing = find_episode_file(spec.name, subject, directory)
    if existing.exists() and not force:
        raise FileExistsError(
            f"{existing}: subject {subject!r} already has a {spec.name} file; choose another "
            "subject or overwrite it (force=True, --force)"
        )
    if existing.exists() and existing != path:
        raise FileExistsError(
            f"{existing}: remove it first (it would be read instead of the new {path.name})"
        )
    return path


def _write_subject(
    imported: ImportedEpisodes,
    subject: str,
    kind: str,
    *,
    data_dir: Path | str | None,
    compress: bool,
    force: bool,
    note: str,
) -> Path:
    """Validate the episodes as any file is validated, then write the sidecar and the file."""
    subject = subject_file_stem(check_subject(subject))
    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    spec, episodes = imported.spec, imported.episodes
    path = _target(spec, subject, data_dir, compress, force)
    _, problems = parse_episodes([e.to_record() for e in episodes], env=spec, source=str(path))
    if errors(problems):  # the checks above should have caught it: never write a bad file
        raise EpisodeFormatError(errors(problems))
    placeholders = np.flatnonzero(~imported.seed_known).tolist()
    sidecar: dict[str, Any] = {
        "subject": subject,
        "env_name": spec.name,
        "env_id": spec.env_id,
        "simulated": kind != "person",
        "source_kind": kind,
        "note": note,
        "generator": f"hbm_data {__version__}",
        "source": imported.source,
    }
    if placeholders:
        sidecar["placeholder_seeds"] = "all" if len(placeholders) == len(episodes) else placeholders
    if not imported.times_known:
        sidecar["placeholder_timestamps"] = True
    if imported.hbm.get("sidecar"):  # what hbm knew about the subject it exported
        sidecar["exported_sidecar"] = imported.hbm["sidecar"]
    _write_sidecar(path, sidecar)
    write_episodes(path, episodes)
    logger.info("%s: %d episodes of %s subject %s", path, len(episodes), kind, subject)
    return path


_NOTES = {
    "expert": "expert agent's demonstrations, not a person",
    "simulated": "simulated player, not a person",
    "person": "a person's recordings",
}


def import_hf_dataset(
    path: Path | str,
    env: str | EnvSpec,
    *,
    subject: str | None = None,
    data_dir: Path | str | None = None,
    split: str | None = None,
    max_episodes: int | None = None,
    compress: bool = False,
    force: bool = False,
) -> Path:
    """Import a local Hugging Face expert set (`read_hf_dataset`) as subject `subject`
    (default `expert-<env>`, loaded as `expert:<env>`); returns the episode file written.

    Refuses to replace an existing file unless `force`. `compress` writes `.json.gz` (the
    500,000-step CartPole set is about 200 MB as plain JSON, 25 MB gzipped).
    """
    imported = read_hf_dataset(path, env, split=split, max_episodes=max_episodes)
    name = subject or f"{EXPERT_FILE_PREFIX}{imported.spec.name}"
    return _write_subject(
        imported, name, "expert", data_dir=data_dir, compress=compress, force=force,
        note=f"{_NOTES['expert']}: imported by `hbm-data import-hf` from {Path(path).name}",
    )  # fmt: skip


def import_minari_dataset(
    path: Path | str,
    *,
    env: str | EnvSpec | None = None,
    subject: str | None = None,
    kind: str | None = None,
    data_dir: Path | str | None = None,
    max_episodes: int | None = None,
    compress: bool = False,
    force: bool = False,
) -> Path:
    """Import a local Minari dataset (`read_minari_dataset`) as an hbm subject; returns the
    episode file written.

    `kind` (person, simulated, expert) defaults to what hbm recorded when it exported the
    dataset, else "expert" (Minari's reference sets are agents'; say `kind="person"` for
    human demonstrations). `subject` defaults to the exported subject's name, else
    `expert-<env>`.
    """
    imported = read_minari_dataset(path, env=env, max_episodes=max_episodes)
    hbm = imported.hbm
    if kind is None:
        exported_kind = hbm.get("source_kind")
        kind = exported_kind if isinstance(exported_kind, str) else "expert"
    if kind not in SOURCE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    if subject is None:
        exported = hbm.get("subject")
        subject = exported if isinstance(exported, str) else None
    name = subject or f"{EXPERT_FILE_PREFIX}{imported.spec.name}"
    dataset = imported.source.get("dataset_id") or Path(path).name
    return _write_subject(
        imported, name, kind, data_dir=data_dir, compress=compress, force=force,
        note=f"{_NOTES[kind]}: imported by `hbm-data import-minari` from Minari dataset {dataset}",
    )  # fmt: skip
