"""Tests for ncsim.checks: the tolerance and expected-failure tables, Check, and the decision."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from ncsim import checks, train
from ncsim.spec import RunSpec
from ncsim.trajectory import Trajectory
from ncsim.verdict import Verdict, from_property, property_value
from tests.test_negative_controls import CHECKS, CLAIMS_DIR

TOML = """
[nc1_end_max]
value = 0.05
op = "<="
statistic = "NC1 at the end"
source = "PNAS 2020"
calibration = "none"
"""


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


@pytest.mark.parametrize(
    "text,problem",
    [
        ('[a]\nvalue = 1\nop = "=="\nstatistic = "s"\nsource = "s"\ncalibration = "c"\n', "op '=='"),
        ('[a]\nvalue = 1\nop = "<="\n', "missing"),
        ("a = 3\n", "must be a table"),
        ("[a\n", "cannot read"),
    ],
    ids=["bad-op", "missing-field", "not-a-table", "bad-toml"],
)
def test_a_bad_tolerance_table_names_the_entry(tmp_path, text, problem):
    with pytest.raises(ValueError, match=problem):
        checks.load_tolerances(write(tmp_path, text))


def test_unknown_tolerance_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="nc1_end_max"):
        checks.tolerance(write(tmp_path), "nc9_end_max")


def test_expected_failures_by_tolerance_and_configuration_never_by_seed(tmp_path):
    root = write(tmp_path, expected='[nc1_end_max.lbfgs]\nreason = "r"\n')
    (xfail,) = checks.load_expected_failures(root)
    assert xfail.covers("nc1_end_max", "lbfgs") and not xfail.covers("nc1_end_max", "standard")


def test_a_borderline_entry_is_refused_and_an_open_check_raises_undecided(tmp_path):
    """Seeds decide a borderline check (ncsim.sequential), never an entry of expected_failures.toml; a
    record the seeds left open raises Undecided, a refuted one a plain AssertionError."""
    with pytest.raises(ValueError, match="a borderline check is not registered"):
        checks.load_expected_failures(
            write(tmp_path, expected='[nc1_end_max.lbfgs]\nreason = "r"\nverdict = "inconclusive"\n')
        )
    (tmp_path / "mean").mkdir()
    tol = checks.tolerance(write(tmp_path / "mean", TOML + 'rule = "mean"\n'), "nc1_end_max")
    record = checks.decide(tol, [0.02, 0.09, 0.05, 0.03, 0.11])
    assert record.verdict == "inconclusive"
    with pytest.raises(checks.Undecided):
        checks.assert_holds(record)
    with pytest.raises(AssertionError) as failed:
        checks.assert_holds(checks.decide(tol, [0.07, 0.08, 0.09, 0.075, 0.085]))  # significantly above
    assert not isinstance(failed.value, checks.Undecided)
    checks.assert_holds(checks.decide(tol, [0.001, 0.002, 0.0015]))


def test_a_premise_too_few_runs_meet_decides_nothing(tmp_path):
    """A statement that assumes something of each run (Premise) is decided over the runs that meet it;
    with fewer than PREMISE_RUNS of them it is "premise not met" whatever its rule says: no pass, no
    refutation (Undecided), the premise and the runs that miss it in the message and the record. A run
    that did not finish counts as meeting it, so that the check fails on its NaN."""
    tol = checks.tolerance(write(tmp_path, TOML + 'rule = "mean"\n'), "nc1_end_max")
    exact = checks.Premise("exact collapse", lambda run: run.nc1, "<=", 0.0)
    premise = exact.record([SimpleRun("s0", 0.0), SimpleRun("s1", 2e-3)])
    assert premise == {
        "statement": "exact collapse (<= 0)",
        "runs": ["s0", "s1"],
        "values": [0.0, 2e-3],
        "meets": [True, False],
        "met": False,
    }
    for values in ([0.001, 0.002], [1.9, 1.8]):  # it would reproduce; it would not
        record = checks.decide(tol, values, runs=["s0", "s1"], premise=premise)
        assert record.verdict == "premise not met" and not record.holds
        with pytest.raises(
            checks.Undecided, match=r"assumes exact collapse \(<= 0\): too few runs meet it \(s1 0.002\)"
        ):
            checks.assert_holds(record)
        assert from_property(property_value(record)) == record
    met = exact.record([SimpleRun("s0", 0.0), SimpleRun("s1", 0.0), SimpleRun("s2", 1.0)])
    assert met["met"] and met["meets"] == [True, True, False]
    record = checks.decide(tol, [0.001, 0.0012], runs=["s0", "s1"], premise=met)
    assert record.verdict == "reproduces"
    assert "decided on the 2 runs that meet it, not on s2 1" in checks.failure_message(record)
    stopped = exact.record([SimpleRun("s0", 0.0), SimpleRun("s1", 2e-3, status="diverged")])
    assert stopped["met"] and math.isnan(stopped["values"][1])
    assert checks.decide(tol, [0.001, math.nan], premise=stopped).verdict == "does not reproduce"
    with pytest.raises(ValueError, match="op 'within'"):
        checks.Premise("x", lambda run: 0.0, "within", 1.0)


@dataclasses.dataclass
class SimpleRun:
    label: str
    nc1: float
    status: str = "ok"


@pytest.mark.parametrize(
    "text,problem",
    [
        ('[nc7_max.lbfgs]\nreason = "r"\n', "names no tolerance"),
        ('[nc1_end_max.lbfgs]\nnote = "r"\n', "takes a `reason`"),
        ('[nc1_end_max.lbfgs]\nreason = "r"\nseeds = [1]\n', "takes a `reason`"),
        ('[nc1_end_max.lbfgs]\nreason = "r"\nverdict = "maybe"\n', "takes a `reason` only"),
    ],
    ids=["stale-entry", "no-reason", "by-seed", "bad-verdict"],
)
def test_a_bad_expected_failure_is_named(tmp_path, text, problem):
    with pytest.raises(ValueError, match=problem):
        checks.load_expected_failures(write(tmp_path, expected=text))


def test_decide_records_nan_as_null_and_the_failure_message_names_everything(tmp_path):
    tol = checks.tolerance(write(tmp_path), "nc1_end_max")
    record = checks.decide(tol, [0.01, float("nan")], runs=["standard-s0", "standard-s1"], note="why")
    assert record.values == (0.01, None) and not record.holds and record.verdict == "does not reproduce"
    message = checks.failure_message(record)
    for part in (
        "NC1 at the end",
        "nan",
        "<= 0.05",
        "standard-s0 0.01",
        "standard-s1 nan",
        "PNAS 2020",
        "why",
        "every seed",
    ):
        assert part in message, part


def test_the_test_property_is_json_and_reads_back_as_the_record(tmp_path):
    import json

    tol = checks.tolerance(write(tmp_path), "nc1_end_max")
    record = dataclasses.replace(
        checks.decide(tol, [0.01, 0.02], runs=["standard-s0", "standard-s1"]),
        bound=math.inf,
        values=(np.float64(-math.inf), None),
        measured=math.nan,
    )
    text = property_value(record)
    assert isinstance(text, str) and json.loads(text)["bound"] == "inf"  # strict JSON: no Infinity/NaN
    assert json.loads(text)["values"] == ["-inf", None] and json.loads(text)["measured"] == "nan"
    back = from_property(text)
    assert back.bound == math.inf and back.values == (-math.inf, None) and math.isnan(back.measured)
    assert dataclasses.replace(back, measured=None) == dataclasses.replace(record, measured=None)
    assert from_property(json.loads(text)).values == back.values  # the parsed object reads as the text


def test_the_json_form_keeps_the_fields_verdicts_json_has_always_had(tmp_path):
    tol = checks.tolerance(write(tmp_path), "nc1_end_max")
    over_seeds = checks.decide(
        tol,
        [0.01, 0.02],
        claim="test_x",
        case="standard-nc1_end_max",
        figures=["a.png"],
        extended=False,
        seeds=[0, 1],
        runs=["standard-s0", "standard-s1"],
        config="standard",
        against=None,
        note="",
    )
    assert list(over_seeds.to_json()) == [
        "tolerance",
        "statistic",
        "op",
        "threshold",
        "rule",
        "scale",
        "source",
        "values",
        "measured",
        "aggregate",
        "bound",
        "interval",
        "p_value",
        "n",
        "holds",
        "verdict",
        "claim",
        "case",
        "figures",
        "extended",
        "seeds",
        "runs",
        "config",
        "against",
        "note",
    ]
    one_run = checks.decide(
        tol,
        [0.01],
        claim="test_ufm_x",
        case="c",
        figures=[],
        extended=False,
        seeds=[0],
        runs=["ufm-a"],
        run="ufm-a",
        config=None,
        note="",
    )
    assert "run" in one_run.to_json() and "against" not in one_run.to_json()
    equivalence = checks.Tolerance("r", 3.0, "within", "ratio", "src", "", rule="equivalence")
    assert "p_differs" in checks.decide(equivalence, [1.0, 1.1, 0.9]).to_json()
    for record in (over_seeds, one_run):
        assert Verdict.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match="unknown fields \\['extra'\\]"):
        Verdict.from_json({**over_seeds.to_json(), "extra": 1})
    with pytest.raises(ValueError, match="missing fields \\['verdict'\\]"):
        Verdict.from_json({k: v for k, v in over_seeds.to_json().items() if k != "verdict"})


def rule(rule, op="<=", value=0.05, scale="log"):
    return checks.Tolerance("t", value, op, "s", "src", "c", rule, scale)


def test_mean_rule_is_a_one_sided_t_bound_on_the_log_values():
    values = np.array([0.0024, 0.0022, 0.0023, 0.0025, 0.0024])
    d = checks.apply_rule(rule("mean"), values)
    logs = np.log(values)
    upper = logs.mean() + stats.t.ppf(0.95, 4) * logs.std(ddof=1) / np.sqrt(5)
    assert d["bound"] == pytest.approx(np.exp(upper), rel=1e-12)
    assert d["aggregate"] == pytest.approx(np.exp(logs.mean()), rel=1e-12)
    want = stats.ttest_1samp(logs, np.log(0.05), alternative="less").pvalue
    assert d["p_value"] == pytest.approx(want, rel=1e-9)
    assert d["holds"] and d["verdict"] == "reproduces"


@pytest.mark.parametrize(
    "values,verdict",
    [
        ([0.04, 0.045, 0.048, 0.046, 0.044], "reproduces"),
        ([0.02, 0.09, 0.05, 0.03, 0.11], "inconclusive"),
        ([0.5, 0.6, 0.55, 0.52, 0.58], "does not reproduce"),
    ],
)
def test_mean_rule_has_three_verdicts(values, verdict):
    d = checks.apply_rule(rule("mean"), values)
    assert d["verdict"] == verdict and d["holds"] == (verdict == "reproduces")


def test_a_direction_is_the_mean_rule_on_a_ratio():
    d = checks.apply_rule(rule("mean", ">=", 2.0), [30.0, 32.0, 35.0, 31.0, 29.0])
    assert d["holds"] and d["bound"] > 2 and d["p_value"] < 1e-6
    assert not checks.apply_rule(rule("mean", ">=", 2.0), [1.0, 1.1, 0.9, 1.0, 1.05])["holds"]


def test_linear_mean_rule_takes_negative_values():
    d = checks.apply_rule(rule("mean", "<=", -0.8, "linear"), [-0.99, -0.98, -0.97, -0.99, -0.96])
    assert d["holds"] and d["bound"] == pytest.approx(
        np.mean([-0.99, -0.98, -0.97, -0.99, -0.96])
        + stats.t.ppf(0.95, 4) * np.std([-0.99, -0.98, -0.97, -0.99, -0.96], ddof=1) / np.sqrt(5)
    )


def test_equivalence_is_tost_on_the_log_ratios_and_reports_a_systematic_difference():
    ratios = [0.45, 0.47, 0.43, 0.46, 0.44]
    d = checks.apply_rule(rule("equivalence", "within", 3.0), ratios)
    logs = np.log(ratios)
    p_low = stats.ttest_1samp(logs, -np.log(3), alternative="greater").pvalue
    p_high = stats.ttest_1samp(logs, np.log(3), alternative="less").pvalue
    assert d["p_value"] == pytest.approx(max(p_low, p_high), rel=1e-9) and d["holds"]
    assert d["interval"][1] < 1 and d["p_differs"] < 1e-4  # within 3x, and systematically lower
    assert not checks.apply_rule(rule("equivalence", "within", 3.0), [20.0, 30.0, 25.0, 18.0, 40.0])["holds"]


@pytest.mark.parametrize(
    "values", [[0.01, float("inf")], [0.01, float("nan")], [0.01, 0.0]], ids=["inf", "nan", "zero"]
)
def test_the_mean_rule_fails_on_values_it_cannot_average(values):
    d = checks.apply_rule(rule("mean"), values)
    assert not d["holds"] and d["aggregate"] is None


def test_every_rule_needs_every_seed():
    assert checks.apply_rule(rule("every", "<=", 0.0), [0.0, 0.0])["verdict"] == "reproduces"
    assert checks.apply_rule(rule("every", "<=", 0.0), [0.0, 0.001])["verdict"] == "does not reproduce"
    assert checks.apply_rule(rule("every", "<=", 0.0), [0.1, 0.001])["verdict"] == "does not reproduce"


def test_one_seed_is_decided_on_its_value_without_a_bound():
    d = checks.apply_rule(rule("mean"), [0.01])
    assert d["holds"] and d["p_value"] is None and d["bound"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "field,text", [("rule", 'rule = "median"'), ("scale", 'scale = "sqrt"'), ("op", 'op = "within"')]
)
def test_a_bad_rule_is_named(tmp_path, field, text):
    body = TOML.replace('op = "<="', text if field == "op" else f'op = "<="\n{text}')
    with pytest.raises(ValueError, match=field if field != "op" else "equivalence"):
        checks.load_tolerances(write(tmp_path, body))


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> Trajectory:
    """A tiny run whose training loss is NaN in epoch 1 (every layer tap evaluated at epoch 0)."""
    spec = RunSpec(epochs=2, train_size=300, width=12, layer_schedule="every:1")
    mp = pytest.MonkeyPatch()
    mp.setattr(train, "fit_epoch", lambda *a, **k: train.EpochFit(float("nan"), 1.0))
    try:
        with warnings.catch_warnings():  # the fake pass never steps the optimizer before the scheduler
            warnings.simplefilter("ignore", UserWarning)
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
