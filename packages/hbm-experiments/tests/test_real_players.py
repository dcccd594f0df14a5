"""Real people's recordings (the Overcooked kitchens, recordings only) on small synthetic trials
of the same format: the study's own holdout, game-trained methods refused, and one report with
the teacher-forced imitation of each player between the person floor and the random ceiling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_data.overcooked import Trial, import_trials
from hbm_experiments import DataPreprocessingTask, make_experiment, run_experiments
from hbm_experiments.offline_humanlike import offline_block
from hbm_experiments.report import comparison_rows, make_report
from hbm_experiments.source_split import RecordedSplitError, recorded_split
from hbm_experiments.status import find_experiments

ENV = "overcooked-cramped_room"
T0 = 1_557_859_000_000.0  # ms since 1970: an evening in May 2019


def _state(tick: int) -> dict[str, Any]:
    """A cramped_room state that changes every tick (players walk, a soup cooks)."""
    onions = min(3, tick // 3)
    objects: dict[str, Any] = {}
    if onions:
        cooked = max(0, tick - 9)
        objects["2,0"] = {"name": "soup", "position": [2, 0], "state": ["onion", onions, cooked]}
    p0: dict[str, Any] = {"position": [1 + tick % 3, 2], "orientation": [0, -1]}
    if tick % 2:
        p0["held_object"] = {"name": "onion", "position": p0["position"]}
    p1 = {"position": [3, 1], "orientation": [1, 0] if tick % 2 else [-1, 0]}
    return {"players": [p0, p1], "objects": objects, "order_list": ["onion"],
            "pot_explosion": False}  # fmt: skip


def trial(worker: int, split: str, start_ms: float, length: int = 60) -> Trial:
    """A synthetic trial of one pair; each player presses keys in their own seeded way."""
    states = tuple(_state(t) for t in range(length + 1))
    rng = np.random.default_rng(worker)
    acts = np.stack([rng.integers(0, 6, length), np.repeat(rng.integers(0, 6, length // 4), 4)])
    rewards = np.zeros(length)
    times = start_ms + 150.0 * np.arange(length)
    return Trial(split, "run-1", worker, "cramped_room", states[:-1], states[1:],
                 acts.T.astype(np.int64), rewards, times)  # fmt: skip


@pytest.fixture
def kitchen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two workers' trials (worker 1 in the study's train split, worker 2 in test)."""
    folder = tmp_path / "data"
    trials = [trial(1, "train", T0), trial(2, "test", T0 + 600_000)]
    import_trials(trials, folder, segments=4)
    monkeypatch.setenv("HBM_DATA_DIR", str(folder))
    return folder


def test_source_holdout_keeps_the_study_split(kitchen: Path, tmp_path: Path) -> None:
    common = {"dataset": ENV, "subject": "oc-all", "data_dir": str(kitchen),
              "validation_pct": 0.0, "infra": {"folder": tmp_path / "cache"}}  # fmt: skip
    data = DataPreprocessingTask(**common, holdout="source").load()  # type: ignore[arg-type]
    meta = data.metadata
    # the pooled file: 2 trials x 2 players x 4 segments in time order; worker 2's are test
    assert [e.index for e in meta.train_episodes] == list(range(8))
    assert [e.index for e in meta.test_episodes] == list(range(8, 16))
    assert len(data.test_act) == 2 * 60 and len(data.train_act) == 2 * 60
    session = DataPreprocessingTask(**common).load().metadata  # type: ignore[arg-type]
    assert [e.index for e in session.test_episodes] != list(range(8, 16))  # per session
    # validation comes from the training episodes only
    val = DataPreprocessingTask(**common | {"validation_pct": 0.3}, holdout="source").load()  # type: ignore[arg-type]
    assert {e.index for e in val.val_episodes} <= set(range(8))
    assert [e.index for e in val.metadata.test_episodes] == list(range(8, 16))


def test_source_holdout_refused_without_a_usable_recorded_split(
    kitchen: Path, tmp_path: Path, shared_data_dir: Path
) -> None:
    folder = {"infra": {"folder": tmp_path / "cache"}}
    with pytest.raises(ValueError, match=r"'oc-w02-p1'.*meta.json\): every one.*nothing to train"):
        DataPreprocessingTask(dataset=ENV, subject="oc-w02-p1", data_dir=str(kitchen),
                              holdout="source", **folder)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ValueError, match=r"'sim01'.*records no train/test split"):
        DataPreprocessingTask(subject="sim01", data_dir=str(shared_data_dir), holdout="source",
                              **folder)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ValueError, match="oc-w02-p1"):  # the experiment config says it too
        config = {"dataset": ENV, "subject": "oc-w02-p1", "method": "ga_feedforward",
                  "data": {"holdout": "source"}, "training": {"max_generations": 1}}  # fmt: skip
        make_experiment(config)


def test_methods_that_play_the_game_are_refused_on_recordings(kitchen: Path) -> None:
    for method in ("ga_env_feedforward", "ga_adversarial_feedforward"):
        with pytest.raises(ValueError, match="exists only as recordings"):
            make_experiment({"dataset": ENV, "subject": "oc-w01-p0", "method": method,
                             "training": {"max_generations": 1}})  # fmt: skip


