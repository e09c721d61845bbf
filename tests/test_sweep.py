"""Tests for many runs at once (ncsim.sweep and `ncsim sweep`): here, and on a Dask LocalCluster of two
worker processes on localhost, with tiny runs (2 epochs on 400 signals at width 12, no layer metrics)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import distributed
import pytest

from ncsim import suite
from ncsim import sweep as sweep_mod
from ncsim.cli import main
from ncsim.spec import RunSpec, load_specs, seedless_key
from ncsim.store import RunStore
from ncsim.sweep import parse_seed_list, sweep, sweep_specs

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.usefixtures("no_home_cache")

TINY = {"epochs": 2, "train_size": 400, "width": 12, "eval_schedule": "all", "layer_schedule": "none"}
TINY_SET = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={json.dumps(v)}")]
# A spec whose data cannot be made: the train set has 4000 signals (ncsim.data.load raises in the worker).
NO_DATA = {"train_size": 5000}


def tiny_specs(seeds) -> list[RunSpec]:
    return sweep_specs("standard", seeds, overrides=TINY)


def tiny_labels(seeds, **changes) -> list[str]:
    """The labels of the tiny standard runs (with `changes`): named apart from the suite's standard-s<seed>."""
    return [spec.label() for spec in sweep_specs("standard", seeds, overrides={**TINY, **changes})]


def failing(spec: RunSpec) -> RunSpec:
    return spec.replace(**NO_DATA)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on localhost, for the whole module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as c:
        yield c


@pytest.fixture
def root(cache_dir):
    """An empty store that already holds the generated data."""
    return cache_dir


def mtimes(root) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in root.glob("*.npz")}


def crash(spec_dict, store_root, threads):
    """A task that fails on the worker itself, as a task of a lost worker does (importable by workers)."""
    raise RuntimeError("worker lost")


# --- which runs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, seeds",
    [
        ("0-4", [0, 1, 2, 3, 4]),
        ("0,1,5", [0, 1, 5]),
        ("3", [3]),
        ("0-2,10,5", [0, 1, 2, 10, 5]),
        (" 7 - 8 , 9", [7, 8, 9]),
        ("2,", [2]),
    ],
)
def test_parse_seed_list(raw, seeds):
    assert parse_seed_list(raw) == seeds


