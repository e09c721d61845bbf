"""A report folder from what it is given (`write`), at the end of a claims session (`from_session`) or
from the run store with an earlier session's verdicts (`from_store`, `ncsim report`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from ncsim import suite
from ncsim.report.aggregate import RecordedTest, counts, headline, session_configs, verdicts
from ncsim.report.collect import collect_runs, latest_verdicts, not_drawn, outcomes_of, same_session
from ncsim.report.folders import new_folder, point_latest
from ncsim.report.markdown import markdown
from ncsim.report.registry import FIGURES, figure_makers
from ncsim.report.render import render
from ncsim.report.stability import false_verdicts, stability
from ncsim.store import RunStore
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory
from ncsim.verdict import jsonable


def write(
    out: str | Path,
    runs: Mapping[str, Sequence[Trajectory]],
    missing: Sequence[RunId] = (),
    *,
    outcomes: Sequence[RecordedTest] | None = None,
    session: Mapping | None = None,
    seeds: Sequence[int] = (),
    store_root=None,
    sweeps: Mapping[int, Mapping] | None = None,
    now: datetime | None = None,
) -> Path:
    """Write a report folder under <out>/runs and point <out>/latest at it; returns the folder.

    `runs`/`missing`: what to draw (collect_runs); `outcomes` None means no claims session is recorded
    (the table says so, and there is no verdict figure); `session`: where the outcomes come from (end
    time "finished", "command", "exitstatus", optionally "verdicts_from"); `store_root`: the run store
    (also where the MNIST-1D arrays for the geometry figure are cached); `sweeps`: the UFM imbalance
    sweep per seed (None: those stored in the run store)."""
    now = now or datetime.now(timezone.utc)
    folder = new_folder(out, now)
    makers = figure_makers(runs, missing, cache_dir=store_root, sweeps=sweeps, outcomes=outcomes)
    errors = render(makers, folder)
    claims = [] if outcomes is None else verdicts(outcomes)
    doc = {
        "format": 1,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "folder": folder.name,
        "seeds": list(seeds),
        "store": None if store_root is None else str(store_root),
        "session": None if outcomes is None else dict(session or {}),
        "summary": None if outcomes is None else counts(outcomes),
        "headline": None if outcomes is None else headline(claims),
        "stability": None if outcomes is None else stability([c for t in outcomes for c in t.checks]),
        "false_verdicts": None if outcomes is None else false_verdicts([c for t in outcomes for c in t.checks]),
        "claims": claims,
        "runs": {name: [r.label for r in group] for name, group in runs.items()},
        "not_drawn": not_drawn(runs, missing),
        "figures": {name: {"title": FIGURES[name], "error": errors.get(name)} for name in makers},
    }
    (folder / "verdicts.json").write_text(json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")
    (folder / "report.md").write_text(markdown(doc))
    point_latest(out, folder)
    return folder


def from_session(
    store: RunStore,
    out: str | Path,
    seeds: Sequence[int],
    outcomes: Sequence[RecordedTest],
    session: Mapping,
    vary_data_seed: bool = True,
    configs: suite.Configurations | None = None,
) -> Path:
    """The report at the end of a claims session (ncsim/pytest_plugin/report.py): the session's
    outcomes, and the runs of the configurations its checks read (session_configs: a session without
    --extended draws no extended figure) as stored (those of `configs`, a --spec session's; default the
    suite's)."""
    runs, missing = collect_runs(
        store, seeds, session_configs(outcomes), vary_data_seed=vary_data_seed, configs=configs
    )
    return write(out, runs, missing, outcomes=outcomes, session=session, seeds=seeds, store_root=store.root)


def from_store(
    store: RunStore,
    out: str | Path = "reports",
    seeds: str | Sequence[int] | None = None,
    vary_data_seed: bool = True,
    configs: suite.Configurations | None = None,
) -> Path:
    """`ncsim report`: redraw the figures from the stored runs (nothing trains; those of `configs`, e.g.
    a user's spec, default the suite's) with the verdicts of the newest claims session under <out> on
    the same seeds, data seeds and configurations (same_session), if any, and of the configurations that
    session read (all without one): never another session's verdicts. Prints each run that is missing
    or did not finish."""
    seeds = suite.parse_seeds(seeds) if seeds is None or isinstance(seeds, str) else list(seeds)
    previous = latest_verdicts(out, lambda doc: same_session(doc, seeds, vary_data_seed, configs))
    outcomes = session = None
    if previous is not None:
        doc, path = previous
        # a copy made by an earlier `ncsim report` names the session's own file
        outcomes, session = (
            outcomes_of(doc),
            {**doc["session"], "verdicts_from": doc["session"].get("verdicts_from") or str(path)},
        )
    runs, missing = collect_runs(
        store, seeds, session_configs(outcomes), vary_data_seed=vary_data_seed, configs=configs
    )
    for line in not_drawn(runs, missing):
        print(f"ncsim report: run {line}; its figures say so")
    return write(out, runs, missing, outcomes=outcomes, session=session, seeds=seeds, store_root=store.root)
