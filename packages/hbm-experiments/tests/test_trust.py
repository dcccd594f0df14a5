"""Results that cannot be silently wrong: data keyed by content, truthful retry and force,
failures of uid-excluded fields, permissions from the umask, status of killed runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hbm_experiments import GAExperiment, SGDExperiment, load_experiment_config, make_experiment
from hbm_experiments.cli import main as hbm
from hbm_experiments.configs import apply_overrides, read_yaml
from hbm_experiments.files import (
    CHECKPOINT_FILE,
    ERROR_FILE,
    MODEL_FILE,
    RESULT_FILE,
    atomic_write_text,
)
from hbm_experiments.status import find_experiments

TINY_GA: dict[str, Any] = {
    "method": "ga_feedforward",
    "optimizer": {"population_size": 4},
    "model": {"hidden_size": 3},
    "training": {"max_generations": 3, "eval_every": 1, "checkpoint_every": 1},
}


@pytest.fixture
def own_data(tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder of this test only, holding sim01's CartPole recording as subject sub05."""
    from hbm_experiments.data import episode_file

    folder = tmp_path / "data"
    folder.mkdir()
    src = episode_file("cartpole", "sim01", shared_data_dir)
    shutil.copy(src, folder / "sub05_data_cartpole.json")
    monkeypatch.setenv("HBM_DATA_DIR", str(folder))
    return folder


def _sub05(**extra: Any) -> dict[str, Any]:
    return {**TINY_GA, "subject": "sub05", **extra}


def _untimed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("elapsed", "wall_time")} for r in rows]


@pytest.fixture
def umask() -> Iterator[Any]:
    old = os.umask(0o022)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


# -- data keyed by content ------------------------------------------------------------------


