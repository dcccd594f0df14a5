"""The Overcooked-AI recordings as subjects: the encoding, reading, episodes, files, who is who.

Synthetic trials written here stand in for the data (nothing of it is in the repository); the
tests on the real recordings run where `overcooked-ai` is installed and skip otherwise (the
`data_extras` session installs it, and there a skip fails).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_data import ENVIRONMENTS, check_file, load_episodes, load_human_data
from hbm_data.cli import main
from hbm_data.envs import GYMNASIUM_ENVIRONMENTS
from hbm_data.episodes import read_sidecar
from hbm_data.overcooked import (
    LAYOUTS,
    POOLED_SUBJECT,
    OvercookedDataError,
    Trial,
    env_name,
    import_trials,
    layout_encoding,
    player_evidence,
    style_features,
    subject_name,
    trial_episodes,
)
from hbm_data.overcooked.trials import action_index, segment_bounds
from hbm_data.paths import parse_episode_file_name
from hbm_data.validation import errors

T0 = 1_557_859_000_000.0  # ms since 1970: an evening in May 2019


def _state(tick: int) -> dict[str, Any]:
    """A cramped_room state that changes every tick: players walk, an onion cooks, a dish lies."""
    onions = min(3, tick // 3)
    objects: dict[str, Any] = {}
    if onions:
        cooked = max(0, tick - 9)
        objects["2,0"] = {"name": "soup", "position": [2, 0], "state": ["onion", onions, cooked]}
    if tick % 4 == 0:
        objects["4,2"] = {"name": "dish", "position": [4, 2]}
    p0: dict[str, Any] = {"position": [1 + tick % 3, 2], "orientation": [0, -1]}
    if tick % 2:
        p0["held_object"] = {"name": "onion", "position": p0["position"]}
    p1 = {"position": [3, 1], "orientation": [1, 0] if tick % 2 else [-1, 0]}
    return {"players": [p0, p1], "objects": objects, "order_list": ["onion"],
            "pot_explosion": False}  # fmt: skip


_MOVES: list[Any] = [[0, -1], [0, 1], [1, 0], [-1, 0], [0, 0], "INTERACT"]


def _trial(
    worker: int, layout: str = "cramped_room", length: int = 40, split: str = "train",
    start_ms: float = T0, actions: np.ndarray | None = None,
) -> Trial:  # fmt: skip
    states = tuple(_state(t) for t in range(length + 1))
    acts = np.arange(2 * length).reshape(length, 2) % 6 if actions is None else actions
    rewards = np.zeros(length)
    rewards[length // 2] = 5.0
    return Trial(
        split, "run-1", worker, layout, states[:-1], states[1:], acts.astype(np.int64),
        rewards, start_ms + 150.0 * np.arange(length),
    )  # fmt: skip


def _frame(trials: Sequence[Trial]) -> Any:
    """The recordings' DataFrame layout (one row per tick), rows shuffled."""
    pandas = pytest.importorskip("pandas", reason='needs pip install "hbm-data[overcooked]"')
    rows = []
    for tr in trials:
        for t in range(tr.length):
            joint = [_MOVES[int(a)] for a in tr.actions[t]]
            rows.append({
                "workerid_num": tr.worker, "layout_name": tr.layout,
                "layout": repr(list(LAYOUTS[tr.layout])), "run": tr.run, "cur_gameloop": float(t),
                "datetime": tr.times_ms[t], "state": repr(tr.states[t]),
                "next_state": repr(tr.next_states[t]), "joint_action": repr(joint),
                "reward": tr.rewards[t], "is_leader": True,
            })  # fmt: skip
    frame = pandas.DataFrame(rows)
    return frame.sample(frac=1.0, random_state=0)


# ----------------------------------------------------------------------------- the encoding


