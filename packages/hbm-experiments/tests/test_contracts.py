"""Guards of the contracts hbm-ne and hbm-dl share (docs/interfaces.md, "hbm-ne and hbm-dl:
shared contracts").

The two learner packages never import each other, so each holds a copy of the shared code
(`_shared/`). These tests compare the copies byte for byte and then each contract through both
packages' *public* names: network layouts and outputs on random weights, initialisation
statistics, `EpisodeData`, the one macro F1, `Progress`, callbacks, result fields, checkpoint
errors, and that an experiment's final metrics are its last history row. Tiny sizes throughout:
the whole file runs in seconds (the two real experiments dominate).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from pathlib import Path
from typing import Any

import hbm_dl
import hbm_ne
import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

# Tolerance for two computations of the same float32 network by different code: the population's
# batched kernels (TorchScript tiles / numpy batched matmuls / bmm with a hand-rolled recurrence)
# against the single module's F.linear / fused `rnn_tanh`. Each output is a short chain of
# float32 dot products (≤ 10 terms) and tanh; summation order alone moves the result by a few
# float32 ulps (~1e-7 relative), so rtol 1e-5 leaves a 100x margin while any layout,
# transposition, bias or nonlinearity mistake changes outputs by ≥ 1e-2. atol 1e-6 covers
# outputs that are themselves near 0.
RTOL, ATOL = 1e-5, 1e-6

IN, OUT, H, POP = 5, 3, 6, 4

# name -> how both sides build that architecture
KINDS: dict[str, dict[str, Any]] = {
    "feedforward-0": {"hidden": ()},
    "feedforward-1": {"hidden": (7,)},
    "feedforward-2": {"hidden": (6, 4)},
    "reservoir": {"kind": "reservoir", "rank": None},
    "trainable-rank1": {"kind": "trainable", "rank": 1},
    "trainable-rank2": {"kind": "trainable", "rank": 2},
    "trainable-full": {"kind": "trainable", "rank": None},
}


def _population(name: str, gen: torch.Generator, *, init: str = "normal", size: int = POP) -> Any:
    spec = KINDS[name]
    if "hidden" in spec:
        return hbm_ne.BatchedFeedforward(
            IN, OUT, size, hidden_sizes=spec["hidden"], init=init, generator=gen
        )
    return hbm_ne.BatchedRecurrent(
        IN, OUT, size, H, kind=spec["kind"], rank=spec["rank"], init=init, generator=gen
    )


def _dl_module(name: str, gen: torch.Generator, *, init: str = "normal") -> torch.nn.Module:
    spec = KINDS[name]
    if "hidden" in spec:
        return hbm_dl.FeedforwardMLP(IN, spec["hidden"], OUT, init=init, generator=gen)
    if spec["kind"] == "reservoir":
        return hbm_dl.RecurrentMLPReservoir(IN, H, OUT, init=init, generator=gen)
    return hbm_dl.RecurrentMLPTrainable(IN, H, OUT, rank=spec["rank"], init=init, generator=gen)


def _documented_layout(name: str) -> dict[str, tuple[int, ...]]:
    """The state_dict keys and shapes of docs/interfaces.md's table."""
    spec = KINDS[name]
    if "hidden" in spec:
        sizes = (IN, *spec["hidden"])
        out: dict[str, tuple[int, ...]] = {}
        for i in range(len(spec["hidden"])):
            out[f"hidden.{i}.weight"] = (sizes[i + 1], sizes[i])
            out[f"hidden.{i}.bias"] = (sizes[i + 1],)
        return {**out, "output.weight": (OUT, sizes[-1]), "output.bias": (OUT,)}
    out = {"input.weight": (H, IN), "input.bias": (H,)}
    if spec["kind"] == "trainable" and spec["rank"] is not None:
        out |= {"recurrent_u": (H, spec["rank"]), "recurrent_v": (H, spec["rank"])}
    else:
        out["recurrent_weight"] = (H, H)
    return {**out, "output.weight": (OUT, H), "output.bias": (OUT,)}


def _layout(module: torch.nn.Module) -> tuple[dict[str, tuple[int, ...]], set[str], set[str]]:
    """(state_dict shapes, parameter names, buffer names in the state_dict)."""
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    params = {k for k, _ in module.named_parameters()}
    return shapes, params, set(shapes) - params


