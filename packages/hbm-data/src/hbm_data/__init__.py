"""Human behaviour data: recorder episode files, validation, sessions, splits, simulated players."""

__version__ = "0.1.0"

from .envs import ENVIRONMENTS, EnvSpec, get_env_spec
from .episodes import Episode, check_file, load_episodes, parse_episodes, write_episodes
from .loading import DatasetMetadata, EpisodeInfo, HumanData, load_human_data
from .paths import data_dir
from .sessions import compute_session_run_ids, normalize_session_run_features
from .simulate import DEFAULT_SUBJECTS, SubjectProfile, simulate_subject, write_simulated_subject
from .splits import split_by_session
from .validation import EpisodeFormatError, Problem

__all__ = [
    "DEFAULT_SUBJECTS",
    "ENVIRONMENTS",
    "DatasetMetadata",
    "EnvSpec",
    "Episode",
    "EpisodeFormatError",
    "EpisodeInfo",
    "HumanData",
    "Problem",
    "SubjectProfile",
    "__version__",
    "check_file",
    "compute_session_run_ids",
    "data_dir",
    "get_env_spec",
    "load_episodes",
    "load_human_data",
    "normalize_session_run_features",
    "parse_episodes",
    "simulate_subject",
    "split_by_session",
    "write_episodes",
    "write_simulated_subject",
]
