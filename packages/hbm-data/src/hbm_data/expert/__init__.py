"""Expert datasets as subjects: import local Hugging Face and Minari sets; export to Minari.

Nothing is downloaded: every function reads or writes local files.

- `import_hf_dataset`: the lab's Hugging Face expert sets (`NathanGavenski/CartPole-v1`,
  `LunarLander-v2`: one row per step with `obs`, `actions`, `rewards`, `episode_starts`; a
  `teacher.jsonl`, or the Parquet files of the Hub's conversion, or a folder of them). LeRobot's
  column names (`observation.state`, `action`, `next.reward`, `episode_index`, `next.done`) are
  read too. JSON needs nothing; Parquet needs `hbm-data[expert]` (pyarrow).
- `import_minari_dataset`: a local Minari dataset directory (`<root>/<dataset_id>/data/` with
  `metadata.json` and `main_data.hdf5`, or the arrow/parquet layout), read with h5py / pyarrow
  directly, so the `minari` package (which pulls gymnasium) is not needed: `hbm-data[minari]`.
- `export_minari_dataset`: any hbm subject (a person, a simulated player, an expert) as a Minari
  HDF5 dataset that `minari.load_dataset` opens, seeds in the episode metadata.

An imported set becomes an ordinary episode file `<subject>_data_<env>.json` in the data folder
(default subject `expert-<env>`, loaded as `expert:<env>`) with a sidecar saying
`"source_kind": "expert"` (and `"simulated": true`: not a person). Expert sets record no reset
seeds and no times: `seed_used` is then the episode's index, a valid placeholder listed in the
sidecar's `placeholder_seeds` (`EpisodeInfo.seed_replayable` is False), and the times are one
second apart from 1970-01-01 UTC (one session), flagged by `placeholder_timestamps`.

Rooms: `_common` (column names, checks, episodes with placeholders), `huggingface` and `minari`
(one reader per source), `subjects` (an imported set written as a subject), `export` (Minari
export).
"""

from __future__ import annotations

# ruff: noqa: F401 (the names this module held before it became a package stay importable)
from ._common import (
    ACTION_COLUMNS,
    DONE_COLUMNS,
    INDEX_COLUMNS,
    MINARI_FORMAT_VERSION,
    NEXT_OBS_COLUMNS,
    OBS_COLUMNS,
    PLACEHOLDER_EPOCH,
    REWARD_COLUMNS,
    START_COLUMNS,
    DatasetImportError,
    ImportedEpisodes,
)
from .export import _env_spec_json, _spaces_json, default_dataset_id, export_minari_dataset
from .huggingface import read_hf_dataset
from .minari import read_minari_dataset
from .subjects import import_hf_dataset, import_minari_dataset

__all__ = [
    "MINARI_FORMAT_VERSION",
    "DatasetImportError",
    "ImportedEpisodes",
    "export_minari_dataset",
    "import_hf_dataset",
    "import_minari_dataset",
    "read_hf_dataset",
    "read_minari_dataset",
]
