"""The same training on CUDA follows the CPU run (run where a GPU exists)."""

from __future__ import annotations

import pytest
import torch
from conftest import teacher_data
from hbm_dl import (
    EpisodeData,
    FeedforwardMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    optimize_sgd,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

MODELS = {
    "feedforward": lambda: FeedforwardMLP(4, 32, 3, generator=torch.Generator().manual_seed(1)),
    "reservoir": lambda: RecurrentMLPReservoir(
        4, 32, 3, generator=torch.Generator().manual_seed(1)
    ),
    "trainable": lambda: RecurrentMLPTrainable(
        4, 32, 3, generator=torch.Generator().manual_seed(1)
    ),
}


@cuda
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cuda_training_follows_the_cpu_run(kind: str, optimizer: str) -> None:
    obs, actions, _ = teacher_data(2000)
    data = EpisodeData.from_arrays(obs, actions, [100] * 20)
    runs = {}
    for device in ("cpu", "cuda"):
        runs[device] = optimize_sgd(
            MODELS[kind](),
            data,
            data,
            optimizer=optimizer,  # type: ignore[arg-type]
            learning_rate=1e-2,
            batch_size=4 if kind != "feedforward" else 64,
            max_steps=60,
            eval_every=20,
            seed=3,
            device=device,
        )
    gpu, cpu = runs["cuda"], runs["cpu"]
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert [r["step"] for r in gpu.history] == [r["step"] for r in cpu.history]
    for g, c in zip(gpu.history, cpu.history, strict=True):
        # same minibatches, same initial weights: only float rounding differs
        assert abs(g["test_ce"] - c["test_ce"]) < 1e-3 * max(1.0, abs(c["test_ce"]))
    assert gpu.history[-1]["test_ce"] < gpu.history[0]["test_ce"]
