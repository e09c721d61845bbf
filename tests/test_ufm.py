"""Tests for ncsim.ufm: the objective and its gradient, the solvers, the closed forms, the helpers, the
stored imbalance sweeps, and the negative controls of the UFM claims: every check of every UFM claim
file's CHECKS table fails its tolerance, with a finite value, on an input where the effect is absent
(a solver stopped after 1 iteration, a perturbed ETF minimiser, uncollapsed features, ...)."""

from __future__ import annotations

import functools
import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

import claims
from claims import test_ufm_feature_dim as dim_claim
from claims import test_ufm_global_minimizer as global_claim
from claims import test_ufm_imbalance as imbalance_claim
from claims import test_ufm_landscape as landscape_claim
from claims import test_ufm_mse as mse_claim
from claims import test_ufm_webb_lowe as webb_lowe_claim
from claims.shared import UFM_PROBLEMS
from ncsim import checks, metrics, ufm
from ncsim.claim import tables
from ncsim.store import Record, RunStore

CLAIMS_DIR = Path(claims.__file__).parent
TINY = {loss: ufm.UFMProblem(3, 2, 2, lambda_w=0.1, lambda_h=0.05, lambda_b=0.02, loss=loss) for loss in ufm.LOSSES}
CE = UFM_PROBLEMS["C4-p6"]
MSE = mse_claim.PROBLEM


# ---- objective, gradient, problem validation -----------------------------------------------------------


@pytest.mark.parametrize("loss", ufm.LOSSES)
def test_objective_gradcheck(loss):
    """torch.autograd.gradcheck: the objective's autograd gradient matches finite differences."""
    W, H, b = (t.requires_grad_() for t in ufm.random_init(TINY[loss], seed=3))
    assert torch.autograd.gradcheck(lambda W, H, b: ufm.objective(TINY[loss], W, H, b), (W, H, b))


@pytest.mark.parametrize("loss", ufm.LOSSES)
def test_closed_form_gradient_matches_autograd(loss):
    """The solvers' hand-derived gradient equals autograd's, for the full objective and a minibatch."""
    pr = TINY[loss]
    W, H, b = (t.requires_grad_() for t in ufm.random_init(pr, seed=5))
    f = ufm.problem._Objective(pr)
    for batch in (None, torch.tensor([0, 3, 5])):
        value = f.value(W, H, b, batch)
        auto = torch.autograd.grad(value, (W, H, b))
        closed_value, closed = f.value_and_grad(W.detach(), H.detach(), b.detach(), batch)
        assert float(closed_value) == pytest.approx(float(value.detach()), rel=1e-15)
        auto_h = auto[1] if batch is None else auto[1][:, batch]
        for a, c in zip((auto[0], auto_h, auto[2]), closed):
            np.testing.assert_allclose(c.numpy(), a.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        ufm.gradient(pr, W.detach(), H.detach(), b.detach())[1],
        torch.autograd.grad(ufm.objective(pr, W, H, b), H)[0].numpy(),
        rtol=1e-12,
    )


def test_minibatch_objective_is_unbiased():
    """The mean of f_B over an epoch of equal-size stratified batches is f."""
    pr = ufm.UFMProblem(3, 4, 6)
    W, H, b = ufm.random_init(pr, seed=1)
    f = ufm.problem._Objective(pr)
    batches = ufm.solvers._stratified_batches(pr.labels, 3, np.random.default_rng(0))
    assert all(np.bincount(pr.labels[bt.numpy()], minlength=3).tolist() == [2, 2, 2] for bt in batches)
    mean = sum(float(f.value(W, H, b, bt)) for bt in batches) / len(batches)
    assert mean == pytest.approx(float(f.value(W, H, b)), rel=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_classes=4, dim=0, counts=5), "dim"),
        (dict(num_classes=1, dim=3, counts=5), "num_classes"),
        (dict(num_classes=3, dim=3, counts=(5, 5)), "counts"),
        (dict(num_classes=3, dim=3, counts=0), "counts"),
        (dict(num_classes=3, dim=3, counts=5, lambda_w=-1.0), "lambda_w"),
        (dict(num_classes=3, dim=3, counts=5, loss="hinge"), "loss 'hinge'; valid choices: ce, mse"),
    ],
)
def test_bad_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ufm.UFMProblem(**kwargs)


def test_bad_solver_arguments():
    with pytest.raises(ValueError, match="solver 'newton'; valid choices: gd, sgd, adam, lbfgs"):
        ufm.solve(TINY["ce"], "newton")
    for bad in (dict(max_iter=-1), dict(lr=0.0), dict(batches=0), dict(max_iter=1.5)):
        with pytest.raises(ValueError):
            ufm.solve(TINY["ce"], "gd", **bad)
    with pytest.raises(ValueError, match="shape"):
        ufm.solve(TINY["ce"], init=(np.zeros((3, 2)), np.zeros((2, 5)), np.zeros(3)))
    with pytest.raises(ValueError, match="balanced"):
        ufm.UFMProblem(3, 3, (2, 3, 4)).kappa


def test_imbalanced_problem():
    pr = ufm.UFMProblem.imbalanced(5, 4, 2, 3.0)
    assert pr.counts == (6, 6, 6, 2, 2) and pr.num_samples == 22 and not pr.balanced
    with pytest.raises(ValueError, match="ratio"):
        ufm.UFMProblem.imbalanced(4, 4, 2, 0.5)


# ---- solvers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ufm.SOLVERS)
def test_deterministic_for_a_seed(solver):
    pr = ufm.UFMProblem(3, 3, 4)
    a, b, c = (ufm.solve(pr, solver, seed=s, max_iter=30) for s in (7, 7, 8))
    for x, y in ((a.W, b.W), (a.H, b.H), (a.b, b.b)):
        np.testing.assert_array_equal(x, y)
    assert a.objective == b.objective and a.iterations == b.iterations
    assert not np.array_equal(a.W, c.W)


