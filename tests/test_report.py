"""Tests for the report folder and verdict table (ncsim.report) and its pytest hook (ncsim/pytest_plugin/report.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ncsim import figures, report, sequential, suite
from ncsim.cli import main
from ncsim.pytest_plugin.report import REPORT_FAILED
from ncsim.report import RecordedTest, stability
from ncsim.store import Record, RunStore
from ncsim.suite import RunId
from tests.test_figures import (  # noqa: F401 - `tiny` and `probe_cache` are fixtures (the runs are trained once)
    NC1_FALL,
    RATIO,
    SWEEPS,
    TPT_FRACTION,
    TREND,
    WL_NC3,
    WL_NC4,
    check,
    probe_cache,
    tiny,
    tol,
    ufm_check,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 15, 30, 12, tzinfo=timezone.utc)
SESSION = {"finished": "2026-11-24T15:30:00Z", "command": "pytest claims", "exitstatus": 1}


def outcome(nodeid, result="passed", reason="", records=None) -> RecordedTest:
    return RecordedTest(nodeid, result, reason, records if records is not None else [])


NC1 = "claims/test_nc1_variability.py::test_nc1_collapses"
TPT = "claims/test_terminal_phase.py::test_terminal_phase"
WL = "claims/test_webb_lowe_cnn.py::test_webb_lowe_on_collapsed_features"
OPT = "claims/test_optimizer_invariance.py::test_optimizer_invariance"
UFM = "claims/test_ufm_mse.py::test_converges"
XFAIL_REASON = "NC3 of the exact Webb-Lowe classifier is 1.9 | not 0"
LBFGS_REASON = "LBFGS end NC1 is 15-40x SGD's"

OUTCOMES = [
    outcome(f"{NC1}[standard-nc1_end_max]", records=[check()]),
    outcome(
        f"{NC1}[standard-nc1_tpt_over_end_min]", "failed", "AssertionError: NC1 ...", [check(NC1_FALL, (1.2, 1.5, 1.1))]
    ),
    outcome(
        f"{NC1}[standard-nc1_post_tpt_trend_max]",
        "failed",
        "AssertionError: NC1 ...",
        [check(TREND, (-0.99, -0.5, -0.95))],
    ),
    outcome(
        f"{NC1}[standard-nc1_init_over_end_min]",
        "failed",
        "AssertionError: NC1 ...",
        [check(tol("nc1_init_over_end_min", 100.0, ">="), (2e4, float("nan"), 3e4))],
    ),
    outcome(
        f"{TPT}[standard-tpt_fraction_max]",
        records=[check(TPT_FRACTION, (0.5, 0.44, 0.52), claim="test_terminal_phase", figures=["training.png"])],
    ),
    outcome(
        f"{WL}[standard-wl_cnn_nc3_max]",
        "xfail",
        XFAIL_REASON,
        [check(WL_NC3, (1.9, 1.91, 1.89), claim="test_webb_lowe_cnn")],
    ),
    outcome(f"{WL}[standard-wl_cnn_nc4_max]", records=[check(WL_NC4, (0.0, 0.0, 0.0), claim="test_webb_lowe_cnn")]),
    outcome(
        f"{OPT}[lbfgs-optimizer_nc1_ratio_within]",
        "xfail",
        LBFGS_REASON,
        [check(RATIO, (15.6, 38.3, 20.0), "lbfgs", "test_optimizer_invariance", "standard")],
    ),
    outcome(
        f"{OPT}[lbfgs-tpt_fraction_max]",
        "failed",
        "AssertionError: TPT ...",
        [check(TPT_FRACTION, (0.8, 0.44, float("inf")), "lbfgs", "test_optimizer_invariance")],
    ),
    outcome(f"{UFM}[gd-seed0]", "skipped", "not today"),
    outcome(f"{UFM}[gd-seed1]", "error", "RuntimeError: fixture broke"),
    outcome(f"{UFM}[adam-seed0]", "xpass", "[XPASS(strict)] expected to fail", [ufm_check()]),
    outcome(f"{UFM}[adam-seed1]", records=[ufm_check(seed=1)]),
]


# --- the verdict table ------------------------------------------------------------------------------


def test_counts_by_outcome():
    assert report.counts(OUTCOMES) == {
        "passed": 4,
        "xpassed": 0,
        "failed": 4,
        "xfail": 2,
        "xpass": 1,
        "skipped": 1,
        "error": 1,
    }


def test_each_test_says_what_it_decided_of_its_check():
    assert [report.check_status(t) for t in OUTCOMES] == [
        "reproduces",
        "does not reproduce",
        "inconclusive",
        "does not reproduce",
        "reproduces",
        "xfail",
        "reproduces",
        "xfail",
        "does not reproduce",
        "skipped",
        "error",
        "xpass",
        "reproduces",
    ]
    assert report.check_status(outcome(f"{NC1}[x]", "failed", "KeyError: 'train.nc1'")) == "error"


def test_claim_verdicts_count_the_checks_decided_over_seeds():
    table = {c["file"]: c for c in report.verdicts(OUTCOMES)}
    assert list(table) == sorted(table)
    assert table["claims/test_terminal_phase.py"]["verdict"] == "reproduces: 1 of 1 checks"
    nc1 = table["claims/test_nc1_variability.py"]
    assert nc1["status"] == "does not reproduce"
    assert nc1["verdict"] == (
        "does not reproduce: nc1_init_over_end_min [standard], nc1_tpt_over_end_min [standard]; "
        "inconclusive: nc1_post_tpt_trend_max [standard]; 1 of 4 checks reproduce"
    )
    assert nc1["check_statuses"] == {"reproduces": 1, "does not reproduce": 2, "inconclusive": 1}
    assert table["claims/test_optimizer_invariance.py"]["verdict"] == (
        "does not reproduce: tpt_fraction_max [lbfgs]; 0 of 2 checks reproduce; 1 does not (strict xfail, expected): "
        f"optimizer_nc1_ratio_within [lbfgs vs standard]: {LBFGS_REASON}"
    )
    ufm = table["claims/test_ufm_mse.py"]
    assert ufm["verdict"] == (
        "error before deciding: gd-seed1; passes although a strict xfail (which fails the "
        "suite): ufm_grad_norm_max [ufm-mse-adam s0]; 1 of 3 checks reproduce; 1 skipped"
    )
    assert [c["kind"] for c in table.values()] == ["cnn", "cnn", "cnn", "ufm", "cnn"]
    assert [len(c["tests"]) for c in table.values()] == [4, 2, 1, 4, 2]


def test_a_check_its_seeds_left_open_is_named_so():
    """A check the sequential looks did not decide (ncsim.sequential) is reported as undecided, or at the
    design's last look as within the indifference zone, whatever pytest's outcome: never as a check that
    does not reproduce, nor as a pass; beside a strict xfail each is named for what it measured."""
    record = check(NC1_FALL, (1.2, 5.0, 4.0))
    assert record.verdict == "inconclusive"
    undecided = sequential.settle(record, NC1_FALL, sequential.Design(block=3))
    indifferent = sequential.settle(record, NC1_FALL, sequential.Design(block=3, looks=1))
    assert (undecided.verdict, indifferent.verdict) == ("undecided", "within the indifference zone")
    assert undecided.sequential["look"] == 1 and undecided.sequential["alpha"] == pytest.approx(0.0125)
    open_test = outcome(f"{NC1}[standard-nc1_tpt_over_end_min]", "xfail", "undecided ...", [undecided])
    assert report.check_status(open_test) == "undecided"
    assert report.check_status(outcome(open_test.nodeid, "xfail", "", [indifferent])) == "within the indifference zone"
    assert report.claim_verdict([open_test]) == ("undecided", "undecided: nc1_tpt_over_end_min [standard]")
    strict = next(t for t in OUTCOMES if t.nodeid.startswith(WL) and t.outcome == "xfail")
    status, line = report.claim_verdict([open_test, strict, OUTCOMES[0]])
    assert status == "partly reproduces"
    assert line == (
        "partly reproduces: 1 check reproduces; 1 does not (strict xfail, expected): "
        f"wl_cnn_nc3_max [standard]; 1 is undecided: nc1_tpt_over_end_min [standard]: {XFAIL_REASON}"
    )


def test_a_check_whose_runs_miss_its_premise_is_no_evidence_either_way():
    """A check decided "premise not met" (ncsim.checks.Premise) is named so beside the claim's other
    checks, never counted as reproducing or refuted, and left out of the seed resampling."""
    record = dataclasses.replace(
        check(NC1_FALL, (1.2, 5.0, 4.0)),
        verdict="premise not met",
        holds=False,
        premise={"statement": "exact collapse (<= 0)", "values": [2e-3, 2e-3, 2e-3], "met": False},
    )
    unmet = outcome(f"{WL}[standard-wl_cnn_nc3_max]", "xfail", "the statement assumes ...", [record])
    assert report.check_status(unmet) == "premise not met"
    status, line = report.claim_verdict([unmet, OUTCOMES[0]])
    assert status == "partly reproduces" and line.endswith("1 has an unmet premise: nc1_tpt_over_end_min [standard]")
    assert report.claim_verdict([unmet])[0] == "premise not met (no evidence either way)"
    assert stability.stability([record]) is None


def test_a_claim_with_an_expected_failure_is_not_headlined_as_reproducing():
    wl = {c["file"]: c for c in report.verdicts(OUTCOMES)}["claims/test_webb_lowe_cnn.py"]
    assert wl["status"] == "partly reproduces"
    assert wl["verdict"] == (
        "partly reproduces: 1 check reproduces; 1 does not (strict xfail, expected): "
        f"wl_cnn_nc3_max [standard]: {XFAIL_REASON}"
    )
    status, line = report.claim_verdict([t for t in OUTCOMES if t.nodeid.startswith(WL) and t.outcome == "xfail"])
    assert status == "does not reproduce (strict xfail, expected)"
    assert line == f"does not reproduce (strict xfail, expected): wl_cnn_nc3_max [standard]: {XFAIL_REASON}"
    assert report.claim_verdict([]) == ("no checks ran", "no checks ran")


def test_the_headline_counts_cnn_claims_apart_from_ufm_checks():
    assert report.headline(report.verdicts(OUTCOMES)) == {
        "cnn": {
            "claims": {"does not reproduce": 2, "reproduces": 1, "partly reproduces": 1},
            "checks": {"reproduces": 3, "xfail": 2, "does not reproduce": 3, "inconclusive": 1},
        },
        "ufm": {
            "claims": {"error before deciding": 1},
            "checks": {"reproduces": 1, "error": 1, "xpass": 1, "skipped": 1},
        },
    }
    md = report.markdown(document())
    assert (
        "**Empirical claims on trained CNNs (MNIST-1D), decided over seeds: 4 claim files (does not reproduce: 2, "
        "reproduces: 1, partly reproduces: 1); 9 checks (reproduces: 3, does not reproduce "
        "(strict xfail, expected): 2, does not reproduce: 3, inconclusive: 1).**"
    ) in md
    assert (
        "**Numerical checks of the unconstrained features model (theory, one value per test): 1 claim file "
        "(error before deciding: 1); 4 checks (reproduces: 1, error before deciding: 1, passes although a strict "
        "xfail (which fails the suite): 1, skipped: 1).**"
    ) in md
    assert "13 tests: 4 passed, 4 failed, 2 xfail, 1 xpass, 1 skipped, 1 error." in md


def test_claims_map_to_the_figures_they_declare():
    declared = ["nc_metrics.png", "geometry.png"]
    tests = [outcome(f"{NC1}[standard-nc1_end_max]", records=[check(figures=declared)])]
    assert report.figures_for(tests) == declared
    assert report.figures_for([outcome(f"{UFM}[gd-seed0]", records=[ufm_check()])]) == []
    assert report.figures_for([outcome(f"{UFM}[gd-seed0]", "error")]) == []


def document(outcomes=OUTCOMES) -> dict:
    claims = report.verdicts(outcomes)
    return {
        "folder": "2026-11-24T1530Z",
        "created": "2026-11-24T15:30:12Z",
        "seeds": [0, 1, 2],
        "store": "/s",
        "session": SESSION,
        "summary": report.counts(outcomes),
        "headline": report.headline(claims),
        "claims": claims,
        "not_drawn": ["adam-s1 (not in the run store)"],
        "figures": {name: {"title": title, "error": None} for name, title in report.FIGURES.items()},
    }


def rows(md: str, claim: str) -> dict[str, list[str]]:
    """The cells of each row of a claim's check table, by its first cell."""
    section = md.split(f"### claims/{claim}.py")[1].split("\n### ")[0]
    table = [line[2:-2].split(" | ") for line in section.splitlines() if line.startswith("| ")][1:]
    return {row[0]: row for row in table}


