from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import teacher_data
from hbm_dl import CheckpointError, FeedforwardMLP, optimize_sgd
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
    assert load_checkpoint(path, format_name="x", version=1)["value"].tolist() == [0, 1, 2]
    with pytest.raises(CheckpointError, match=r"state\.pt: field 'version' is 1, expected 2"):
        load_checkpoint(path, format_name="x", version=2)
    with pytest.raises(CheckpointError, match=r"missing fields \['model'\]"):
        load_checkpoint(path, format_name="x", version=1, required=("model",))


def test_time_cadence_checkpoints_during_training(tmp_path: Path) -> None:
    obs, actions, _ = teacher_data(320)
    path = tmp_path / "run" / "ckpt.pt"  # parent directories are created

    def stop(row: dict[str, float]) -> None:
        if row["step"] == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize_sgd(
            FeedforwardMLP(4, 8, 3), (obs, actions), (obs, actions), max_steps=50,
            eval_every=3, checkpoint_path=path, checkpoint_every_seconds=1e-9, callbacks=[stop],
        )  # fmt: skip
    blob = load_checkpoint(path, format_name="hbm_dl.optimize_sgd", version=1)
    assert blob["step"] == 5  # saved after every step; the interrupt came during step 6's eval
    assert [row["step"] for row in blob["history"]] == [0, 3]
