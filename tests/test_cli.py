"""Tests for the `ncsim` command (ncsim.cli), called in-process; one subprocess test of the entry point."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ncsim import __version__, suite
from ncsim import train as train_mod
from ncsim.cli import LIST_FIELDS, main, parse_overrides
from ncsim.spec import SpecError, load_specs, presets
from ncsim.store import Record, RunStore
from ncsim.train import train as real_train  # bound before `no_training` replaces the module attribute
from ncsim.trajectory import Trajectory

pytestmark = pytest.mark.usefixtures("no_home_cache", "single_thread")

# The standard preset cut down to about a second: 1 epoch on 300 signals at width 12.
TINY_STANDARD = ["--preset", "standard", "--set", "epochs=1", "--set", "train_size=300", "--set", "width=12"]
TINY_FILE = (
    'name = "filerun"\nepochs = 1\ntrain_size = 200\nwidth = 12\neval_schedule = "none"\nlayer_schedule = "none"\n'
)


def train_args(root, *args) -> list[str]:
    threads = [] if "--threads" in args else ["--threads", "1"]
    return ["train", *args, "--cache-dir", str(root), "--quiet", *threads]


def standard_key() -> str:
    (spec,) = load_specs("standard", {"epochs": 1, "train_size": 300, "width": 12})
    return spec.key()


def tiny_label(**changes) -> str:
    """The label of the tiny standard run (with `changes`): named apart from the suite's standard-s0."""
    (spec,) = load_specs("standard", {"epochs": 1, "train_size": 300, "width": 12, **changes})
    return suite.named_apart(spec).label()