def test_markdown_has_a_row_per_check_with_its_values_over_seeds():
    md = report.markdown(document())
    assert "adam-s1 (not in the run store)" in md
    assert (
        "| [test_terminal_phase](#claimstest_terminal_phasepy) | reproduces: 1 of 1 checks | 1 passed "
        "| [training.png](training.png) |"
    ) in md
    for name in report.FIGURES:
        assert f"]({name})" in md and f"![{report.FIGURES[name]}]({name})" in md
    assert md.index("**Empirical claims on trained CNNs") < md.index("**Numerical checks of the unconstrained")
    assert (
        "| check | configuration | rule | values per seed | aggregate | bound / interval | p | needs | verdict "
        "| outcome | note |"
    ) in md
    nc1 = rows(md, "test_nc1_variability")
    end = nc1["`nc1_end_max`"][1:]
    assert end[:5] == [
        "standard",
        "one-sided confidence bound of the geometric mean over seeds",
        "s0 2.4e-3, s1 2.2e-3, s2 2.5e-3",
        f"{report.number(OUTCOMES[0].checks[0].measured)} (geometric mean)",
        f"95% bound {report.number(OUTCOMES[0].checks[0].bound)}",
    ]
    assert end[6:9] == ["<= 0.05", "reproduces", "passed"]
    assert nc1["`nc1_init_over_end_min`"][3] == "s0 2e4, s1 nan, s2 3e4"
    assert nc1["`nc1_post_tpt_trend_max`"][8:10] == ["inconclusive", "**failed**"]
    section = md.split("### claims/test_nc1_variability.py")[1].split("###")[0]
    assert "- `nc1_end_max`: the statistic of nc1_end_max (Papyan, Han & Donoho, PNAS 2020, Fig. 6)" in section
    assert "**Verdict:** does not reproduce: nc1_init_over_end_min [standard]" in section
    optimizer = rows(md, "test_optimizer_invariance")
    ratio, tpt = optimizer["`optimizer_nc1_ratio_within`"], optimizer["`tpt_fraction_max`"]
    record = OUTCOMES[7].checks[0]
    assert ratio[1:3] == ["lbfgs vs standard", "TOST: confidence interval of the geometric-mean ratio within a factor"]
    lo, hi = map(report.number, record.interval)
    assert ratio[5] == f"90% interval {lo} to {hi}"
    assert ratio[6] == f"{report.number(record.p_value)}; differs from 1: p {report.number(record.p_differs)}"
    assert ratio[7:10] == ["within ×3 of 1", "does not reproduce", "xfail"]
    assert tpt[3:5] == ["s0 0.8, s1 0.44, s2 inf", "0.8 (median)"]
    # a "|" inside a cell is escaped, so the row keeps its columns
    wl = [line for line in md.splitlines() if line.startswith("| `wl_cnn_nc3_max`")][0]
    assert "1.9 \\| not 0" in wl and len(wl.split(" | ")) == len(report.CHECK_COLUMNS)
    ufm = rows(md, "test_ufm_mse")
    assert ufm["test_converges[gd-seed1]"] == ["test_converges[gd-seed1]"] + [""] * 8 + [
        "**error**",
        "RuntimeError: fixture broke",
    ]
    assert ufm["`ufm_grad_norm_max`"][:5] == ["`ufm_grad_norm_max`", "ufm-mse-adam s1", "every seed", "s1 1e-9", "1e-9"]


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "nan"),
        ("inf", "inf"),
        (float("inf"), "inf"),
        (0.0, "0"),
        (0.052, "0.052"),
        (2.4e-3, "2.4e-3"),
        (2.45e-7, "2.45e-7"),
        (1234.0, "1.23e3"),
        (1.5e5, "1.5e5"),
        (-0.0101, "-0.0101"),
    ],
)
def test_numbers_are_compact(value, text):
    assert report.number(value) == text


