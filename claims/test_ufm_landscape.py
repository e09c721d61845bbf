"""UFM claim 2: the regularised cross-entropy UFM has a benign landscape.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.2 (stated for p > C): every critical point is either a global minimiser
or a strict saddle, so there are no spurious local minima; in the authors' words (README of their code,
github.com/tding1/Neural-Collapse): "the cross-entropy loss with weight decay has a benign global
landscape: the only global minimizers are the Simplex Equiangular Tight Frames (ETFs) while all other
critical points are strict saddles whose Hessian exhibit negative curvature directions".

Measured, both halves:
1. From 10 random inits, each of GD, minibatch SGD, Adam and LBFGS reaches ||grad f|| <= 1e-8 at the same
   objective value, which is the global minimum value g(q*) of the closed form (ncsim.ufm.closed_forms), to 1e-8
   relative.
2. Critical points that are not global minimisers, built exactly (ncsim.ufm.frame_critical_point: the
   best point of a family fixed by a group of symmetries of f, hence critical for f): W = H = 0 with
   b = 0; the classes merged in pairs (rows e, e, -e, -e: rank 1); classes 0, 1 antipodal with classes
   2, 3 at w = h = 0; classes 0-2 on a simplex ETF of a plane with class 3 at 0 (rank 2). At each, in
   float64: the full gradient norm is ~0, f exceeds the global minimum value, and the exact Hessian
   (torch autograd, D = Cp + pN + C = 148 variables) has a negative eigenvalue. The same eigenvalue
   check applied to the global minimiser fails (tests/test_ufm.py): there the smallest eigenvalue is 0
   within rounding.
   The negative eigenvalues equal (lambda_W + lambda_H)/2 - sqrt(((lambda_W - lambda_H)/2)^2 + sigma_1(G)^2),
   the curvature along a direction that keeps the logits fixed to first order (ncsim.ufm.
   minority_collapse_ratio derives it): W + x u d^T, H + y d v^T with d orthogonal to every row and
   feature (it exists because p > rank W) and (u, v) the top singular pair of the logit gradient G; it
   is negative exactly when sigma_1(G) > sqrt(lambda_W lambda_H), and at the global minimiser
   sigma_1(G) = sqrt(lambda_W lambda_H) (reported beside each check).
"""

from collections.abc import Sequence
from functools import cache

import numpy as np

from claims.shared import GTOL, UFM_PROBLEMS
from ncsim import ufm
from ncsim.checks import Check
from ncsim.claim import Case, Checks

PROBLEM = UFM_PROBLEMS["C4-p6"]
INITS = tuple(range(10))
# the runs a statistic is taken over: each solver's 10 inits, and all 4 solvers' together
GROUPS = {**{solver: (solver,) for solver in ufm.SOLVERS}, "4-solvers": ufm.SOLVERS}


def runs(solvers: Sequence[str], store=None) -> list[ufm.UFMResult]:
    return [ufm.solve_cached(PROBLEM, solver, seed, gtol=GTOL, store=store) for solver in solvers for seed in INITS]


# ---- statistics of the end points of several runs of one problem ----------------------------------------


def _objectives(results: Sequence[ufm.UFMResult]) -> np.ndarray:
    """The runs' final objective values; a ValueError unless all runs are of one problem."""
    problems = {r.problem for r in results}
    if len(problems) != 1:
        raise ValueError(f"landscape statistics need runs of one problem, got {len(problems)}")
    return np.array([r.objective for r in results])


def max_grad_norm(results: Sequence[ufm.UFMResult]) -> float:
    """The largest final gradient norm: every run ends at a critical point."""
    _objectives(results)
    return max(r.grad_norm for r in results)


def max_gap(results: Sequence[ufm.UFMResult]) -> float:
    """max over the runs of (f - g(q*)) / g(q*): no run ends above the global minimum value."""
    f, f_star = _objectives(results), ufm.optimal_objective(results[0].problem)
    return float((f.max() - f_star) / f_star)


