"""Behaviour evaluation: one path for hbm-ne members and hbm-dl models."""

from __future__ import annotations

import hbm_dl
import hbm_ne
import numpy as np
import pytest
import torch
from hbm_experiments.evaluation import (
    build_model,
    classification_metrics,
    compare_returns,
    evaluate_policy,
    model_spec,
)
from hbm_experiments.tasks import DataPreprocessingTask


@pytest.fixture(scope="module")
def cl_data(shared_data_dir):  # type: ignore[no-untyped-def]
    task = DataPreprocessingTask(
        dataset="cartpole",
        use_cl_info=True,
        data_dir=str(shared_data_dir),
        infra={"folder": None},
    )
    return task.load()


def test_compare_returns_pct_and_matching() -> None:
    out = compare_returns([12.0, 18.0, 8.0, 22.0], [10.0, 20.0])
    # repeat r of episode e sits at r*E + e: pct = +20, -10, -20, +10
    assert out["pct_diff_mean"] == pytest.approx(0.0)
    assert out["pct_diff_std"] == pytest.approx(np.std([20, -10, -20, 10]))
    assert out["human_mean_return"] == 15.0 and out["model_mean_return"] == 15.0
    assert 0.0 < out["p_value"] <= 1.0
    zero = compare_returns([3.0], [0.0])
    assert zero["pct_diff_mean"] == pytest.approx(300.0)
    far = compare_returns([500.0] * 8, [10.0, 12.0, 9.0, 11.0, 10.0, 13.0, 8.0, 10.0])
    assert far["p_value"] < 0.01 and far["pct_diff_mean"] > 1000
    with pytest.raises(ValueError, match="cannot be matched"):
        compare_returns([1.0, 2.0, 3.0], [1.0, 2.0])


def test_classification_metrics_of_a_sure_policy() -> None:
    model = hbm_dl.FeedforwardMLP(2, 2, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.hidden[0].weight.copy_(torch.eye(2) * 10)
        model.output.weight.copy_(torch.eye(2) * 50)
    obs = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], dtype=np.float32)
    actions = np.array([0, 1, 1, 0])
    m = classification_metrics(model, obs, actions, seed=0)
    assert m["test_accuracy"] == 1.0 and m["test_f1"] == 1.0 and m["test_ce"] < 1e-6
    wrong = classification_metrics(model, obs, 1 - actions)
    assert wrong["test_accuracy"] == 0.0 and wrong["test_f1"] == 0.0 and wrong["test_ce"] > 10


@pytest.mark.parametrize("kind", ["feedforward", "reservoir", "trainable"])
def test_ne_member_and_dl_model_same_evaluation(kind: str, cl_data) -> None:  # type: ignore[no-untyped-def]
    meta = cl_data.metadata
    gen = torch.Generator().manual_seed(3)
    if kind == "feedforward":
        pop = hbm_ne.BatchedFeedforward(meta.input_size, meta.num_actions, 4, (6,), generator=gen)
    else:
        pop = hbm_ne.BatchedRecurrent(
            meta.input_size, meta.num_actions, 4, 6, kind=kind, generator=gen
        )
    member = pop.export(2)
    spec = model_spec(member, kind)
    dl_model = build_model(spec)
    assert isinstance(dl_model, hbm_dl.FeedforwardMLP | hbm_dl.RecurrentMLP)
    dl_model.load_state_dict(member.state_dict(), strict=True)  # same layout, no leftovers
    ne_eval = evaluate_policy(member, cl_data, seed=5)
    dl_eval = evaluate_policy(dl_model, cl_data, seed=5)
    # Two code paths (hbm-ne's exported module, hbm-dl's model) with their own operation order:
    # float32 sums agree to a few ulps, not bit for bit across CPUs (an AMD EPYC differs in the
    # 7th digit). 1e-5 relative is ~100 float32 ulps, far below any modelling difference.
    assert set(ne_eval["metrics"]) == set(dl_eval["metrics"])
    for key, value in ne_eval["metrics"].items():
        assert dl_eval["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    ne_b, dl_b = ne_eval["behaviour"], dl_eval["behaviour"]
    assert ne_b["human_returns"] == dl_b["human_returns"]
    # Discrete actions: returns match unless a logit margin within ~1e-6 flips an argmax, which
    # ends that one episode differently; allow one such episode.
    same = np.isclose(ne_b["model_returns"], dl_b["model_returns"], rtol=0, atol=1e-9)
    assert same.sum() >= len(same) - 1, (ne_b["model_returns"], dl_b["model_returns"])
    b = ne_eval["behaviour"]
    assert len(b["model_returns"]) == len(meta.test_episodes) == len(b["human_returns"])
    assert b["human_returns"] == [e.score for e in meta.test_episodes]
    assert 0.0 <= ne_eval["metrics"]["test_f1"] <= 1.0
    # the evaluation is reproducible and depends on its seed
    assert evaluate_policy(member, cl_data, seed=5) == ne_eval
    if kind != "feedforward":
        with pytest.raises(ValueError, match="episode_lengths"):
            classification_metrics(member, cl_data.test_obs, cl_data.test_act)


def test_rollouts_get_each_episodes_own_cl_values(
    cl_data,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from hbm_experiments.humanlike import references

    meta = cl_data.metadata
    seen = {}
    real = references.record_rollouts  # the one recorded play of returns and metrics

    def spy(policy, env_id, seeds, **kw):  # type: ignore[no-untyped-def]
        seen.update(seeds=list(seeds), extra=torch.as_tensor(kw["extra_features"]), env_id=env_id)
        return real(policy, env_id, seeds, **kw)

    monkeypatch.setattr(references, "record_rollouts", spy)
    model = hbm_dl.FeedforwardMLP(meta.input_size, 4, meta.num_actions)
    out = evaluate_policy(model, cl_data, seed=0, repeats=2)
    episodes = meta.test_episodes
    assert seen["env_id"] == meta.env_id
    assert seen["seeds"] == [e.seed for e in episodes] * 2
    expected = torch.tensor([[e.session_cl, e.run_cl] for e in episodes] * 2)
    assert torch.equal(seen["extra"].cpu(), expected)
    assert len(out["behaviour"]["model_returns"]) == 2 * len(episodes)


def test_pct_diff_of_means_is_robust_where_per_episode_explodes() -> None:
    from hbm_experiments.evaluation import compare_returns

    human = [100.0, -0.5, 80.0]  # one episode near 0 blows up the per-episode figure
    model = [90.0, 10.0, 70.0]
    out = compare_returns(model, human)
    assert abs(out["pct_diff_of_means"] - ((170 / 3 - 179.5 / 3) / (179.5 / 3) * 100)) < 1e-9
    assert abs(out["pct_diff_mean"]) > 500  # the lab's per-episode mean, dominated by -0.5
