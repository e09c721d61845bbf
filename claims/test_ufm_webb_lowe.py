"""UFM claim 5: with NC1 and NC2, the least-squares (MSE-optimal) classifier is self-dual (NC3) and decides
as the nearest class mean (NC4).

Source: Papyan, Han & Donoho, PNAS 2020, Proposition 1 (after Webb & Lowe 1990), as stated in the seed
review: with MSE loss the optimal classifier is W = (1/C) M^T Sigma_T^+, b = (1/C) 1 - (1/C) M^T
Sigma_T^+ mu_G, M = [mu_c - mu_G], Sigma_T the total covariance; this holds for BALANCED classes (in
general the 1/C is diag(N_c/N): ncsim.ufm.webb_lowe_classifier, derived there). And: with NC1 and NC2
(every feature equal to its class mean, the centered means a simplex ETF) this classifier is
proportional to M^T (NC3) and agrees with the nearest-class-mean rule (NC4).

That the closed form equals the least-squares solution (np.linalg.lstsq) is an algebraic identity of
the solver, not a finding about the paper: it is a software test (tests/test_ufm.py). Random features
(random_features) serve there and as this claim's negative control.
"""

from typing import NamedTuple

import numpy as np

from ncsim import metrics, ufm
from ncsim.checks import Check
from ncsim.claim import Case, Checks

SEEDS = tuple(range(5))
SHAPES = ((4, 6, 10), (10, 12, 8))  # (C, p, n): N = C n > p + 1, so the least squares is unique


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


class Classified(NamedTuple):
    """Features h with labels y, and a classifier (W, b) of them."""

    h: np.ndarray
    y: np.ndarray
    W: np.ndarray
    b: np.ndarray


def webb_lowe_fit(h: np.ndarray, y: np.ndarray, C: int) -> Classified:
    """The features with Proposition 1's classifier of C classes fitted on them (ufm.webb_lowe_classifier)."""
    return Classified(h, y, *ufm.webb_lowe_classifier(h, y, C))


def collapsed_case(C: int, p: int, n: int, seed: int) -> Case:
    """Proposition 1's classifier on collapsed features of C classes in p dimensions, n per class."""
    return Case(
        f"collapsed-C{C}-p{p}-seed{seed}",
        lambda store: webb_lowe_fit(*collapsed_features(C, p, n, seed), C),
        run=f"webb-lowe-collapsed-C{C}-p{p}",
        seed=seed,
    )


# ---- statistics of a classifier (W, b) on features h with labels y ----------------------------------


def nc3(c: Classified) -> float:
    """||W^T/||W|| - M/||M||||_F^2: W proportional to M^T (self-duality)."""
    return metrics.collapse_metrics(c.h, c.y, c.W, c.b, num_classes=len(c.W))["nc3"]


def nc4(c: Classified) -> float:
    """Fraction of samples where argmax(W h + b) is not the nearest class mean."""
    return metrics.collapse_metrics(c.h, c.y, c.W, c.b, num_classes=len(c.W))["nc4"]


# Proposition 1's classifier on NC1+NC2 features is self-dual (NC3) and the nearest-mean rule (NC4).
CHECKS = Checks(
    "test_webb_lowe_classifier",
    Check("ufm_webb_lowe_nc3", nc3),
    Check("ufm_webb_lowe_nc4", nc4),
    cases=[collapsed_case(C, p, n, seed) for C, p, n in SHAPES for seed in SEEDS],
)
