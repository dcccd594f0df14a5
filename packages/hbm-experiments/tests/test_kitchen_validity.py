"""The kitchens' known-answer check (`hbm_experiments.kitchen_validity`): players cut into
segments with their partner's keys, random play told apart from a player who holds keys, the
verdict rules of the validity suite, and the shipped verdicts read by the reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_experiments import kitchen_validity as kv
from hbm_experiments.comparisons import metric_validity
from hbm_experiments.humanlike import metric_validity as suite_validity
from test_real_players import T0, trial

ENV = "overcooked-cramped_room"


def test_players_are_cut_into_segments_with_their_partners_keys() -> None:
    trials = [trial(1, "train", T0, length=240), trial(2, "test", T0 + 6e5, length=240)]
    players = kv.kitchen_players(trials, segments=20)
    assert [(p.trial, p.player) for p in players] == [
        ("w01-cramped_room", 0), ("w01-cramped_room", 1),
        ("w02-cramped_room", 0), ("w02-cramped_room", 1),
    ]  # fmt: skip
    p0, p1 = players[:2]
    assert len(p0.segments) == 20 and sum(len(s.actions) for s in p0.segments) == 240
    for a, b in zip(p0.segments, p1.segments, strict=True):
        np.testing.assert_array_equal(a.partner_actions, b.actions)
        np.testing.assert_array_equal(b.partner_actions, a.actions)


@pytest.mark.slow  # plays the kitchen and runs the permutation tests: 15-30 s here
def test_random_play_is_told_apart_from_a_player_who_holds_keys() -> None:
    """Player 1 of these trials holds each key four ticks; uniform random keys switch on five
    ticks of six: the switch test must tell them apart, and the player's own segments must
    not look like random in that respect."""
    trials = [trial(1, "train", T0, length=240), trial(2, "test", T0 + 6e5, length=240)]
    players = kv.kitchen_players(trials, segments=20)
    row = kv.check_player(players[1], [players[3]], permutations=99, discriminator=False)
    assert row["player"] == "w01-cramped_room-p1" and len(row["other"]) == 1
    rnd, own = row["random"]["switch_rate_ratio"], row["own"]["switch_rate_ratio"]
    assert rnd["p"] is not None and rnd["p"] < 0.05 and rnd["value"] > 2.0
    assert own["value"] is not None and 0.5 < own["value"] < 2.0
    assert row["random"]["discriminator_auc"]["value"] is None  # skipped as asked
    assert abs(row["random"]["action_accuracy"]["value"] - 1 / 6) < 0.15


def _row(own_p: float, random_p: float, acc: tuple[float, float, float]) -> dict[str, Any]:
    def block(p: float, a: float) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {k: {"value": 0.3, "p": p} for k in kv.CHECKED}
        out["action_accuracy"] = {"value": a, "p": None}
        out["combined"] = {"value": 1.0 if p < 0.05 else 0.0, "p": p}
        return out

    return {
        "own": block(own_p, acc[0]),
        "random": block(random_p, acc[1]),
        "other": [{"player": "x", **block(0.01, acc[2])}],
    }


def test_the_verdicts_follow_the_validity_suites_rules() -> None:
    calibrated = [_row(0.5, 0.01, (0.6, 0.2, 0.4)) for _ in range(40)]
    table = {"cramped_room": kv.tally(calibrated)}
    row = table["cramped_room"]["hold_duration_w1"]
    assert row["null_fpr"] == 0.0 and row["random_detection"] == 1.0 and row["null_n"] == 40
    assert row["other_detection"] == 1.0
    verdicts = kv.kitchen_verdicts(table)[ENV]
    assert all(v["ok"] for v in verdicts.values()), verdicts
    # a null that rejects in 10 of 40 players, and random play missed by the accuracy
    loose = [_row(0.01 if i < 10 else 0.5, 0.01, (0.2, 0.3, 0.4)) for i in range(40)]
    verdicts = kv.kitchen_verdicts({"cramped_room": kv.tally(loose)})[ENV]
    assert not verdicts["hold_duration_w1"]["ok"]
    assert "25%" in verdicts["hold_duration_w1"]["reason"]
    assert "random play told apart in 0%" in verdicts["action_accuracy"]["reason"]


def test_the_reports_read_the_kitchens_verdicts(tmp_path: Path, monkeypatch: Any) -> None:
    shipped = {"verdicts": {ENV: {"hold_duration_w1": {"ok": True, "reason": None},
                                  "state_jsd": {"ok": False, "reason": "too loose"}}}}  # fmt: skip
    path = tmp_path / "kitchen_validity.json"
    path.write_text(json.dumps(shipped))
    monkeypatch.setattr(kv, "KITCHEN_VALIDITY_FILE", path)
    kv._shipped.cache_clear()
    try:
        assert metric_validity(ENV, "hold_duration_w1") == (True, "")
        assert metric_validity(ENV, "state_jsd") == (False, "too loose")
        ok, why = metric_validity(ENV, "session_return_spearman")
        assert not ok and "not checked by the kitchens" in why
        assert kv.kitchen_validity("cartpole", "state_jsd") is None
        assert metric_validity("cartpole", "state_jsd") == (
            suite_validity("cartpole", "state_jsd")[0],
            suite_validity("cartpole", "state_jsd")[1] or "",
        )  # the simulated games keep the validity suite's verdicts
    finally:
        kv._shipped.cache_clear()


def test_the_shipped_verdicts_cover_every_kitchen_and_checked_metric() -> None:
    shipped = json.loads(kv.KITCHEN_VALIDITY_FILE.read_text())
    kitchens = ("asymmetric_advantages", "coordination_ring", "cramped_room", "random0",
                "random3")  # fmt: skip
    assert set(shipped["verdicts"]) == {f"overcooked-{k}" for k in kitchens}
    for verdicts in shipped["verdicts"].values():
        assert set(verdicts) == set(kv.CHECKED)
        assert all(v["ok"] or v["reason"] for v in verdicts.values())


@pytest.mark.slow  # reads the recordings (about a minute) and checks two players per kitchen
@pytest.mark.usefixtures("overcooked_recordings")
def test_the_check_on_real_players(tmp_path: Path) -> None:
    from hbm_experiments.cli import main

    out = tmp_path / "kitchens.json"
    assert main(["validate-kitchens", "--layout", "cramped_room", "--max-players", "2",
                 "--permutations", "99", "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    rows = result["rows"]["cramped_room"]
    assert len(rows) == 2
    for row in rows:  # random keys beside a real partner never hold keys like a person
        assert row["random"]["switch_rate_ratio"]["p"] < 0.05
        assert row["random"]["action_accuracy"]["value"] < row["own"]["action_accuracy"]["value"]
