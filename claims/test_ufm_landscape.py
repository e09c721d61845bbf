"""UFM claim 2: the regularised cross-entropy UFM has a benign landscape.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021
(arXiv 2105.02375), Theorem 3.2 (stated for p > C): every critical point is either a global minimiser
or a strict saddle, so there are no spurious local minima. Measured: from 10 random inits, each of GD,
minibatch SGD, Adam and LBFGS reaches ||grad f|| <= 1e-8 at the same objective value, which is the
global minimum value g(q*) of the closed form (ncsim.ufm), to 1e-8 relative.
"""

import pytest

from claims.test_ufm_global_minimizer import CONFIGS, GTOL
from ncsim import ufm

PROBLEM = CONFIGS["C4-p6"]
INITS = tuple(range(10))


def runs(solvers=ufm.SOLVERS):
    return [ufm.solve_cached(PROBLEM, solver, seed, gtol=GTOL) for solver in solvers for seed in INITS]


@pytest.mark.parametrize("solver", [pytest.param(s, id=s) for s in ufm.SOLVERS])
def test_all_inits_critical(solver, claim_check):
    """Every one of the 10 inits ends at a critical point (the largest final gradient norm)."""
    stats = ufm.landscape_statistics(runs([solver]))
    claim_check("ufm_grad_norm_max", stats["max_grad_norm"], run=f"ufm-ce-{solver}-10-inits")


@pytest.mark.parametrize("solver", [pytest.param(s, id=s) for s in ufm.SOLVERS])
def test_no_spurious_minimum(solver, claim_check):
    """No init ends above the global minimum value g(q*) (relative excess of the worst init)."""
    stats = ufm.landscape_statistics(runs([solver]))
    claim_check("ufm_landscape_max_gap", stats["max_gap"], run=f"ufm-ce-{solver}-10-inits")


def test_same_objective_all_solvers(claim_check):
    """All 4 solvers x 10 inits reach the same objective value: (max f - min f) / min f."""
    stats = ufm.landscape_statistics(runs())
    claim_check("ufm_landscape_objective_spread", stats["objective_spread"], run="ufm-ce-4-solvers-10-inits")
