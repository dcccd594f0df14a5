from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hbm_ne import BatchedFeedforward, BatchedRecurrent, FeedforwardMLP, Population, RecurrentMLP
from ne_helpers import assert_close


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("hidden", [(50,), (7, 5), ()])
@pytest.mark.parametrize("shared", [True, False])
def test_feedforward_forward_equals_module_loop(hidden: tuple[int, ...], shared: bool) -> None:
    pop = BatchedFeedforward(4, 3, 9, hidden, generator=gen())
    x = torch.randn(40, 4, generator=gen(1)) if shared else torch.randn(9, 40, 4, generator=gen(1))
    out = pop(x)
    assert out.shape == (9, 40, 3)
    for i in range(9):
        ref = pop.export(i)(x if shared else x[i])
        assert_close(out[i], ref, atol=1e-5, rtol=1e-5)


def test_feedforward_small_chunks_equal_one_chunk() -> None:
    pop = BatchedFeedforward(8, 4, 13, generator=gen())
    x = torch.randn(30, 8, generator=gen(2))
    whole = torch.cat([lo.clone() for _, _, lo in pop.iter_logits(x, chunk=13)])
    pieces = torch.cat([lo.clone() for _, _, lo in pop.iter_logits(x, chunk=3)])
    assert_close(whole, pieces, atol=0, rtol=0)


def test_export_layout_matches_shared_contract() -> None:
    pop = BatchedFeedforward(4, 2, 3, (6, 5), generator=gen())
    sd = pop.export(1).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "hidden.0.weight": (6, 4),
        "hidden.0.bias": (6,),
        "hidden.1.weight": (5, 6),
        "hidden.1.bias": (5,),
        "output.weight": (2, 5),
        "output.bias": (2,),
    }
    assert isinstance(pop.export(0), FeedforwardMLP)
    # the export is a copy: changing it leaves the population alone
    before = pop.params.clone()
    with torch.no_grad():
        pop.export(0).output.bias.add_(1)
    assert torch.equal(pop.params, before)
    with pytest.raises(IndexError):
        pop.export(3)


@pytest.mark.parametrize(
    ("kind", "rank", "keys"),
    [
        ("reservoir", 1, {"recurrent_weight": (6, 6)}),
        ("trainable", 1, {"recurrent_u": (6, 1), "recurrent_v": (6, 1)}),
        ("trainable", 2, {"recurrent_u": (6, 2), "recurrent_v": (6, 2)}),
        ("trainable", None, {"recurrent_weight": (6, 6)}),
    ],
)
def test_recurrent_layout(kind: str, rank: int | None, keys: dict[str, tuple[int, ...]]) -> None:
    pop = BatchedRecurrent(3, 2, 4, 6, kind=kind, rank=rank, generator=gen())
    module = pop.export(0)
    assert isinstance(module, RecurrentMLP)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {
        "input.weight": (6, 3),
        "input.bias": (6,),
        "output.weight": (2, 6),
        "output.bias": (2,),
        **keys,
    }
    trainable = {k for k, _ in module.named_parameters()}
    assert ("recurrent_weight" in trainable) == (kind == "trainable" and rank is None)


