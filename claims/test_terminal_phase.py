"""Claim 1, the terminal phase of training (TPT): training reaches zero train error, and test accuracy
does not degrade while training continues past it.

Source: Papyan, Han & Donoho, PNAS 2020, Sec. 2-3 and Fig. 2 (train error 0 reached early; test
accuracy keeps improving or holds during TPT).
"""

from ncsim.checks import Check

FIGURES = ("training.png",)


def tpt_fraction(run) -> float:
    """The (stable) TPT epoch as a fraction of the training epochs; a run that never reaches it counts
    as reaching it one epoch after the last, (epochs + 1) / epochs."""
    return (run.spec.epochs + 1 if run.tpt_epoch is None else run.tpt_epoch) / run.spec.epochs


def error_rise_during_tpt(run) -> float:
    """Final test error minus test error at the (stable) TPT epoch (> 0: worse); NaN without TPT."""
    return run.final("test_error") - run.at_tpt("test_error")


CHECKS = (
    Check("tpt_fraction_max", tpt_fraction, controls=("init", "no-bn")),
    Check("tpt_test_error_rise_max", error_rise_during_tpt, controls=("reversed",)),
)


def test_terminal_phase(check, runs, claim_check):
    """Train error reaches exactly 0 and stays there (the stable TPT: eval mode on the full train set
    at every evaluation, and no misclassified signal in any training pass after it) early enough to
    leave a terminal phase, and the test error at the end is not worse than at its start beyond the
    stated margin."""
    claim_check.of(check, runs)
