from __future__ import annotations

import math

import pytest
import torch
from hbm_dl import (
    FeedforwardMLP,
    RecurrentMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    is_recurrent,
)

RECURRENT = [
    lambda **kw: RecurrentMLPReservoir(4, 12, 3, **kw),
    lambda **kw: RecurrentMLPTrainable(4, 12, 3, **kw),
    lambda **kw: RecurrentMLPTrainable(4, 12, 3, rank=None, **kw),
    lambda **kw: RecurrentMLPTrainable(4, 12, 3, rank=3, **kw),
]


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_feedforward_layout_matches_interface() -> None:
    assert shapes(FeedforwardMLP(6, 50, 2)) == {
        "hidden.0.weight": (50, 6),
        "hidden.0.bias": (50,),
        "output.weight": (2, 50),
        "output.bias": (2,),
    }
    deep = FeedforwardMLP(6, (32, 16), 4)
    assert shapes(deep) == {
        "hidden.0.weight": (32, 6),
        "hidden.0.bias": (32,),
        "hidden.1.weight": (16, 32),
        "hidden.1.bias": (16,),
        "output.weight": (4, 16),
        "output.bias": (4,),
    }
    x = torch.randn(5, 7, 6)
    assert deep(x).shape == (5, 7, 4)
    torch.testing.assert_close(deep.get_probs(x).sum(-1), torch.ones(5, 7))


def test_feedforward_computes_tanh_mlp() -> None:
    m = FeedforwardMLP(3, 5, 2)
    x = torch.randn(4, 3)
    ref = m.output(torch.tanh(m.hidden[0](x)))
    torch.testing.assert_close(m(x), ref)


def test_recurrent_layouts_match_interface() -> None:
    base = {
        "input.weight": (12, 4),
        "input.bias": (12,),
        "output.weight": (3, 12),
        "output.bias": (3,),
    }
    res = RecurrentMLPReservoir(4, 12, 3)
    assert shapes(res) == {**base, "recurrent_weight": (12, 12)}
    assert "recurrent_weight" in dict(res.named_buffers())
    assert "recurrent_weight" not in dict(res.named_parameters())
    assert shapes(RecurrentMLPTrainable(4, 12, 3)) == {
        **base,
        "recurrent_u": (12, 1),
        "recurrent_v": (12, 1),
    }
    assert shapes(RecurrentMLPTrainable(4, 12, 3, rank=None)) == {
        **base,
        "recurrent_weight": (12, 12),
    }
    full = RecurrentMLPTrainable(4, 12, 3, rank=None)
    assert "recurrent_weight" in dict(full.named_parameters())
    # The lab's parameter counts: (in+1)H + (H+1)out, + 2H for rank 1.
    count = sum(p.numel() for p in RecurrentMLPReservoir(6, 50, 2).parameters())
    assert count == 452
    assert sum(p.numel() for p in RecurrentMLPTrainable(6, 50, 2).parameters()) == 552


def test_reservoir_spectral_radius() -> None:
    for radius in (0.9, 0.5, 1.2):
        w = RecurrentMLPReservoir(4, 30, 2, spectral_radius=radius).recurrent_weight
        assert torch.linalg.eigvals(w.double()).abs().max().item() == pytest.approx(radius)


@pytest.mark.parametrize("make", [lambda **kw: FeedforwardMLP(4, 8, 2, **kw), *RECURRENT])
def test_init_uses_only_the_given_generator(make) -> None:
    before = torch.random.get_rng_state()
    a = make(generator=torch.Generator().manual_seed(3))
    b = make(generator=torch.Generator().manual_seed(3))
    c = make(generator=torch.Generator().manual_seed(4))
    d, e = make(), make()  # None -> fixed default seed: reproducible without global state
    assert torch.equal(torch.random.get_rng_state(), before)
    for k in a.state_dict():
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
        assert torch.equal(d.state_dict()[k], e.state_dict()[k])
    assert any(not torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in a.state_dict())


def test_default_init_is_normal_over_fan_in_and_uniform_is_an_option() -> None:
    m = FeedforwardMLP(400, (300,), 200, generator=torch.Generator().manual_seed(0))
    assert m.init == "normal"
    for t, fan_in in ((m.hidden[0].weight, 400), (m.hidden[0].bias, 400), (m.output.weight, 300),
                      (m.output.bias, 300)):  # fmt: skip
        # N(0, 1/fan_in): std 1/sqrt(fan_in) (sampling error < 5 % with >= 200 values)
        t = t.detach()
        assert float(t.std()) == pytest.approx(fan_in**-0.5, rel=0.1)
        assert float(t.abs().max()) > fan_in**-0.5  # not bounded like the uniform
    u = FeedforwardMLP(400, (300,), 200, init="uniform")
    w = u.hidden[0].weight.detach()
    assert float(w.abs().max()) <= 400**-0.5
    assert float(w.std()) == pytest.approx(400**-0.5 / math.sqrt(3), rel=0.05)
    r = RecurrentMLPTrainable(300, 200, 100, init="uniform")
    assert float(r.input.bias.detach().abs().max()) <= 300**-0.5
    # the recurrence is not set by `init`: N(0, 1/H) factors in both cases
    n = RecurrentMLPTrainable(300, 200, 100, generator=torch.Generator().manual_seed(5))
    for model in (r, n):
        assert float(model.recurrent_u.detach().std()) == pytest.approx(200**-0.5, rel=0.15)
    with pytest.raises(ValueError, match="init must be one of"):
        FeedforwardMLP(4, 8, 2, init="xavier")  # type: ignore[arg-type]


