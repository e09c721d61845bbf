"""UFM claim 6: with class imbalance the geometry leaves the simplex ETF, and the minority classifiers
collapse towards each other as the imbalance ratio R grows.

Sources: Fang, He, Long & Su, "Exploring Deep Neural Networks via Layer-Peeled Model: Minority Collapse
in Imbalanced Training", PNAS 2021, Sec. 3 (minority collapse: for large R at fixed regularisation the
minority classifiers' angles shrink to 0); Thrampoulidis, Kini, Vakilian & Behnia, "Imbalance Trouble:
Revisiting Neural-Collapse Geometry", NeurIPS 2022 (for R > 1 the UFM geometry is not an ETF but SELI,
which is its vanishing-regularisation limit; the SELI form itself is not checked here).

Setup (ncsim.ufm.imbalance_sweep): CE UFM, C = 4, p = 4, the first 2 classes majority with
n_maj = R n_min, n_min = 1, lambda_W = lambda_H = lambda_b = 5e-3 fixed, LBFGS, R in
{1, 2, 5, 10, 20, 50, 100}. The minority cosine reaches 1 (exact minority collapse) at R = 100; for much
larger R (e.g. 200) the minority classifiers shrink to ~0 and their angle stops being meaningful, which
is why the sweep ends at 100.

Each seed's sweep is solved once and kept in the run store (ncsim.ufm.imbalance_sweep_stored), where
the report finds it for its figure (ncsim.ufm.stored_imbalance_sweeps).
"""

import numpy as np
import pytest

from ncsim import ufm

FIGURES = ("ufm_imbalance.png",)
R_VALUES = (1, 2, 5, 10, 20, 50, 100)
SEEDS = (0, 1)
GTOL = ufm.DEFAULT_GTOL


def sweep(store, seed: int) -> dict[str, np.ndarray]:
    return ufm.imbalance_sweep_stored(store, R_VALUES, seed=seed, gtol=GTOL)


def table(s) -> str:
    rows = [f"{'R':>5} {'min cos':>9} {'maj cos':>9} {'|w_min|/|w_maj|':>16} {'means ETF dist':>15}"]
    rows += [f"{R:5g} {a:9.5f} {b:9.5f} {c:16.4f} {d:15.5f}" for R, a, b, c, d in
             zip(s["R"], s["minority_cos"], s["majority_cos"], s["minority_norm_ratio"], s["means_etf_distance"])]
    return "\n".join(rows)


# ---- statistics of a sweep over increasing R starting at R = 1 (ufm.imbalance_sweep's columns) ---------

def _over_R(s: dict[str, np.ndarray], column: str) -> np.ndarray:
    """`column` along R; a ValueError unless R starts at 1 and increases."""
    R = s["R"]
    if R[0] != 1 or (np.diff(R) <= 0).any():
        raise ValueError(f"the sweep must start at R = 1 and increase, got R = {R}")
    return s[column]


def max_grad_norm(s) -> float:
    """The largest final gradient norm over R: every solve reached a critical point."""
    return float(np.max(s["grad_norm"]))


def etf_distance_at_1(s) -> float:
    """The means' ETF Gram distance at R = 1 (balanced: a simplex ETF)."""
    return float(_over_R(s, "means_etf_distance")[0])


def etf_distance_min_increase(s) -> float:
    """The smallest increase of the means' ETF distance between consecutive R (> 0: it grows with R)."""
    return float(np.diff(_over_R(s, "means_etf_distance")).min())


def minority_cos_min_increase(s) -> float:
    """The smallest increase of the minority classifiers' mean pairwise cosine between consecutive R."""
    return float(np.diff(_over_R(s, "minority_cos")).min())


def minority_cos_at_max(s) -> float:
    """The minority classifiers' mean pairwise cosine at the largest R (1: they point the same way)."""
    return float(_over_R(s, "minority_cos")[-1])


CHECKS = {
    "ufm_grad_norm_max": max_grad_norm,
    "ufm_etf_distance_max": etf_distance_at_1,
    "ufm_imbalance_etf_distance_min_increase": etf_distance_min_increase,
    "ufm_imbalance_minority_cos_min_increase": minority_cos_min_increase,
    "ufm_imbalance_minority_cos_at_max": minority_cos_at_max,
}
NOTES = {
    "ufm_imbalance_etf_distance_min_increase":
        lambda s: "ETF distance over R: " + ", ".join(f"{d:.3f}" for d in s["means_etf_distance"]),
    "ufm_imbalance_minority_cos_min_increase":
        lambda s: "minority cos over R: " + ", ".join(f"{c:.4f}" for c in s["minority_cos"]),
    "ufm_imbalance_minority_cos_at_max": lambda s: f"R = {s['R'][-1]:g}",
}
CASES = [pytest.param(seed, tolerance, id=f"seed{seed}-{tolerance}") for seed in SEEDS for tolerance in CHECKS]


@pytest.mark.parametrize("seed,tolerance", CASES)
def test_imbalance_breaks_etf_and_collapses_minority(seed, tolerance, run_store, claim_check):
    """The sweep converges; the means are an ETF at R = 1 and move away from it as R grows; the minority
    classifiers' cosine grows with R and reaches ~1 at R = 100."""
    s = sweep(run_store, seed)
    print(f"imbalance sweep, seed {seed}:\n{table(s)}")
    claim_check(tolerance, CHECKS[tolerance](s), seed=seed, run="ufm-ce-imbalance-sweep",
                note=NOTES[tolerance](s) if tolerance in NOTES else "")
