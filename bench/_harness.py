"""Shared timing helpers for the benchmarks.

Every figure is reported as a ratio against a reference measured in the same process, because
the machines are shared and noisy: absolute times are not comparable between runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class Result:
    """One benchmark figure: `value` of the subject and of its same-run `reference`."""

    suite: str
    name: str
    unit: str
    value: float
    reference_name: str
    reference_value: float
    higher_is_better: bool = True
    target: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """How many times better than the reference (>1 means better)."""
        if self.higher_is_better:
            return self.value / self.reference_value
        return self.reference_value / self.value

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["meets_target"] = None if self.target is None else self.ratio >= self.target
        return d


def time_call(
    fn: Callable[[], object], *, repeat: int = 5, number: int = 1, warmup: int = 1
) -> float:
    """Median seconds per call of `fn` over `repeat` rounds of `number` calls."""
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - t0) / number)
    return statistics.median(rounds)


def interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    repeat: int = 5,
    number: int = 1,
    settle: float = 0.0,
) -> dict[str, float]:
    """Median seconds per call for each fn, timed in alternation so that noise hits all alike.

    `settle` seconds of idle (untimed) precede each sample, so that no fn pays for what the
    previous one left running: torch's OpenMP workers spin for milliseconds after a parallel
    region and take a core from whatever runs next on its own threads. An untimed call of the
    same fn follows the idle: a core that has just idled runs the next ~ms of code several
    times slower (measured: a 0.1 ms setup takes 0.7 ms right after a 10 ms sleep), which
    would charge every sample a fixed toll that back-to-back calls (a training loop) never pay.
    """
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            if settle:
                time.sleep(settle)
                fn()
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples[key].append((time.perf_counter() - t0) / number)
    return {k: statistics.median(v) for k, v in samples.items()}


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` (0: left as is), restored after."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
