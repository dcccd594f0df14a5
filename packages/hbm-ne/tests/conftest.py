"""Shared fixtures of the hbm-ne tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny batches: a second OpenMP thread only waits on a core that the other jobs of a
    shared CI machine keep busy (a 10-20x slowdown there). Restores the caller's setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def torch_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run a test with one and with two intra-op threads: the CPU kernels take different paths
    (inline vs worker threads, torch vs numpy elementwise passes). Restores the setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(threads)
