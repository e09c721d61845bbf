"""Claim 20, collapse on new classes: a network trained on the classes 0-4 only maps the held-out
classes 5-9 to features that are more collapsed than at initialisation (a smaller class-distance
normalised variance), and a nearest-class-centre classifier on those features, given five examples of
each new class, errs less than on the untrained network's.

Source: Galanti, Gyorgy & Hutter, "On the Role of Neural Collapse in Transfer Learning", ICLR 2022,
abstract: "neural collapse generalizes to new samples from the training classes, and -- more importantly
-- to new classes as well, allowing foundation models to provide feature maps that work well in
transfer learning and, specifically, in the few-shot setting". Their measure is the CDNV, the mean over
pairs of classes of (Var_f(Q_i) + Var_f(Q_j)) / (2 ||mu_f(Q_i) - mu_f(Q_j)||^2) (ncsim.metrics "cdnv"),
their few-shot classifier the nearest class centre h(x) = argmin_c ||f(x) - mu_f(S_c)||
(ncsim.metrics.few_shot_ncc_error). Here the source task is MNIST-1D's classes 0-4 (the 5-way
"source-5" network of ncsim/presets/transfer.toml); the target task its classes 5-9, measured on their
1000-signal test split (CDNV) and as 5-way 5-shot episodes (support: their train signals, queries: their
test signals; 200 episodes seeded by the run's seed). The untrained network is the same run at epoch 0
(its seeded initialisation).

Fewer than at initialisation is a direction, not collapse: the claim is that the new classes' features
collapse. The level is the collapse the same classes reach when trained on (the "standard" network,
classes 5-9 seen): the new-class CDNV must come within an order of magnitude of the seen-class CDNV
(a fraction 1/10 of the collapse transferring, fixed beside the paper's wording "generalizes ... to new
classes as well", not fitted).
"""

from functools import lru_cache

import pytest

from ncsim import suite
from ncsim.checks import Check
from ncsim.claim import Checks
from ncsim.probes import new_class_statistics

pytestmark = pytest.mark.extended  # the extended tier: run with --extended (README, "The claims")

FIGURES = ("transfer.png",)
# The probe of the classes "source-5" (train_classes = 5) holds out: its configuration's, which the
# transfer figure draws too.
NEW_CLASSES, SHOTS, EPISODES = suite.new_class_probe("source-5")


@lru_cache(maxsize=16)
def transfer_statistics(run) -> dict[str, float]:
    """The run's final network and its initialisation on the new classes: CDNV of their test features
    and the 5-shot nearest-class-centre error (ncsim.probes.new_class_statistics)."""
    trained = new_class_statistics(run, NEW_CLASSES, SHOTS, EPISODES)
    untrained = new_class_statistics(run.truncated(0), NEW_CLASSES, SHOTS, EPISODES)
    return {**{f"trained_{k}": v for k, v in trained.items()}, **{f"untrained_{k}": v for k, v in untrained.items()}}


def cdnv_ratio(run) -> float:
    """New-class CDNV of the trained network over the untrained one's (same seed)."""
    s = transfer_statistics(run)
    return s["trained_cdnv"] / s["untrained_cdnv"]


def few_shot_error_ratio(run) -> float:
    """5-shot nearest-class-centre error on the new classes, trained over untrained network."""
    s = transfer_statistics(run)
    return s["trained_few_shot_error"] / s["untrained_few_shot_error"]


def cdnv_over_seen(run, seen) -> float:
    """New-class CDNV of the source-trained network over that of the network trained on all ten classes
    (the same classes seen in training; same seed): 1 when the collapse transfers whole, > 1 when only in
    part."""
    return transfer_statistics(run)["trained_cdnv"] / transfer_statistics(seen)["trained_cdnv"]


def seen_note(run, seen) -> str:
    return (
        f"CDNV of classes {NEW_CLASSES[0]}-{NEW_CLASSES[-1]}: {transfer_statistics(run)['trained_cdnv']:.3g} "
        f"unseen ({run.spec.name}) vs {transfer_statistics(seen)['trained_cdnv']:.3g} seen ({seen.spec.name})"
    )


def transfer_note(run) -> str:
    s = transfer_statistics(run)
    return (
        f"new classes: CDNV {s['trained_cdnv']:.3g} (untrained {s['untrained_cdnv']:.3g}), "
        f"{SHOTS}-shot NCC error {s['trained_few_shot_error']:.3g} (untrained {s['untrained_few_shot_error']:.3g})"
    )


# On classes it never saw, the source-trained network's features are more collapsed (CDNV) and better
# for few-shot nearest-class-centre classification than at initialisation, and collapsed: within an
# order of magnitude of the same classes' collapse when trained on.
CHECKS = Checks(
    "test_collapse_on_new_classes",
    Check("new_class_cdnv_ratio_max", cdnv_ratio, configs=("source-5",), controls=("init",), note=transfer_note),
    Check(
        "new_class_few_shot_error_ratio_max",
        few_shot_error_ratio,
        configs=("source-5",),
        controls=("init",),
        note=transfer_note,
    ),
    Check(
        "new_class_cdnv_over_seen_max",
        cdnv_over_seen,
        configs=("source-5",),
        against="standard",
        controls=("untrained",),
        note=seen_note,
    ),
)
