"""The claims on runs recorded from a user's own training loop (ncsim.recorder): `--runs NAME` and
`--compare CONFIG=NAME`.

    pytest claims --runs digits-mlp --compare no-wd=digits-mlp-nowd --seeds 0,1,2,3,4

The recorded configuration NAME stands where the claims read the default configuration ("standard");
each --compare CONFIG=NAME2 stands for the suite's configuration CONFIG (e.g. no-wd, the same network
trained without weight decay), so that the comparisons against it run; every other configuration is
left out, and the checks that read it are skipped with the reason. Every session seed of every named
configuration must be recorded in the run store (--cache-dir): a missing one is a usage error naming
it before anything runs, as recorded runs are never trained. A check that needs what a recorded run
lacks (a network to rebuild, layer taps, test metrics, the per-pass fit error) is skipped with the
reason (ncsim.pytest_plugin.checks), and the claims that read no run (the UFM's) are skipped too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from ncsim import suite
from ncsim.checks import TOLERANCES
from ncsim.recorded import RecordedRunMissing, RecordedSpec, find
from ncsim.store import RunStore


def pytest_addoption(parser):
    g = parser.getgroup("ncsim")
    g.addoption(
        "--runs",
        default=None,
        metavar="NAME",
        help="check the claims on the runs you recorded as NAME (ncsim.Recorder) in place of the default "
        "configuration; nothing is trained",
    )
    g.addoption(
        "--compare",
        action="append",
        default=[],
        metavar="CONFIG=NAME",
        help="with --runs: your recorded configuration NAME stands for the suite's configuration CONFIG "
        "(e.g. no-wd=NAME-nowd), so the comparisons against it run; repeatable",
    )


@dataclass(frozen=True)
class RecordedConfigurations(suite.Configurations):
    """The configurations of a --runs session: configuration -> the recorded spec of its first seed
    (`specs`), and the recorded spec of every (configuration, seed) of the session (`recorded`)."""

    recorded: Mapping[tuple[str, int], RecordedSpec] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def spec(self, run: suite.RunId) -> RecordedSpec:
        """The recorded spec of a run (its data seed has no meaning here); RecordedRunMissing otherwise."""
        if run.config in self.left_out:
            raise KeyError(f"configuration {run.config!r} is left out: {self.left_out[run.config]}")
        if (run.config, run.seed) not in self.recorded:
            raise RecordedRunMissing(
                f"configuration {run.config!r} (recorded as {self.names.get(run.config)!r}) "
                f"has no recorded run of seed {run.seed} in this session"
            )
        return self.recorded[(run.config, run.seed)]


def parse_compare(values: list[str]) -> dict[str, str]:
    """["no-wd=NAME", ...] -> {"no-wd": "NAME"}; ValueError naming a bad entry or configuration."""
    known = [c for c in suite.preset_runs() if c != suite.STANDARD]
    out = {}
    for value in values:
        config, sep, name = value.partition("=")
        config, name = config.strip(), name.strip()
        if not sep or not config or not name:
            raise ValueError(f"{value!r} is not CONFIG=NAME (e.g. no-wd=digits-mlp-nowd)")
        if config not in known:
            raise ValueError(f"{config!r} is not a configuration of the suite; known: {', '.join(sorted(known))}")
        out[config] = name
    return out


def recorded_configurations(name: str, compare: list[str], seeds: list[int], store: RunStore) -> RecordedConfigurations:
    """The configurations of `--runs name --compare ...` over `seeds`, read from `store`; ValueError
    (RecordedRunMissing) naming every configuration and seed that is not recorded there."""
    names = {suite.STANDARD: name, **parse_compare(compare)}
    recorded, missing = {}, []
    for config, recorded_name in names.items():
        for seed in seeds:
            try:
                key = find(store, recorded_name, seed)
            except RecordedRunMissing as e:
                missing.append(str(e))
                continue
            recorded[(config, seed)] = RecordedSpec.from_dict(store.read(key).meta["spec"])
    if missing:
        raise RecordedRunMissing("; ".join(missing))
    left_out = {
        c: f"not recorded: record your network in the {c} configuration and pass --compare {c}=NAME"
        for c in suite.preset_runs()
        if c not in names
    }
    specs = {config: recorded[(config, seeds[0])] for config in names}
    return RecordedConfigurations(specs, left_out, f"recorded runs {name}", recorded=recorded, names=names)


def session_configurations(config, seeds: list[int], store_root) -> RecordedConfigurations | None:
    """The --runs session's configurations, or None without --runs; pytest.UsageError for options
    that do not go with it or for a missing recorded run."""
    name = config.getoption("--runs")
    if name is None:
        if config.getoption("--compare"):
            raise pytest.UsageError("--compare needs --runs NAME")
        return None
    clashing = [opt for opt in ("--spec", "--fresh-runs", "--fixed-data-seed", "--scheduler") if config.getoption(opt)]
    if clashing:
        raise pytest.UsageError(
            f"--runs checks recorded runs, which are never trained: it does not go with {', '.join(clashing)}"
        )
    try:
        return recorded_configurations(name, config.getoption("--compare"), seeds, RunStore(store_root))
    except (ValueError, RecordedRunMissing) as e:
        raise pytest.UsageError(f"--runs {name}: {e}") from None


def reads_no_run(item) -> bool:
    """A test of a claims session that measures no run (a UFM claim's)."""
    return "runs" not in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    """Under --runs, the claims that measure no run (the UFM's) are skipped: they say nothing of the
    recorded network."""
    name = config.getoption("--runs")
    if name is None:
        return
    for item in items:
        if (item.path.parent / TOLERANCES).is_file() and reads_no_run(item):
            item.add_marker(
                pytest.mark.skip(reason=f"measures no run (a model of its own), so nothing of the recorded runs {name}")
            )


def lacking(error: KeyError) -> str:
    """The skip reason of a check whose recorded run lacks what it needs (a Trajectory KeyError)."""
    message = str(error.args[0]) if error.args else str(error)
    return f"the recorded runs lack what this check needs: {message.split('; columns:')[0]}"
