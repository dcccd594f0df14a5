"""The one atomic writer and stale-temp rule (`hbm_data._atomic`) and its owner lock.

Two writers of one file, in two processes, never delete each other's temp file; the temp file
of a dead writer (pid gone, or pid reused by a process with another start time) is removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hbm_data import _atomic
from hbm_data.files import LockHeldError, OwnerLock, atomic_write, remove_stale_temps

_CHILD_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hbm_data._atomic import atomic_write

    target, go = Path(sys.argv[1]), Path(sys.argv[2])

    def write(f):
        f.write(b"child: first half ")
        f.flush()
        print("writing", flush=True)
        deadline = time.time() + 30
        while not go.exists() and time.time() < deadline:
            time.sleep(0.01)
        f.write(b"second half")

    atomic_write(target, write)
    """
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_two_live_writers_of_one_file_keep_each_others_temp(tmp_path: Path) -> None:
    target, go = tmp_path / "sub01_data_cartpole.json", tmp_path / "go"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_WRITER, str(target), str(go)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        (child_temp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

        def write(f: object) -> None:  # the parent writes while the child is mid-write
            assert child_temp.exists()
            f.write(b"parent")  # type: ignore[attr-defined]

        atomic_write(target, write)
        assert child_temp.exists() and target.read_bytes() == b"parent"
        go.touch()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
    assert target.read_bytes() == b"child: first half second half"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", target.name]


def test_a_dead_writers_temp_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    code = (
        "import sys, os; from pathlib import Path; from hbm_data._atomic import temp_name;"
        "p = Path(sys.argv[1]); (p.parent / temp_name(p)).write_bytes(b'half'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(target)], check=True)
    (orphan,) = list(tmp_path.iterdir())
    assert f".{_atomic.host_tag()}." in orphan.name and _atomic.is_stale_temp(orphan)
    atomic_write(target, lambda f: None)
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


@pytest.mark.skipif(_atomic.process_start_time(os.getpid()) is None, reason="needs /proc")
def test_a_reused_pid_does_not_keep_a_dead_writers_temp(tmp_path: Path) -> None:
    """Our own pid with another start time: the writer that named it is gone."""
    host, pid = _atomic.host_tag(), os.getpid()
    start = _atomic.process_start_time(pid)
    assert isinstance(start, int)
    reused = tmp_path / f".f.json.{host}.{pid}.{start + 1}.abcd.tmp"
    ours = tmp_path / f".f.json.{host}.{pid}.{start}.abcd.tmp"
    for p in (reused, ours):
        p.write_bytes(b"half")
    assert remove_stale_temps(tmp_path / "f.json") == [reused]
    assert ours.exists()


def test_other_hosts_temps_are_judged_by_age(tmp_path: Path) -> None:
    fresh = tmp_path / ".f.json.otherhost.12.34.abcd.tmp"
    old = tmp_path / ".f.json.otherhost.13.34.abcd.tmp"
    unrelated = tmp_path / ".g.json.otherhost.14.34.abcd.tmp"
    for p in (fresh, old, unrelated):
        p.write_bytes(b"half")
    then = time.time() - 2 * _atomic.FOREIGN_TEMP_AGE_S
    for p in (old, unrelated):
        os.utime(p, (then, then))
    assert remove_stale_temps(tmp_path / "f.json") == [old]
    assert fresh.exists() and unrelated.exists()


def test_a_temp_written_before_this_host_booted_is_stale(tmp_path: Path) -> None:
    if _atomic._boot_time() is None:
        pytest.skip("no boot time on this OS")
    tmp = tmp_path / f".f.json.{_atomic.host_tag()}.{os.getpid()}.0.abcd.tmp"
    tmp.write_bytes(b"half")
    assert not _atomic.is_stale_temp(tmp)  # a live pid, start unknown, just written
    os.utime(tmp, (1000.0, 1000.0))
    assert _atomic.is_stale_temp(tmp)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def fail(f: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.json"]


def test_long_names_still_get_a_temp_file(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 240)
    atomic_write(target, lambda f: None)
    assert target.exists()


def test_process_start_time_tells_processes_apart() -> None:
    own = _atomic.process_start_time(os.getpid())
    if own is None:
        pytest.skip("no /proc")
    assert _atomic.process_start_time(_dead_pid()) is None
    assert _atomic.owner_is_dead(os.getpid(), own) is False
    assert _atomic.owner_is_dead(os.getpid(), own + 1) is True
    assert _atomic.owner_is_dead(_dead_pid(), own) is True


# ----------------------------------------------------------------------------- owner lock

_CHILD_LOCK = textwrap.dedent(
    """
    import sys
    from hbm_data._atomic import LockHeldError, OwnerLock
    try:
        OwnerLock(sys.argv[1]).acquire()
    except LockHeldError as exc:
        print(exc)
        sys.exit(3)
    print("took it")
    """
)


def _child_lock(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD_LOCK, str(path)], capture_output=True, text=True
    )


def test_a_held_lock_refuses_another_process_naming_its_owner(tmp_path: Path) -> None:
    lock_path = tmp_path / "f.json.lock"
    with OwnerLock(lock_path) as lock:
        assert lock.held
        owner = json.loads(lock_path.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == _atomic.host_tag()
        child = _child_lock(lock_path)
        assert child.returncode == 3, child.stderr
        assert str(lock_path) in child.stdout and f"pid {os.getpid()}" in child.stdout
        with pytest.raises(LockHeldError, match="is held by"):
            OwnerLock(lock_path).acquire()  # a second holder in this process too
    assert not lock_path.exists()
    assert _child_lock(lock_path).stdout == "took it\n"


def test_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    lock_path = tmp_path / "f.json.lock"
    start = _atomic.process_start_time(os.getpid())
    dead = {"host": _atomic.host_tag(), "pid": _dead_pid(), "start": start, "taken_at": 0}
    lock_path.write_text(json.dumps(dead))
    with OwnerLock(lock_path):
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()


def test_another_hosts_lock_is_stale_only_when_not_refreshed(tmp_path: Path) -> None:
    lock_path = tmp_path / "f.json.lock"
    lock_path.write_text(json.dumps({"host": "otherhost", "pid": 1, "start": 5, "taken_at": 0}))
    with pytest.raises(LockHeldError, match="host otherhost"):
        OwnerLock(lock_path, stale_after_s=60).acquire()
    then = time.time() - 120
    os.utime(lock_path, (then, then))
    with OwnerLock(lock_path, stale_after_s=60):
        assert json.loads(lock_path.read_text())["host"] == _atomic.host_tag()
    assert not (tmp_path / "f.json.lock.break").exists()


def test_the_heartbeat_keeps_a_held_lock_fresh(tmp_path: Path) -> None:
    lock_path = tmp_path / "f.json.lock"
    with OwnerLock(lock_path, stale_after_s=0.2):
        then = time.time() - 100
        os.utime(lock_path, (then, then))
        time.sleep(0.3)
        assert time.time() - lock_path.stat().st_mtime < 1.0