@pytest.mark.parametrize("solver", ufm.SOLVERS)
def test_solver_converges_and_reports(solver):
    r = ufm.solve_cached(CE, solver, 0)
    assert r.converged and r.grad_norm <= ufm.DEFAULT_GTOL and r.solver == solver
    assert 0 < r.iterations < ufm.DEFAULT_MAX_ITER[solver]
    assert r.objective == pytest.approx(r.history[-1], rel=1e-12)
    recomputed = ufm.evaluate(CE, r.W, r.H, r.b)
    assert recomputed.grad_norm == pytest.approx(r.grad_norm, rel=1e-9)
    assert r.features.shape == (CE.num_samples, CE.dim)


def test_iteration_cap_reports_not_converged():
    r = ufm.solve(CE, "gd", max_iter=3)
    assert r.iterations == 3 and not r.converged and r.grad_norm > ufm.DEFAULT_GTOL
    assert ufm.solve(CE, "gd", max_iter=0).iterations == 0


def test_solve_restores_thread_count():
    before = torch.get_num_threads()
    ufm.solve(TINY["ce"], "gd", max_iter=2)
    assert torch.get_num_threads() == before


# ---- closed forms --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem",
    [CE, MSE, UFM_PROBLEMS["C6-p5"], ufm.UFMProblem(5, 7, 3, 1e-3, 2e-3)],
    ids=["ce-C4", "mse-C4", "ce-C6", "ce-small-lambda"],
)
def test_optimal_product_minimises_reduced_objective(problem):
    q = ufm.optimal_product(problem)
    numeric = minimize_scalar(
        lambda x: float(ufm.reduced_objective(problem, x)),
        bounds=(0, 10 * q + 1),
        method="bounded",
        options={"xatol": 1e-12},
    )
    assert q == pytest.approx(numeric.x, rel=1e-6)


@pytest.mark.parametrize("problem", [CE, MSE, UFM_PROBLEMS["C6-p5"]], ids=["ce-C4", "mse-C4", "ce-C6"])
def test_closed_form_minimizer_is_critical(problem):
    """The closed form is a critical point of f and attains g(q*)."""
    point = ufm.evaluate(problem, *ufm.closed_form_minimizer(problem, rng=3))
    assert point.grad_norm < 1e-13
    assert point.objective == pytest.approx(
        float(ufm.reduced_objective(problem, ufm.optimal_product(problem))), rel=1e-14
    )


def test_ce_wrong_class_probability_is_kappa():
    """At the CE minimiser every wrong-class softmax probability equals kappa = sqrt(n lambda_W lambda_H)."""
    W, H, b = ufm.closed_form_minimizer(CE)
    probs = torch.softmax(torch.as_tensor(H.T @ W.T + b), 1).numpy()
    wrong = probs[~np.eye(CE.num_classes, dtype=bool)[CE.labels]]
    np.testing.assert_allclose(wrong, CE.kappa, rtol=1e-12)


def test_trivial_regime():
    for pr in mse_claim.TRIVIAL.values():
        assert pr.num_classes * pr.kappa >= 1 and ufm.optimal_product(pr) == 0.0
    with pytest.raises(ValueError, match="lambda_b = 0"):
        ufm.optimal_product(mse_claim.PROBLEM_REG_BIAS)


def test_simplex_etf():
    E = ufm.simplex_etf(5, 7, rng=1)
    G = E @ E.T
    np.testing.assert_allclose(G, (np.eye(5) * 5 - 1) / 4, atol=1e-14)
    with pytest.raises(ValueError, match="dim >= C-1"):
        ufm.simplex_etf(5, 3)


# ---- p < C-1 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [3, 5, 8])
def test_regular_polygon_attains_lower_bound(C):
    angles = 2 * np.pi * np.arange(C) / C
    polygon = np.stack([np.cos(angles), np.sin(angles)], 1)
    distance = ufm.etf_gram_distance(ufm.centered_mean_gram(polygon, np.arange(C), C))
    assert distance == pytest.approx(ufm.etf_distance_lower_bound(C, 2), abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(C=st.integers(3, 9), p=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_lower_bound_holds_for_any_means(C, p, seed):
    h = np.random.default_rng(seed).standard_normal((C, p))
    distance = ufm.etf_gram_distance(ufm.centered_mean_gram(h, np.arange(C), C))
    assert distance >= ufm.etf_distance_lower_bound(C, p) - 1e-12


def test_embedded_features_keep_metrics():
    """Zero-padding p = 2 features of C = 5 classes to C-1 dims gives the metrics of any isometric
    embedding of them (here a random one into R^6)."""
    h, y = webb_lowe_claim.random_features(5, 2, 10, 0)
    padded = ufm.embedded_features(h, 5)
    assert padded.shape == (50, 4)
    Q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 2)))
    assert metrics.collapse_metrics(padded, y) == pytest.approx(metrics.collapse_metrics(h @ Q.T, y), rel=1e-9)
    assert ufm.embedded_features(padded, 5).shape == padded.shape


