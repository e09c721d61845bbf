"""Thread counts, set in one place: torch's intra-op pool (training, forward passes) and the BLAS
library numpy loaded (the float64 metrics), through threadpoolctl.

`limit_threads(n)` bounds both for a block and restores them after; `set_threads(n)` sets both for
the rest of the process (a command's or a pytest worker's share of the cores).
"""

from __future__ import annotations

from contextlib import contextmanager

import threadpoolctl


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
