"""The unconstrained features model (UFM) of Neural Collapse, solved numerically in float64.

One module per job (each imports only those above it):

    problem       the problem f(W, H, b) (notation: its docstring), its gradient, a point (UFMResult)
    solvers       GD, SGD, Adam and LBFGS minimising f (solve)
    geometry      the simplex ETF, and the class means' distance to it when p < C-1
    closed_forms  the balanced global minimiser (derived in its docstring); Webb & Lowe's classifier
    landscape     the exact Hessian and critical points that are not global minimisers
    imbalance     SELI, the statistics of an imbalanced point, the minority-collapse threshold
    cache         solves kept per process and in the run store (solve_cached, UFM_VERSION)
    sweeps        sweeps over the imbalance ratio and the regularisation, kept in the run store

The names below are this package's public ones; the statistics the claims check are defined in the claim
files (claims/test_ufm_*.py).
"""

from ncsim.ufm.cache import SOLVE_KEY_PREFIX, SOLVE_KIND, UFM_VERSION, solve_cached, solve_key
from ncsim.ufm.closed_forms import (
    closed_form_minimizer,
    lstsq_deviation,
    optimal_objective,
    optimal_product,
    reduced_objective,
    trivial_objective,
    webb_lowe_classifier,
)
from ncsim.ufm.geometry import (
    centered_mean_gram,
    embedded_features,
    etf_distance_lower_bound,
    etf_gram_distance,
    simplex_etf,
)
from ncsim.ufm.imbalance import (
    COLLAPSE_TOL,
    class_means,
    collapse_threshold,
    imbalance_geometry,
    minority_collapse_ratio,
    seli_geometry,
)
from ncsim.ufm.landscape import frame_critical_point, frame_point, hessian, logit_gradient
from ncsim.ufm.problem import DEFAULT_GTOL, LOSSES, UFMProblem, UFMResult, evaluate, gradient, objective, random_init
from ncsim.ufm.solvers import ADAM_DECAY, DEFAULT_LR, DEFAULT_MAX_ITER, LBFGS_CHUNK, SOLVERS, solve
from ncsim.ufm.sweeps import (
    IMBALANCE_KEY_PREFIX,
    IMBALANCE_KIND,
    imbalance_sweep,
    imbalance_sweep_key,
    imbalance_sweep_params,
    imbalance_sweep_stored,
    seli_path,
    stored_imbalance_sweeps,
)

__all__ = [
    "DEFAULT_GTOL",
    "LOSSES",
    "UFMProblem",
    "UFMResult",
    "evaluate",
    "gradient",
    "objective",
    "random_init",
    "ADAM_DECAY",
    "DEFAULT_LR",
    "DEFAULT_MAX_ITER",
    "LBFGS_CHUNK",
    "SOLVERS",
    "solve",
    "centered_mean_gram",
    "embedded_features",
    "etf_distance_lower_bound",
    "etf_gram_distance",
    "simplex_etf",
    "closed_form_minimizer",
    "lstsq_deviation",
    "optimal_objective",
    "optimal_product",
    "reduced_objective",
    "trivial_objective",
    "webb_lowe_classifier",
    "frame_critical_point",
    "frame_point",
    "hessian",
    "logit_gradient",
    "COLLAPSE_TOL",
    "class_means",
    "collapse_threshold",
    "imbalance_geometry",
    "minority_collapse_ratio",
    "seli_geometry",
    "SOLVE_KEY_PREFIX",
    "SOLVE_KIND",
    "UFM_VERSION",
    "solve_cached",
    "solve_key",
    "IMBALANCE_KEY_PREFIX",
    "IMBALANCE_KIND",
    "imbalance_sweep",
    "imbalance_sweep_key",
    "imbalance_sweep_params",
    "imbalance_sweep_stored",
    "seli_path",
    "stored_imbalance_sweeps",
]