def _random_state_dict(module: torch.nn.Module, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random values for every state_dict entry (recurrences scaled to spectral radius 0.9, so
    that the states neither die out nor saturate over the test's few steps)."""
    sd = {}
    for k, v in module.state_dict().items():
        t = torch.randn(v.shape, generator=gen) * 0.7
        if k == "recurrent_weight":
            t = t * (0.9 / torch.linalg.eigvals(t.double()).abs().max().item())
        sd[k] = t.float()
    return sd


def _write_member(population: Any, i: int, sd: dict[str, torch.Tensor]) -> None:
    """Put `sd` into member `i` of `population` (a shared reservoir is every member's)."""
    views = population.views()
    with torch.no_grad():
        for k, v in sd.items():
            if k in views:
                views[k][i].copy_(v)
            else:
                assert k == "recurrent_weight" and population.reservoir is not None, k
                population.reservoir.copy_(v)


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(
        actual.detach(), expected.detach(), rtol=RTOL, atol=ATOL, msg=lambda m: f"{what}: {m}"
    )


def _data(n_episodes: int = 4, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(3, 12, size=n_episodes)]
    obs = rng.normal(size=(sum(lengths), IN)).astype(np.float32)
    actions = rng.integers(0, OUT, size=sum(lengths)).astype(np.int64)
    return obs, actions, lengths


# --------------------------------------------------------------------------------------------
# The shared file
# --------------------------------------------------------------------------------------------


def test_shared_module_files_identical() -> None:
    import hbm_dl._shared
    import hbm_ne._shared

    ne, dl = Path(hbm_ne._shared.__file__).parent, Path(hbm_dl._shared.__file__).parent
    assert ne != dl and hbm_ne._shared is not hbm_dl._shared
    ne_files = {p.name: p for p in sorted(ne.glob("*.py"))}
    dl_files = {p.name: p for p in sorted(dl.glob("*.py"))}
    assert sorted(ne_files) == sorted(dl_files), "run `uv run nox -s sync_shared`"
    for name, path in ne_files.items():
        a, b = path.read_bytes(), dl_files[name].read_bytes()
        if a != b:
            diff = "".join(
                list(
                    difflib.unified_diff(
                        a.decode(errors="replace").splitlines(keepends=True),
                        b.decode(errors="replace").splitlines(keepends=True),
                        str(path),
                        str(dl_files[name]),
                    )
                )[:40]
            )
            pytest.fail(
                "the two copies of the shared contracts differ: packages/hbm-ne/src/hbm_ne/_shared/"
                " (canonical) and packages/hbm-dl/src/hbm_dl/_shared/ must be byte-identical."
                f" Run `uv run nox -s sync_shared` to copy hbm-ne's over hbm-dl's.\n{diff}"
            )


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KINDS))
def test_modules_agree(name: str) -> None:
    gen = torch.Generator().manual_seed(20240613)
    population = _population(name, gen)
    recurrent = "hidden" not in KINDS[name]
    ne = population.export(1)
    dl = _dl_module(name, gen)

    # the same code, the documented layout, parameters and buffers alike
    cls = "RecurrentMLP" if recurrent else "FeedforwardMLP"
    assert isinstance(ne, getattr(hbm_ne, cls)) and isinstance(dl, getattr(hbm_dl, cls))
    assert type(ne).__qualname__ == cls  # an export is the plain class, not a subclass
    assert _layout(ne) == _layout(dl)
    assert _layout(ne)[0] == _documented_layout(name)
    if name == "reservoir":
        assert "recurrent_weight" not in _layout(dl)[1]  # a fixed buffer, not trained
    if name == "trainable-full":
        assert "recurrent_weight" in _layout(dl)[1]
    assert hbm_ne.is_recurrent(ne) is hbm_dl.is_recurrent(dl) is recurrent
    if recurrent:
        assert (ne.kind, ne.rank) == (dl.kind, dl.rank) == (population.kind, population.rank)
    else:
        assert ne.hidden_sizes == dl.hidden_sizes == population.hidden_sizes

    # random weights into both sides, in both directions (strict: same keys, same shapes)
    sd = _random_state_dict(dl, torch.Generator().manual_seed(7))
    dl.load_state_dict(sd, strict=True)
    ne.load_state_dict(sd, strict=True)
    ne_from_dl = population.export(2)
    ne_from_dl.load_state_dict(dl.state_dict(), strict=True)
    dl_from_ne = _dl_module(name, gen)
    dl_from_ne.load_state_dict(ne.state_dict(), strict=True)
    _write_member(population, 3, sd)
    member = population.export(3)
    modules = {"hbm_ne export": ne, "export <- hbm_dl": ne_from_dl, "hbm_dl <- export": dl_from_ne}
    modules["export of written member"] = member

    x_gen = torch.Generator().manual_seed(11)
    if not recurrent:
        x = torch.randn(23, IN, generator=x_gen)
        xb = torch.randn(2, 5, IN, generator=x_gen)  # forward takes [..., in]
        ref, ref_b, ref_p = dl(x), dl(xb), dl.get_probs(x)
        assert ref.shape == (23, OUT) and ref_b.shape == (2, 5, OUT)
        for what, m in modules.items():
            _close(m(x), ref, what)
            _close(m(xb), ref_b, f"{what} [..., in]")
            _close(m.get_probs(x), ref_p, f"{what} get_probs")
        _close(ref_p, torch.softmax(ref, -1), "get_probs = softmax(forward)")
        # the population's own batched forward: shared inputs (tiled kernel) and per-member
        # inputs of a few rows (the small-batch path of rollouts)
        batched = population.forward(x)
        _close(batched[3], ref, "population.forward(x)[member]")
        per_member = torch.randn(POP, 3, IN, generator=x_gen)
        small = population.forward(per_member)
        _close(small[3], dl(per_member[3]), "population.forward([P, n, in])[member]")
        for i in range(POP):
            _close(batched[i], population.export(i)(x), f"population member {i} vs its export")
            _close(small[i], population.export(i)(per_member[i]), f"small batch member {i}")
        return

    e, t = 3, 7
    x = torch.randn(e, t, IN, generator=x_gen)
    mask = torch.arange(t)[None, :] < torch.tensor([t, 4, 1])[:, None]  # end padding
    holes = mask.clone()
    holes[0, 2] = holes[1, 0] = False  # general masks take the step loop
    h0 = torch.randn(e, H, generator=x_gen) * 0.5
    ref_logits, ref_h = dl(x)
    assert ref_logits.shape == (e, t, OUT) and ref_h.shape == (e, H)
    # forward_step from the zero state reproduces the whole-sequence forward
    h = dl.initial_state(e)
    assert h.shape == (e, H) and not h.any()
    steps = []
    for s in range(t):
        logits_s, h = dl.forward_step(x[:, s], h)
        steps.append(logits_s)
    _close(torch.stack(steps, 1), ref_logits, "forward_step sequence vs forward")
    _close(h, ref_h, "forward_step final state vs forward h_T")
    ref_masked, ref_masked_h = dl(x, mask)
    ref_holes, ref_holes_h = dl(x, holes)
    ref_h0, ref_h0_h = dl(x, mask, h0)
    ref_probs, _ = dl.get_probs(x, mask)
    _close(ref_probs[mask], torch.softmax(ref_masked, -1)[mask], "get_probs = softmax")
    # padded steps never change the state: h_T is the state after the last valid step
    for k, n in enumerate([t, 4, 1]):
        _close(ref_masked_h[k], dl(x[k : k + 1, :n])[1][0], f"h_T of sequence {k}")
    for what, m in modules.items():
        logits, h_t = m(x)
        _close(logits, ref_logits, what)
        _close(h_t, ref_h, f"{what} h_T")
        for label, msk, want, want_h, start in (
            ("end padding", mask, ref_masked, ref_masked_h, None),
            ("holes", holes, ref_holes, ref_holes_h, None),
            ("h0", mask, ref_h0, ref_h0_h, h0),
        ):
            logits, h_t = m(x, msk, start)
            _close(logits[msk], want[msk], f"{what} {label}")
            _close(h_t, want_h, f"{what} {label} h_T")
        h = m.initial_state(e)
        for s in range(t):
            logits_s, h = m.forward_step(x[:, s], h)
            _close(logits_s, steps[s], f"{what} forward_step {s}")
        _close(m.get_probs(x, mask)[0][mask], ref_probs[mask], f"{what} get_probs")

    # the population's own batched recurrence (bmm / rank-r products, its own step loop)
    for label, msk, want, want_h, start in (
        ("no mask", None, ref_logits, ref_h, None),
        ("end padding", mask, ref_masked, ref_masked_h, None),
        ("holes", holes, ref_holes, ref_holes_h, None),
        ("h0", mask, ref_h0, ref_h0_h, h0),
    ):
        pop_h0 = None if start is None else start.expand(POP, e, H).contiguous()
        logits, h_t = population.forward(x, msk, pop_h0)
        assert logits.shape == (POP, e, t, OUT) and h_t.shape == (POP, e, H)
        sel = (slice(None),) * 2 if msk is None else (msk,)
        _close(logits[3][sel], want[sel], f"population.forward {label}")
        _close(h_t[3], want_h, f"population.forward {label} h_T")
        for i in range(POP):
            own_logits, own_h = population.export(i)(x, msk, None if start is None else start)
            _close(logits[i][sel], own_logits[sel], f"member {i} vs its export, {label}")
            _close(h_t[i], own_h, f"member {i} vs its export, {label} h_T")
    h = population.initial_state(e)
    assert h.shape == (POP, e, H)
    for s in range(t):
        logits_s, h = population.forward_step(x[:, s], h)
        assert logits_s.shape == (POP, e, OUT)
        _close(logits_s[3], steps[s], f"population.forward_step {s}")
    _close(h[3], ref_h, "population.forward_step final state")


