"""Run fixtures: every run of a claims session comes through the run store, trained once across workers.

A claim file's test that takes `check` and `runs` is parametrized over its module's CHECKS table
(ncsim.checks.Check) and each check's configurations, with ids like `standard-nc1_end_max` (so
`pytest -k nc1_end_max` selects one statistic, `-k standard` one configuration); `runs` is the list
of that configuration's trajectories over the session's seeds, and the check is decided over all of
them (ncsim.checks.decide). Before the first claim test, every process trains the runs the session's
claim tests need (`prefetch`): each takes the next run no other process is training, so the xdist
workers train in parallel, and a run another worker trains is waited for only when nothing else is
left. A test marked `@pytest.mark.runs("standard", ...)` that takes `run` is parametrized over those
configurations and the seeds, one run per case; a comparison gets a second run through
`get_run(config, seed, data_seed=None)`.

Options: --seeds 0,1,2 (default: ncsim/suite.toml), --vary-data-seed (the MNIST-1D generator seed
follows the training seed), --cache-dir DIR (default: $NCSIM_CACHE or ~/.cache/ncsim), --fresh-runs
(ignore the store: train every run into a new store for this session only).
"""

from __future__ import annotations

import os
import tempfile
import time
from functools import lru_cache

import filelock
import pytest

from ncsim import suite, threads
from ncsim.store import RunStore


def pytest_addoption(parser):
    g = parser.getgroup("ncsim")
    g.addoption("--seeds", default=None,
                help=f"comma-separated training seeds for the claims (default: ncsim/suite.toml's "
                     f"{','.join(map(str, suite.DEFAULT_SEEDS))})")
    g.addoption("--vary-data-seed", action="store_true",
                help="vary the MNIST-1D generator seed with the training seed (data seed = training seed)")
    g.addoption("--cache-dir", default=None, help="run store directory (default: $NCSIM_CACHE or ~/.cache/ncsim)")
    g.addoption("--fresh-runs", action="store_true", help="ignore the store: train every run anew for this session")


def seeds(config) -> list[int]:
    try:
        return suite.parse_seeds(config.getoption("--seeds"))
    except ValueError as e:
        raise pytest.UsageError(f"--seeds: {e}") from None


def run_ids(config, configs) -> list[suite.RunId]:
    """The session's runs of these configurations: one per seed, with its data seed under --vary-data-seed."""
    vary = config.getoption("--vary-data-seed")
    return [suite.RunId(c, seed, seed if vary else None) for c in configs for seed in seeds(config)]


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


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "runs" in names:
        checks = getattr(metafunc.module, "CHECKS", None)
        if not checks or "check" not in names:
            raise pytest.UsageError(f"{metafunc.definition.nodeid} takes `runs`: it needs `check` and a CHECKS "
                                    f"table of ncsim.checks.Check in its module")
        params = [pytest.param(check, config, id=f"{config}-{check.tolerance}",
                               marks=pytest.mark.xdist_group(f"{config}-checks"))
                  for check in checks for config in check.configs]
        metafunc.parametrize("check,runs", params, indirect=["runs"])
        return
    marker = metafunc.definition.get_closest_marker("runs")
    if marker is not None and "run" in names:
        params = [pytest.param(run, id=run.label, marks=pytest.mark.xdist_group(run.label))
                  for run in run_ids(metafunc.config, marker.args)]
        metafunc.parametrize("run", params, indirect=True)


def needed_runs(items) -> list[suite.RunId]:
    """The runs the claim tests among `items` read (their configurations' and references'), the
    costliest first."""
    configs = set()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "runs" in params:
            configs |= {params["runs"]} | ({params["check"].against} - {None})
    if not items:
        return []
    return sorted(run_ids(items[0].config, sorted(configs)), key=lambda r: -suite.cost(r.config))


def _cost(item) -> float:
    params = getattr(getattr(item, "callspec", None), "params", {})
    run = params.get("run")
    return suite.cost(run.config) if isinstance(run, suite.RunId) else 0.0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Longest runs first (stable otherwise), so xdist's loadgroup scheduling balances the workers."""
    items.sort(key=lambda item: -_cost(item))


def pytest_collection_finish(session):
    session.config._ncsim_needed_runs = needed_runs(session.items)


@pytest.fixture(scope="session")
def run_store(pytestconfig) -> RunStore:
    """The store, with this process's share of the cores for torch and BLAS."""
    threads.set_threads(worker_threads(pytestconfig))
    return RunStore(store_root(pytestconfig))


@pytest.fixture(scope="session")
def get_run(run_store):
    """`get_run(config, seed, data_seed=None) -> Trajectory`, obtained once per process."""
    @lru_cache(maxsize=None)
    def _get(config: str, seed: int, data_seed: int | None = None):
        return suite.obtain(suite.config(suite.RunId(config, seed, data_seed)), run_store)
    return _get


def prefetch(runs: list[suite.RunId], run_store: RunStore) -> None:
    """Make sure every run is stored, training each missing one in this process unless another
    process is training it; runs held by another process are waited for last."""
    pending = list(runs)
    while pending:
        left = []
        for run in pending:
            try:
                suite.obtain(suite.config(run), run_store, wait=False)
            except filelock.Timeout:
                left.append(run)
        if len(left) == len(pending):
            time.sleep(1.0)
        pending = left


@pytest.fixture(scope="session")
def prefetched(pytestconfig, run_store) -> None:
    """Every run the session's claim tests read is in the store (trained in parallel across workers)."""
    prefetch(getattr(pytestconfig, "_ncsim_needed_runs", []), run_store)


@pytest.fixture
def runs(request, prefetched, get_run) -> list:
    """The trajectories of the case's configuration over the session's seeds."""
    return [get_run(*run) for run in run_ids(request.config, [request.param])]


@pytest.fixture
def run(request, get_run):
    """The trajectory of the case's run (a suite.RunId parameter)."""
    if not hasattr(request, "param"):
        pytest.fail(f"{request.node.nodeid} takes `run`: mark it @pytest.mark.runs(<configurations>)", pytrace=False)
    return get_run(*request.param)
