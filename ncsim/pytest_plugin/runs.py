"""Run fixtures: every run of a claims session comes through the run store, trained once across workers.

A claim file's test that takes `check` and `run` is parametrized over its module's CHECKS table
(ncsim.checks.Check), each check's configurations and the session's seeds, with ids like
`standard-s0-nc1_end_max` (so `pytest -k standard-s0` selects one run, `-k nc1_end` one statistic).
A test marked `@pytest.mark.runs("standard", ...)` that takes `run` is parametrized over those
configurations and the seeds. Each case carries `xdist_group(<run label>)`, and pytest.ini's
`--dist loadgroup` sends all tests of one run to one worker, so the worker that trains a run also
checks its claims; the store's lock makes any other worker asking for it wait and load it. A
comparison gets its second run through `get_run(config, seed)`.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache

import pytest

from ncsim import suite, threads
from ncsim.store import RunStore


def pytest_addoption(parser):
    g = parser.getgroup("ncsim")
    g.addoption("--seeds", default=None,
                help=f"comma-separated training seeds for the claims (default: ncsim/suite.toml's "
                     f"{','.join(map(str, suite.DEFAULT_SEEDS))})")
    g.addoption("--cache-dir", default=None, help="run store directory (default: $NCSIM_CACHE or ~/.cache/ncsim)")
    g.addoption("--fresh-runs", action="store_true", help="ignore the store: train every run anew for this session")


def seeds(config) -> list[int]:
    try:
        return suite.parse_seeds(config.getoption("--seeds"))
    except ValueError as e:
        raise pytest.UsageError(f"--seeds: {e}") from None


def pytest_configure(config):
    config.addinivalue_line("markers", "runs(*configs): parametrize the `run` fixture over configs x seeds")
    seeds(config)  # a bad --seeds is a usage error before collection, not one error per test
    if not hasattr(config, "workerinput") and config.getoption("--fresh-runs"):
        config._ncsim_fresh_store = tempfile.mkdtemp(prefix="ncsim-fresh-")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: hand every worker the same fresh store."""
    fresh = getattr(node.config, "_ncsim_fresh_store", None)
    if fresh:
        node.workerinput["ncsim_fresh_store"] = fresh


def store_root(config) -> str | None:
    fresh = getattr(config, "workerinput", {}).get("ncsim_fresh_store") or getattr(config, "_ncsim_fresh_store", None)
    return fresh or config.getoption("--cache-dir")


def worker_threads(config) -> int:
    """Threads per process so that workers x threads <= cores."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    return max(1, (os.cpu_count() or 1) // workers)


def _case(run: suite.RunId, *marks, suffix: str = "", values: tuple = ()):
    return pytest.param(*values, run, id=run.label + suffix,
                        marks=(pytest.mark.xdist_group(run.label), *marks))


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "run" not in names:
        return
    chosen = seeds(metafunc.config)
    if "check" in names:
        checks = getattr(metafunc.module, "CHECKS", None)
        if not checks:
            raise pytest.UsageError(f"{metafunc.definition.nodeid} takes `check` but its module has no CHECKS table")
        params = [_case(suite.RunId(config, seed), suffix=f"-{check.tolerance}", values=(check,))
                  for check in checks for config in check.configs for seed in chosen]
        metafunc.parametrize("check,run", params, indirect=["run"])
        return
    marker = metafunc.definition.get_closest_marker("runs")
    if marker is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid} takes `run`: mark it @pytest.mark.runs(<configs>) "
                                f"or give its module a CHECKS table and take `check`")
    params = [_case(suite.RunId(config, seed)) for config in marker.args for seed in chosen]
    metafunc.parametrize("run", params, indirect=True)


def _cost(item) -> float:
    run = getattr(getattr(item, "callspec", None), "params", {}).get("run")
    return suite.cost(run.config) if isinstance(run, suite.RunId) else 0.0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Longest runs first (stable otherwise), so xdist's loadgroup scheduling balances the workers."""
    items.sort(key=lambda item: -_cost(item))


@pytest.fixture(scope="session")
def run_store(pytestconfig) -> RunStore:
    """The store, with this process's share of the cores for torch and BLAS."""
    threads.set_threads(worker_threads(pytestconfig))
    return RunStore(store_root(pytestconfig))


@pytest.fixture(scope="session")
def get_run(run_store):
    """`get_run(config, seed) -> Trajectory`, obtained once per process."""
    @lru_cache(maxsize=None)
    def _get(config: str, seed: int):
        return suite.obtain(suite.config(config, seed), run_store)
    return _get


@pytest.fixture
def run(request, get_run):
    """The trajectory of the case's run (a suite.RunId parameter)."""
    return get_run(*request.param)
