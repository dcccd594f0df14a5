"""Shared fixtures. One intra-op thread: on the shared 2-core box, OpenMP spin-waiting under
contention makes batch-32 steps ~30x slower with 2 threads; results do not depend on it."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


def teacher_data(
    n: int,
    input_size: int = 4,
    num_actions: int = 3,
    *,
    seed: int = 0,
    sharpness: float = 6.0,
    teacher_seed: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Observations, actions sampled from a random teacher MLP, and the teacher's mean entropy
    (the lowest expected cross-entropy any model can reach on these labels)."""
    from hbm_dl import FeedforwardMLP

    gen = torch.Generator().manual_seed(seed)
    teacher = FeedforwardMLP(
        input_size, 16, num_actions, generator=torch.Generator().manual_seed(teacher_seed)
    )
    obs = torch.randn(n, input_size, generator=gen)
    with torch.no_grad():
        probs = torch.softmax(teacher(obs) * sharpness, dim=-1)
    actions = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    entropy = float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())
    return obs, actions, entropy


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