def test_reservoir_spectral_radius_and_not_evolved() -> None:
    pop = BatchedRecurrent(3, 2, 4, 20, spectral_radius=0.7, generator=gen())
    assert pop.reservoir is not None
    rho = torch.linalg.eigvals(pop.reservoir.double()).abs().max()
    assert abs(float(rho) - 0.7) < 1e-5
    assert pop.num_params == 20 * 3 + 20 + 2 * 20 + 2  # the reservoir is not a parameter
    per = BatchedRecurrent(3, 2, 4, 20, shared_reservoir=False, generator=gen())
    assert per.reservoir is not None and per.reservoir.shape == (4, 20, 20)
    rhos = torch.linalg.eigvals(per.reservoir.double()).abs().amax(-1)
    assert_close(rhos, torch.full((4,), 0.9, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kind", "rank", "shared"),
    [
        ("reservoir", 1, True),
        ("reservoir", 1, False),
        ("trainable", 1, True),
        ("trainable", None, True),
    ],
)
def test_recurrent_sequences_equal_module_loop(kind: str, rank: int | None, shared: bool) -> None:
    pop = BatchedRecurrent(
        3, 4, 5, 8, kind=kind, rank=rank, shared_reservoir=shared, generator=gen()
    )
    x = torch.randn(6, 9, 3, generator=gen(3))
    mask = torch.ones(6, 9, dtype=torch.bool)
    mask[1, 5:] = False
    mask[4, 2:] = False
    h0 = torch.randn(5, 6, 8, generator=gen(4)) * 0.3
    logits, h_t = pop(x, mask, h0)
    assert logits.shape == (5, 6, 9, 4) and h_t.shape == (5, 6, 8)
    chunked = [(lo.clone(), h.clone()) for _, _, lo, h in pop.iter_sequence_logits(x, mask, h0, 2)]
    assert_close(torch.cat([c[0] for c in chunked]), logits, atol=1e-6, rtol=1e-6)
    for i in range(5):
        module = pop.export(i)
        ref_logits, ref_h = module(x, mask, h0[i])
        valid = mask[..., None].expand_as(ref_logits)
        assert_close(logits[i][valid], ref_logits[valid], atol=1e-5, rtol=1e-5)
        assert_close(h_t[i], ref_h, atol=1e-5, rtol=1e-5)
    # padded steps never change the state: h_T of sequence 4 is its state after step 2
    short, _ = pop(x[4:5, :2], None, h0[:, 4:5])
    _, h_short = pop(x[4:5, :2], None, h0[:, 4:5])
    assert_close(h_t[:, 4:5], h_short, atol=1e-6, rtol=1e-6)
    assert short.shape == (5, 1, 2, 4)


def test_forward_step_matches_module_step() -> None:
    pop = BatchedRecurrent(3, 2, 4, 8, kind="trainable", generator=gen())
    h = pop.initial_state(5)
    assert h.shape == (4, 5, 8) and not h.any()
    x = torch.randn(4, 5, 3, generator=gen(5))
    for _ in range(3):
        logits, h_next = pop.forward_step(x, h)
        for i in range(4):
            ref_logits, ref_h = pop.export(i).forward_step(x[i], h[i])
            assert_close(logits[i], ref_logits, atol=1e-5, rtol=1e-5)
            assert_close(h_next[i], ref_h, atol=1e-5, rtol=1e-5)
        h = h_next
    # x [B, in] is shared by every member
    shared_logits, _ = pop.forward_step(x[0], pop.initial_state(5))
    ref, _ = pop.export(2).forward_step(x[0], torch.zeros(5, 8))
    assert_close(shared_logits[2], ref, atol=1e-5, rtol=1e-5)


def test_envs_facing_attributes() -> None:
    pop = BatchedFeedforward(8, 4, 6, generator=gen())
    assert (pop.population_size, pop.input_size, pop.output_size) == (6, 8, 4)
    assert pop.device == torch.device("cpu") and pop.params.dtype == torch.float32
    rec = BatchedRecurrent(8, 4, 6, 10, generator=gen())
    assert (rec.population_size, rec.input_size, rec.output_size) == (6, 8, 4)


def test_same_seed_same_population_and_views_share_storage() -> None:
    a = BatchedFeedforward(4, 2, 5, generator=gen(7))
    b = BatchedFeedforward(4, 2, 5, generator=gen(7))
    c = BatchedFeedforward(4, 2, 5, generator=gen(8))
    assert torch.equal(a.params, b.params) and not torch.equal(a.params, c.params)
    views = a.views()
    views["output.bias"][2, 1] = 42.0
    assert a.export(2).output.bias[1].item() == 42.0
    # initial weights ~ N(0, 1/fan_in)
    big = BatchedFeedforward(100, 2, 200, (50,), generator=gen())
    std = big.views()["hidden.0.weight"].std().item()
    assert abs(std - 0.1) < 0.005


@pytest.mark.parametrize("init", ["normal", "uniform"])
def test_init_is_the_rule_of_the_single_networks(init: str) -> None:
    """docs/interfaces.md: "normal" N(0, 1/fan_in), "uniform" U(±1/√fan_in), weights and biases,
    for feedforward and recurrent input/output layers (u, v ~ N(0, 1/H) either way)."""
    ff = BatchedFeedforward(100, 3, 200, (50,), init=init, generator=gen())  # type: ignore[arg-type]
    rec = BatchedRecurrent(100, 3, 200, 50, kind="trainable", init=init, generator=gen())  # type: ignore[arg-type]
    expected = {"normal": 1.0, "uniform": 1 / 3**0.5}[init]
    for views, name, fan_in in (
        (ff.views(), "hidden.0.weight", 100),
        (ff.views(), "hidden.0.bias", 100),
        (ff.views(), "output.weight", 50),
        (ff.views(), "output.bias", 50),
        (rec.views(), "input.weight", 100),
        (rec.views(), "input.bias", 100),
        (rec.views(), "output.bias", 50),
    ):
        t = views[name]
        # >= 600 draws: the sample std is within 10 % of the true one
        assert t.std().item() == pytest.approx(expected * fan_in**-0.5, rel=0.1), name
        bounded = t.abs().max().item() <= fan_in**-0.5
        assert bounded == (init == "uniform"), name
    assert rec.views()["recurrent_u"].std().item() == pytest.approx(50**-0.5, rel=0.1)
    assert ff.init == init and rec.init == init
    with pytest.raises(ValueError, match="init must be one of"):
        BatchedFeedforward(4, 2, 3, init="xavier")  # type: ignore[arg-type]


def test_select_reindexes_params_sigma_state_and_reservoir() -> None:
    pop = BatchedRecurrent(3, 2, 4, 5, shared_reservoir=False, generator=gen())
    assert pop.sigma is not None and pop.reservoir is not None
    pop.sigma.copy_(torch.arange(4.0)[:, None].expand_as(pop.sigma))
    pop.carried_state = torch.arange(4.0)[:, None].expand(4, 5).clone()
    params, reservoir = pop.params.clone(), pop.reservoir.clone()
    idx = torch.tensor([2, 2, 0, 3])
    pop.select_(idx)
    assert torch.equal(pop.params, params[idx])
    assert torch.equal(pop.sigma[:, 0], torch.tensor([2.0, 2.0, 0.0, 3.0]))
    assert torch.equal(pop.carried_state[:, 0], torch.tensor([2.0, 2.0, 0.0, 3.0]))
    assert torch.equal(pop.reservoir, reservoir[idx])
    with pytest.raises(ValueError, match="indices"):
        pop.select_(torch.tensor([0, 1]))


def test_bad_input_errors_are_clear() -> None:
    pop = BatchedFeedforward(4, 2, 3, generator=gen())
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        pop(torch.zeros(10, 5))
    with pytest.raises(ValueError, match="members"):
        pop(torch.zeros(2, 10, 4))
    with pytest.raises(ValueError, match="kind"):
        BatchedRecurrent(3, 2, 4, kind="lstm")
    with pytest.raises(ValueError, match=r"\[P, D\]"):
        Population(torch.zeros(3))


def test_state_dict_round_trip_and_foreign_state() -> None:
    a = BatchedFeedforward(4, 2, 5, generator=gen(1))
    b = BatchedFeedforward(4, 2, 5, generator=gen(2))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.params, b.params)
    c = BatchedFeedforward(4, 3, 5, generator=gen(2))
    with pytest.raises(ValueError, match="population state"):
        c.load_state_dict(a.state_dict())


