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

from ncsim import sequential, suite
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
    read at the first look, the costliest first (set at the end of collection); design: the looks of
    the sequential decisions (ncsim.sequential: blocks of len(seeds) seeds, --looks of them); budget:
    the cost of the runs the later looks may add (--seed-budget, in default runs); planned: the
    sequential checks of the collected claim tests; added: the seeds each configuration has after its
    looks, where it has more than `seeds` (set by the pytest_plugin.runs fixture `prefetched`), and
    short: the configurations left undecided because the budget ran out."""

    seeds: list[int]
    vary_data_seed: bool
    configurations: suite.Configurations
    store_root: str | None
    fresh_store: str | None = None
    spec_path: Path | None = None
    needed_runs: list[suite.RunId] = field(default_factory=list)
    design: sequential.Design | None = None
    budget: float = 0.0
    planned: list[sequential.Planned] = field(default_factory=list)
    added: dict[str, list[int]] = field(default_factory=dict)
    short: list[str] = field(default_factory=list)

    def seeds_of(self, config: str) -> list[int]:
        """The seeds of a configuration after its looks (the session's seeds, and any block added)."""
        return self.added.get(config, self.seeds)

    def run_id(self, config: str, seed: int) -> suite.RunId:
        """A run of the session: its data seed is the training seed when varied."""
        return suite.RunId(config, seed, seed if self.vary_data_seed else None)

    def run_ids(self, configs) -> list[suite.RunId]:
        """The session's runs of these configurations: one per seed of each, with its data seed when varied."""
        return [self.run_id(c, seed) for c in configs for seed in self.seeds_of(c)]

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
    looks = config.getoption("--looks")
    # recorded runs are never trained, so no seeds can be added: one look at the level alpha
    looks = 1 if recorded is not None else sequential.LOOKS if looks is None else looks
    budget = config.getoption("--seed-budget")
    budget = suite.SEED_BUDGET if budget is None else budget
    if looks < 1 or budget < 0:
        raise pytest.UsageError(f"--looks {looks} must be >= 1 and --seed-budget {budget} >= 0")
    return ClaimsSession(
        seeds,
        not config.getoption("--fixed-data-seed"),
        configs,
        store_root,
        fresh,
        spec_path,
        design=sequential.Design(len(seeds), looks),
        budget=float(budget),
    )
