"""exca names a task's cache folder after its class's module and name: a result cached before
code moves must still be found after it, so every task class keeps the address
`hbm_experiments.tasks.<Class>` (its `__module__` is pinned where its code lives elsewhere)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hbm_experiments import tasks
from hbm_experiments.method_defaults import DERIVED_DEFAULTS, LAB_DEFAULTS
from hbm_experiments.tasks import EXPERIMENT_VERSION, RESULT_FILE

# the cache folders results were written under: renaming one loses every cached result
CACHED_NAMES = {
    "GAExperiment": "ga_feedforward",
    "ESExperiment": "es_feedforward",
    "CMAESExperiment": "cmaes_feedforward",
    "SGDExperiment": "sgd_feedforward",
    "DynamicExperiment": "ga_dynamic",
    "EnvExperiment": "ga_env_feedforward",
    "AdversarialExperiment": "ga_adversarial_feedforward",
}


@pytest.mark.parametrize("name", sorted(CACHED_NAMES))
def test_every_task_class_keeps_its_cache_folder_name(name: str) -> None:
    cls = getattr(tasks, name)
    assert cls is tasks.experiment_class(CACHED_NAMES[name])
    budget = {"max_epochs": 1} if name == "SGDExperiment" else {"max_generations": 1}
    exp = cls(method=CACHED_NAMES[name], training=budget)
    folder = exp.infra.uid_folder()
    assert folder is not None
    assert folder.parent.name == f"hbm_experiments.tasks.{name}.run,{EXPERIMENT_VERSION}"


class _MovedGA(tasks.GAExperiment):
    """A GAExperiment class defined in another module, its address pinned: what a move of the
    task classes out of tasks.py must do. Training here fails, so a result proves the cache."""

    __module__ = "hbm_experiments.tasks"
    __qualname__ = "GAExperiment"

    def _run_in(self, folder: Path) -> dict[str, Any]:
        raise AssertionError("the moved class trained again instead of serving the cache")


def test_a_result_cached_before_a_move_is_served_after_it() -> None:
    config: dict[str, Any] = {
        "seed": 5,
        "optimizer": {"population_size": 4},
        "training": {"max_generations": 1, "eval_every": 1},
    }
    before = tasks.GAExperiment(**config)
    result = before.run()
    moved = _MovedGA(**config)
    assert moved.infra.uid_folder() == before.infra.uid_folder()
    assert (moved.infra.uid_folder() / RESULT_FILE).exists()
    assert moved.run() == result
    # and without the pin the move would lose it: another module is another folder
    unpinned = type("GAExperiment", (_MovedGA,), {"__module__": "hbm_experiments.elsewhere"})
    assert unpinned(**config).infra.uid_folder().parent != before.infra.uid_folder().parent


# Field defaults that changed, with the last version whose results ran the old default: exca
# leaves a default out of the uid, so the old results sit under the same uid and only the
# version keeps them from being served as the new default's.
CHANGED_DEFAULTS = {("training", "behaviour_repeats"): (1, "4")}


def test_a_changed_default_moved_the_cache_version() -> None:
    exp = tasks.SGDExperiment(method="adam_feedforward", training={"max_epochs": 1})
    for (section, name), (old, last) in CHANGED_DEFAULTS.items():
        assert getattr(getattr(exp, section), name) != old
        assert name not in exp.infra.uid()  # the uid cannot tell the two defaults apart
        assert int(EXPERIMENT_VERSION) > int(last)
        folder = exp.infra.uid_folder()
        assert folder is not None and not folder.parent.name.endswith(f",{last}")


# The method defaults (`method_defaults`) each version's results ran with, as a fingerprint of
# its tables: a field left None is left out of the uid too, so changing a method default needs
# a new version, and its fingerprint here.
METHOD_DEFAULTS_FINGERPRINT = {"6": "a095ea6739c316bd"}


def test_the_method_defaults_are_pinned_by_the_cache_version() -> None:
    text = json.dumps({"derived": DERIVED_DEFAULTS, "lab": LAB_DEFAULTS}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert METHOD_DEFAULTS_FINGERPRINT.get(EXPERIMENT_VERSION) == digest, (
        "the method defaults changed: bump EXPERIMENT_VERSION and record their fingerprint"
    )
    exp = tasks.GAExperiment(training={"max_generations": 1})
    assert exp.optimizer.population_size is None  # the config keeps None ...
    assert "population_size" not in exp.infra.uid()  # ... so the uid cannot tell defaults apart
    assert exp.resolved("optimizer").population_size == 11
    assert int(EXPERIMENT_VERSION) > 5  # version 5 ran population 50 under the same uid
