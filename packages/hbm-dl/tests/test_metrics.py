from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hbm_dl.metrics import (
    accuracy,
    confusion_matrix,
    cross_entropy,
    f1_seed,
    macro_f1,
    macro_f1_from_confusion,
    sample_actions,
    sampled_macro_f1,
)


def test_cross_entropy_masks_padding() -> None:
    logits = torch.randn(3, 5, 4)
    actions = torch.randint(0, 4, (3, 5))
    mask = torch.arange(5) < torch.tensor([5, 2, 3])[:, None]
    ref = F.cross_entropy(logits[mask], actions[mask])
    torch.testing.assert_close(cross_entropy(logits, actions, mask), ref)
    garbage = torch.where(mask[..., None], logits, torch.full_like(logits, 1e4))
    torch.testing.assert_close(cross_entropy(garbage, actions, mask), ref)
    torch.testing.assert_close(
        cross_entropy(logits[0], actions[0]), F.cross_entropy(logits[0], actions[0])
    )


def test_accuracy_and_confusion() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    actions = torch.tensor([0, 0, 0, 1])
    assert accuracy(logits, actions) == pytest.approx(0.75)
    assert accuracy(logits, actions, torch.tensor([True, False, True, True])) == 1.0
    cm = confusion_matrix(logits.argmax(-1), actions, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_macro_f1_matches_hand_computation() -> None:
    truth = torch.tensor([0, 0, 0, 1, 1, 2])
    pred = torch.tensor([0, 0, 1, 1, 2, 2])
    # class 0: P=1, R=2/3 -> 0.8; class 1: P=1/2, R=1/2 -> 0.5; class 2: P=1/2, R=1 -> 2/3
    expected = (0.8 + 0.5 + 2 / 3) / 3
    assert macro_f1(pred, truth, 3) == pytest.approx(expected)
    # A class never seen nor predicted scores 0 (sklearn zero_division=0 over labels=range(A)).
    assert macro_f1(pred, truth, 4) == pytest.approx(expected * 3 / 4)
    batched = torch.stack([confusion_matrix(pred, truth, 3), confusion_matrix(truth, truth, 3)])
    assert macro_f1_from_confusion(batched).tolist() == pytest.approx([expected, 1.0])


def test_sampled_f1_is_reproducible_and_samples() -> None:
    actions = torch.randint(0, 3, (500,), generator=torch.Generator().manual_seed(0))
    peaked = F.one_hot(actions, 3).float() * 50
    assert sampled_macro_f1(peaked, actions) == pytest.approx(1.0)
    uniform = torch.zeros(500, 3)
    a = sampled_macro_f1(uniform, actions, seed=1)
    b = sampled_macro_f1(uniform, actions, seed=1)
    c = sampled_macro_f1(uniform, actions, seed=2)
    assert a == b and a != c
    assert a == pytest.approx(1 / 3, abs=0.05)  # random guessing among 3 balanced classes
    one = sampled_macro_f1(uniform, actions, f1_samples=1, seed=1)
    assert one != a  # K trials are averaged
    mask = torch.zeros(500, dtype=torch.bool)
    assert math.isnan(sampled_macro_f1(uniform, actions, mask))


def test_sampled_f1_follows_the_documented_algorithm() -> None:
    """docs/interfaces.md: u [K, M] ~ U[0, 1) float64 from a CPU generator seeded
    f1_seed(seed, step); action = #{j < A-1: cdf_j < u * cdf_{A-1}}; mean of K macro F1s."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(200, 4, generator=gen) * 2
    actions = torch.randint(0, 4, (200,), generator=gen)
    seed = f1_seed(7, 120)
    assert seed == (7 * 0x9E3779B97F4A7C15 + 120 * 0xBF58476D1CE4E5B9) % 2**63
    u = torch.rand(5, 200, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    cdf = np.cumsum(np.exp(logits.double().numpy()), axis=1)  # unnormalised: u is scaled
    expected = (cdf[None, :, :-1] < (u.numpy() * cdf[:, -1])[..., None]).sum(-1)
    drawn = sample_actions(logits, 5, seed)
    assert drawn.shape == (5, 200)
    # float64 softmax vs exp/cumsum here: equal but for draws within 1e-12 of a boundary
    assert (drawn.numpy() != expected).sum() == 0
    per_draw = [macro_f1(torch.from_numpy(expected[k]), actions, 4) for k in range(5)]
    got = sampled_macro_f1(logits, actions, f1_samples=5, seed=seed)
    assert got == pytest.approx(float(np.mean(per_draw)), abs=1e-12)
    # the frequencies of the draws follow softmax(logits)
    many = sample_actions(logits[:1].expand(20000, 4), 1, 0)[0]
    freq = torch.bincount(many, minlength=4).double() / 20000
    torch.testing.assert_close(freq, torch.softmax(logits[0].double(), 0), atol=0.015, rtol=0)
