"""One claim check: compare a measured statistic with its tolerance, record it, and assert.

Every check is recorded as a test property named "ncsim_check" (a JSON-able dict), which pytest carries
from xdist workers to the controller, where the report (ncsim.report) turns them into the verdict table.
"""

from __future__ import annotations

import math
from typing import Callable

from ncsim import tolerances

PROPERTY = "ncsim_check"


def check(record: Callable[[str, object], None], name: str, measured: float, *,
          seed: int | None = None, run: str | None = None, note: str = "") -> None:
    """Assert `measured <op> threshold` for tolerance `name`; the failure message gives the measured
    value, the threshold, the seed and the source."""
    tol = tolerances.get(name)
    measured = float(measured)
    ok = tol.holds(measured)
    record(PROPERTY, {
        "tolerance": name, "statistic": tol.statistic, "measured": None if math.isnan(measured) else measured,
        "op": tol.op, "threshold": tol.value, "seed": seed, "run": run, "source": tol.source,
        "holds": ok, "note": note,
    })
    where = f" (seed {seed}, run {run})" if seed is not None or run else ""
    assert ok, (f"{tol.statistic}: measured {measured:.4g}, claim needs {tol.op} {tol.value:g}{where}. "
                f"Source: {tol.source}. {note}".strip())
