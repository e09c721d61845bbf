"""Failure paths a newcomer meets: the report folder, where it lands and whose verdicts it shows; run
labels; the thread count; empty and odd spec files; the store's location and permissions; the CLI's
output to a closed pipe and of hostile names; one --seeds syntax for pytest and ncsim."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ncsim import export, figures, report, suite
from ncsim import store as store_mod
from ncsim.api import load_run
from ncsim.cli import main
from ncsim.pytest_plugin import runs as plugin
from ncsim.report import RecordedTest
from ncsim.spec import RunSpec, SpecError, load_specs, seedless_key, to_toml
from ncsim.store import Record, RunStore
from ncsim.sweep import sweep_specs
from ncsim.trajectory import Trajectory
from tests.conftest import TINY
from tests.test_cli import assert_one_line_error
from tests.test_figures import check, tiny, tol  # noqa: F401 - `tiny` is a fixture (the runs are trained once)
from tests.test_plugin import write_claims
from tests.test_report import ROOT

pytest_plugins = ["pytester"]

HOLDS = """
    def test_holds(claim_check):
        claim_check("loose", 0.5, seed=0, run="x-s0")
"""


def run_pytest(cwd: Path, *args: str, store: Path) -> subprocess.CompletedProcess:
    """pytest in a fresh process started in `cwd`, as a user runs it."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "NCSIM_CACHE": str(store),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--seeds", "0", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- the report folder --------------------------------------------------------------------------------


