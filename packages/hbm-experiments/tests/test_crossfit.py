"""Cross-fitted evaluation: K fold experiments, each tested on the episodes it did not train
on, pooled over all the person's episodes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from hbm_experiments.configs import ConfigError, DataConfig
from hbm_experiments.crossfit import (
    FoldPlay,
    fold_experiments,
    pool_folds,
    pool_plays,
    pooled_trajectories,
)
from hbm_experiments.crossfit import run as crossfit_run
from hbm_experiments.humanlike import (
    HumanlikeTarget,
    Trajectories,
    compare_play,
    hold_duration_w1,
    predict_actions,
    state_jsd,
    switch_rate_ratio,
)
from hbm_experiments.humanlike.metrics import shift_pairs
from hbm_experiments.sweeps import run_experiments
from hbm_experiments.tasks import make_experiment, save_experiment_config

K = 3
TOL = 1e-9  # pooled values against the direct computation: the same sums in another order


def _base(**data: object) -> object:
    return make_experiment(
        {
            "method": "adam_feedforward",
            "dataset": "cartpole",
            "subject": "sim01",
            "training": {"max_epochs": 1, "behaviour_repeats": 2},
            "model": {"hidden_size": 4},
            "data": dict(data),
        }
    )


def test_fold_data_partition_the_episodes_and_validation_comes_from_training() -> None:
    exps = fold_experiments(_base(), K)
    assert [e.data.crossfit_fold for e in exps] == list(range(K))
    assert len({e.infra.uid() for e in exps}) == K  # each fold its own cache entry
    loaded = [e.data_task().load() for e in exps]
    tests = [{e.index for e in d.metadata.test_episodes} for d in loaded]
    total = sum(len(d.metadata.train_episodes) + len(d.val_episodes) for d in loaded[:1])
    total += len(tests[0])
    assert sum(len(t) for t in tests) == total  # every episode tested exactly once
    assert set().union(*tests) == set(range(total))
    for d, test in zip(loaded, tests, strict=True):
        train = {e.index for e in d.metadata.train_episodes}
        val = {e.index for e in d.val_episodes}
        assert not (train & test) and not (val & test) and not (train & val)
        assert len(train) + len(val) + len(test) == total
        # about 1/K of every session: each session's count is the floor or ceiling of n / K
        for s in {e.session for e in (*d.metadata.train_episodes, *d.val_episodes)}:
            n = sum(1 for dd in loaded for e in dd.metadata.test_episodes if e.session == s)
            here = sum(1 for e in d.metadata.test_episodes if e.session == s)
            assert here in (n // K, -(-n // K))


def test_the_default_config_keeps_its_uid_and_bad_fold_settings_are_refused() -> None:
    base = _base()
    assert "crossfit" not in base.infra.uid()  # unset fields leave existing caches alone
    with pytest.raises(ConfigError, match="set both or neither"):
        _base(crossfit_folds=3)
    with pytest.raises(ConfigError, match=r"crossfit_fold=3: expected 0..2"):
        _base(crossfit_folds=3, crossfit_fold=3)
    with pytest.raises(ConfigError, match="greater than or equal to 2"):
        _base(crossfit_folds=1, crossfit_fold=0)
    with pytest.raises(ConfigError, match="fold count"):
        fold_experiments(base)
    with pytest.raises(pydantic.ValidationError, match=r"use data\.holdout: session"):
        DataConfig(holdout="source", crossfit_folds=2, crossfit_fold=0)
    with pytest.raises(ValueError, match=r"sim01.*crossfit_folds=99.*a fold would test nothing"):
        fold_experiments(base, 99)[0].data_task().load()


def test_hbm_crossfit_is_a_command_with_a_fold_count() -> None:
    from hbm_experiments.cli import build_parser

    args = build_parser().parse_args(["crossfit", "exp.yaml", "--folds", "4", "--json"])
    assert args.folds == 4 and args.json and args.handler is crossfit_run


def _plays() -> tuple[list[FoldPlay], int]:
    """Per fold: 6 of its held-out episodes as the target, with a reaction shift of its own
    (set, not chosen); 2 of the person's training episodes per target episode standing in for
    rollouts of its seeds, random action predictions; and the pooled shifted hits counted
    directly. No game is played: the pooling's arithmetic only (the slow test plays)."""
    plays, hits = [], 0
    rng = np.random.default_rng(0)
    for e in fold_experiments(_base(), K):
        data, k = e.data_task().load(), e.data.crossfit_fold
        test = Trajectories.from_human(data, "test").subset(np.arange(6))
        target = HumanlikeTarget(test, "cartpole", shift=k + 1, permutations=49)
        train = Trajectories.from_human(data, "train")
        r = train.subset(rng.choice(len(train), 12, replace=False))
        tiled = (np.tile(test.sessions, 2), np.tile(test.seeds, 2))
        rollouts = Trajectories(r.obs, r.actions, r.returns, *tiled)
        pred = rng.integers(0, 2, size=len(target.actions))
        block = target.score(rollouts, pred, discriminator=False)
        plays.append(FoldPlay(target, rollouts, block, 2))
        src, dst = shift_pairs(test.lengths, k + 1)
        hits += int(np.count_nonzero(pred[src] == target.actions[dst]))
    return plays, hits


