"""Every claim check fails on a negative control.

A check that cannot fail proves nothing. For each statistic a claim holds to a tolerance, this file
evaluates the very same statistic function on a control where the claimed effect is absent, and
asserts that the tolerance does NOT hold there:
- "init": the default run truncated at initialisation (no training, no collapse, no TPT);
- "at-tpt": the default run truncated at its TPT epoch (no terminal phase yet);
- "no-bn": the seed README's CNN without batch norm, which never reaches zero train error;
- "self": a comparison of a run with itself (no regime change, no optimizer change);
- "train-as-test": the train-set metrics offered as the test-set ones (no generalisation gap).
The runs come through the store, in the xdist group of the run they need, so under `pytest -n auto`
they are the claims' own runs, trained once.
"""

from __future__ import annotations

import numpy as np
import pytest

from claims import (test_layerwise as layerwise, test_nc1_variability as nc1, test_nc2_simplex_etf as nc2,
                    test_nc3_self_duality as nc3, test_nc4_nearest_center as nc4,
                    test_optimizer_invariance as optim, test_terminal_phase as tpt)
from ncsim import tolerances
from ncsim.store import Record
from ncsim.trajectory import Trajectory

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("standard-s0")]


def train_as_test(run: Trajectory) -> Trajectory:
    arrays = dict(run.record.arrays)
    for k in list(arrays):
        if k.startswith("train.") or k.startswith("train_"):
            arrays["test" + k[len("train"):]] = arrays[k]
    return Trajectory(Record(run.key, run.meta, arrays), run.spec)


@pytest.fixture(scope="module")
def controls(get_run):
    run = get_run("standard", 0)
    assert run.tpt_epoch is not None, "the default run must reach TPT for the at-tpt control"
    return {"run": run, "init": run.truncated(0), "at-tpt": run.truncated(run.tpt_epoch),
            "no-bn": get_run("no-bn", 0), "train-as-test": train_as_test(run)}


# (tolerance, control, statistic of the control). Each row names one check of a claim file.
CASES = [
    ("tpt_fraction_max", "init", tpt.tpt_fraction),
    ("tpt_fraction_max", "no-bn", tpt.tpt_fraction),
    ("tpt_test_error_rise_max", "no-bn", tpt.error_rise_during_tpt),
    ("nc1_end_max", "init", nc1.nc1_end),
    ("nc1_end_max", "no-bn", nc1.nc1_end),
    ("nc1_tpt_over_end_min", "at-tpt", nc1.nc1_tpt_over_end),
    ("nc1_init_over_end_min", "init", nc1.nc1_init_over_end),
    ("nc1_post_tpt_trend_max", "no-bn", nc1.nc1_post_tpt_trend),
    ("nc1_post_tpt_trend_max", "at-tpt", nc1.nc1_post_tpt_trend),
    *[(f"{m}_end_max", "init", lambda r, m=m: nc2.end_value(r, m)) for m in nc2.END_METRICS if m != "w_equinorm"],
    # Random 128-D classifier rows are equinorm already (std/mean ~0.02): the control is a run whose
    # training does not collapse.
    ("w_equinorm_end_max", "no-bn", lambda r: nc2.end_value(r, "w_equinorm")),
    *[(f"{m}_shrink_min", "init", lambda r, m=m: nc2.shrink_factor(r, m)) for m in ("nc2_maxangle", "nc2_etf_distance")],
    ("nc3_end_max", "init", nc3.nc3_end),
    ("nc3_init_over_end_min", "init", nc3.nc3_init_over_end),
    ("nc4_end_max", "init", nc4.nc4_end),
    ("nc4_late_tpt_mean_max", "no-bn", nc4.nc4_post_tpt_mean),
    ("layer_nc1_depth_increase_max", "init", layerwise.nc1_max_depth_increase),
    ("layer_nc1_penultimate_over_earlier_max", "init", layerwise.nc1_penultimate_over_min_earlier),
    ("layer_etf_penultimate_over_first_max", "init", layerwise.etf_penultimate_over_first),
    ("optimizer_nc1_end_max", "init", nc1.nc1_end),
    ("mse_nc1_end_max", "init", nc1.nc1_end),
    ("mse_nc1_init_over_end_min", "init", nc1.nc1_init_over_end),
]


