"""Every bad input gives an error naming file, episode, step and field; `check_file` lists all."""

from __future__ import annotations

import gzip
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hbm_data import EpisodeFormatError, Problem, check_file, load_episodes

Mutation = Callable[[list[dict[str, Any]]], None]


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(eps: list[dict[str, Any]]) -> None:
        obj: Any = eps
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Mutation:
    def mutate(eps: list[dict[str, Any]]) -> None:
        obj: Any = eps
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    return mutate


# (mutation, expected episode, step, field, message fragment)
CASES: dict[str, tuple[Mutation, int | None, int | None, str | None, str]] = {
    "missing episode field": (_delete((1, "seed_used")), 1, None, "seed_used", "missing field"),
    "missing step field": (_delete((0, "steps", 2, "action")), 0, 2, "action", "missing field"),
    "observation too short": (
        _set((2, "steps", 3, "observation"), [0.0, 0.1, 0.2]),
        2, 3, "observation", "has 3 values, expected 4 values for CartPole-v1",
    ),
    "next_observation too long": (
        _set((0, "steps", 0, "next_observation"), [0.0] * 5),
        0, 0, "next_observation", "has 5 values",
    ),
    "action out of range": (
        _set((1, "steps", 4, "action"), 2), 1, 4, "action", "action 2 out of range [0, 2)"
    ),
    "negative action": (_set((1, "steps", 0, "action"), -1), 1, 0, "action", "out of range"),
    "float action": (_set((1, "steps", 0, "action"), 1.0), 1, 0, "action", "integer action"),
    "NaN observation": (
        _set((0, "steps", 1, "observation", 2), float("nan")), 0, 1, "observation", "finite"
    ),
    "infinite reward": (_set((2, "steps", 0, "reward"), float("inf")), 2, 0, "reward", "finite"),
    "infinite score": (_set((2, "score"), float("-inf")), 2, None, "score", "finite"),
    "string in observation": (
        _set((0, "steps", 1, "observation", 0), "0.1"), 0, 1, "observation", "finite numbers"
    ),
    "done not bool": (_set((0, "steps", 1, "done"), 0), 0, 1, "done", "true or false"),
    "length mismatch": (
        _set((1, "length"), 3), 1, None, "length", "length is 3 but the episode has"
    ),
    "timestamp not ISO": (
        _set((1, "timestamp"), "06/01/2025 10:00"), 1, None, "timestamp", "ISO 8601"
    ),
    "observation overflows float32": (
        _set((0, "steps", 2, "observation", 1), 1e300), 0, 2, "observation", "float32 range"
    ),
    "next_observation overflows float32": (
        _set((1, "steps", 0, "next_observation", 3), -4e38),
        1, 0, "next_observation", "float32 range",
    ),
    "reward overflows float32": (
        _set((2, "steps", 1, "reward"), 1e300), 2, 1, "reward", "float32 range"
    ),
    "score overflows float32": (_set((0, "score"), 1e39), 0, None, "score", "float32 range"),
    "integer too large for any float": (
        _set((0, "steps", 0, "observation", 0), 10**400), 0, 0, "observation", "float32 range"
    ),
    "negative seed": (_set((1, "seed_used"), -1), 1, None, "seed_used", "seed ≥ 0"),
    "boolean action among integers": (
        _set((2, "steps", 3, "action"), True), 2, 3, "action", "found true (a JSON boolean)"
    ),
    "boolean observation value": (
        _set((0, "steps", 1, "observation", 2), False),
        0, 1, "observation", "found false (a JSON boolean)",
    ),
    "boolean reward": (_set((1, "steps", 2, "reward"), True), 1, 2, "reward", "JSON boolean"),
    "boolean score": (_set((1, "score"), True), 1, None, "score", "JSON boolean"),
    "no steps": (_set((0, "steps"), []), 0, None, "steps", "no steps"),
    "episode not an object": (_set((1,), [1, 2]), 1, None, None, "expected an object"),
}  # fmt: skip


