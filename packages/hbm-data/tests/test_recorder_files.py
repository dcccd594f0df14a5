"""The recorder's file logic, without a display: it never writes a file its validator rejects."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hbm_data import EpisodeFormatError, check_file, load_episodes, load_records
from hbm_data.cli import main
from hbm_data.recorder import append_episode, episode_record, new_episode_numbers, now_timestamp


def _steps(n: int = 5, obs: float = 0.01) -> list[dict[str, Any]]:
    return [
        {
            "observation": [obs, 0.0, 0.0, 0.0],
            "action": k % 2,
            "reward": 1.0,
            "next_observation": [obs, 0.0, 0.0, 0.0],
            "done": k == n - 1,
        }
        for k in range(n)
    ]


def test_timestamps_carry_the_utc_offset() -> None:
    t = datetime.fromisoformat(now_timestamp())
    assert t.utcoffset() is not None
    assert abs((t - datetime.now().astimezone()).total_seconds()) < 60


def test_dst_change_between_episodes_compares_as_instants(tmp_path: Path) -> None:
    """02:50 summer time, then 02:10 winter time: 20 minutes later, not 40 minutes back."""
    path = tmp_path / "sub03_data_cartpole.json"
    first = episode_record(0, "2025-10-26T02:50:00+02:00", 0, _steps())
    records = append_episode(path, [], first, env="cartpole")
    second = episode_record(1, "2025-10-26T02:10:00+01:00", 1, _steps(6))
    append_episode(path, records, second, env="cartpole")
    assert check_file(path) == []


def test_clock_going_back_between_episodes_still_gives_a_valid_file(tmp_path: Path) -> None:
    """NTP steps the clock back between two episodes: the second starts 'earlier'."""
    path = tmp_path / "sub03_data_cartpole.json"
    summer = datetime(2025, 10, 26, 2, 50, tzinfo=datetime.now().astimezone().tzinfo)
    first = episode_record(0, summer.isoformat(), 0, _steps())
    records = append_episode(path, [], first, env="cartpole")
    back = (summer - timedelta(minutes=55)).isoformat()  # the local clock went back
    records = append_episode(path, records, episode_record(1, back, 1, _steps(7)), env="cartpole")
    problems = check_file(path)
    assert [p.severity for p in problems] == ["warning"]
    assert (problems[0].episode, problems[0].field) == (1, "timestamp")
    assert [e.length for e in load_episodes(path)] == [5, 7]


def test_appending_to_an_old_recorder_file_mixes_naive_and_aware_times(lab_file: Path) -> None:
    records = load_records(lab_file)
    assert datetime.fromisoformat(records[-1]["timestamp"]).tzinfo is None  # the lab's format
    episode_id, seed = new_episode_numbers(records)
    assert (episode_id, seed) == (3, 3)
    append_episode(
        lab_file, records, episode_record(3, now_timestamp(), 3, _steps()), env="cartpole"
    )
    assert [p for p in check_file(lab_file) if p.is_error] == []  # no TypeError, no error
    assert [e.seed_used for e in load_episodes(lab_file)] == [0, 1, 2, 3]


def test_unknown_fields_survive_a_rewrite(lab_file: Path) -> None:
    raw = json.loads(lab_file.read_text())
    raw[0]["operator"] = "ana"
    raw[1]["keys_held"] = {"left": 3}
    raw[0]["steps"][0]["frame_time_ms"] = 66.7
    raw[2]["steps"][-1]["info"] = {"TimeLimit.truncated": False}
    lab_file.write_text(json.dumps(raw, indent=2))
    records = load_records(lab_file, env="cartpole")
    append_episode(
        lab_file, records, episode_record(3, now_timestamp(), 3, _steps()), env="cartpole"
    )
    after = json.loads(lab_file.read_text())
    assert after[:3] == raw and len(after) == 4
    assert after[0]["operator"] == "ana" and after[0]["steps"][0]["frame_time_ms"] == 66.7


def test_an_episode_the_validator_rejects_is_never_written(lab_file: Path) -> None:
    before = lab_file.read_bytes()
    records = load_records(lab_file)
    bad = episode_record(3, now_timestamp(), 3, _steps(obs=float("nan")))
    with pytest.raises(EpisodeFormatError, match=r"episode 3, step 0, field 'observation'"):
        append_episode(lab_file, records, bad, env="cartpole")
    assert lab_file.read_bytes() == before


def test_new_file_gets_its_sidecar_with_the_first_episode(tmp_path: Path) -> None:
    path = tmp_path / "sub04_data_cartpole.json"
    side = {"subject": "sub04", "simulated": False}
    records = append_episode(path, [], episode_record(0, now_timestamp(), 0, _steps()),
                             env="cartpole", sidecar=side)  # fmt: skip
    meta = tmp_path / "sub04_data_cartpole.meta.json"
    assert json.loads(meta.read_text()) == side
    meta.unlink()
    append_episode(path, records, episode_record(1, now_timestamp(), 1, _steps()),
                   env="cartpole", sidecar=side)  # fmt: skip
    assert not meta.exists()  # only with the first episode of a new file


def test_cli_never_claims_a_save_that_did_not_happen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hbm_data import recorder

    calls: list[dict[str, Any]] = []

    def quit_at_once(env: str, subject: str, **kwargs: Any) -> Path:
        calls.append({"subject": subject, **kwargs})
        return tmp_path / f"{subject}_data_{env}.json"

    monkeypatch.setattr(recorder, "record", quit_at_once)
    assert main(["record", "cartpole", "--subject", "007", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "saved" not in out and "no episode recorded" in out and "not created" in out
    assert calls[0]["subject"] == "007"  # the subject id stays a string

    def save_two(env: str, subject: str, **kwargs: Any) -> Path:
        for k in range(2):
            kwargs["on_episode"]({"episode_id": k})
        return tmp_path / f"{subject}_data_{env}.json"

    monkeypatch.setattr(recorder, "record", save_two)
    assert main(["record", "cartpole", "--subject", "sub01", "--data-dir", str(tmp_path)]) == 0
    assert "2 episodes saved in" in capsys.readouterr().out
