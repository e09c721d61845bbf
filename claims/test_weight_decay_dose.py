"""Claim 22, the weight-decay dose-response: with batch norm, collapse weakens as the weight decay falls
below the default's; end NC1 rises at each of the default's weight decay (5e-3) halved, divided by 5 and
by 10 (ncsim/presets/weight-decay.toml), over the default run's.

Sources: Pan & Cao, "Towards Understanding Neural Collapse: The Effects of Batch Normalization and
Weight Decay", arXiv 2309.04644, 2023, abstract: models "demonstrate a stronger presence of NC with BN,
appropriate WD values" and lower loss, in their experiments on MNIST and CIFAR with last-layer batch norm
over several weight-decay values (their lower bound on NC strengthens with the weight decay); Rangamani &
Banburski-Fahey, ICASSP 2022 (weight decay drives the features to the collapsed configuration). Decided
as the direction, the ratio of the end NC1 of each weaker-decay run over the default's above 1 at the
one-sided 5% level; no-wd (0) is claim test_regime_ablation's.
"""

import pytest

from ncsim.checks import Check
from ncsim.claim import Checks

pytestmark = pytest.mark.extended  # the extended tier: run with --extended (README, "The claims")

FIGURES = ("weight_decay.png",)


def nc1_ratio(run, default) -> float:
    """End train NC1 = Tr(Sigma_W Sigma_B^+)/C of the weaker-decay run over the default's (same seed): > 1
    when its collapse is weaker."""
    return run.final("train.nc1") / default.final("train.nc1")


def dose_note(run, default) -> str:
    return "; ".join(
        f"{r.spec.name} (wd {r.spec.weight_decay:g}): end NC1 {r.final('train.nc1'):.3g}" for r in (default, run)
    )


CHECKS = Checks(
    "test_collapse_weakens_with_less_weight_decay",
    Check(
        "wd_dose_nc1_ratio_min",
        nc1_ratio,
        configs=("wd-half", "wd-fifth", "wd-tenth"),
        against="standard",
        controls=("self",),
        note=dose_note,
    ),
)
