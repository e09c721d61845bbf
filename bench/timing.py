"""The benchmarks' timing helper."""

from __future__ import annotations

import time


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    """The smallest wall time (time.perf_counter) of `repeats` calls of fn(), and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result
