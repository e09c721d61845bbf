"""Thread counts, set in one place: torch's intra-op pool (training, forward passes) and the BLAS
library numpy loaded (the float64 metrics), through threadpoolctl.

`limit_threads(n)` bounds both for a block and restores them after; `set_threads(n)` sets both for
the rest of the process (a command's or a pytest worker's share of the cores). `keep_freed_memory()`
tunes the C allocator for training's many short-lived activation buffers.
"""

from __future__ import annotations

from contextlib import contextmanager

import threadpoolctl

# The threads a run trains on unless a caller asks for another count (ncsim.suite.obtain_run). A run's
# arrays depend on the thread count (torch's reductions sum in another order), so one fixed count makes
# a stored record the same whether `ncsim train`, `pytest` or `pytest -n auto` trained it; one thread
# is also what parallel training (xdist workers, a sweep's tasks) gives each run, and it is not slowed
# down by other processes busy on the other cores.
TRAIN_THREADS = 1


@contextmanager
def limit_threads(n: int):
    """Run the block with `n` torch intra-op threads and `n` BLAS threads, restoring both after."""
    import torch  # here, not at module level: a process that never trains need not import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpoolctl.threadpool_limits(n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def set_threads(n: int) -> None:
    """Use `n` torch intra-op threads and `n` BLAS threads from now on."""
    import torch

    torch.set_num_threads(n)
    threadpoolctl.threadpool_limits(n, user_api="blas")


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX), which every version accepts.
_ALLOCATOR_KEEPS = 32 * 2**20


def keep_freed_memory() -> bool:
    """Serve allocations under 32 MiB from the heap and keep up to 32 MiB of freed heap memory, instead of
    glibc's mapping and unmapping of every buffer over its dynamic threshold: a training step's
    activations (about 0.6 MiB each in the default run) otherwise cost fresh zeroed pages at every step,
    about 20 thousand page faults per epoch (bench/precision.py). Only where the allocations go changes,
    never a value computed. False where the C library is not glibc (nothing changed)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _ALLOCATOR_KEEPS)) and bool(mallopt(_M_TRIM_THRESHOLD, _ALLOCATOR_KEEPS))
