"""Worker threads for population kernels: `parallel_map` runs chunks of a population side by
side (the calling thread and a persistent pool, each on one torch intra-op thread), and `tanh_`
splits numpy's SIMD tanh over the same threads.

Splitting every kernel over torch's OpenMP threads instead scales poorly on a shared CPU: its
workers spin between kernels and starve what runs in between.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Arrays at least this large are split over the worker threads for numpy's tanh.
PARALLEL_MIN_ELEMENTS = 1 << 18
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_worker = threading.local()


def _forget_pools_in_child() -> None:
    """A forked child has none of the parent's threads: its pools would queue work forever."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_in_child)


def _one_intraop_thread() -> None:
    torch.get_num_threads()  # torch sets a thread's count lazily from the process default: now
    torch.set_num_threads(1)
    _worker.active = True


def worker_pool(threads: int) -> ThreadPoolExecutor:
    """`threads` persistent worker threads whose torch ops each run on one intra-op thread.

    Chunks of a population run side by side on them and on the calling thread
    (`parallel_map`). Splitting every kernel over torch's OpenMP threads instead scales poorly
    here: its workers spin between kernels and starve what runs in between.
    """
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            previous = torch.get_num_threads()
            pool = ThreadPoolExecutor(threads, "hbm_ne_worker", initializer=_one_intraop_thread)
            started = threading.Barrier(threads)
            list(pool.map(lambda _: started.wait(timeout=60), range(threads)))
            # `set_num_threads(1)` in a worker also set the process default: restore it
            torch.set_num_threads(previous)
            _pools[threads] = pool
    return pool


@contextmanager
def _one_thread_here() -> Iterator[None]:
    """The calling thread runs torch on one intra-op thread (and nested `parallel_map`
    inline) until the block ends; its own setting comes back after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    _worker.active = True
    try:
        yield
    finally:
        _worker.active = False
        torch.set_num_threads(previous)


def parallel_map(fn: Callable[[_T], _R], items: Sequence[_T], device: torch.device) -> list[_R]:
    """`[fn(i) for i in items]`, on CPU spread over `torch.get_num_threads()` threads: the
    calling thread and workers from `worker_pool`, each taking the next item as it is free.

    Results come back in order. Every item runs on one intra-op thread whatever the caller's
    setting, so results do not depend on the thread count as long as the items do not (fixed
    chunks, per-chunk sums). Calls from inside a worker run inline.
    """
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    if threads <= 1 or getattr(_worker, "active", False):
        return [fn(i) for i in items]
    results: list[_R] = [None] * len(items)  # type: ignore[list-item]
    claim = itertools.count()  # `next` on it is atomic under the GIL
    failed = threading.Event()  # an error (or Ctrl-C) anywhere: nobody claims another item

    def drain() -> None:
        try:
            while not failed.is_set() and (i := next(claim)) < len(items):
                results[i] = fn(items[i])
        except BaseException:
            failed.set()
            raise

    pool = worker_pool(threads - 1)
    futures = [pool.submit(drain) for _ in range(min(threads, len(items)) - 1)]
    try:
        with _one_thread_here():
            drain()
    finally:
        wait(futures)
    for f in futures:
        f.result()  # a worker's exception
    return results


def _tanh_inplace(a: np.ndarray) -> None:
    np.tanh(a, out=a)


def tanh_(x: Tensor) -> Tensor:
    """In-place tanh for the main-thread kernels (recurrent steps); on CPU numpy's SIMD tanh,
    else `Tensor.tanh_`.

    numpy's tanh matches torch's (≥ 2.15) on one thread, and several times older torch's;
    large arrays are split over `parallel_map`'s threads (numpy releases the GIL) rather than
    torch's OpenMP workers, whose spin-waits would starve the numpy passes around them.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous():
        a = x.detach().numpy().reshape(-1)
        threads = torch.get_num_threads()
        if threads > 1 and a.size >= PARALLEL_MIN_ELEMENTS:
            parallel_map(_tanh_inplace, np.array_split(a, threads), x.device)
        else:
            np.tanh(a, out=a)
        return x
    return x.tanh_()
