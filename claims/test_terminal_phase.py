"""Claim 1, the terminal phase of training (TPT): training reaches zero train error, and test accuracy
does not degrade while training continues past it.

Source: Papyan, Han & Donoho, PNAS 2020, Sec. 2-3 and Fig. 2 (train error 0 reached early; test
accuracy keeps improving or holds during TPT). Papyan et al. start the TPT "at the epoch where training
error first vanishes" (the onset, checked on every seed); the suite's stable TPT asks more, that the
error also stays 0 in every later evaluation and training pass, and is decided on the mean over seeds:
one late bounce on one seed moves it a long way (ncsim.trajectory.tpt_epoch).
"""

from claims.shared import tpt_fraction, tpt_onset_fraction
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("training.png",)


def error_rise_during_tpt(run) -> float:
    """Final test error minus test error at the (stable) TPT epoch (> 0: worse); NaN without TPT."""
    return run.final("test_error") - run.at_tpt("test_error")


# Train error reaches exactly 0 on every seed early enough to leave a terminal phase, and on
# average over seeds it stays there early enough too (the stable TPT: eval mode on the full train set at every
# evaluation, and at most one misclassified signal in any training pass after it), and the test error at the end is
# not worse than at its start beyond the stated margin.
CHECKS = Checks(
    "test_terminal_phase",
    Check("tpt_onset_fraction_max", tpt_onset_fraction, controls=("init", "no-bn")),
    Check("tpt_fraction_max", tpt_fraction, controls=("init", "no-bn")),
    Check("tpt_test_error_rise_max", error_rise_during_tpt, controls=("reversed",)),
)
