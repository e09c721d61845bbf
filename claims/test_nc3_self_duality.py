"""Claim 4, NC3 self-duality: the classifier rows converge to the centered class means, up to scale:
|| W^T/||W||_F - Mdot/||Mdot||_F ||_F^2 -> 0.

Source: Papyan, Han & Donoho, PNAS 2020, Fig. 5; Zhu et al., NeurIPS 2021, Sec. 5 (NC3 via W Mdot).
"""

from claims.shared import nc3_end
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("nc_metrics.png", "geometry.png")


def nc3_init_over_end(run) -> float:
    return run["train.nc3"][0] / run.final("train.nc3")


# W^T/||W|| ends close to Mdot/||Mdot||, far closer than at initialisation.
CHECKS = Checks(
    "test_self_duality",
    Check("nc3_end_max", nc3_end, controls=("init", "wd-fifth")),
    Check("nc3_init_over_end_min", nc3_init_over_end, controls=("init",)),
)
