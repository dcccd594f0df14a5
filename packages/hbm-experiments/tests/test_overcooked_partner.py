"""Who plays beside the model in the Overcooked kitchens (`training.behaviour_partner`): the
recorded partner (open loop, the default, out of the uid) or a behaviour-cloned human proxy
(closed loop); the result and the report say which. And the rollout block's references: the
person's own play (floor) and uniform random play beside the same partner (ceiling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hbm_data.overcooked import import_trials
from hbm_experiments import make_experiment, tasks
from hbm_experiments.evaluation import compare_returns, evaluate_policy
from hbm_experiments.html_report import METRIC_HELP
from hbm_experiments.overcooked_play import (
    HUMAN_PROXY_PARTNER,
    PARTNER,
    PARTNERS,
    overcooked_references,
    partner_name,
    play_recorded_segments,
    recorded_segments,
)
from hbm_experiments.report import comparison_rows
from hbm_experiments.status import ExperimentRecord
from test_overcooked_play import ENV, STAY, T0, Replay, load, play_trial

GA = {"method": "ga_feedforward", "training": {"max_generations": 1}}


@pytest.fixture
def kitchen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    import_trials([play_trial(1, "train", T0), play_trial(2, "test", T0 + 600_000)], folder,
                  segments=4)  # fmt: skip
    monkeypatch.setenv("HBM_DATA_DIR", str(folder))
    return folder


def test_the_recorded_partner_is_the_default_and_stays_out_of_the_uid(kitchen: Path) -> None:
    plain = make_experiment(GA | {"dataset": ENV, "subject": "oc-w01-p0"})
    assert plain.training.behaviour_partner == "recorded"
    same = GA | {"training": {"max_generations": 1, "behaviour_partner": "recorded"}}
    said = make_experiment(same | {"dataset": ENV, "subject": "oc-w01-p0"})
    assert said.infra.uid() == plain.infra.uid()  # cached results keep their names
    proxy = GA | {"training": {"max_generations": 1, "behaviour_partner": "proxy"}}
    other = make_experiment(proxy | {"dataset": ENV, "subject": "oc-w01-p0"})
    assert other.infra.uid() != plain.infra.uid()
    assert "behaviour_partner=proxy" in other.infra.uid()


def test_a_partner_is_refused_for_a_game_played_alone() -> None:
    proxy = {"max_generations": 1, "behaviour_partner": "proxy"}
    with pytest.raises(ValueError, match=r"behaviour_partner='proxy'.*two-player"):
        tasks.GAExperiment(method="ga_feedforward", training=proxy)
    with pytest.raises(ValueError, match="behaviour_partner"):
        robot = {"max_generations": 1, "behaviour_partner": "robot"}
        tasks.GAExperiment(method="ga_feedforward", training=robot)


@pytest.mark.slow  # clones the human proxy (20 epochs of Adam): about 20 s
def test_the_proxy_partner_plays_closed_loop_and_the_result_says_so(kitchen: Path) -> None:
    data = load(kitchen, "oc-w02-p0")
    segments = recorded_segments(data)
    own = Replay([s.actions for s in segments])
    gen = torch.Generator().manual_seed(0)
    played = play_recorded_segments(own, data, generator=gen, humanlike=False, partner="proxy")
    assert played is not None and played["partner"] == HUMAN_PROXY_PARTNER
    assert partner_name(played) == "proxy"
    assert played["partner_data"].startswith("sha256:")  # what the proxy was cloned from
    assert played["human_returns"] == [s.score for s in segments]


def test_the_partner_is_said_and_a_missing_one_is_an_error(kitchen: Path) -> None:
    data = load(kitchen, "oc-w02-p0")
    segments = recorded_segments(data)
    own = Replay([s.actions for s in segments])
    gen = torch.Generator().manual_seed(0)
    recorded = play_recorded_segments(own, data, generator=gen, humanlike=False)
    assert recorded is not None and recorded["partner"] == PARTNER
    assert recorded["model_returns"] == [s.score for s in segments]  # the recorded game
    assert "partner_data" not in recorded
    assert partner_name(recorded) == "recorded" and partner_name({"skipped": "no game"}) is None
    with pytest.raises(ValueError, match=r"'robot'.*recorded, proxy"):
        play_recorded_segments(own, data, generator=gen, partner="robot")
    # the proxy needs the kitchen's pooled file: asked for, its absence is an error, not a skip
    for f in kitchen.glob("oc-all_*"):
        f.unlink()
    with pytest.raises(FileNotFoundError, match="import-overcooked"):
        play_recorded_segments(own, data, generator=gen, humanlike=False, partner="proxy")


def _record(tmp: Path, dataset: str, subject: str, partner: str | None) -> ExperimentRecord:
    rng = np.random.default_rng(0)
    behaviour: dict[str, Any] = compare_returns(rng.normal(5, 1, 6), rng.normal(6, 1, 6))
    config: dict[str, Any] = {**GA, "dataset": dataset, "subject": subject, "seed": 0}
    metrics = {"test_ce": 1.0, "test_f1": 0.5}
    result: dict[str, Any] = {
        "metrics": metrics,
        "behaviour": behaviour,
        "train_time": 1.0,
        "num_params": 10,
    }
    if partner is not None:  # a kitchen: the teacher-forced block, returns from play
        behaviour["partner"] = PARTNERS[partner]
        config["training"] = {"max_generations": 1, "behaviour_partner": partner}
        result["humanlike"] = {"protocol": "teacher-forced", "action_accuracy": 0.4}
    folder = tmp / f"{dataset}-{subject}-{partner}"
    folder.mkdir(parents=True)
    return ExperimentRecord(folder=folder, task="GAExperiment", version="4", config=config,
                            status="completed", result=result)  # fmt: skip


def test_the_report_has_a_partner_column_for_the_kitchens(tmp_path: Path) -> None:
    records = [
        _record(tmp_path, ENV, "oc-w01-p0", "recorded"),
        _record(tmp_path, ENV, "oc-w01-p0", "proxy"),
        _record(tmp_path, "cartpole", "sim01", None),
    ]
    rows = {(r["dataset"], r.get("partner")): r for r in comparison_rows(records)}
    assert set(rows) == {(ENV, "recorded"), (ENV, "proxy"), ("cartpole", None)}
    # the humanlike cells of a kitchen's row are teacher-forced, its returns played: said
    assert rows[(ENV, "proxy")]["play"] == "teacher-forced (returns: played)"
    assert "play" not in rows[("cartpole", None)]
    assert "partner" in METRIC_HELP and "play" in METRIC_HELP  # the HTML headers say how


@pytest.mark.slow  # three humanlike blocks with the discriminator: about 40 s
def test_the_rollout_block_has_references_by_its_own_protocol(kitchen: Path) -> None:
    data = load(kitchen, "oc-w02-p0")
    segments = recorded_segments(data)
    e = len(segments)
    policy = Replay([np.full_like(s.actions, STAY) for s in segments] * 2)
    out = evaluate_policy(policy, data, seed=3, repeats=2)["behaviour"]
    block, refs = out["humanlike"], out["humanlike_references"]
    assert set(refs) == {"person", "random"}
    for ref in refs.values():  # a model row's sample sizes and pairing
        assert ref["repeats"] == 2 and ref["episodes"] == 2 * e == block["episodes"]
        assert ref["paired_seeds"] == e == block["paired_seeds"]
    assert refs["random"]["partner"] == block["partner"] == PARTNER
    # known answers: a policy that only waits switches keys never, the person and random do;
    # uniform guesses match about 1 in 6 of the person's actions
    assert block["switch_rate_ratio"] == 0.0
    assert refs["person"]["switch_rate_ratio"] > 0.3 and refs["random"]["switch_rate_ratio"] > 0.3
    assert abs(refs["random"]["action_accuracy"] - 1 / 6) < 0.2
    again = overcooked_references(data, seed=3, repeats=2, segments=segments)
    assert again["random"]["state_jsd"] == refs["random"]["state_jsd"]  # reproducible


@pytest.mark.slow  # a tiny experiment, its references and the proxy's cloning: about a minute
def test_an_experiment_with_the_proxy_partner_says_so_in_its_result_and_report(
    kitchen: Path,
) -> None:
    from hbm_experiments import run_experiments
    from hbm_experiments.status import find_experiments

    config = {"dataset": ENV, "subject": "oc-w02-p0", "num_threads": 1,
              "method": "ga_feedforward", "optimizer": {"population_size": 4},
              "training": {"max_generations": 1, "eval_every": 1, "behaviour_repeats": 1,
                           "behaviour_partner": "proxy"}}  # fmt: skip
    (result,) = run_experiments([make_experiment(config)])
    assert result["behaviour"]["partner"] == HUMAN_PROXY_PARTNER
    assert result["behaviour"]["humanlike_references"]["random"]["partner"] == HUMAN_PROXY_PARTNER
    rows = comparison_rows(find_experiments(load_results=True))
    assert rows[0]["partner"] == "proxy"
