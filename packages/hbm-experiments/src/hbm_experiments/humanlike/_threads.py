"""One BLAS/OpenMP thread for the metrics' small matrices."""

from __future__ import annotations

from typing import Any

_THREADPOOLS: Any = None


def _one_blas_thread() -> Any:
    """One BLAS/OpenMP thread: the matrices are small, and threads fighting over shared cores
    cost far more than they give (measured: 10x slower on 2 busy cores). The controller is made
    once: each `threadpool_limits()` call rescans the loaded libraries (~10 ms)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)