# --- the folder -------------------------------------------------------------------------------------


def test_write_a_report_folder_from_tiny_runs(tiny, probe_cache, tmp_path):
    out = tmp_path / "reports"
    every_figure = [name for name in report.FIGURES if name != "verdicts.png"]  # a session whose claims declare all
    outcomes = [
        *OUTCOMES,
        outcome(
            "claims/test_all.py::test_all[standard-nc1_end_max]",
            records=[check(claim="test_all", figures=every_figure)],
        ),
    ]
    folder = report.write(
        out,
        tiny.runs,
        [RunId("adam", 1)],
        outcomes=outcomes,
        session=SESSION,
        seeds=[0, 1],
        store_root=tiny.root,
        sweeps=SWEEPS,
        now=NOW,
    )
    assert folder == out / "runs" / "2026-11-24T1530Z"
    for name in report.FIGURES:
        assert (folder / name).stat().st_size > 5000
    md = (folder / "report.md").read_text()
    doc = json.loads((folder / "verdicts.json").read_text())
    assert doc["summary"] == report.counts(outcomes) and doc["session"] == SESSION
    assert doc["figures"]["geometry.png"] == {"title": "Geometry at the end of training", "error": None}
    assert {name: info["error"] for name, info in doc["figures"].items() if info["error"]} == {}
    assert doc["not_drawn"] == ["adam-s1 (not in the run store)"]
    assert doc["runs"]["standard"] == ["standard-s0", "standard-s1"]
    assert list(doc["figures"]) == list(report.FIGURES)  # the verdict figure first
    written = {t["nodeid"]: t["checks"] for claim in doc["claims"] for t in claim["tests"]}
    for t in outcomes:  # every field of every record, non-finite numbers as strings (JSON has none)
        assert [set(c) for c in written[t.nodeid]] == [set(c.to_json()) for c in t.checks]
    assert written[OUTCOMES[3].nodeid][0]["values"] == [2e4, None, 3e4]  # NaN: null, as decide records it
    assert written[OUTCOMES[3].nodeid][0]["measured"] is None
    assert written[OUTCOMES[8].nodeid][0]["values"] == [0.8, 0.44, "inf"]
    assert doc["headline"] == report.headline(report.verdicts(outcomes))
    assert report.markdown(doc) == md
    latest = out / "latest"
    assert latest.resolve() == folder.resolve() and (latest / "report.md").is_file()


