"""Closed forms: the global minimisers of the balanced UFM, and the least-squares classifier on fixed features.

Balanced closed form (derived here, checked numerically by the UFM claims). Stationarity in W and H,
(1/N) G H^T + lambda_W W = 0 and (1/N) W^T G + lambda_H H = 0 (G = dL/dZ, C x N), gives
lambda_W W^T W = lambda_H H H^T; at a collapsed point with h_{k,i} = alpha w_k this forces
alpha = sqrt(lambda_W / (n lambda_H)), i.e. ||w_k|| = sqrt(n lambda_H / lambda_W) ||h_{k,i}||
(Zhu et al. Thm 3.1). With w_k a simplex ETF of norm rho_W, h_k of norm rho_H and q = rho_W rho_H, the
logits are W h_k = (C q/(C-1)) (e_k - 1/C) and the regulariser at the balanced ratio is C kappa q with

    kappa = sqrt(n lambda_W lambda_H),

so f reduces to the 1-D problem g(q) = L_etf(q) + C kappa q, whose minimiser is

    CE : q* = (C-1)/C log((1 - (C-1) kappa) / kappa)   (each wrong-class softmax probability = kappa)
    MSE: q* = (C-1)/C (1 - C kappa)                    (centred logits = (1 - C kappa)(I - 11^T/C)),

both non-trivial (q* > 0) exactly when C kappa < 1; for C kappa >= 1 the minimiser is W = H = 0
(the regulariser outweighs any reduction of the loss; for MSE with lambda_b = 0 then b = 1/C).
For MSE with lambda_b > 0 the bias shrinks to b = 1/(C (1 + lambda_b)) while lambda_b is small; for
larger lambda_b the rows of W acquire a common component and W is no longer an ETF (observed at
lambda_b = 0.5 with C = 4), so the MSE closed form here is stated for lambda_b = 0.
"""

from __future__ import annotations

import math

import numpy as np

from ncsim import metrics
from ncsim.ufm.geometry import simplex_etf
from ncsim.ufm.problem import UFMProblem

# ---- the balanced closed form ---------------------------------------------------------------------------


def reduced_objective(problem: UFMProblem, q) -> np.ndarray:
    """g(q) = L_etf(q) + C kappa q: f at the balanced simplex-ETF point with ||w_k|| ||h_{k,i}|| = q
    (module docstring). CE: L_etf = log(1 + (C-1) exp(-C q/(C-1))); MSE (lambda_b = 0, b = 1/C):
    L_etf = (C-1)/(2C) (C q/(C-1) - 1)^2."""
    C, kappa = problem.num_classes, problem.kappa
    margin = C * np.asarray(q, dtype=np.float64) / (C - 1)
    if problem.loss == "ce":
        data = np.log1p((C - 1) * np.exp(-margin))
    else:
        _mse_closed_form_applies(problem)
        data = (C - 1) / (2 * C) * (margin - 1) ** 2
    return data + C * kappa * np.asarray(q)


def _mse_closed_form_applies(problem: UFMProblem) -> None:
    if problem.loss == "mse" and problem.lambda_b != 0:
        raise ValueError("the MSE closed form is derived for an unregularised bias (lambda_b = 0)")


def optimal_product(problem: UFMProblem) -> float:
    """q* = argmin_q g(q) >= 0, the product ||w_k|| ||h_{k,i}|| at every global minimiser (balanced,
    p >= C-1): CE q* = (C-1)/C log((1 - (C-1) kappa)/kappa), MSE q* = (C-1)/C (1 - C kappa), and q* = 0
    when C kappa >= 1 (module docstring; derived from g'(q) = 0, g being convex)."""
    C, kappa = problem.num_classes, problem.kappa
    _mse_closed_form_applies(problem)
    if C * kappa >= 1:
        return 0.0
    if problem.loss == "ce":
        return (C - 1) / C * math.log((1 - (C - 1) * kappa) / kappa)
    return (C - 1) / C * (1 - C * kappa)


