"""The discrimination table's arithmetic (ncsim.discrimination): distances from a threshold on the
rule's scale, seed SDs, the nearest failing physical control and its margin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ncsim import discrimination
from ncsim.checks import Check, Tolerance
from ncsim.discrimination import Decided, Row


def tol(op="<=", value=0.05, rule="mean", scale="log") -> Tolerance:
    return Tolerance("t", value, op, "", "", "", rule, scale)


@pytest.mark.parametrize(
    "t,x,expected",
    [
        (tol("<=", 0.05), 0.005, math.log(10)),
        (tol(">=", 100.0), 10.0, -math.log(10)),
        (tol("<=", 0.5, scale="linear"), 0.2, 0.3),
        (tol(">", 1.0, scale="linear"), 0.5, -0.5),
        (tol("within", 3.0, rule="equivalence"), 1.5, math.log(3) - math.log(1.5)),
        (tol("within", 3.0, rule="equivalence"), 1 / 6, math.log(3) - math.log(6)),
    ],
)
def test_signed_distance(t, x, expected):
    assert discrimination.signed_distance(t, x) == pytest.approx(expected)


def test_an_exact_statement_of_zero_is_measured_linearly():
    nc4 = tol("<=", 0.0, rule="every")
    assert discrimination.signed_distance(nc4, 0.0) == 0.0
    assert discrimination.signed_distance(nc4, 0.25) == -0.25
    assert discrimination.seed_sd(nc4, [0.0, 0.0, 0.5]) == pytest.approx(np.std([0, 0, 0.5], ddof=1))


@pytest.mark.parametrize("x", [None, math.nan, 0.0, -1.0])
def test_signed_distance_of_what_the_log_scale_cannot_take_is_nan(x):
    assert math.isnan(discrimination.signed_distance(tol(), x))


def test_seed_sd_on_the_rule_scale():
    assert discrimination.seed_sd(tol(), [1.0, math.e, math.e**2]) == pytest.approx(1.0)
    assert discrimination.seed_sd(tol(scale="linear"), [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert math.isnan(discrimination.seed_sd(tol(), [1.0, None]))


def _row(controls, sd=0.5) -> Row:
    return Row(
        claim="test_x",
        tolerance="t",
        config="standard",
        op="<=",
        threshold=0.05,
        rule="mean",
        scale="log",
        seeds=[0, 1, 2],
        reference=Decided("standard", [0.005] * 3, 0.005, "reproduces", True),
        sd=sd,
        controls=controls,
        physical=[c.name for c in controls if c.name != "reversed"],
    )


def test_nearest_failing_physical_control_and_margins():
    row = _row(
        [
            Decided("init", [5.0] * 3, 5.0, "does not reproduce", False),
            Decided("wd-fifth", [0.1] * 3, 0.1, "does not reproduce", False),
            Decided("wd-half", [0.01] * 3, 0.01, "reproduces", True),
            Decided("at-tpt", error="no network"),
            Decided("reversed", [0.06] * 3, 0.06, "does not reproduce", False),  # synthetic: not evidence
        ]
    )
    assert row.nearest_failing().name == "wd-fifth"
    ref, ctl = row.margins()
    assert ref == pytest.approx(math.log(10) / 0.5)
    assert ctl == pytest.approx(math.log(2) / 0.5)
    out = row.to_json()
    assert out["nearest_failing"] == "wd-fifth" and out["discriminates"]
    assert "wd-half" in discrimination.markdown([out])


def test_a_check_no_physical_control_fails_is_flagged():
    row = _row([Decided("wd-fifth", [0.01] * 3, 0.01, "reproduces", True)], sd=math.nan)
    out = row.to_json()
    assert not out["discriminates"] and out["nearest_failing"] is None and out["sd"] is None
    assert "**none**" in discrimination.markdown([out])


def fake_run(at_init: float):
    """A stand-in for a Trajectory whose statistic is a number: `Run(value)`, which has no TPT and is
    `at_init` at initialisation (truncated(0))."""

    class Run:
        status, tpt_epoch, label = "ok", None, "run"

        def __init__(self, value):
            self.value = value

        def truncated(self, epoch):
            return Run(at_init)

    return Run


def test_row_measures_the_check_on_its_configuration_and_the_physical_controls():
    """With a fake obtain: a check that reads a number off the run fails on the controls whose number is
    above the threshold."""

    Run = fake_run(at_init=10.0)
    level = {"standard": 0.001, "no-bn": 1.0, "no-wd": 0.2, "wd-tenth": 0.1, "wd-fifth": 0.06, "wd-half": 0.01}
    check = Check("t", lambda run: run.value * 1.0, controls=("init",))
    row = discrimination.row("test_x", check, "standard", tol(), lambda c, s: Run(level[c] * (1 + s / 10)), [0, 1, 2])
    decided = {c.name: c for c in row.controls}
    assert decided["at-tpt"].error  # a run without a TPT epoch: not measurable, said why
    assert row.nearest_failing().name == "wd-fifth"
    assert decided["wd-half"].holds and row.reference.holds


@pytest.mark.parametrize(
    "x,below,expected",
    [(0.016, True, 0.01), (0.02, True, 0.01), (0.07, True, 0.05), (3500.0, False, 5000.0), (5000.0, False, 1e4)],
)
def test_one_two_five(x, below, expected):
    assert discrimination.one_two_five(x, below) == pytest.approx(expected)


def _dose_row(op, reference, **controls):
    return {
        "rule": "mean",
        "scale": "log",
        "op": op,
        "reference": {"values": reference},
        "controls": [{"name": n, "values": v, "error": None} for n, v in controls.items()],
    }


def test_dose_threshold_separates_the_default_from_the_first_regime_it_can():
    ref = [0.0024, 0.0025, 0.0023, 0.0026, 0.0024]
    wd_fifth = [0.018, 0.019, 0.0185, 0.0175, 0.018]
    assert discrimination.dose_threshold(_dose_row("<=", ref, **{"wd-fifth": wd_fifth})) == (0.01, "wd-fifth")
    # a regime too close to the default for a 1-2-5 value between them (with the default's bound 1.25x
    # inside it): the next one sets it
    near = [0.0042, 0.0044, 0.0043, 0.0045, 0.0041]  # 0.002 would leave the default's 0.0025 outside
    far = [0.09, 0.1, 0.095, 0.11, 0.1]
    assert discrimination.dose_threshold(_dose_row("<=", ref, **{"wd-fifth": near, "wd-tenth": far})) == (
        0.05,
        "wd-tenth",
    )
    # a statistic that must be large: the smallest 1-2-5 value above the regime's upper bound
    big, small = [2.6e4, 2.4e4, 2.8e4, 2.2e4, 2.5e4], [3.5e3, 3.4e3, 3.6e3, 3.3e3, 3.7e3]
    assert discrimination.dose_threshold(_dose_row(">=", big, **{"wd-fifth": small})) == (5000.0, "wd-fifth")
    assert discrimination.dose_threshold({**_dose_row("<=", ref), "rule": "every"}) is None


def test_a_control_that_is_the_null_by_construction_is_no_evidence():
    """init / end at initialisation is exactly 1 on every seed: it fails a ">= 100" check by construction."""
    tol_min = Tolerance("t", 100.0, ">=", "", "", "", "mean", "log")

    Run = fake_run(at_init=1.0)
    check = Check("t", lambda run: run.value, controls=("init",))
    level = {"standard": 2e4, "no-bn": 50.0, "no-wd": 500.0, "wd-tenth": 2e3, "wd-fifth": 3e3, "wd-half": 1e4}
    row = discrimination.row("test_x", check, "standard", tol_min, lambda c, s: Run(level[c] + s), [0, 1, 2])
    init = next(c for c in row.controls if c.name == "init")
    assert init.null and not init.fails
    assert row.nearest_failing().name == "no-bn"
    assert "null by construction" in discrimination.markdown([row.to_json()])


def test_every_dose_response_threshold_is_what_the_committed_table_sets():
    """A tolerance whose basis is the dose-response holds the value dose_threshold gives its standard row
    in claims/discrimination.json, and that row's wd-fifth fails it while the default holds it."""
    import claims
    from ncsim import checks

    claims_dir = Path(claims.__file__).parent
    table = discrimination.load(claims_dir)
    dosed = {
        n: t for n, t in checks.load_tolerances(claims_dir).items() if "the dose-response (header)" in t.calibration
    }
    assert dosed, "no tolerance states the dose-response as its basis"
    for name, t in dosed.items():
        row = table[(name, "standard")]
        assert row["dose_threshold"] == {"value": t.value, "fails": "wd-fifth"}, name
        wd_fifth = next(c for c in row["controls"] if c["name"] == "wd-fifth")
        assert wd_fifth["holds"] is False and row["reference"]["holds"] is True, name
