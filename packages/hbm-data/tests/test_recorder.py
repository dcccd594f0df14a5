"""The recorder, driven headlessly with scripted key events (SDL dummy video driver)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
pygame = pytest.importorskip("pygame", reason='needs the extra: pip install "hbm-data[record]"')
pytest.importorskip("gymnasium", reason='needs the extra: pip install "hbm-data[record]"')

from hbm_data import EpisodeFormatError, check_file, load_episodes  # noqa: E402
from hbm_data._atomic import host_tag  # noqa: E402
from hbm_data.files import LockHeldError  # noqa: E402
from hbm_data.recorder import record, recording_lock  # noqa: E402


def key(kind: int, k: int) -> Any:
    return pygame.event.Event(kind, key=k)


def script(frames: list[list[Any]], then: list[Any] | None = None) -> Iterator[list[Any]]:
    yield from frames
    while True:  # after the script: hold on (the episode runs on), or `then`
        yield then or []


def play_episodes(n: int, hold: int = pygame.K_RIGHT) -> list[list[Any]]:
    """n times: SPACE, then hold a key long enough for CartPole to fall over."""
    frames: list[list[Any]] = []
    for _ in range(n):
        frames += [[key(pygame.KEYDOWN, pygame.K_SPACE)], [key(pygame.KEYDOWN, hold)]]
        frames += [[] for _ in range(45)]
        frames += [[key(pygame.KEYUP, hold)], []]
    return frames


def test_records_resumes_and_quits(tmp_path: Path) -> None:
    frames = script(play_episodes(2), then=[key(pygame.KEYDOWN, pygame.K_ESCAPE)])
    saved: list[dict[str, Any]] = []
    path = record(
        "cartpole", "sub03", data_dir=tmp_path, fps=0, events=lambda: next(frames),
        on_episode=saved.append,
    )  # fmt: skip
    assert path == tmp_path / "sub03_data_cartpole.json"
    assert check_file(path) == []
    eps = load_episodes(path)
    assert [e.seed_used for e in eps] == [0, 1] and len(saved) == 2
    assert all(e.length < 45 for e in eps)  # pushing right the whole time topples quickly
    assert (eps[0].actions[1:] == 1).all()  # the key, held, maps to action 1
    assert eps[0].actions[0] == 0  # first frame: key not yet down → the no-op (push left)
    assert (
        json.loads((tmp_path / "sub03_data_cartpole.meta.json").read_text())["simulated"] is False
    )

    frames = script(play_episodes(1), then=[key(pygame.KEYDOWN, pygame.K_ESCAPE)])
    record("cartpole", "sub03", data_dir=tmp_path, fps=0, events=lambda: next(frames))
    eps = load_episodes(path)
    assert [e.seed_used for e in eps] == [0, 1, 2] and [e.episode_id for e in eps] == [0, 1, 2]
    assert eps[2].start_time >= eps[1].start_time
    assert all(e.start_time.utcoffset() is not None for e in eps)  # the UTC offset is written


def test_crash_mid_episode_keeps_saved_episodes(tmp_path: Path) -> None:
    frames = script([*play_episodes(1), [key(pygame.KEYDOWN, pygame.K_SPACE)], [], []])

    def events() -> list[Any]:
        batch = next(frames)
        if crash_at[0] == 0:
            raise RuntimeError("power cut")
        crash_at[0] -= 1
        return batch

    crash_at = [len(play_episodes(1)) + 2]  # two frames into the second episode
    with pytest.raises(RuntimeError, match="power cut"):
        record("cartpole", "sub04", data_dir=tmp_path, fps=0, events=events)
    path = tmp_path / "sub04_data_cartpole.json"
    assert [e.seed_used for e in load_episodes(path)] == [0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sub04_data_cartpole.json", "sub04_data_cartpole.meta.json",
    ]  # fmt: skip


def test_escape_during_episode_discards_it(tmp_path: Path) -> None:
    frames = script(
        [[key(pygame.KEYDOWN, pygame.K_SPACE)], [], [], [key(pygame.KEYDOWN, pygame.K_ESCAPE)]]
    )
    record("lunarlander", "sub05", data_dir=tmp_path, fps=0, events=lambda: next(frames))
    assert not (tmp_path / "sub05_data_lunarlander.json").exists()


def test_refuses_to_overwrite_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "sub06_data_cartpole.json"
    path.write_text('[{"episode_id": 0, "steps": [')
    with pytest.raises(EpisodeFormatError, match="truncated"):
        record("cartpole", "sub06", data_dir=tmp_path, fps=0, events=lambda: [])
    assert path.read_text() == '[{"episode_id": 0, "steps": ['


_HOLDER = """
import sys, time
from pathlib import Path
from hbm_data.recorder import recording_lock

lock = recording_lock(sys.argv[1]).acquire()
print("holding", flush=True)
go = Path(sys.argv[2])
deadline = time.time() + 30
while not go.exists() and time.time() < deadline:
    time.sleep(0.01)
"""


def test_a_second_recorder_of_the_same_file_refuses_to_start(tmp_path: Path) -> None:
    """Two sessions appending to one file would each rewrite it without the other's episodes."""
    path, go = tmp_path / "sub07_data_cartpole.json", tmp_path / "go"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), str(go)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        frames = script(play_episodes(1), then=[key(pygame.KEYDOWN, pygame.K_ESCAPE)])
        with pytest.raises(LockHeldError) as info:
            record("cartpole", "sub07", data_dir=tmp_path, fps=0, events=lambda: next(frames))
        message = str(info.value)
        assert message.startswith(f"{path}: another recorder is adding episodes to this file")
        assert f"pid {holder.pid} on host {host_tag()}" in message
        assert not path.exists()  # nothing read, nothing written
    finally:
        go.touch()
        holder.wait(timeout=30)
    # the holder is gone: recording works again, and the lock goes with the recorder
    frames = script(play_episodes(1), then=[key(pygame.KEYDOWN, pygame.K_ESCAPE)])
    record("cartpole", "sub07", data_dir=tmp_path, fps=0, events=lambda: next(frames))
    assert [e.seed_used for e in load_episodes(path)] == [0]
    assert not recording_lock(path).path.exists()


def test_the_lock_of_a_killed_recorder_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "sub08_data_cartpole.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file = recording_lock(path).path
    lock_file.write_text(json.dumps({"host": host_tag(), "pid": dead.pid, "start": 1}))
    seen: list[dict[str, Any]] = []
    frames = script(play_episodes(1), then=[key(pygame.KEYDOWN, pygame.K_ESCAPE)])

    def on_episode(_: dict[str, Any]) -> None:
        seen.append(json.loads(lock_file.read_text()))  # held while recording

    record(
        "cartpole", "sub08", data_dir=tmp_path, fps=0, events=lambda: next(frames),
        on_episode=on_episode,
    )  # fmt: skip
    assert [owner["pid"] for owner in seen] == [os.getpid()]
    assert len(load_episodes(path)) == 1 and not lock_file.exists()


def test_hbm_data_record_says_who_holds_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hbm_data.cli import main

    path = tmp_path / "sub09_data_cartpole.json"
    with recording_lock(path):  # a recorder of this very process holds it
        argv = ["record", "cartpole", "--subject", "sub09", "--data-dir", str(tmp_path)]
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: another recorder is adding episodes to this file")
    assert f"pid {os.getpid()}" in err and not path.exists()
