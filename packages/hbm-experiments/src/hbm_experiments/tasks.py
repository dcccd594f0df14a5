"""The address of the cached experiment tasks (exca `TaskInfra`): every task class is
`hbm_experiments.tasks.<Class>`, and exca names its cache folder after that address
(`<folder>/hbm_experiments.tasks.<Class>.run,<version>/<uid>/`).

The code lives in rooms of one idea each:

- `experiment`: the `Experiment` base (run under a lock, fingerprint, train, evaluate, save) and
  the version rule of `EXPERIMENT_VERSION`;
- `ne_experiments`: the hbm-ne tasks (GA, ES, CMA-ES, evolving topologies, returns,
  adversarial); `sgd_experiment`: the hbm-dl task;
- `experiment_io`: the class of each method, `make_experiment`, YAML load and save;
- `code_version`: the code fingerprint a resume is checked against.

Their classes are defined there and pinned here (`__module__`), so results cached before the code
moved are still found; a pickled task (a Slurm job) is found here too.
"""

from __future__ import annotations

from .code_version import CODE_FILE as CODE_FILE
from .code_version import code_fingerprint as code_fingerprint
from .data import DataPreprocessingTask
from .experiment import (
    EXPERIMENT_VERSION,
    TASK_MODULE,
    Experiment,
    TrainOutput,
)
from .experiment import _jsonable as _jsonable
from .experiment import _train_info as _train_info
from .experiment_io import _LINE_CLASSES as _LINE_CLASSES
from .experiment_io import (
    EXPERIMENT_CLASSES,
    experiment_class,
    load_experiment_config,
    make_experiment,
    save_experiment_config,
)
from .experiment_io import experiment_to_dict as experiment_to_dict
from .experiment_io import infra_set as infra_set
from .files import CHECKPOINT_FILE as CHECKPOINT_FILE
from .files import ERROR_FILE as ERROR_FILE
from .files import MODEL_FILE as MODEL_FILE
from .files import RESULT_FILE as RESULT_FILE
from .files import atomic_write_text as atomic_write_text
from .infra import cache_root
from .ne_experiments import (
    AdversarialExperiment,
    CMAESExperiment,
    DynamicExperiment,
    EnvExperiment,
    ESExperiment,
    GAExperiment,
    _NEExperiment,
)
from .sgd_experiment import SGDExperiment

__all__ = [
    "EXPERIMENT_CLASSES",
    "EXPERIMENT_VERSION",
    "AdversarialExperiment",
    "CMAESExperiment",
    "DataPreprocessingTask",
    "DynamicExperiment",
    "ESExperiment",
    "EnvExperiment",
    "Experiment",
    "GAExperiment",
    "SGDExperiment",
    "TrainOutput",
    "cache_root",
    "experiment_class",
    "load_experiment_config",
    "make_experiment",
    "save_experiment_config",
]

# after every class is made: pydantic resolves a class's annotations in its defining module
for _task in (
    Experiment,
    _NEExperiment,
    GAExperiment,
    ESExperiment,
    CMAESExperiment,
    DynamicExperiment,
    EnvExperiment,
    AdversarialExperiment,
    SGDExperiment,
):
    _task.__module__ = TASK_MODULE
del _task
