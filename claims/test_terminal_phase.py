"""Claim 1, the terminal phase of training (TPT): training reaches zero train error, and test accuracy
does not degrade while training continues past it.

Source: Papyan, Han & Donoho, PNAS 2020, Sec. 2-3 and Fig. 2 (train error 0 reached early; test
accuracy keeps improving or holds during TPT).
"""

import pytest


def tpt_fraction(run) -> float:
    """The TPT epoch as a fraction of the training epochs; inf when zero train error is never reached."""
    return float("inf") if run.tpt_epoch is None else run.tpt_epoch / run.spec.epochs


def error_rise_during_tpt(run) -> float:
    """Final test error minus test error at the TPT epoch (> 0: worse); NaN without TPT."""
    return run.final("test_error") - run.at_tpt("test_error")


@pytest.mark.runs("standard")
def test_reaches_zero_train_error(run, claim_check):
    """Train error (eval mode, full train set) reaches exactly 0, early enough to leave a terminal phase."""
    claim_check("tpt_fraction_max", tpt_fraction(run), seed=run.spec.seed, run=run.label)


@pytest.mark.runs("standard")
def test_test_accuracy_holds_during_tpt(run, claim_check):
    """Test error at the end is not worse than at the start of TPT beyond the stated margin."""
    claim_check("tpt_test_error_rise_max", error_rise_during_tpt(run), seed=run.spec.seed, run=run.label)
