"""Human behaviour data: recorder episode files, validation, sessions, splits, simulated players.

Importing it needs numpy only (plus platformdirs and orjson); recording, simulating and
plotting import their extras when called (`hbm_data.extras`).
"""

__version__ = "0.1.0"

from .envs import ENVIRONMENTS, EnvSpec, get_env_spec
from .episodes import (
    Episode,
    check_file,
    load_episodes,
    load_records,
    parse_episodes,
    write_episodes,
)
from .extras import MissingExtraError
from .files import atomic_write_bytes, file_content_hash
from .loading import DatasetMetadata, EpisodeInfo, HumanData, load_human_data
from .paths import check_subject, data_dir
from .sessions import comparable_times, compute_session_run_ids, normalize_session_run_features
from .simulate import (
    DEFAULT_SUBJECTS,
    SIMULATED_PROFILES,
    SubjectProfile,
    profile_for,
    simulate_subject,
    write_simulated_subject,
)
from .splits import split_by_session
from .validation import EpisodeFormatError, Problem

__all__ = [
    "DEFAULT_SUBJECTS",
    "ENVIRONMENTS",
    "SIMULATED_PROFILES",
    "DatasetMetadata",
    "EnvSpec",
    "Episode",
    "EpisodeFormatError",
    "EpisodeInfo",
    "HumanData",
    "MissingExtraError",
    "Problem",
    "SubjectProfile",
    "__version__",
    "atomic_write_bytes",
    "check_file",
    "check_subject",
    "comparable_times",
    "compute_session_run_ids",
    "data_dir",
    "file_content_hash",
    "get_env_spec",
    "load_episodes",
    "load_human_data",
    "load_records",
    "normalize_session_run_features",
    "parse_episodes",
    "profile_for",
    "simulate_subject",
    "split_by_session",
    "write_episodes",
    "write_simulated_subject",
]