def _params(sig: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


POS, KW = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
_E = inspect.Parameter.empty
_COMMON = [("init", KW, "normal"), ("generator", KW, None), ("device", KW, None)]
DOCUMENTED_SIGNATURES: dict[str, list[tuple[str, Any, Any]]] = {
    "FeedforwardMLP": [
        ("input_size", POS, _E),
        ("hidden_sizes", POS, (50,)),
        ("output_size", POS, None),
        *_COMMON,
    ],
    "RecurrentMLP": [
        ("input_size", POS, _E),
        ("hidden_size", POS, 50),
        ("output_size", POS, None),
        ("kind", KW, "reservoir"),
        ("rank", KW, 1),
        ("spectral_radius", KW, 0.9),
        *_COMMON,
    ],
    "RecurrentMLPReservoir": [
        ("input_size", POS, _E),
        ("hidden_size", POS, 50),
        ("output_size", POS, None),
        ("spectral_radius", KW, 0.9),
        *_COMMON,
    ],
    "RecurrentMLPTrainable": [
        ("input_size", POS, _E),
        ("hidden_size", POS, 50),
        ("output_size", POS, None),
        ("rank", KW, 1),
        ("spectral_radius", KW, 0.9),
        *_COMMON,
    ],
    "is_recurrent": [("model", POS, _E)],
}
RECURRENT_METHODS = ("forward", "forward_step", "initial_state", "get_probs")


def test_module_signatures_agree() -> None:
    for name, documented in DOCUMENTED_SIGNATURES.items():
        ne, dl = getattr(hbm_ne, name), getattr(hbm_dl, name)
        assert name in hbm_ne.__all__ and name in hbm_dl.__all__, name
        assert inspect.signature(ne) == inspect.signature(dl), name
        assert _params(inspect.signature(ne)) == documented, name
    for method in ("forward", "get_probs"):
        assert inspect.signature(getattr(hbm_ne.FeedforwardMLP, method)) == inspect.signature(
            getattr(hbm_dl.FeedforwardMLP, method)
        )
    for method in RECURRENT_METHODS:
        ne_m, dl_m = getattr(hbm_ne.RecurrentMLP, method), getattr(hbm_dl.RecurrentMLP, method)
        assert inspect.signature(ne_m) == inspect.signature(dl_m), method
    assert [p for p in inspect.signature(hbm_dl.RecurrentMLP.forward).parameters] == [
        "self",
        "x",
        "mask",
        "h0",
    ]
    # the aliases are the documented specialisations of RecurrentMLP
    for pkg in (hbm_ne, hbm_dl):
        assert issubclass(pkg.RecurrentMLPReservoir, pkg.RecurrentMLP)
        assert issubclass(pkg.RecurrentMLPTrainable, pkg.RecurrentMLP)
        res = pkg.RecurrentMLPReservoir(IN, H, OUT)
        assert (res.kind, res.rank) == ("reservoir", None)
        tr = pkg.RecurrentMLPTrainable(IN, H, OUT, rank=None)
        assert (tr.kind, tr.rank) == ("trainable", None)
        with pytest.raises(TypeError, match="output_size is required"):
            pkg.FeedforwardMLP(IN, (3,))
    # the populations take the same `init` (default "normal") and export the shared classes
    for cls in (hbm_ne.BatchedFeedforward, hbm_ne.BatchedRecurrent):
        init = inspect.signature(cls).parameters["init"]
        assert (init.kind, init.default) == (KW, "normal")
    assert hbm_ne.DEFAULT_INIT == hbm_dl.DEFAULT_INIT == "normal"
    assert tuple(hbm_ne.INITS) == tuple(hbm_dl.INITS) == ("normal", "uniform")


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------

# sizes chosen so that fan_in differs from fan_out in every layer (a bias drawn with the
# layer's fan_out, or a weight with the wrong dimension, changes the std by ≥ 15 %)
INIT_IN, INIT_HIDDEN, INIT_OUT, INIT_H = 9, (16, 4), 3, 16
N_NETS = 800  # population members (one population: cheap)
N_SINGLE = 300  # single networks (≥ 900 samples per tensor: a std to ±12 % at Z = 5)
Z = 5.0  # standard errors: a false alarm about once in 3.5 million per comparison


def _init_fan_ins(recurrent: bool) -> dict[str, int]:
    if recurrent:
        return {
            "input.weight": INIT_IN,
            "input.bias": INIT_IN,
            "output.weight": INIT_H,
            "output.bias": INIT_H,
        }
    sizes = (INIT_IN, *INIT_HIDDEN)
    out = {}
    for i in range(len(INIT_HIDDEN)):
        out[f"hidden.{i}.weight"] = out[f"hidden.{i}.bias"] = sizes[i]
    out["output.weight"] = out["output.bias"] = sizes[-1]
    return out


def _check_statistics(samples: torch.Tensor, init: str, fan_in: int, what: str) -> None:
    """Mean, std and the share of |x| beyond 1/√fan_in of `samples` against the documented
    distribution, within Z standard errors."""
    x = samples.double().flatten()
    n = x.numel()
    bound = 1.0 / math.sqrt(fan_in)
    if init == "normal":  # N(0, 1/fan_in): kurtosis 3; P(|x| > σ) = 0.3173
        sigma, kurtosis, tail = bound, 3.0, math.erfc(1 / math.sqrt(2))
    else:  # U(±1/√fan_in): σ = bound/√3, kurtosis 1.8, nothing beyond the bound
        sigma, kurtosis, tail = bound / math.sqrt(3), 1.8, 0.0
        assert float(x.abs().max()) <= bound * (1 + 1e-6), f"{what}: beyond U's bound"
    se_mean = sigma / math.sqrt(n)
    se_std = sigma * math.sqrt((kurtosis - 1) / (4 * n))  # delta method for the sample std
    se_tail = math.sqrt(max(tail * (1 - tail), 1e-12) / n)
    mean, std = float(x.mean()), float(x.std())
    share = float((x.abs() > bound).double().mean())
    assert abs(mean) <= Z * se_mean, f"{what}: mean {mean:.4g}, expected 0 ± {Z * se_mean:.2g}"
    assert abs(std - sigma) <= Z * se_std, f"{what}: std {std:.4g}, expected {sigma:.4g}"
    assert abs(share - tail) <= Z * se_tail + 1e-12, f"{what}: {share:.3f} beyond 1/√fan_in"


def _compare_sides(ne: torch.Tensor, dl: torch.Tensor, init: str, fan_in: int, what: str) -> None:
    """The two packages' samples against each other (two-sample z on mean and std)."""
    sigma = 1.0 / math.sqrt(fan_in) / (1.0 if init == "normal" else math.sqrt(3))
    kurtosis = 3.0 if init == "normal" else 1.8
    a, b = ne.double().flatten(), dl.double().flatten()
    se_mean = sigma * math.sqrt(1 / a.numel() + 1 / b.numel())
    se_std = sigma * math.sqrt((kurtosis - 1) / 4 * (1 / a.numel() + 1 / b.numel()))
    assert abs(float(a.mean() - b.mean())) <= Z * se_mean, f"{what}: means differ"
    assert abs(float(a.std() - b.std())) <= Z * se_std, f"{what}: stds differ"


@pytest.mark.parametrize("init", ["normal", "uniform"])
def test_init_statistics_agree(init: str) -> None:
    rng_before = torch.get_rng_state()
    gen = torch.Generator().manual_seed(99)
    # feedforward: one population of N_NETS members vs N_SINGLE single networks
    pop = hbm_ne.BatchedFeedforward(
        INIT_IN, INIT_OUT, N_NETS, hidden_sizes=INIT_HIDDEN, init=init, generator=gen
    )
    nets = [
        hbm_dl.FeedforwardMLP(INIT_IN, INIT_HIDDEN, INIT_OUT, init=init, generator=gen)
        for _ in range(N_SINGLE)
    ]
    views = pop.views()
    for key, fan_in in _init_fan_ins(recurrent=False).items():
        ne_samples = views[key]
        dl_samples = torch.stack([net.state_dict()[key] for net in nets])
        _check_statistics(ne_samples, init, fan_in, f"hbm_ne {key}")
        _check_statistics(dl_samples, init, fan_in, f"hbm_dl {key}")
        _compare_sides(ne_samples, dl_samples, init, fan_in, key)

    # recurrent: input/output layers follow `init`; rank-r factors N(0, 1/H) whatever `init`
    rpop = hbm_ne.BatchedRecurrent(
        INIT_IN, INIT_OUT, N_NETS, INIT_H, kind="trainable", rank=2, init=init, generator=gen
    )
    rnets = [
        hbm_dl.RecurrentMLPTrainable(INIT_IN, INIT_H, INIT_OUT, rank=2, init=init, generator=gen)
        for _ in range(N_SINGLE // 3)
    ]
    rviews = rpop.views()
    for key, fan_in in _init_fan_ins(recurrent=True).items():
        ne_samples = rviews[key]
        dl_samples = torch.stack([net.state_dict()[key] for net in rnets])
        _check_statistics(ne_samples, init, fan_in, f"hbm_ne recurrent {key}")
        _check_statistics(dl_samples, init, fan_in, f"hbm_dl recurrent {key}")
        _compare_sides(ne_samples, dl_samples, init, fan_in, f"recurrent {key}")
    for key in ("recurrent_u", "recurrent_v"):
        ne_samples = rviews[key]
        dl_samples = torch.stack([net.state_dict()[key] for net in rnets])
        _check_statistics(ne_samples, "normal", INIT_H, f"hbm_ne {key}")
        _check_statistics(dl_samples, "normal", INIT_H, f"hbm_dl {key}")

    # recurrences not set by `init`: scaled to spectral radius 0.9 in both
    def radius(w: torch.Tensor) -> float:
        return float(torch.linalg.eigvals(w.detach().double()).abs().max())

    res_pop = hbm_ne.BatchedRecurrent(IN, OUT, 3, H, init=init, generator=gen)
    full_pop = hbm_ne.BatchedRecurrent(IN, OUT, 3, H, kind="trainable", rank=None, generator=gen)
    assert res_pop.reservoir is not None
    radii = [radius(res_pop.reservoir), *(radius(w) for w in full_pop.views()["recurrent_weight"])]
    radii.append(radius(hbm_dl.RecurrentMLPReservoir(IN, H, OUT, generator=gen).recurrent_weight))
    full = hbm_dl.RecurrentMLPTrainable(IN, H, OUT, rank=None, generator=gen)
    radii.append(radius(full.recurrent_weight))
    assert radii == pytest.approx([0.9] * len(radii), rel=1e-5)

    # draws only from `generator`: the same seed gives the same network; no global RNG touched
    for pkg in (hbm_ne, hbm_dl):
        a = pkg.FeedforwardMLP(IN, (4,), OUT, init=init, generator=torch.Generator().manual_seed(3))
        b = pkg.FeedforwardMLP(IN, (4,), OUT, init=init, generator=torch.Generator().manual_seed(3))
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng_before), "initialisation used the global RNG"


# --------------------------------------------------------------------------------------------
# EpisodeData
# --------------------------------------------------------------------------------------------


def test_episode_data_fields_agree() -> None:
    ne_cls, dl_cls = hbm_ne.EpisodeData, hbm_dl.EpisodeData
    documented = [
        ("obs", "Tensor", dataclasses.MISSING),
        ("actions", "Tensor", dataclasses.MISSING),
        ("episode_lengths", "tuple[int, ...] | None", None),
        ("sessions", "tuple[int, ...] | None", None),
    ]
    for cls in (ne_cls, dl_cls):
        fields = [(f.name, str(f.type), f.default) for f in dataclasses.fields(cls)]
        assert fields == documented, cls
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
    assert inspect.signature(ne_cls.from_arrays) == inspect.signature(dl_cls.from_arrays)
    assert _params(inspect.signature(dl_cls.from_arrays)) == [
        ("obs", POS, _E),
        ("actions", POS, _E),
        ("episode_lengths", POS, None),
        ("sessions", KW, None),
        ("device", KW, None),
    ]
    for name in ("to", "sequences"):
        assert inspect.signature(getattr(ne_cls, name)) == inspect.signature(
            getattr(dl_cls, name)
        ), name
    for name in ("num_steps", "input_size", "num_episodes"):
        assert isinstance(getattr(ne_cls, name), property), name
        assert isinstance(getattr(dl_cls, name), property), name

    # the same arrays give the same data, whichever package reads them
    obs, actions, lengths = _data(5)
    sessions = [3, 3, 1, 3, 1]
    ne = ne_cls.from_arrays(obs, actions.astype(np.float64), lengths, sessions=sessions)
    dl = dl_cls.from_arrays(obs, actions.astype(np.float64), lengths, sessions=sessions)
    for d in (ne, dl):
        assert d.obs.dtype == torch.float32 and d.actions.dtype == torch.int64
        assert d.episode_lengths == tuple(lengths) and d.sessions == tuple(sessions)
        assert (d.num_steps, d.input_size, d.num_episodes) == (len(actions), IN, 5)
        assert d.sequences("episode") == [[0], [1], [2], [3], [4]]
        assert d.sequences("session") == [[0, 1, 3], [2, 4]]
        assert d.to("cpu").obs.device.type == "cpu"
    assert torch.equal(ne.obs, dl.obs) and torch.equal(ne.actions, dl.actions)
    pool = [cls.from_arrays(obs, actions) for cls in (ne_cls, dl_cls)]
    assert [(p.episode_lengths, p.sessions, p.num_episodes) for p in pool] == [(None, None, 0)] * 2
    # the same inputs are refused by both
    bad: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        ((obs, actions, [*lengths[:-1], lengths[-1] + 1]), {}, "sum to"),
        ((obs, actions[:-1]), {}, "actions must be"),
        ((obs, actions + 0.5), {}, "integer"),
        ((obs, actions - 5), {}, ">= 0"),
        ((obs, actions), {"sessions": [0]}, "sessions needs episode_lengths"),
        ((obs, actions, lengths), {"sessions": [0]}, "one per episode"),
    ]
    for args, kwargs, match in bad:
        for cls in (ne_cls, dl_cls):
            with pytest.raises(ValueError, match=match):
                cls.from_arrays(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Evaluation and macro F1
# --------------------------------------------------------------------------------------------


def _reference_f1_seed(seed: int, step: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9) % 2**63


def _reference_logits(model: torch.nn.Module, obs: np.ndarray, sequences: list[list[int]]) -> Any:
    """Logits [N, A] in row order: feedforward row by row, recurrent by forward_step from a zero
    state over each sequence's rows (independent of the packages' padding and batching)."""
    x = torch.as_tensor(obs)
    with torch.no_grad():
        if not hbm_dl.is_recurrent(model):
            return model(x).double().numpy()
        out = torch.empty(x.shape[0], OUT, dtype=torch.float64)
        for rows in sequences:
            h = model.initial_state(1)
            for r in rows:
                logits, h = model.forward_step(x[r : r + 1], h)
                out[r] = logits[0].double()
        return out.numpy()


def _reference_evaluate(
    logits: np.ndarray, actions: np.ndarray, f1_samples: int, seed: int, step: int
) -> dict[str, float]:
    """docs/interfaces.md's algorithm, written out with numpy and sklearn."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    gen = torch.Generator().manual_seed(_reference_f1_seed(seed, step))
    u = torch.rand(f1_samples, len(actions), generator=gen, dtype=torch.float64).numpy()
    cdf = np.cumsum(np.exp(logits - logits.max(-1, keepdims=True)), -1)
    cdf = cdf / cdf[:, -1:]  # float64 softmax, cumulated
    a = logits.shape[-1]
    f1s = []
    for k in range(f1_samples):
        sampled = (cdf[:, : a - 1] < (u[k] * cdf[:, -1])[:, None]).sum(-1)
        f1s.append(
            f1_score(actions, sampled, average="macro", labels=list(range(a)), zero_division=0)
        )
    return {
        "ce": float(-logp[np.arange(len(actions)), actions].mean()),
        "accuracy": float((logits.argmax(-1) == actions).mean()),
        "f1": float(np.mean(f1s)),
    }


def _assert_metrics(got: dict[str, float], want: dict[str, float], what: str) -> None:
    assert set(got) == {"ce", "accuracy", "f1"}, what
    # CE: float32 logits → float32 log-softmax (rel ~1e-7); accuracy and F1 count discrete
    # outcomes (a draw flips only within ~1e-7 of a CDF boundary: never for these data)
    assert got["ce"] == pytest.approx(want["ce"], rel=1e-5), what
    assert got["accuracy"] == want["accuracy"], what
    assert got["f1"] == pytest.approx(want["f1"], rel=1e-9, abs=1e-12), what


@pytest.mark.parametrize("name", ["feedforward-2", "reservoir", "trainable-rank1"])
def test_f1_agrees(name: str) -> None:
    gen = torch.Generator().manual_seed(5)
    dl = _dl_module(name, gen)
    dl.load_state_dict(_random_state_dict(dl, torch.Generator().manual_seed(6)))
    ne = _population(name, gen).export(0)
    ne.load_state_dict(dl.state_dict())
    obs, actions, lengths = _data(6, seed=1)
    sessions = [0, 1, 0, 1, 1, 2]
    recurrent = hbm_dl.is_recurrent(dl)
    ep = lengths if recurrent else None
    ses = sessions if recurrent else None
    ne_data = hbm_ne.EpisodeData.from_arrays(obs, actions, ep, sessions=ses)
    dl_data = hbm_dl.EpisodeData.from_arrays(obs, actions, ep, sessions=ses)
    starts = np.cumsum([0, *lengths])
    episodes = [list(range(starts[i], starts[i + 1])) for i in range(len(lengths))]
    sessions_of = {0: (0, 2), 1: (1, 3, 4), 2: (5,)}  # in order of first appearance
    by_session = [[r for e in eps for r in episodes[e]] for eps in sessions_of.values()]
    logits = {
        "episode": _reference_logits(dl, obs, episodes),
        "session": _reference_logits(dl, obs, by_session),
    }
    if recurrent:  # carrying the state across a session's episodes changes the logits
        assert not np.allclose(logits["episode"], logits["session"])

    seen_f1 = set()
    for seed, step, f1_samples in ((0, 0, 10), (3, 0, 10), (3, 17, 7), (2**40, 12345, 3)):
        assert hbm_ne.f1_seed(seed, step) == hbm_dl.f1_seed(seed, step)
        assert hbm_ne.f1_seed(seed, step) == _reference_f1_seed(seed, step)
        for unit in ("episode", "session") if recurrent else ("episode",):
            want = _reference_evaluate(logits[unit], actions, f1_samples, seed, step)
            kw = {"f1_samples": f1_samples, "seed": seed, "step": step, "unit": unit}
            results = {
                "hbm_ne": hbm_ne.evaluate(ne, ne_data, **kw),
                "hbm_dl": hbm_dl.evaluate(dl, dl_data, **kw),
                "hbm_ne on hbm_dl data": hbm_ne.evaluate(dl, dl_data, **kw),
                # (hbm_dl.evaluate on hbm-ne's EpisodeData: test_evaluate_takes_either_data)
            }
            if not recurrent:
                results["hbm_ne on a tuple"] = hbm_ne.evaluate(ne, (obs, actions), **kw)
                results["hbm_dl on a tuple"] = hbm_dl.evaluate(dl, (obs, actions), **kw)
            for what, got in results.items():
                _assert_metrics(got, want, f"{name} {what} {kw}")
            # the two packages: the same number, not merely close
            assert results["hbm_ne"] == results["hbm_dl"]
            seen_f1.add(want["f1"])
            t_logits = torch.as_tensor(logits[unit])
            mixed = hbm_ne.f1_seed(seed, step)
            ne_f1 = hbm_ne.sampled_macro_f1(
                t_logits, torch.as_tensor(actions), seed=mixed, f1_samples=f1_samples
            )
            dl_f1 = hbm_dl.sampled_macro_f1(
                t_logits, torch.as_tensor(actions), seed=mixed, f1_samples=f1_samples
            )
            assert ne_f1 == dl_f1 == pytest.approx(want["f1"], rel=1e-9)
    assert len(seen_f1) > 2  # the seed and step do reach the draws

    empty = (np.zeros((0, IN), np.float32), np.zeros(0, np.int64))
    if not recurrent:
        for pkg, m in ((hbm_ne, ne), (hbm_dl, dl)):
            assert all(math.isnan(v) for v in pkg.evaluate(m, empty).values())


def test_evaluate_takes_either_data() -> None:
    obs, actions, lengths = _data(3)
    model = hbm_dl.RecurrentMLPReservoir(IN, H, OUT)
    ne_data = hbm_ne.EpisodeData.from_arrays(obs, actions, lengths)
    dl_data = hbm_dl.EpisodeData.from_arrays(obs, actions, lengths)
    want = hbm_dl.evaluate(model, dl_data, seed=4, step=2)
    assert hbm_ne.evaluate(model, dl_data, seed=4, step=2) == want
    assert hbm_dl.evaluate(model, ne_data, seed=4, step=2) == want


def test_evaluate_signatures_agree() -> None:
    documented = [
        ("model", POS, _E),
        ("data", POS, _E),
        ("f1_samples", KW, 10),
        ("seed", KW, 0),
        ("step", KW, 0),
        ("unit", KW, "episode"),
    ]
    assert _params(inspect.signature(hbm_ne.evaluate)) == documented
    assert _params(inspect.signature(hbm_dl.evaluate)) == documented
    for name in ("f1_seed", "sampled_macro_f1"):
        ne, dl = getattr(hbm_ne, name), getattr(hbm_dl, name)
        assert inspect.signature(ne) == inspect.signature(dl), name


def test_final_metric_equals_last_history_row() -> None:
    from hbm_experiments import make_experiment
    from hbm_experiments.evaluation import load_model
    from hbm_experiments.tasks import MODEL_FILE

    ga = {
        "method": "ga_feedforward",
        "seed": 1,
        "model": {"hidden_size": 3},
        "optimizer": {"population_size": 4},
        # generations 0..3, rows at 0 and 2 (eval_every) and a closing row at 3
        "training": {"max_generations": 4, "eval_every": 2},
    }
    adam = {
        "method": "adam_reservoir",
        "seed": 1,
        "model": {"hidden_size": 3},
        # steps 0..3, rows at 0 and 2 (eval_every) and a closing row at 3
        "training": {"max_steps": 3, "eval_every": 2, "batch_size": 4},
    }
    for config, last_step, other in ((ga, 3, hbm_dl), (adam, 3, hbm_ne)):
        exp = make_experiment(config)
        result = exp.run()
        last = result["history"][-1]
        assert [r["step"] for r in result["history"]] == [0, 2, 3], config["method"]
        assert last["step"] == last_step
        for key in ("test_f1", "test_ce", "test_accuracy"):
            # exact: the final evaluation is the training loop's `evaluate`, with the run's
            # seed and the last row's step, on the same model and test data
            assert result["metrics"][key] == last[key], (config["method"], key)
        # docs/interfaces.md: final metric = evaluate(model, test, seed=<run seed>,
        # step=history[-1]["step"]), here through the *other* package's evaluate
        model = load_model(exp.infra.uid_folder() / MODEL_FILE)
        data = exp.data_task().load()
        lengths = data.metadata.test_episode_lengths if other.is_recurrent(model) else None
        test = other.EpisodeData.from_arrays(data.test_obs, data.test_act, lengths)
        again = other.evaluate(model, test, seed=1, step=last["step"])
        assert again == {
            "ce": last["test_ce"],
            "accuracy": last["test_accuracy"],
            "f1": last["test_f1"],
        }, config["method"]


# --------------------------------------------------------------------------------------------
# Training loops: Progress, callbacks, results
# --------------------------------------------------------------------------------------------

DOCUMENTED_PROGRESS = [
    ("step", "int", dataclasses.MISSING),
    ("epoch", "float | None", dataclasses.MISSING),
    ("samples_seen", "int", dataclasses.MISSING),
    ("elapsed", "float", dataclasses.MISSING),
    ("train_loss", "float", dataclasses.MISSING),
    ("test_ce", "float | None", None),
    ("test_f1", "float | None", None),
    ("test_accuracy", "float | None", None),
    ("val_loss", "float | None", None),
    ("val_f1", "float | None", None),
    ("val_accuracy", "float | None", None),
    ("evaluated", "bool", False),
    ("resumed_from", "int | None", None),
]
DOCUMENTED_ROW = (
    "step",
    "epoch",
    "elapsed",
    "samples_seen",
    "train_loss",
    "test_ce",
    "test_accuracy",
    "test_f1",
)


def test_progress_fields_agree() -> None:
    for cls in (hbm_ne.Progress, hbm_dl.Progress):
        assert [(f.name, str(f.type), f.default) for f in dataclasses.fields(cls)] == (
            DOCUMENTED_PROGRESS
        ), cls
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
    assert inspect.signature(hbm_ne.Progress) == inspect.signature(hbm_dl.Progress)
    # history rows: the same first eight keys; hbm-ne adds its own three
    assert tuple(hbm_dl.HISTORY_FIELDS) == DOCUMENTED_ROW
    assert tuple(hbm_ne.HISTORY_FIELDS) == (
        *DOCUMENTED_ROW,
        "generation",
        "best_fitness",
        "mean_fitness",
    )


def _tiny(tmp: Path, **kwargs: Any) -> tuple[Any, Any]:
    """A tiny `train_supervised` and a tiny `optimize_sgd` run with the same shared keywords."""
    obs, actions, _ = _data(8)
    cut = len(actions) * 2 // 3
    train, test = (obs[:cut], actions[:cut]), (obs[cut:], actions[cut:])
    gen = torch.Generator().manual_seed(0)
    ne_budget = kwargs.pop("ne_budget", {"max_generations": 3})
    dl_budget = kwargs.pop("dl_budget", {"max_steps": 3})
    ne = hbm_ne.train_supervised(
        hbm_ne.BatchedFeedforward(IN, OUT, POP, (3,), generator=gen),
        train,
        test,
        checkpoint_path=tmp / "ne.pt",
        **ne_budget,
        **kwargs,
    )
    dl = hbm_dl.optimize_sgd(
        hbm_dl.FeedforwardMLP(IN, (3,), OUT, generator=gen),
        train,
        test,
        batch_size=8,
        checkpoint_path=tmp / "dl.pt",
        **dl_budget,
        **kwargs,
    )
    return ne, dl


def test_callback_stops_both(tmp_path: Path) -> None:
    calls: dict[str, list[Any]] = {"ne": [], "dl": []}

    def stopper(key: str) -> Any:
        def callback(progress: Any) -> bool:
            calls[key].append(progress)
            return True

        return callback

    obs, actions, _ = _data(4)
    gen = torch.Generator().manual_seed(0)
    ne = hbm_ne.train_supervised(
        hbm_ne.BatchedFeedforward(IN, OUT, POP, (3,), generator=gen),
        (obs, actions),
        (obs, actions),
        max_generations=50,
        eval_every=10,
        checkpoint_path=tmp_path / "ne.pt",
        checkpoint_every_seconds=None,
        callbacks=[stopper("ne")],
    )
    dl = hbm_dl.optimize_sgd(
        hbm_dl.FeedforwardMLP(IN, (3,), OUT, generator=gen),
        (obs, actions),
        (obs, actions),
        max_steps=50,
        eval_every=10,
        checkpoint_path=tmp_path / "dl.pt",
        checkpoint_every_seconds=None,
        callbacks=[stopper("dl")],
    )
    for key, result, pkg, done in (("ne", ne, hbm_ne, 1), ("dl", dl, hbm_dl, 0)):
        assert len(calls[key]) == 1, key  # stopped after the first call
        progress = calls[key][0]
        assert isinstance(progress, pkg.Progress), key
        assert (progress.step, progress.evaluated, progress.resumed_from) == (0, True, None), key
        assert result.stop_reason == "callback", key
        assert result.steps == done, key  # hbm-ne: generation 0 ran; hbm-dl: no update yet
        # the history row of the stopping step, which the Progress carried
        assert result.history[-1]["step"] == 0 and result.history[-1]["test_f1"] is not None
        assert progress.test_f1 == result.history[-1]["test_f1"], key
        assert progress.test_ce == result.history[-1]["test_ce"], key
        # a final checkpoint was written (no cadence was set: only the final one)
        path = tmp_path / f"{key}.pt"
        assert path.exists() and result.checkpoint_path == path, key
        assert pkg.checkpoint_info(path).step == done, key

    # only `True` stops: any other return value (even a truthy one) continues
    counts = {"ne": 0, "dl": 0}

    def truthy(progress: Any) -> int:
        counts["ne" if isinstance(progress, hbm_ne.Progress) else "dl"] += 1
        return 1

    ne2, dl2 = _tiny(tmp_path / "truthy", callbacks=[truthy])
    assert counts["ne"] == 3 and ne2.stop_reason == "max_generations"  # generations 0, 1, 2
    assert counts["dl"] == 4 and dl2.stop_reason == "max_steps"  # step 0, then 3 updates


DOCUMENTED_TRAINING_KEYWORDS = {
    # shared name: (hbm-ne default, hbm-dl default); same meaning in both
    "max_time": (None, None),
    "eval_every": (10, 1000),  # a count of steps in both; defaults own to each learner
    "eval_every_seconds": (None, None),
    "checkpoint_every": (None, None),
    "checkpoint_every_seconds": (300.0, 300.0),
    "f1_samples": (10, 10),
    "resume": (True, True),
    "fingerprint": (None, None),
    "callbacks": ((), ()),
    "seed": (0, 0),
    "device": (None, None),
    "checkpoint_path": (None, None),
}


def test_training_loop_keywords_agree() -> None:
    ne = inspect.signature(hbm_ne.train_supervised).parameters
    evolve = inspect.signature(hbm_ne.evolve).parameters
    dl = inspect.signature(hbm_dl.optimize_sgd).parameters
    for name, (ne_default, dl_default) in DOCUMENTED_TRAINING_KEYWORDS.items():
        assert ne[name].kind is KW and dl[name].kind is KW, name
        assert ne[name].default == ne_default, name
        assert dl[name].default == dl_default, name
        if name not in ("eval_every", "f1_samples"):  # evolve: eval_every=1, no F1 of its own
            assert evolve[name].default == ne_default, name
    assert "max_generations" in ne and "max_generations" in evolve
    assert {"max_steps", "max_epochs"} <= set(dl)
    assert list(ne)[:4] == ["population", "train_data", "test_data", "optimizer"]
    assert list(dl)[:3] == ["model", "train_data", "test_data"]
    # at least one budget is required in both
    obs, actions, _ = _data(2)
    with pytest.raises(ValueError):
        hbm_ne.train_supervised(hbm_ne.BatchedFeedforward(IN, OUT, 2, (2,)), (obs, actions))
    with pytest.raises(ValueError):
        hbm_dl.optimize_sgd(hbm_dl.FeedforwardMLP(IN, (2,), OUT), (obs, actions))


COMMON_RESULT_FIELDS = {
    # dataclass fields present in both, with the same annotation
    "history": "list[dict[str, Any]]",
    "elapsed": "float",
    "stop_reason": "str",
    "samples_seen": "int",
    "resumed_from": "int | None",
    "checkpoint_time": "str | None",
    "checkpoint_path": "Path | None",
    "fingerprint": "dict[str, Any]",
    "extra": "dict[str, Any]",
}
COMMON_RESULT_NAMES = (
    *COMMON_RESULT_FIELDS,
    "model",
    "steps",
    "test_loss_history",
    "f1_history",
)


def test_result_fields_agree(tmp_path: Path) -> None:
    assert hbm_ne.TrainResult is hbm_ne.EvolveResult
    assert hbm_dl.TrainResult is hbm_dl.SGDResult
    for cls in (hbm_ne.TrainResult, hbm_dl.TrainResult):
        types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        for name, annotation in COMMON_RESULT_FIELDS.items():
            assert types.get(name) == annotation, (cls, name)
        assert "model" in types, cls
    ne, dl = _tiny(tmp_path)
    assert (ne.stop_reason, dl.stop_reason) == ("max_generations", "max_steps")
    for key, result in (("hbm_ne", ne), ("hbm_dl", dl)):
        keys = result.keys()
        for name in COMMON_RESULT_NAMES:
            assert hasattr(result, name), (key, name)
            if name != "extra":  # the storage of extra keys, not one of them
                assert name in keys and name in result, (key, name)
                value = result[name]
                same = value is getattr(result, name) or value == getattr(result, name)
                assert same, (key, name)
        assert isinstance(result.model, torch.nn.Module), key
        assert result.steps == 3 and result.resumed_from is None and result.checkpoint_time is None
        assert result.checkpoint_path == tmp_path / f"{key[4:]}.pt"
        assert key in result.fingerprint, key  # the library's own part, under its reserved key
        assert result.test_loss_history == [r["test_ce"] for r in result.history]
        assert result.f1_history == [r["test_f1"] for r in result.history]
        assert set(DOCUMENTED_ROW) <= set(result.history[-1]), key
        assert result.samples_seen == result.history[-1]["samples_seen"], key
        result["note"] = 1  # unknown keys go to extra
        assert result.extra == {"note": 1} and result["note"] == 1 and "note" in list(result.keys())
        result["stop_reason"] = "x"  # known keys set the attribute
        assert result.stop_reason == "x"
    # the names owned by one learner
    for name in ("best", "best_params", "generations", "final_generation", "fitness_history"):
        assert name in list(ne.keys()), name
    assert ne.best is ne.model and ne.generations == ne.final_generation == ne.steps == 3
    assert len(ne.fitness_history) == 3
    assert "loss_history" in list(dl.keys()) and dl.loss_history == [
        r["train_loss"] for r in dl.history
    ]


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _refused(error: type[Exception], run: Any, path: Path) -> str:
    """The message of `error` raised by `run()`, which must leave `path` and its folder as they
    were (bytes, and no temp file left behind)."""
    before, listing = path.read_bytes(), sorted(path.parent.iterdir())
    with pytest.raises(error) as info:
        run()
    assert path.read_bytes() == before, f"{path} was modified"
    assert sorted(path.parent.iterdir()) == listing, "files appeared next to the checkpoint"
    return str(info.value)


def test_checkpoint_errors_agree(tmp_path: Path) -> None:
    for pkg in (hbm_ne, hbm_dl):
        assert issubclass(pkg.CheckpointError, ValueError), pkg
    assert hbm_ne.CheckpointError is not hbm_dl.CheckpointError  # two copies, one contract

    obs, actions, _ = _data(3)
    data = (obs, actions)

    def run_ne(path: Path, fingerprint: dict[str, Any]) -> Any:
        population = hbm_ne.BatchedFeedforward(IN, OUT, POP, (3,))
        return hbm_ne.train_supervised(
            population, data, max_generations=1, checkpoint_path=path, fingerprint=fingerprint
        )

    def run_dl(path: Path, fingerprint: dict[str, Any]) -> Any:
        model = hbm_dl.FeedforwardMLP(IN, (3,), OUT)
        return hbm_dl.optimize_sgd(
            model, data, max_steps=1, checkpoint_path=path, fingerprint=fingerprint
        )

    runs = {"ne": run_ne, "dl": run_dl}
    paths = {key: tmp_path / key / "checkpoint.pt" for key in runs}
    for key, run in runs.items():
        run(paths[key], {"config": {"lr": 1}})
        assert paths[key].exists()

    # another run's checkpoint: the differing field named, the same message in both
    messages: dict[str, list[str]] = {"ne": [], "dl": []}
    for key, run in runs.items():
        pkg = hbm_ne if key == "ne" else hbm_dl
        p = paths[key]
        for fingerprint in ({"config": {"lr": 2}}, {"config": {"lr": 1, "new": 5}}):
            msg = _refused(pkg.CheckpointError, lambda p=p, f=fingerprint, r=run: r(p, f), p)
            messages[key].append(msg.replace(str(p), "<path>"))
    assert messages["ne"] == messages["dl"]
    changed, added = messages["ne"]
    assert changed.startswith(
        "<path>: the checkpoint belongs to another run: fingerprint.config.lr is 1 in the "
        "checkpoint, 2 now. It was left untouched: pass resume=False to start afresh"
    ), changed
    assert "or use another checkpoint_path." in changed
    assert "fingerprint.config.new is absent in the checkpoint, 5 now." in added, added

    # the other package's checkpoint is foreign: field 'format' named, file untouched
    ne_fmt, dl_fmt = "hbm_ne.evolve", "hbm_dl.optimize_sgd"
    foreign_ne = _refused(hbm_ne.CheckpointError, lambda: run_ne(paths["dl"], {}), paths["dl"])
    foreign_dl = _refused(hbm_dl.CheckpointError, lambda: run_dl(paths["ne"], {}), paths["ne"])
    assert f"field 'format' is {dl_fmt!r}, expected {ne_fmt!r}" in foreign_ne
    assert f"field 'format' is {ne_fmt!r}, expected {dl_fmt!r}" in foreign_dl
    swap = {ne_fmt: "<own>", dl_fmt: "<other>"}
    swap_back = {dl_fmt: "<own>", ne_fmt: "<other>"}

    def shape(msg: str, path: Path, names: dict[str, str]) -> str:
        msg = msg.replace(str(path), "<path>")
        for name, placeholder in names.items():
            msg = msg.replace(repr(name), placeholder)
        return msg

    assert shape(foreign_ne, paths["dl"], swap) == shape(foreign_dl, paths["ne"], swap_back)
    for pkg, other in ((hbm_ne, paths["dl"]), (hbm_dl, paths["ne"])):
        msg = _refused(pkg.CheckpointError, lambda pkg=pkg, o=other: pkg.checkpoint_info(o), other)
        assert "field 'format'" in msg

    # an older version and a file that is not a checkpoint at all: refused alike
    shapes: dict[str, list[str]] = {"ne": [], "dl": []}
    for key, fmt in (("ne", ne_fmt), ("dl", dl_fmt)):
        pkg = hbm_ne if key == "ne" else hbm_dl
        old = tmp_path / f"old-{key}" / "checkpoint.pt"
        old.parent.mkdir()
        torch.save({"format": fmt, "version": 1, "step": 0, "elapsed": 0.0}, old)
        junk = tmp_path / f"junk-{key}" / "checkpoint.pt"
        junk.parent.mkdir()
        junk.write_bytes(b"not a torch file\n")
        for p in (old, junk):
            msg = _refused(pkg.CheckpointError, lambda p=p, k=key: runs[k](p, {}), p)
            shapes[key].append(msg.replace(str(p), "<path>"))
        assert "field 'version' is 1, expected 2" in shapes[key][0]
        assert shapes[key][1].startswith("<path>: cannot read checkpoint (")
    assert shapes["ne"] == shapes["dl"]
