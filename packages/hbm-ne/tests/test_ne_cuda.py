"""The same kernels on CUDA give the CPU results (run where a GPU exists)."""

from __future__ import annotations

import pytest
import torch
from hbm_ne import CMAES, GA, BatchedFeedforward, BatchedRecurrent, cross_entropy, train_supervised
from ne_helpers import assert_close, teacher_data

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_cuda_forward_and_fitness_match_cpu() -> None:
    x, y, _ = teacher_data(500)
    cpu = BatchedFeedforward(4, 2, 40, generator=torch.Generator().manual_seed(0))
    gpu = BatchedFeedforward(4, 2, 40, generator=torch.Generator().manual_seed(0), device="cuda")
    assert torch.equal(cpu.params, gpu.params.cpu())
    assert_close(gpu(x).cpu(), cpu(x), atol=1e-4, rtol=1e-4)
    assert_close(cross_entropy(gpu, x, y).cpu(), cross_entropy(cpu, x, y), atol=1e-5, rtol=1e-5)
    rec_cpu = BatchedRecurrent(4, 2, 6, 8, generator=torch.Generator().manual_seed(1))
    rec_gpu = BatchedRecurrent(
        4, 2, 6, 8, generator=torch.Generator().manual_seed(1), device="cuda"
    )
    xs = torch.randn(3, 5, 4)
    assert_close(rec_gpu(xs)[0].cpu(), rec_cpu(xs)[0], atol=1e-5, rtol=1e-5)


@cuda
@pytest.mark.parametrize("kind", ["ga", "cmaes"])
def test_cuda_training_runs_and_improves(kind: str) -> None:
    x, y, _ = teacher_data(800)
    pop = BatchedFeedforward(4, 2, 32, sigma_init=0.05, device="cuda")
    algo = GA(pop) if kind == "ga" else CMAES(pop, sigma0=0.1, diagonal=True)
    res = train_supervised(
        pop, (x, y), (x, y), algo, max_generations=30, eval_every=10, device="cuda"
    )
    assert res.best is not None and next(res.best.parameters()).device.type == "cuda"
    assert res.history[-1]["best_fitness"] < res.history[0]["best_fitness"]
