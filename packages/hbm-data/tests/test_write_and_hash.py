"""The atomic writer (umask permissions, orphaned temp files) and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hbm_data import (
    _atomic,
    atomic_write_bytes,
    data_content_hash,
    file_content_hash,
    load_human_data,
    write_episodes,
)
from hbm_data import files as files_mod
from hbm_data.episodes import write_sidecar
from hbm_data.files import current_umask


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test sets one."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_what_the_umask_allows(
    tmp_path: Path, umask: None, mask: int, mode: int, lab_file: Path
) -> None:
    os.umask(mask)
    assert current_umask() == mask
    raw = atomic_write_bytes(tmp_path / "raw.bin", b"x")
    data = tmp_path / "sub09_data_cartpole.json"
    write_episodes(data, json.loads(lab_file.read_text()))
    write_sidecar(data, {"subject": "sub09", "simulated": False})
    for path in (raw, data, tmp_path / "sub09_data_cartpole.meta.json"):
        assert path.stat().st_mode & 0o777 == mode, (path, oct(path.stat().st_mode))


def test_rewrite_keeps_the_mode_of_the_existing_file(tmp_path: Path, umask: None) -> None:
    os.umask(0o022)
    kept = tmp_path / "kept.json"
    kept.write_bytes(b"old")
    kept.chmod(0o640)  # the user's choice outlives a rewrite
    atomic_write_bytes(kept, b"new")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_bytes() == b"new"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_write_removes_temp_files_orphaned_by_a_kill(tmp_path: Path) -> None:
    target = tmp_path / "sub01_data_cartpole.json"
    host = _atomic.host_tag()
    killed = tmp_path / f".{target.name}.{host}.{_dead_pid()}.k1l3d.tmp"
    ancient = tmp_path / f".{target.name}.x7q2.tmp"  # another naming scheme, an hour old
    foreign = tmp_path / f".{target.name}.otherhost.1.abcd.tmp"  # another host, just now
    live = tmp_path / f".{target.name}.{host}.{os.getpid()}.busy.tmp"  # a writer at work
    start = _atomic.process_start_time(os.getpid()) or 0
    slow = tmp_path / f".{target.name}.{host}.{os.getpid()}.{start}.slow.tmp"  # at work, 2 h on
    unrelated = tmp_path / ".other.json.x.tmp"
    for p in (killed, ancient, foreign, live, slow, unrelated):
        p.write_bytes(b"half a file")
    old = time.time() - 2 * _atomic.FOREIGN_TEMP_AGE_S
    os.utime(ancient, (old, old))
    os.utime(slow, (old, old))
    atomic_write_bytes(target, b"[]")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([target.name, foreign.name, live.name, slow.name, unrelated.name])


def test_interrupted_write_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"old")

    def crash(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.json"]


# ----------------------------------------------------------------------------- content hashes


def test_content_hash_is_the_sha256_of_the_bytes(lab_file: Path) -> None:
    expect = "sha256:" + hashlib.sha256(lab_file.read_bytes()).hexdigest()
    assert file_content_hash(lab_file) == expect
    assert file_content_hash(str(lab_file)) == expect


def test_content_hash_follows_edits_not_touches(lab_file: Path) -> None:
    episodes = json.loads(lab_file.read_text())
    original = file_content_hash(lab_file)
    assert file_content_hash(lab_file) == original  # unchanged file: same hash
    os.utime(lab_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert file_content_hash(lab_file) == original  # touched, same content: same hash
    appended = [*episodes, {**episodes[0], "episode_id": 3, "seed_used": 3}]
    write_episodes(lab_file, appended)
    longer = file_content_hash(lab_file)
    write_episodes(lab_file, episodes[:2])
    shorter = file_content_hash(lab_file)
    assert len({original, longer, shorter}) == 3


def test_in_place_edit_with_same_size_and_mtime_is_seen(lab_file: Path) -> None:
    """An atomic replace makes a new inode: the memo cannot serve the old hash."""
    st = lab_file.stat()
    before = file_content_hash(lab_file)
    data = bytearray(lab_file.read_bytes())
    data[-2:] = b"]\n" if data[-2:] != b"]\n" else b" ]"
    atomic_write_bytes(lab_file, bytes(data))
    os.utime(lab_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert lab_file.stat().st_size == st.st_size
    assert file_content_hash(lab_file) != before


def test_content_hash_is_computed_once_per_version(
    lab_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_content_hash(lab_file)
    calls: list[object] = []
    real = hashlib.file_digest

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files_mod.hashlib, "file_digest", counting)
    for _ in range(5):
        file_content_hash(lab_file)
    assert calls == []  # memoised
    os.utime(lab_file, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    file_content_hash(lab_file)
    assert len(calls) == 1  # a new version (mtime) is hashed again, once


def test_missing_file_has_no_hash(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.json"):
        file_content_hash(tmp_path / "absent.json")


def test_the_sidecar_is_part_of_the_datas_hash(lab_file: Path) -> None:
    """Who made the data and which seeds replay are in the sidecar: changing them is new data."""
    plain = file_content_hash(lab_file)
    assert data_content_hash(lab_file) == plain  # no sidecar: the file's own hash, as before
    assert load_human_data("cartpole", str(lab_file)).metadata.content_hash == plain
    hashes = {plain}
    for meta in (
        {"subject": "sub01", "source_kind": "person"},
        {"subject": "sub01", "source_kind": "expert", "simulated": True},
        {"subject": "sub01", "source_kind": "expert", "simulated": True, "placeholder_seeds": [0]},
    ):
        write_sidecar(lab_file, meta)
        digest = data_content_hash(lab_file)
        assert digest.startswith("sha256:") and digest not in hashes
        hashes.add(digest)
        loaded = load_human_data("cartpole", str(lab_file)).metadata
        assert loaded.content_hash == digest and loaded.source_kind == meta["source_kind"]
    assert file_content_hash(lab_file) == plain  # the episode file itself is unchanged
