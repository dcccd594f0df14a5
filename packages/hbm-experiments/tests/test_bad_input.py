"""Bad input stays bad input: refused when the config is made (naming the key), not after
training; damaged model and checkpoint files give errors that say what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hbm_experiments import GAExperiment, make_experiment
from hbm_experiments.cli import main as hbm
from hbm_experiments.configs import ConfigError
from hbm_experiments.data import DataPreprocessingTask
from hbm_experiments.evaluation import load_model
from hbm_experiments.files import CHECKPOINT_FILE, ERROR_FILE, MODEL_FILE
from hbm_experiments.status import find_experiments

TINY_GA: dict[str, Any] = {
    "method": "ga_feedforward",
    "optimizer": {"population_size": 4},
    "model": {"hidden_size": 3},
    "training": {"max_generations": 2, "eval_every": 1, "checkpoint_every": 1},
}
TINY_ADAM: dict[str, Any] = {
    "method": "adam_feedforward",
    "model": {"hidden_size": 3},
    "training": {"max_steps": 3, "eval_every": 1},
}


def _with(base: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    *parents, last = dotted.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return out


@pytest.mark.parametrize(
    ("base", "key", "value"),
    [
        (TINY_GA, "optimizer.adaptive_sigma_init", float("inf")),
        (TINY_GA, "training.max_optim_time", float("inf")),
        (TINY_ADAM, "optimizer.learning_rate", float("inf")),
        (TINY_ADAM, "optimizer.learning_rate", float("nan")),
        (TINY_GA, "data.holdout_pct", float("nan")),
    ],
)
def test_infinite_or_nan_numbers_are_refused(base: dict[str, Any], key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match="finite number") as info:
        make_experiment(_with(base, key, value))
    assert key.rpartition(".")[2] in str(info.value)
    assert not find_experiments()  # nothing ran


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("seed", True, "boolean"),
        ("model.hidden_size", True, "boolean"),
        ("optimizer.population_size", False, "boolean"),
        ("seed", -1, "greater than or equal to 0"),
        ("seed", 2**64, "less than"),
        ("data.split_seed", 2**70, "less than"),
    ],
)
def test_bad_integers_are_refused_at_validation(key: str, value: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        make_experiment(_with(TINY_GA, key, value))
    assert key.rpartition(".")[2] in str(info.value)
    assert not find_experiments()


def test_the_largest_seed_is_accepted() -> None:
    assert make_experiment(_with(TINY_GA, "seed", 2**64 - 1)).seed == 2**64 - 1


def test_cli_refuses_a_boolean_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ga.yaml"
    config.write_text("method: ga_feedforward\ntraining: {max_generations: 1}\n")
    assert hbm(["run", str(config), "--set", "seed=true"]) == 2
    assert "seed" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_subjects_are_checked_where_the_config_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"subject.*300 bytes long"):
        make_experiment({**TINY_GA, "subject": "s" * 300})
    outside = tmp_path / "elsewhere" / "sim01_data_cartpole.json"
    outside.parent.mkdir()
    outside.write_text("[]")
    climbing = f"{tmp_path}/data/../elsewhere/sim01_data_cartpole.json"
    with pytest.raises(ConfigError, match=r"subject.*climbs out of its folder"):
        make_experiment({**TINY_GA, "subject": climbing})
    with pytest.raises(ValueError, match="climbs out of its folder"):
        DataPreprocessingTask(subject=climbing, content_hash="sha256:0")


def test_a_path_subject_is_made_absolute(
    tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hbm_experiments.data import episode_file

    here = tmp_path / "rec"
    here.mkdir()
    (here / "p1_data_cartpole.json").write_bytes(
        episode_file("cartpole", "sim01", shared_data_dir).read_bytes()
    )
    monkeypatch.chdir(tmp_path)
    exp = make_experiment({**TINY_GA, "subject": "rec/p1_data_cartpole.json"})
    assert exp.subject == str(here / "p1_data_cartpole.json")


def test_load_model_on_a_damaged_file_names_it(tmp_path: Path) -> None:
    for content in (b"", b"not a torch file" * 10):
        path = tmp_path / MODEL_FILE
        path.write_bytes(content)
        with pytest.raises(ValueError, match=rf"{path}: cannot load model file.*hbm run --force"):
            load_model(path)


@pytest.mark.slow  # two real trainings and evaluations: ~20 s here
def test_a_corrupt_checkpoint_says_what_to_do_and_retry_starts_afresh() -> None:
    exp = GAExperiment(**TINY_GA)
    folder = exp.infra.uid_folder(create=True)
    (folder / CHECKPOINT_FILE).write_bytes(b"\x00garbage" * 64)  # a disk error, a bad copy
    with pytest.raises(Exception, match=r"cannot read checkpoint[\s\S]*hbm run --force"):
        exp.run()
    assert "hbm run --retry" in (folder / ERROR_FILE).read_text()
    again = GAExperiment(**TINY_GA, infra={"mode": "retry"}).run()
    assert again.get("resumed") is None and again["history"][0]["generation"] == 0
    assert list(folder.glob(f"{CHECKPOINT_FILE}.unreadable-*"))  # kept aside, not deleted
    assert GAExperiment(**TINY_GA).infra.status() == "completed"
