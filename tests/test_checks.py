"""Tests for ncsim.checks: the tolerance and expected-failure tables, Check, and the decision."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncsim import checks, train
from ncsim.spec import RunSpec
from ncsim.trajectory import Trajectory
from tests.test_negative_controls import CHECKS, CLAIMS_DIR

TOML = '''
[nc1_end_max]
value = 0.05
op = "<="
statistic = "NC1 at the end"
source = "PNAS 2020"
calibration = "none"
'''


def write(tmp_path, tolerances=TOML, expected=None):
    (tmp_path / checks.TOLERANCES).write_text(tolerances)
    if expected is not None:
        (tmp_path / checks.EXPECTED_FAILURES).write_text(expected)
    checks.load_tolerances.cache_clear()
    checks.load_expected_failures.cache_clear()
    return tmp_path


def test_tolerance_holds_and_nan_never_does(tmp_path):
    tol = checks.tolerance(write(tmp_path), "nc1_end_max")
    assert tol.holds(0.05) and not tol.holds(0.06) and not tol.holds(float("nan"))


@pytest.mark.parametrize("text,problem", [
    ('[a]\nvalue = 1\nop = "=="\nstatistic = "s"\nsource = "s"\ncalibration = "c"\n', "op '=='"),
    ('[a]\nvalue = 1\nop = "<="\n', "missing"),
    ('a = 3\n', "must be a table"),
    ('[a\n', "cannot read"),
], ids=["bad-op", "missing-field", "not-a-table", "bad-toml"])
def test_a_bad_tolerance_table_names_the_entry(tmp_path, text, problem):
    with pytest.raises(ValueError, match=problem):
        checks.load_tolerances(write(tmp_path, text))


def test_unknown_tolerance_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="nc1_end_max"):
        checks.tolerance(write(tmp_path), "nc9_end_max")


def test_expected_failures_by_tolerance_configuration_and_seeds(tmp_path):
    root = write(tmp_path, expected='[nc1_end_max.lbfgs]\nreason = "r"\n[nc1_end_max.adam]\nseeds = [3]\nreason = "q"\n')
    table = checks.load_expected_failures(root)
    assert any(x.covers("nc1_end_max", "lbfgs", 7) for x in table)
    assert any(x.covers("nc1_end_max", "adam", 3) for x in table)
    assert not any(x.covers("nc1_end_max", "adam", 4) for x in table)
    assert not any(x.covers("nc1_end_max", "standard", 0) for x in table)


@pytest.mark.parametrize("text,problem", [
    ('[nc7_max.lbfgs]\nreason = "r"\n', "names no tolerance"),
    ('[nc1_end_max.lbfgs]\nseeds = [1]\n', "needs `reason`"),
    ('[nc1_end_max.lbfgs]\nreason = "r"\nseed = 1\n', "needs `reason`"),
], ids=["stale-entry", "no-reason", "unknown-field"])
def test_a_bad_expected_failure_is_named(tmp_path, text, problem):
    with pytest.raises(ValueError, match=problem):
        checks.load_expected_failures(write(tmp_path, expected=text))


def test_decide_records_nan_as_null_and_the_failure_message_names_everything(tmp_path):
    tol = checks.tolerance(write(tmp_path), "nc1_end_max")
    record = checks.decide(tol, float("nan"), run="standard-s1", note="why")
    assert record["measured"] is None and not record["holds"]
    message = checks.failure_message(record)
    assert all(part in message for part in ("NC1 at the end", "nan", "<= 0.05", "standard-s1", "PNAS 2020", "why"))


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> Trajectory:
    """A tiny run whose training loss is NaN in epoch 1 (every layer tap evaluated at epoch 0)."""
    spec = RunSpec(epochs=2, train_size=300, width=12, layer_schedule="every:1")
    mp = pytest.MonkeyPatch()
    mp.setattr(train, "fit_epoch", lambda *a, **k: float("nan"))
    try:
        record = train.train(spec, cache_dir=tmp_path_factory.mktemp("diverged"))
    finally:
        mp.undo()
    assert record.meta["status"] == "diverged"
    return Trajectory(record, spec)


@pytest.mark.parametrize("check", [c for _, c in CHECKS], ids=[f"{m}-{c.tolerance}" for m, c in CHECKS])
def test_a_claim_on_a_diverged_run_fails_as_a_check(check, diverged):
    """NaN, never an exception, and the note says why: the claim fails as a check, not an error."""
    reference = diverged if check.against else None
    assert math.isnan(check.measure(diverged, reference))
    assert "diverged" in check.describe(diverged, reference)
    assert not checks.tolerance(CLAIMS_DIR, check.tolerance).holds(check.measure(diverged, reference))
    assert np.isnan(diverged.final("train.nc1"))
