"""The Overcooked-AI 2019 human-human recordings as hbm subjects (`hbm-data import-overcooked`).

Needs `pip install "hbm-data[overcooked]"` (pandas) and the data's package installed without its
dependencies: `pip install --no-deps "overcooked-ai==1.1.0"`. See `layouts` (the observation),
`trials` (reading), `importer` (subjects and files) and `players` (who is who).
"""

from __future__ import annotations

from .importer import POOLED_SUBJECT, ImportedFile, env_name, import_trials, subject_name
from .layouts import LAYOUTS, LayoutEncoding, layout_encoding
from .players import PlayerEvidence, player_evidence, style_features
from .trials import (
    ACTION_NAMES,
    INSTALL,
    OvercookedDataError,
    Trial,
    read_all_trials,
    read_trials,
    trial_episodes,
    trials_file,
    trials_from_frame,
)

__all__ = [
    "ACTION_NAMES",
    "INSTALL",
    "LAYOUTS",
    "POOLED_SUBJECT",
    "ImportedFile",
    "LayoutEncoding",
    "OvercookedDataError",
    "PlayerEvidence",
    "Trial",
    "env_name",
    "import_trials",
    "layout_encoding",
    "player_evidence",
    "read_all_trials",
    "read_trials",
    "style_features",
    "subject_name",
    "trial_episodes",
    "trials_file",
    "trials_from_frame",
]
