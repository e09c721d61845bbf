"""How many verdicts of a claims session another draw of seeds would change.

A session decides about a hundred checks on the same few runs, so their errors are correlated: a seed
that trained unusually shows in every check that reads it. The number of verdicts that are wrong is not
observable, but how many would change under another draw of seeds is estimated by resampling: draw the
seed positions with replacement (the same draw for every check of the session, since the checks share
runs), decide every check again by its own rule (ncsim.checks.apply_rule) on the resampled values, and
count the verdicts that differ from the session's. Averaged over draws this is the expected number of
verdicts a new seed set would change; a check that changes in a large share of the draws is borderline
at this number of seeds (its margin is within the seed-to-seed spread).

The bootstrap over 5 seeds understates the spread (a draw repeats seeds), so the count is a lower
estimate of the instability; it is printed as such, with its draws and seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ncsim.checks import Tolerance, apply_rule
from ncsim.verdict import Verdict

DRAWS = 200
SEED = 0


def _tolerance(record: Verdict) -> Tolerance:
    return Tolerance(record.tolerance, record.threshold, record.op, "", "", "", record.rule, record.scale)


def stability(records: Sequence[Verdict], draws: int = DRAWS, seed: int = SEED) -> dict | None:
    """{"draws", "seed", "checks" (how many were resampled), "expected_changes" (mean number of verdicts
    that differ from the session's over the draws), "q95_changes" (the 95% quantile of that number),
    "least_stable" ([tolerance, where, share of draws in which its verdict changed] for the checks that
    change in at least 10% of the draws, the least stable first)}; None when no check has two or more
    seeds. Checks of one value (a case table's) have nothing to resample and are left out."""
    usable = [r for r in records if r.n >= 2 and len(r.values) >= 2]
    if not usable:
        return None
    rng = np.random.default_rng(seed)
    sizes = sorted({len(r.values) for r in usable})
    picks = {n: rng.integers(0, n, size=(draws, n)) for n in sizes}  # one draw of seed positions per size
    changed = np.zeros((draws, len(usable)), dtype=bool)
    for j, r in enumerate(usable):
        x = np.array([np.nan if v is None else v for v in r.values], dtype=np.float64)
        tol = _tolerance(r)
        for b, idx in enumerate(picks[len(x)]):
            changed[b, j] = apply_rule(tol, x[idx])["verdict"] != r.verdict
    per_check = changed.mean(axis=0)
    counts = changed.sum(axis=1)
    least = sorted(
        ([r.tolerance, r.where, float(s)] for r, s in zip(usable, per_check) if s >= 0.1), key=lambda t: -t[2]
    )
    return {
        "draws": draws,
        "seed": seed,
        "checks": len(usable),
        "expected_changes": float(counts.mean()),
        "q95_changes": float(np.quantile(counts, 0.95)),
        "least_stable": least,
    }


def describe(result: dict | None) -> str:
    """The report's sentence on it."""
    if result is None:
        return "Verdict stability: no check was decided over two or more seeds."
    least = "; ".join(f"`{t}` [{w}] {s:.0%}" for t, w, s in result["least_stable"][:8]) or "none"
    return (
        f"Verdict stability: resampling the seeds ({result['draws']} bootstrap draws, seed {result['seed']}, "
        f"the same draw for every check since they share runs) changes on average "
        f"{result['expected_changes']:.1f} of {result['checks']} verdicts (95% of draws: at most "
        f"{result['q95_changes']:.0f}); a lower estimate of how many a new seed set would change. "
        f"Changed in at least 10% of the draws: {least}."
    )
