"""One vocabulary: where a config field and the library argument it sets have different names.

The configs keep the design guide's names (`adaptive_sigma_noise`, `max_optim_time`, ...) and
hbm-ne / hbm-dl keep theirs (`tau`, `max_time`, ...); this table is the only place one is
turned into the other, so a reader looks the pair up here and a rename is one edit. A field
not in the table is passed under its own name. `RENAMED_0_1` is the other direction in time:
the spellings of hbm 0.1's YAML files, accepted with a DeprecationWarning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LIBRARY_NAMES", "RENAMED_0_1", "library_kwargs"]

LIBRARY_NAMES: Mapping[str, str] = {
    # optimizer (hbm-ne's populations, GA, ES, CMA-ES)
    "adaptive_sigma_init": "sigma_init",
    "adaptive_sigma_noise": "tau",
    "selection_fraction": "survival",
    "variant": "method",
    "update": "optimizer",
    "separable": "diagonal",
    # training (hbm-ne's and hbm-dl's training loops)
    "max_optim_time": "max_time",
    "loss_eval_interval_seconds": "eval_every_seconds",
    "ckpt_and_behav_eval_interval_seconds": "checkpoint_every_seconds",
}
"""Config field -> the hbm-ne / hbm-dl keyword argument it sets."""

RENAMED_0_1: Mapping[str, Mapping[str, str]] = {
    "data": {"dataset": "dataset", "subject": "subject"},  # moved to the top level
    "optimizer": {"sigma_init": "adaptive_sigma_init", "sigma_noise": "adaptive_sigma_noise"},
    "cmaes optimizer": {"sigma_init": "sigma0"},
    "training": {"max_time": "max_optim_time"},
}
"""Section -> {0.1's name: today's name}: read, with a DeprecationWarning, until 0.3. (0.1's
`training.log_every` is dropped with a warning: progress is paced by `log_every_seconds`.)"""


def library_kwargs(config: Any, *fields: str) -> dict[str, Any]:
    """`fields` of a config model as the library's keyword arguments (`LIBRARY_NAMES`)."""
    return {LIBRARY_NAMES.get(name, name): getattr(config, name) for name in fields}
