"""Claim 10, the central path: the network's last-layer classifier stays close to the ridge (least-
squares) classifier of its own features, and that classifier becomes self-dual and nearest-class-mean.

Source: Han, Papyan & Donoho, "Neural Collapse Under MSE Loss: Proximity to and Dynamics on the Central
Path", ICLR 2022, abstract: "(I) We show a new decomposition of the MSE loss into (A) terms directly
interpretable through the lens of NC and which assume the last-layer classifier is exactly the
least-squares classifier; and (B) a term capturing the deviation from this least-squares classifier.
(II) We exhibit experiments on canonical datasets and networks demonstrating that term-(B) is negligible
during training." Their least-squares classifier carries the weight decay as a ridge term (their
notebook: lambda = weight_decay / 2); so does this one (ncsim.train.ridge_lambda; metrics.RIDGE_KEYS:
W_r = diag(pi) Mdot^T (Sigma_T + lambda I)^-1, b_r = pi - W_r mu_G, the bias unpenalised as in Webb &
Lowe, where their notebook penalises it too). Their claim is made for MSE training ("mse"), where
W_r is the classifier minimising the run's own loss for its features; the cross-entropy default run
("standard") is measured the same way, with the scale-free distance (a cross-entropy W has no
least-squares scale). The exact (lambda = 0) Webb-Lowe classifier is claim test_webb_lowe_cnn.

Every statistic is read from the per-epoch columns of the run (train set, eval mode).
"""

from operator import methodcaller

import numpy as np

from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("ablation.png",)


def max_over_later_half(column: str):
    """The largest value of `column` over the later half of the evaluated epochs (epochs 52-100 of the
    default schedule; the one epoch of a run cut at initialisation): "during training", without the
    first epochs, where the features and W_r are still moving fastest."""

    def statistic(run) -> float:
        values = run[column]
        return float(np.max(values[len(values) // 2 :]))

    return statistic


def distances(run) -> str:
    return (
        f"||W - W_r||/||W_r|| init {run['train.ridge_distance'][0]:.3g}, "
        f"end {run.final('train.ridge_distance'):.3g}; "
        f"direction distance init {run['train.ridge_direction_distance'][0]:.3g}, "
        f"end {run.final('train.ridge_direction_distance'):.3g}; W_r NC3 {run.final('train.ridge_nc3'):.3g}"
    )


# Under MSE the classifier stays within a small relative distance of the ridge classifier of its
# features through the later half of training; under both losses it ends aligned with it, and the ridge classifier
# ends self-dual and deciding as the nearest class mean.
CHECKS = Checks(
    "test_central_path",
    Check(
        "central_path_distance_max",
        max_over_later_half("train.ridge_distance"),
        configs=("mse",),
        controls=("init",),
        note=distances,
    ),
    Check(
        "central_path_direction_max",
        methodcaller("final", "train.ridge_direction_distance"),
        configs=("standard", "mse"),
        controls=("init",),
        note=distances,
    ),
    # At initialisation the ridge classifier of the random features is already nearly self-dual
    # (ridge_nc3 ~0.01: Sigma_T is close to isotropic, so Sigma_T^-1 barely turns Mdot); it jumps to ~1.5
    # in the first epochs and falls again with collapse. Its control is the run at its TPT.
    Check(
        "ridge_nc3_end_max",
        methodcaller("final", "train.ridge_nc3"),
        configs=("standard", "mse"),
        controls=("at-tpt",),
        note=distances,
    ),
    Check(
        "ridge_nc4_end_max",
        methodcaller("final", "train.ridge_nc4"),
        configs=("standard", "mse"),
        controls=("init",),
        note=distances,
    ),
)