LABEL = tiny_label()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_cache):
    """A store in which `ncsim train` trained the tiny standard run once: (root, exit code, stdout)."""
    root = tmp_path_factory.mktemp("cli-store")
    shutil.copytree(data_cache / "data", root / "data")
    import torch

    threads = torch.get_num_threads()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            rc = main(train_args(root, *TINY_STANDARD))
    finally:
        torch.set_num_threads(threads)
    return root, rc, out.getvalue()


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything trains."""

    def fail(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(train_mod, "train", fail)


# --- train ------------------------------------------------------------------------------------------


def test_train_preset_exits_zero_and_stores_the_run(trained):
    root, rc, _ = trained
    assert rc == 0
    assert RunStore(root).keys() == [standard_key()]


def test_train_prints_a_summary_with_tpt_and_nc1(trained):
    root, _, out = trained
    assert out.startswith(f"run {LABEL}  key {standard_key()}  status ok")
    tpt = Trajectory(RunStore(root).load(standard_key())).tpt_epoch
    assert f"TPT epoch: {'never' if tpt is None else tpt}   final train error" in out
    assert "final train error" in out and "epochs 1/1" in out
    nc1 = [line for line in out.splitlines() if line.split()[:1] == ["nc1"]]
    assert len(nc1) == 1 and len(nc1[0].split()) == 4  # metric, train, test, init
    assert "[from store]" not in out


def test_train_again_is_served_from_the_store(trained, capsys, no_training):
    root, _, first = trained
    assert main(train_args(root, *TINY_STANDARD)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"[from store] run {LABEL}")
    # The same summary apart from the marker (timings included: they are the stored ones).
    assert out[len("[from store] ") :] == first


def test_train_a_toml_file(cache_dir, tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(TINY_FILE)
    assert main(train_args(cache_dir, str(path))) == 0
    out = capsys.readouterr().out
    assert out.startswith("run filerun-s0") and "status ok" in out and "TPT epoch:" in out
    assert RunStore(cache_dir).keys() == [load_specs(path)[0].key()]


def test_train_file_with_seeds_trains_each(cache_dir, tmp_path, capsys):
    path = tmp_path / "seeds.toml"
    path.write_text(TINY_FILE.replace("epochs = 1", "epochs = 1\nseeds = [0, 1]"))
    assert main(train_args(cache_dir, str(path))) == 0
    out = capsys.readouterr().out
    assert "run filerun-s0" in out and "run filerun-s1" in out
    assert len(RunStore(cache_dir).keys()) == 2


def test_train_honours_ncsim_cache_without_cache_dir(trained, monkeypatch, capsys, no_training):
    root, _, _ = trained
    monkeypatch.setenv("NCSIM_CACHE", str(root))
    assert main(["train", *TINY_STANDARD, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"[from store] run {LABEL}")


# --- show -------------------------------------------------------------------------------------------


def test_show_lists_the_stored_run_under_a_header(trained, capsys):
    root, _, _ = trained
    assert main(["show", "--cache-dir", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["key", "label", "status", "epochs", "TPT", "train", "NC1", "test", "error"]
    fields = lines[1].split()
    t = Trajectory(RunStore(root).read(standard_key()))
    assert fields == [
        standard_key(),
        LABEL,
        "ok",
        "1",
        str(t.tpt_epoch or "-"),
        format(t.final("train.nc1"), ".3g"),
        format(t.final("test_error"), ".4f"),
    ]


def test_show_a_key_prefix_prints_the_summary(trained, capsys):
    root, _, first = trained
    assert main(["show", standard_key()[:6], "--cache-dir", str(root)]) == 0
    assert capsys.readouterr().out == first


def test_show_a_label_prints_the_summary(trained, capsys):
    root, _, first = trained
    assert main(["show", LABEL, "--cache-dir", str(root)]) == 0
    assert capsys.readouterr().out == first


def test_show_names_the_precision_and_the_kernels_that_trained_the_run(trained, tmp_path, data_cache, capsys):
    root, _, first = trained
    assert "\n  precision: fp32 (CPU kernels " in first
    shutil.copytree(data_cache / "data", tmp_path / "data")
    assert main(train_args(tmp_path, *TINY_STANDARD, "--set", "precision=bf16-mixed")) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("  precision: "))
    assert line.startswith("  precision: bf16-mixed (CPU kernels ") and "AVX-512 BF16 " in line and "AMX " in line


def test_cache_dir_before_the_subcommand(trained, capsys):
    root, _, _ = trained
    assert main(["--cache-dir", str(root), "show"]) == 0
    assert standard_key() in capsys.readouterr().out


def test_show_honours_ncsim_cache(trained, monkeypatch, capsys):
    root, _, _ = trained
    monkeypatch.setenv("NCSIM_CACHE", str(root))
    assert main(["show"]) == 0
    assert standard_key() in capsys.readouterr().out


def test_show_an_empty_store(tmp_path, capsys):
    assert main(["show", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("no runs stored in")


def test_show_an_unknown_run_is_an_error(trained, capsys):
    root, _, _ = trained
    assert main(["show", "zzzz", "--cache-dir", str(root)]) == 2
    assert "no stored run matches 'zzzz'" in capsys.readouterr().err


def json_out(capsys):
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


def csv_out(capsys) -> list[dict]:
    captured = capsys.readouterr()
    assert captured.err == ""
    return list(csv.DictReader(io.StringIO(captured.out)))


def same_number(cell, value) -> bool:
    """A JSON or CSV cell holds `value` exactly (null or "" for NaN)."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return cell in (None, "")
    return float(cell) == value


def test_show_json_lists_the_run_with_its_final_values(trained, capsys):
    root, _, _ = trained
    assert main(["show", "--json", "--cache-dir", str(root)]) == 0
    (entry,) = json_out(capsys)
    t = Trajectory(RunStore(root).read(standard_key()))
    assert list(entry) == list(LIST_FIELDS)
    assert {k: entry[k] for k in ("key", "kind", "label", "status", "epochs", "tpt_epoch", "reason")} == {
        "key": standard_key(),
        "kind": "run",
        "label": LABEL,
        "status": "ok",
        "epochs": 1,
        "tpt_epoch": t.tpt_epoch,
        "reason": None,
    }
    for name in ("train_error", "test_error", "train.nc1", "train.nc2_etf_distance", "train.nc3", "train.nc4"):
        assert same_number(entry[name], t.final(name)), name