def test_an_unwritable_report_dir_is_a_usage_error_before_anything_runs(pytester, tmp_path):
    write_claims(pytester.path, HOLDS)
    (tmp_path / "a-file").write_text("")
    for where, why in (
        ("/proc/nope", "cannot make a folder in '/proc'"),
        (str(tmp_path / "a-file" / "reports"), "a-file' is not a directory"),
    ):
        result = pytester.runpytest_inprocess(
            "--seeds", "0", "--cache-dir", str(tmp_path / "store"), "--report-dir", where, "-p", "no:cacheprovider"
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        err = result.stderr.str()
        assert f"--report-dir {where}: cannot write the report there" in err and why in err, err
        assert "Traceback" not in err and "could not write the report" not in result.stdout.str()
        assert "passed" not in result.stdout.str()  # nothing ran


def test_the_report_lands_where_pytest_is_run_wherever_the_spec_lives(tmp_path):
    """A claims folder without an ini file, its spec in a sibling folder or under /dev/shm: pytest's
    rootdir guess moves to a common parent, the report stays in the claims folder's reports/."""
    project = write_claims(tmp_path / "project" / "my_claims", HOLDS)
    places = [tmp_path / "elsewhere"]
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        places.append(Path(tempfile.mkdtemp(prefix="ncsim-test-", dir="/dev/shm")))
    for place in places:
        place.mkdir(parents=True, exist_ok=True)
        try:
            (place / "mine.toml").write_text('name = "mine"\nepochs = 3\n')
            result = run_pytest(project, "--spec", str(place / "mine.toml"), store=tmp_path / "store")
            assert result.returncode == 0, result.stdout + result.stderr
            doc = json.loads((project / "reports" / "latest" / "verdicts.json").read_text())
            assert doc["session"]["spec"]["file"] == str(place / "mine.toml") and doc["summary"]["passed"] == 1
            assert not (tmp_path / "reports").exists() and not (place / "reports").exists()
        finally:
            shutil.rmtree(place, ignore_errors=True)
            shutil.rmtree(project / "reports", ignore_errors=True)


XFAIL_CLAIMS = """
    import pytest

    def test_holds(claim_check):
        claim_check("loose", 0.5, seed=0, run="x-s0")

    @pytest.mark.xfail(strict=False, reason="borderline")
    def test_borderline(claim_check):
        claim_check("loose", 0.5, seed=0, run="x-s0")
"""


def test_the_report_quotes_its_command_and_counts_xpassed_as_pytest_does(pytester, tmp_path):
    write_claims(pytester.path / "my claims", XFAIL_CLAIMS)
    args = [
        "my claims",
        "--seeds",
        "0",
        "--cache-dir",
        str(tmp_path / "store"),
        "--report-dir",
        "out",
        "-k",
        "holds or borderline",
        "-p",
        "no:cacheprovider",
    ]
    result = pytester.runpytest_inprocess(*args)
    result.assert_outcomes(passed=1, xpassed=1)
    doc = json.loads((pytester.path / "out" / "latest" / "verdicts.json").read_text())
    assert doc["session"]["command"] == shlex.join(["pytest", *args])
    assert shlex.split(doc["session"]["command"])[1:] == args  # it can be pasted back
    assert doc["summary"]["passed"] == 1 and doc["summary"]["xpassed"] == 1 and doc["summary"]["xpass"] == 0
    (claim,) = doc["claims"]
    assert claim["status"] == "reproduces"  # a borderline check that cleared reproduces
    md = (pytester.path / "out" / "latest" / "report.md").read_text()
    assert f"Verdicts from `{shlex.join(['pytest', *args])}`" in md


# --- `ncsim report` shows one session's verdicts, or none ---------------------------------------------


def test_ncsim_report_never_shows_another_sessions_verdicts(tmp_path):
    out, store = tmp_path / "reports", RunStore(tmp_path / "store")
    spec = tmp_path / "mine.toml"
    spec.write_text('name = "mine"\nepochs = 3\n')
    configs = suite.user_configurations(spec)
    session = {
        "finished": "2026-11-24T10:00:00Z",
        "command": "pytest claims --spec mine.toml --seeds 0,1,2",
        "exitstatus": 0,
        "vary_data_seed": True,
        "spec": {"file": str(spec), "run": configs.specs["standard"].to_dict()},
    }
    tests = [RecordedTest("claims/test_x.py::t[standard-c]", "passed")]
    report.write(out, {}, [], outcomes=tests, session=session, seeds=[0, 1, 2], sweeps={})
    # other seeds, the suite's own configurations, the data seed fixed: no verdicts, and it says so
    for kwargs in (
        {"seeds": [7], "configs": configs},
        {"seeds": [0, 1, 2]},
        {"seeds": [0, 1, 2], "configs": configs, "vary_data_seed": False},
    ):
        doc = json.loads((report.from_store(store, out, **kwargs) / "verdicts.json").read_text())
        assert doc["session"] is None and doc["summary"] is None and doc["claims"] == [], kwargs
    md = (report.from_store(store, out, seeds=[7], configs=configs) / "report.md").read_text()
    assert "seeds 7" in md and report.NO_SESSION in md
    # the same seeds and spec: that session's verdicts
    doc = json.loads((report.from_store(store, out, seeds=[0, 1, 2], configs=configs) / "verdicts.json").read_text())
    assert doc["session"]["command"] == session["command"] and doc["summary"]["passed"] == 1


# --- labels -----------------------------------------------------------------------------------------------


def test_a_run_that_differs_from_a_suite_configuration_never_takes_its_label(cache_dir, tmp_path, capsys):
    standard = suite.config("standard", 0)
    changes = ({"epochs": 2}, {"epochs": 1}, {"lr": 1e-300})
    for overrides in changes:
        (spec,) = sweep_specs("standard", [0], vary_data_seed=False, overrides=overrides)
        assert spec.label() == f"standard-{seedless_key(spec)[:6]}-s0"
        assert suite.named_apart(load_specs("standard", overrides)[0]) == spec
    assert sweep_specs("standard", [0], vary_data_seed=False) == [standard] and suite.named_apart(standard) == standard
    # a file or a RunSpec named after a configuration is told apart too
    by_hand = RunSpec(name="standard", epochs=1, train_size=200, width=12, eval_schedule="none", layer_schedule="none")
    assert suite.named_apart(by_hand).name.startswith("standard-")
    # what `ncsim train --preset standard --set ...` stores and prints
    path = tmp_path / "run.toml"
    path.write_text(to_toml(by_hand))
    assert main(["train", str(path), "--cache-dir", str(cache_dir), "--quiet"]) == 0
    store = RunStore(cache_dir)
    (key,) = store.keys()
    record = store.read(key)
    assert record.meta["label"] == suite.named_apart(by_hand).label()
    with pytest.raises(LookupError, match="no stored run matches 'standard-s0'"):
        load_run("standard-s0", cache_dir)
    # a record stored with the bare label (as runs were labelled before) answers to its own label only
    store.save(Record(key, {**record.meta, "label": "standard-s0"}, record.arrays))
    with pytest.raises(LookupError, match="no stored run matches 'standard-s0'"):
        load_run("standard-s0", cache_dir)
    assert load_run(suite.named_apart(by_hand).label(), cache_dir).key == key
    capsys.readouterr()
    assert main(["show", "--cache-dir", str(cache_dir)]) == 0
    assert "standard-s0 " not in capsys.readouterr().out


# --- the thread count -------------------------------------------------------------------------------------


def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(TINY))
    return path