def test_pooling_scores_all_episodes_at_once_paired_by_seed() -> None:
    plays, shifted_hits = _plays()
    block = pool_plays(plays, seed=0, discriminator=False)  # the slow test covers it
    target, cand = pooled_trajectories(plays)
    total = sum(len(p.target.trajectories) for p in plays)
    assert len(target) == total and block["person_episodes"] == total
    assert block["episodes"] == 2 * total and block["repeats"] == 2
    assert np.array_equal(cand.seeds, np.tile(target.seeds, 2))  # rollout r of e at r·E + e
    assert block["target_episodes"]["hold_duration_w1"] == total
    assert block["target_episodes"]["discriminator_auc"] == 0  # not computed here
    direct = compare_play(target, cand, "cartpole", seed=0, permutations=49, discriminator=False)
    for key in ("hold_duration_w1", "switch_rate_ratio", "state_jsd", "return_diff",
                "hold_duration_w1_p", "state_jsd_p", "combined_z", "combined_p"):  # fmt: skip
        assert block[key] == pytest.approx(direct[key], abs=TOL), key
    assert block["hold_duration_w1"] == pytest.approx(
        hold_duration_w1(cand.actions, target.actions), abs=TOL
    )
    assert block["state_jsd"] == pytest.approx(state_jsd(cand.obs, target.obs, "cartpole"), abs=TOL)
    # accuracies: each fold's steps, pooled over all steps; shifted: over all shifted pairs,
    # each fold with its own shift
    steps = [int(p.target.lengths.sum()) for p in plays]
    hits = sum(p.block["action_accuracy"] * n for p, n in zip(plays, steps, strict=True))
    assert block["action_accuracy"] == pytest.approx(hits / sum(steps), abs=TOL)
    pairs = sum(int(p.target.lengths.sum() - len(p.target.lengths) * (i + 1))
                for i, p in enumerate(plays))  # fmt: skip
    assert block["action_accuracy_shift"] == pytest.approx(shifted_hits / pairs, abs=TOL)
    assert block["shift_frames"] == [1, 2, 3]