def test_every_layout_is_a_game_with_the_encodings_size() -> None:
    for layout in LAYOUTS:
        spec = ENVIRONMENTS[env_name(layout)]
        enc = layout_encoding(layout)
        assert spec.obs_size == enc.size == len(enc.slot_names) == len(set(enc.slot_names))
        assert (spec.num_actions, spec.noop_action, spec.gymnasium) == (6, 4, False)
        assert spec.max_episode_steps == 1204 and abs(spec.fps - 1 / 0.150) < 1e-9
        assert env_name(layout) not in GYMNASIUM_ENVIRONMENTS
    assert set(GYMNASIUM_ENVIRONMENTS) == {"cartpole", "mountaincar", "acrobot", "lunarlander"}


def test_encoding_known_answer_from_both_sides() -> None:
    enc = layout_encoding("cramped_room")
    assert enc.pots == ((2, 0),)
    assert enc.counters == ((1, 0), (3, 0), (0, 2), (4, 2), (2, 3))  # X cells next to floor
    state = {
        "players": [
            {"position": [1, 2], "orientation": [0, -1],
             "held_object": {"name": "onion", "position": [1, 2]}},
            {"position": [3, 1], "orientation": [1, 0],
             "held_object": {"name": "soup", "position": [3, 1], "state": ["onion", 3, 20]}},
        ],
        "objects": {
            "2,0": {"name": "soup", "position": [2, 0], "state": ["onion", 3, 5]},
            "4,2": {"name": "dish", "position": [4, 2]},
        },
    }  # fmt: skip
    me = [1, 2, 1, 0, 0, 0, 1, 0, 0]  # x, y, north, holds an onion
    partner = [2, -1, 0, 0, 1, 0, 0, 0, 1]  # 2 right, 1 up, east, holds a soup
    pot = [1.0, 5 / 20, 0.0]  # three onions, 5 of 20 ticks, not ready
    counters = [0, 0, 0] * 3 + [0, 1, 0] + [0, 0, 0]  # a dish on (4, 2)
    np.testing.assert_array_equal(enc.encode(state, 0), me + partner + pot + counters)
    mirrored = [3, 1, 0, 0, 1, 0, 0, 0, 1, -2, 1, 1, 0, 0, 0, 1, 0, 0]  # the other side
    np.testing.assert_array_equal(enc.encode(state, 1), mirrored + pot + counters)
    state["objects"]["2,0"]["state"] = ["onion", 3, 31]  # ready; ticks beyond 20 count as 20
    assert enc.encode(state, 0)[18:21].tolist() == [1.0, 1.0, 1.0]
    state["objects"]["1,1"] = {"name": "onion", "position": [1, 1]}  # on the floor: impossible
    with pytest.raises(ValueError, match="neither a pot nor a counter"):
        enc.encode(state, 0)


def test_actions_in_overcooked_order() -> None:
    assert [action_index(a) for a in _MOVES] == [0, 1, 2, 3, 4, 5]
    assert action_index("interact") == 5 and action_index((1, 0)) == 2
    for bad in ([1, 1], "jump", None, [0]):
        with pytest.raises(ValueError, match="not an Overcooked action"):
            action_index(bad)


# ----------------------------------------------------------------------------- episodes, files


def test_segments_cover_the_trial() -> None:
    assert segment_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert segment_bounds(1204, 10)[-1] == (1084, 1204) and segment_bounds(2, 5) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError):
        segment_bounds(10, 0)


def test_trial_episodes_from_each_side() -> None:
    trial = _trial(3, length=40)
    whole = trial_episodes(trial, 1)[0]
    parts = trial_episodes(trial, 1, segments=4)
    assert [p.length for p in parts] == [10] * 4
    np.testing.assert_array_equal(np.concatenate([p.actions for p in parts]), trial.actions[:, 1])
    np.testing.assert_array_equal(whole.observations[1:], whole.next_observations[:-1])
    assert whole.dones.tolist() == [False] * 39 + [True]
    assert [p.dones[-1] for p in parts] == [False, False, False, True]
    assert sum(p.score for p in parts) == whole.score == 5.0
    assert parts[1].timestamp == "2019-05-14T18:36:41.500000+00:00"  # tick 10: +1.5 s
    me = trial_episodes(trial, 0)[0].observations
    assert me[:, 0].tolist()[:3] == [1, 2, 3] and whole.observations[0, 9] == me[0, 0] - 3


