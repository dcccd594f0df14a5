"""CPU kernel paths: worker threads, cache tiles, the cross-entropy's elementwise passes."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
import torch.nn.functional as F
from hbm_ne import BatchedFeedforward, _kernels, cross_entropy
from hbm_ne import population as population_module
from hbm_ne.fitness import accuracy, ce_sum, margin_ce_sum
from hbm_ne.population import parallel_map, worker_pool
from ne_helpers import assert_close, intraop_threads


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _module_ce(pop: BatchedFeedforward, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([F.cross_entropy(pop.export(i)(x), y) for i in range(len(pop))])


def test_worker_pool_leaves_the_callers_thread_count_alone() -> None:
    before = torch.get_num_threads()
    pool = worker_pool(3)
    assert torch.get_num_threads() == before
    # every worker runs torch on one intra-op thread, whatever the caller uses
    assert set(pool.map(lambda _: torch.get_num_threads(), range(12))) == {1}
    assert worker_pool(3) is pool


def test_parallel_map_restores_the_callers_threads_and_raises_errors() -> None:
    with intraop_threads(2):
        seen = parallel_map(lambda _: torch.get_num_threads(), range(6), torch.device("cpu"))
        assert seen == [1] * 6 and torch.get_num_threads() == 2

        def fail_on_3(i: int) -> int:
            if i == 3:
                raise ValueError("item 3")
            return i

        with pytest.raises(ValueError, match="item 3"):
            parallel_map(fail_on_3, range(6), torch.device("cpu"))
        started: list[int] = []

        def fail_first(i: int) -> int:
            started.append(i)
            if i == 0:
                raise ValueError("item 0")
            time.sleep(0.05)
            return i

        with pytest.raises(ValueError, match="item 0"):
            parallel_map(fail_first, range(40), torch.device("cpu"))
        assert len(started) < 10  # the others stop claiming items after the error
        assert torch.get_num_threads() == 2
        assert parallel_map(lambda i: i * i, range(5), torch.device("cpu")) == [0, 1, 4, 9, 16]


def test_parallel_map_keeps_order_and_runs_nested_calls_inline(torch_threads: int) -> None:
    def inner(i: int) -> list[int]:
        return parallel_map(lambda j: 10 * i + j, range(3), torch.device("cpu"))

    assert parallel_map(inner, range(5), torch.device("cpu")) == [
        [10 * i + j for j in range(3)] for i in range(5)
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_fresh_worker_threads() -> None:
    """The parent's pool threads do not exist in a child: it must start its own, not hang."""
    pop = BatchedFeedforward(4, 2, 60, generator=gen())
    x = torch.randn(3000, 4, generator=gen(1))
    y = torch.randint(0, 2, (3000,), generator=gen(2))
    with intraop_threads(2):
        expected = cross_entropy(pop, x, y)  # the parent's pool exists from here on
        pid = os.fork()
        if pid == 0:  # child: exit code 0 only if the result comes back and is the same
            ok = torch.equal(cross_entropy(pop, x, y), expected)
            os._exit(0 if ok else 1)
        deadline = time.monotonic() + 60
        done, status = os.waitpid(pid, os.WNOHANG)
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
            done, status = os.waitpid(pid, os.WNOHANG)
        if not done:  # hung: do not leave it behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert done, "the forked child hung on the parent's worker pool"
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("script", [True, False], ids=["torchscript", "python"])
@pytest.mark.parametrize("tile_bytes", [640 * 2**10, 4000, 700])
@pytest.mark.parametrize("shared", [True, False])
def test_tiled_forward_equals_module_loop(
    tile_bytes: int,
    shared: bool,
    script: bool,
    torch_threads: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tiles of several members, of one member, and of part of one member's samples; the
    TorchScript kernel and its Python source alike."""
    monkeypatch.setattr(population_module, "CPU_TILE_BYTES", tile_bytes)
    monkeypatch.setattr(_kernels, "USE_TORCHSCRIPT", script)
    pop = BatchedFeedforward(5, 3, 11, (20, 7), generator=gen())
    x = torch.randn(67, 5, generator=gen(1)) if shared else torch.randn(11, 67, 5, generator=gen(1))
    out = pop(x)
    for i in range(11):
        assert_close(out[i], pop.export(i)(x if shared else x[i]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("script", [True, False], ids=["torchscript", "python"])
@pytest.mark.parametrize("tile_bytes", [640 * 2**10, 4000, 700])
@pytest.mark.parametrize("outputs", [2, 3])
@pytest.mark.parametrize("scale", [1.0, 300.0])  # 300: logits past exp's range, recomputed
def test_fused_cross_entropy_equals_module_loop_for_any_tiling(
    tile_bytes: int,
    outputs: int,
    scale: float,
    script: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loss fused into the chunk kernel, with its fast path and its recompute-and-stable
    path, over tiles of several members, of one member and of part of one member's samples."""
    monkeypatch.setattr(population_module, "CPU_TILE_BYTES", tile_bytes)
    monkeypatch.setattr(_kernels, "USE_TORCHSCRIPT", script)
    pop = BatchedFeedforward(5, outputs, 11, (20, 7), generator=gen())
    pop.views()["output.weight"].mul_(scale)
    x = torch.randn(67, 5, generator=gen(1))
    y = torch.randint(0, outputs, (67,), generator=gen(2))
    expected = _module_ce(pop, x, y)
    if scale > 1:
        assert expected.max() > 40  # steps far beyond exp's float32 range
    assert_close(cross_entropy(pop, x, y), expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("members", [5, 70])  # one chunk, three chunks
@pytest.mark.parametrize("outputs", [2, 4])
def test_fitness_is_identical_for_any_thread_count(outputs: int, members: int) -> None:
    """Fixed chunks and per-chunk sums: the worker threads change the speed, not the result."""
    pop = BatchedFeedforward(8, outputs, members, generator=gen())
    x = torch.randn(3000, 8, generator=gen(1))
    y = torch.randint(0, outputs, (3000,), generator=gen(2))
    results = []
    for t in (1, 2, 3):
        with intraop_threads(t):
            results.append((cross_entropy(pop, x, y), accuracy(pop, x, y)))
    for ce, acc in results[1:]:
        assert torch.equal(ce, results[0][0]) and torch.equal(acc, results[0][1])
    assert_close(results[0][0], _module_ce(pop, x, y), atol=1e-5, rtol=1e-5)


def test_kernels_are_scripted() -> None:
    """The speed comes from running without the GIL: a silent fallback would hide a loss."""
    for name in _kernels._FUNCTIONS:
        assert isinstance(_kernels.kernel(name, torch.device("cpu")), torch.jit.ScriptFunction)


@pytest.mark.parametrize("script", [True, False], ids=["torchscript", "python"])
@pytest.mark.parametrize("scale", [1.0, 40.0, 200.0])
def test_two_class_cross_entropy_paths_are_exact(
    scale: float, script: bool, torch_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both elementwise paths (numpy with 2 threads, torch with 1), with the overflow fallback
    (margins ≥ 80) and steps whose loss underflows."""
    monkeypatch.setattr(_kernels, "USE_TORCHSCRIPT", script)
    margin = torch.randn(3, 500, generator=gen(4)) * scale
    y = torch.randint(0, 2, (500,), generator=gen(5))
    logits = torch.stack([torch.zeros_like(margin), margin], dim=-1)
    ref = torch.stack([F.cross_entropy(lo.double(), y, reduction="sum") for lo in logits])
    assert_close(margin_ce_sum(margin.clone(), y), ref, atol=1e-3, rtol=1e-6)
    assert_close(ce_sum(logits.clone(), y), ref, atol=1e-3, rtol=1e-6)


@pytest.mark.parametrize("script", [True, False], ids=["torchscript", "python"])
@pytest.mark.parametrize("scale", [1.0, 200.0])
def test_multiclass_cross_entropy_with_weights_is_exact(
    scale: float, script: bool, torch_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_kernels, "USE_TORCHSCRIPT", script)
    logits = torch.randn(2, 4, 50, 5, generator=gen(6)) * scale  # [c, E, T, A]
    y = torch.randint(0, 5, (4, 50), generator=gen(7))
    w = (torch.rand(4, 50, generator=gen(8)) > 0.3).float()
    ref = torch.stack(
        [
            (
                F.cross_entropy(lo.double().reshape(-1, 5), y.reshape(-1), reduction="none")
                * w.reshape(-1).double()
            ).sum()
            for lo in logits
        ]
    )
    assert_close(ce_sum(logits.clone(), y, w), ref, atol=1e-3, rtol=1e-6)
    assert_close(ce_sum(logits.clone(), y, w, inplace=True), ref, atol=1e-3, rtol=1e-6)


@pytest.mark.parametrize("hidden", [(16,), ()])
@pytest.mark.parametrize("outputs", [2, 4])
def test_fitness_with_huge_logits_falls_back_to_the_stable_path(
    hidden: tuple[int, ...], outputs: int, torch_threads: int
) -> None:
    """Output weights so large that logits pass ±80: the range check finds them, and the
    overflow-safe path gives the module's cross-entropy."""
    pop = BatchedFeedforward(3, outputs, 6, hidden, generator=gen())
    pop.views()["output.weight"].mul_(300.0)
    x = torch.randn(400, 3, generator=gen(1)) * (30.0 if not hidden else 1.0)
    y = torch.randint(0, outputs, (400,), generator=gen(2))
    expected = _module_ce(pop, x, y)
    assert expected.max() > 20  # some steps far beyond exp's float32 range
    assert_close(cross_entropy(pop, x, y), expected, atol=1e-4, rtol=1e-5)
