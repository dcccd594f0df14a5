"""Argmax accuracy has one definition, `hbm_ne.action_accuracy` (the learners' shared metrics,
byte-identical in hbm-dl): the `test_accuracy` of every result and the humanlike block's
`action_accuracy` are the same measure, so on the same model and steps they agree."""

from __future__ import annotations

import hbm_dl
import hbm_ne
import numpy as np
import pytest
import torch
from hbm_dl.metrics import accuracy
from hbm_experiments.evaluation import classification_metrics
from hbm_experiments.humanlike import action_accuracy
from hbm_experiments.humanlike.rollouts import predict_actions


@pytest.mark.parametrize("shape", [(1,), (7,), (300,), (4, 13), (2, 3, 1001)])
def test_humanlike_action_accuracy_is_the_learners_definition(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    actions = rng.integers(0, 4, size=shape[-1])
    predicted = rng.integers(0, 4, size=shape)
    predicted[..., ::3] = actions[::3]  # some of every kind of share
    mine = action_accuracy(predicted, actions)
    shared = hbm_ne.action_accuracy(torch.from_numpy(predicted), torch.from_numpy(actions))
    # the same bits as the shared function and as NumPy's mean (the humanlike block's old rule)
    assert np.array_equal(mine, shared.numpy())
    assert np.array_equal(mine, np.mean(predicted == actions, axis=-1))
    assert np.shape(mine) == shape[:-1]


def test_one_prediction_row_gives_a_float_a_result_can_hold() -> None:
    acc = action_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1]))
    assert isinstance(acc, float) and acc == 0.5
    read_only = np.array([0, 1, 1, 1])
    read_only.flags.writeable = False  # recordings can be read-only views
    assert action_accuracy(np.array([0, 1, 2, 2]), read_only) == 0.5


def test_hbm_dl_accuracy_is_the_shared_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 5, generator=gen)
    actions = torch.randint(0, 5, (50,), generator=gen)
    mask = torch.rand(50, generator=gen) > 0.3
    assert hbm_dl.metrics.action_accuracy is hbm_dl._shared.metrics.action_accuracy
    assert accuracy(logits, actions) == float(hbm_ne.action_accuracy(logits.argmax(-1), actions))
    kept = float(hbm_ne.action_accuracy(logits[mask].argmax(-1), actions[mask]))
    assert accuracy(logits, actions, mask) == kept


@pytest.mark.parametrize("kind", ["feedforward", "reservoir"])
def test_result_test_accuracy_agrees_with_humanlike_action_accuracy(kind: str) -> None:
    """The result's `test_accuracy` (the learners' `evaluate`) and the humanlike block's
    `action_accuracy` (teacher-forced argmax) of one model on the same held-out steps. The two
    paths batch the forward passes differently, so a logit may differ in its last bits and flip
    an exact near-tie: they agree within one step in N."""
    gen = torch.Generator().manual_seed(3)
    make = hbm_dl.FeedforwardMLP if kind == "feedforward" else hbm_dl.RecurrentMLPReservoir
    model = make(6, 16, 4, generator=gen).eval()
    lengths = [40, 25, 61, 17]
    n = sum(lengths)
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(n, 6)).astype(np.float32)
    actions = rng.integers(0, 4, size=n)
    with torch.no_grad():  # the person's actions: the model's argmax on most steps
        if kind == "feedforward":
            actions[: n // 2] = model(torch.from_numpy(obs[: n // 2])).argmax(-1).numpy()
    test_accuracy = classification_metrics(model, obs, actions, lengths)["test_accuracy"]
    (predicted,) = predict_actions(model, obs, lengths)
    humanlike = action_accuracy(predicted, actions)
    assert abs(test_accuracy - humanlike) <= 1 / n
    assert 0.0 < test_accuracy < 1.0