def test_import_writes_checked_files_per_player_and_pooled(tmp_path: Path) -> None:
    trials = [
        _trial(1, split="train"),
        _trial(2, split="test", start_ms=T0 + 20_000),
        _trial(1, layout="random0", split="test", start_ms=T0 + 200_000),
    ]
    # random0 has other counters: put the dish on one of its own
    for s in (*trials[2].states, *trials[2].next_states):
        s["objects"].pop("4,2", None)
        s["objects"].pop("2,0", None)
    written = import_trials(trials, tmp_path, segments=4)
    names = sorted(p.name for p in tmp_path.glob("*.json.gz"))
    assert names == sorted(
        [f"oc-w0{w}-p{p}_data_overcooked-cramped_room.json.gz" for w in (1, 2) for p in (0, 1)]
        + ["oc-w01-p0_data_overcooked-random0.json.gz", "oc-w01-p1_data_overcooked-random0.json.gz"]
        + [f"{POOLED_SUBJECT}_data_overcooked-{k}.json.gz" for k in ("cramped_room", "random0")]
    )
    for f in written:
        assert errors(check_file(f.path)) == [], f.path
        assert parse_episode_file_name(f.path) == (f.subject, f.env_name)
    side = read_sidecar(tmp_path / "oc-all_data_overcooked-cramped_room.json.gz")
    assert side is not None and side["pooled"] and side["source_kind"] == "person"
    assert side["source_split"] == ["train"] * 8 + ["test"] * 8  # worker 2 started later
    assert [e["player"] for e in side["episodes"][:4]] == [0, 1, 0, 1]  # in time order
    assert side["placeholder_seeds"] == [i for i in range(16) if i not in (0, 1, 8, 9)]
    assert side["observation"] == layout_encoding("cramped_room").slot_names
    assert subject_name(2, 1) == "oc-w02-p1"
    data = load_human_data("overcooked-cramped_room", "oc-w02-p1", data_dir=tmp_path)
    assert data.metadata.obs_size == 36 and data.metadata.num_sessions == 1
    assert data.metadata.n_train == 3 and data.metadata.n_test == 1  # one of four segments
    assert data.train_obs.shape == (30, 36) and not data.metadata.simulated
    replayable = [e.seed_replayable for e in (*data.metadata.train_episodes,
                                              *data.metadata.test_episodes)]  # fmt: skip
    assert sum(replayable) == 1  # only the first segment starts where the kitchen does
    episodes = load_episodes(tmp_path / "oc-w02-p1_data_overcooked-cramped_room.json.gz")
    np.testing.assert_array_equal(np.concatenate([e.actions for e in episodes]),
                                  trials[1].actions[:, 1])  # fmt: skip


def test_a_trial_must_split_into_training_and_test_episodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="segments must be ≥ 2"):
        import_trials([_trial(1)], tmp_path, segments=1)
    assert main(["import-overcooked", "--out", str(tmp_path), "--segments", "1"]) == 2
    assert "--segments must be ≥ 2" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_reimport_replaces_its_files_and_keeps_others(tmp_path: Path) -> None:
    import_trials([_trial(1)], tmp_path, segments=2, pooled=False, compress=False)
    plain = tmp_path / "oc-w01-p0_data_overcooked-cramped_room.json"
    assert len(load_episodes(plain)) == 2
    import_trials([_trial(1)], tmp_path, segments=5, pooled=False)  # now compressed
    assert not plain.exists()  # a stale plain file would shadow the new .gz
    assert len(load_episodes(plain.with_suffix(".json.gz"))) == 5
    foreign = tmp_path / "oc-w01-p1_data_overcooked-cramped_room.json.gz"
    foreign.unlink()
    foreign.with_name("oc-w01-p1_data_overcooked-cramped_room.meta.json").write_text("{}")
    foreign.with_suffix("").write_text("[]")  # someone's own plain file of that name
    with pytest.raises(FileExistsError, match="not written by the Overcooked import"):
        import_trials([_trial(1)], tmp_path, segments=5, pooled=False)
    assert foreign.with_suffix("").read_text() == "[]"
    import_trials([_trial(1)], tmp_path, segments=5, pooled=False, force=True)
    assert not foreign.with_suffix("").exists() and foreign.exists()


