"""Every claim check fails on a negative control, with finite values, by its own decision rule.

A check that cannot fail proves nothing. Each claim file's CHECKS table names, for every statistic,
the controls on which its tolerance must NOT hold; this file builds those controls on CONTROL_SEEDS,
evaluates the very same statistic there, asserts every value is finite (NaN fails any threshold, so
it would prove nothing), and decides the values over the seeds by the tolerance's rule, which must
not hold. The controls:
- "init": the default run truncated at initialisation (no training, no collapse, no TPT);
- "at-tpt": the default run truncated at its TPT epoch (no terminal phase yet);
- "no-bn": the seed README's CNN without batch norm, which never reaches zero train error;
- "train-as-test": the train-set metrics offered as the test-set ones (no generalisation gap);
- "reversed": the default run with its test and metric columns in reverse epoch order (its train
  error, hence its TPT, unchanged): a synthetic control of a post-TPT statistic's direction, for the
  checks whose physical controls never reach a terminal phase (no TPT: nothing finite to measure);
- "balanced": the default run itself, every class equally sampled (R = 1): the control of a statistic
  of class imbalance;
- for a comparison (a check `against` a reference configuration): "self", the default run compared
  with itself (no regime change); "untrained", the run at initialisation against the default run; and
  "untrained-reference", the default run against its own initialisation (a change in the run's favour).
The runs come through the store, in the xdist group of the run they need, so under `pytest -n auto`
they are the claims' own runs, trained once.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import claims
from ncsim import checks, claim, suite
from ncsim.store import Record
from ncsim.trajectory import Trajectory

CLAIMS_DIR = Path(claims.__file__).parent
CONTROL_SEEDS = suite.DEFAULT_SEEDS[:3]


def claim_checks() -> list[tuple[str, checks.Check]]:
    """(claim module, Check) for every check of runs that a claim file of claims/ declares."""
    out = []
    for info in pkgutil.iter_modules([str(CLAIMS_DIR)]):
        if info.name.startswith("test_"):
            module = importlib.import_module(f"claims.{info.name}")
            out += [(info.name, c) for c in claim.run_checks(module)]
    return out


CHECKS = claim_checks()
CASES = [
    pytest.param(check, control, id=f"{claim}-{check.tolerance}-{control}")
    for claim, check in CHECKS
    for control in check.controls
]


def train_as_test(run: Trajectory) -> Trajectory:
    arrays = dict(run.record.arrays)
    for k in list(arrays):
        if k.startswith("train.") or k.startswith("train_"):
            arrays["test" + k[len("train") :]] = arrays[k]
    return Trajectory(Record(run.key, run.meta, arrays), run.spec, run.data_cache)


def reversed_metrics(run: Trajectory) -> Trajectory:
    arrays = {k: (v[::-1] if k.startswith(("train.", "test.", "test_")) else v) for k, v in run.record.arrays.items()}
    return Trajectory(Record(run.key, run.meta, arrays), run.spec, run.data_cache)


def controls(run: Trajectory, no_bn: Trajectory) -> dict[str, Trajectory]:
    assert run.tpt_epoch is not None, f"{run.label} must reach TPT for the at-tpt control"
    return {
        "run": run,
        "init": run.truncated(0),
        "at-tpt": run.truncated(run.tpt_epoch),
        "no-bn": no_bn,
        "train-as-test": train_as_test(run),
        "reversed": reversed_metrics(run),
        "balanced": run,
    }


@pytest.fixture(scope="module")
def control_runs(obtain_run, prefetched) -> list[dict[str, Trajectory]]:
    return [controls(obtain_run("standard", seed), obtain_run("no-bn", seed)) for seed in CONTROL_SEEDS]


def control_value(check: checks.Check, control: str, runs: dict[str, Trajectory]) -> float:
    if check.against is not None:
        pairs = {
            "self": (runs["run"], runs["run"]),
            "untrained": (runs["init"], runs["run"]),
            "untrained-reference": (runs["run"], runs["init"]),
        }
        return check.measure(*pairs[control])
    return check.measure(runs[control])


@pytest.mark.slow
@pytest.mark.xdist_group("negative-controls")
@pytest.mark.parametrize("check,control", CASES)
def test_check_fails_on_control(check, control, control_runs):
    values = [control_value(check, control, runs) for runs in control_runs]
    assert np.isfinite(values).all(), f"{check.tolerance} on the {control} control is not finite: {values}"
    record = checks.decide(checks.tolerance(CLAIMS_DIR, check.tolerance), values)
    assert not record.holds, f"{check.tolerance} holds on the {control} control: {checks.failure_message(record)}"


RUN_CONTROLS = {"init", "at-tpt", "no-bn", "train-as-test", "reversed", "balanced"}
PAIR_CONTROLS = {"self", "untrained", "untrained-reference"}


@pytest.mark.parametrize("check", [c for _, c in CHECKS], ids=[f"{m}-{c.tolerance}" for m, c in CHECKS])
def test_every_check_has_a_known_control(check):
    known = PAIR_CONTROLS if check.against else RUN_CONTROLS
    assert check.controls, f"{check.tolerance} names no negative control"
    assert set(check.controls) <= known, f"{check.tolerance}: unknown controls {set(check.controls) - known}"


def test_every_tolerance_is_checked():
    """Every CNN tolerance in the table is some claim's check (UFM tolerances: tests/test_ufm.py)."""
    used = {c.tolerance for _, c in CHECKS}
    cnn = {n for n in checks.load_tolerances(CLAIMS_DIR) if not n.startswith("ufm_")}
    assert cnn <= used, f"tolerances no claim checks: {sorted(cnn - used)}"
    assert used <= set(checks.load_tolerances(CLAIMS_DIR))