def test_centered_means_convention():
    """metrics.centered_means: mu_c minus the SAMPLE mean, so under imbalance the count-weighted rows sum
    to 0 (the plain sum does not); any p, torch input; an empty class is a ValueError."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [9, 9, 2, 2])
    h = rng.standard_normal((4, 2))[y] + 0.1 * rng.standard_normal((len(y), 2))  # p = 2 < C-1
    A = metrics.centered_means(h, y, 4)
    means = np.stack([h[y == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(A, means - h.mean(0), atol=1e-14)
    np.testing.assert_allclose(np.bincount(y) @ A, 0, atol=1e-13)
    assert np.abs(A.sum(0)).max() > 0.1
    np.testing.assert_array_equal(metrics.centered_means(torch.as_tensor(h), torch.as_tensor(y), 4), A)
    with pytest.raises(ValueError, match="class 4 has no samples"):
        metrics.centered_means(h, y, 5)


# ---- Webb & Lowe ---------------------------------------------------------------------------------------


def test_webb_lowe_general_form_matches_lstsq_under_imbalance():
    """With imbalance, diag(N_c/N) M^T Sigma_T^+ is the least-squares solution and Proposition 1's
    literal 1/C is not."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [30, 30, 6, 6])
    h = rng.standard_normal((4, 5))[y] + rng.standard_normal((len(y), 5))
    W, b = ufm.webb_lowe_classifier(h, y, 4)
    assert ufm.lstsq_deviation(h, y, 4, W, b) < 1e-12
    pi = np.bincount(y) / len(y)
    literal_W = W / pi[:, None] / 4
    literal_b = 1 / 4 - literal_W @ h.mean(0)
    assert ufm.lstsq_deviation(h, y, 4, literal_W, literal_b) > 0.1


@pytest.mark.parametrize("C,p,n", webb_lowe_claim.SHAPES)
@pytest.mark.parametrize("seed", range(5))
def test_webb_lowe_classifier_is_least_squares(C, p, n, seed):
    """Proposition 1's closed form (with diag(N_c/N), here 1/C) is np.linalg.lstsq's solution on random
    balanced features, to float64 rounding (6.6e-16..4.8e-15 measured); the deviation sees the literal W
    without the 1/C and W off by 1e-6 relative."""
    h, y = webb_lowe_claim.random_features(C, p, n, seed)
    W, b = ufm.webb_lowe_classifier(h, y, C)
    assert ufm.lstsq_deviation(h, y, C, W, b) <= 1e-10
    assert ufm.lstsq_deviation(h, y, C, C * W, b) > 0.1
    assert ufm.lstsq_deviation(h, y, C, (1 + 1e-6) * W, b) > 1e-8


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 6), min_size=2, max_size=7), p=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_webb_lowe_is_least_squares_for_any_counts(counts, p, seed):
    """The general form W = diag(N_c/N) M^T Sigma_T^+, b = pi - W mu_G is the least-squares solution for
    any class counts and dimension, whenever it is unique ([H^T 1] of full column rank: N >= p + 1 here,
    with Gaussian features)."""
    rng = np.random.default_rng(seed)
    C, y = len(counts), np.repeat(np.arange(len(counts)), counts)
    assume(len(y) >= p + 2)
    h = rng.standard_normal((C, p))[y] + rng.standard_normal((len(y), p))
    W, b = ufm.webb_lowe_classifier(h, y, C)
    assert ufm.lstsq_deviation(h, y, C, W, b) <= 1e-8


def test_webb_lowe_bad_input():
    with pytest.raises(ValueError, match="class 2 has no samples"):
        ufm.webb_lowe_classifier(np.zeros((4, 2)), np.array([0, 0, 1, 1]), 3)


# ---- class imbalance -------------------------------------------------------------------------------


def test_imbalance_sweep_shapes():
    sweep = ufm.imbalance_sweep((1, 3), num_classes=5, dim=5, n_min=2)
    assert set(sweep) >= {
        "R",
        "minority_cos",
        "majority_cos",
        "means_etf_distance",
        "w_etf_distance",
        "seli_w_distance",
        "seli_means_distance",
        "seli_logits_distance",
        "refined",
    }
    assert all(len(v) == 2 for v in sweep.values()) and sweep["converged"].all() and not sweep["refined"].any()
    assert sweep["minority_cos"][0] == pytest.approx(-1 / 4, abs=1e-6)
    assert sweep["R"].dtype == np.float64 and sweep["converged"].dtype == np.float64
    assert ufm.collapse_threshold(sweep) == math.inf


def test_imbalance_sweep_refines_the_collapse_threshold():
    """With lambda = 1e-2 the minority rows collapse from R_c = 49 on: the sweep over (1, 30, 100) bisects
    the bracket (30, 100] down to 48 and 49."""
    sweep = ufm.imbalance_sweep((1, 30, 100), lam=1e-2)
    assert ufm.minority_collapse_ratio(4, 1, 1e-2, 1e-2) == pytest.approx(49)
    assert ufm.collapse_threshold(sweep) == 49 and {48.0, 49.0} <= set(sweep["R"])
    assert sweep["refined"][sweep["R"] == 49] == 1 and sweep["refined"][sweep["R"] == 100] == 0
    assert (np.diff(sweep["R"]) > 0).all() and sweep["converged"].all()


def test_minority_collapse_ratio():
    assert ufm.minority_collapse_ratio(4, 1, 5e-3, 5e-3) == pytest.approx(99)
    # C = 5: K_A = 3, K_B = 2; sqrt(n_min/(lambda_W lambda_H)) = sqrt(2/1e-4) = 141.42
    assert ufm.minority_collapse_ratio(5, 2, 1e-2, 1e-2) == pytest.approx((math.sqrt(2e4) - 4) / 6)


def test_no_bias_problem():
    """bias=False: b starts at 0, its gradient is 0, every solver leaves it there; lambda_b must be 0 and a
    nonzero b is refused."""
    pr = ufm.UFMProblem(3, 3, (4, 2, 1), lambda_b=0.0, bias=False)
    assert not ufm.random_init(pr, 0)[2].any()
    W, H, _ = ufm.random_init(pr, 1)
    assert not ufm.gradient(pr, W, H, np.zeros(3))[2].any()
    for solver in ufm.SOLVERS:
        assert not ufm.solve(pr, solver, max_iter=20).b.any()
    with pytest.raises(ValueError, match="lambda_b 0 without a bias"):
        ufm.UFMProblem(3, 3, 2, bias=False)
    with pytest.raises(ValueError, match="without bias takes b = 0"):
        ufm.evaluate(pr, W, H, np.ones(3))


