"""The Webb & Lowe claim of the UFM (claims/test_ufm_webb_lowe.py), on a trained network: the MSE-optimal
linear classifier of the penultimate features (Webb & Lowe; Papyan, Han & Donoho, PNAS 2020,
Proposition 1) is, once the features have collapsed (NC1, NC2), self-dual to the class means (NC3) and
decides as the nearest class mean (NC4).

W = diag(pi) M^T Sigma_T^+, b = pi - W mu_G (ncsim.ufm.webb_lowe_classifier; pi = 1/C for balanced
classes, the proposition's form), fitted on the final train features of the default run.

The proposition assumes exact collapse, Sigma_W = 0, and its self-duality is a statement about that
point only: Sigma_T^+ is not continuous as Sigma_W -> 0. Near it, the within-class variance outside the
span of the means (which NC1 barely sees) puts p-C+1 small eigenvalues into Sigma_T (down to ~1e-7
against C-1 of order 1 at the end of the default run, with NC1 about 2e-3 and most of Tr(Sigma_W) off
the span: the `within_offspan` column), and Sigma_T^+ inverts them: the exact least-squares W fits those
residual directions and its NC3 is about 1.9. Scaling Sigma_W down by a common factor does not shrink
that: the block of Sigma_T^+ coupling the span to the rest is a ratio of within-class covariances,
unchanged to first order. No finite training meets the premise, so `wl_cnn_nc3_max` is decided
"premise not met" (EXACT_COLLAPSE: no evidence either way, its values reported), not as a failure of
the proposition. What a trained network can test is the
proposition's limit: restricted to the top C-1 eigenpairs (the span of the means, where an exactly
collapsed Sigma_T lives) the same formula is self-dual ("nc3_between"), and its NC4 holds; the ridge
classifier of Han, Papyan & Donoho's central path (claim test_central_path) has no such jump.
"""

from functools import lru_cache

import numpy as np

from ncsim import metrics, ufm
from ncsim.checks import Check, Premise
from ncsim.claim import Checks

FIGURES = ("geometry.png",)


def between_class_webb_lowe(h: np.ndarray, y: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The Webb-Lowe classifier with Sigma_T^+ restricted to Sigma_T's top C-1 eigenpairs (the span of
    the class means when NC1 holds exactly): W = diag(pi) M^T (Sigma_T)_{C-1}^+, b = pi - W mu_G."""
    pi = np.bincount(y, minlength=num_classes) / len(y)
    mu_g = h.mean(0)
    M = metrics.centered_means(h, y, num_classes).T
    eigval, eigvec = np.linalg.eigh((h - mu_g).T @ (h - mu_g) / len(h))
    top = eigvec[:, -(num_classes - 1) :] / eigval[-(num_classes - 1) :]
    W = pi[:, None] * (M.T @ top @ eigvec[:, -(num_classes - 1) :].T)
    return W, pi - W @ mu_g


def webb_lowe_statistics(h: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, float]:
    """NC3 and NC4 of the Webb-Lowe classifier fitted on (h, y), and NC3 of its between-class
    restriction. (That the closed form is the least-squares solution is an identity of the solver,
    tested in tests/test_ufm.py and tests/test_metrics.py, not a finding.)"""
    W, b = ufm.webb_lowe_classifier(h, y, num_classes)
    m = metrics.collapse_metrics(h, y, W, b, num_classes)
    Wc, bc = between_class_webb_lowe(h, y, num_classes)
    return {"nc3": m["nc3"], "nc4": m["nc4"], "nc3_between": metrics.collapse_metrics(h, y, Wc, bc, num_classes)["nc3"]}


@lru_cache(maxsize=8)
def of_run(run) -> dict[str, float]:
    """webb_lowe_statistics of a run's final train features (one forward pass and one fit per run
    and process); C is the number of classifier rows."""
    f = run.features("train")
    return webb_lowe_statistics(f["h"], f["y"], f["W"].shape[0])


def spread(run) -> str:
    return (
        f"NC1 {run.final('train.nc1'):.3g}, nc1_trace {run.final('train.nc1_trace'):.3g}; "
        f"within-class variance outside the span of the means {run.final('train.within_offspan'):.0%}"
    )


# Proposition 1's premise (NC1): exact within-class collapse, Sigma_W = 0, i.e. train NC1 = 0.
EXACT_COLLAPSE = Premise("exact collapse, Sigma_W = 0: end train NC1", lambda run: run.final("train.nc1"), "<=", 0.0)

# The Webb-Lowe classifier of the final CNN features is self-dual and NCC.
CHECKS = Checks(
    "test_webb_lowe_on_collapsed_features",
    Check("wl_cnn_nc3_max", lambda run: of_run(run)["nc3"], controls=("no-bn",), note=spread, premise=EXACT_COLLAPSE),
    Check("wl_cnn_nc4_max", lambda run: of_run(run)["nc4"], controls=("no-bn",)),
    Check("wl_cnn_nc3_between_max", lambda run: of_run(run)["nc3_between"], controls=("no-bn",)),
)