def test_ncsim_train_trains_on_one_thread_unless_asked(cache_dir, tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        spec = RunSpec(name="one", epochs=1, train_size=200, width=12, eval_schedule="none", layer_schedule="none")
        path = tmp_path / "one.toml"
        path.write_text(to_toml(spec))
        assert main(["train", str(path), "--cache-dir", str(cache_dir), "--quiet"]) == 0
        assert torch.get_num_threads() == 2  # the process's setting is left as it was
    finally:
        torch.set_num_threads(before)
    assert RunStore(cache_dir).read(spec.key()).meta["timings"]["threads"] == 1
    capsys.readouterr()
    assert main(["show", spec.key(), "--cache-dir", str(cache_dir)]) == 0
    assert ", 1 threads" in capsys.readouterr().out


def test_a_store_hit_on_another_thread_count_is_reported(cache_dir, tmp_path, tiny_record, capsys):
    meta = {**tiny_record.meta, "timings": {**tiny_record.meta["timings"], "threads": 2}}
    RunStore(cache_dir).save(Record(tiny_record.key, meta, tiny_record.arrays))
    assert main(["train", str(tiny_file(tmp_path)), "--cache-dir", str(cache_dir), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("ncsim: warning: run tiny-s0") and err.count("\n") == 1, err
    assert "trained on 2 threads, not 1" in err
    with pytest.warns(suite.ThreadCountWarning, match="trained on 2 threads, not 3"):
        suite.obtain_run(TINY, RunStore(cache_dir), threads=3)


# --- spec files ---------------------------------------------------------------------------------------------


def test_an_empty_spec_is_refused(tmp_path, cache_dir, capsys, pytester):
    empty = tmp_path / "empty.toml"
    empty.write_bytes(b"")
    with pytest.raises(SpecError, match="empty.toml: empty spec"):
        load_specs(empty)
    assert main(["train", str(empty), "--cache-dir", str(cache_dir), "--quiet"]) == 2
    assert_one_line_error(capsys.readouterr().err, "empty spec (no key set)")
    assert RunStore(cache_dir).keys() == []
    write_claims(pytester.path, HOLDS)
    result = pytester.runpytest_inprocess(
        "--spec", str(empty), "--cache-dir", str(cache_dir), "--no-report", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "empty spec" in result.stderr.str()


def test_a_spec_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'name = "bom"\nepochs = 3\n')
    (spec,) = load_specs(path)
    assert (spec.name, spec.epochs) == ("bom", 3)


def test_run_spec_defaults_are_not_called_the_suites_regime():
    doc = RunSpec.__doc__
    assert "not the suite's default regime" in doc and "standard" in doc
    assert (RunSpec().lr, RunSpec().schedule, RunSpec().model) == (0.1, "multistep", "cnn1d")  # as it says


# --- the store's location and files -----------------------------------------------------------------------


def test_an_empty_cache_dir_counts_as_unset(no_home_cache, tmp_path, monkeypatch, capsys):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert RunStore("").root == store_mod.default_cache_dir() == no_home_cache
    assert main(["--cache-dir", "", "show"]) == 0
    assert capsys.readouterr().out == f"no runs stored in {no_home_cache}\n"
    assert list((tmp_path / "work").iterdir()) == []


def test_pytest_cache_dir_that_is_a_file_is_one_usage_error(pytester, tmp_path):
    write_claims(pytester.path, HOLDS)
    (tmp_path / "a-file").write_text("")
    result = pytester.runpytest_inprocess(
        "--seeds", "0", "--cache-dir", str(tmp_path / "a-file"), "--no-report", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--cache-dir: run store" in err and "is not a directory" in err and "Traceback" not in err


def test_writing_a_file_over_a_directory_touches_nothing_beside_it(tmp_path, monkeypatch):
    made = []
    real = store_mod.tempfile.mkstemp
    monkeypatch.setattr(store_mod.tempfile, "mkstemp", lambda *a, **k: made.append(k) or real(*a, **k))
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="folder"):
        export.atomic_write_text(tmp_path / "folder", "x")
    assert made == [] and sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_a_sweep_makes_its_store_folder_readable_as_its_records(tmp_path, monkeypatch, cache_dir):
    import ncsim.sweep

    monkeypatch.setattr(ncsim.sweep, "sweep", lambda *args, **kwargs: [])
    before = os.umask(0o077)
    try:
        assert main(["--cache-dir", str(tmp_path / "new" / "store"), "sweep", "standard", "--seeds", "0"]) == 0
    finally:
        os.umask(before)
    for folder in (tmp_path / "new", tmp_path / "new" / "store"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750, folder


# --- records --------------------------------------------------------------------------------------------------


def test_a_record_of_another_trainer_version_names_the_version(cache_dir, tiny_record):
    meta = {
        **tiny_record.meta,
        "spec": {**tiny_record.meta["spec"], "warmup": 5},
        "versions": {**tiny_record.meta["versions"], "ncsim": "9.9.0"},
        "trainer_version": 9,
    }
    RunStore(cache_dir).save(Record(tiny_record.key, meta, tiny_record.arrays))
    with pytest.raises(
        SpecError,
        match=r"written by ncsim 9\.9\.0, trainer version 9; this is ncsim .*, trainer "
        r"version 4, which cannot read its spec .*unknown spec key\(s\) \['warmup'\]",
    ):
        load_run(tiny_record.key, cache_dir)


def test_truncated_refuses_a_negative_epoch(tiny_record):
    t = Trajectory(tiny_record)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="integer >= 0"):
            t.truncated(bad)
    assert list(t.truncated(0).epochs) == [0]


# --- the CLI's output ------------------------------------------------------------------------------------------


def test_show_to_a_closed_pipe_exits_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = subprocess.Popen(
        [sys.executable, "-m", "ncsim", "--cache-dir", str(tmp_path / "store"), "show", "--csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    p.stdout.close()  # the reader is gone before anything is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == "", err


def test_show_escapes_control_characters_of_a_record(cache_dir, tiny_record, capsys):
    evil = "evil\nrun\x1b[2J"
    meta = {
        **tiny_record.meta,
        "spec": {**tiny_record.meta["spec"], "name": evil},
        "label": f"{evil}-s0",
        "status_reason": "a\rb",
    }
    RunStore(cache_dir).save(Record("evilkey", meta, tiny_record.arrays))
    for args in (["show"], ["show", "evilkey"]):
        assert main([*args, "--cache-dir", str(cache_dir)]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\r" not in out and "evil\\nrun\\x1b[2J" in out, out


def test_train_help_lists_cache_dir(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--cache-dir" in capsys.readouterr().out


# --- one --seeds syntax ------------------------------------------------------------------------------------------

RUN_CLAIM = """
    from ncsim.checks import Check

    CHECKS = (Check("loose", len),)
"""


def test_pytest_seeds_take_ranges_as_ncsim_does(pytester):
    write_claims(pytester.path, RUN_CLAIM)
    items, _ = pytester.inline_genitems("--seeds", "0-2,5", "-p", "no:cacheprovider")
    assert plugin.needed_runs(items) == [suite.RunId("standard", seed, seed) for seed in (0, 1, 2, 5)]


def test_repeated_seeds_are_a_usage_error(pytester, tmp_path, capsys):
    write_claims(pytester.path, RUN_CLAIM)
    result = pytester.runpytest_inprocess("--seeds", "0,0,0", "--co", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--seeds: seed(s) 0 given more than once in '0,0,0'" in result.stderr.str()
    capsys.readouterr()
    assert main(["report", "--seeds", "0,0,0", "--cache-dir", str(tmp_path / "s"), "--out", str(tmp_path)]) == 2
    assert_one_line_error(capsys.readouterr().err, "--seeds: seed(s) 0 given more than once")


# --- figures a reader can read ---------------------------------------------------------------------------------


def drawn(fig):
    """The figure laid out and drawn (Agg), and its renderer."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


@pytest.mark.parametrize("name", ["losses", "ablation", "label-noise"])
def test_contrast_panel_titles_fit_their_panels(name, tiny):
    fig = figures.contrasts(name, tiny.runs)
    renderer = drawn(fig)
    assert [sub.get_suptitle() for sub in fig.subfigs] == list(figures.contrast_table(name)["contrasts"].values())
    for sub in fig.subfigs:
        boxes = [ax.title.get_window_extent(renderer) for ax in sub.axes]
        assert all(0 <= box.x0 and box.x1 <= fig.bbox.x1 for box in boxes), name
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), name  # no title runs into the next
        for ax, box in zip(sub.axes, boxes):
            assert box.width <= ax.get_window_extent(renderer).width, ax.get_title()


def test_verdict_labels_are_legible_at_page_width():
    records = [
        check(
            tol(f"statistic_{i}_with_a_long_name_max", 0.05),
            (0.01 * (i % 7 + 1),) * 3,
            config=("standard", "label-smoothing")[i % 2],
            claim=f"test_claim_{i // 6}",
        )
        for i in range(40)
    ]
    trend = tol("trend_max", -0.8, scale="linear")  # a symlog panel over several decades
    records += [check(trend, values) for values in ((-0.99, -0.5, 0.3), (-0.8001,) * 3)]
    fig = figures.verdicts(records)
    assert fig.get_size_inches()[0] * figures.DPI <= 810
    renderer = drawn(fig)
    for ax in fig.axes:
        if not ax.get_yticklabels() or ax.get_label() == "<colorbar>":
            continue
        labels = ax.get_yticklabels() + [t for child in ax.child_axes for t in child.get_yticklabels()]
        assert min(label.get_fontsize() for label in labels) * figures.DPI / 72 >= 11  # px
        boxes = sorted((label.get_window_extent(renderer) for label in ax.get_yticklabels()), key=lambda b: -b.y1)
        assert all(a.y0 >= b.y1 for a, b in zip(boxes, boxes[1:]))  # rows do not overlap
        assert all(box.x0 >= 0 for box in boxes)
        for side in ("label1", "label2"):  # the axis labels below and above the panel
            texts = [getattr(tick, side) for tick in ax.xaxis.get_major_ticks()]
            ticks = sorted(
                (t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()), key=lambda b: b.x0
            )
            assert all(a.x1 <= b.x0 for a, b in zip(ticks, ticks[1:])), [t.get_text() for t in ax.get_xticklabels()]
