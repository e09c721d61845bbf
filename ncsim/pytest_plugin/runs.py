"""Run fixtures: every run of a claims session comes through the run store, trained once across workers.

A test of a claim's run checks (made from its CHECKS table: ncsim.pytest_plugin.collect) takes `runs`,
the list of its configuration's trajectories over the session's seeds, and decides the check over all
of them (ncsim.checks.decide); a comparison gets the reference's runs through the fixture
`obtain_run(config, seed, data_seed=None)`. Before the first claim test, every process trains the runs
the session's claim tests need (`prefetch`): each takes the next run no other process is training, so
the xdist workers train in parallel, and a run another worker trains is waited for only when nothing
else is left.

Options: --seeds 0-2,5 (default: ncsim/suite.toml; the MNIST-1D generator seed follows the training
seed unless --fixed-data-seed), --cache-dir DIR (default: $NCSIM_CACHE or ~/.cache/ncsim), --fresh-runs
(ignore the store: train every run into a new store for this session only), --spec FILE.toml (check
the claims on your own run: FILE's spec is the standard configuration and every other configuration
is derived from it, ncsim.suite.user_configurations; a configuration whose changes do not apply to it
is skipped with the reason), --scheduler ADDRESS (train the runs the session needs on a Dask
scheduler first, ncsim.sweep: "local" for a LocalCluster here, or "tcp://host:8786"; the store must be
on a filesystem the workers share), --runs NAME and --compare CONFIG=NAME (the claims on runs recorded
from a user's own training loop, read from the store and never trained: ncsim.pytest_plugin.recorded).
"""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

import filelock
import pytest

from ncsim import checks, sequential, suite, threads
from ncsim.pytest_plugin.recorded import RecordedConfigurations
from ncsim.pytest_plugin.session import claims_session
from ncsim.store import RunStore
from ncsim.trajectory import Trajectory

EXTENDED = "extended"  # the marker of the extended tier of claims (README, "The claims")


def pytest_addoption(parser):
    g = parser.getgroup("ncsim")
    g.addoption(
        "--seeds",
        default=None,
        help=f"training seeds for the claims, as `ncsim --seeds`: integers and ranges, e.g. 0-4 or 0,1,5 "
        f"(default: ncsim/suite.toml's {','.join(map(str, suite.DEFAULT_SEEDS))})",
    )
    g.addoption(
        "--fixed-data-seed",
        action="store_true",
        help="keep the MNIST-1D generator's default data seed for every run (verdicts about one draw of the "
        "data set; default: the data seed is the training seed, so that they are about MNIST-1D)",
    )
    g.addoption("--cache-dir", default=None, help="run store directory (default: $NCSIM_CACHE or ~/.cache/ncsim)")
    g.addoption("--fresh-runs", action="store_true", help="ignore the store: train every run anew for this session")
    g.addoption(
        "--spec",
        default=None,
        metavar="FILE.toml",
        help="check the claims on your own run: FILE's spec (one run, as for `ncsim train FILE`) stands "
        "for the standard configuration, and the other configurations apply their changes to it",
    )
    g.addoption(
        "--extended",
        action="store_true",
        help="also run the extended claims (claim files marked pytest.mark.extended: the claims of "
        "2021-2023, whose runs add two thirds to a cold session); `-m extended` runs only them",
    )
    g.addoption(
        "--looks",
        type=int,
        default=None,
        help="the most looks of the sequential decisions, each a block of len(--seeds) more seeds for a "
        "configuration with an undecided check (default 4: ncsim.sequential; 1: decide on --seeds alone)",
    )
    g.addoption(
        "--seed-budget",
        type=float,
        default=None,
        help="the cost of the runs the later looks may add, in default runs "
        f"(default: ncsim/suite.toml's {suite.SEED_BUDGET:g}; 0: no seeds added)",
    )
    g.addoption(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="train the runs the session needs on this Dask scheduler before the checks (ncsim.sweep; "
        "'local': a LocalCluster here); the run store must be shared with its workers",
    )


def configurations(config) -> suite.Configurations:
    """The session's configurations (ClaimsSession.configurations)."""
    return claims_session(config).configurations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{EXTENDED}: a claim of the extended tier, run with --extended or -m {EXTENDED}"
    )
    claims_session(config)  # options resolved (or refused) before collection


