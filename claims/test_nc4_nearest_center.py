"""Claim 5, NC4 simplification to the nearest class centre: on the train set the network's decision
argmax(W h + b) agrees with the nearest train class mean.

Source: Papyan, Han & Donoho, PNAS 2020, Fig. 7 (the NCC mismatch falls to 0 during TPT).

On MNIST-1D the mismatch reaches 0 at the first epoch with zero train error, before the stable TPT, on
every calibration run (standard, seeds 100-104): it is 0 at the stable TPT already, so the checks state
that the terminal phase keeps the network deciding as the nearest class centre, not that it brings it
about. They are a structural statement of the end of training: the discrimination table
(docs/discrimination.md) shows the run stopped at its TPT passing them, and no training, no batch norm
failing them.
"""

from claims.shared import nc4_end
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("nc_metrics.png", "geometry.png")


def nc4_post_tpt_mean(run) -> float:
    """Mean mismatch over the second half of the terminal phase; NaN without TPT."""
    epochs, nc4 = run.post_tpt("train.nc4")
    return float(nc4[len(nc4) // 2 :].mean()) if len(nc4) else float("nan")


# The network decides as the nearest train class mean at the end and late in TPT.
CHECKS = Checks(
    "test_nearest_class_center",
    Check("nc4_end_max", nc4_end, controls=("init",)),
    Check("nc4_late_tpt_mean_max", nc4_post_tpt_mean, controls=("reversed",)),
)
