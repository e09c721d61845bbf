"""Claim 21, collapse under label noise: with 20% of the train labels redrawn at random, the train
features collapse less than without noise ("dilation", as the network memorises the noisy labels), the
test error rises, and label smoothing lowers that test error.

Source: Nguyen, Levie, Lienen, Kutyniok & Huellermeier, "Memorization-Dilation: Modeling Neural Collapse
Under Label Noise", ICLR 2023, abstract: "Empirical evidence suggests that the memorization of noisy data
points leads to a degradation (dilation) of the neural collapse. Using a model of the
memorization-dilation (M-D) phenomenon, we show one mechanism by which different losses lead to different
performances of the trained network on noisy data. Our proofs reveal why label smoothing, a modification
of cross-entropy empirically observed to produce a regularization effect, leads to improved
generalization in classification tasks." Setting of the authors' code (julilien/MemorizationDilation):
symmetric noise, each label redrawn uniformly over all classes with probability 0.2 (--label_noise 0.2;
ncsim.data.noisy_labels), label smoothing alpha 0.1 (ls_alpha); NC1 computed with the given (noisy)
labels, as their validate_NC.py does. That the network memorises the noisy labels (zero train error
within the terminal-phase bound of claim test_terminal_phase) and that its features still collapse
(end NC1 under the threshold of claim test_nc1_variability, measured with the noisy labels) is checked
too: Zhu et al., NeurIPS 2021, trained on fully random labels to show that collapse survives
memorisation (tding1/Neural-Collapse README, "Validity of unconstrained feature models").
"""

import pytest

from claims.shared import nc1_end, tpt_onset_fraction
from ncsim.checks import Check
from ncsim.claim import Checks

pytestmark = pytest.mark.extended  # the extended tier: run with --extended (README, "The claims")

FIGURES = ("label_noise.png",)


def nc1_ratio(run, clean) -> float:
    """End NC1 (noisy labels) over the clean run's (same seed): > 1 when the collapse is dilated."""
    return run.final("train.nc1") / clean.final("train.nc1")


def error_rise(run, reference) -> float:
    """Final test error of `run` minus the reference run's (same seed): > 0 when it generalises worse."""
    return run.final("test_error") - reference.final("test_error")


def error_gain(run, reference) -> float:
    """Final test error of the reference minus that of `run` (same seed): > 0 when `run` generalises better."""
    return -error_rise(run, reference)


def noise_note(run, reference) -> str:
    return "; ".join(
        f"{r.spec.name}: end NC1 {r.final('train.nc1'):.3g}, train error {r.final('train_error'):.3g}, "
        f"test error {r.final('test_error'):.3g}"
        for r in (reference, run)
    )


# Under 20% label noise the network memorises the noisy labels and still collapses,
# less than without noise (dilated); the test error rises, and label smoothing lowers it.
CHECKS = Checks(
    "test_collapse_under_label_noise",
    Check("tpt_onset_fraction_max", tpt_onset_fraction, configs=("label-noise",), controls=("init", "no-bn")),
    Check("nc1_end_max", nc1_end, configs=("label-noise",), controls=("init", "no-bn")),
    Check(
        "noise_nc1_ratio_min",
        nc1_ratio,
        configs=("label-noise",),
        against="standard",
        controls=("self",),
        note=noise_note,
    ),
    Check(
        "noise_test_error_rise_min",
        error_rise,
        configs=("label-noise",),
        against="standard",
        controls=("self",),
        note=noise_note,
    ),
    Check(
        "noise_ls_test_error_gain_min",
        error_gain,
        configs=("label-noise-ls",),
        against="label-noise",
        controls=("self",),
        note=noise_note,
    ),
)
