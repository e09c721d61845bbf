"""What a report draws and decides from: the stored runs of each configuration and seed (never trained),
and the verdicts of an earlier claims session (its verdicts.json)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ncsim import figures, suite
from ncsim.report.aggregate import RecordedTest
from ncsim.spec import RunSpec
from ncsim.store import RunStore
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory


def collect_runs(
    store: RunStore,
    seeds: Sequence[int],
    names: Sequence[str] = suite.CLAIM_CONFIGS,
    vary_data_seed: bool = True,
    configs: suite.Configurations | None = None,
) -> tuple[dict[str, list[Trajectory]], list[RunId]]:
    """The stored runs of each configuration and seed (looked up by the key of `configs.spec(run)`, the
    suite's configurations by default, never trained; with `vary_data_seed`, as a claims session unless
    --fixed-data-seed, the MNIST-1D generator seed is the training seed), and the ids of those not in the store. A
    configuration that `configs` leaves out (a --spec session's) is neither."""
    configs = configs if configs is not None else suite.suite_configurations()
    runs: dict[str, list[Trajectory]] = {}
    missing = []
    for name in (n for n in names if n in configs.specs):
        runs[name] = []
        for seed in seeds:
            run = RunId(name, seed, seed if vary_data_seed else None)
            spec = configs.spec(run)
            record = store.load(spec.key())
            if record is None:
                missing.append(run)
            else:
                runs[name].append(Trajectory(record, spec, data_cache=store.root))
    return runs, missing


def not_drawn(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId]) -> list[str]:
    """Every run asked for that no figure draws, and why."""
    return figures.not_drawn([r for group in runs.values() for r in group], missing)


def same_session(
    doc: Mapping, seeds: Sequence[int], vary_data_seed: bool = True, configs: suite.Configurations | None = None
) -> bool:
    """Whether a verdicts.json document records a claims session on exactly these seeds, with the same
    data seeds (varied, or --fixed-data-seed) and the same configurations: the suite's (`configs` None or without
    a source), or those of a --spec session whose run has the key of `configs`' standard run."""
    session = doc.get("session") or {}
    vary = session.get("vary_data_seed", "--fixed-data-seed" not in str(session.get("command", "")))
    want = None if configs is None or configs.source is None else configs.specs[suite.STANDARD].key()
    try:
        run = session.get("spec", {}).get("run")
        have = None if run is None else RunSpec.from_dict(run).key()
    except (AttributeError, TypeError, ValueError):  # a spec this version cannot read is not this one
        return False
    return list(doc.get("seeds") or ()) == list(seeds) and bool(vary) == bool(vary_data_seed) and have == want


def latest_verdicts(out: str | Path, matches: Callable[[Mapping], bool] = lambda doc: True) -> tuple[dict, Path] | None:
    """The newest recorded claims session's verdicts.json under <out>/runs (by the session's end time)
    among those `matches` accepts, and its path; None when no report there holds one."""
    found = []
    for path in Path(out).glob("runs/*/verdicts.json"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("session") and matches(doc):
            found.append((str(doc["session"].get("finished", "")), path.parent.name, doc, path))
    if not found:
        return None
    *_, doc, path = max(found, key=lambda f: f[:2])
    return doc, path


def outcomes_of(doc: Mapping) -> list[RecordedTest]:
    """The test outcomes recorded in a verdicts.json document."""
    return [RecordedTest(**t) for claim in doc.get("claims", []) for t in claim["tests"]]
