"""The one object a claims session keeps, in pytest's `config.stash`: what its options resolve to (the
seeds, the configurations, the run store) and the runs its claim tests need. Resolved once per
process, when a hook first asks (`claims_session(config)`): a bad --seeds, --spec, --cache-dir or
--runs is then a usage error before collection, not one per test. An xdist worker resolves it from the
options the controller handed it (the --spec path, the --fresh-runs store: `worker_input`)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ncsim import suite
from ncsim.api import check_store_path
from ncsim.pytest_plugin.recorded import session_configurations
from ncsim.spec import SpecError


@dataclass
class ClaimsSession:
    """seeds: --seeds (default: ncsim/suite.toml's); vary_data_seed: the MNIST-1D generator seed follows
    the training seed; configurations: the suite's, those derived from --spec, or the recorded runs of
    --runs; fresh_store: the session's own store under --fresh-runs (made by the controller); store_root:
    where runs are read and trained (fresh_store, else --cache-dir; None: the default store);
    spec_path: the --spec file as an absolute path; needed_runs: the runs the collected claim tests
    read, the costliest first (set at the end of collection)."""

    seeds: list[int]
    vary_data_seed: bool
    configurations: suite.Configurations
    store_root: str | None
    fresh_store: str | None = None
    spec_path: Path | None = None
    needed_runs: list[suite.RunId] = field(default_factory=list)

    def run_ids(self, configs) -> list[suite.RunId]:
        """The session's runs of these configurations: one per seed, with its data seed when varied."""
        return [suite.RunId(c, seed, seed if self.vary_data_seed else None) for c in configs for seed in self.seeds]

    def worker_input(self) -> dict[str, str]:
        """What an xdist worker needs from the controller to resolve the same session."""
        given = {"ncsim_fresh_store": self.fresh_store, "ncsim_spec": self.spec_path}
        return {name: str(value) for name, value in given.items() if value is not None}


_KEY = pytest.StashKey[ClaimsSession]()


def claims_session(config) -> ClaimsSession:
    """The session's ClaimsSession, resolved from its options on first use."""
    if _KEY not in config.stash:
        config.stash[_KEY] = _resolve(config)
    return config.stash[_KEY]


def _resolve(config) -> ClaimsSession:
    worker = getattr(config, "workerinput", None)
    try:
        seeds = suite.parse_seeds(config.getoption("--seeds"))
    except ValueError as e:
        raise pytest.UsageError(f"--seeds: {e}") from None
    try:
        check_store_path(config.getoption("--cache-dir"))
    except NotADirectoryError as e:
        raise pytest.UsageError(f"--cache-dir: {e}") from None
    if worker is not None:
        fresh = worker.get("ncsim_fresh_store")
    else:
        fresh = tempfile.mkdtemp(prefix="ncsim-fresh-") if config.getoption("--fresh-runs") else None
    given = (worker or {}).get("ncsim_spec") or config.getoption("--spec")
    spec_path = None if given is None else config.invocation_params.dir / Path(given).expanduser()
    store_root = fresh or config.getoption("--cache-dir")
    recorded = session_configurations(config, seeds, store_root)
    try:
        configs = (
            recorded
            if recorded is not None
            else suite.suite_configurations()
            if spec_path is None
            else suite.user_configurations(spec_path)
        )
    except SpecError as e:
        raise pytest.UsageError(f"--spec: {e}") from None
    return ClaimsSession(seeds, bool(config.getoption("--vary-data-seed")), configs, store_root, fresh, spec_path)