# ----------------------------------------------------------------------------- reading


def test_frames_read_as_trials() -> None:
    from hbm_data.overcooked import trials_from_frame

    made = [_trial(2, length=12), _trial(1, length=9, start_ms=T0 + 5_000)]
    read = trials_from_frame(_frame(made), "train", source="synthetic.pickle")
    assert [(t.worker, t.layout, t.length, t.split) for t in read] == [
        (2, "cramped_room", 12, "train"), (1, "cramped_room", 9, "train"),
    ]  # fmt: skip
    for mine, back in zip(made, read, strict=True):
        np.testing.assert_array_equal(back.actions, mine.actions)
        np.testing.assert_array_equal(back.times_ms, mine.times_ms)
        assert back.states == mine.states and back.next_states == mine.next_states


def test_bad_frames_name_the_trial_row_and_field(tmp_path: Path) -> None:
    from hbm_data.overcooked import trials_from_frame

    good = _frame([_trial(2, length=6)])
    cases: list[tuple[str, Any, str]] = [
        ("state", "__import__('os').system('touch " + str(tmp_path / "pwned") + "')",
         "field state: not a Python literal"),
        ("joint_action", "[[2, 0], [0, 0]]", "field joint_action"),
        ("layout", "['XXXXX']", "field layout"),
        ("next_state", "{'players': []}", "field next_state"),
    ]  # fmt: skip
    for column, value, message in cases:
        frame = good.copy()
        frame.loc[frame.index[2], column] = value
        with pytest.raises(OvercookedDataError, match=message) as info:
            trials_from_frame(frame, "train", source="x.pickle")
        assert "x.pickle: trial of worker 2 on cramped_room" in str(info.value)
    assert not (tmp_path / "pwned").exists()  # parsed, never executed
    with pytest.raises(OvercookedDataError, match="cur_gameloop"):
        trials_from_frame(good.drop(index=good.index[3]), "train")
    with pytest.raises(OvercookedDataError, match="missing columns"):
        trials_from_frame(good.drop(columns=["datetime"]), "train")


