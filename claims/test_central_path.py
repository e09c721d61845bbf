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

The statistics are read from the per-epoch columns of the run (train set, eval mode), but the deviation
in the metric of term (B), computed from the final network's train features
(ncsim.probes.central_path_distance): at the end of training, not during it, since it needs Sigma_T,
which no column records.
"""

from operator import methodcaller

from ncsim import probes
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("ablation.png",)


def distances(run) -> str:
    return (
        f"||W - W_r||/||W_r|| init {run['train.ridge_distance'][0]:.3g}, "
        f"end {run.final('train.ridge_distance'):.3g}; "
        f"direction distance init {run['train.ridge_direction_distance'][0]:.3g}, "
        f"end {run.final('train.ridge_direction_distance'):.3g}; W_r NC3 {run.final('train.ridge_nc3'):.3g}"
    )


# Under MSE the classifier ends within a small distance of the ridge classifier of its features in the
# metric of the loss (term (B)); under both losses it ends aligned with it, and the
# ridge classifier ends self-dual and deciding as the nearest class mean.
CHECKS = Checks(
    "test_central_path",
    # The deviation of W from the least-squares classifier of its features in the metric of Han et al.'s
    # term (B), which weights each direction by Sigma_T + lambda I, where the unweighted ||W - W_r||
    # (in the note) counts the directions the features do not span alike. Its physical controls: a
    # classifier that never trained (init), and one that minimised cross-entropy, which does not pull W
    # to least squares.
    Check(
        "central_path_deviation_max",
        probes.central_path_distance,
        configs=("mse",),
        controls=("init", "cross-entropy"),
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
