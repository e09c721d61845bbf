"""UFM claim 2: the regularised cross-entropy UFM has a benign landscape.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.2 (stated for p > C): every critical point is either a global minimiser
or a strict saddle, so there are no spurious local minima. Measured: from 10 random inits, each of GD,
minibatch SGD, Adam and LBFGS reaches ||grad f|| <= 1e-8 at the same objective value, which is the
global minimum value g(q*) of the closed form (ncsim.ufm), to 1e-8 relative.
"""

from typing import Sequence

import numpy as np
import pytest

from claims.test_ufm_global_minimizer import CONFIGS, GTOL
from ncsim import ufm

PROBLEM = CONFIGS["C4-p6"]
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


PER_SOLVER_CHECKS = {
    "ufm_grad_norm_max": max_grad_norm,
    "ufm_landscape_max_gap": max_gap,
}
ALL_SOLVERS_CHECKS = {"ufm_landscape_objective_spread": objective_spread}
CHECKS = {**PER_SOLVER_CHECKS, **ALL_SOLVERS_CHECKS}

CASES = [pytest.param(group, tolerance, id=f"{group}-{tolerance}")
         for group in GROUPS
         for tolerance in (ALL_SOLVERS_CHECKS if group == "4-solvers" else PER_SOLVER_CHECKS)]


@pytest.mark.parametrize("group,tolerance", CASES)
def test_landscape_is_benign(group, tolerance, run_store, claim_check):
    """Each solver's 10 inits end at critical points, none above g(q*); all 4 x 10 at the same value."""
    claim_check(tolerance, CHECKS[tolerance](runs(GROUPS[group], run_store)), run=f"ufm-ce-{group}-10-inits")