def pytest_report_header(config) -> str | None:
    """Which spec the configurations come from, when it is the user's."""
    configs = configurations(config)
    if configs.source is None:
        return None
    names = ", ".join(f"{name} = {spec.name}" for name, spec in configs.specs.items())
    return f"ncsim: claims checked on {configs.source} ({names}; left out: {', '.join(configs.left_out) or 'none'})"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller: hand every worker the same fresh store and spec file."""
    node.workerinput.update(claims_session(node.config).worker_input())


def worker_threads(config) -> int:
    """Threads per process so that workers x threads <= cores."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    return max(1, (os.cpu_count() or 1) // workers)


def unavailable(config, *names: str | None) -> str | None:
    """Why a case that reads these configurations cannot run in this session (one left out of the
    --spec configurations), or None."""
    left_out = configurations(config).left_out
    return next((f"{name}: {left_out[name]}" for name in names if name in left_out), None)


def case_marks(config, group: str, *names: str | None) -> list:
    """The xdist group of a case, and a skip when a configuration it reads is left out."""
    why = unavailable(config, *names)
    return [pytest.mark.xdist_group(group)] + ([pytest.mark.skip(reason=why)] if why else [])


def needed_runs(items) -> list[suite.RunId]:
    """The runs the claim tests among `items` read (their configurations' and references', unless one
    is left out of the session), the costliest first."""
    configs = set()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "runs" in params:
            read = (params["runs"], params["check"].against)
            configs |= set() if unavailable(item.config, *read) else set(read) - {None}
    if not items:
        return []
    return sorted(claims_session(items[0].config).run_ids(sorted(configs)), key=lambda r: -suite.cost(r.config))


