from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def teacher_data(
    n: int, input_size: int = 4, num_actions: int = 2, *, seed: int = 0, scale: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    """Observations and actions sampled from a random teacher MLP (labels are learnable)."""
    from hbm_ne import FeedforwardMLP

    g = torch.Generator().manual_seed(seed)
    teacher = FeedforwardMLP(input_size, (16,), num_actions)
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale / max(p.shape[-1], 1) ** 0.5)
    x = torch.randn(n, input_size, generator=g)
    with torch.no_grad():
        probs = teacher.get_probs(x)
    y = torch.multinomial(probs, 1, generator=g).squeeze(1)
    return x, y, teacher


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1.3e-6
) -> None:
    """`torch.testing.assert_close` without its ~10 s first-call import of torch.distributed."""
    expected = torch.as_tensor(expected).to(actual.dtype)
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    bad = ~(diff <= bound)
    assert not bad.any(), (
        f"{int(bad.sum())}/{diff.numel()} elements differ; max abs diff {float(diff.max()):.3g}"
    )


@contextmanager
def intraop_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to `threads`, the caller's restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
