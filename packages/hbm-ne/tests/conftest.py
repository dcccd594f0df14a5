"""Shared fixtures of the hbm-ne tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ne_helpers import intraop_threads


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny batches: a second OpenMP thread only waits on a core that the other jobs of a
    shared CI machine keep busy (a 10-20x slowdown there). Restores the caller's setting."""
    with intraop_threads(1):
        yield


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def torch_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run a test with one and with two intra-op threads: the CPU kernels take different paths
    (inline vs worker threads, torch vs numpy elementwise passes). Restores the setting."""
    with intraop_threads(request.param):
        yield request.param
