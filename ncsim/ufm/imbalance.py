"""The UFM under class imbalance: the SELI geometry (Thrampoulidis et al. 2022), the statistics of an
imbalanced point, and minority collapse (Fang et al. 2021) with its threshold ratio in closed form."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ncsim import metrics
from ncsim.ufm.geometry import etf_gram_distance
from ncsim.ufm.problem import UFMResult


def _psd_power(A: np.ndarray, power: float) -> np.ndarray:
    """A^power of a symmetric PSD matrix on its range (eigenvalues <= C eps max are taken as 0, so
    power -1/2 is the pseudo-inverse square root)."""
    eigval, eigvec = np.linalg.eigh(A)
    kept = eigval > len(A) * np.finfo(np.float64).eps * eigval.max()
    return (eigvec[:, kept] * eigval[kept] ** power) @ eigvec[:, kept].T


def seli_geometry(counts: Sequence[int]) -> dict[str, np.ndarray]:
    """The SELI geometry (simplex-encoded-labels interpolation; Thrampoulidis, Kini, Vakilian & Behnia,
    "Imbalance Trouble: Revisiting Neural-Collapse Geometry", NeurIPS 2022, arXiv 2208.05512,
    Definition 2) of classes with `counts` n_1..n_k, as three k x k targets, each up to a positive scale.

    In the paper's notation (k classes, n samples, classifier W (k x d), embeddings H (d x n)): the SEL
    matrix is Zhat = [e_{y_i} - 1/k 1]_i (k x n), with SVD Zhat = V Lambda U^T, and (W, H) follow SELI
    when, for some alpha > 0, W W^T = alpha V Lambda V^T, H^T H = alpha U Lambda U^T and W H = alpha Zhat.
    With P = I - 11^T/k and D = diag(n_c), Zhat = P Y (Y the one-hot k x n labels), so
    V Lambda V^T = (Zhat Zhat^T)^(1/2) = (P D P)^(1/2). Every column of a class is the same, so the
    embeddings collapse to class means mu_c = H Y^T D^{-1} e_c, with Gram
    M^T M = P V Lambda^{-1} V^T P = (P D P)^(+1/2) (pseudo-inverse square root; V^T 1 = 0, so the
    means already sum to zero: centred at the unweighted mean of the class means, not at the
    count-weighted sample mean), and the class-mean logits are W mu_c = P e_c. Returned:

      "W"       (P D P)^(1/2)      the classifier Gram W W^T
      "means"   (P D P)^(+1/2)     the Gram of the class means centred at their unweighted mean
      "logits"  P                  [W mu_1 .. W mu_k] (the SEL matrix's distinct columns)

    For balanced classes all three are the simplex ETF's P. The paper proves that the CE UFM without
    bias converges to SELI as the ridge regularisation vanishes, and cautions that convergence worsens
    as the imbalance grows (abstract)."""
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or len(n) < 2 or (n <= 0).any():
        raise ValueError(f"need >= 2 positive class counts, got {counts!r}")
    P = np.eye(len(n)) - 1 / len(n)
    PDP = P @ np.diag(n) @ P
    return {"W": _psd_power(PDP, 0.5), "means": _psd_power(PDP, -0.5), "logits": P}


def class_means(result: UFMResult) -> np.ndarray:
    """mu_c = mean of the features of class c, rows of a C x p array (not centred)."""
    return np.stack([result.H[:, result.labels == c].mean(1) for c in range(result.problem.num_classes)])


def imbalance_geometry(result: UFMResult) -> dict[str, float]:
    """The statistics of one imbalanced UFM point (majority classes first, UFMProblem.imbalanced):

    minority_cos / majority_cos   mean pairwise cosine of the classifier rows of the minority (last
                                  floor(C/2)) / majority classes: -1/(C-1) at an ETF, 1 when the
                                  minority classifiers coincide (minority collapse, Fang et al. 2021)
    minority_norm_ratio           mean ||w_minority|| / mean ||w_majority||
    means_etf_distance            ETF Gram distance of the class means centred at their UNWEIGHTED
                                  mean (metrics.centered_means center="classes": an exact simplex ETF
                                  gives 0 whatever the counts; the count-weighted sample mean would
                                  not, see there)
    w_etf_distance                ETF Gram distance of the rows of W (at a CE critical point without
                                  bias they sum to 0: 1^T df/dW = lambda_W 1^T W)
    seli_w_distance, seli_means_distance, seli_logits_distance
                                  metrics.direction_distance of W W^T, of the centred means' Gram and of
                                  the class-mean logits [W mu_c] from seli_geometry(counts)
    objective, grad_norm, converged, iterations"""
    r, C = result, result.problem.num_classes
    major = (C + 1) // 2
    norms = np.linalg.norm(r.W, axis=1)
    A = metrics.centered_means(r.features, r.labels, C, center="classes")
    seli = seli_geometry(r.problem.counts)
    return {
        "minority_cos": _mean_pairwise_cosine(r.W[major:]),
        "majority_cos": _mean_pairwise_cosine(r.W[:major]),
        "minority_norm_ratio": norms[major:].mean() / norms[:major].mean(),
        "means_etf_distance": etf_gram_distance(A @ A.T),
        "w_etf_distance": etf_gram_distance(r.W @ r.W.T),
        "seli_w_distance": metrics.direction_distance(r.W @ r.W.T, seli["W"]),
        "seli_means_distance": metrics.direction_distance(A @ A.T, seli["means"]),
        "seli_logits_distance": metrics.direction_distance(r.W @ class_means(r).T, seli["logits"]),
        "objective": r.objective,
        "grad_norm": r.grad_norm,
        "converged": float(r.converged),
        "iterations": float(r.iterations),
    }


def _mean_pairwise_cosine(rows: np.ndarray) -> float:
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = unit @ unit.T
    return float(cos[~np.eye(len(rows), dtype=bool)].mean())


# The minority classifiers count as collapsed when their mean pairwise cosine is >= 1 - COLLAPSE_TOL. At
# the threshold the objective is flat to fourth order in their angle theta (a pitchfork: theta^2 grows
# linearly below it), so a solve to ||grad f|| <= 1e-8 resolves theta only to ~(1e-8)^(1/3), and 1 - cos
# to ~1e-5, there (measured at R = R_c, lambda = 1e-2, 5e-3, 2.5e-3, seeds 0-5: 2e-6..5e-5); one step
# below it 1 - cos is 1.6e-3..1.8e-2, and one step above <= 1e-12. A ratio at the threshold itself may
# fall on either side of 1e-4; the claim's statistics allow for that (one step).
COLLAPSE_TOL = 1e-4


def collapse_threshold(sweep: dict[str, np.ndarray], collapse_tol: float = COLLAPSE_TOL) -> float:
    """R* = the smallest R of a sweep whose minority classifiers are collapsed (minority_cos >=
    1 - collapse_tol); inf when none is."""
    collapsed = sweep["R"][sweep["minority_cos"] >= 1 - collapse_tol]
    return float(collapsed.min()) if len(collapsed) else math.inf


def minority_collapse_ratio(num_classes: int, n_min: int, lambda_w: float, lambda_h: float) -> float:
    """R_c: the imbalance ratio above which the collapsed configuration of the minority classifiers is
    stable, for the CE UFM without bias (derived here; checked against the solved sweeps by
    claims/test_ufm_imbalance.py):

        R_c = (sqrt(n_min / (lambda_W lambda_H)) - K_B n_min) / (K_A n_min),

    K_A = ceil(C/2) majority classes of n_maj = R n_min samples, K_B = floor(C/2) minority classes of
    n_min (UFMProblem.imbalanced); for C = 4, n_min = 1, lambda_W = lambda_H = lambda: 1/(2 lambda) - 1.

    Derivation. Take a critical point at which the minority rows w_a and the minority features coincide
    (they do at any point fixed by the permutations of the minority classes, which are symmetries of f
    since those classes have equal counts). Split them along a unit contrast u over the minority classes
    (u^T 1 = 0, 0 on the majority) and a unit vector d of R^p orthogonal to every row and feature (one
    exists when p > rank W): W + x u d^T, H + y d v^T with v a unit vector over the samples. The logits
    W H move only at second order, by x y u v^T, so the curvature along (x, y) is
    lambda_W x^2 + lambda_H y^2 + 2 x y u^T G v with G = (softmax(Z) - Y)/N (logit_gradient). The minority
    logits are equal there, so (u^T G)_i = -u_{y_i}/N on the minority samples and 0 on the others:
    ||u^T G|| = sqrt(n_min)/N. The curvature is negative for some (x, y) and v, i.e. the collapsed point
    is a strict saddle and the minority classifiers split, iff sqrt(n_min)/N > sqrt(lambda_W lambda_H),
    i.e. iff N = K_A n_maj + K_B n_min < sqrt(n_min / (lambda_W lambda_H)). (The same test as for W = H = 0
    of a balanced problem, where sigma_1(G) = 1/(C sqrt(n)): there it gives C kappa < 1.)"""
    K_A, K_B = (num_classes + 1) // 2, num_classes // 2
    return (math.sqrt(n_min / (lambda_w * lambda_h)) - K_B * n_min) / (K_A * n_min)