def test_a_second_report_in_the_same_minute_gets_its_own_folder(tmp_path):
    out = tmp_path / "reports"
    first = report.write(out, {}, [], seeds=[0], sweeps=SWEEPS, now=NOW)
    second = report.write(out, {}, [], seeds=[0], sweeps=SWEEPS, now=NOW)
    assert (first.name, second.name) == ("2026-11-24T1530Z", "2026-11-24T1530Z-2")
    assert (out / "latest").resolve() == second.resolve()


def test_latest_is_a_text_file_where_symlinks_fail(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("symlinks not supported")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    folder = report.write(tmp_path, {}, [], seeds=[0], sweeps=SWEEPS, now=NOW)
    assert (tmp_path / "latest").read_text() == f"runs/{folder.name}\n"


def test_a_figure_that_raises_is_named_not_fatal(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(figures, "layerwise", bug)
    folder = report.write(tmp_path, {}, [], seeds=[0], sweeps=SWEEPS, now=NOW)
    doc = json.loads((folder / "verdicts.json").read_text())
    assert doc["figures"]["layerwise.png"]["error"] == "RuntimeError: a bug"
    assert doc["figures"]["training.png"]["error"] is None
    assert "**Could not draw layerwise.png:** RuntimeError: a bug" in (folder / "report.md").read_text()
    assert (folder / "layerwise.png").stat().st_size > 0


# --- ncsim report: from the store -------------------------------------------------------------------


def test_collect_runs_looks_runs_up_by_their_suite_key(tiny, tmp_path):
    store = RunStore(tmp_path / "store")
    record = tiny.runs["adam"][0].record
    store.save(Record(suite.config("adam", 1).key(), record.meta, record.arrays))
    runs, missing = report.collect_runs(store, [0, 1], names=("standard", "adam"), vary_data_seed=False)
    assert [r.label for r in runs["adam"]] == ["adam-s1"] and runs["standard"] == []
    assert missing == [RunId("standard", 0), RunId("standard", 1), RunId("adam", 0)]


def test_from_an_empty_store_says_what_is_missing(tmp_path, capsys):
    folder = report.from_store(RunStore(tmp_path / "store"), tmp_path / "reports", seeds="0,1")
    printed = capsys.readouterr().out
    for label in ("standard-s0-d0", "standard-s1-d1", "adam-s0-d0", "lbfgs-s1-d1", "no-wd-s0-d0", "mse-s1-d1"):
        assert f"run {label} (not in the run store)" in printed
    md = (folder / "report.md").read_text()
    assert "no claims session recorded" in md and "standard-s1-d1 (not in the run store)" in md
    doc = json.loads((folder / "verdicts.json").read_text())
    assert doc["session"] is None and doc["claims"] == [] and doc["seeds"] == [0, 1]
    assert set(doc["figures"]) == set(report.FIGURES) - {"verdicts.png"}  # no session, no verdicts to draw
    assert not (folder / "verdicts.png").exists()


def test_from_store_takes_the_newest_session_verdicts(tmp_path):
    out = tmp_path / "reports"
    old = report.write(
        out,
        {},
        [],
        outcomes=OUTCOMES[:1],
        session={**SESSION, "finished": "2026-11-24T10:00:00Z"},
        seeds=[0],
        sweeps=SWEEPS,
        now=NOW,
    )
    new = report.write(
        out,
        {},
        [],
        outcomes=OUTCOMES,
        session={**SESSION, "finished": "2026-11-24T11:00:00Z"},
        seeds=[0],
        sweeps=SWEEPS,
        now=datetime(2026, 11, 24, 9, tzinfo=timezone.utc),
    )
    assert old.name > new.name  # the folder name does not decide: the session's end time does
    folder = report.from_store(RunStore(tmp_path / "store"), out, seeds=[0])
    doc = json.loads((folder / "verdicts.json").read_text())
    assert doc["summary"] == report.counts(OUTCOMES)
    assert doc["session"]["verdicts_from"] == str(new / "verdicts.json")
    assert "figures redrawn from the run store now" in (folder / "report.md").read_text()
    # A later `ncsim report` finds the same session again, not the copy's own write time.
    again = json.loads((report.from_store(RunStore(tmp_path / "store"), out, seeds=[0]) / "verdicts.json").read_text())
    assert again["summary"] == doc["summary"] and again["session"] == doc["session"]


def test_cli_report_command(tmp_path, capsys):
    rc = main(["report", "--cache-dir", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--seeds", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "run standard-s3-d3 (not in the run store)" in out and "report written to" in out
    assert (tmp_path / "out" / "latest" / "report.md").is_file()


# --- the pytest plugin, end to end ------------------------------------------------------------------

SYNTHETIC_CLAIMS = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_holds(claim_check):
    claim_check("nc1_end_max", 0.01, seed=0, run="synthetic-s0")

def test_fails(claim_check):
    claim_check("nc1_end_max", 1.0, seed=1, run="synthetic-s1")

@pytest.mark.xfail(strict=True, reason="known not to reproduce")
def test_expected_failure(claim_check):
    claim_check("nc1_end_max", 2.0, seed=0, run="synthetic-s0")

@pytest.mark.xfail(strict=True, reason="should fail but holds")
def test_unexpected_pass(claim_check):
    claim_check("nc1_end_max", 0.001, seed=2, run="synthetic-s2")

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

def test_setup_error(broken):
    pass
"""


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a fresh process, as a user runs it (the report is written at the very end)."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "NCSIM_CACHE": str(project / "store"),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--seeds", "0", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_project(root: Path) -> Path:
    """A project (the suite's plugin comes from its entry point) with a synthetic claims file (nothing trains)
    and a plain test."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "claims").mkdir()
    (root / "claims" / "tolerances.toml").write_text((ROOT / "claims" / "tolerances.toml").read_text())
    (root / "claims" / "test_synthetic.py").write_text(textwrap.dedent(SYNTHETIC_CLAIMS))
    (root / "other").mkdir()
    (root / "other" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    return root


def test_plugin_writes_the_report_after_claims(tmp_path):
    project = write_project(tmp_path)
    result = run_pytest(project, "claims", "--report-dir", "out")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "report written to" in result.stdout
    (folder,) = (project / "out" / "runs").iterdir()
    assert (project / "out" / "latest").resolve() == folder.resolve()
    doc = json.loads((folder / "verdicts.json").read_text())
    assert doc["summary"] == {"passed": 1, "xpassed": 0, "failed": 1, "xfail": 1, "xpass": 1, "skipped": 1, "error": 1}
    assert doc["session"]["exitstatus"] == 1 and doc["seeds"] == [0]
    (claim,) = doc["claims"]
    tests = {t["nodeid"].split("::")[1]: t for t in claim["tests"]}
    assert tests["test_fails"]["checks"][0]["measured"] == 1.0 and not tests["test_fails"]["checks"][0]["holds"]
    assert tests["test_expected_failure"]["reason"] == "known not to reproduce"
    assert tests["test_skipped"]["reason"] == "not today"
    assert "fixture broke" in tests["test_setup_error"]["reason"]
    assert claim["kind"] == "cnn" and claim["status"] == "does not reproduce"
    assert claim["verdict"] == (
        "does not reproduce: nc1_end_max [synthetic-s1 s1]; error before deciding: test_setup_error; passes although "
        "a strict xfail (which fails the suite): nc1_end_max [synthetic-s2 s2]; 1 of 5 checks reproduce; 1 does not "
        "(strict xfail, expected): nc1_end_max [synthetic-s0 s0]: known not to reproduce; 1 skipped"
    )
    assert (folder / "verdicts.png").stat().st_size > 5000
    md = (folder / "report.md").read_text()
    assert "6 tests: 1 passed, 1 failed, 1 xfail, 1 xpass, 1 skipped, 1 error." in md
    assert "standard-s0-d0 (not in the run store)" in md


@pytest.mark.parametrize("args", [("other",), ("claims", "--no-report")], ids=["no-claims", "no-report"])
def test_plugin_writes_nothing_without_claims_or_with_no_report(pytester, monkeypatch, args):
    monkeypatch.setenv("NCSIM_CACHE", str(pytester.path / "store"))
    write_project(pytester.path)
    result = pytester.runpytest_inprocess(*args, "--seeds", "0", "--report-dir", "out")
    assert result.ret == (0 if args == ("other",) else 1)
    assert not (pytester.path / "out").exists()


@pytest.mark.parametrize(
    "error, lines",
    [
        (RuntimeError("disk full"), ["*could not write the report: Traceback*", "RuntimeError: disk full"]),  # a bug
        (
            OSError(28, "No space left on device"),  # the environment: one line
            ["could not write the report: OSError: [[]Errno 28[]] No space left on device"],
        ),
    ],
)
def test_a_report_that_cannot_be_written_is_printed_and_fails_the_session(pytester, monkeypatch, error, lines):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setenv("NCSIM_CACHE", str(pytester.path / "store"))
    monkeypatch.setattr(report, "from_session", broken)
    write_project(pytester.path)
    result = pytester.runpytest_inprocess("claims", "-k", "holds", "--seeds", "0", "--report-dir", "out")
    result.assert_outcomes(passed=1, deselected=5)
    assert result.ret == REPORT_FAILED != 0
    result.stdout.fnmatch_lines(lines)
    assert ("Traceback" in result.stdout.str()) == isinstance(error, RuntimeError)


def test_a_session_reads_only_the_configurations_its_checks_name():
    tests = [
        RecordedTest("claims/test_x.py::t[adam-c]", "passed", checks=[check(config="adam", against="standard")]),
        RecordedTest("claims/test_ufm_y.py::t[u]", "passed", checks=[ufm_check()]),
    ]
    assert report.session_configs(tests) == ("standard", "adam")
    assert report.session_configs(None) == report.session_configs([]) == suite.CLAIM_CONFIGS


def test_a_comparison_figure_none_of_whose_configurations_was_asked_for_is_not_drawn():
    makers = report.figure_makers({"standard": []}, [RunId("adam", 0)], sweeps={})
    assert "optimizers.png" in makers and "training.png" in makers
    assert not {"ablation.png", "losses.png", "label_noise.png", "imbalance.png", "transfer.png"} & set(makers)
    everything = report.figure_makers({}, [RunId(name, 0) for name in suite.CLAIM_CONFIGS], sweeps={})
    assert set(report.FIGURE_TABLES) <= set(everything)


def test_a_session_draws_the_figures_its_claims_declare(tiny, probe_cache):
    tests = [
        outcome(
            f"{TPT}[standard-tpt_fraction_max]",
            records=[check(TPT_FRACTION, (0.5, 0.44, 0.52), claim="test_terminal_phase", figures=["training.png"])],
        )
    ]
    assert set(report.figure_makers(tiny.runs, outcomes=tests, sweeps=SWEEPS)) == {"verdicts.png", "training.png"}


def test_a_figure_is_declared_once_and_every_figure_a_claim_names_is_declared():
    """The registry is the one list of figures: the titles, the comparison tables and the figures drawn
    outside forked processes derive from it, and each claim file's FIGURES names registered files."""
    import importlib

    files = [f.file for f in report.REGISTRY]
    assert list(report.FIGURES) == files and len(set(files)) == len(files)
    assert report.RUNS_THE_NETWORK == {"geometry.png", "imbalance.png", "transfer.png"}
    for name, table in report.FIGURE_TABLES.items():
        assert set(suite.figure_configs(table)) <= set(suite.CLAIM_CONFIGS), name
    for path in sorted((Path(__file__).resolve().parent.parent / "claims").glob("test_*.py")):
        named = getattr(importlib.import_module(f"claims.{path.stem}"), "FIGURES", ())
        assert set(named) <= set(report.FIGURES), (path.name, sorted(set(named) - set(report.FIGURES)))
