"""Tests for the report folder and verdict table (ncsim.report) and its pytest hook (ncsim/pytest_plugin/report.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ncsim import report, suite
from ncsim.cli import main
from ncsim.report import RecordedTest
from ncsim.store import Record, RunStore
from ncsim.suite import RunId
from tests.test_figures import SWEEPS, tiny  # noqa: F401 - `tiny` is a fixture (its runs are trained once)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 15, 30, 12, tzinfo=timezone.utc)
SESSION = {"finished": "2026-11-24T15:30:00Z", "command": "pytest claims", "exitstatus": 1}


def check(tolerance="nc1_end_max", measured=0.01, holds=True, seed=0, run="standard-s0", note="", figures=()):
    return {"tolerance": tolerance, "statistic": "NC1 at the last epoch", "measured": measured, "op": "<=",
            "threshold": 0.05, "seed": seed, "run": run, "source": "Papyan, Han & Donoho, PNAS 2020, Fig. 6",
            "holds": holds, "note": note, "figures": list(figures)}


def outcome(nodeid, result="passed", reason="", checks=None) -> RecordedTest:
    return RecordedTest(nodeid, result, reason, checks if checks is not None else [])


NC1 = "claims/test_nc1_variability.py::test_nc1_collapses"
TPT = "claims/test_terminal_phase.py::test_reaches_zero_train_error"
WL = "claims/test_webb_lowe_cnn.py::test_webb_lowe_on_collapsed_features"
UFM = "claims/test_ufm_mse.py::test_converges"
XFAIL_REASON = "NC3 of the exact Webb-Lowe classifier is 1.9 | not 0"

OUTCOMES = [
    outcome(f"{NC1}[standard-s0-nc1_end_max]", checks=[check(seed=0)]),
    outcome(f"{NC1}[standard-s1-nc1_end_max]", "failed", "AssertionError: NC1 ...",
            [check(measured=0.2, holds=False, seed=1, run="standard-s1")]),
    outcome(f"{NC1}[standard-s2-nc1_end_max]", "failed", "AssertionError: NC1 ...",
            [check(measured=float("nan"), holds=False, seed=2, run="standard-s2")]),
    *[outcome(f"{TPT}[standard-s{s}]", checks=[check("tpt_fraction_max", 0.5, seed=s, run=f"standard-s{s}",
                                                      figures=["training.png"])])
      for s in (0, 1, 2)],
    *[outcome(f"{WL}[standard-s{s}-nc3]", "xfail", XFAIL_REASON, [check("wl_cnn_nc3_max", 1.9, False, s)])
      for s in (0, 1, 2)],
    *[outcome(f"{WL}[standard-s{s}-nc4]", checks=[check("wl_cnn_nc4_max", 0.0, True, s)]) for s in (0, 1, 2)],
    outcome(f"{UFM}[gd-seed0]", "skipped", "not today"),
    outcome(f"{UFM}[gd-seed1]", "error", "RuntimeError: fixture broke"),
    outcome(f"{UFM}[adam-seed0]", "xpass", "[XPASS(strict)] expected to fail",
            [check("ufm_grad_norm_max", 1e-9, True, None, "ufm-mse-adam")]),
]


# --- the verdict table ------------------------------------------------------------------------------

def test_counts_by_outcome():
    assert report.counts(OUTCOMES) == {"passed": 7, "failed": 2, "xfail": 3, "xpass": 1, "skipped": 1, "error": 1}


def test_claims_are_grouped_by_file_with_a_verdict_each():
    table = {c["file"]: c for c in report.verdicts(OUTCOMES)}
    assert list(table) == sorted(table)
    assert table["claims/test_terminal_phase.py"]["verdict"] == "reproduces on all seeds (0, 1, 2)"
    assert table["claims/test_nc1_variability.py"]["verdict"] == "fails on seeds 1, 2"
    assert table["claims/test_webb_lowe_cnn.py"]["verdict"] == (
        f"reproduces on all seeds (0, 1, 2); strict xfail on seeds 0, 1, 2: {XFAIL_REASON}")
    ufm = table["claims/test_ufm_mse.py"]["verdict"]
    assert ufm == ("error on gd-seed1; passes although a strict xfail (which fails the suite) on ufm-mse-adam; "
                   "1 skipped")
    assert table["claims/test_nc1_variability.py"]["counts"]["failed"] == 2
    assert [len(c["tests"]) for c in table.values()] == [3, 3, 3, 6]


def test_claims_map_to_the_figures_they_declare():
    declared = ["nc_metrics.png", "geometry.png"]
    tests = [outcome(f"{NC1}[standard-s{s}-nc1_end_max]", checks=[check(seed=s, figures=declared)]) for s in (0, 1)]
    assert report.figures_for(tests) == declared
    assert report.figures_for([outcome(f"{UFM}[gd-seed0]", checks=[check("ufm_grad_norm_max")])]) == []
    assert report.figures_for([outcome(f"{UFM}[gd-seed0]", "error")]) == []


def test_markdown_has_summary_rows_and_links():
    doc = {"folder": "2026-11-24T1530Z", "created": "2026-11-24T15:30:12Z", "seeds": [0, 1, 2], "store": "/s",
           "session": SESSION, "summary": report.counts(OUTCOMES), "claims": report.verdicts(OUTCOMES),
           "not_drawn": ["adam-s1 (not in the run store)"], "figures_left_out": {},
           "figures": {name: {"title": title, "error": None} for name, title in report.FIGURES.items()}}
    md = report.markdown(doc)
    assert "**15 tests: 7 passed, 2 failed, 3 xfail, 1 xpass, 1 skipped, 1 error**" in md
    assert "adam-s1 (not in the run store)" in md
    assert "| [test_terminal_phase](#claimstest_terminal_phasepy) | reproduces on all seeds (0, 1, 2) | 3 passed " \
           "| [training.png](training.png) |" in md
    for name in report.FIGURES:
        assert f"]({name})" in md and f"![{report.FIGURES[name]}]({name})" in md
    section = md.split("### claims/test_nc1_variability.py")[1].split("###")[0]
    rows = [line for line in section.splitlines() if line.startswith("| test_nc1")]
    assert len(rows) == 3
    assert rows[1].split(" | ")[1:6] == ["**failed**", "`nc1_end_max`", "0.2", "<= 0.05", "1"]
    assert "- `nc1_end_max`: NC1 at the last epoch" in section
    assert rows[2].split(" | ")[3] == "nan"
    assert "Papyan, Han & Donoho, PNAS 2020, Fig. 6" in rows[0]
    # a "|" inside a cell is escaped, so the row keeps its columns
    wl = [line for line in md.splitlines() if line.startswith("| test_webb_lowe") and "xfail" in line][0]
    assert "1.9 \\| not 0" in wl


# --- the folder -------------------------------------------------------------------------------------

def test_write_a_report_folder_from_tiny_runs(tiny, tmp_path):
    out = tmp_path / "reports"
    folder = report.write(out, tiny.runs, [RunId("adam", 1)], outcomes=OUTCOMES, session=SESSION, seeds=[0, 1],
                          store_root=tiny.root, sweeps=SWEEPS, now=NOW)
    assert folder == out / "runs" / "2026-11-24T1530Z"
    for name in report.FIGURES:
        assert (folder / name).stat().st_size > 5000
    md = (folder / "report.md").read_text()
    doc = json.loads((folder / "verdicts.json").read_text())
    assert doc["summary"] == report.counts(OUTCOMES) and doc["session"] == SESSION
    assert doc["figures"]["geometry.png"] == {"title": "Geometry at the end of training", "error": None}
    assert doc["not_drawn"] == ["adam-s1 (not in the run store)"]
    assert doc["runs"]["standard"] == ["standard-s0", "standard-s1"]
    nan_check = doc["claims"][0]["tests"][2]["checks"][0]
    assert nan_check["measured"] == "nan"  # JSON has no NaN: written as a string
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

    monkeypatch.setattr(report.figures, "layerwise", bug)
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
    runs, missing = report.collect_runs(store, [0, 1], names=("standard", "adam"))
    assert [r.label for r in runs["adam"]] == ["adam-s1"] and runs["standard"] == []
    assert missing == [RunId("standard", 0), RunId("standard", 1), RunId("adam", 0)]


def test_from_an_empty_store_says_what_is_missing(tmp_path, capsys):
    folder = report.from_store(RunStore(tmp_path / "store"), tmp_path / "reports", seeds="0,1")
    printed = capsys.readouterr().out
    for label in ("standard-s0", "standard-s1", "adam-s0", "lbfgs-s1", "no-wd-s0", "mse-s1"):
        assert f"run {label} (not in the run store)" in printed
    md = (folder / "report.md").read_text()
    assert "no claims session recorded" in md and "standard-s1 (not in the run store)" in md
    doc = json.loads((folder / "verdicts.json").read_text())
    assert doc["session"] is None and doc["claims"] == [] and doc["seeds"] == [0, 1]
    assert set(doc["figures"]) == set(report.FIGURES)


def test_from_store_takes_the_newest_session_verdicts(tmp_path):
    out = tmp_path / "reports"
    old = report.write(out, {}, [], outcomes=OUTCOMES[:1], session={**SESSION, "finished": "2026-11-24T10:00:00Z"},
                       seeds=[0], sweeps=SWEEPS, now=NOW)
    new = report.write(out, {}, [], outcomes=OUTCOMES, session={**SESSION, "finished": "2026-11-24T11:00:00Z"},
                       seeds=[0], sweeps=SWEEPS, now=datetime(2026, 11, 24, 9, tzinfo=timezone.utc))
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
    assert "run standard-s3 (not in the run store)" in out and "report written to" in out
    assert (tmp_path / "out" / "latest" / "report.md").is_file()


# --- the pytest plugin, end to end ------------------------------------------------------------------

SYNTHETIC_CLAIMS = '''
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
    claim_check("nc1_end_max", 0.0, seed=2, run="synthetic-s2")

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

def test_setup_error(broken):
    pass
'''


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a fresh process, as a user runs it (the report is written at the very end)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "NCSIM_CACHE": str(project / "store")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--seeds", "0", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)


def write_project(root: Path) -> Path:
    """A project with the suite's plugins, a synthetic claims file (nothing trains) and a plain test."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text('pytest_plugins = ["ncsim.pytest_plugin"]\n')
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
    assert doc["summary"] == {"passed": 1, "failed": 1, "xfail": 1, "xpass": 1, "skipped": 1, "error": 1}
    assert doc["session"]["exitstatus"] == 1 and doc["seeds"] == [0]
    (claim,) = doc["claims"]
    tests = {t["nodeid"].split("::")[1]: t for t in claim["tests"]}
    assert tests["test_fails"]["checks"][0]["measured"] == 1.0 and not tests["test_fails"]["checks"][0]["holds"]
    assert tests["test_expected_failure"]["reason"] == "known not to reproduce"
    assert tests["test_skipped"]["reason"] == "not today"
    assert "fixture broke" in tests["test_setup_error"]["reason"]
    assert claim["verdict"].startswith("fails on seed 1; error on test_setup_error")
    md = (folder / "report.md").read_text()
    assert "**6 tests: 1 passed, 1 failed, 1 xfail, 1 xpass, 1 skipped, 1 error**" in md
    assert "standard-s0 (not in the run store)" in md


@pytest.mark.parametrize("args", [("other",), ("claims", "--no-report")], ids=["no-claims", "no-report"])
def test_plugin_writes_nothing_without_claims_or_with_no_report(pytester, monkeypatch, args):
    monkeypatch.setenv("NCSIM_CACHE", str(pytester.path / "store"))
    write_project(pytester.path)
    result = pytester.runpytest_inprocess(*args, "--seeds", "0", "--report-dir", "out")
    assert result.ret == (0 if args == ("other",) else 1)
    assert not (pytester.path / "out").exists()


def test_a_report_that_cannot_be_written_is_printed_not_fatal(pytester, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setenv("NCSIM_CACHE", str(pytester.path / "store"))
    monkeypatch.setattr(report, "from_session", broken)
    write_project(pytester.path)
    result = pytester.runpytest_inprocess("claims", "-k", "holds", "--seeds", "0", "--report-dir", "out")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*could not write the report:*", "RuntimeError: disk full"])
