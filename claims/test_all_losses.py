"""Claim 18, all losses collapse: cross-entropy, label smoothing, focal loss and MSE each reach Neural
Collapse, with test errors equal within a stated margin; label smoothing collapses faster and further
than cross-entropy.

Sources: Zhou, You, Li, Liu, Liu, Qu & Zhu, "Are All Losses Created Equal: A Neural Collapse
Perspective", NeurIPS 2022, abstract: "a broad family of loss functions including commonly used label
smoothing (LS) and focal loss (FL) exhibits Neural Collapse. Hence, all relevant losses (i.e., CE, LS,
FL, MSE) produce equivalent features on training data", and "NC features obtained from all relevant
losses ... lead to largely identical performance on test data as well, provided that the network is
sufficiently large and trained until convergence". Settings of the authors' run scripts
(jinxinzhou/nc_loss): label smoothing alpha = 0.1, focal gamma = 3 (ncsim/presets/losses.toml). The paper
states no speed ordering; Guo et al., "Cross Entropy versus Label Smoothing: A Neural Collapse
Perspective" (arXiv 2402.03979, 2024), abstract: "models trained with label smoothing converge faster to
neural collapse solutions and attain a stronger level of neural collapse" -- checked here as NC1 at the
last evaluation in the first third of training (epoch 32 of 100) and at the end, each under cross-entropy's.
"Equivalent features" are read, for the simplex the class means reach, against cross-entropy's on the
same seed: the end ETF distance under the loss at most 1.25x cross-entropy's, the factor by which half
the weight decay moves it. "Largely identical" test performance is decided as an equivalence within
+-0.5 percentage points (5 of 1000 test signals; the suite's margin for test error, fixed before
calibration): two one-sided checks, the excess (the loss not worse) and the deficit (not better) over
cross-entropy, same seed.
"""

import pytest

from claims.shared import nc1_end, nc3_end
from ncsim.checks import Check
from ncsim.claim import Checks

pytestmark = pytest.mark.extended  # the extended tier: run with --extended (README, "The claims")

FIGURES = ("losses.png",)
NEW_LOSSES = ("label-smoothing", "focal")  # MSE's collapse is claim test_regime_ablation's
ALL_LOSSES = ("label-smoothing", "focal", "mse")


def error_excess(run, ce) -> float:
    """Final test error under this loss minus under cross-entropy (same seed): > 0 when worse."""
    return run.final("test_error") - ce.final("test_error")


def error_deficit(run, ce) -> float:
    """Final test error under cross-entropy minus under this loss (same seed): > 0 when better."""
    return -error_excess(run, ce)


def error_note(run, ce) -> str:
    return f"test error: {run.spec.name} {run.final('test_error'):.3g} vs cross-entropy {ce.final('test_error'):.3g}"


def first_stage_end(run) -> int:
    """The last evaluated epoch in the first third of training (epoch 32 of 100 under the default every:4
    evaluations): "faster" is read there, where the default cosine schedule's learning rate is still
    (1 + cos(0.32 pi)) / 2 = 0.77 of its peak (0.038 of 0.05)."""
    return int(run.epochs[run.epochs <= max(1, run.spec.epochs // 3)][-1])


def etf_distance_ratio(run, ce) -> float:
    """End ETF distance of the class means under this loss over cross-entropy's (same seed): the
    simplex these features reach, against the one cross-entropy's reach."""
    return run.final("train.nc2_etf_distance") / ce.final("train.nc2_etf_distance")


def etf_note(run, ce) -> str:
    return f"ETF distance: {run.final('train.nc2_etf_distance'):.3g} vs {ce.final('train.nc2_etf_distance'):.3g}"


def nc1_early_ratio(run, ce) -> float:
    """NC1 at the last evaluation in the first third of training under this loss over cross-entropy's
    (same seed)."""
    e = first_stage_end(run)
    return run.at("train.nc1", e) / ce.at("train.nc1", e)


def nc1_end_ratio(run, ce) -> float:
    """End NC1 under this loss over cross-entropy's (same seed)."""
    return run.final("train.nc1") / ce.final("train.nc1")


def nc1_note(run, ce) -> str:
    e = first_stage_end(run)
    return (
        f"NC1 at epoch {e}: {run.at('train.nc1', e):.3g} vs {ce.at('train.nc1', e):.3g}; "
        f"end: {run.final('train.nc1'):.3g} vs {ce.final('train.nc1'):.3g}"
    )


# Label smoothing and focal loss collapse (NC1, NC3; their class means as near the simplex ETF as
# cross-entropy's, same seed, within the smallest weakening the suite controls); every loss's test
# error equals cross-entropy's within 0.5 points; label smoothing's NC1 is below cross-entropy's early and at the end.
CHECKS = Checks(
    "test_all_losses_collapse",
    Check("nc1_end_max", nc1_end, configs=NEW_LOSSES, controls=("init", "no-bn")),
    Check(
        "loss_etf_distance_ratio_max",
        etf_distance_ratio,
        configs=NEW_LOSSES,
        against="standard",
        controls=("untrained", "wd-fifth-vs-default"),
        note=etf_note,
    ),
    Check("nc3_end_max", nc3_end, configs=NEW_LOSSES, controls=("init",)),
    Check(
        "loss_test_error_excess_max",
        error_excess,
        configs=ALL_LOSSES,
        against="standard",
        controls=("untrained",),
        note=error_note,
    ),
    Check(
        "loss_test_error_deficit_max",
        error_deficit,
        configs=ALL_LOSSES,
        against="standard",
        controls=("untrained-reference",),
        note=error_note,
    ),
    Check(
        "ls_nc1_early_ratio_max",
        nc1_early_ratio,
        configs=("label-smoothing",),
        against="standard",
        controls=("self",),
        note=nc1_note,
    ),
    Check(
        "ls_nc1_end_ratio_max",
        nc1_end_ratio,
        configs=("label-smoothing",),
        against="standard",
        controls=("self", "untrained"),
        note=nc1_note,
    ),
)
