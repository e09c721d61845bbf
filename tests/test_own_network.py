"""The claims on a user's own network: examples/digits.py records a plain PyTorch loop on scikit-learn's
digits, `pytest claims --runs` decides the claims on it, and `ncsim decide` reproduces the decisions
from their per-seed values. Small: 2 seeds of 6 epochs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ncsim.cli import main
from ncsim.pytest_plugin.recorded import parse_compare, recorded_configurations
from ncsim.recorded import RecordedRunMissing
from ncsim.store import RunStore
from ncsim.suite import RunId

pytest.importorskip("sklearn")
ROOT = Path(__file__).resolve().parents[1]
SEEDS = "0,1"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A store holding digits-mlp and digits-mlp-nowd, seeds 0 and 1, 6 epochs each, by the example."""
    store = tmp_path_factory.mktemp("digits-runs")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import digits
    finally:
        sys.path.remove(str(ROOT / "examples"))
    digits.main(["--seeds", "0-1", "--epochs", "6", "--cache-dir", str(store)])
    return store


def claims(store: Path, report: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *args,
            "--cache-dir",
            str(store),
            "--report-dir",
            str(report),
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-o",
            "addopts=-ra",
            "-q",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_claims_run_on_recorded_runs_and_decide_reproduces_them(recorded, tmp_path):
    files = [f"claims/{name}.py" for name in ("test_nc1_variability", "test_regime_ablation", "test_webb_lowe_cnn")]
    done = claims(
        recorded,
        tmp_path / "reports",
        *files,
        "--runs",
        "digits-mlp",
        "--compare",
        "no-wd=digits-mlp-nowd",
        "--seeds",
        SEEDS,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    doc = json.loads((tmp_path / "reports" / "latest" / "verdicts.json").read_text())
    records = [c for claim in doc["claims"] for t in claim["tests"] for c in t.get("checks", [])]
    by_name = {(r["tolerance"], r["config"]): r for r in records}
    assert by_name[("nc1_end_max", "standard")]["runs"] == ["digits-mlp-s0", "digits-mlp-s1"]
    assert by_name[("no_wd_nc1_ratio_min", "no-wd")]["runs"] == ["digits-mlp-nowd-s0", "digits-mlp-nowd-s1"]
    assert doc["runs"] == {
        "standard": ["digits-mlp-s0", "digits-mlp-s1"],
        "no-wd": ["digits-mlp-nowd-s0", "digits-mlp-nowd-s1"],
    }
    assert "keeps no network" in done.stdout  # the Webb-Lowe CNN claim, skipped
    assert "mse: not recorded" in done.stdout and "--compare mse=NAME" in done.stdout
    assert (tmp_path / "reports" / "latest" / "nc_metrics.png").is_file()

    values = tmp_path / "values.csv"
    with open(values, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["check", "configuration", "seed", "value"])
        for r in records:
            w.writerows(
                [r["tolerance"], r["config"], seed, "nan" if v is None else repr(v)]
                for seed, v in zip(r["seeds"], r["values"])
            )
    main(["decide", str(values), "--claims", str(ROOT / "claims")])
    decided = json.loads((tmp_path / "values.decisions.json").read_text())
    assert len(decided) == len(records) >= 6
    for d in decided:
        r = by_name[(d["tolerance"], d["config"])]
        if r["verdict"] == "premise not met":  # a CSV of values does not say which runs meet the premise
            assert r["premise"]["met"] is False and d["verdict"] == "does not reproduce", d["tolerance"]
            continue
        assert (d["verdict"], d["measured"], d["bound"], d["p_value"]) == (
            r["verdict"],
            r["measured"],
            r["bound"],
            r["p_value"],
        ), d["tolerance"]


def test_a_seed_not_recorded_is_a_clear_error_before_anything_runs(recorded, tmp_path):
    with pytest.raises(RecordedRunMissing, match=r"'digits-mlp-nowd' has no run of seed 5 .*has seeds 0, 1"):
        recorded_configurations("digits-mlp", ["no-wd=digits-mlp-nowd"], [0, 5], RunStore(recorded))
    done = claims(
        recorded, tmp_path / "reports", "claims/test_nc1_variability.py", "--runs", "digits-mlp", "--seeds", "0,3"
    )
    assert done.returncode == 4 and "'digits-mlp' has no run of seed 3" in done.stderr
    assert not (tmp_path / "reports").exists()


def test_recorded_configurations_read_the_stored_descriptions(recorded):
    configs = recorded_configurations("digits-mlp", ["no-wd=digits-mlp-nowd"], [0, 1], RunStore(recorded))
    assert configs.spec(RunId("no-wd", 1)).to_dict()["weight_decay"] == 0.0
    assert configs.spec(RunId("standard", 1)).weight_decay == 5e-3 and configs.spec(RunId("standard", 1)).epochs == 6
    assert "--compare adam=NAME" in configs.left_out["adam"]
    with pytest.raises(ValueError, match="'bogus' is not a configuration"):
        parse_compare(["bogus=x"])
    with pytest.raises(ValueError, match="is not CONFIG=NAME"):
        parse_compare(["no-wd"])