def test_cli_without_the_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def absent(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    assert main(["import-overcooked", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'pip install --no-deps "overcooked-ai==1.1.0"' in err
    assert 'pip install "hbm-data[overcooked]"' in err and not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- who is who


def _people_trials(swap: bool, seed: int = 0) -> list[Trial]:
    """8 workers x 4 layouts; each worker's two people play in their own style. With `swap`,
    the two people take random player indices in each trial."""
    rng = np.random.default_rng(seed)
    layouts = list(LAYOUTS)[:4]
    trials = []
    for w in range(8):
        people = [(rng.uniform(0.05, 0.8), rng.uniform(0.2, 0.8)) for _ in range(2)]
        for k, layout in enumerate(layouts):
            order = rng.permutation(2) if swap else np.arange(2)
            acts = np.zeros((600, 2), dtype=np.int64)
            for p, who in enumerate(order):
                repeat, stay = people[who]
                for t in range(1, 600):
                    if rng.random() < repeat:
                        acts[t, p] = acts[t - 1, p]
                    else:
                        acts[t, p] = 4 if rng.random() < stay else rng.choice([0, 1, 2, 3, 5])
            trials.append(
                Trial("train", "run-1", w, layout, (), (), acts, np.zeros(600),
                      T0 + 1000.0 * (w * 10 + k) + np.arange(600.0))
            )  # fmt: skip
    return trials


def test_player_evidence_tells_stable_indices_from_swapped_ones() -> None:
    stable = player_evidence(_people_trials(swap=False), permutations=200)
    swapped = player_evidence(_people_trials(swap=True), permutations=200)
    assert stable.same_worker_pairs == swapped.same_worker_pairs == 8 * 6
    assert stable.same_worker_rate > 0.85 and stable.permutation_p < 0.01
    assert swapped.same_worker_rate < 0.75 and swapped.permutation_p > 0.01
    assert 0.3 < stable.other_worker_rate < 0.7  # unrelated trials: a coin
    assert len(stable.lines()) == 3 + len(stable.index_means)


def test_style_features_known_answer() -> None:
    f = style_features(np.array([4, 4, 0, 0, 0, 5, 5, 4]))
    # stay 3/8, interact 2/8, move repeat 2/3, stay repeat 1/2, interact repeat 1/2, switch 3/7
    np.testing.assert_allclose(f, [3 / 8, 2 / 8, 2 / 3, 1 / 2, 1 / 2, 3 / 7])


# ----------------------------------------------------------------------------- the real data


def _installed() -> None:
    try:
        importlib.metadata.distribution("overcooked-ai")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip('the recordings need pip install --no-deps "overcooked-ai==1.1.0"')
    pytest.importorskip("pandas", reason='needs pip install "hbm-data[overcooked]"')


def test_real_recordings_are_where_the_package_put_them() -> None:
    _installed()
    import pandas
    from hbm_data.overcooked import trials_file

    counts = {}
    for split in ("train", "test"):
        frame = pandas.read_pickle(trials_file(split))
        trials = frame.groupby(["workerid_num", "layout_name"]).size()
        counts[split] = (len(frame), len(trials), int(trials.max()))
        assert set(frame["layout_name"]) == set(LAYOUTS) and frame["is_leader"].all()
    assert counts == {"train": (46729, 39, 1204), "test": (44373, 37, 1204)}


def test_one_real_trial_imports_and_checks(tmp_path: Path) -> None:
    _installed()
    import pandas
    from hbm_data.overcooked import trials_file, trials_from_frame

    frame = pandas.read_pickle(trials_file("train"))
    one = frame[(frame["workerid_num"] == frame["workerid_num"].min())]
    one = one[one["layout_name"] == one["layout_name"].iloc[0]]
    (trial,) = trials_from_frame(one, "train")
    chained = sum(a == b for a, b in zip(trial.next_states[:-1], trial.states[1:], strict=True))
    assert chained == trial.length - 1  # consecutive rows chain exactly
    written = import_trials([trial], tmp_path, segments=10)
    assert len(written) == 3 and sum(f.episodes for f in written) == 40
    for f in written:
        assert errors(check_file(f.path)) == []
    assert main(["check", *map(str, sorted(tmp_path.glob("*.json.gz")))]) == 0


@pytest.mark.slow
def test_all_real_recordings_import_and_who_is_who(tmp_path: Path) -> None:
    _installed()
    from hbm_data.overcooked import read_all_trials

    trials = read_all_trials()
    assert len(trials) == 76 and len({t.worker for t in trials}) == 17
    written = import_trials(trials, tmp_path)
    assert len(written) == 2 * 76 + 5
    assert sum(f.steps for f in written) == 2 * 2 * (46729 + 44373)
    for f in written:
        assert errors(check_file(f.path)) == [], f.path
    evidence = player_evidence(trials, permutations=500)
    assert evidence.index_means["interact_repeat"][2] >= 70  # player 0 < player 1 in ≥ 70/76
    assert evidence.same_worker_rate > 0.6 and evidence.permutation_p < 0.01
    json.dumps(evidence.index_means)
