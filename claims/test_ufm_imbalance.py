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
"""

import numpy as np
import pytest

from claims.test_ufm_global_minimizer import GTOL
from ncsim import ufm

R_VALUES = ufm.IMBALANCE_R
SEEDS = ufm.IMBALANCE_SEEDS


def sweep(seed):
    return ufm.imbalance_sweep(R_VALUES, seed=seed, gtol=GTOL)


def table(s) -> str:
    rows = [f"{'R':>5} {'min cos':>9} {'maj cos':>9} {'|w_min|/|w_maj|':>16} {'means ETF dist':>15}"]
    rows += [f"{R:5g} {a:9.5f} {b:9.5f} {c:16.4f} {d:15.5f}" for R, a, b, c, d in
             zip(s["R"], s["minority_cos"], s["majority_cos"], s["minority_norm_ratio"], s["means_etf_distance"])]
    return "\n".join(rows)


SEED_IDS = [pytest.param(seed, id=f"seed{seed}") for seed in SEEDS]


@pytest.mark.parametrize("seed", SEED_IDS)
def test_sweep_converges(seed, claim_check):
    s = sweep(seed)
    print(f"imbalance sweep, seed {seed}:\n{table(s)}")
    claim_check("ufm_grad_norm_max", float(np.max(s["grad_norm"])), seed=seed, run="ufm-ce-imbalance-sweep")


@pytest.mark.parametrize("seed", SEED_IDS)
def test_balanced_end_is_etf(seed, claim_check):
    """At R = 1 the class means are a simplex ETF (ETF Gram distance)."""
    claim_check("ufm_etf_distance_max", ufm.imbalance_statistics(sweep(seed))["etf_distance_at_1"], seed=seed,
                run="ufm-ce-imbalance-sweep")


@pytest.mark.parametrize("seed", SEED_IDS)
def test_etf_distance_grows_with_R(seed, claim_check):
    """The means' ETF distance increases at every step of R (smallest increase)."""
    s = sweep(seed)
    claim_check("ufm_imbalance_etf_distance_min_increase",
                ufm.imbalance_statistics(s)["etf_distance_min_increase"], seed=seed, run="ufm-ce-imbalance-sweep",
                note="ETF distance over R: " + ", ".join(f"{d:.3f}" for d in s["means_etf_distance"]))


@pytest.mark.parametrize("seed", SEED_IDS)
def test_minority_cosine_grows_with_R(seed, claim_check):
    """The cosine between the minority classifiers increases at every step of R (smallest increase)."""
    s = sweep(seed)
    claim_check("ufm_imbalance_minority_cos_min_increase",
                ufm.imbalance_statistics(s)["minority_cos_min_increase"], seed=seed, run="ufm-ce-imbalance-sweep",
                note="minority cos over R: " + ", ".join(f"{c:.4f}" for c in s["minority_cos"]))


@pytest.mark.parametrize("seed", SEED_IDS)
def test_minority_collapse_at_large_R(seed, claim_check):
    """At R = 100 the minority classifiers point the same way (cosine near 1)."""
    claim_check("ufm_imbalance_minority_cos_at_max", ufm.imbalance_statistics(sweep(seed))["minority_cos_at_max"],
                seed=seed, run="ufm-ce-imbalance-sweep", note=f"R = {R_VALUES[-1]}")
