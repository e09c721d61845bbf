"""The geometry of the class means: a simplex ETF, and how close to one C means can come when p < C-1
(no simplex ETF fits in R^p)."""

from __future__ import annotations

import math

import numpy as np

from ncsim import metrics


def simplex_etf(num_classes: int, dim: int, rng: np.random.Generator | int = 0) -> np.ndarray:
    """C unit vectors in R^p (rows, C x p) with pairwise cosines -1/(C-1), in a random orientation:
    sqrt(C/(C-1)) V Q^T with V V^T = I - 11^T/C (V: C x (C-1)) and Q (p x (C-1)) random orthonormal."""
    C, p = num_classes, dim
    if p < C - 1:
        raise ValueError(f"a simplex ETF of {C} vectors needs dim >= C-1 = {C - 1}, got {p}")
    rng = np.random.default_rng(rng)
    eigval, eigvec = np.linalg.eigh(np.eye(C) - 1 / C)
    V = eigvec[:, eigval > 0.5]
    Q, _ = np.linalg.qr(rng.standard_normal((p, C - 1)))
    return math.sqrt(C / (C - 1)) * V @ Q.T


def centered_mean_gram(features, labels, num_classes: int, center: str = "sample") -> np.ndarray:
    """A A^T (C x C) with rows of A the centered class means mu_c - m (ncsim.metrics.centered_means: m
    the sample mean mu_G over all N, or with center="classes" the unweighted mean of the class means);
    valid for any p, including p < C-1."""
    A = metrics.centered_means(features, labels, num_classes, center=center)
    return A @ A.T


def etf_gram_distance(gram: np.ndarray) -> float:
    """|| G/||G||_F - (I - 11^T/C)/sqrt(C-1) ||_F (Zhu et al. 2021, Sec. 4), via ncsim.metrics."""
    return float(metrics.etf_distance(gram, "centered class means' Gram matrix"))


def etf_distance_lower_bound(num_classes: int, dim: int) -> float:
    """min over centered configurations of C means in R^p of the ETF Gram distance:
    sqrt(2 - 2 sqrt(min(p, C-1)/(C-1))).

    Derivation: with E = (I - 11^T/C)/sqrt(C-1) (unit Frobenius norm, C-1 eigenvalues 1/sqrt(C-1)) and
    G = A A^T/||A A^T||_F, ||G - E||_F^2 = 2 - 2 <G, E>. Centered means give G 1 = 0, so
    <G, E> = Tr(G)/sqrt(C-1) = sum_j s_j / sqrt(C-1) over the <= p nonzero eigenvalues s_j of G with
    sum_j s_j^2 = 1, at most sqrt(p)/sqrt(C-1) (Cauchy-Schwarz), with equality iff the s_j are equal:
    the means form a tight frame of R^p (for p = 2, a regular C-gon)."""
    return math.sqrt(max(0.0, 2 - 2 * math.sqrt(min(dim, num_classes - 1) / (num_classes - 1))))


def embedded_features(features, num_classes: int) -> np.ndarray:
    """Features padded with zero coordinates up to C-1 dimensions: an isometric embedding, so every
    statistic of ncsim.metrics is unchanged and collapse_metrics accepts p < C-1."""
    h = np.asarray(features, dtype=np.float64)
    return np.pad(h, ((0, 0), (0, max(0, num_classes - 1 - h.shape[1]))))