def optimal_objective(problem: UFMProblem) -> float:
    """g(q*), the global minimum value of f (balanced, p >= C-1; CE, or MSE with lambda_b = 0)."""
    return float(reduced_objective(problem, optimal_product(problem)))


def trivial_objective(problem: UFMProblem) -> float:
    """f(0) = f at W = H = 0 with the best bias, the global minimum value when C kappa >= 1: log C (CE,
    b = 0) or (C-1)/(2C) (MSE with lambda_b = 0, b = 1/C)."""
    C = problem.num_classes
    _mse_closed_form_applies(problem)
    return math.log(C) if problem.loss == "ce" else (C - 1) / (2 * C)


def closed_form_minimizer(problem: UFMProblem, rng: np.random.Generator | int = 0):
    """A global minimiser (W, H, b) of a balanced problem with p >= C-1 (one of the rotations
    W -> W Q, H -> Q^T H): rows w_k = rho_W e_k of a simplex ETF, h_{k,i} = (rho_H/rho_W) w_k with
    rho_W^2 = q* sqrt(n lambda_H/lambda_W), rho_H^2 = q* sqrt(lambda_W/(n lambda_H)); b = 0 (CE) or
    b = 1/C (MSE, lambda_b = 0)."""
    pr = problem
    q = optimal_product(pr)
    ratio = pr.norm_ratio  # ||w_k|| / ||h_{k,i}||
    W = math.sqrt(q * ratio) * simplex_etf(pr.num_classes, pr.dim, rng)
    H = (W / ratio)[pr.labels].T
    b = np.full(pr.num_classes, 0.0 if pr.loss == "ce" else 1 / pr.num_classes)
    return W, H, b


# ---- Webb & Lowe: the least-squares classifier on fixed features ------------------------------------------


def webb_lowe_classifier(features, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The minimiser (W, b) of the unregularised least squares (1/N) sum_i ||W h_i + b - e_{y_i}||^2
    (Papyan, Han & Donoho, PNAS 2020, Proposition 1, after Webb & Lowe 1990):

        W = diag(pi) M^T Sigma_T^+,   b = pi - W mu_G,     pi_c = N_c / N,

    M = [mu_c - mu_G] (p x C), Sigma_T = (1/N) sum_i (h_i - mu_G)(h_i - mu_G)^T, mu_G the sample mean.
    For balanced classes (pi = 1/C) this is the proposition's W = (1/C) M^T Sigma_T^+,
    b = (1/C) 1 - (1/C) M^T Sigma_T^+ mu_G. Derivation: the normal equation in b gives b = pi - W mu_G;
    substituting, the one in W is W Sigma_T = (1/N) sum_i (e_{y_i} - pi)(h_i - mu_G)^T, whose row c is
    pi_c (mu_c - mu_G). With Sigma_T singular, Sigma_T^+ picks the solution whose rows lie in the span
    of the centered features (the minimum-norm W). Computed by ncsim.metrics.ridge_classifier at
    lambda = 0 (the one implementation of the least-squares classifier), whose Sigma_T^+ keeps the
    eigenvalues above max(N, p) * eps * lambda_max (eps = float64 machine epsilon: the rounding of a sum
    of N outer products; for float32 features the larger cut of their own resolution); with collapsed
    features Sigma_T has rank C-1 and the rest is rounding noise.
    """
    return metrics.ridge_classifier(features, labels, num_classes, 0.0)


def lstsq_deviation(features, labels, num_classes: int, W, b) -> float:
    """max |[W b] - [W b]_lstsq| / max |[W b]_lstsq|, [W b]_lstsq from np.linalg.lstsq of
    [H^T 1] [W b]^T = Y (one-hot rows). Unique when [H^T 1] has full column rank."""
    h, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    design = np.hstack([h, np.ones((len(h), 1))])
    solution = np.linalg.lstsq(design, np.eye(num_classes)[y], rcond=None)[0].T
    return float(np.abs(np.hstack([W, np.asarray(b)[:, None]]) - solution).max() / np.abs(solution).max())
