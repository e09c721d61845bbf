"""Thread counts, set in one place: torch's intra-op pool (training, forward passes) and the BLAS
library numpy loaded (the float64 metrics), through threadpoolctl.

`limit_threads(n)` bounds both for a block and restores them after; `set_threads(n)` sets both for
the rest of the process (a command's or a pytest worker's share of the cores).
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
