"""How many verdicts of a claims session another draw of seeds would change.

A session decides about a hundred checks on the same few runs, so their errors are correlated: a seed
that trained unusually shows in every check that reads it. The number of verdicts that are wrong is not
observable, but how many would change under another draw of seeds is estimated by resampling: draw the
seed positions with replacement (the same draw for every check of the session, since the checks share
runs), decide every check again by its own rule at its own level (ncsim.checks.apply_rule) on the
resampled values, and count the verdicts that differ from the session's (an open check counts as
changed when the draw decides it). Averaged over draws this is the expected number of
verdicts a new seed set would change; a check that changes in a large share of the draws is borderline
at this number of seeds (its margin is within the seed-to-seed spread).

The bootstrap over 5 seeds understates the spread (a draw repeats seeds), so the count is a lower
estimate of the instability; it is printed as such, with its draws and seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ncsim.checks import ALPHA, Tolerance, apply_rule
from ncsim.verdict import Verdict
from ncsim.verdict.record import PREMISE_NOT_MET, UNSETTLED

DRAWS = 200
SEED = 0


def _tolerance(record: Verdict) -> Tolerance:
    return Tolerance(record.tolerance, record.threshold, record.op, "", "", "", record.rule, record.scale)


def stability(records: Sequence[Verdict], draws: int = DRAWS, seed: int = SEED) -> dict | None:
    """{"draws", "seed", "checks" (how many were resampled), "expected_changes" (mean number of verdicts
    that differ from the session's over the draws), "q95_changes" (the 95% quantile of that number),
    "least_stable" ([tolerance, where, share of draws in which its verdict changed] for the checks that
    change in at least 10% of the draws, the least stable first)}; None when no check has two or more
    seeds. Checks of one value (a case table's) have nothing to resample, and checks whose premise the
    runs do not meet decide nothing (ncsim.checks.Premise): both are left out."""
    usable = [r for r in records if r.n >= 2 and len(r.values) >= 2 and r.verdict != PREMISE_NOT_MET]
    if not usable:
        return None
    rng = np.random.default_rng(seed)
    sizes = sorted({len(r.values) for r in usable})
    picks = {n: rng.integers(0, n, size=(draws, n)) for n in sizes}  # one draw of seed positions per size
    changed = np.zeros((draws, len(usable)), dtype=bool)
    for j, r in enumerate(usable):
        x = np.array([np.nan if v is None else v for v in r.values], dtype=np.float64)
        tol, alpha = _tolerance(r), (r.sequential or {}).get("alpha", ALPHA)
        settled = "inconclusive" if r.verdict in UNSETTLED else r.verdict  # one look's name for an open check
        for b, idx in enumerate(picks[len(x)]):
            changed[b, j] = apply_rule(tol, x[idx], alpha)["verdict"] != settled
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


def false_verdicts(records: Sequence[Verdict]) -> dict | None:
    """The expected number of false verdicts among the checks a session decided over seeds (rules
    "mean" and "equivalence", verdict "reproduces" or "does not reproduce"): {"decided", "bound" (each
    decision errs with probability at most its design's alpha, and an expectation adds up whatever the
    correlation of the checks that share runs, so at most the sum of the alphas), "estimate" (the sum of
    each decision's p-value: the chance of data this clear for its side had its effect sat exactly at
    the threshold; the p of the other side for a "does not reproduce")}; None when nothing was decided
    over seeds."""
    decided = [
        r
        for r in records
        if r.rule in ("mean", "equivalence") and r.verdict in ("reproduces", "does not reproduce") and r.n >= 2
    ]
    if not decided:
        return None

    def p(r: Verdict) -> float:
        if r.p_value is None:
            return 0.0
        return r.p_value if r.verdict == "reproduces" else 1.0 - r.p_value if r.rule == "mean" else 0.0

    return {
        "decided": len(decided),
        "bound": float(
            sum((r.sequential or {}).get("alpha", ALPHA) * (r.sequential or {}).get("looks", 1) for r in decided)
        ),
        "estimate": float(sum(p(r) for r in decided)),
    }


def describe_false(result: dict | None) -> str:
    """The report's sentence on false_verdicts."""
    if result is None:
        return "Expected false verdicts: no check was decided over seeds."
    return (
        f"Expected false verdicts: at most {result['bound']:.1f} of the {result['decided']} checks decided over "
        f"seeds (each errs with probability at most alpha = 0.05 over its looks, and expectations add up "
        f"whatever the correlation of checks that share runs); {result['estimate']:.2f} estimated from the "
        f"decisions' p-values. No further correction (Holm, Benjamini-Hochberg) is applied: each check is "
        f"one statement of a paper, read on its own."
    )