@pytest.mark.parametrize(
    "raw, message",
    [
        ("a,b", "got 'a,b'"),
        ("-1", "got '-1'"),
        ("5-1", "'5-1' runs backwards"),
        ("", "no seeds in ''"),
        ("1.5", "got '1.5'"),
        ("0-10000", "gives more than 10000 seeds"),
        ("0,0,0", r"seed\(s\) 0 given more than once in '0,0,0'"),
        ("0-4,2,9,9", r"seed\(s\) 2, 9 given more than once"),
    ],
)
def test_parse_seed_list_rejects(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_seed_list(raw)


def test_sweep_specs_of_a_configuration_are_the_claims_specs():
    assert sweep_specs("adam", [3, 4]) == [suite.config(suite.RunId("adam", s, s)) for s in (3, 4)]
    assert sweep_specs("standard", [2], vary_data_seed=False) == [suite.config("standard", 2)]
    assert sweep_specs("standard") == [suite.config(suite.RunId("standard", s, s)) for s in suite.DEFAULT_SEEDS]


def test_sweep_specs_of_a_preset_take_each_run_at_each_seed():
    names = [s.name for s in load_specs("optimizers")]
    specs = sweep_specs("optimizers", [0, 1], overrides={"epochs": 3, "data": {"shear_scale": 0.5}})
    # each named apart from the suite's configuration of its name (ncsim.suite.named_apart)
    assert [(s.name.removesuffix(f"-{seedless_key(s)[:6]}"), s.seed) for s in specs] == [
        (n, seed) for n in names for seed in (0, 1)
    ]
    assert not {s.name for s in specs} & set(names)
    assert all(s.epochs == 3 and dict(s.data)["shear_scale"] == 0.5 for s in specs)


def test_sweep_specs_of_a_file_keep_its_seeds_unless_given(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text('name = "f"\nseeds = [4, 5]\n')
    assert [s.seed for s in sweep_specs(path)] == [4, 5]
    assert [s.seed for s in sweep_specs(path, [1, 2, 3])] == [1, 2, 3]
    assert [s.seed for s in sweep_specs(str(path), [1, 1])] == [1]  # one run per key


# --- here, one run after another --------------------------------------------------------------------


def test_local_sweep_trains_each_run_once_and_reports_a_failure(root):
    specs = tiny_specs([0, 1])
    L0, L1 = tiny_labels([0, 1])
    seen = []
    results = sweep([specs[0], failing(specs[1]), specs[1]], root, on_result=seen.append)
    assert seen == results
    assert [(r["label"], r["trained"], r["status"]) for r in results] == [
        (L0, True, "ok"),
        (L1, False, "failed"),
        (L1, True, "ok"),
    ]
    assert "SpecError: train_size=5000 exceeds the 4000 training signals" in results[1]["error"]
    assert RunStore(root).keys() == sorted(s.key() for s in specs)
    again = sweep(specs, root)
    assert [r["trained"] for r in again] == [False, False] and [r["status"] for r in again] == ["ok", "ok"]


def test_sweep_writes_group_readable_files_under_a_private_umask(tmp_path, data_cache):
    root = tmp_path / "shared" / "store"
    root.mkdir(parents=True)
    shutil.copytree(data_cache / "data", root / "data")
    before = os.umask(0o077)
    try:
        (result,) = sweep(tiny_specs([0]), root)
        assert os.umask(0o077) == 0o077  # the sweep left the process umask as it found it
    finally:
        os.umask(before)
    assert result["trained"]
    for path in [*root.glob("*.npz"), *root.glob("*.lock")]:
        assert path.stat().st_mode & stat.S_IRGRP, path


def test_an_invalid_spec_dict_is_a_failed_summary_named_after_it(root):
    result = sweep_mod.train_into_store({"name": "odd", "lr": -1}, str(root))
    assert (result["label"], result["key"], result["status"]) == ("odd", None, "failed")
    assert result["error"] == "SpecError: lr=-1.0 must be > 0 and <= 10"


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_sweep_with_threads_below_one_is_refused(root, threads):
    with pytest.raises(sweep_mod.SweepError, match=f"threads={threads!r} must be an integer >= 1"):
        sweep(tiny_specs([0]), root, threads=threads)


def test_a_failure_in_the_task_is_a_failed_summary_not_an_exception(root, monkeypatch):
    from ncsim import threads

    def broken(n):
        raise RuntimeError("no threads today")

    monkeypatch.setattr(threads, "limit_threads", broken)
    (result,) = sweep(tiny_specs([0]), root)
    assert result["status"] == "failed" and result["error"] == "RuntimeError: no threads today"
    assert result["label"] == tiny_labels([0])[0] and result["key"] == tiny_specs([0])[0].key()


# --- on a Dask LocalCluster -------------------------------------------------------------------------


def test_sweep_on_a_local_cluster(cluster, root):
    """6 runs land in the store, each trained once; a failing run is reported without losing the
    others; a second sweep trains nothing."""
    specs = tiny_specs(range(6))
    results = sweep([*specs[:3], failing(specs[3]), *specs[3:]], root, scheduler=cluster, threads=1)
    assert [r["label"] for r in results] == [s.label() for s in specs[:4]] + [s.label() for s in specs[3:]]
    bad = results[3]
    assert bad["status"] == "failed" and not bad["trained"] and "train_size=5000 exceeds" in bad["error"]
    good = [r for r in results if r is not bad]
    assert all(r["trained"] and r["status"] == "ok" and r["error"] is None for r in good)
    assert sorted(r["key"] for r in good) == RunStore(root).keys() == sorted(s.key() for s in specs)
    assert json.loads(json.dumps(results)) == results  # plain, JSON-able summaries
    first = mtimes(root)

    again = sweep(specs, root, scheduler=cluster, threads=1)
    assert [r["trained"] for r in again] == [False] * 6 and {r["status"] for r in again} == {"ok"}
    assert mtimes(root) == first


def test_a_client_is_left_open_and_a_lost_task_is_reported(cluster, root, monkeypatch):
    monkeypatch.setattr(sweep_mod, "train_into_store", crash)
    with distributed.Client(cluster) as client:
        (result,) = sweep(tiny_specs([0]), root, scheduler=client)
        assert result["status"] == "failed" and result["error"] == "RuntimeError: worker lost"
        assert result["label"] == tiny_labels([0])[0] and result["host"] is None
        assert client.status == "running"
    assert RunStore(root).keys() == []


def test_cli_sweep_on_a_scheduler_address(cluster, root, capsys):
    argv = [
        "sweep",
        "standard",
        "--seeds",
        "0-1",
        *TINY_SET,
        "--scheduler",
        cluster.scheduler_address,
        "--cache-dir",
        str(root),
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"sweep: 2 runs into {root} on {cluster.scheduler_address}"
    k0, k1 = (spec.key() for spec in tiny_specs([0, 1]))
    l0, l1 = tiny_labels([0, 1])
    assert sorted(line.split()[:3] for line in lines[1:3]) == [[l0, k0, "ok"], [l1, k1, "ok"]]
    assert all("trained in" in line for line in lines[1:3])
    assert lines[3] == "sweep: 2 runs: 2 trained, 0 found in the store, 0 stopped (diverged or degenerate), 0 failed"


# --- the command, here ------------------------------------------------------------------------------


def test_cli_sweep_here_then_again(root, capsys):
    argv = ["sweep", "standard", "--seeds", "0", *TINY_SET, "--cache-dir", str(root)]
    assert main(argv) == 0
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sweep: 1 runs into {root} here, one after another"
    assert "trained in" in out[1] and out[-2].endswith("ok       found in the store")
    assert out[-1] == "sweep: 1 runs: 0 trained, 1 found in the store, 0 stopped (diverged or degenerate), 0 failed"


def test_cli_sweep_with_a_failed_run_exits_1(root, capsys):
    argv = ["sweep", "standard", "--seeds", "0,1", *TINY_SET, "--set", "train_size=5000", "--cache-dir", str(root)]
    assert main(argv) == 1
    out = capsys.readouterr().out.splitlines()
    assert all("FAILED   SpecError: train_size=5000 exceeds" in line for line in out[1:3])
    assert out[-1].endswith("2 failed ({}, {})".format(*tiny_labels([0, 1], train_size=5000)))
    assert RunStore(root).keys() == []


def test_cli_sweep_of_cuda_without_cuda_exits_2_here(root, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["sweep", "standard", "--seeds", "0", *TINY_SET, "--set", "device=cuda", "--cache-dir", str(root)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "asks for device 'cuda'" in captured.err


def test_cli_sweep_with_an_unreachable_scheduler_exits_2(root, capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert (
            main(
                [
                    "sweep",
                    "standard",
                    "--seeds",
                    "0",
                    *TINY_SET,
                    "--scheduler",
                    "tcp://127.0.0.1:1",
                    "--cache-dir",
                    str(root),
                ]
            )
            == 2
        )
    err = capsys.readouterr().err
    assert err.startswith("ncsim: error: cannot reach the Dask scheduler 'tcp://127.0.0.1:1'") and err.count("\n") == 1
    assert RunStore(root).keys() == []


# --- pytest claims --scheduler: the session's runs trained on the scheduler before the checks -------

SCHEDULER_CLAIM = """
from ncsim.checks import Check

CHECKS = (Check("loose", lambda run: run.final("train.nc1"), configs=("standard", "adam")),)
"""
# The pytest process may not train: every run must come from the scheduler's workers.
NO_LOCAL_TRAINING = """
import ncsim.train

def _refuse(*args, **kwargs):
    raise AssertionError("trained in the pytest process, not on the scheduler")

ncsim.train.train = _refuse
"""


def test_pytest_scheduler_trains_the_sessions_runs_on_the_cluster(pytester, cluster, root):
    from tests.test_plugin import TOLERANCES, write_claims, write_spec

    write_claims(pytester.path / "claims", SCHEDULER_CLAIM, TOLERANCES)
    pytester.makeconftest(NO_LOCAL_TRAINING)
    spec = write_spec(pytester.path, "name = 'mine'\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    args = [
        "claims",
        "--spec",
        str(spec),
        "--seeds",
        "0,1",
        f"--cache-dir={root}",
        "--no-report",
        "-p",
        "no:cacheprovider",
    ]
    result = pytester.runpytest_subprocess(*args, "--scheduler", cluster.scheduler_address)
    result.assert_outcomes(passed=2)
    configs = suite.user_configurations(spec)
    wanted = {configs.spec(suite.RunId(c, s, s)).key() for c in ("standard", "adam") for s in (0, 1)}
    assert wanted <= set(RunStore(root).keys())
    # Without a scheduler the same session finds every run stored and trains nothing either.
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)


def test_pytest_scheduler_failure_is_named(pytester, root, monkeypatch):
    from tests.test_plugin import TOLERANCES, write_claims, write_spec

    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "2s")  # dask's default waits 30 s

    write_claims(pytester.path / "claims", SCHEDULER_CLAIM, TOLERANCES)
    spec = write_spec(pytester.path, "name = 'mine'\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    result = pytester.runpytest_subprocess(
        "claims",
        "--spec",
        str(spec),
        "--seeds",
        "0",
        f"--cache-dir={root}",
        "--no-report",
        "-p",
        "no:cacheprovider",
        "--scheduler",
        "tcp://127.0.0.1:9",
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*--scheduler tcp://127.0.0.1:9: cannot reach the Dask scheduler*"])


def test_a_sweep_on_the_cluster_leaves_nothing_for_pytest_claims_to_train(pytester, cluster, root):
    """6 runs swept over a LocalCluster land in the store, and a following `pytest claims` on them (in a
    process that may not train) only checks: the sweep is how a cluster trains for the claims."""
    from tests.test_plugin import TOLERANCES, write_claims, write_spec

    write_claims(pytester.path / "claims", SCHEDULER_CLAIM, TOLERANCES)
    pytester.makeconftest(NO_LOCAL_TRAINING)
    spec = write_spec(pytester.path, "name = 'mine'\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()))
    configs = suite.user_configurations(spec)
    specs = [configs.spec(suite.RunId(c, s, s)) for c in ("standard", "adam") for s in (0, 1, 2)]
    results = sweep(specs, root, scheduler=cluster)
    assert [r["trained"] for r in results] == [True] * 6 and {r["status"] for r in results} == {"ok"}
    result = pytester.runpytest_subprocess(
        "claims",
        "--spec",
        str(spec),
        "--seeds",
        "0,1,2",
        f"--cache-dir={root}",
        "--no-report",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