def extended_selected(config) -> bool:
    """Whether the session runs the extended claims: --extended, or a -m expression that names them."""
    return config.getoption("--extended") or EXTENDED in (config.getoption("markexpr") or "")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The extended claims deselected unless asked for (so their runs are not trained either)."""
    if not extended_selected(config):
        left_out = [item for item in items if item.get_closest_marker(EXTENDED)]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if not item.get_closest_marker(EXTENDED)]


def planned_checks(items) -> list[sequential.Planned]:
    """The checks over seeds among the claim tests `items` (one per check and configuration, unless a
    configuration it reads is left out), with their tolerances: what the sequential looks decide."""
    out = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        check, config = params.get("check"), params.get("runs")
        if config is None or not isinstance(check, checks.Check) or unavailable(item.config, config, check.against):
            continue
        tol = checks.tolerance(item.path.parent, check.tolerance)
        expected = any(x.covers(check.tolerance, config) for x in checks.load_expected_failures(item.path.parent))
        out[(check.tolerance, config, check.against)] = sequential.Planned(check, tol, config, expected)
    return list(out.values())


def pytest_collection_finish(session):
    claims = claims_session(session.config)
    claims.needed_runs = needed_runs(session.items)
    claims.planned = planned_checks(session.items)


@pytest.fixture(scope="session")
def run_store(pytestconfig) -> RunStore:
    """The store, with this process's share of the cores for torch and BLAS where the claims measure
    (runs train on ncsim.threads.TRAIN_THREADS, whatever the share: ncsim.suite.obtain_run)."""
    threads.set_threads(worker_threads(pytestconfig))
    return RunStore(claims_session(pytestconfig).store_root)


@pytest.fixture(scope="session")
def obtain_run(pytestconfig, run_store):
    """`obtain_run(config, seed, data_seed=None) -> Trajectory`: a run of the session's configurations
    (the suite's, or those of --spec) from the store, or trained once (ncsim.suite.obtain_run); a
    recorded run of --runs is only read. Once per process."""
    configs = configurations(pytestconfig)

    @cache
    def _get(config: str, seed: int, data_seed: int | None = None):
        if isinstance(configs, RecordedConfigurations):  # read, never trained
            spec = configs.spec(suite.RunId(config, seed, data_seed))
            return Trajectory(run_store.read(spec.key()), spec, data_cache=run_store.root)
        return suite.obtain_run(configs.spec(suite.RunId(config, seed, data_seed)), run_store)

    return _get


def prefetch(
    runs: list[suite.RunId],
    run_store: RunStore,
    configs: suite.Configurations | None = None,
    threads: int | None = None,
) -> None:
    """Make sure every run is stored, training each missing one in this process (on `threads` threads;
    None: ncsim.threads.TRAIN_THREADS, as every run of the suite trains) unless another process is
    training it; runs held by another process are waited for last. The runs are those of `configs`
    (default: the suite's own)."""
    configs = configs if configs is not None else suite.suite_configurations()
    pending = list(runs)
    while pending:
        left = []
        for run in pending:
            try:
                suite.obtain_run(configs.spec(run), run_store, wait=False, threads=threads)
            except filelock.Timeout:
                left.append(run)
        if len(left) == len(pending):
            time.sleep(1.0)
        pending = left


def sweep_on_scheduler(
    runs: list[suite.RunId], run_store: RunStore, configs: suite.Configurations, scheduler: str
) -> None:
    """Train `runs` on the Dask scheduler (ncsim.sweep.sweep, one thread per run) into the store, once
    per session: the first process to take the store's sweep lock submits them, the others wait for it
    and find them stored. RuntimeError naming every run that failed there."""
    from ncsim.sweep import SweepError, sweep

    with filelock.FileLock(str(Path(run_store.root) / ".sweep.lock")):
        specs = [configs.spec(run) for run in runs]
        missing = [spec for spec in specs if spec.key() not in run_store]
        if not missing:
            return
        try:
            results = sweep(missing, run_store.root, scheduler=scheduler, threads=1)
        except SweepError as e:
            raise RuntimeError(f"--scheduler {scheduler}: {e}") from None
    failed = [f"{r['label']}: {r['error']}" for r in results if r["status"] == "failed"]
    if failed:
        raise RuntimeError(f"--scheduler {scheduler}: {len(failed)} run(s) failed: " + "; ".join(failed))


@pytest.fixture(scope="session")
def prefetched(pytestconfig, run_store, obtain_run) -> None:
    """Every run the session's claim tests read is in the store: trained on --scheduler when given,
    else here, in parallel across the xdist workers."""
    needed, configs = claims_session(pytestconfig).needed_runs, configurations(pytestconfig)
    if isinstance(configs, RecordedConfigurations):
        return
    scheduler = pytestconfig.getoption("--scheduler")
    if scheduler and needed:
        sweep_on_scheduler(needed, run_store, configs, scheduler)
    prefetch(needed, run_store, configs)
    look_again(claims_session(pytestconfig), lambda runs: prefetch(runs, run_store, configs), obtain_run)


def look_again(session, train, obtain_run) -> None:
    """The sequential looks (ncsim.sequential.plan): while a configuration has a check its seeds do not
    decide, and the session's budget pays for it, train its next block of seeds (and its comparisons'
    reference runs on them, `train(run_ids)`), then look at every check again. Every process computes
    the same looks from the same stored runs; the seeds each configuration ends with are
    `session.added`, those the budget could not extend `session.short`."""
    design, budget = session.design, session.budget
    if not session.planned or design is None or design.looks < 2:
        return
    values: dict = {}

    def measure(planned: sequential.Planned, seeds: list[int]) -> list[float] | None:
        out, premise = [], planned.check.premise
        for seed in seeds:
            key = (planned.check.tolerance, planned.config, planned.check.against, seed)
            if key not in values:
                run = obtain_run(*session.run_id(planned.config, seed))
                ref = obtain_run(*session.run_id(planned.check.against, seed)) if planned.check.against else None
                values[key] = planned.check.measure(run, ref) if premise is None or premise.meets(run) else None
            out.append(values[key])
        kept = [v for v in out if v is not None]  # the runs the statement speaks of (checks.Premise)
        return kept if len(kept) >= checks.PREMISE_RUNS or premise is None else None

    seeds = {p.config: list(session.seeds) for p in session.planned}
    while True:
        new, short, spent = sequential.plan(session.planned, seeds, measure, design, budget, suite.cost)
        session.short = short
        if new == seeds:
            break
        budget -= spent
        added = {c: [s for s in new[c] if s not in seeds[c]] for c in new}
        runs = [session.run_id(c, s) for c, more in added.items() for s in more]
        runs += [
            session.run_id(p.check.against, s) for p in session.planned if p.check.against for s in added[p.config]
        ]
        train(sorted(dict.fromkeys(runs), key=lambda r: -suite.cost(r.config)))
        seeds = new
    session.added = {c: s for c, s in seeds.items() if s != list(session.seeds)}


@pytest.fixture
def runs(request, prefetched, obtain_run) -> list:
    """The trajectories of the case's configuration over its seeds (the session's, and the blocks its
    sequential looks added)."""
    return [obtain_run(*run) for run in claims_session(request.config).run_ids([request.param])]