def test_show_csv_has_the_json_records(trained, capsys):
    root, _, _ = trained
    assert main(["show", "--json", "--cache-dir", str(root)]) == 0
    (entry,) = json_out(capsys)
    assert main(["show", "--csv", "--cache-dir", str(root)]) == 0
    (row,) = csv_out(capsys)
    assert list(row) == list(LIST_FIELDS)
    for k, v in entry.items():
        assert row[k] == ("" if v is None else str(v)) or same_number(row[k], v), k


def test_show_json_of_a_damaged_store_lists_each_record_once(damaged_store, capsys):
    root, keys = damaged_store
    assert main(["show", "--json", "--cache-dir", str(root)]) == 0
    entries = {e["key"]: e for e in json_out(capsys)}
    assert len(entries) == len(keys) and set(entries) == set(keys.values())
    assert entries["corrupt"]["kind"] == "unreadable" and "corrupt.npz" in entries["corrupt"]["reason"]
    assert entries["isdir"]["kind"] == "unreadable" and "not a regular file" in entries["isdir"]["reason"]
    assert entries["nometrics"]["status"] == "diverged" and entries["nometrics"]["train.nc1"] is None
    assert entries["bare"]["kind"] == "run" and entries["bare"]["label"] is None
    assert main(["show", "--csv", "--cache-dir", str(root)]) == 0
    assert sorted(r["key"] for r in csv_out(capsys)) == sorted(keys.values())


def test_show_json_of_an_empty_store_is_an_empty_list(tmp_path, capsys):
    assert main(["show", "--json", "--cache-dir", str(tmp_path)]) == 0
    assert json_out(capsys) == []


@pytest.mark.parametrize("query", ["label", "key-prefix"])
def test_show_one_run_as_json_gives_its_trajectory(trained, capsys, query):
    root, _, _ = trained
    query = standard_key()[:5] if query == "key-prefix" else LABEL
    assert main(["show", query, "--json", "--cache-dir", str(root)]) == 0
    rows = json_out(capsys)
    t = Trajectory(RunStore(root).read(standard_key()))
    assert [r["epoch"] for r in rows] == t.epochs.tolist() == [0, 1]
    for i, row in enumerate(rows):
        assert (row["label"], row["key"]) == (LABEL, standard_key())
        assert set(row) == {"label", "key", "epoch", *t.columns()}
        for name in t.columns():
            assert same_number(row[name], float(t[name][i])), name


def test_show_one_run_as_csv_gives_its_trajectory(trained, capsys):
    root, _, _ = trained
    assert main(["show", LABEL, "--csv", "--cache-dir", str(root)]) == 0
    rows = csv_out(capsys)
    t = Trajectory(RunStore(root).read(standard_key()))
    assert list(rows[0])[:3] == ["label", "key", "epoch"] and len(rows) == len(t.epochs)
    for i, row in enumerate(rows):
        for name in t.columns():
            assert same_number(row[name], float(t[name][i])), name


@pytest.mark.parametrize("name", ["corrupt", "bare"])
def test_show_one_record_without_a_trajectory_as_json_exits_2(damaged_store, capsys, name):
    root, keys = damaged_store
    assert main(["show", keys[name], "--json", "--cache-dir", str(root)]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, f"record {keys[name]}")
    assert captured.out == ""


def test_show_an_unknown_run_names_close_matches(trained, capsys):
    root, _, _ = trained
    assert main(["show", LABEL.replace("-s0", "-s9"), "--cache-dir", str(root)]) == 2
    assert_one_line_error(
        capsys.readouterr().err, f"no stored run matches '{LABEL.replace('-s0', '-s9')}'", f"close matches: {LABEL}"
    )