def _rewrite(path: Path, mutate: Mutation) -> None:
    eps = json.loads(path.read_text())
    mutate(eps)
    path.write_text(json.dumps(eps, indent=2))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_names_the_place(lab_file: Path, case: str) -> None:
    mutate, episode, step, field, fragment = CASES[case]
    _rewrite(lab_file, mutate)
    with pytest.raises(EpisodeFormatError) as info:
        load_episodes(lab_file)
    first = info.value.problems[0]
    assert (first.file, first.episode, first.step, first.field) == (
        str(lab_file), episode, step, field,
    )  # fmt: skip
    assert fragment in first.message
    message = str(info.value)
    assert str(lab_file) in message and fragment in message
    if episode is not None:
        assert f"episode {episode}" in message
    if step is not None:
        assert f"step {step}" in message
    if field is not None:
        assert repr(field) in message


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b'[{"episode_id": 0, "timestamp": "2025-01-06T10:00:00", "len', "truncated"),
        (b"hello, I am not JSON", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"episode_id": 0}', "expected a JSON list of episodes"),
    ],
)  # fmt: skip
def test_unreadable_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "sub01_data_cartpole.json"
    path.write_bytes(content)
    with pytest.raises(EpisodeFormatError, match=fragment) as info:
        load_episodes(path)
    assert str(path) in str(info.value)


