from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hbm_ne import (
    BatchedFeedforward,
    BatchedRecurrent,
    EpisodeData,
    accuracy,
    cross_entropy,
    macro_f1,
    sequence_cross_entropy,
)
from hbm_ne.fitness import ce_sum, f1_from_predictions, margin_ce_sum
from ne_helpers import assert_close


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("num_actions", [1, 2, 4])  # 1: a constant policy, loss 0
def test_cross_entropy_matches_per_member_reference(num_actions: int) -> None:
    pop = BatchedFeedforward(8, num_actions, 11, generator=gen())
    x = torch.randn(57, 8, generator=gen(1)) * 3
    y = torch.randint(0, num_actions, (57,), generator=gen(2))
    ce = cross_entropy(pop, x, y)
    ref = torch.stack([F.cross_entropy(pop.export(i)(x), y) for i in range(11)])
    assert_close(ce, ref.detach(), atol=1e-5, rtol=1e-5)
    acc = accuracy(pop, x, y)
    ref_acc = torch.stack([(pop.export(i)(x).argmax(-1) == y).float().mean() for i in range(11)])
    assert_close(acc, ref_acc)


def test_chunked_cross_entropy_equals_unchunked_and_stays_in_budget() -> None:
    pop = BatchedFeedforward(4, 2, 37, generator=gen())
    x = torch.randn(1000, 4, generator=gen(1))
    y = torch.randint(0, 2, (1000,), generator=gen(2))
    whole = cross_entropy(pop, x, y, max_bytes=10**9)
    budget = 64 * 50 * 4 * 3  # 3 members × 64 samples of 50 hidden units
    seen: list[int] = []
    original = pop.cross_entropy_sums

    def spy(xx: torch.Tensor, yy: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        seen.append(xx.shape[0] * (chunk or pop.population_size) * 50 * 4)
        return original(xx, yy, chunk)

    pop.cross_entropy_sums = spy  # type: ignore[method-assign]
    chunked = cross_entropy(pop, x, y, max_bytes=budget)
    assert max(seen) <= budget and len(seen) >= 5
    assert_close(chunked, whole, atol=1e-6, rtol=1e-6)


def test_closed_form_two_class_ce_is_exact_for_large_logits() -> None:
    logits = torch.tensor([[[30.0, -30.0], [0.5, 0.2], [-80.0, 80.0]]])
    y = torch.tensor([1, 0, 1])
    ref = F.cross_entropy(logits[0].double(), y, reduction="sum")
    assert_close(ce_sum(logits, y)[0], ref, atol=1e-4, rtol=1e-6)


def test_multiclass_ce_is_exact_with_and_without_the_shift_free_path() -> None:
    y = torch.tensor([0, 3, 2])
    for scale in (1.0, 200.0):  # 200: beyond exp's range, falls back to logsumexp
        logits = torch.randn(2, 3, 4, generator=gen(9)) * scale
        ref = torch.stack([F.cross_entropy(lo.double(), y, reduction="sum") for lo in logits])
        assert_close(ce_sum(logits.clone(), y), ref, atol=1e-4, rtol=1e-6)
        assert_close(ce_sum(logits.clone(), y, inplace=True), ref, atol=1e-4, rtol=1e-6)


def test_macro_f1_against_hand_computed_reference() -> None:
    # 3 classes, targets [0, 0, 1, 2, 2, 2]; predictions [0, 1, 1, 2, 2, 0]
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 1 fp 1 fn 0 -> 2/3; class 2: tp 2 fp 0 fn 1 -> 0.8
    targets = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([[[0, 1, 1, 2, 2, 0]]])
    f1 = f1_from_predictions(pred, targets, 3)
    assert abs(float(f1[0, 0]) - (0.5 + 2 / 3 + 0.8) / 3) < 1e-12
    # a class absent from both targets and predictions counts as 0 (zero_division = 0)
    f1_4 = f1_from_predictions(pred, targets, 4)
    assert abs(float(f1_4[0, 0]) - (0.5 + 2 / 3 + 0.8) / 4) < 1e-12


def test_macro_f1_of_sampled_actions() -> None:
    pop = BatchedFeedforward(4, 2, 3, generator=gen())
    with torch.no_grad():
        w = pop.views()
        w["output.weight"].zero_()
        w["output.bias"][0] = torch.tensor([50.0, -50.0])  # always action 0
        w["output.bias"][1] = torch.tensor([-50.0, 50.0])  # always action 1
        w["output.bias"][2] = 0.0  # uniform
    x = torch.randn(4000, 4, generator=gen(1))
    y = (torch.arange(4000) % 2).long()
    f1 = macro_f1(pop, x, y, num_samples=5, generator=gen(2))
    # deterministic members: class predicted always has F1 2/3 (precision 0.5, recall 1), other 0
    assert_close(f1[:2], torch.full((2,), 1 / 3), atol=1e-6, rtol=0)
    assert abs(float(f1[2]) - 0.5) < 0.02  # a coin flip on balanced classes
    again = macro_f1(pop, x, y, num_samples=5, generator=gen(2))
    assert torch.equal(f1, again)


def test_sequence_cross_entropy_respects_episode_boundaries() -> None:
    pop = BatchedRecurrent(3, 2, 4, 6, kind="trainable", generator=gen())
    lengths = [5, 3, 7]
    obs = torch.randn(15, 3, generator=gen(1))
    act = torch.randint(0, 2, (15,), generator=gen(2))
    data = EpisodeData.from_arrays(obs, act, lengths)
    x, y, mask = data.padded(data.sequences("episode"))
    assert x.shape == (3, 7, 3) and int(mask.sum()) == 15
    ce, h_t = sequence_cross_entropy(pop, x, y, mask)
    assert h_t.shape == (4, 3, 6)
    starts = np.cumsum([0, *lengths])
    for i in range(4):
        module = pop.export(i)
        losses = []
        for e, n in enumerate(lengths):
            seg = slice(int(starts[e]), int(starts[e]) + n)
            logits, _ = module(obs[seg][None])  # every episode from a zero state
            losses.append(F.cross_entropy(logits[0], act[seg], reduction="sum"))
        assert_close(ce[i], (torch.stack(losses).sum() / 15).detach(), atol=1e-5, rtol=1e-5)
    chunked, _ = sequence_cross_entropy(pop, x, y, mask, max_bytes=3 * 7 * 6 * 4)
    assert_close(chunked, ce, atol=1e-6, rtol=1e-6)


def test_sessions_concatenate_their_episodes() -> None:
    obs = torch.arange(10.0)[:, None].repeat(1, 2)
    act = torch.zeros(10, dtype=torch.long)
    data = EpisodeData.from_arrays(obs, act, [2, 3, 1, 4], sessions=[0, 0, 1, 1])
    assert data.sequences("session") == [[0, 1], [2, 3]]
    x, _, mask = data.padded(data.sequences("session"))
    assert x[0, :5, 0].tolist() == [0, 1, 2, 3, 4] and x[1, :5, 0].tolist() == [5, 6, 7, 8, 9]
    assert mask.all()


def test_episode_data_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="obs"):
        EpisodeData.from_arrays(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="actions"):
        EpisodeData.from_arrays(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="episode_lengths"):
        EpisodeData.from_arrays(np.zeros((5, 2)), np.zeros(5), [2, 2])
    with pytest.raises(ValueError, match="actions must be >= 0"):
        EpisodeData.from_arrays(np.zeros((5, 2)), -np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        EpisodeData.from_arrays(np.full((5, 2), np.nan), np.zeros(5))
    with pytest.raises(ValueError, match="sessions"):
        EpisodeData.from_arrays(np.zeros((5, 2)), np.zeros(5), [2, 3], sessions=[0])
    data = EpisodeData.from_arrays(np.zeros((5, 2), np.float64), np.zeros(5, np.int32), [2, 3])
    assert data.obs.dtype == torch.float32 and data.actions.dtype == torch.int64
    assert (data.num_steps, data.num_episodes, data.input_size) == (5, 2, 2)
    pop = BatchedFeedforward(2, 2, 3, generator=gen())
    with pytest.raises(ValueError, match="output_size"):
        cross_entropy(pop, torch.zeros(4, 2), torch.tensor([0, 1, 2, 0]))


def test_two_class_margin_path_equals_logits_path() -> None:
    # cross_entropy takes the one-output margin path for two classes; it must agree with the
    # general path on the full logits and with F.cross_entropy, shared and per-member inputs
    pop = BatchedFeedforward(4, 2, 7, (6, 5), generator=gen())
    x = torch.randn(50, 4, generator=gen(1))
    y = torch.randint(0, 2, (50,), generator=gen(2))
    via_logits = torch.cat([ce_sum(lo.clone(), y) for _, _, lo in pop.iter_logits(x)])
    via_margin = torch.cat(
        [margin_ce_sum(m.clone(), y) for _, _, m in pop.iter_logits(x, margin=True)]
    )
    assert_close(via_margin, via_logits, atol=1e-4, rtol=1e-5)
    ref = torch.stack([F.cross_entropy(pop.export(i)(x), y) for i in range(7)])
    assert_close(cross_entropy(pop, x, y), ref.detach(), atol=1e-5, rtol=1e-5)
    per_member = torch.randn(7, 3, 4, generator=gen(3))
    margins = torch.cat([m.clone() for _, _, m in pop.iter_logits(per_member, margin=True)])
    logits = pop(per_member)
    assert_close(margins, logits[..., 1] - logits[..., 0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="output_size = 2"):
        next(BatchedFeedforward(4, 3, 2, generator=gen()).iter_logits(x, margin=True))