# ---- SELI -----------------------------------------------------------------------------------------


def seli_point(counts, d: int = 6, rng: int = 0):
    """(W, H) built from the SVD of the SEL matrix Zhat = V Lambda U^T: W = V Lambda^(1/2) Q^T,
    H = Q Lambda^(1/2) U^T (Q: d x (k-1) random orthonormal), so that W H = Zhat, W W^T = V Lambda V^T,
    H^T H = U Lambda U^T (Thrampoulidis et al. 2022, Definition 2, alpha = 1)."""
    k, y = len(counts), np.repeat(np.arange(len(counts)), counts)
    Zhat = np.eye(k)[y].T - 1 / k
    V, lam, Ut = np.linalg.svd(Zhat, full_matrices=False)
    V, lam, Ut = V[:, : k - 1], lam[: k - 1], Ut[: k - 1]
    Q, _ = np.linalg.qr(np.random.default_rng(rng).standard_normal((d, k - 1)))
    return V * np.sqrt(lam) @ Q.T, Q * np.sqrt(lam) @ Ut, Zhat


@pytest.mark.parametrize("counts", [(5, 5, 1, 1), (100, 100, 1, 1), (7, 3, 2, 2, 1), (3, 3, 3)])
def test_seli_geometry_of_the_svd_construction(counts):
    """The definition's point (seli_point) measures 0 to SELI on the three statistics, with W H = Zhat, and
    its class means already sum to zero (centred at the mean of the class means)."""
    W, H, Zhat = seli_point(counts)
    pr = ufm.UFMProblem(len(counts), 6, counts, lambda_b=0.0, bias=False)
    point = ufm.evaluate(pr, W, H, np.zeros(len(counts)))
    geometry = ufm.imbalance_geometry(point) if len(counts) > 3 else None
    np.testing.assert_allclose(W @ H, Zhat, atol=1e-12)
    np.testing.assert_allclose(ufm.class_means(point).sum(0), 0, atol=1e-12)
    seli = ufm.seli_geometry(counts)
    A = metrics.centered_means(point.features, point.labels, len(counts), center="classes")
    for got, want in ((W @ W.T, seli["W"]), (A @ A.T, seli["means"]), (W @ ufm.class_means(point).T, seli["logits"])):
        assert metrics.direction_distance(got, want) < 1e-12
    if geometry is not None:
        assert max(geometry[k] for k in ("seli_w_distance", "seli_means_distance", "seli_logits_distance")) < 1e-12


def test_seli_is_the_etf_when_balanced_and_not_otherwise():
    P = np.eye(4) - 0.25
    for target in ufm.seli_geometry((3, 3, 3, 3)).values():
        assert metrics.direction_distance(target, P) < 1e-14
    imbalanced = ufm.seli_geometry((10, 10, 1, 1))
    assert (
        metrics.direction_distance(imbalanced["W"], P) > 0.3
        and metrics.direction_distance(imbalanced["logits"], P) == 0
    )
    # the means' Gram is the classifier Gram's pseudo-inverse: their product is the projector P
    np.testing.assert_allclose(imbalanced["W"] @ imbalanced["means"], P, atol=1e-12)
    with pytest.raises(ValueError, match="positive class counts"):
        ufm.seli_geometry((3, 0, 1))


def test_exact_etf_measures_zero_only_with_the_class_mean_centring():
    """Why the imbalance claim centres the means at their unweighted mean: an exact simplex ETF with
    counts (R, R, 1, 1) measures 0 that way, and 0.27 (R = 2) .. 0.75 (R = 100) centred at the
    count-weighted sample mean, which would pass the claim's 'not an ETF' check for no reason."""
    sweep = etf_sweep((1, 2, 100))
    assert np.abs(sweep["means_etf_distance"]).max() < 1e-12
    tol = checks.tolerance(CLAIMS_DIR, "ufm_imbalance_etf_distance_min")
    assert not tol.holds(imbalance_claim.etf_distance_min(sweep))
    E = ufm.simplex_etf(4, 4, rng=0)
    sample_centred = []
    for R in (2, 100):
        y = np.repeat(np.arange(4), (R, R, 1, 1))
        sample_centred.append(ufm.etf_gram_distance(ufm.centered_mean_gram(E[y], y, 4)))
    assert sample_centred == pytest.approx([0.27, 0.75], abs=0.01) and tol.holds(min(sample_centred))


def test_imbalance_statistics_need_R_from_1_up():
    with pytest.raises(ValueError, match="start at R = 1"):
        imbalance_claim.etf_distance_at_1({"R": np.array([2.0, 1.0]), "means_etf_distance": np.zeros(2)})


SMALL_SWEEP = dict(num_classes=4, dim=4, n_min=2)


