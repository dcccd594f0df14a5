from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import teacher_data
from hbm_dl import CheckpointError, FeedforwardMLP, Progress, checkpoint_info, optimize_sgd
from hbm_dl.checkpoint import load_checkpoint, save_checkpoint


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"format": "x", "version": 1, "value": torch.arange(3)})
    before = path.read_bytes()

    def broken_save(obj, f) -> None:
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": "x", "version": 1, "value": torch.arange(4)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
    monkeypatch.undo()
    assert issubclass(CheckpointError, ValueError)
    assert load_checkpoint(path, format_name="x", version=1)["value"].tolist() == [0, 1, 2]
    with pytest.raises(CheckpointError, match=r"state\.pt: field 'version' is 1, expected 2"):
        load_checkpoint(path, format_name="x", version=2)
    with pytest.raises(CheckpointError, match=r"missing fields \['model'\]"):
        load_checkpoint(path, format_name="x", version=1, required=("model",))


def test_time_cadence_checkpoints_during_training(tmp_path: Path) -> None:
    obs, actions, _ = teacher_data(320)
    path = tmp_path / "run" / "ckpt.pt"  # parent directories are created

    def stop(progress: Progress) -> None:
        if progress.step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize_sgd(
            FeedforwardMLP(4, 8, 3), (obs, actions), (obs, actions), max_steps=50,
            eval_every=3, checkpoint_path=path, checkpoint_every_seconds=1e-9, callbacks=[stop],
        )  # fmt: skip
    blob = load_checkpoint(path)
    assert blob["step"] == 5  # saved after every step; the interrupt came at step 6's callback
    assert [row["step"] for row in blob["history"]] == [0, 3]
    info = checkpoint_info(path)
    assert info.step == 5 and info.written_at is not None and info.elapsed > 0
    assert info.fingerprint["hbm_dl"]["seed"] == 0


def test_orphaned_temp_files_are_removed_at_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    # a kill during an earlier write: the temp names its owner (host, pid, start), now dead
    from hbm_dl._shared.atomic import host_tag

    killed = subprocess.Popen([sys.executable, "-c", ""])
    killed.wait()
    orphan = tmp_path / f".ckpt.pt.{host_tag()}.{killed.pid}.1.deadbeef.tmp"
    orphan.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.1.aa.tmp"  # another file's temp file is not ours to remove
    other.write_bytes(b"x")
    save_checkpoint(path, {"format": "x", "version": 1})
    assert not orphan.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.1.aa.tmp", "ckpt.pt"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_permissions_of_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = tmp_path / "sub" / "ckpt.pt"
        save_checkpoint(path, {"format": "x", "version": 1})
        save_checkpoint(path, {"format": "x", "version": 1})  # a rewrite keeps the rule
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o777 & ~umask


def test_fingerprint_differences_name_leaf_paths() -> None:
    from hbm_dl._shared import check_fingerprint, fingerprint_differences

    stored = {"config": {"seed": 1, "lr": float("nan")}, "data": "abc", "hbm_dl": {"v": "0.1"}}
    assert fingerprint_differences(stored, stored) == []  # NaN equals NaN here
    now = {"config": {"seed": 2, "lr": float("nan")}, "hbm_dl": {"v": "0.1"}, "extra": [1]}
    names = [name for name, _, _ in fingerprint_differences(stored, now)]
    assert names == ["fingerprint.config.seed", "fingerprint.data", "fingerprint.extra"]
    with pytest.raises(CheckpointError) as err:
        check_fingerprint("some/ckpt.pt", stored, now)
    message = str(err.value)
    assert message.startswith("some/ckpt.pt: the checkpoint belongs to another run: ")
    assert "fingerprint.data is 'abc' in the checkpoint, absent now" in message
    assert "fingerprint.extra is absent in the checkpoint, [1] now" in message
    assert "resume=False" in message
