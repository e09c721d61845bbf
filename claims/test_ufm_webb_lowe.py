"""UFM claim 5: the least-squares (MSE-optimal) classifier on fixed features, and NC3/NC4 from NC1+NC2.

Source: Papyan, Han & Donoho, PNAS 2020, Proposition 1 (after Webb & Lowe 1990), as stated in the seed
review: with MSE loss the optimal classifier is W = (1/C) M^T Sigma_T^+, b = (1/C) 1 - (1/C) M^T
Sigma_T^+ mu_G, M = [mu_c - mu_G], Sigma_T the total covariance; this holds for BALANCED classes (in
general the 1/C is diag(N_c/N): ncsim.ufm.webb_lowe_classifier, derived there). And: with NC1 and NC2
(every feature equal to its class mean, the centered means a simplex ETF) this classifier is
proportional to M^T (NC3) and agrees with the nearest-class-mean rule (NC4).
"""

import numpy as np
import pytest

from ncsim import metrics, ufm

SEEDS = tuple(range(5))
SHAPES = ((4, 6, 10), (10, 12, 8))     # (C, p, n): N = C n > p + 1, so the least squares is unique


def random_features(C, p, n, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(C), n)
    return rng.standard_normal((C, p))[labels] + rng.standard_normal((C * n, p)), labels


def collapsed_features(C, p, n, seed):
    """NC1 + NC2: h_i = mu_G + s e_{y_i}, e_c a simplex ETF (random orientation, scale s, offset mu_G)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(C), n)
    means = rng.uniform(0.5, 5) * ufm.simplex_etf(C, p, rng) + rng.standard_normal(p)
    return means[labels], labels


def cases():
    return [pytest.param(C, p, n, seed, id=f"C{C}-p{p}-seed{seed}") for C, p, n in SHAPES for seed in SEEDS]


@pytest.mark.parametrize("C,p,n,seed", cases())
def test_matches_least_squares(C, p, n, seed, claim_check):
    """On random balanced features, (W, b) of Proposition 1 equals np.linalg.lstsq's solution."""
    h, y = random_features(C, p, n, seed)
    W, b = ufm.webb_lowe_classifier(h, y, C)
    claim_check("ufm_webb_lowe_lstsq_deviation", ufm.lstsq_deviation(h, y, C, W, b), seed=seed,
                run=f"webb-lowe-random-C{C}-p{p}")


@pytest.mark.parametrize("C,p,n,seed", cases())
def test_self_duality_from_collapse(C, p, n, seed, claim_check):
    """On NC1+NC2 features, W is proportional to M^T: nc3 = ||W^T/||W|| - M/||M||||_F^2."""
    h, y = collapsed_features(C, p, n, seed)
    W, b = ufm.webb_lowe_classifier(h, y, C)
    claim_check("ufm_webb_lowe_nc3", metrics.collapse_metrics(h, y, W, b, num_classes=C)["nc3"], seed=seed,
                run=f"webb-lowe-collapsed-C{C}-p{p}")


@pytest.mark.parametrize("C,p,n,seed", cases())
def test_ncc_from_collapse(C, p, n, seed, claim_check):
    """On NC1+NC2 features, argmax(W h + b) is the nearest class mean for every sample (nc4 = 0)."""
    h, y = collapsed_features(C, p, n, seed)
    W, b = ufm.webb_lowe_classifier(h, y, C)
    claim_check("ufm_webb_lowe_nc4", metrics.collapse_metrics(h, y, W, b, num_classes=C)["nc4"], seed=seed,
                run=f"webb-lowe-collapsed-C{C}-p{p}")
