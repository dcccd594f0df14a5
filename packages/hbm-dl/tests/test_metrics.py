from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hbm_dl.metrics import (
    accuracy,
    confusion_matrix,
    cross_entropy,
    macro_f1,
    macro_f1_from_confusion,
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
    a = sampled_macro_f1(uniform, actions, generator=torch.Generator().manual_seed(1))
    b = sampled_macro_f1(uniform, actions, generator=torch.Generator().manual_seed(1))
    c = sampled_macro_f1(uniform, actions, generator=torch.Generator().manual_seed(2))
    assert a == b and a != c
    assert a == pytest.approx(1 / 3, abs=0.05)  # random guessing among 3 balanced classes
    one = sampled_macro_f1(
        uniform, actions, num_samples=1, generator=torch.Generator().manual_seed(1)
    )
    assert one != a  # K trials are averaged
    mask = torch.zeros(500, dtype=torch.bool)
    assert math.isnan(sampled_macro_f1(uniform, actions, mask))
