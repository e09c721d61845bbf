"""Many runs at once: training a set of runs is a map of `train_into_store` over their specs.

    specs = sweep_specs("standard", parse_seed_list("0-49"))
    sweep(specs, "/shared/ncsim")                                  # here, one run after another
    sweep(specs, "/shared/ncsim", scheduler="tcp://head:8786")     # on a Dask cluster's workers
    sweep(specs, "/shared/ncsim", scheduler=LocalCluster(n_workers=2, threads_per_worker=1))

Every run goes through ncsim.suite.obtain_run into one store, as `ncsim train` and the claims train it:
the store's per-run lock makes exactly one process train a run, writes are atomic, and a run already
stored is served, not trained again (a second sweep trains nothing). On a cluster the store must be
on a filesystem every worker sees at the same path, with working file locks (NFS v4, Lustre, GPFS).
Each task sets its torch and BLAS threads (ncsim.threads) and clears the group-read bits from the
umask while it writes, so that the records are readable by the store's group.

A task returns a small JSON-able summary (`train_into_store`); a run that fails is reported with its
error, never at the cost of the others. Dask is needed only with a scheduler: `pip install 'ncsim[dask]'`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ncsim import suite
from ncsim.spec import RunSpec, SpecError, load_specs, presets
from ncsim.store import umask
from ncsim.suite import parse_seed_list  # noqa: F401 - `ncsim sweep --seeds` reads the one seed syntax


class SweepError(ValueError):
    """A sweep that cannot start (no Dask installed, an unreachable scheduler); the message says why."""


# --- which runs ------------------------------------------------------------------------------------


def unique(specs, key=RunSpec.key) -> list[RunSpec]:
    """`specs` without repeats (by `key`: the run key, or e.g. the name), the first of each kept."""
    first: dict = {}
    for spec in specs:
        first.setdefault(key(spec), spec)
    return list(first.values())


def _with_overrides(spec: RunSpec, overrides: dict) -> RunSpec:
    """`spec` with spec-key overrides (as ncsim.cli.parse_overrides gives them), the data table merged."""
    overrides = dict(overrides)
    data = overrides.pop("data", {})
    return spec.replace(**overrides).with_data(**data)


def sweep_specs(
    source: str | Path, seeds: Sequence[int] | None = None, vary_data_seed: bool = True, overrides: dict | None = None
) -> list[RunSpec]:
    """The runs of a sweep: for a suite configuration name ("standard", "adam", ...), its spec as the
    claims train it (ncsim.suite.config) at each seed (default: the suite's default seeds); for a
    preset name or TOML file, each of its runs at each seed (default: the seeds it names). With
    `vary_data_seed` (the default, as a claims session) the MNIST-1D generator seed is the training seed;
    `overrides` change spec keys of every run; a run they make differ from the suite configuration
    whose name it bears is named apart from it (ncsim.suite.named_apart). SpecError for a bad source
    or override."""
    if isinstance(source, str) and source in suite.preset_runs():
        base = [suite.config(source, 0)]
        seeds = suite.DEFAULT_SEEDS if seeds is None else seeds
    elif not Path(source).suffix and str(source) not in presets():
        raise SpecError(
            f"unknown configuration or preset {str(source)!r}; configurations: "
            f"{', '.join(sorted(suite.preset_runs()))}; presets: {', '.join(presets())}"
        )
    else:
        base = load_specs(source)
    if overrides:
        base = [_with_overrides(spec, overrides) for spec in base]
    if seeds is not None:
        base = [spec.replace(seed=seed) for spec in unique(base, key=lambda s: s.name) for seed in seeds]
    if vary_data_seed:
        base = [spec.with_data(seed=spec.seed) for spec in base]
    return unique(suite.named_apart(spec) for spec in base)


# --- one run, on whichever machine ----------------------------------------------------------------


@contextmanager
def group_readable():
    """Clear the group read and search bits of the process umask for the block (restored after), so
    that the files and folders written meanwhile are readable by the group."""
    before = os.umask(umask() & ~0o050)
    try:
        yield
    finally:
        os.umask(before)


def summary(
    spec: RunSpec | None,
    *,
    label: str | None = None,
    key: str | None = None,
    trained: bool = False,
    status: str = "failed",
    reason: str | None = None,
    error: str | None = None,
    seconds: float = 0.0,
    host: str | None = "",
) -> dict:
    """The JSON-able result of one run of a sweep: key, label, whether this task trained it, the
    run's status ("ok", "diverged", "degenerate"; "failed" when no record came of it) and reason,
    the error of a failed run, the seconds the task took, and the host it ran on ("": this one;
    None: unknown)."""
    return {
        "key": key or (spec.key() if spec else None),
        "label": label or (spec.label() if spec else None),
        "trained": trained,
        "status": status,
        "reason": reason,
        "error": error,
        "seconds": round(seconds, 3),
        "host": socket.gethostname() if host == "" else host,
    }


def train_into_store(spec_dict: dict, store_root: str, threads: int = 1) -> dict:
    """Train one run into the store at `store_root` unless it is stored (ncsim.suite.obtain_run: the
    store's lock and atomic writes), with `threads` torch and BLAS threads and group-readable files;
    the run's summary. Any error is caught and reported in the summary (status "failed"), so that a
    failing run never takes the others with it. The top-level function a Dask worker imports."""
    from ncsim.api import check_device, open_store
    from ncsim.suite import obtain_run
    from ncsim.threads import limit_threads

    t0 = time.perf_counter()
    spec = None
    try:
        spec = RunSpec.from_dict(spec_dict)
        with group_readable(), limit_threads(threads):
            store = open_store(store_root)
            check_device(spec, store)
            traj = obtain_run(spec, store, threads=threads)
        return summary(
            spec,
            trained=traj.trained,
            status=traj.status,
            reason=traj.meta.get("status_reason"),
            seconds=time.perf_counter() - t0,
        )
    except Exception as e:  # noqa: BLE001 - reported in the summary, the sweep goes on
        name = spec_dict.get("name") if spec is None and isinstance(spec_dict, dict) else None
        return summary(spec, label=name, error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)


# --- the map ---------------------------------------------------------------------------------------


def sweep(
    specs: Sequence[RunSpec],
    store_root: str | Path,
    scheduler=None,
    threads: int = 1,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Obtain every run of `specs` in the store at `store_root` (each run once: specs with equal keys
    count once) and return their summaries (train_into_store) in the order of `specs`;
    `on_result(summary)` is called as each run finishes.

    `scheduler` None trains here, one run after another; otherwise the runs are tasks on Dask
    workers: "local" (a LocalCluster of cpu_count // threads single-threaded worker processes), a
    scheduler address ("tcp://host:8786"), a distributed.Client (left open) or a cluster object
    (LocalCluster, dask_jobqueue.SLURMCluster, ...). A task that fails on the worker (a lost worker,
    ncsim not importable there) is reported as a failed run. SweepError when `threads` < 1, Dask is
    missing or the scheduler cannot be reached."""
    from ncsim.api import open_store

    if not isinstance(threads, int) or threads < 1:
        raise SweepError(f"threads={threads!r} must be an integer >= 1")
    specs = unique(specs)
    root = str(Path(store_root).expanduser().absolute())
    with group_readable():
        open_store(root)  # created here, so that a bad path fails before any task starts
    report = on_result or (lambda result: None)
    if scheduler is None:
        results = []
        for spec in specs:
            results.append(train_into_store(spec.to_dict(), root, threads))
            report(results[-1])
        return results
    with ExitStack() as stack:
        client = _client(scheduler, threads, stack)
        by_key = _run_on_dask(client, specs, root, threads, report)
    return [by_key[spec.key()] for spec in specs]


def _client(scheduler, threads: int, stack: ExitStack):
    """A distributed.Client for `scheduler` (see sweep), closed with `stack` unless the caller's."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError("a scheduler needs dask.distributed: pip install 'ncsim[dask]'") from None
    if isinstance(scheduler, Client):
        return scheduler
    try:
        if scheduler == "local":
            workers = max(1, (os.cpu_count() or 1) // threads)
            scheduler = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
        return stack.enter_context(Client(scheduler))
    except (OSError, ValueError, TypeError) as e:
        raise SweepError(f"cannot reach the Dask scheduler {scheduler!r}: {e}") from None


def _run_on_dask(client, specs: Sequence[RunSpec], root: str, threads: int, report) -> dict[str, dict]:
    """Submit one train_into_store task per spec and collect the summaries as they finish."""
    from distributed import as_completed

    batch = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            train_into_store,
            spec.to_dict(),
            root,
            threads,
            pure=False,
            key=f"ncsim-train-{spec.label()}-{spec.key()}-{batch}",
        ): spec
        for spec in specs
    }
    results = {}
    try:
        for future in as_completed(futures):
            spec = futures[future]
            try:
                result = future.result()
            except Exception as e:  # noqa: BLE001 - the task itself failed (e.g. its worker died)
                result = summary(spec, error=f"{type(e).__name__}: {e}", host=None)
            results[spec.key()] = result
            report(result)
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results
