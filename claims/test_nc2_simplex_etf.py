"""Claim 3, NC2 convergence to a simplex ETF: the centered class means, and the classifier rows, become
equinorm and equiangular with pairwise cosines -> -1/(C-1).

Source: Papyan, Han & Donoho, PNAS 2020, Figs. 2-4 (std/avg of norms; std of cosines; avg |cos +
1/(C-1)|), and Zhu et al., NeurIPS 2021, Sec. 5 (the normalised Gram distance to the ETF).
"""

from operator import methodcaller

from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("nc_metrics.png", "geometry.png")


def shrink_factor(column: str):
    """The statistic `column` at initialisation over its end value (> 1: it moved toward the ETF)."""
    return lambda run: run[column][0] / run.final(column)


# Random 128-D classifier rows are equinorm already (row-norm std/mean ~0.02): w_equinorm's control is
# a run whose training does not collapse.
# At the end of training the means (nc2_*) and classifier rows (w_*) are close to a simplex ETF, and
# the deviation from the ETF angles shrank from initialisation.
CHECKS = Checks(
    "test_simplex_etf",
    Check("nc2_equinorm_end_max", methodcaller("final", "train.nc2_equinorm"), controls=("init",)),
    Check("w_equinorm_end_max", methodcaller("final", "train.w_equinorm"), controls=("no-bn", "wd-fifth")),
    Check("nc2_equiangularity_end_max", methodcaller("final", "train.nc2_equiangularity"), controls=("init",)),
    Check("w_equiangularity_end_max", methodcaller("final", "train.w_equiangularity"), controls=("init", "wd-fifth")),
    Check("nc2_maxangle_end_max", methodcaller("final", "train.nc2_maxangle"), controls=("init", "wd-fifth")),
    Check("w_maxangle_end_max", methodcaller("final", "train.w_maxangle"), controls=("init", "wd-fifth")),
    Check("nc2_etf_distance_end_max", methodcaller("final", "train.nc2_etf_distance"), controls=("init", "wd-fifth")),
    Check("w_etf_distance_end_max", methodcaller("final", "train.w_etf_distance"), controls=("init", "wd-fifth")),
    Check("nc2_maxangle_shrink_min", shrink_factor("train.nc2_maxangle"), controls=("init",)),
    Check("nc2_etf_distance_shrink_min", shrink_factor("train.nc2_etf_distance"), controls=("init",)),
)
