"""Tests for ncsim.ufm: the objective and its gradient, the solvers, the closed forms, the helpers, and
negative controls showing that every statistic the UFM claims check fails its tolerance on a point that
is not a converged minimiser (a solver stopped after 1 iteration, a perturbed ETF minimiser)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.optimize import minimize_scalar

from claims import test_ufm_feature_dim as dim_claim
from claims import test_ufm_global_minimizer as global_claim
from claims import test_ufm_imbalance as imbalance_claim
from claims import test_ufm_mse as mse_claim
from claims import test_ufm_webb_lowe as webb_lowe_claim
from ncsim import metrics, tolerances, ufm

TINY = {loss: ufm.UFMProblem(3, 2, 2, lambda_w=0.1, lambda_h=0.05, lambda_b=0.02, loss=loss)
        for loss in ufm.LOSSES}
CE = global_claim.CONFIGS["C4-p6"]
MSE = mse_claim.PROBLEM


def fails(name: str, value: float) -> bool:
    return not tolerances.get(name).holds(value)


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
    f = ufm._Objective(pr)
    for batch in (None, torch.tensor([0, 3, 5])):
        value = f.value(W, H, b, batch)
        auto = torch.autograd.grad(value, (W, H, b))
        closed_value, closed = f.value_and_grad(W.detach(), H.detach(), b.detach(), batch)
        assert float(closed_value) == pytest.approx(float(value.detach()), rel=1e-15)
        auto_h = auto[1] if batch is None else auto[1][:, batch]
        for a, c in zip((auto[0], auto_h, auto[2]), closed):
            np.testing.assert_allclose(c.numpy(), a.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ufm.gradient(pr, W.detach(), H.detach(), b.detach())[1],
                               torch.autograd.grad(ufm.objective(pr, W, H, b), H)[0].numpy(), rtol=1e-12)


def test_minibatch_objective_is_unbiased():
    """The mean of f_B over an epoch of equal-size stratified batches is f."""
    pr = ufm.UFMProblem(3, 4, 6)
    W, H, b = ufm.random_init(pr, seed=1)
    f = ufm._Objective(pr)
    batches = ufm._stratified_batches(pr.labels, 3, np.random.default_rng(0))
    assert all(np.bincount(pr.labels[bt.numpy()], minlength=3).tolist() == [2, 2, 2] for bt in batches)
    mean = sum(float(f.value(W, H, b, bt)) for bt in batches) / len(batches)
    assert mean == pytest.approx(float(f.value(W, H, b)), rel=1e-14)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=4, dim=0, counts=5), "dim"),
    (dict(num_classes=1, dim=3, counts=5), "num_classes"),
    (dict(num_classes=3, dim=3, counts=(5, 5)), "counts"),
    (dict(num_classes=3, dim=3, counts=0), "counts"),
    (dict(num_classes=3, dim=3, counts=5, lambda_w=-1.0), "lambda_w"),
    (dict(num_classes=3, dim=3, counts=5, loss="hinge"), "loss 'hinge'; valid choices: ce, mse"),
])
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

@pytest.mark.parametrize("problem", [CE, MSE, global_claim.CONFIGS["C6-p5"], ufm.UFMProblem(5, 7, 3, 1e-3, 2e-3)],
                         ids=["ce-C4", "mse-C4", "ce-C6", "ce-small-lambda"])
def test_optimal_product_minimises_reduced_objective(problem):
    q = ufm.optimal_product(problem)
    numeric = minimize_scalar(lambda x: float(ufm.reduced_objective(problem, x)), bounds=(0, 10 * q + 1),
                              method="bounded", options={"xatol": 1e-12})
    assert q == pytest.approx(numeric.x, rel=1e-6)


@pytest.mark.parametrize("problem", [CE, MSE, global_claim.CONFIGS["C6-p5"]], ids=["ce-C4", "mse-C4", "ce-C6"])
def test_closed_form_minimizer_is_critical(problem):
    """The closed form is a critical point of f and attains g(q*)."""
    point = ufm.evaluate(problem, *ufm.closed_form_minimizer(problem, rng=3))
    assert point.grad_norm < 1e-13
    assert point.objective == pytest.approx(float(ufm.reduced_objective(problem, ufm.optimal_product(problem))),
                                            rel=1e-14)


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


def test_webb_lowe_bad_input():
    with pytest.raises(ValueError, match="every class present"):
        ufm.webb_lowe_classifier(np.zeros((4, 2)), np.array([0, 0, 1, 1]), 3)


# ---- negative controls: every claim statistic fails off a converged minimiser -----------------------------

COLLAPSE_CHECKS = {"grad_norm": "ufm_grad_norm_max", "nc_max": "ufm_nc_max",
                   "norm_ratio_error": "ufm_norm_ratio_error", "bias_spread": "ufm_bias_spread",
                   "bias_error": "ufm_bias_error", "product_error": "ufm_product_error",
                   "objective_gap": "ufm_objective_gap"}


def perturbed_minimizer(problem: ufm.UFMProblem, scale: float = 1e-3) -> ufm.UFMResult:
    rng = np.random.default_rng(0)
    return ufm.evaluate(problem, *(x + scale * rng.standard_normal(np.shape(x))
                                   for x in ufm.closed_form_minimizer(problem, rng)))


@pytest.mark.parametrize("problem", [CE, MSE], ids=["ce", "mse"])
@pytest.mark.parametrize("control", ["one-iteration", "perturbed-etf"])
def test_collapse_checks_fail_on_negative_controls(problem, control):
    point = (ufm.solve(problem, "gd", max_iter=1) if control == "one-iteration"
             else perturbed_minimizer(problem))
    stats = ufm.collapse_statistics(point)
    for key, name in COLLAPSE_CHECKS.items():
        assert fails(name, stats[key]), (control, key, stats[key])
    # the same statistics pass at the converged run the claims use
    converged = ufm.collapse_statistics(ufm.solve_cached(problem, "lbfgs", 0))
    assert not any(fails(name, converged[key]) for key, name in COLLAPSE_CHECKS.items())


def test_landscape_checks_fail_with_a_stopped_run():
    runs = [ufm.solve_cached(CE, "lbfgs", seed) for seed in range(3)] + [ufm.solve(CE, "lbfgs", max_iter=1)]
    stats = ufm.landscape_statistics(runs)
    assert fails("ufm_landscape_objective_spread", stats["objective_spread"])
    assert fails("ufm_landscape_max_gap", stats["max_gap"])
    assert fails("ufm_grad_norm_max", stats["max_grad_norm"])
    with pytest.raises(ValueError, match="one problem"):
        ufm.landscape_statistics(runs + [ufm.solve_cached(MSE, "lbfgs", 0)])


def test_feature_dim_checks_fail_on_negative_controls():
    stopped_full = ufm.solve(dim_claim.problem(dim_claim.C - 1), "lbfgs", max_iter=1)
    assert fails("ufm_etf_distance_max", dim_claim.means_etf_distance(stopped_full))
    # an (almost) ETF is what a p < C-1 solution cannot be: the low-dimension check rejects it
    assert fails("ufm_lowdim_etf_distance_min",
                 dim_claim.means_etf_distance(perturbed_minimizer(dim_claim.problem(dim_claim.C - 1))))
    stopped_low = ufm.solve(dim_claim.problem(2), "lbfgs", max_iter=1)
    nc1 = metrics.collapse_metrics(ufm.embedded_features(stopped_low.features, dim_claim.C), stopped_low.labels)
    assert fails("ufm_lowdim_nc1_max", nc1["nc1"])


@pytest.mark.parametrize("loss", ufm.LOSSES)
def test_trivial_checks_fail_on_negative_controls(loss):
    pr = mse_claim.TRIVIAL[loss]
    for point in (ufm.solve(pr, "gd", max_iter=1),
                  ufm.evaluate(pr, *(1e-3 * t.numpy() for t in ufm.random_init(pr, 0)))):
        stats = ufm.trivial_statistics(point)
        assert fails("ufm_trivial_norm", stats["norm"]) and fails("ufm_trivial_objective_gap", stats["objective_gap"])


def test_webb_lowe_checks_fail_on_negative_controls():
    h, y = webb_lowe_claim.random_features(4, 6, 10, 0)
    W, b = ufm.webb_lowe_classifier(h, y, 4)
    assert fails("ufm_webb_lowe_lstsq_deviation", ufm.lstsq_deviation(h, y, 4, 4 * W, b))      # without the 1/C
    assert fails("ufm_webb_lowe_lstsq_deviation", ufm.lstsq_deviation(h, y, 4, (1 + 1e-6) * W, b))
    # on features without NC1/NC2 the classifier is neither self-dual nor the nearest-mean rule
    m = metrics.collapse_metrics(h, y, W, b)
    assert fails("ufm_webb_lowe_nc3", m["nc3"]) and fails("ufm_webb_lowe_nc4", m["nc4"])
    h, y = webb_lowe_claim.collapsed_features(4, 6, 10, 0)
    h = h + 1e-3 * np.random.default_rng(0).standard_normal(h.shape)       # a perturbed ETF
    assert fails("ufm_webb_lowe_nc3", metrics.collapse_metrics(h, y, *ufm.webb_lowe_classifier(h, y, 4))["nc3"])


def test_imbalance_checks_fail_on_a_stopped_sweep():
    stats = ufm.imbalance_statistics(ufm.imbalance_sweep(imbalance_claim.R_VALUES, max_iter=1))
    assert fails("ufm_etf_distance_max", stats["etf_distance_at_1"])
    assert fails("ufm_imbalance_etf_distance_min_increase", stats["etf_distance_min_increase"])
    assert fails("ufm_imbalance_minority_cos_min_increase", stats["minority_cos_min_increase"])
    assert fails("ufm_imbalance_minority_cos_at_max", stats["minority_cos_at_max"])
    with pytest.raises(ValueError, match="start at R = 1"):
        ufm.imbalance_statistics({"R": np.array([2, 1])})


def test_imbalance_sweep_shapes():
    sweep = ufm.imbalance_sweep((1, 3), num_classes=5, dim=5, n_min=2)
    assert set(sweep) >= {"R", "minority_cos", "majority_cos", "means_etf_distance", "w_etf_distance"}
    assert all(len(v) == 2 for v in sweep.values()) and sweep["converged"].all()
    assert sweep["minority_cos"][0] == pytest.approx(-1 / 4, abs=1e-6)