@pytest.mark.parametrize("tolerance,control,statistic", CASES,
                         ids=[f"{t}-{c}" for t, c, _ in CASES])
def test_check_fails_on_control(controls, tolerance, control, statistic):
    value = statistic(controls[control])
    tol = tolerances.get(tolerance)
    assert not tol.holds(value), f"{tolerance} holds on the {control} control: {value} {tol.op} {tol.value}"


@pytest.mark.parametrize("metric", optim.COMPARED)
def test_optimizer_agreement_fails_against_untrained(controls, metric):
    """An 'optimizer' whose run never trained is not within the agreement factor of SGD."""
    a, b = controls["init"].final(f"train.{metric}"), controls["run"].final(f"train.{metric}")
    assert not tolerances.get(f"optimizer_{metric}_factor_max").holds(optim.factor_apart(a, b))


@pytest.mark.parametrize("metric", ("nc1", "nc3"))
def test_no_wd_ratio_fails_without_regime_change(controls, metric):
    """Comparing the default run with itself shows no weakening: the no-wd check must fail."""
    v = controls["run"].final(f"train.{metric}")
    assert not tolerances.get(f"no_wd_{metric}_ratio_min").holds(v / v)


@pytest.mark.parametrize("metric", ("nc1", "nc2_etf_distance"))
def test_train_vs_test_fails_without_gap(controls, metric):
    from claims.test_train_vs_test import ratio_test_to_train

    assert not tolerances.get(f"test_over_train_{metric}_min").holds(ratio_test_to_train(controls["train-as-test"], metric))


def test_ncc_gap_fails_without_gap(controls):
    r = controls["train-as-test"]
    d = r.final("test.ncc_error") - r.final("train.ncc_error")
    assert not tolerances.get("test_minus_train_ncc_error_min").holds(d)


@pytest.fixture(scope="module")
def final_features(controls):
    return controls["run"].features("train")


@pytest.mark.parametrize("statistic", ("nc3", "nc4", "nc3_between"))
def test_webb_lowe_fails_on_uncollapsed_features(controls, statistic):
    """On the final features of the no-batch-norm run (NC1 ~ 1.5, not collapsed) the Webb-Lowe
    classifier is neither self-dual nor nearest-class-centre. (Shuffled labels are no control for
    nc3_between: their 'means' are noise that lies in the top-variance directions anyway.)"""
    from claims.test_webb_lowe_cnn import webb_lowe_statistics

    f = controls["no-bn"].features("train")
    value = webb_lowe_statistics(f["h"], f["y"])[statistic]
    assert not tolerances.get(f"wl_cnn_{statistic}_max").holds(value), value


def test_webb_lowe_lstsq_fails_for_another_classifier(final_features):
    """The network's own cross-entropy classifier is not the least-squares one."""
    from ncsim import ufm

    f = final_features
    value = ufm.lstsq_deviation(f["h"], f["y"], 10, f["W"], f["b"])
    assert not tolerances.get("wl_cnn_lstsq_max").holds(value), value


def test_every_tolerance_has_a_control():
    """No tolerance in the table escapes this file (UFM tolerances have theirs in tests/test_ufm.py)."""
    covered = {t for t, _, _ in CASES} | {f"optimizer_{m}_factor_max" for m in optim.COMPARED} \
        | {f"no_wd_{m}_ratio_min" for m in ("nc1", "nc3")} \
        | {f"test_over_train_{m}_min" for m in ("nc1", "nc2_etf_distance")} | {"test_minus_train_ncc_error_min"} \
        | {f"wl_cnn_{m}_max" for m in ("lstsq", "nc3", "nc4", "nc3_between")}
    cnn = {n for n in tolerances.load() if not n.startswith("ufm_")}
    assert cnn <= covered, f"tolerances without a negative control: {sorted(cnn - covered)}"
    assert np.all([n in tolerances.load() for n in covered])
