"""Drawing a report's figures into its folder: forked processes for the figures of stored columns, this
process for those that run the network; a figure that raises is drawn as a page naming the error."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ncsim import figures
from ncsim.report.registry import FIGURES, RUNS_THE_NETWORK

_MAKERS: dict[str, tuple[Callable[[], object], Path]] = {}  # what render's forked processes draw


def _draw_and_save(name: str) -> str | None:
    """Draw the figure `name` of _MAKERS and save it; the error if drawing raised, when the figure
    names the error instead, so one bug costs one figure, not the report."""
    make, path = _MAKERS[name]
    error = None
    try:
        fig = make()
    except Exception as e:  # noqa: BLE001 - reported in the figure and in report.md
        error = f"{type(e).__name__}: {e}"
        fig = figures.message(FIGURES[name], [f"could not draw: {error}"])
    figures.save(fig, path)
    return error


def render(makers: Mapping[str, Callable[[], object]], folder: Path) -> dict[str, str]:
    """Draw and save every figure of `makers` into `folder`; returns file name -> error for those that
    raised. Drawing is mostly Python (threads would not help), so the figures of the stored columns are
    drawn by forked processes, one per core, which read the runs this process holds, while this process
    draws those that run the network (RUNS_THE_NETWORK: torch's OpenMP thread pool does not survive a
    fork); one after the other where processes cannot be forked."""
    _MAKERS.clear()
    _MAKERS.update({name: (make, folder / name) for name, make in makers.items()})
    here = [name for name in makers if name in RUNS_THE_NETWORK]
    forked = [name for name in makers if name not in RUNS_THE_NETWORK]
    processes = min(len(forked), os.cpu_count() or 1)
    try:
        if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                pending = pool.map_async(_draw_and_save, forked, chunksize=1)
                errors = dict(zip(here, map(_draw_and_save, here)))
                errors.update(zip(forked, pending.get()))
        else:
            errors = {name: _draw_and_save(name) for name in makers}
    finally:
        _MAKERS.clear()
    return {name: errors[name] for name in makers if errors[name] is not None}