# --- errors: exit code 2, a message naming the problem, nothing trained ------------------------------


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--preset", "standard", "--set", "optimizer=adamx"], ["adamx", "sgd, adam, adamw, lbfgs"]),
        (["--preset", "standard", "--set", "lr=0"], ["lr=0.0 must be > 0"]),
        (["--preset", "standard", "--set", "lr=-1e-3"], ["lr=-0.001 must be > 0"]),
        (["--preset", "standard", "--set", "epochs=0"], ["epochs=0 must be >= 1"]),
        (["--preset", "standard", "--set", "epochs=true"], ["epochs=True is not a valid int"]),
        (["--preset", "standard", "--set", "kernel_size=4"], ["kernel_size=4"]),
        (["--preset", "standard", "--set", "eval_schedule=weekly"], ["eval_schedule='weekly'", "every:K"]),
        (["--preset", "standard", "--set", "bogus=1"], ["bogus", "valid keys", "optimizer", "layer_schedule"]),
        (["--preset", "standard", "--set", "data.bogus=1"], ["bogus", "template_len"]),
        (["--preset", "standard", "--set", "lr"], ["key=value", "'lr'"]),
        (["--preset", "nope"], ["unknown preset 'nope'", *presets()]),
        (["--preset", "standard", "missing.toml"], ["exactly one"]),
        ([], ["exactly one", "standard"]),
        (["--preset", "standard", "--set", "seed=-1"], ["seed=-1 must be in"]),
        (["--preset", "standard", "--set", "seed=1180591620717411303424"], ["seed=1180591620717411303424"]),
        (["--preset", "standard", "--set", "lr=inf"], ["lr=inf must be finite"]),
        (["--preset", "standard", "--set", "weight_decay=1e308"], ["weight_decay=1e+308"]),
        (["--preset", "standard", "--set", "data=3"], ["data=3 must be a table"]),
        (["--preset", "standard", "--set", "data.scale_coeff=1e308"], ["data.scale_coeff=1e+308"]),
        (["--preset", "standard", "--set", "data.template_len=10000000"], ["data.template_len=10000000"]),
        (["--preset", "standard", "--set", "data.padding=[-1, 5]"], ["data.padding=[-1, 5]"]),
        (["--preset", "standard", "--set", "width=100000"], ["width=100000"]),
        (["--preset", "standard", "--set", "epochs=1000000000"], ["epochs=1000000000"]),
        (["--preset", "standard", "--set", "eval_schedule=log:99999999999"], ["eval_schedule='log:99999999999'"]),
        (["--preset", "standard", "--threads", "-1"], ["--threads -1 must be in [1, "]),
        (["--preset", "standard", "--threads", "0"], ["--threads 0 must be in [1, "]),
        (["--preset", "standard", "--threads", "100000"], ["--threads 100000 must be in [1, "]),
    ],
    ids=[
        "optimizer",
        "lr-zero",
        "lr-negative",
        "epochs-zero",
        "epochs-bool",
        "even-kernel",
        "schedule",
        "unknown-key",
        "unknown-data-key",
        "set-without-value",
        "unknown-preset",
        "preset-and-file",
        "neither",
        "seed-negative",
        "seed-huge",
        "lr-inf",
        "wd-huge",
        "data-not-a-table",
        "scale-coeff",
        "template-len",
        "padding",
        "width-huge",
        "epochs-huge",
        "schedule-k-huge",
        "threads-negative",
        "threads-zero",
        "threads-huge",
    ],
)
def test_bad_train_command_exits_2_before_training(cache_dir, capsys, no_training, args, fragments):
    assert main(train_args(cache_dir, *args)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("ncsim: error: ")
    for fragment in fragments:
        assert fragment in captured.err, fragment
    assert captured.out == "" and RunStore(cache_dir).keys() == []


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("ncsim: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, fragment


def test_non_utf8_toml_file_is_named(cache_dir, tmp_path, capsys, no_training):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    assert main(train_args(cache_dir, str(path))) == 2
    assert_one_line_error(capsys.readouterr().err, "latin1.toml: invalid TOML: not UTF-8")


@pytest.mark.parametrize(
    "text, fragment",
    [("seeds = 5\n", "seeds=5"), ("runs = [1]\n", "runs=[1]"), ("runs = []\n", "runs=[]"), ("base = 3\n", "base=3")],
)
def test_malformed_toml_file_exits_2(cache_dir, tmp_path, capsys, no_training, text, fragment):
    path = tmp_path / "m.toml"
    path.write_text(text)
    assert main(train_args(cache_dir, str(path))) == 2
    assert_one_line_error(capsys.readouterr().err, "m.toml: ", fragment)


def test_missing_toml_file_is_named(cache_dir, tmp_path, capsys, no_training):
    missing = tmp_path / "nowhere.toml"
    assert main(train_args(cache_dir, str(missing))) == 2
    assert f"no such spec file {str(missing)!r}" in capsys.readouterr().err


def test_invalid_toml_file_is_named(cache_dir, tmp_path, capsys, no_training):
    path = tmp_path / "broken.toml"
    path.write_text("epochs = \n")
    assert main(train_args(cache_dir, str(path))) == 2
    assert "broken.toml: invalid TOML" in capsys.readouterr().err


def test_bad_value_in_a_toml_file_is_named(cache_dir, tmp_path, capsys, no_training):
    path = tmp_path / "bad.toml"
    path.write_text('optimizer = "adamx"\n')
    assert main(train_args(cache_dir, str(path))) == 2
    assert "bad.toml: unknown optimizer 'adamx'" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"ncsim {__version__}\n"


def test_ctrl_c_exits_130_with_one_line(cache_dir, capsys, monkeypatch):
    def interrupted(spec, cache_dir=None, progress=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train", interrupted)
    assert main(train_args(cache_dir, *TINY_STANDARD)) == 130
    captured = capsys.readouterr()
    assert captured.err == "ncsim: interrupted\n" and captured.out == ""
    assert RunStore(cache_dir).keys() == []


def test_cuda_without_cuda_exits_2_before_training(cache_dir, capsys, no_training, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(train_args(cache_dir, *TINY_STANDARD, "--set", "device=cuda")) == 2
    assert_one_line_error(
        capsys.readouterr().err,
        f"run {tiny_label(device='cuda')} asks for device 'cuda'",
        "no CUDA device",
        'set device = "cpu"',
    )
    assert RunStore(cache_dir).keys() == []


def test_a_stored_cuda_run_is_served_without_cuda(trained, cache_dir, capsys, no_training, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (spec,) = load_specs("standard", {"epochs": 1, "train_size": 300, "width": 12, "device": "cuda"})
    record = stored_record(trained[0])
    RunStore(cache_dir).save(Record(spec.key(), {**record.meta, "spec": spec.to_dict()}, record.arrays))
    assert main(train_args(cache_dir, *TINY_STANDARD, "--set", "device=cuda")) == 0
    assert capsys.readouterr().out.startswith(f"[from store] run {tiny_label(device='cuda')}")


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    return path


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["report", "--seeds", "a,b"], ["--seeds: seeds take integers >= 0 and ranges a-b", "'a,b'"]),
        (["report", "--seeds", "3-1"], ["--seeds: seed range '3-1' runs backwards"]),
        (["report", "--seeds", "0-99999999"], ["--seeds: '0-99999999' gives more than 10000 seeds"]),
        (["train", *TINY_STANDARD, "--threads", "-1"], ["--threads -1 must be in [1, "]),
        (["sweep", "standard", "--threads", "-1"], ["--threads -1 must be in [1, "]),
        (["sweep", "standard", "--seeds", "x"], ["--seeds: seeds take integers"]),
        (["sweep", "nope"], ["unknown configuration or preset 'nope'", "adamw", "optimizers"]),
        (["sweep", "nope.toml"], ["no such spec file 'nope.toml'"]),
        (["sweep", "standard", "--set", "lr=0"], ["lr=0.0 must be > 0"]),
        (["show", "zzzz"], ["no stored run matches 'zzzz'"]),
    ],
    ids=[
        "report-seeds-letters",
        "report-seeds-backwards",
        "report-seeds-huge",
        "train-threads",
        "sweep-threads",
        "sweep-seeds",
        "sweep-unknown",
        "sweep-missing-file",
        "sweep-bad-set",
        "show-unknown",
    ],
)
def test_user_errors_exit_2_with_one_line(cache_dir, capsys, no_training, argv, fragments):
    assert main([*argv, "--cache-dir", str(cache_dir)]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, *fragments)
    assert captured.out == "" and RunStore(cache_dir).keys() == []


@pytest.mark.parametrize(
    "argv",
    [
        ["train", *TINY_STANDARD, "--quiet"],
        ["show"],
        ["show", "--json"],
        ["report"],
        ["sweep", "standard", "--seeds", "0"],
    ],
    ids=["train", "show", "show-json", "report", "sweep"],
)
@pytest.mark.parametrize("below", [False, True], ids=["is-a-file", "under-a-file"])
def test_a_cache_dir_that_is_a_file_exits_2(a_file, capsys, no_training, argv, below):
    root = a_file / "store" if below else a_file
    assert main(["--cache-dir", str(root), *argv]) == 2
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, f"run store {str(root)!r}: {str(a_file)!r} is not a directory")
    assert captured.out == "" and a_file.read_text() == "x"


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--threads", "many"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2


def test_narrow_width_trains(cache_dir, capsys):
    # The brief's own example: width 8 leaves conv1's pooled tap with 8 < C-1 features.
    assert main(train_args(cache_dir, *TINY_STANDARD[:-1], "width=8")) == 0
    assert "status ok" in capsys.readouterr().out


def test_too_narrow_width_exits_2_before_training(cache_dir, capsys, no_training):
    assert main(train_args(cache_dir, *TINY_STANDARD[:-1], "width=2")) == 2
    assert "width=2" in capsys.readouterr().err


# --- a damaged store: listed and flagged, never fatal --------------------------------------------------


def stored_record(trained_root) -> Record:
    return RunStore(trained_root).read(standard_key())


def without_metrics(record: Record, **meta) -> Record:
    """The record as a run that diverged at epoch 0 left it: no metric columns."""
    arrays = {
        k: v
        for k, v in record.arrays.items()
        if k in ("epoch", "fit_loss", "fit_error", "fit_lr") or k.startswith("weights.")
    }
    return Record(
        record.key, {**record.meta, "status": "diverged", "status_reason": "epoch 1: training loss nan", **meta}, arrays
    )


@pytest.fixture
def damaged_store(trained, tmp_path):
    """A store with a good record, one without metric columns, one whose path is a directory, one
    corrupt file and one record whose meta lacks every field: {name: key}."""
    root = tmp_path / "damaged"
    store = RunStore(root)
    good = stored_record(trained[0])
    store.save(good)
    store.save(without_metrics(Record("nometrics", good.meta, good.arrays)))
    store.save(Record("bare", {}, {}))
    (root / "isdir.npz").mkdir()
    (root / "corrupt.npz").write_bytes(b"not a zip at all")
    return root, {"good": good.key, "nometrics": "nometrics", "bare": "bare", "isdir": "isdir", "corrupt": "corrupt"}


def test_show_lists_every_record_of_a_damaged_store(damaged_store, capsys):
    root, keys = damaged_store
    assert main(["show", "--cache-dir", str(root)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert lines[0].startswith("key ") and len(lines) == 1 + len(keys)
    assert set(rows) == set(keys.values()) and captured.err == ""
    assert rows[keys["good"]].split()[:3] == [keys["good"], LABEL, "ok"]
    assert rows["nometrics"].split()[1:3] == [LABEL, "diverged"] and rows["nometrics"].split()[-2:] == ["-", "-"]
    assert rows["bare"].split()[1:3] == ["?", "?"]
    assert "unreadable" in rows["isdir"] and "not a regular file" in rows["isdir"]
    assert "unreadable" in rows["corrupt"] and "corrupt.npz: " in rows["corrupt"]
    assert (root / "corrupt.npz").is_file() and (root / "isdir.npz").is_dir()  # show changes nothing


@pytest.mark.parametrize(
    "name, fragments",
    [
        (
            "nometrics",
            [
                "status diverged",
                "reason: epoch 1: training loss nan",
                "final train error -",
                "(no metric columns in this record)",
                "s total",
            ],
        ),
        ("bare", ["run ?  key bare  status ?", "epochs ?/?", "TPT epoch: never", "(no metric columns"]),
        ("isdir", ["isdir  unreadable:", "not a regular file"]),
        ("corrupt", ["corrupt  unreadable:"]),
    ],
)
def test_show_one_damaged_record_prints_what_it_has(damaged_store, capsys, name, fragments):
    root, keys = damaged_store
    assert main(["show", keys[name], "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    for fragment in fragments:
        assert fragment in out, fragment


def test_train_serves_a_record_without_metric_columns_and_exits_3(trained, cache_dir, capsys, no_training):
    RunStore(cache_dir).save(without_metrics(stored_record(trained[0])))
    assert main(train_args(cache_dir, *TINY_STANDARD)) == 3
    captured = capsys.readouterr()
    assert captured.out.startswith(f"[from store] run {LABEL}") and "status diverged" in captured.out
    assert captured.err == f"ncsim: run {LABEL} diverged: epoch 1: training loss nan\n"


def test_a_run_that_stops_in_training_exits_3_with_its_reason(trained, cache_dir, capsys, monkeypatch):
    record = without_metrics(
        stored_record(trained[0]), status="degenerate", status_reason="epoch 2: train set: identical class means"
    )
    monkeypatch.setattr(train_mod, "train", lambda spec, cache_dir=None, progress=False: record)
    assert main(train_args(cache_dir, *TINY_STANDARD)) == 3
    captured = capsys.readouterr()
    assert captured.out.startswith(f"run {LABEL}") and "status degenerate" in captured.out
    assert captured.err == f"ncsim: run {LABEL} degenerate: epoch 2: train set: identical class means\n"
    assert RunStore(cache_dir).keys() == [record.key]  # stored: the record says how the run ended


def test_from_store_marker_is_decided_under_the_lock(trained, cache_dir, capsys, no_training):
    # The record appears while `ncsim train` waits for the lock (another process trained it): it was
    # not trained here, so it is marked, although the store did not hold it when the command started.
    import threading

    import filelock

    record, store = stored_record(trained[0]), RunStore(cache_dir)
    with filelock.FileLock(cache_dir / f"{record.key}.lock"):
        worker = threading.Thread(target=lambda: main(train_args(cache_dir, *TINY_STANDARD)))
        worker.start()
        worker.join(0.5)
        from ncsim.store import write_npz

        write_npz(store.path(record.key), record.arrays, {"key": record.key, "meta": record.meta})
    worker.join(30)
    assert capsys.readouterr().out.startswith(f"[from store] run {LABEL}")


def test_refresh_is_not_marked_from_store(trained, cache_dir, capsys, monkeypatch):
    record = stored_record(trained[0])
    RunStore(cache_dir).save(record)
    monkeypatch.setattr(train_mod, "train", lambda spec, cache_dir=None, progress=False: record)
    assert main(train_args(cache_dir, *TINY_STANDARD, "--refresh")) == 0
    assert capsys.readouterr().out.startswith(f"run {LABEL}")


def test_failed_final_write_exits_2_naming_the_fallback(trained, cache_dir, tmp_path, capsys, monkeypatch):
    from tests.test_store import fail_store_writes

    record = stored_record(trained[0])
    monkeypatch.setattr(train_mod, "train", lambda spec, cache_dir=None, progress=False: record)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    fail_store_writes(monkeypatch, cache_dir)
    assert main(train_args(cache_dir, *TINY_STANDARD)) == 2
    (fallback,) = tmp_path.glob("ncsim-*.npz")
    assert_one_line_error(
        capsys.readouterr().err,
        f"could not write record {cache_dir / record.key}.npz",
        "No space left on device",
        f"kept in {fallback}",
    )
    assert RunStore(cache_dir).keys() == []


def test_unwritable_store_exits_2_before_training(cache_dir, capsys, no_training, monkeypatch):
    def no_lock(self, key):
        raise PermissionError(13, "Permission denied", str(self.root / f"{key}.lock"))

    monkeypatch.setattr(RunStore, "_lock", no_lock)
    assert main(train_args(cache_dir, *TINY_STANDARD)) == 2
    assert_one_line_error(capsys.readouterr().err, "Permission denied", ".lock")


def test_read_only_store_serves_train_and_show(trained, capsys, no_training, monkeypatch):
    monkeypatch.setattr(RunStore, "_lock", lambda self, key: pytest.fail("took a lock to read"))
    root = trained[0]
    assert main(train_args(root, *TINY_STANDARD)) == 0
    assert main(["show", "--cache-dir", str(root)]) == 0
    assert capsys.readouterr().out.startswith(f"[from store] run {LABEL}")


# --- parse_overrides --------------------------------------------------------------------------------


def test_overrides_are_parsed_as_toml_values():
    got = parse_overrides(
        ["lr=1e-3", "epochs=3", "batch_norm=false", "optimizer=adam", "eval_schedule=every:4", 'name="x y"']
    )
    assert got == {
        "lr": 1e-3,
        "epochs": 3,
        "batch_norm": False,
        "optimizer": "adam",
        "eval_schedule": "every:4",
        "name": "x y",
    }


def test_data_overrides_go_to_the_data_table():
    assert parse_overrides(["data.seed=3", "data.shear_scale=0.5", "seed=1"]) == {
        "data": {"seed": 3, "shear_scale": 0.5},
        "seed": 1,
    }


@pytest.mark.parametrize("item", ["lr", "=3", ""])
def test_override_without_key_or_value_is_a_spec_error(item):
    with pytest.raises(SpecError, match="key=value"):
        parse_overrides([item])


# --- the installed entry point ----------------------------------------------------------------------


def test_entry_point_help():
    exe = shutil.which("ncsim", path=str(Path(sys.executable).parent)) or shutil.which("ncsim")
    assert exe, "the ncsim entry point is not installed"
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for word in ("train", "show", "sweep", "report", "--cache-dir", "--version"):
        assert word in done.stdout
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"ncsim {__version__}\n")


def test_report_draws_the_runs_of_a_users_spec(cache_dir, tmp_path, capsys, no_training):
    # The user's run is stored (trained by hand here); the report draws it as "standard", and says the
    # derived configurations it does not find.
    import json

    from ncsim import suite

    path = tmp_path / "mine.toml"
    path.write_text(TINY_FILE)
    configs = suite.user_configurations(path)
    standard = configs.spec(suite.RunId("standard", 0, 0))  # the data seed follows the training seed
    RunStore(cache_dir).save(real_train(standard, cache_dir=cache_dir))
    out = tmp_path / "reports"
    assert main(["report", "--spec", str(path), "--seeds", "0", "--out", str(out), "--cache-dir", str(cache_dir)]) == 0
    doc = json.loads((out / "latest" / "verdicts.json").read_text())
    assert doc["runs"]["standard"] == ["filerun-s0-d0"] and doc["runs"]["adam"] == []
    assert "run adam-s0-d0 (not in the run store)" in capsys.readouterr().out  # its configuration, not drawn


def test_report_with_a_bad_spec_file_exits_2(cache_dir, tmp_path, capsys):
    path = tmp_path / "two.toml"
    path.write_text(TINY_FILE + "seeds = [0, 1]\n")
    assert main(["report", "--spec", str(path), "--cache-dir", str(cache_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncsim: error: ") and err.count("\n") == 1