def test_truncated_gzip(lab_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "sub01_data_cartpole.json.gz"
    path.write_bytes(gzip.compress(lab_file.read_bytes())[:500])
    with pytest.raises(EpisodeFormatError, match="gzip"):
        load_episodes(path)


def test_check_file_lists_all_problems(lab_file: Path) -> None:
    for case in ("missing step field", "action out of range", "length mismatch", "NaN observation"):
        _rewrite(lab_file, CASES[case][0])
    problems = check_file(lab_file)
    assert {(p.episode, p.step, p.field) for p in problems} == {
        (0, 2, "action"), (1, 4, "action"), (1, None, "length"), (0, 1, "observation"),
    }  # fmt: skip
    assert all(isinstance(p, Problem) for p in problems)
    with pytest.raises(EpisodeFormatError, match=r"and 3 more problems"):
        load_episodes(lab_file)


def test_repeated_step_problems_are_summarised(lab_file: Path) -> None:
    eps = json.loads(lab_file.read_text())
    n = len(eps[0]["steps"])
    for s in eps[0]["steps"]:
        s["observation"] = [*s["observation"], 0.0]
    lab_file.write_text(json.dumps(eps))
    problems = check_file(lab_file, env="cartpole")
    per_step = [p for p in problems if p.step is not None]
    assert [p.step for p in per_step] == [0, 1, 2]
    assert f"{n - 3} more steps with the same problem" in problems[-1].message


def _all_actions_boolean(eps: list[dict[str, Any]]) -> None:
    for s in eps[1]["steps"]:
        s["action"] = bool(s["action"])


def test_actions_all_boolean_are_rejected(lab_file: Path) -> None:
    """`[true, false, ...]` reads as a bool array, not actions 1/0: rejected, per step."""
    _rewrite(lab_file, _all_actions_boolean)
    problems = check_file(lab_file)
    assert problems and all(p.is_error for p in problems)
    assert {(p.episode, p.field) for p in problems} == {(1, "action")}
    assert problems[0].step == 0 and "JSON boolean" in problems[0].message


@pytest.mark.parametrize("content", [b"[]", b"[]\n"])
def test_empty_episode_list_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sub01_data_cartpole.json"
    path.write_bytes(content)
    problems = check_file(path)
    assert [p.severity for p in problems] == ["error"]
    assert "holds no episodes" in problems[0].message and problems[0].file == str(path)
    with pytest.raises(EpisodeFormatError, match=r"sub01_data_cartpole\.json: the file holds no"):
        load_episodes(path)


def _warnings(path: Path) -> list[Problem]:
    problems = check_file(path)
    assert all(not p.is_error for p in problems), [str(p) for p in problems if p.is_error]
    return problems


def test_duplicate_episode_id_warns(lab_file: Path) -> None:
    _rewrite(lab_file, _set((2, "episode_id"), 0))
    (w,) = _warnings(lab_file)
    assert (w.severity, w.episode, w.step, w.field) == ("warning", 2, None, "episode_id")
    assert "episode_id 0 is also episode 0's" in w.message
    assert len(load_episodes(lab_file)) == 3  # a warning never stops a load
    assert str(w).startswith(f"{lab_file}, episode 2, field 'episode_id': warning: ")


def test_episode_saved_twice_warns(lab_file: Path) -> None:
    def duplicate(eps: list[dict[str, Any]]) -> None:
        eps.append({**eps[1], "episode_id": 3, "timestamp": "2025-01-06T10:05:00"})

    _rewrite(lab_file, duplicate)
    (w,) = _warnings(lab_file)
    assert (w.episode, w.field) == (3, "steps") and "same steps as episode 1" in w.message


def test_score_not_sum_of_rewards_warns(lab_file: Path) -> None:
    eps = json.loads(lab_file.read_text())
    total = sum(s["reward"] for s in eps[1]["steps"])
    _rewrite(lab_file, _set((1, "score"), total + 1e-7))  # within the tolerance: clean
    assert check_file(lab_file) == []
    _rewrite(lab_file, _set((1, "score"), total + 5))
    (w,) = _warnings(lab_file)
    assert (w.episode, w.field) == (1, "score") and "not the sum of the step rewards" in w.message
    assert f"{total + 5!r}" in w.message and f"{float(total)!r}" in w.message


def test_clock_going_back_warns_and_mixed_zones_compare(lab_file: Path) -> None:
    _rewrite(lab_file, _set((2, "timestamp"), "2025-01-06T09:00:00"))  # an hour back: DST
    (w,) = _warnings(lab_file)
    assert (w.episode, w.field) == (2, "timestamp") and "clock went back" in w.message
    # old naive recordings, then aware ones: compared without TypeError, in the aware offset
    _rewrite(lab_file, _set((1, "timestamp"), "2025-01-06T10:00:50.000000+01:00"))
    _rewrite(lab_file, _set((2, "timestamp"), "2025-01-06T09:01:00.000000+00:00"))
    assert check_file(lab_file) == []  # 10:00:00 (+01:00 assumed) < 10:00:50+01 < 10:01+01
    _rewrite(lab_file, _set((2, "timestamp"), "2025-01-06T08:59:00+00:00"))  # 09:59+01
    (w,) = _warnings(lab_file)
    assert w.episode == 2 and "earlier than episode 1's start" in w.message


def test_pickled_error_keeps_every_problem(lab_file: Path) -> None:
    for case in ("missing step field", "action out of range", "length mismatch"):
        _rewrite(lab_file, CASES[case][0])
    with pytest.raises(EpisodeFormatError) as info:
        load_episodes(lab_file)
    err = info.value
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is EpisodeFormatError and str(back) == str(err)
    assert back.problems == err.problems and len(back.problems) == 3
    assert back.file == str(lab_file)
    assert [(p.episode, p.step, p.field) for p in back.problems] == [
        (0, 2, "action"), (1, None, "length"), (1, 4, "action"),
    ]  # fmt: skip
    assert "and 2 more problems" in str(back)
    with pytest.raises(ValueError, match="non-empty sequence of Problem"):
        EpisodeFormatError("a message instead of problems")  # type: ignore[arg-type]


def test_valid_file_has_no_problems(lab_file: Path, tmp_path: Path) -> None:
    assert check_file(lab_file) == []
    assert check_file(tmp_path / "absent.json")[0].message == "no such file"
    with pytest.raises(FileNotFoundError, match=r"absent\.json"):
        load_episodes(tmp_path / "absent.json")
