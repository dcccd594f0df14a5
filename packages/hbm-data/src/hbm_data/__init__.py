"""Human behaviour data: recorder episode files, validation, sessions, splits, simulated players.

Importing it needs numpy only (plus platformdirs and orjson); recording, simulating, plotting
and the Parquet / Minari formats of expert datasets (`hbm_data.expert`) import their extras
when called (`hbm_data.extras`).
"""

__version__ = "0.1.0"

from .envs import ENVIRONMENTS, EnvSpec, get_env_spec
from .episodes import (
    Episode,
    check_file,
    data_content_hash,
    load_episodes,
    load_records,
    parse_episodes,
    write_episodes,
)
from .expert import (
    DatasetImportError,
    ImportedEpisodes,
    export_minari_dataset,
    import_hf_dataset,
    import_minari_dataset,
    read_hf_dataset,
    read_minari_dataset,
)
from .extras import MissingExtraError
from .files import atomic_write_bytes, file_content_hash
from .loading import (
    SOURCE_KINDS,
    DatasetMetadata,
    EpisodeInfo,
    HumanData,
    load_human_data,
    source_kind,
)
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
    "SOURCE_KINDS",
    "DatasetImportError",
    "DatasetMetadata",
    "EnvSpec",
    "Episode",
    "EpisodeFormatError",
    "EpisodeInfo",
    "HumanData",
    "ImportedEpisodes",
    "MissingExtraError",
    "Problem",
    "SubjectProfile",
    "__version__",
    "atomic_write_bytes",
    "check_file",
    "check_subject",
    "comparable_times",
    "compute_session_run_ids",
    "data_content_hash",
    "data_dir",
    "export_minari_dataset",
    "file_content_hash",
    "get_env_spec",
    "import_hf_dataset",
    "import_minari_dataset",
    "load_episodes",
    "load_human_data",
    "load_records",
    "normalize_session_run_features",
    "parse_episodes",
    "profile_for",
    "read_hf_dataset",
    "read_minari_dataset",
    "simulate_subject",
    "source_kind",
    "split_by_session",
    "write_episodes",
    "write_simulated_subject",
]
