"""Claim 2, NC1 variability collapse: within-class variability of the penultimate features shrinks
relative to the between-class variability, keeps falling during the terminal phase, and ends far below
its value at initialisation.

Source: Papyan, Han & Donoho, PNAS 2020, Fig. 6 (Tr(Sigma_W Sigma_B^+)/C on a log scale, decreasing
through TPT). NC1 on the train set in eval mode (ncsim.metrics.collapse_metrics).
"""

import numpy as np
from scipy.stats import spearmanr

from claims.shared import MIN_POINTS, TERMINAL_PHASE, nc1_end, nc1_init_over_end
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("nc_metrics.png", "geometry.png")


def nc1_tpt_over_end(run) -> float:
    """NC1 at the TPT epoch divided by NC1 at the end (> 1: it kept falling); NaN without TPT."""
    return run.at_tpt("train.nc1") / run.final("train.nc1")


def nc1_post_tpt_trend(run) -> float:
    """Spearman rank correlation of NC1 with the epoch over the evaluated epochs from TPT on (-1: it
    falls at every step); NaN with fewer than MIN_POINTS such epochs (runs the premise TERMINAL_PHASE
    keeps out of the decision)."""
    epochs, nc1 = run.post_tpt("train.nc1")
    if len(epochs) < MIN_POINTS or np.ptp(nc1) == 0:
        return float("nan")
    return float(spearmanr(epochs, nc1).statistic)


def beside_nc1(run) -> str:
    """What NC1 does not see, at the end and at initialisation: the trace ratio and CDNV (which weigh all
    of the within-class variance), the share of it outside the span of the means (where Sigma_B^+ is
    zero), and the conditioning s_{C-1}/s_1 of the centred means (ncsim.metrics)."""
    return "; ".join(
        f"{when}: nc1_trace {run['train.nc1_trace'][i]:.3g}, cdnv {run['train.cdnv'][i]:.3g}, "
        f"within-class variance off the means' span {run['train.within_offspan'][i]:.0%}, "
        f"means conditioning {run['train.means_conditioning'][i]:.2g}"
        for when, i in (("end", -1), ("init", 0))
    )


# NC1 ends small, falls after TPT (trend and end-vs-TPT factor) and far below initialisation.
CHECKS = Checks(
    "test_nc1_collapses",
    Check("nc1_end_max", nc1_end, controls=("init", "no-bn", "wd-fifth"), note=beside_nc1),
    Check("nc1_tpt_over_end_min", nc1_tpt_over_end, controls=("at-tpt", "lr0-at-tpt"), premise=TERMINAL_PHASE),
    Check("nc1_init_over_end_min", nc1_init_over_end, controls=("init",), note=beside_nc1),
    Check("nc1_post_tpt_trend_max", nc1_post_tpt_trend, controls=("reversed",), premise=TERMINAL_PHASE),
)