def test_solve_is_stored_then_loaded(tmp_path, monkeypatch):
    """With a run store, a solve is saved once and loaded back bit for bit by any later process (here:
    with this process's memo emptied and solving forbidden); other arguments are another key."""
    store = RunStore(tmp_path)
    first = ufm.solve_cached(CE, "gd", 1, store=store)
    key = ufm.solve_key(CE, "gd", 1, ufm.DEFAULT_GTOL, None)
    assert store.load(key).meta["kind"] == ufm.SOLVE_KIND

    def no_solving(*args, **kw):
        raise AssertionError("solved again instead of loading")

    monkeypatch.setattr(ufm.cache, "solve", no_solving)
    monkeypatch.setattr(ufm.cache, "_SOLVED", {})
    again = ufm.solve_cached(CE, "gd", 1, store=store)
    assert again is not first
    for field in ("W", "H", "b"):
        np.testing.assert_array_equal(getattr(again, field), getattr(first, field))
    assert (again.objective, again.grad_norm, again.iterations, again.converged, again.history) == (
        first.objective,
        first.grad_norm,
        first.iterations,
        first.converged,
        first.history,
    )
    assert (again.solver, again.seed, again.gtol) == ("gd", 1, ufm.DEFAULT_GTOL)
    with pytest.raises(AssertionError, match="solved again"):
        ufm.solve_cached(CE, "gd", 2, store=store)
    monkeypatch.setattr(ufm.cache, "UFM_VERSION", ufm.UFM_VERSION + 1)
    assert ufm.solve_key(CE, "gd", 1, ufm.DEFAULT_GTOL, None) != key


def test_imbalance_sweep_is_stored_then_loaded(tmp_path, monkeypatch):
    """The first call solves and stores; the second (same parameters, R given as floats) loads without
    solving; stored_imbalance_sweeps reads back, by seed, the sweeps of the arguments it is given and
    never solves."""
    store = RunStore(tmp_path)
    first = ufm.imbalance_sweep_stored(store, (1, 3), seed=4, **SMALL_SWEEP)
    key = ufm.imbalance_sweep_key(ufm.imbalance_sweep_params((1, 3), seed=4, **SMALL_SWEEP))
    assert store.keys() == [key] and len(key) == len("ufm-imbalance-") + 20 and key.startswith("ufm-imbalance-")
    record = store.load(key)
    assert record.meta["kind"] == "ufm-imbalance-sweep" and record.meta["ufm_version"] == ufm.UFM_VERSION
    assert record.meta["params"] == {
        "R_values": [1.0, 3.0],
        "seed": 4,
        "gtol": ufm.DEFAULT_GTOL,
        "lam": 5e-3,
        "loss": "ce",
        "bias": False,
        "solver": "lbfgs",
        "max_iter": None,
        "refine": True,
        "collapse_tol": ufm.COLLAPSE_TOL,
        **SMALL_SWEEP,
    }
    assert all(a.dtype == np.float64 for a in first.values())
    direct = ufm.imbalance_sweep((1, 3), seed=4, **SMALL_SWEEP)
    assert all(np.array_equal(first[k], direct[k]) for k in direct)

    def no_solving(*args, **kw):
        raise AssertionError("solved again instead of loading")

    monkeypatch.setattr(ufm.cache, "solve", no_solving)
    monkeypatch.setattr(ufm.cache, "_SOLVED", {})
    second = ufm.imbalance_sweep_stored(store, (1.0, 3.0), seed=4, **SMALL_SWEEP)
    assert second.keys() == first.keys() and all(np.array_equal(second[k], first[k]) for k in first)
    store.save(Record("0123abcd", {"spec": {}}, {"x": np.zeros(1)}))  # a run record: passed over
    stored = ufm.stored_imbalance_sweeps(store, (1, 3), (3, 4, 5), **SMALL_SWEEP)
    assert list(stored) == [4] and all(np.array_equal(stored[4][k], first[k]) for k in first)
    with pytest.raises(AssertionError, match="solved again"):
        ufm.imbalance_sweep_stored(store, (1, 3), seed=5, **SMALL_SWEEP)  # other parameters: other key
    monkeypatch.setattr(ufm.cache, "UFM_VERSION", ufm.UFM_VERSION + 1)
    assert ufm.stored_imbalance_sweeps(store, (1, 3), (4,), **SMALL_SWEEP) == {}  # another version: stale


def test_stored_imbalance_sweeps_are_those_of_the_arguments_given(tmp_path):
    """Of several sweeps stored for one seed, the one of the arguments asked for, whichever came last."""
    store = RunStore(tmp_path)
    asked = ufm.imbalance_sweep_stored(store, (1, 2), seed=0, **SMALL_SWEEP)
    ufm.imbalance_sweep_stored(store, (1, 3), seed=0, **SMALL_SWEEP)
    other = ufm.imbalance_sweep_stored(store, (1, 2), seed=1, **SMALL_SWEEP)
    stored = ufm.stored_imbalance_sweeps(store, (1, 2), (0, 1), **SMALL_SWEEP)
    assert len(store.keys()) == 3 and list(stored) == [0, 1]
    np.testing.assert_array_equal(stored[0]["R"], asked["R"])
    np.testing.assert_array_equal(stored[1]["R"], other["R"])


def test_landscape_statistics_need_one_problem():
    runs = [ufm.solve_cached(CE, "lbfgs", 0), ufm.solve_cached(MSE, "lbfgs", 0)]
    for statistic in (c.statistic for c in landscape_claim.PER_SOLVER_CHECKS + landscape_claim.ALL_SOLVERS_CHECKS):
        with pytest.raises(ValueError, match="one problem"):
            statistic(runs)


# ---- Hessian and constructed critical points ----------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_hessian_matches_finite_differences_of_the_gradient(bias):
    """Each column of ufm.hessian equals the central difference of the closed-form gradient (step 1e-6:
    agreement to ~1e-8), and the Hessian is symmetric."""
    pr = ufm.UFMProblem(3, 2, 2, lambda_w=0.1, lambda_h=0.05, lambda_b=0.02 if bias else 0.0, bias=bias)
    W, H, b = (t.numpy() for t in ufm.random_init(pr, seed=2))
    hess = ufm.hessian(pr, W, H, b)
    x = ufm.landscape._parameters(pr, W, H, b).numpy()
    assert hess.shape == (len(x), len(x)) == (6 + 12 + 3 * bias,) * 2
    np.testing.assert_allclose(hess, hess.T, atol=1e-14)

    def grad(v):
        point = (t.numpy() for t in ufm.landscape._unpack(pr, torch.as_tensor(v)))
        return np.concatenate([g.ravel() for g in ufm.gradient(pr, *point)])[: len(x)]

    for j in range(len(x)):
        e = np.zeros(len(x))
        e[j] = 1e-6
        np.testing.assert_allclose(hess[:, j], (grad(x + e) - grad(x - e)) / 2e-6, atol=1e-7)