@pytest.mark.slow  # two real (tiny) experiments and the report's plots: about 30 s
def test_report_of_recordings_only_players(
    kitchen: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A game hbm cannot play (the kitchens without hbm-ne's Overcooked): no returns anywhere,
    and the report still has each learner's teacher-forced imitation of each person."""
    import hbm_experiments.overcooked_play as play

    monkeypatch.setattr(play, "play_recorded_segments", lambda *a, **k: None)
    tiny = {"dataset": ENV, "num_threads": 1, "training": {"max_generations": 2, "eval_every": 1},
            "method": "ga_feedforward", "optimizer": {"population_size": 4}}  # fmt: skip
    run_experiments([make_experiment(tiny | {"subject": s}) for s in ("oc-w01-p0", "oc-w02-p1")])
    records = find_experiments(load_results=True)
    rows = comparison_rows(records)
    assert [(r["subject"], r["method"]) for r in rows] == [
        ("oc-w01-p0", "ga_feedforward"), ("oc-w01-p0", "person"), ("oc-w01-p0", "random"),
        ("oc-w02-p1", "ga_feedforward"), ("oc-w02-p1", "person"), ("oc-w02-p1", "random"),
    ]  # fmt: skip
    model, person, random = rows[:3]
    assert model["play"] == "teacher-forced (no game)" and model["return Δ"] == "-"
    assert model["test CE"] != "-" and model["action acc"].replace("✗", "").strip() != "-"
    for row in (model, person, random):
        for column in ("action acc", "hold W1", "switch ratio"):
            assert row[column] not in (None, "-"), (row["method"], column)
    # uniform guesses match 1 in 6 of the person's actions (15 held-out steps: 3 sd = 0.29)
    assert abs(float(random["action acc"].split()[0]) - 1 / 6) < 0.29
    assert person["state JSD"] is None and model["state JSD"] in ("-", "- ✗")  # needs play
    text, files = make_report(records, tmp_path / "report")
    assert "ga_feedforward" in text
    assert "teacher-forced" in (tmp_path / "report" / "report.md").read_text()
    assert files


def test_recorded_split_names_what_is_wrong() -> None:
    side = {"source_split": ["train", "test"], "episodes": [{"split": "train"}, {"split": "test"}]}
    assert recorded_split(side, 2, subject="p", path="f.json") == ["train", "test"]
    with pytest.raises(RecordedSplitError, match="3 episodes"):
        recorded_split(side, 3, subject="p", path="f.json")
    with pytest.raises(RecordedSplitError, match="disagree"):
        recorded_split(side | {"source_split": ["test", "train"]}, 2, subject="p", path="f.json")
    with pytest.raises(RecordedSplitError, match="'valid'"):
        recorded_split({"source_split": ["train", "valid"]}, 2, subject="p", path="f.json")


def test_offline_block_known_answers() -> None:
    """The person's own actions score perfectly; uniform guesses match 1 in 6, hold keys for
    ~1.2 frames against the person's 4 and switch more often."""
    rng = np.random.default_rng(0)
    person = np.repeat(rng.integers(0, 6, 500), 4)  # holds of 4 frames (a few merge)
    lengths = [1000, 1000]
    same = offline_block(person, person, lengths, reason="r")
    assert same["action_accuracy"] == 1.0 and same["hold_duration_w1"] == 0.0
    assert same["switch_rate_ratio"] == 1.0 and same["protocol"] == "teacher-forced"
    guess = offline_block(rng.integers(0, 6, 2000), person, lengths, reason="r")
    assert abs(guess["action_accuracy"] - 1 / 6) < 3 * np.sqrt(5 / 36 / 2000)
    assert guess["hold_duration_w1"] > 2.0 and guess["switch_rate_ratio"] > 3.0
    with pytest.raises(ValueError, match="same held-out steps"):
        offline_block(person[:10], person, lengths, reason="r")


@pytest.mark.slow  # reads both pickles (about a minute)
@pytest.mark.usefixtures("overcooked_recordings")
def test_real_recordings_keep_the_study_split_and_players_are_identified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hbm_data.overcooked import read_all_trials
    from hbm_experiments.identify_real import identify_players, read_segments

    trials = read_all_trials()
    import_trials(trials, tmp_path / "data")
    monkeypatch.setenv("HBM_DATA_DIR", str(tmp_path / "data"))
    common = {"dataset": ENV, "subject": "oc-all", "data_dir": str(tmp_path / "data"),
              "infra": {"folder": tmp_path / "cache"}}  # fmt: skip
    meta = DataPreprocessingTask(**common, holdout="source").load().metadata  # type: ignore[arg-type]
    kitchen = [t for t in trials if t.layout == "cramped_room"]
    test_trials = sum(t.split == "test" for t in kitchen)
    assert meta.n_test == 2 * 10 * test_trials  # both players, ten segments per trial
    assert sum(e.length for e in meta.test_episodes) == 2 * sum(
        t.length for t in kitchen if t.split == "test"
    )
    (row,) = identify_players(read_segments(tmp_path / "data"), ks=[5], permutations=19)
    assert row.n_players == 32 and row.permutation_p == pytest.approx(1 / 20)
    assert row.low > row.index_only  # the person, beyond the player index
