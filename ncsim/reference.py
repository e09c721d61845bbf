"""Reference agreement: whether a check's values agree with its reference distribution.

A claim's verdict says whether the paper's statement holds; it does not say whether this run of the
suite measured what the suite measured before. As MLPerf's reference convergence points do for
convergence, each statistic is also compared with its values on the calibration seeds (the reference
column of claims/discrimination.json): an equivalence test of the difference of the mean values
(of log x on a log scale), Welch's two-sample t with its 90% interval (two one-sided 5% tests), within
a margin fixed before looking:

    margin = max(log 1.5, 2 s_ref)   on a log scale (a factor 1.5, or two reference seed SDs if wider)
    margin = 2 s_ref                 on a linear scale

"agrees" when the interval lies within +-margin, "differs" when it lies wholly outside it (the
statistic moved beyond the margin, significantly), "inconclusive" otherwise. A factor 1.5 is the
smallest drift taken for a change of the trainer rather than of the machine (runs differ across CPUs at
rounding level, and chaotic training turns that into seed-like spread, which the interval absorbs): a
2x drift of a statistic as tight as end NC1 is "differs". On the suite's own configurations a
"differs" fails the check (ncsim.pytest_plugin.checks); on a user's --spec it is reported only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ncsim.checks import ALPHA, Tolerance

FACTOR = 1.5  # the smallest ratio taken for a drift on a log scale
SDS = 2.0  # the smallest drift in reference seed standard deviations


def _scaled(tol: Tolerance, values: Sequence[float | None]) -> np.ndarray | None:
    log = tol.distances_on_log_scale
    x = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    if not np.isfinite(x).all() or (log and (x <= 0).any()):
        return None
    return np.log(x) if log else x


def agreement(tol: Tolerance, reference: Sequence[float | None], values: Sequence[float | None]) -> dict:
    """The agreement of `values` (this session's, one per seed) with `reference` (the calibration
    seeds'): {"verdict", "difference" (of the means, on the scale: a log ratio on a log scale),
    "interval" (its 90% Welch interval), "margin", "reference_mean" (back on the statistic's own
    scale: the geometric mean on a log scale), "n_reference", "n"}. "inconclusive" with the reason
    ("why") when either side has fewer than two finite values (positive on a log scale) or no spread."""
    log = tol.distances_on_log_scale
    ref, now = _scaled(tol, reference), _scaled(tol, values)
    out = {
        "verdict": "inconclusive",
        "n_reference": len(reference),
        "n": len(values),
        "scale": "log" if log else "linear",
    }
    if ref is None or now is None or len(ref) < 2 or len(now) < 2:
        return {**out, "why": "fewer than two finite values (positive on a log scale) on a side"}
    s_ref = float(ref.std(ddof=1))
    margin = max(math.log(FACTOR), SDS * s_ref) if log else SDS * s_ref
    va, vb = ref.var(ddof=1) / len(ref), now.var(ddof=1) / len(now)
    d = float(now.mean() - ref.mean())
    back = math.exp if log else float
    out |= {"difference": d, "margin": margin, "reference_mean": back(float(ref.mean()))}
    if va + vb == 0 or margin == 0:
        return {**out, "why": "no spread over seeds"}
    from scipy import stats

    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(ref) - 1) + vb**2 / (len(now) - 1))
    half = float(stats.t.ppf(1 - ALPHA, df)) * se
    lo, hi = d - half, d + half
    verdict = "agrees" if -margin < lo and hi < margin else "differs" if lo > margin or hi < -margin else "inconclusive"
    return {**out, "verdict": verdict, "interval": [lo, hi]}


def describe(result: dict) -> str:
    """One line, e.g. "agrees (reference geometric mean 0.00245 on 5 calibration seeds: log ratio 0.03,
    90% interval -0.02 to 0.08, margin 0.405)"."""
    if "reference_mean" not in result:
        return f"{result['verdict']} ({result.get('why', '')})"
    what = "geometric mean" if result["scale"] == "log" else "mean"
    mean, n = result["reference_mean"], result["n_reference"]
    head = f"{result['verdict']} (reference {what} {mean:.3g} on {n} calibration seeds"
    if "interval" not in result:
        return f"{head}: {result.get('why', '')})"
    diff = "log ratio" if result["scale"] == "log" else "difference"
    lo, hi = result["interval"]
    return (
        f"{head}: {diff} {result['difference']:.3g}, 90% interval {lo:.3g} to {hi:.3g}, margin {result['margin']:.3g})"
    )