def test_editing_a_recording_changes_what_runs(own_data: Path) -> None:
    from hbm_data import load_episodes, write_episodes

    path = own_data / "sub05_data_cartpole.json"
    first = GAExperiment(**_sub05())
    before = first.run()
    assert before["data_content_hash"] == first.data.content_hash
    # an unchanged file (even touched) still hits the cache
    os.utime(path)
    again = GAExperiment(**_sub05())
    assert again.infra.uid() == first.infra.uid()
    assert again.infra.status() == "completed"
    # cut the recording short: a new uid, trained on what the file now holds
    episodes = load_episodes(path)
    write_episodes(path, episodes[: len(episodes) // 2])
    cut = GAExperiment(**_sub05())
    assert cut.data.content_hash != first.data.content_hash
    assert cut.infra.uid() != first.infra.uid()
    assert cut.infra.status() == "not submitted"
    after = cut.run()
    n_before = len(before["behaviour"]["human_returns"])
    n_after = len(after["behaviour"]["human_returns"])
    assert n_after < n_before  # fewer held-out episodes: the new data was used
    # the hash is recorded and shown where results are listed
    rows = {r.uid: r for r in find_experiments(load_results=True)}
    assert rows[cut.infra.uid_folder().name].result["data_content_hash"] == cut.data.content_hash


def test_a_file_changed_after_the_config_was_made_is_refused(own_data: Path) -> None:
    from hbm_data import load_episodes, write_episodes
    from hbm_experiments.data import DataChangedError

    exp = GAExperiment(**_sub05())  # hash taken now, as when a job is queued
    path = own_data / "sub05_data_cartpole.json"
    write_episodes(path, load_episodes(path)[:-3])
    with pytest.raises(DataChangedError, match="changed since this experiment was configured"):
        exp.run()


def test_missing_recording_fails_before_anything_runs(own_data: Path) -> None:
    with pytest.raises(ValueError, match=r"hbm-data record cartpole --subject sub07"):
        GAExperiment(**{**TINY_GA, "subject": "sub07"})
    assert not any(find_experiments())


def test_retry_reaches_a_failed_data_task(own_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hbm_data

    real = hbm_data.load_human_data

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk hiccup while reading the recording")

    monkeypatch.setattr(hbm_data, "load_human_data", broken)
    with pytest.raises(OSError, match="disk hiccup"):
        GAExperiment(**_sub05()).run()
    monkeypatch.setattr(hbm_data, "load_human_data", real)
    with pytest.raises(OSError, match="disk hiccup"):  # cached failure, cached mode
        GAExperiment(**_sub05()).run()
    result = GAExperiment(**_sub05(), infra={"mode": "retry"}).run()  # data task retried too
    assert result["subject"] == "sub05"


def test_cli_retry_after_fixing_a_data_file(own_data: Path, tmp_path: Path) -> None:
    path = own_data / "sub05_data_cartpole.json"
    good = path.read_bytes()
    path.write_text(good.decode().replace('"action"', '"acton"', 1))  # one broken step
    config = tmp_path / "ga.yaml"
    config.write_text(json.dumps(_sub05()))
    assert hbm(["run", str(config)]) == 1  # the episode file is rejected, naming the field
    path.write_bytes(good)
    assert hbm(["run", str(config), "--retry"]) == 0


# -- failures of fields outside the uid ----------------------------------------------------


def test_bad_device_is_refused_at_validation() -> None:
    with pytest.raises(ValueError, match="not a torch device: 'banana'"):
        GAExperiment(**TINY_GA, device="banana")


def test_failure_on_one_device_is_not_served_to_another(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine where device='cuda' fails")
    with pytest.raises(Exception, match=r"(?i)cuda|nvidia|torch not compiled"):
        GAExperiment(**TINY_GA, device="cuda").run()
    assert GAExperiment(**TINY_GA, device="cuda").infra.status() == "failed"
    result = GAExperiment(**TINY_GA, device="cpu").run()  # same uid, other device: runs
    assert result["metrics"]["test_ce"] > 0
    assert GAExperiment(**TINY_GA).infra.status() == "completed"


# -- force -----------------------------------------------------------------------------------


def test_force_retrains_from_scratch() -> None:
    first = GAExperiment(**TINY_GA).run()
    folder = GAExperiment(**TINY_GA).infra.uid_folder()
    assert (folder / CHECKPOINT_FILE).exists()
    mtime = (folder / CHECKPOINT_FILE).stat().st_mtime_ns
    again = GAExperiment(**TINY_GA, infra={"mode": "force"}).run()
    assert again.get("resumed") is None  # not resumed from the old checkpoint
    assert (folder / CHECKPOINT_FILE).stat().st_mtime_ns != mtime
    # same config, same seed: the same run (wall times aside)
    assert _untimed(again["history"]) == _untimed(first["history"])
    assert again["history"][0]["generation"] == 0


def test_cli_force_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ga.yaml"
    config.write_text(json.dumps(TINY_GA))
    assert hbm(["run", str(config)]) == 0
    assert hbm(["run", str(config)]) == 0
    assert "(from cache)" in capsys.readouterr().out
    assert hbm(["run", str(config), "--force"]) == 0
    assert "(from cache)" not in capsys.readouterr().out
    assert hbm(["run", str(config), "--force", "--retry"]) == 2


# -- subject ids -----------------------------------------------------------------------------


def test_subject_ids_stay_strings(tmp_path: Path, own_data: Path) -> None:
    for name in ("0123", "007"):
        shutil.copy(own_data / "sub05_data_cartpole.json", own_data / f"{name}_data_cartpole.json")
    over = apply_overrides({}, ["subject=0123", "seed=3", "training.max_optim_time=null"])
    assert over == {"subject": "0123", "seed": 3, "training": {"max_optim_time": None}}
    config = tmp_path / "c.yaml"
    config.write_text("method: ga_feedforward\nsubject: 007\ntraining: {max_generations: 1}\n")
    assert read_yaml(config)["subject"] == "007"
    assert load_experiment_config(config).subject == "007"
    assert load_experiment_config(config, ["subject=0123"]).subject == "0123"
    shutil.copy(own_data / "sub05_data_cartpole.json", own_data / "42_data_cartpole.json")
    assert make_experiment({**TINY_GA, "subject": 42}).subject == "42"


# -- files a lab can share -------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_follow_the_umask(mask: int, mode: int, umask: Any, tmp_path: Path) -> None:
    umask(mask)
    exp = SGDExperiment(
        method="adam_feedforward",
        model={"hidden_size": 3},
        training={"max_steps": 4, "max_epochs": None, "eval_every": 2, "checkpoint_every": 1},
    )
    exp.run()
    folder = exp.infra.uid_folder()
    for name in (RESULT_FILE, MODEL_FILE, CHECKPOINT_FILE):
        assert stat.S_IMODE((folder / name).stat().st_mode) == mode, name
    out = tmp_path / "report"
    assert hbm(["report", "--out", str(out)]) == 0
    assert hbm(["collect", "--out", str(out / "rows.csv")]) == 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in written) and any(p.suffix == ".csv" for p in written)
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


def test_error_file_follows_the_umask(umask: Any, hbm_env: Path) -> None:
    from hbm_fakes import CountingGA

    umask(0o027)
    (hbm_env / "FAIL").touch()
    with pytest.raises(RuntimeError):
        CountingGA(seed=11).run()
    error = CountingGA(seed=11).infra.uid_folder() / ERROR_FILE
    assert stat.S_IMODE(error.stat().st_mode) == 0o640


def test_orphaned_temp_files_are_removed_on_the_next_write(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the writer a kill -9 left behind
    host = os.uname().nodename.replace(".", "_")
    target = tmp_path / "result.json"
    orphan = tmp_path / f".result.json.{host}.{dead.pid}.k1ll3d.tmp"
    orphan.write_text("half a file")
    live = tmp_path / f".result.json.{host}.{os.getppid()}.wr1t1ng.tmp"  # a live writer's
    live.write_text("being written")
    other = tmp_path / f".other.json.{host}.{dead.pid}.abc.tmp"  # another path's temp file
    other.write_text("x")
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert not orphan.exists() and live.exists() and other.exists()


# -- status of runs exca does not know yet ---------------------------------------------------

_RUN_LONG = """
import sys
from hbm_experiments import GAExperiment
GAExperiment(
    method="ga_feedforward", seed=21, optimizer={"population_size": 4}, model={"hidden_size": 3},
    training={"max_generations": 100000, "eval_every": 1000, "checkpoint_every": 1},
).run()
"""


def test_status_of_a_running_then_killed_local_run(hbm_env: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _RUN_LONG], env=dict(os.environ))
    try:
        exp = GAExperiment(
            method="ga_feedforward",
            seed=21,
            optimizer={"population_size": 4},
            model={"hidden_size": 3},
            training={"max_generations": 100000, "eval_every": 1000, "checkpoint_every": 1},
        )
        folder = exp.infra.uid_folder()
        deadline = time.monotonic() + 120
        while not (folder / CHECKPOINT_FILE).exists():
            assert proc.poll() is None, "the run ended early"
            assert time.monotonic() < deadline, "no checkpoint after 2 minutes"
            time.sleep(0.2)
        (record,) = find_experiments()
        assert record.status == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        (record,) = find_experiments()
        assert record.status.startswith("interrupted (generation "), record.status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- checkpoints know what they belong to ----------------------------------------------------


@pytest.mark.parametrize(
    ("config", "other", "field"),
    [
        (TINY_GA, {**TINY_GA, "seed": 2}, "seed"),
        (TINY_GA, {**TINY_GA, "subject": "sim02"}, "subject"),
        (
            {
                "method": "adam_feedforward",
                "model": {"hidden_size": 3},
                "training": {"max_steps": 4, "eval_every": 2, "checkpoint_every": 1},
            },
            {
                "method": "adam_feedforward",
                "model": {"hidden_size": 3},
                "optimizer": {"learning_rate": 0.05},
                "training": {"max_steps": 4, "eval_every": 2, "checkpoint_every": 1},
            },
            "learning_rate",
        ),
    ],
)
def test_a_foreign_checkpoint_is_refused_and_left_untouched(
    config: dict[str, Any], other: dict[str, Any], field: str
) -> None:
    make_experiment(config).run()
    source = make_experiment(config).infra.uid_folder() / CHECKPOINT_FILE
    target_exp = make_experiment(other)
    target = target_exp.infra.uid_folder(create=True) / CHECKPOINT_FILE
    shutil.copy(source, target)  # e.g. a folder copied by hand, or a hash collision
    before = target.read_bytes()
    with pytest.raises(Exception, match=field) as info:
        target_exp.run()
    assert "checkpoint" in str(info.value).lower()
    assert target.read_bytes() == before  # not overwritten
    assert make_experiment(other).infra.status() == "failed"


def test_data_of_another_content_in_a_checkpoint_is_refused(own_data: Path) -> None:
    from hbm_data import load_episodes, write_episodes

    GAExperiment(**_sub05()).run()
    old = GAExperiment(**_sub05()).infra.uid_folder() / CHECKPOINT_FILE
    path = own_data / "sub05_data_cartpole.json"
    write_episodes(path, load_episodes(path)[:-2])
    new = GAExperiment(**_sub05())
    target = new.infra.uid_folder(create=True) / CHECKPOINT_FILE
    shutil.copy(old, target)
    with pytest.raises(Exception, match="content_hash"):
        new.run()