def test_origin_hessian_has_the_closed_form_smallest_eigenvalue():
    """At W = H = 0, b = 0 (balanced CE) the Hessian's W-H block is [[lambda_W I, G (x) I], [., lambda_H I]]
    with sigma_1(G) = 1/(C sqrt(n)), so its smallest eigenvalue is
    (lambda_W + lambda_H)/2 - sqrt(((lambda_W - lambda_H)/2)^2 + 1/(C^2 n))."""
    pr = landscape_claim.PROBLEM
    point = ufm.frame_critical_point(pr)
    assert point.grad_norm < 1e-15 and not point.W.any() and not point.H.any() and np.abs(point.b).max() < 1e-15
    C, n, lw, lh = pr.num_classes, pr.counts[0], pr.lambda_w, pr.lambda_h
    closed = (lw + lh) / 2 - math.sqrt(((lw - lh) / 2) ** 2 + 1 / (C**2 * n))
    assert np.linalg.svd(ufm.logit_gradient(pr, point.W, point.H, point.b), compute_uv=False)[0] == pytest.approx(
        1 / (C * math.sqrt(n)), rel=1e-14
    )
    assert landscape_claim.hessian_min_eigenvalue(point) == pytest.approx(closed, rel=1e-12)


def test_frame_critical_point_on_the_full_etf_is_the_global_minimiser():
    pr = landscape_claim.PROBLEM
    point = ufm.frame_critical_point(pr, ufm.simplex_etf(4, 3, rng=1))
    assert point.grad_norm < 1e-14 and point.objective == pytest.approx(ufm.optimal_objective(pr), rel=1e-14)
    no_bias = ufm.UFMProblem(4, 6, 5, lambda_w=5e-2, lambda_h=2e-2, lambda_b=0.0, bias=False)
    assert ufm.frame_critical_point(no_bias, ufm.simplex_etf(4, 3, rng=1)).grad_norm < 1e-14