def test_float64_population() -> None:
    pop = BatchedFeedforward(4, 2, 3, generator=gen(), dtype=torch.float64)
    x = torch.randn(7, 4, dtype=torch.float64)
    out = pop(x)
    assert out.dtype == torch.float64
    assert_close(out[1], pop.export(1)(x))
    assert F.softmax(out, -1).shape == (3, 7, 2)


@pytest.mark.parametrize("hidden", [(50,), (7, 5), ()])
@pytest.mark.parametrize("n", [1, 3])
def test_feedforward_small_per_member_batches_equal_module_loop(
    hidden: tuple[int, ...], n: int
) -> None:
    # one environment step per member takes the numpy small-batch path
    pop = BatchedFeedforward(4, 3, 9, hidden, generator=gen())
    x = torch.randn(9, n, 4, generator=gen(1))
    out = pop(x)
    assert out.shape == (9, n, 3)
    for i in range(9):
        assert_close(out[i], pop.export(i)(x[i]), atol=1e-5, rtol=1e-5)
    chunks = torch.cat([lo.clone() for _, _, lo in pop.iter_logits(x, chunk=4)])
    assert_close(chunks, out, atol=0, rtol=0)


def test_feedforward_forward_follows_replaced_and_mutated_params() -> None:
    # cached views must follow in-place updates and a replaced params tensor
    pop = BatchedFeedforward(4, 2, 5, generator=gen())
    x = torch.randn(5, 1, 4, generator=gen(1))
    before = pop(x)
    pop.mutate_(gen(3))
    mutated = pop(x)
    assert not torch.equal(before, mutated)
    assert_close(mutated[2], pop.export(2)(x[2]), atol=1e-5, rtol=1e-5)
    pop.params = pop.params.clone() * 2
    assert_close(pop(x)[2], pop.export(2)(x[2]), atol=1e-5, rtol=1e-5)
    assert not torch.equal(pop(x), mutated)


def test_balanced_chunk_splits_evenly_without_more_chunks() -> None:
    from hbm_ne.population import balanced_chunk

    assert balanced_chunk(50, 26) == 25  # 25 + 25 rather than 26 + 24
    assert balanced_chunk(1024, 26) == 26
    assert balanced_chunk(1, 0) == 1
    assert balanced_chunk(7, 100) == 7
    for p in range(1, 200):
        for limit in (1, 3, 13, 26):
            c = balanced_chunk(p, limit)
            assert 1 <= c <= max(1, limit)
            assert -(-p // c) == -(-p // max(1, limit))  # never more chunks than the limit gives
