"""The validation split (drawn per session from the training episodes, never from test), the
`max_samples` budget of every learner line, and choices that read validation only."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
from hbm_data.splits import holdout_count
from hbm_experiments import make_experiment
from hbm_experiments.configs import ConfigError
from hbm_experiments.data import (
    DataPreprocessingTask,
    SplitData,
    first_train_episodes,
    with_validation,
)
from hbm_experiments.results import VALIDATION_KEYS


def load(**kw: Any) -> SplitData:
    return DataPreprocessingTask(dataset="cartpole", subject="sim01", **kw).load()  # type: ignore[no-any-return]


def test_validation_is_drawn_per_session_from_the_training_episodes_never_test() -> None:
    none, data = load(validation_pct=0.0), load()
    meta, train0 = data.metadata, none.metadata.train_episodes
    test = {e.index for e in meta.test_episodes}
    train = {e.index for e in meta.train_episodes}
    val = {e.index for e in data.val_episodes}
    assert none.val_episodes == () and len(none.val_act) == 0
    # test is what it was without validation; validation and training share out its training
    assert [e.index for e in meta.test_episodes] == [e.index for e in none.metadata.test_episodes]
    assert np.array_equal(data.test_act, none.test_act)
    assert val and not val & test and not val & train
    assert val | train == {e.index for e in train0}
    # per session, the holdout's rule on that session's training episodes
    per_session = Counter(e.session for e in train0)
    assert Counter(e.session for e in data.val_episodes) == {
        s: holdout_count(n, 0.1) for s, n in per_session.items()
    }
    # the arrays are those episodes' steps, `start` into the new arrays
    rows = {e.index: e for e in train0}
    for split_obs, split_act, infos in (
        (data.val_obs, data.val_act, data.val_episodes),
        (data.train_obs, data.train_act, meta.train_episodes),
    ):
        assert sum(e.length for e in infos) == len(split_act) == len(split_obs)
        for e in infos:
            old = rows[e.index]
            new = slice(e.start, e.start + e.length)
            assert np.array_equal(split_obs[new], none.train_obs[old.start : old.start + e.length])
            assert np.array_equal(split_act[new], none.train_act[old.start : old.start + e.length])
    # the same seed draws the same episodes; another seed others (with the same test split)
    assert [e.index for e in load().val_episodes] == [e.index for e in data.val_episodes]
    other = load(split_seed=7)
    assert [e.index for e in other.val_episodes] != [e.index for e in data.val_episodes]
    assert not {e.index for e in other.val_episodes} & {
        e.index for e in other.metadata.test_episodes
    }


def test_a_data_size_sweep_keeps_its_validation_episodes() -> None:
    full, small = load(), load(max_train_episodes=5)
    assert small.metadata.n_train == 5
    assert [e.index for e in small.val_episodes] == [e.index for e in full.val_episodes]


def test_no_training_episode_left_is_refused_naming_the_fields() -> None:
    one = first_train_episodes(load(validation_pct=0.0), 1)  # one training episode
    with pytest.raises(ValueError, match=r"holdout_pct=0\.1 and data\.validation_pct=0\.2") as exc:
        with_validation(one, 0.2, 42)
    assert "sim01_data_cartpole" in str(exc.value) and "no training episodes" in str(exc.value)
    assert with_validation(one, 0.0, 42).metadata.n_train == 1


def test_validation_pct_and_max_samples_are_config_fields() -> None:
    base = {"method": "adam_feedforward", "training": {"max_samples": 1000}}
    exp = make_experiment(base)  # max_samples alone is a budget
    assert exp.data.validation_pct == 0.1
    assert make_experiment({**base, "data": {"validation_pct": 0.1}}).infra.uid() == exp.infra.uid()
    assert make_experiment({**base, "data": {"validation_pct": 0.2}}).infra.uid() != exp.infra.uid()
    for method in ("ga_feedforward", "ga_dynamic", "es_env_feedforward"):
        assert make_experiment({**base, "method": method}).training.max_samples == 1000
    for bad in ({"data": {"validation_pct": 1.0}}, {"training": {"max_samples": 0}}):
        with pytest.raises(ConfigError, match=r"validation_pct|max_samples"):
            make_experiment({**base, **bad})
    assert exp.data_task().validation_pct == 0.1


@pytest.mark.parametrize(
    "method",
    ["ga_feedforward", "es_reservoir", "cmaes_trainable", "sgd_recurrent", "adam_feedforward",
     "ga_dynamic"],
)  # fmt: skip
def test_every_supervised_line_gets_validation_and_max_samples(method: str) -> None:
    exp = make_experiment({"method": method, "training": {"max_samples": 500}})
    data = exp.data_task().load()
    setup = exp.build(data)
    assert setup["max_samples"] == 500
    val = setup["validation_data"]
    assert len(val.actions) == len(data.val_act) > 0
    if method.endswith("feedforward"):
        assert val.episode_lengths is None
    else:
        assert list(val.episode_lengths) == data.val_episode_lengths


@pytest.mark.parametrize("method", ["ga_env_feedforward", "es_adversarial_recurrent"])
def test_lines_trained_on_something_else_report_validation_too(method: str) -> None:
    exp = make_experiment({"method": method, "training": {"max_samples": 500}})
    setup = exp.build()
    assert setup["max_samples"] == 500
    row = setup["eval_fn"](setup["population"].params[0], 0)
    assert set(VALIDATION_KEYS) | {"test_ce", "test_f1"} <= set(row)
    assert row["val_loss"] != row["test_ce"]


def _train(method: str, data: Any, budget: int, **training: Any) -> Any:
    """The experiment's training (`build()` into the library call, as `run()` does), without
    its rollouts: what it chose is the returned model."""
    import hbm_dl
    import hbm_ne

    config = {"method": method, "training": {"max_samples": budget, **training}}
    setup = make_experiment(config).build(data)
    if method.startswith(("sgd", "adam")):
        return hbm_dl.optimize_sgd(**setup)
    if method == "ga_dynamic":
        return hbm_ne.evolve_dynamic(**setup)
    return hbm_ne.train_supervised(**setup)


SMALL = {"ga_reservoir": {"batch_size": 4}, "adam_feedforward": {"eval_every": 40}}


@pytest.mark.parametrize("method", ["ga_reservoir", "adam_feedforward", "ga_dynamic"])
def test_poisoned_test_labels_change_nothing_that_is_chosen(method: str) -> None:
    data = load()
    poisoned = data._replace(test_act=np.random.default_rng(0).permutation(data.test_act))
    assert not np.array_equal(poisoned.test_act, data.test_act)
    runs = [_train(method, d, 2000, **SMALL.get(method, {})) for d in (data, poisoned)]

    def chosen(result: Any) -> tuple[list[torch.Tensor], list[Any]]:
        state = result.model.state_dict()  # a DynamicNet's graph settings: a dict, no tensor
        params = [v for v in state.values() if isinstance(v, torch.Tensor)]
        return params, [[r[k] for k in VALIDATION_KEYS] for r in result.history]

    (params, val), (p_params, p_val) = chosen(runs[0]), chosen(runs[1])
    assert all(torch.equal(a, b) for a, b in zip(params, p_params, strict=True))
    assert val == p_val and all(v is not None for row in val for v in row)
    # the poison reached what is reported
    assert [r["test_ce"] for r in runs[0].history] != [r["test_ce"] for r in runs[1].history]


def test_equal_budgets_ga_and_adam_see_the_same_samples_within_one_generation() -> None:
    data, budget = load(), 5000
    ga = _train("ga_feedforward", data, budget, batch_size=64, eval_every=50)
    adam = _train("adam_feedforward", data, budget, eval_every=500)
    for result, unit in ((ga, 32 * 64), (adam, 32)):  # a generation of 32 members; a batch
        assert result.stop_reason == "max_samples"
        assert budget <= result.samples_seen < budget + unit
        assert result.history[-1]["samples_seen"] == result.samples_seen
    assert abs(ga.samples_seen - adam.samples_seen) < 32 * 64


def test_the_result_says_its_budget_and_validation_metrics() -> None:
    budget = 600
    result = make_experiment(
        {"method": "adam_feedforward", "training": {"max_samples": budget, "eval_every": 100}}
    ).run()
    assert result["budget"] == {"max_samples": budget}
    assert result["stop_reason"] == "max_samples"
    assert budget <= result["samples_seen"] < budget + 32
    assert result["compute"]["forward_passes"] == result["samples_seen"]
    assert result["data"]["n_validation_episodes"] > 0 and result["data"]["n_validation_steps"] > 0
    # the final model's validation metrics are its last history row's (same F1 draws)
    last = result["history"][-1]
    for key in (*VALIDATION_KEYS, "test_ce"):
        assert result["metrics"][key] == pytest.approx(last[key], abs=1e-6)
    assert result["metrics"]["val_loss"] != result["metrics"]["test_ce"]


def test_without_validation_episodes_nothing_is_made_up() -> None:
    exp = make_experiment(
        {"method": "sgd_trainable", "data": {"validation_pct": 0.0}, "training": {"max_steps": 1}}
    )
    data = exp.data_task().load()
    assert data.val_episodes == ()
    setup = exp.build(data)
    assert setup["validation_data"] is None
    # hbm-data's own HumanData (no validation fields) is taken too
    from hbm_data import HumanData

    assert exp.build(HumanData(*tuple(data)[:5]))["validation_data"] is None
    metrics = exp._validation_metrics(setup["model"], data, 0, torch.device("cpu"))
    assert metrics == dict.fromkeys(VALIDATION_KEYS)


def test_one_set_of_validation_names_in_both_loops_and_the_results() -> None:
    from hbm_dl.sgd import VALIDATION_FIELDS as DL_FIELDS
    from hbm_ne.training import VALIDATION_FIELDS as NE_FIELDS

    assert NE_FIELDS == DL_FIELDS == VALIDATION_KEYS == ("val_loss", "val_accuracy", "val_f1")
