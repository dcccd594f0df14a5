"""The contracts hbm-ne and hbm-dl share, in one subpackage both packages hold byte for byte.

The learner packages never import each other, so this subpackage exists twice:
`hbm_ne/_shared/` (canonical: edit this one) and `hbm_dl/_shared/` (written from it by
`nox -s sync_shared`). `atomic.py` is itself a copy of hbm-data's `hbm_data/_atomic.py`, the
one atomic writer of every package (edit it there). Each package's tests and `nox -s lint`
compare the copies; docs/interfaces.md states each contract once.

- `nets`: `FeedforwardMLP`, `RecurrentMLP` (+ `RecurrentMLPReservoir`,
  `RecurrentMLPTrainable`), `is_recurrent`, initialised by `init="normal"|"uniform"`.
- `data`: `EpisodeData` (supervised steps and episode boundaries), `PaddedEpisodes`.
- `metrics`: `f1_seed`, `sampled_macro_f1`, `evaluate` (test CE, accuracy, sampled macro F1).
- `progress`: `Progress` (what callbacks get), `notify` (True stops the run), `ResultMapping`
  (results read like the design guide's dicts).
- `loop`: `RunSchedule`, the training loops' shared scaffolding (budgets and stop reasons,
  evaluation and checkpoint cadences, the closing row, callbacks, the clock over resumes),
  `check_loop_arguments` and `LoopResult` (the base of both loops' results).
- `io`: `CheckpointError`, validated checkpoint files, fingerprints and `CheckpointInfo`.
- `atomic`: `atomic_write` (temp + fsync + rename, umask permissions, stale temps removed).
"""

from .atomic import atomic_write
from .data import ArrayLike, EpisodeData, PaddedEpisodes, as_episode_data
from .io import (
    CheckpointError,
    CheckpointInfo,
    build_fingerprint,
    check_fingerprint,
    fingerprint_differences,
    jsonable,
    load_checkpoint_file,
    now_iso,
    read_checkpoint_info,
    save_checkpoint_file,
)
from .loop import (
    ROW_FIELDS,
    LoopResult,
    Row,
    RunSchedule,
    check_loop_arguments,
    progress_of,
    wants_resume,
)
from .metrics import (
    SupervisedData,
    as_supervised_data,
    data_signature,
    evaluate,
    f1_seed,
    macro_f1_from_confusion,
    model_logits,
    sample_actions,
    sampled_macro_f1,
    sequence_rows,
)
from .nets import (
    DEFAULT_INIT,
    DEFAULT_INIT_SEED,
    INITS,
    Device,
    FeedforwardMLP,
    InitName,
    RecurrentMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    check_init,
    fill_init_,
    is_recurrent,
    scaled_to_spectral_radius,
)
from .progress import Callback, Progress, ResultMapping, notify

__all__ = [
    "DEFAULT_INIT",
    "DEFAULT_INIT_SEED",
    "INITS",
    "ROW_FIELDS",
    "ArrayLike",
    "Callback",
    "CheckpointError",
    "CheckpointInfo",
    "Device",
    "EpisodeData",
    "FeedforwardMLP",
    "InitName",
    "LoopResult",
    "PaddedEpisodes",
    "Progress",
    "RecurrentMLP",
    "RecurrentMLPReservoir",
    "RecurrentMLPTrainable",
    "ResultMapping",
    "Row",
    "RunSchedule",
    "SupervisedData",
    "as_episode_data",
    "as_supervised_data",
    "atomic_write",
    "build_fingerprint",
    "check_fingerprint",
    "check_init",
    "check_loop_arguments",
    "data_signature",
    "evaluate",
    "f1_seed",
    "fill_init_",
    "fingerprint_differences",
    "is_recurrent",
    "jsonable",
    "load_checkpoint_file",
    "macro_f1_from_confusion",
    "model_logits",
    "notify",
    "now_iso",
    "progress_of",
    "read_checkpoint_info",
    "sample_actions",
    "sampled_macro_f1",
    "save_checkpoint_file",
    "scaled_to_spectral_radius",
    "sequence_rows",
    "wants_resume",
]