@pytest.mark.slow
def test_crossfit_end_to_end_pools_what_the_fold_experiments_recorded(tmp_path: Path) -> None:
    from hbm_experiments.crossfit import replay_fold

    exps = fold_experiments(_base(), K)
    results = run_experiments(exps)
    out = pool_folds(exps, results)
    n_all = len(exps[0].data_task().load().metadata.train_episodes)
    d = results[0]["data"]
    total = d["n_train_episodes"] + d["n_validation_episodes"] + d["n_test_episodes"]
    assert n_all < total and out["episodes"] == total
    assert out["fold_episodes"] == [r["data"]["n_test_episodes"] for r in results]
    assert sum(out["fold_episodes"]) == total
    block = out["humanlike"]
    assert block["person_episodes"] == total and block["episodes"] == 2 * total
    assert out["episodes_used"]["test_ce"] == total
    assert out["episodes_used"]["hold_duration_w1"] == total
    # the person and random rows at the pooled sample sizes, the two ends of every metric
    refs = out["humanlike_references"]
    for name in ("person", "random"):
        assert refs[name]["person_episodes"] == total and refs[name]["episodes"] == 2 * total
    assert refs["person"]["hold_duration_w1"] < refs["random"]["hold_duration_w1"]
    assert refs["person"]["discriminator_auc"] < refs["random"]["discriminator_auc"]

    plays = [replay_fold(e, r) for e, r in zip(exps, results, strict=True)]
    target, cand = pooled_trajectories(plays)
    # the same block as scoring all the episodes at once (one code path, compare_play)
    direct = compare_play(target, cand, "cartpole", seed=exps[0].seed)
    for key in ("hold_duration_w1", "switch_rate_ratio", "state_jsd", "discriminator_auc",
                "return_diff", "hold_duration_w1_p", "discriminator_p"):  # fmt: skip
        assert block[key] == pytest.approx(direct[key], abs=TOL), key
    # and the metrics' own functions on the concatenated episodes
    assert block["hold_duration_w1"] == pytest.approx(
        hold_duration_w1(cand.actions, target.actions), abs=TOL
    )
    assert block["switch_rate_ratio"] == pytest.approx(
        switch_rate_ratio(cand.actions, target.actions, 15.0), abs=TOL
    )
    assert block["state_jsd"] == pytest.approx(state_jsd(cand.obs, target.obs, "cartpole"), abs=TOL)
    # rollout r of pooled episode e replays that episode's seed
    assert np.array_equal(cand.seeds, np.tile(target.seeds, 2))
    # accuracies: each fold's model on its own held-out steps, pooled over all steps
    from hbm_experiments.evaluation import load_model

    hits = steps = 0
    for e, r, p in zip(exps, results, plays, strict=True):
        data = e.data_task().load()
        policy = load_model(e.infra.uid_folder() / r["model_file"])
        pred = predict_actions(policy, data.test_obs, data.metadata.test_episode_lengths,
                               device=torch.device("cpu"))[0]  # fmt: skip
        hits += int(np.count_nonzero(pred == data.test_act))
        steps += len(data.test_act)
        assert isinstance(p.target, HumanlikeTarget)
    assert block["action_accuracy"] == pytest.approx(hits / steps, abs=TOL)
    # a replay that does not give back what the run recorded is refused, not pooled
    tampered = {**results[0], "humanlike": {**results[0]["humanlike"], "mean_return": -1.0}}
    with pytest.raises(RuntimeError, match="cannot be reproduced"):
        replay_fold(exps[0], tampered)
    # `hbm crossfit` on the same config: the cached folds, the same pooled numbers
    config = save_experiment_config(_base(), tmp_path / "exp.yaml")
    args = argparse.Namespace(config=config, overrides=[], folds=K, json=True, infra=[],
                              cluster=None, retry=False, force=False)  # fmt: skip
    again = json.loads(crossfit_run(args))
    assert again["episodes_used"] == out["episodes_used"]
    for key in ("hold_duration_w1", "discriminator_auc", "combined_p", "action_accuracy_shift"):
        assert again["humanlike"][key] == pytest.approx(block[key], abs=TOL), key
    assert again["humanlike_references"] == out["humanlike_references"]
    text = crossfit_run(argparse.Namespace(**{**vars(args), "json": False}))
    assert f"{K} folds, {total} target episodes" in text
    assert f"({total} episodes)" in text.splitlines()[1]
    assert "model" in text and "person" in text and "random" in text
    from hbm_experiments.comparisons import metric_validity
    from hbm_experiments.humanlike import METRICS

    for key in METRICS:  # a metric the crossfit protocol has not validated is marked
        (line,) = [ln for ln in text.splitlines() if ln.startswith(f"  {key} ")]
        assert line.endswith("✗") == (not metric_validity("cartpole", key, "crossfit")[0]), line
    # kept beside the cache, where hbm report reads it: a row over every episode
    from hbm_experiments.report import make_report
    from hbm_experiments.status import find_experiments

    report, _ = make_report(find_experiments(load_results=True), tmp_path / "report")
    assert "cross-fitted (every episode of the person a target once)" in report
    md = (tmp_path / "report" / "report.md").read_text()
    section = md.split("## Cross-fitted evaluation", 1)[1]
    assert f"| adam_feedforward | no | {K} | 1 | {total} |" in section
    ce = sum(r["metrics"]["test_ce"] * r["data"]["n_test_steps"] for r in results) / steps
    assert out["metrics"]["test_ce"] == pytest.approx(ce, abs=TOL)