def objective_spread(results: Sequence[ufm.UFMResult]) -> float:
    """(max f - min f) / min f over the runs: all reach the same objective value."""
    f = _objectives(results)
    return float((f.max() - f.min()) / f.min())


# The critical points that are not global minimisers: rows e_k of frame_critical_point's families (C x r),
# None for W = H = 0.
FRAMES = {
    "origin": None,
    "pairs": np.array([[1.0], [1.0], [-1.0], [-1.0]]),
    "two-classes": np.array([[1.0], [-1.0], [0.0], [0.0]]),
    "three-classes": np.vstack([ufm.simplex_etf(3, 2, rng=0), [[0.0, 0.0]]]),
}


@cache
def critical_point(name: str) -> ufm.UFMResult:
    return ufm.frame_critical_point(PROBLEM, FRAMES[name])


# ---- statistics of one critical point (a ufm.UFMResult) -------------------------------------------------


def point_grad_norm(point: ufm.UFMResult) -> float:
    """||grad f||_2 at the point, the closed-form gradient in float64: a critical point."""
    return point.grad_norm


def objective_gap(point: ufm.UFMResult) -> float:
    """(f - g(q*)) / g(q*): above the global minimum value (ufm.optimal_objective), so not a global
    minimiser."""
    f_star = ufm.optimal_objective(point.problem)
    return float((point.objective - f_star) / f_star)


def hessian_min_eigenvalue(point: ufm.UFMResult) -> float:
    """The smallest eigenvalue of the exact Hessian of f at the point (ufm.hessian, np.linalg.eigvalsh):
    < 0 at a strict saddle."""
    return float(np.linalg.eigvalsh(ufm.hessian(point.problem, point.W, point.H, point.b))[0])


def saddle_note(point: ufm.UFMResult) -> str:
    """sigma_1(G) against sqrt(lambda_W lambda_H), and the curvature along the null-space direction."""
    pr = point.problem
    sigma = np.linalg.svd(ufm.logit_gradient(pr, point.W, point.H, point.b), compute_uv=False)[0]
    lw, lh = pr.lambda_w, pr.lambda_h
    curvature = (lw + lh) / 2 - np.sqrt(((lw - lh) / 2) ** 2 + sigma**2)
    return (
        f"f = {point.objective:.10f} (global minimum {ufm.optimal_objective(pr):.10f}); "
        f"sigma_1(G)/sqrt(lambda_W lambda_H) = {sigma / np.sqrt(lw * lh):.4f}; "
        f"curvature along the null-space direction {curvature:.6g}"
    )


PER_SOLVER_CHECKS = (Check("ufm_grad_norm_max", max_grad_norm), Check("ufm_landscape_max_gap", max_gap))
ALL_SOLVERS_CHECKS = (Check("ufm_landscape_objective_spread", objective_spread),)
SADDLE_CHECKS = (
    Check("ufm_critical_point_grad_norm_max", point_grad_norm, note=saddle_note),
    Check("ufm_saddle_objective_gap_min", objective_gap, note=saddle_note),
    Check("ufm_saddle_hessian_min_eigenvalue_max", hessian_min_eigenvalue, note=saddle_note),
)


def group_case(group: str) -> Case:
    """The 10 inits of the group's solvers."""
    return Case(group, lambda store: runs(GROUPS[group], store), run=f"ufm-ce-{group}-10-inits")


CHECKS = (
    # Each solver's 10 inits end at critical points, none above g(q*); all 4 x 10 at the same value.
    Checks("test_landscape_is_benign", *PER_SOLVER_CHECKS, cases=[group_case(g) for g in GROUPS if g != "4-solvers"]),
    Checks("test_landscape_is_benign", *ALL_SOLVERS_CHECKS, cases=[group_case("4-solvers")]),
    # Each constructed point is critical, above the global minimum value, with a negative Hessian
    # eigenvalue.
    Checks(
        "test_other_critical_points_are_strict_saddles",
        *SADDLE_CHECKS,
        cases=[
            Case(name, lambda store, name=name: critical_point(name), run=f"ufm-ce-C4-p6-{name}") for name in FRAMES
        ],
    ),
)