def test_frame_critical_point_bad_frames():
    pr = landscape_claim.PROBLEM
    with pytest.raises(ValueError, match="nonzero row"):
        ufm.frame_critical_point(pr, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at most 6 columns"):
        ufm.frame_critical_point(pr, np.ones((4, 7)))


def test_solve_cached_saves_an_earlier_unstored_solve(tmp_path, monkeypatch):
    """A solve made without a store and asked for again with one is saved there, not solved again."""
    monkeypatch.setattr(ufm.cache, "_SOLVED", {})
    first = ufm.solve_cached(TINY["ce"], "gd", 3, max_iter=5)
    monkeypatch.setattr(ufm.cache, "solve", lambda *a, **kw: pytest.fail("solved again"))
    store = RunStore(tmp_path)
    stored = ufm.solve_cached(TINY["ce"], "gd", 3, max_iter=5, store=store)
    assert ufm.solve_key(TINY["ce"], "gd", 3, ufm.DEFAULT_GTOL, 5) in store
    np.testing.assert_array_equal(stored.W, first.W)


# ---- negative controls: every check of every UFM claim fails where its effect is absent ------------------


def ufm_claims() -> dict[str, ModuleType]:
    """claims/test_ufm_*.py by module name, each declaring its CHECKS tables of cases (ncsim.claim)."""
    names = [info.name for info in pkgutil.iter_modules([str(CLAIMS_DIR)]) if info.name.startswith("test_ufm_")]
    return {name: importlib.import_module(f"claims.{name}") for name in sorted(names)}


UFM_CLAIMS = ufm_claims()


def statistics(module) -> dict[str, Callable]:
    """tolerance -> statistic of every check a UFM claim file declares (one statistic per tolerance)."""
    out = {}
    for table in tables(module):
        for check in table.checks:
            assert out.setdefault(check.tolerance, check.statistic) is check.statistic, (module, check.tolerance)
    return out


@dataclass(frozen=True)
class Control:
    """An input on which the effect is absent, for the named checks of one claim file: `make()` returns
    the arguments of their statistics (statistic(*make()))."""

    name: str
    tolerances: tuple[str, ...]
    make: Callable[[], tuple]


def perturbed_minimizer(problem: ufm.UFMProblem, scale: float = 1e-3) -> ufm.UFMResult:
    """The claims' LBFGS minimiser (seed 0) with N(0, scale^2) noise added to W, H and b."""
    r, rng = ufm.solve_cached(problem, "lbfgs", 0), np.random.default_rng(0)
    return ufm.evaluate(problem, *(x + scale * rng.standard_normal(np.shape(x)) for x in (r.W, r.H, r.b)))


def minimizer_controls(problem: ufm.UFMProblem, tolerances, prefix: str = "") -> tuple[Control, ...]:
    """A solver stopped after one GD step, and a minimiser perturbed by 1e-3."""
    return (
        Control(prefix + "one-iteration", tuple(tolerances), lambda: (ufm.solve(problem, "gd", max_iter=1),)),
        Control(prefix + "perturbed", tuple(tolerances), lambda: (perturbed_minimizer(problem),)),
    )


def trivial_controls(loss: str) -> tuple[Control, ...]:
    """C kappa >= 1: a solver stopped after one GD step, and a small random point (not W = H = 0)."""
    pr = mse_claim.TRIVIAL[loss]
    tolerances = tuple(c.tolerance for c in mse_claim.TRIVIAL_CHECKS)
    return (
        Control(f"{loss}-one-iteration", tolerances, lambda: (ufm.solve(pr, "gd", max_iter=1),)),
        Control(
            f"{loss}-small-random",
            tolerances,
            lambda: (ufm.evaluate(pr, *(1e-3 * t.numpy() for t in ufm.random_init(pr, 0))),),
        ),
    )


def webb_lowe_args(features, scale: float = 1.0, noise: float = 0.0) -> tuple:
    """(h, y, W, b) with Proposition 1's classifier (W scaled by `scale`) on 4 classes in 6 dimensions,
    the features offset by `noise` times Gaussian noise, as the claim's statistics take them."""
    h, y = features(4, 6, 10, 0)
    h = h + noise * np.random.default_rng(0).standard_normal(h.shape)
    W, b = ufm.webb_lowe_classifier(h, y, 4)
    return (webb_lowe_claim.Classified(h, y, scale * W, b),)


def stopped_landscape() -> tuple:
    """Three converged LBFGS runs and one stopped after 1 iteration."""
    return ([ufm.solve_cached(CE, "lbfgs", seed) for seed in range(3)] + [ufm.solve(CE, "lbfgs", max_iter=1)],)


def global_minimiser_point() -> tuple:
    """The global minimiser, built like the saddles: frame_critical_point on the full simplex ETF frame."""
    return (ufm.frame_critical_point(landscape_claim.PROBLEM, ufm.simplex_etf(4, 3, rng=0)),)


def perturbed_critical_point() -> tuple:
    """The rank-1 critical point (classes merged in pairs) with N(0, 1e-3^2) noise on W, H and b."""
    point, rng = landscape_claim.critical_point("pairs"), np.random.default_rng(0)
    noisy = (x + 1e-3 * rng.standard_normal(np.shape(x)) for x in (point.W, point.H, point.b))
    return (ufm.evaluate(point.problem, *noisy),)


@functools.cache
def etf_sweep(R_values=imbalance_claim.R_VALUES) -> dict[str, np.ndarray]:
    """A sweep whose point at every R is an exact simplex ETF (W = E, every h_i = e_{y_i}, b = 0) of the
    imbalanced problem: no imbalance effect at all."""
    E = ufm.simplex_etf(imbalance_claim.C, imbalance_claim.DIM, rng=0)
    rows = []
    for R in R_values:
        pr = ufm.sweeps._imbalanced_problem(
            imbalance_claim.C, imbalance_claim.DIM, 1, R, imbalance_claim.LAM, "ce", False
        )
        rows.append({"R": float(R), **ufm.imbalance_geometry(ufm.evaluate(pr, E, E[pr.labels].T, np.zeros(4)))})
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def swapped_thresholds() -> tuple:
    """The threshold bisections of each lambda paired with the next lambda's closed form."""
    sweeps = imbalance_claim.threshold_sweeps(None, 0)
    lams = list(sweeps)
    return ({lam: sweeps[lams[(i + 1) % len(lams)]] for i, lam in enumerate(lams)},)


def seli_paths(lams=imbalance_claim.SELI_LAMS, Rs=imbalance_claim.SELI_RS) -> tuple:
    """Regularisation paths (seed 0) at the given R over the given lambdas (in that order)."""
    return ({i: ufm.seli_path(R, lams, seed=0) for i, R in enumerate(Rs)},)


CONTROLS: dict[str, tuple[Control, ...]] = {
    "test_ufm_global_minimizer": minimizer_controls(CE, statistics(global_claim)),
    "test_ufm_landscape": (
        Control(
            "stopped-run",
            tuple(c.tolerance for c in landscape_claim.PER_SOLVER_CHECKS + landscape_claim.ALL_SOLVERS_CHECKS),
            stopped_landscape,
        ),
        Control("perturbed-critical-point", ("ufm_critical_point_grad_norm_max",), perturbed_critical_point),
        # the global minimiser: the same checks, where the point is no saddle
        Control(
            "global-minimiser",
            ("ufm_saddle_objective_gap_min", "ufm_saddle_hessian_min_eigenvalue_max"),
            global_minimiser_point,
        ),
        # W = H = 0 when C kappa >= 1, where it is the global minimiser (the Hessian is positive semi-definite)
        Control(
            "trivial-origin",
            ("ufm_saddle_objective_gap_min", "ufm_saddle_hessian_min_eigenvalue_max"),
            lambda: (ufm.frame_critical_point(mse_claim.TRIVIAL["ce"]),),
        ),
    ),
    "test_ufm_feature_dim": (
        Control(
            "stopped-full-dim",
            ("ufm_etf_distance_max",),
            lambda: (ufm.solve(dim_claim.problem(dim_claim.C - 1), "lbfgs", max_iter=1),),
        ),
        # an (almost) ETF is what a p < C-1 solution cannot be: the low-dimension check rejects it
        Control(
            "perturbed-etf",
            ("ufm_lowdim_etf_distance_min",),
            lambda: (perturbed_minimizer(dim_claim.problem(dim_claim.C - 1)),),
        ),
        Control(
            "stopped-low-dim", ("ufm_lowdim_nc1_max",), lambda: (ufm.solve(dim_claim.problem(2), "lbfgs", max_iter=1),)
        ),
    ),
    "test_ufm_mse": (
        *minimizer_controls(MSE, [c.tolerance for c in mse_claim.MINIMIZER]),
        *minimizer_controls(mse_claim.PROBLEM_REG_BIAS, [c.tolerance for c in mse_claim.REGULARISED_BIAS], "lambda_b-"),
        *trivial_controls("ce"),
        *trivial_controls("mse"),
    ),
    "test_ufm_webb_lowe": (
        # features without NC1/NC2: the classifier is neither self-dual nor the nearest-mean rule
        Control(
            "random-features",
            ("ufm_webb_lowe_nc3", "ufm_webb_lowe_nc4"),
            lambda: webb_lowe_args(webb_lowe_claim.random_features),
        ),
        Control(
            "perturbed-etf",
            ("ufm_webb_lowe_nc3",),
            lambda: webb_lowe_args(webb_lowe_claim.collapsed_features, noise=1e-3),
        ),
    ),
    "test_ufm_imbalance": (
        Control(
            "stopped-sweep",
            ("ufm_grad_norm_max", "ufm_etf_distance_max", "ufm_imbalance_minority_collapse_max"),
            lambda: (ufm.imbalance_sweep(imbalance_claim.R_VALUES, max_iter=1),),
        ),
        # an exact simplex ETF at every R: 0 ETF distance with the means centred at the mean of the class means
        Control(
            "exact-etf",
            (
                "ufm_grad_norm_max",
                "ufm_imbalance_etf_distance_min",
                "ufm_imbalance_w_etf_distance_min_increase",
                "ufm_imbalance_minority_cos_min_increase",
                "ufm_imbalance_minority_collapse_max",
            ),
            lambda: (etf_sweep(),),
        ),
        Control("lambdas-swapped", ("ufm_imbalance_collapse_threshold_error",), swapped_thresholds),
        # the regularisation does not vanish (1e-2 throughout): no step towards SELI
        Control("lambda-fixed", ("ufm_seli_distance_min_decrease",), lambda: seli_paths(lams=(1e-2,) * 3)),
        # strong regularisation (lambda = 1e-2 only): the minimiser is not SELI-like
        Control("strong-regularisation", ("ufm_seli_over_etf_max",), lambda: seli_paths(lams=(1e-2,))),
        # one imbalance ratio throughout: no growth of the SELI distance with R
        Control("imbalance-fixed", ("ufm_seli_distance_min_increase_over_R",), lambda: seli_paths(Rs=(10, 10, 10))),
    ),
}
CONTROL_CASES = [
    pytest.param(claim, tolerance, control, id=f"{claim.removeprefix('test_ufm_')}-{tolerance}-{control.name}")
    for claim, controls in CONTROLS.items()
    for control in controls
    for tolerance in control.tolerances
]


@pytest.mark.parametrize("claim,tolerance,control", CONTROL_CASES)
def test_check_fails_on_control(claim, tolerance, control):
    """The claim's statistic, on the control, is finite and does not meet its tolerance."""
    value = float(statistics(UFM_CLAIMS[claim])[tolerance](*control.make()))
    assert math.isfinite(value), f"{claim} {tolerance} on {control.name}: {value} (NaN/inf is no control)"
    assert not checks.tolerance(CLAIMS_DIR, tolerance).holds(value), (claim, tolerance, control.name, value)


def test_every_ufm_check_has_a_control():
    """Every (claim file, tolerance) of a UFM CHECKS table has a control, and every control a check."""
    assert set(UFM_CLAIMS) == set(CONTROLS), "a UFM claim file without controls, or controls of no file"
    checked = {(claim, tolerance) for claim, module in UFM_CLAIMS.items() for tolerance in statistics(module)}
    controlled = {
        (claim, tolerance)
        for claim, controls in CONTROLS.items()
        for control in controls
        for tolerance in control.tolerances
    }
    assert checked - controlled == set(), "checks without a negative control"
    assert controlled - checked == set(), "controls of checks that no claim makes"


def test_every_ufm_tolerance_is_checked():
    """The UFM CHECKS tables use exactly the ufm_* tolerances of claims/tolerances.toml."""
    used = {tolerance for module in UFM_CLAIMS.values() for tolerance in statistics(module)}
    assert used == {name for name in checks.load_tolerances(CLAIMS_DIR) if name.startswith("ufm_")}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_the_exact_webb_lowe_classifier_is_self_dual_only_at_exact_collapse(seed):
    """Why claims/test_webb_lowe_cnn.py states Proposition 1's premise (Sigma_W = 0) instead of testing
    its NC3 on finite collapse: with within-class variance off the span of the means, shrinking Sigma_W by
    a common factor t shrinks NC1 with t and leaves NC3 of W = M^T Sigma_T^+ where it was (the block of
    Sigma_T^+ coupling the span to the rest is a ratio of within-class covariances); with it inside the
    span, NC3 vanishes with t."""
    rng = np.random.default_rng(seed)
    C, p, n = 5, 24, 60
    frame = np.linalg.qr(rng.normal(size=(p, C)))[0]
    means = 3 * (np.eye(C) - 1 / C) @ frame.T  # a simplex ETF
    span = np.linalg.svd(means, full_matrices=False)[2][: C - 1]
    y = np.repeat(np.arange(C), n)
    off = rng.normal(size=(C * n, p)) @ rng.normal(size=(p, p)) / np.sqrt(p)
    inside = rng.normal(size=(C * n, C - 1)) @ span

    def nc(noise, t):
        h = means[y] + math.sqrt(t) * noise
        W, b = ufm.webb_lowe_classifier(h, y, C)
        m = metrics.collapse_metrics(h, y, W, b, C)
        return m["nc1"], m["nc3"]

    (nc1_a, nc3_a), (nc1_b, nc3_b) = nc(off, 1e-2), nc(off, 1e-5)
    assert nc1_b < 1e-2 * nc1_a and nc3_b > 0.1 and abs(math.log(nc3_b / nc3_a)) < math.log(1.2)
    assert nc(inside, 1e-5)[1] < 1e-2 * nc(inside, 1e-2)[1] + 1e-12  # NC3 falls with t (here about as t)