def test_feedforward_hidden_sizes_spellings() -> None:
    a = FeedforwardMLP(4, 8, 2).state_dict()
    b = FeedforwardMLP(4, (8,), 2).state_dict()
    c = FeedforwardMLP(4, hidden_sizes=[8], output_size=2).state_dict()
    for other in (b, c):
        assert all(torch.equal(a[k], other[k]) for k in a)
    assert FeedforwardMLP(4, (8, 6), 2).hidden_sizes == (8, 6)


def test_recurrent_base_class_builds_either_kind() -> None:
    res = RecurrentMLP(4, 12, 3, generator=torch.Generator().manual_seed(2))
    same = RecurrentMLPReservoir(4, 12, 3, generator=torch.Generator().manual_seed(2))
    assert res.kind == "reservoir" and res.rank is None
    assert all(torch.equal(res.state_dict()[k], v) for k, v in same.state_dict().items())
    tr = RecurrentMLP(4, 12, 3, kind="trainable", rank=2)
    assert isinstance(RecurrentMLPTrainable(4, 12, 3), RecurrentMLP)
    assert shapes(tr)["recurrent_u"] == (12, 2)


@pytest.mark.parametrize("make", RECURRENT)
def test_forward_matches_step_by_step(make) -> None:
    m = make()
    x = torch.randn(3, 9, 4)
    h0 = torch.randn(3, 12) * 0.5
    logits, h_t = m(x, h0=h0)
    h = h0
    for t in range(9):
        step_logits, h = m.forward_step(x[:, t], h)
        torch.testing.assert_close(logits[:, t], step_logits)
    torch.testing.assert_close(h_t, h)
    # The documented update rule, written out.
    w = m.recurrent_matrix()
    h1 = torch.tanh(m.input(x[:, 0]) + h0 @ w.T)
    torch.testing.assert_close(logits[:, 0], m.output(h1))
    assert is_recurrent(m) and not is_recurrent(FeedforwardMLP(4, 8, 2))


@pytest.mark.parametrize("make", RECURRENT)
def test_padding_never_changes_state_or_valid_logits(make) -> None:
    m = make()
    lengths = [9, 4, 1, 6]
    x = torch.randn(4, 9, 4)
    mask = torch.arange(9) < torch.tensor(lengths)[:, None]
    x_garbage = torch.where(mask[..., None], x, torch.randn(4, 9, 4) * 100)
    logits, h_t = m(x_garbage, mask)
    for i, n in enumerate(lengths):
        alone, h_alone = m(x[i : i + 1, :n])
        torch.testing.assert_close(logits[i, :n], alone[0])
        torch.testing.assert_close(h_t[i], h_alone[0])


@pytest.mark.parametrize("make", RECURRENT)
def test_masked_holes_hold_state(make) -> None:
    """A non-prefix mask (e.g. left padding, holes) takes the general path: masked steps hold."""
    m = make()
    x = torch.randn(2, 7, 4)
    mask = torch.tensor([[0, 1, 1, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    logits, h_t = m(x, mask)
    for i in range(2):
        h = m.initial_state(1)
        for t in range(7):
            if mask[i, t]:
                step_logits, h = m.forward_step(x[i : i + 1, t], h)
                torch.testing.assert_close(logits[i, t], step_logits[0])
        torch.testing.assert_close(h_t[i], h[0])
    empty_mask = torch.zeros(2, 7, dtype=torch.bool)
    h0 = torch.randn(2, 12)
    torch.testing.assert_close(m(x, empty_mask, h0)[1], h0)


def test_gradients_reach_the_trainable_recurrence_only() -> None:
    x = torch.randn(2, 5, 4)
    res = RecurrentMLPReservoir(4, 12, 3)
    res(x)[0].sum().backward()
    assert res.recurrent_weight.grad is None
    assert res.input.weight.grad is not None and res.input.weight.grad.abs().sum() > 0
    tr = RecurrentMLPTrainable(4, 12, 3)
    tr(x)[0].sum().backward()
    assert tr.recurrent_u.grad.abs().sum() > 0 and tr.recurrent_v.grad.abs().sum() > 0
    full = RecurrentMLPTrainable(4, 12, 3, rank=None)
    full(x)[0].sum().backward()
    assert full.recurrent_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("make", RECURRENT)
def test_state_dict_round_trip(make) -> None:
    a = make(generator=torch.Generator().manual_seed(1))
    b = make(generator=torch.Generator().manual_seed(2))
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(a(x)[0], b(x)[0])
    probs, _ = a.get_probs(x)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="output_size"):
        FeedforwardMLP(4, 50)
    with pytest.raises(ValueError, match="rank"):
        RecurrentMLPTrainable(4, 10, 2, rank=11)
    with pytest.raises(ValueError, match="spectral_radius"):
        RecurrentMLPReservoir(4, 10, 2, spectral_radius=0.0)
    with pytest.raises(ValueError, match=r"x must be \[B, T, 4\]"):
        RecurrentMLPReservoir(4, 10, 2)(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"h0 must be \[B, H\] = \[3, 10\]"):
        RecurrentMLPReservoir(4, 10, 2)(torch.randn(3, 5, 4), h0=torch.zeros(10))
    with pytest.raises(ValueError, match="mask"):
        RecurrentMLPReservoir(4, 10, 2)(torch.randn(3, 5, 4), torch.ones(3, 4, dtype=torch.bool))


def test_device_argument() -> None:
    m = RecurrentMLPTrainable(4, 10, 2, device="cpu")
    assert all(t.device.type == "cpu" for t in m.state_dict().values())
    assert m.initial_state(3).shape == (3, 10)
