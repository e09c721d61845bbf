"""Every claim check fails on a negative control, with finite values, by its own decision rule.

A check that cannot fail proves nothing. Each claim file's CHECKS table names, for every statistic,
the controls on which its tolerance must NOT hold (ncsim.controls: what each one is, physical or
synthetic); this file builds those controls on CONTROL_SEEDS, evaluates the very same statistic
there, asserts every value is finite (NaN fails any threshold, so it would prove nothing), and decides
the values over the seeds by the tolerance's rule, which must not hold. Every check names at least one
physical control unless it is a comparison, whose controls are its null (`self`) and the untrained
network. The runs come through the store, in the xdist group of the run they need, so under
`pytest -n auto` they are the claims' own runs, trained once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import claims
from ncsim import checks, claim, controls, suite
from ncsim.pytest_plugin.session import claims_session

CLAIMS_DIR = Path(claims.__file__).parent
CONTROL_SEEDS = suite.DEFAULT_SEEDS[:3]


CHECKS = claim.declared_run_checks(claims)
CASES = [
    pytest.param(check, control, id=f"{claim}-{check.tolerance}-{control}")
    for claim, check in CHECKS
    for control in check.controls
]


@pytest.fixture(scope="module")
def obtain(obtain_run, prefetched, pytestconfig):
    """A control's run as the session's claims read it (its data seed too)."""
    session = claims_session(pytestconfig)
    return lambda config, seed: obtain_run(*session.run_id(config, seed))


@pytest.mark.slow
@pytest.mark.xdist_group("negative-controls")
@pytest.mark.parametrize("check,control", CASES)
def test_check_fails_on_control(check, control, obtain):
    # a check is decided over the runs that meet its statement's premise (checks.Premise), so is a control;
    # where too few do (the check is "premise not met" there), its rule must still fail on all of them
    seeds = controls.premised(check, control, obtain, CONTROL_SEEDS)
    seeds = seeds if len(seeds) >= checks.PREMISE_RUNS else CONTROL_SEEDS
    values = [controls.measure(check, control, obtain, seed) for seed in seeds]
    assert np.isfinite(values).all(), f"{check.tolerance} on the {control} control is not finite: {values}"
    record = checks.decide(checks.tolerance(CLAIMS_DIR, check.tolerance), values)
    assert not record.holds, f"{check.tolerance} holds on the {control} control: {checks.failure_message(record)}"


@pytest.mark.parametrize("check", [c for _, c in CHECKS], ids=[f"{m}-{c.tolerance}" for m, c in CHECKS])
def test_every_check_has_a_known_control(check):
    assert check.controls, f"{check.tolerance} names no negative control"
    unknown = [c for c in check.controls if c not in controls.CONTROLS]
    assert not unknown, f"{check.tolerance}: unknown controls {unknown}; known: {sorted(controls.CONTROLS)}"
    misfit = [c for c in check.controls if not controls.applicable(check, c)]
    assert not misfit, f"{check.tolerance}: {misfit} are {'run' if check.against else 'pair'} controls"


def test_every_tolerance_is_checked():
    """Every CNN tolerance in the table is some claim's check (UFM tolerances: tests/test_ufm.py)."""
    used = {c.tolerance for _, c in CHECKS}
    cnn = {n for n in checks.load_tolerances(CLAIMS_DIR) if not n.startswith("ufm_")}
    assert cnn <= used, f"tolerances no claim checks: {sorted(cnn - used)}"
    assert used <= set(checks.load_tolerances(CLAIMS_DIR))
