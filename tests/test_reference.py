"""Reference agreement (ncsim.reference): an equivalence test of this session's values against the
calibration seeds', within max(a factor 1.5, two reference seed SDs) on a log scale."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncsim import reference
from ncsim.checks import Tolerance

LOG = Tolerance("nc1_end_max", 0.01, "<=", "", "", "", "mean", "log")
LINEAR = Tolerance("tpt_fraction_max", 0.8, "<=", "", "", "", "mean", "linear")
REF = [0.00255, 0.00242, 0.00233, 0.0025, 0.00245]  # end NC1 of the default run on five seeds


def test_the_same_distribution_agrees():
    again = [0.00248, 0.00239, 0.00251, 0.00236, 0.00244]
    out = reference.agreement(LOG, REF, again)
    assert out["verdict"] == "agrees"
    assert out["margin"] == pytest.approx(math.log(1.5))
    assert out["reference_mean"] == pytest.approx(float(np.exp(np.log(REF).mean())))


def test_a_2x_drift_of_end_nc1_differs():
    out = reference.agreement(LOG, REF, [2 * v for v in REF[::-1]])
    assert out["verdict"] == "differs"
    assert out["interval"][0] > out["margin"]
    assert "differs" in reference.describe(out)


def test_a_spread_too_wide_to_tell_is_inconclusive():
    out = reference.agreement(LOG, REF, [0.001, 0.01, 0.002, 0.02, 0.004])
    assert out["verdict"] == "inconclusive"


def test_linear_margin_is_two_reference_sds():
    ref = [0.6, 0.64, 0.6, 0.64, 0.6]
    out = reference.agreement(LINEAR, ref, [0.61, 0.63, 0.6, 0.62, 0.62])
    assert out["margin"] == pytest.approx(2 * np.std(ref, ddof=1))
    assert out["verdict"] == "agrees"
    assert reference.agreement(LINEAR, ref, [0.8, 0.82, 0.81, 0.79, 0.8])["verdict"] == "differs"


@pytest.mark.parametrize("values", [[0.002], [0.002, None, 0.003], [0.002, -1.0]])
def test_too_few_or_unusable_values_are_inconclusive_with_the_reason(values):
    out = reference.agreement(LOG, REF, values)
    assert out["verdict"] == "inconclusive" and out["why"]
    assert out["why"] in reference.describe(out)
