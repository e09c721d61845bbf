"""Tests for the `ncsim` command (ncsim.cli), called in-process; one subprocess test of the entry point."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ncsim.runs
from ncsim import train as train_mod
from ncsim.cli import main, parse_overrides
from ncsim.spec import SpecError, load_specs, presets
from ncsim.store import RunStore

pytestmark = pytest.mark.usefixtures("no_home_cache", "single_thread")

# The standard preset cut down to about a second: 1 epoch on 300 signals at width 12.
TINY_STANDARD = ["--preset", "standard", "--set", "epochs=1", "--set", "train_size=300", "--set", "width=12"]
TINY_FILE = 'name = "filerun"\nepochs = 1\ntrain_size = 200\nwidth = 12\neval_schedule = "none"\nlayer_schedule = "none"\n'


def train_args(root, *args) -> list[str]:
    return ["train", *args, "--cache-dir", str(root), "--quiet", "--threads", "1"]


def standard_key() -> str:
    (spec,) = load_specs("standard", {"epochs": 1, "train_size": 300, "width": 12})
    return spec.key()


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

    monkeypatch.setattr(ncsim.runs, "train", fail)
    monkeypatch.setattr(train_mod, "train", fail)


# --- train ------------------------------------------------------------------------------------------

def test_train_preset_exits_zero_and_stores_the_run(trained):
    root, rc, _ = trained
    assert rc == 0
    assert RunStore(root).keys() == [standard_key()]


def test_train_prints_a_summary_with_tpt_and_nc1(trained):
    root, _, out = trained
    assert out.startswith(f"run standard-s0  key {standard_key()}  status ok")
    tpt = RunStore(root).load(standard_key()).meta["tpt_epoch"]
    assert f"TPT epoch: {'never' if tpt is None else tpt}   final train error" in out
    assert "final train error" in out and "epochs 1/1" in out
    nc1 = [line for line in out.splitlines() if line.split()[:1] == ["nc1"]]
    assert len(nc1) == 1 and len(nc1[0].split()) == 4  # metric, train, test, init
    assert "[from store]" not in out


def test_train_again_is_served_from_the_store(trained, capsys, no_training):
    root, _, first = trained
    assert main(train_args(root, *TINY_STANDARD)) == 0
    out = capsys.readouterr().out
    assert out.startswith("[from store] run standard-s0")
    # The same summary apart from the marker (timings included: they are the stored ones).
    assert out[len("[from store] "):] == first


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
    assert capsys.readouterr().out.startswith("[from store] run standard-s0")


# --- show -------------------------------------------------------------------------------------------

def test_show_lists_the_stored_run(trained, capsys):
    root, _, _ = trained
    assert main(["show", "--cache-dir", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    fields = lines[0].split()
    assert fields[:3] == [standard_key(), "standard-s0", "ok"] and "NC1" in fields


def test_show_a_key_prefix_prints_the_summary(trained, capsys):
    root, _, first = trained
    assert main(["show", standard_key()[:6], "--cache-dir", str(root)]) == 0
    assert capsys.readouterr().out == first


def test_show_a_label_prints_the_summary(trained, capsys):
    root, _, first = trained
    assert main(["show", "standard-s0", "--cache-dir", str(root)]) == 0
    assert capsys.readouterr().out == first


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


# --- errors: exit code 2, a message naming the problem, nothing trained ------------------------------

@pytest.mark.parametrize("args, fragments", [
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
], ids=["optimizer", "lr-zero", "lr-negative", "epochs-zero", "epochs-bool", "even-kernel", "schedule",
        "unknown-key", "unknown-data-key", "set-without-value", "unknown-preset", "preset-and-file", "neither"])
def test_bad_train_command_exits_2_before_training(cache_dir, capsys, no_training, args, fragments):
    assert main(train_args(cache_dir, *args)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("ncsim: error: ")
    for fragment in fragments:
        assert fragment in captured.err, fragment
    assert captured.out == "" and RunStore(cache_dir).keys() == []


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


# --- parse_overrides --------------------------------------------------------------------------------

def test_overrides_are_parsed_as_toml_values():
    got = parse_overrides(["lr=1e-3", "epochs=3", "batch_norm=false", "optimizer=adam",
                           "eval_schedule=every:4", 'name="x y"'])
    assert got == {"lr": 1e-3, "epochs": 3, "batch_norm": False, "optimizer": "adam",
                   "eval_schedule": "every:4", "name": "x y"}


def test_data_overrides_go_to_the_data_table():
    assert parse_overrides(["data.seed=3", "data.shear_scale=0.5", "seed=1"]) == \
           {"data": {"seed": 3, "shear_scale": 0.5}, "seed": 1}


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
    for word in ("train", "show", "report", "--cache-dir"):
        assert word in done.stdout
