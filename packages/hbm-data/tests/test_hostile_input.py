"""Input built to break the reader, and files training cannot use: each is an error naming the
file (and the episode, step and field where there is one), never a raw traceback, and
`hbm-data check` refuses exactly what loading refuses."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import record_like_the_lab
from hbm_data import EpisodeFormatError, check_file, load_episodes, load_human_data
from hbm_data.cli import main
from hbm_data.episodes import MAX_JSON_BYTES_ENV, max_json_bytes
from hbm_data.validation import errors, warnings_of


def _errors_of(path: Path, **kwargs: Any) -> list[str]:
    problems = errors(check_file(path, **kwargs))
    with pytest.raises(EpisodeFormatError) as info:
        load_episodes(path, **kwargs)
    assert info.value.file == str(path)
    return [str(p) for p in problems]


def test_json_nested_200000_deep_is_an_error_not_a_recursion(tmp_path: Path) -> None:
    path = tmp_path / "sub01_data_cartpole.json"
    path.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    (problem,) = _errors_of(path)
    assert problem.startswith(f"{path}: not valid episode JSON: nested more than 1024 levels")


def test_deep_nesting_inside_an_observation_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "sub01_data_cartpole.json"
    path.write_text('[{"episode_id": 0,\n"steps": [{"observation": ' + "[" * 5000 + "]" * 5000)
    (problem,) = _errors_of(path)
    assert "nested more than 1024 levels" in problem and "line 2" in problem


def test_a_5000_digit_integer_is_reported_where_it_is(lab_file: Path) -> None:
    huge = "9" * 5000
    text = lab_file.read_text()
    eps = json.loads(text)
    eps[1]["steps"][2]["reward"] = 12345.5  # a marker to replace with the literal
    eps[2]["seed_used"] = 67890.5
    lab_file.write_text(json.dumps(eps).replace("12345.5", huge).replace("67890.5", "-" + huge))
    problems = _errors_of(lab_file)
    assert problems == [
        f"{lab_file}, episode 1, step 2, field 'reward': expected a finite number, found a "
        "5000-digit number",
        f"{lab_file}, episode 2, field 'seed_used': expected an integer, found a 5000-digit number",
    ]


def test_a_5000_digit_integer_in_a_field_hbm_does_not_read_is_still_an_error(
    lab_file: Path,
) -> None:
    eps = json.loads(lab_file.read_text())
    eps[0]["notes"] = 424242.5
    lab_file.write_text(json.dumps(eps).replace("424242.5", "7" * 5000))
    (problem,) = _errors_of(lab_file)
    assert "1 integer of more than 4300 digits (the longest has 5000)" in problem


def _gzip_bomb(path: Path, inflated: int) -> None:
    chunk = b" " * (1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b"[")
        for _ in range(inflated >> 20):
            f.write(chunk)
        f.write(b"]")


def test_a_gzip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "sub01_data_cartpole.json.gz"
    _gzip_bomb(path, 32 << 20)  # 32 MiB of JSON in ~150 KiB
    assert path.stat().st_size < 1 << 20
    limit = 1 << 20
    tracemalloc.start()
    try:
        problems = [str(p) for p in check_file(path, max_bytes=limit)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems == [
        f"{path}: inflates to more than {limit} bytes of JSON (the limit is {limit} bytes; raise "
        f"it with `hbm-data check --max-bytes N`, `max_bytes=` or {MAX_JSON_BYTES_ENV})"
    ]
    assert peak < 8 * limit, peak  # decompressing it whole took 32 MiB
    with pytest.raises(EpisodeFormatError, match="inflates to more than"):
        load_episodes(path, max_bytes=limit)
    # the same file is fine (an empty list) when the limit allows it
    assert "no episodes" in str(check_file(path, max_bytes=128 << 20)[0])


def test_the_limit_comes_from_the_environment_and_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sub01_data_cartpole.json.gz"
    _gzip_bomb(path, 2 << 20)
    assert max_json_bytes() == 1 << 30
    monkeypatch.setenv(MAX_JSON_BYTES_ENV, "1000000")
    assert max_json_bytes() == 1_000_000
    with pytest.raises(EpisodeFormatError, match="more than 1000000 bytes"):
        load_episodes(path)
    assert main(["check", str(path), "--max-bytes", "500000"]) == 1
    assert "more than 500000 bytes" in capsys.readouterr().out
    monkeypatch.setenv(MAX_JSON_BYTES_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MAX_JSON_BYTES_ENV}='lots'"):
        max_json_bytes()


def test_a_plain_file_over_the_limit_is_refused_unread(lab_file: Path) -> None:
    size = lab_file.stat().st_size
    (problem,) = _errors_of(lab_file, max_bytes=size - 1)
    assert f"is {size} bytes, more than the JSON an episode file may hold" in problem
    assert load_episodes(lab_file, max_bytes=size)


def test_an_episode_longer_than_the_games_limit_is_refused(
    lab_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eps = json.loads(lab_file.read_text())
    steps = eps[1]["steps"]
    eps[1]["steps"] = (steps * (501 // len(steps) + 1))[:501]
    eps[1]["length"] = 501
    eps[1]["score"] = float(len(eps[1]["steps"]))
    lab_file.write_text(json.dumps(eps))
    (problem,) = _errors_of(lab_file)
    assert problem.startswith(
        f"{lab_file}, episode 1, field 'steps': episode has 501 steps, more than CartPole-v1 "
        "allows (500"
    )
    assert main(["check", str(lab_file)]) == 1
    with pytest.raises(EpisodeFormatError, match="more than CartPole-v1 allows"):
        load_human_data("cartpole", str(lab_file))
    eps[1]["steps"], eps[1]["length"], eps[1]["score"] = eps[1]["steps"][:500], 500, 500.0
    lab_file.write_text(json.dumps(eps))
    assert errors(check_file(lab_file)) == []  # exactly the limit is a full episode


def _one_episode_sessions(path: Path, hours: list[float]) -> None:
    start = datetime(2025, 1, 6, 10, 0, 0)
    record_like_the_lab(path, starts=[start + timedelta(hours=h) for h in hours])


def test_a_file_of_one_episode_sessions_is_refused_by_check_and_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sub01_data_cartpole.json"
    _one_episode_sessions(path, [0, 2, 5])  # three sittings of one episode each
    (problem,) = errors(check_file(path))
    assert str(problem).startswith(
        f"{path}: nothing left to train on: the file's 3 episodes form 3 sessions"
    )
    assert main(["check", str(path)]) == 1
    assert "nothing left to train on" in capsys.readouterr().out
    with pytest.raises(EpisodeFormatError, match="nothing left to train on"):
        load_human_data("cartpole", str(path))
    assert len(load_episodes(path)) == 3  # the recorder still appends to it


def test_the_file_check_is_no_stricter_than_training(tmp_path: Path) -> None:
    """One session of two episodes is enough: one trains, one tests."""
    path = tmp_path / "sub01_data_cartpole.json"
    _one_episode_sessions(path, [0, 0.01, 3])
    assert errors(check_file(path)) == []
    data = load_human_data("cartpole", str(path))
    assert data.metadata.n_train == 1 and data.metadata.n_test == 2
    one = tmp_path / "sub02_data_cartpole.json"
    _one_episode_sessions(one, [0])
    assert "the file's 1 episode form one session" in str(errors(check_file(one))[0])


def test_many_copies_of_an_episode_give_one_warning_with_a_count(lab_file: Path) -> None:
    eps = json.loads(lab_file.read_text())
    one = {**eps[0], "steps": eps[0]["steps"][:1], "length": 1}
    one["score"] = one["steps"][0]["reward"]
    copies = [{**one, "episode_id": i % 2} for i in range(5000)]
    lab_file.write_text(json.dumps(copies))
    warned = warnings_of(check_file(lab_file))
    assert [(w.episode, w.field) for w in warned] == [(2, "episode_id"), (1, "steps")]
    assert "and 4997 more episodes repeat an earlier episode's id (episodes 3, 4, 5, 6, 7, …)" in (
        warned[0].message
    )
    assert warned[1].message.startswith(
        "same steps as episode 0, and 4998 more episodes repeat an earlier episode's steps"
    )


def test_the_same_slip_in_every_episode_is_listed_three_times_then_counted(
    lab_file: Path,
) -> None:
    eps = json.loads(lab_file.read_text())
    one = {**eps[0], "steps": eps[0]["steps"][:1], "length": 1, "score": 99.0}  # wrong score
    start = datetime(2025, 1, 6, 10, 0, 0)
    many = []
    for i in range(2000):
        step = {**one["steps"][0], "reward": i + 0.5}  # distinct steps: no duplicates
        stamp = (start + timedelta(seconds=i)).isoformat()
        many.append({**one, "episode_id": i, "timestamp": stamp, "steps": [step]})
    lab_file.write_text(json.dumps(many))
    warned = warnings_of(check_file(lab_file))
    assert [w.episode for w in warned] == [0, 1, 2, None]
    assert str(warned[-1]) == (
        f"{lab_file}, field 'score': warning: 1997 more episodes with the same warning (score "
        "is not the sum of the rewards)"
    )
