"""`ncsim decide`: verdicts from per-seed values, by the rules the claims use (ncsim.checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ncsim import checks
from ncsim.cli import main
from ncsim.decide import DecideError, decide_file, read_values

CLAIMS = Path(__file__).resolve().parents[1] / "claims"


def csv_file(tmp_path, text: str) -> Path:
    path = tmp_path / "values.csv"
    path.write_text(text)
    return path


def test_a_claims_decision_is_reproduced_from_its_per_seed_values(tmp_path, capsys):
    values = {
        "nc1_end_max": [0.0031, 0.0024, 0.0027, 0.0035, 0.0029],  # rule mean, log scale
        "nc4_end_max": [0.0, 0.0, 0.00025, 0.0, 0.0],  # rule every
        "optimizer_nc1_ratio_within": [1.4, 0.9, 1.2, 1.1, 0.8],
    }  # rule equivalence
    rows = [f"{name},adam,{seed},{v!r}" for name, vs in values.items() for seed, v in enumerate(vs)]
    path = csv_file(tmp_path, "check,configuration,seed,value\n" + "\n".join(rows) + "\n")
    code = main(["decide", str(path), "--claims", str(CLAIMS)])
    decided = {r["tolerance"]: r for r in json.loads((tmp_path / "values.decisions.json").read_text())}
    for name, vs in values.items():
        claim = checks.decide(checks.tolerance(CLAIMS, name), vs, config="adam")
        for field in ("verdict", "holds", "measured", "bound", "interval", "p_value", "threshold", "rule", "n"):
            assert decided[name][field] == claim.to_json()[field], (name, field)
    out = capsys.readouterr().out
    assert "nc1_end_max" in out and "reproduces" in out and "does not reproduce" in out
    assert code == 1  # nc4 fails on seed 2


def test_a_threshold_on_the_command_line_decides_any_statistic(tmp_path, capsys):
    path = csv_file(
        tmp_path,
        "statistic,configuration,seed,value\nmy_nc1,lab-net,0,0.01\nmy_nc1,lab-net,1,0.012\nmy_nc1,lab-net,2,0.011\n",
    )
    out = tmp_path / "d.csv"
    assert main(["decide", str(path), "--threshold", "0.05", "--op", "<=", "--rule", "mean", "--out", str(out)]) == 0
    record = decide_file(path, given={"threshold": 0.05, "op": "<=", "rule": "mean", "scale": "log"})[0]
    assert record.verdict == "reproduces" and record.seeds == (0, 1, 2) and record.config == "lab-net"
    assert out.read_text().splitlines()[0].startswith("tolerance,config,n,seeds,values")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("check,configuration,seed\n", r"row 1 \(header\): missing column\(s\) value"),
        ("configuration,seed,value\n", r"missing column\(s\) check \(or statistic\)"),
        (
            "check,configuration,seed,value\nnc1_end_max,std,0,0.1\nnc1_end_max,std,x,0.1\n",
            r"row 3: seed 'x' is not an integer",
        ),
        ("check,configuration,seed,value\nnc1_end_max,std,0,small\n", r"row 2: value 'small' is not a number"),
        (
            "check,configuration,seed,value\nnc1_end_max,std,0,0.1\nnc1_end_max,std,0,0.2\n",
            r"row 3: .* given twice \(first in row 2\)",
        ),
        ("check,configuration,seed,value\nnc1_end_max,,0,0.1\n", r"row 2: empty configuration"),
        ("check,configuration,seed,value\nnc1_end_max,std,0\n", r"row 2: 3 cells, the header has 4"),
        ("check,configuration,seed,value\n", r"no values"),
        ("check,configuration,seed,value,premise\nnc1_end_max,std,0,0.1,maybe\n", r"row 2: premise 'maybe' is not"),
        ("check,configuration,seed,value,premise\nnc1_end_max,std,0,0.1,\n", r"row 2: empty premise"),
    ],
)
def test_bad_csv_is_one_line_naming_the_row_and_the_problem(tmp_path, capsys, text, problem):
    path = csv_file(tmp_path, text)
    with pytest.raises(DecideError, match=problem):
        read_values(path)
    assert main(["decide", str(path), "--claims", str(CLAIMS)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ncsim: error: ") and "\n" not in err and str(path) in err
    assert not (tmp_path / "values.decisions.json").exists()


def test_an_unknown_check_or_a_bad_rule_is_an_error(tmp_path, capsys):
    path = csv_file(tmp_path, "check,configuration,seed,value\nnot_a_check,std,0,0.1\n")
    with pytest.raises(DecideError, match="'not_a_check' is not in .*tolerances.toml"):
        decide_file(path, CLAIMS)
    assert main(["decide", str(path), "--threshold", "1", "--rule", "median"]) == 2
    assert "--rule 'median'" in capsys.readouterr().err
    assert main(["decide", str(path), "--op", "<="]) == 2
    assert "go with --threshold" in capsys.readouterr().err


def test_a_premise_column_decides_over_the_runs_that_meet_it_as_a_claim_does(tmp_path):
    """The NC1 trend over the terminal phase (premise: a terminal phase of at least 5 evaluations): the
    runs marked false are left out of the decision and listed in its premise record; with fewer than
    PREMISE_RUNS runs meeting it, the verdict is "premise not met" whatever the values say."""
    trend = [(0, -0.99, "true"), (1, 0.2, "false"), (2, -0.97, "yes"), (3, -0.98, "1"), (4, float("nan"), "0")]
    rows = [f"nc1_post_tpt_trend_max,standard,{seed},{v},{m}" for seed, v, m in trend]
    rows += [f"nc1_post_tpt_trend_max,lr0,{seed},-0.99,{'true' if seed == 0 else 'false'}" for seed in range(5)]
    path = csv_file(tmp_path, "check,configuration,seed,value,premise\n" + "\n".join(rows) + "\n")
    standard, lr0 = decide_file(path, CLAIMS)
    kept = [v for _, v, m in trend if m in ("true", "yes", "1")]
    claim = checks.decide(checks.tolerance(CLAIMS, "nc1_post_tpt_trend_max"), kept, config="standard")
    assert standard.verdict == claim.verdict == "reproduces" and standard.values == claim.values
    assert standard.seeds == (0, 2, 3) and standard.premise["meets"] == [True, False, True, True, False]
    assert lr0.verdict == checks.PREMISE_NOT_MET and not lr0.holds and lr0.n == 5
    assert main(["decide", str(path), "--claims", str(CLAIMS)]) == 1
    written = {r["config"]: r for r in json.loads((tmp_path / "values.decisions.json").read_text())}
    assert written["lr0"]["premise"]["met"] is False and written["standard"]["premise"]["met"] is True
