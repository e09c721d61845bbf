"""Claim 19, minority collapse in a real network: with the classes 5-9 (K_B = 5 of K = 10) subsampled by
a ratio R, the classifier rows of the minority classes draw together -- their mean pairwise cosine rises
from the simplex value -1/(C-1) towards 1 as R grows.

Source: Fang, He, Long & Su, "Exploring deep neural networks via layer-peeled model: Minority collapse in
imbalanced training", PNAS 2021, Finding 2 ("the last-layer classifiers corresponding to the minority
classes ... collapse to a single vector when R is sufficiently large"), Theorem 5 (w_k - w_k' -> 0 for
minority k, k' as R -> infinity) and the network experiments of the authors' code (HornHehhf/LPM): K_A
majority and K - K_A minority classes, n_B = n_A / R, SGD with weight decay 5e-4; the printed statistic is
the "avg between-class weights cosine for small classes", the mean cosine over pairs of distinct minority
rows of the raw classifier weight (bias ignored, no centring). Their network curve (weight decay 5e-4)
rises from -0.11 at R = 1 through 0.02 at R = 10 and 0.29 at R = 100 to 1 at R = 1000. Here R = 10 and
100 (40 and 4 train signals per minority class; ncsim/presets/imbalance.toml), R = 1 being "standard".

Checked: the cosine rises from R = 1 to 10 and from 10 to 100 and is positive at R = 100 (the rows have
left the simplex; Fang et al.'s curve crosses 0 between R = 10 and 100). The minority classes' test
error is reported beside it, not checked: it rises with R for any learner that keeps 40, then 4, train
signals of a class, so its rise is no evidence that minority collapse limits them (Fang et al.'s
"fundamentally limits the performance" would need a reference that does not collapse). The cosine
is measured on the raw rows, as the authors do; the note gives it on the rows centred by their mean
too, which a balanced run leaves at -1/(C-1) as well, so that neither form creates the effect by
itself (the balanced run is the control: "balanced", "self").
"""

import pytest

from ncsim.checks import Check
from ncsim.claim import Checks
from ncsim.data import NUM_CLASSES, minority_classes
from ncsim.probes import class_test_error, classifier_cosine

pytestmark = pytest.mark.extended  # the extended tier: run with --extended (README, "The claims")

FIGURES = ("imbalance.png",)
MINORITY = minority_classes(NUM_CLASSES)  # the classes the spec's imbalance subsamples


def minority_cosine(run, centred: bool = False) -> float:
    """Mean pairwise cosine of the minority classes' classifier rows of the final network (raw rows, as
    Fang et al.'s code; `centred`: minus the mean row over all C)."""
    return classifier_cosine(run, MINORITY, centred)


def minority_test_error(run) -> float:
    """Error of the final network on the test signals of the minority classes (argmax over all C)."""
    return class_test_error(run, MINORITY)


def cosine_rise(run, reference) -> float:
    return minority_cosine(run) - minority_cosine(reference)


def cosine_note(run, reference=None) -> str:
    runs = (run,) if reference is None else (reference, run)
    return "; ".join(
        f"{r.spec.name} (R = {r.spec.imbalance:g}): cosine {minority_cosine(r):.3g} "
        f"(centred {minority_cosine(r, centred=True):.3g}), minority test error {minority_test_error(r):.3g}"
        for r in runs
    )


# The minority classifier rows draw together as R grows (cosine rising, positive at R = 100); the
# notes report the minority test error.
CHECKS = Checks(
    "test_minority_collapse",
    Check(
        "minority_cosine_rise_min",
        cosine_rise,
        configs=("imbalance-10",),
        against="standard",
        controls=("self",),
        note=cosine_note,
    ),
    Check(
        "minority_cosine_rise_min",
        cosine_rise,
        configs=("imbalance-100",),
        against="imbalance-10",
        controls=("self",),
        note=cosine_note,
    ),
    Check(
        "minority_cosine_end_min",
        minority_cosine,
        configs=("imbalance-100",),
        controls=("balanced", "no-bn"),
        note=cosine_note,
    ),
)
