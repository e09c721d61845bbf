"""The report of a claims session: one folder with the figures and the verdict table.

    <out>/runs/<UTC time, e.g. 2026-11-24T1530Z>/
        report.md        summary line, a verdict per claim, the figures embedded, a row per claim check
        verdicts.json    the same content, machine-readable
        training.png  nc_metrics.png  layerwise.png  optimizers.png  geometry.png  ablation.png
        ufm_imbalance.png
    <out>/latest         symlink to the newest folder (where links cannot be made: a text file naming it)

`write` assembles a folder from what it is given: the runs to draw (configuration name -> trajectories
over seeds) and the test outcomes of a claims session. `from_session` (the pytest plugin,
fixtures/report.py) and `from_store` (`ncsim report`) look the runs up in the run store and never train;
`from_store` takes its verdicts from the newest verdicts.json under <out>, if any.

In verdicts.json a measured value that is not a finite number is the string "inf", "-inf" or "nan"
(JSON has no such numbers); a check that measured NaN records null (ncsim.checks.decide). Each claim's
figures are those its claim file declares (FIGURES, carried in its checks' records); the UFM imbalance
figure draws the sweeps stored by claims/test_ufm_imbalance.py and never solves anything itself.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ncsim import figures, suite, ufm
from ncsim.store import RunStore
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory

OUTCOMES = ("passed", "failed", "xfail", "xpass", "skipped", "error")
FIGURES = {  # file -> title, in the order the report shows them
    "training.png": "Training dynamics",
    "nc_metrics.png": "NC1-NC4 over training",
    "layerwise.png": "Layer-wise collapse",
    "optimizers.png": "Optimizer comparison",
    "geometry.png": "Geometry at the end of training",
    "ablation.png": "Regime ablation",
    "ufm_imbalance.png": "UFM geometry under class imbalance",
}
NO_SESSION = "no claims session recorded"


@dataclass
class RecordedTest:
    """One test of a claims session: its id, outcome (one of OUTCOMES), the reason pytest gave (xfail
    reason, skip reason, error or failure message) and its "ncsim_check" records (ncsim.verdicts)."""

    nodeid: str
    outcome: str
    reason: str = ""
    checks: list[dict] = field(default_factory=list)

    @property
    def claim_file(self) -> str:
        return self.nodeid.split("::", 1)[0]

    @property
    def case(self) -> str:
        """The test's name with its parameters, without the file."""
        return self.nodeid.split("::", 1)[-1]


# ---- runs ------------------------------------------------------------------------------------------

def collect_runs(store: RunStore, seeds: Sequence[int], names: Sequence[str] = suite.CLAIM_CONFIGS
                 ) -> tuple[dict[str, list[Trajectory]], list[RunId]]:
    """The stored runs of each configuration and seed (looked up by `suite.config(name, seed).key()`,
    never trained), and the ids of those not in the store."""
    runs: dict[str, list[Trajectory]] = {}
    missing = []
    for name in names:
        runs[name] = []
        for seed in seeds:
            spec = suite.config(name, seed)
            record = store.load(spec.key())
            if record is None:
                missing.append(RunId(name, seed))
            else:
                runs[name].append(Trajectory(record, spec))
    return runs, missing


def not_drawn(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId]) -> list[str]:
    """Every run asked for that no figure draws, and why."""
    return figures.not_drawn([r for group in runs.values() for r in group], missing)


# ---- figures ---------------------------------------------------------------------------------------

def draw_figures(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = (), *, cache_dir=None,
                 sweeps: Mapping[int, Mapping] | None = None) -> tuple[dict, dict[str, str]]:
    """File name -> Figure for every figure of FIGURES, and file name -> error for those that raised
    while drawing: such a figure names the error instead, so one bug costs one figure, not the report.
    ufm_imbalance.png draws `sweeps` (None: the sweeps stored in the run store at `cache_dir`)."""
    def of(*names):
        return [run for run in missing if run.config in names]

    standard = runs.get("standard", [])
    makers = {
        "training.png": lambda: figures.training(standard, of("standard")),
        "nc_metrics.png": lambda: figures.nc_metrics(standard, of("standard")),
        "layerwise.png": lambda: figures.layerwise(standard, of("standard")),
        "optimizers.png": lambda: figures.optimizers(runs, of(*suite.figure_configs("optimizers"))),
        "geometry.png": lambda: figures.geometry(standard, of("standard"), cache_dir=cache_dir),
        "ablation.png": lambda: figures.ablation(runs, of(*suite.figure_configs("ablation"))),
        "ufm_imbalance.png": lambda: figures.ufm_imbalance(
            sweeps if sweeps is not None else ufm.stored_imbalance_sweeps(RunStore(cache_dir)) if cache_dir else {}),
    }
    drawn, errors = {}, {}
    for name, make in makers.items():
        try:
            drawn[name] = make()
        except Exception as e:  # noqa: BLE001 - reported in the figure and in report.md
            errors[name] = f"{type(e).__name__}: {e}"
            drawn[name] = figures.message(FIGURES[name], [f"could not draw: {errors[name]}"])
    return drawn, errors


# ---- verdicts --------------------------------------------------------------------------------------

def figures_for(tests: Sequence[RecordedTest]) -> list[str]:
    """The figures the claim file of these tests declares (its FIGURES, recorded with each check)."""
    return list(dict.fromkeys(f for t in tests for c in t.checks for f in c.get("figures", ())))


def counts(tests: Sequence[RecordedTest]) -> dict[str, int]:
    c = Counter(t.outcome for t in tests)
    return {outcome: c.get(outcome, 0) for outcome in OUTCOMES}


def _seeds(tests: Sequence[RecordedTest]) -> list[int]:
    """The seeds these tests' checks name."""
    return sorted({c["seed"] for t in tests for c in t.checks if c.get("seed") is not None})


def _where(tests: Sequence[RecordedTest]) -> str:
    """"seed 1" / "seeds 0, 2" for the seeds these tests checked, then the run or parameter id of each
    test without a seed."""
    seeds = _seeds(tests)
    named = [("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))] if seeds else []
    others = sorted({next((c["run"] for c in t.checks if c.get("run")), None) or _param_id(t)
                     for t in tests if not any(c.get("seed") is not None for c in t.checks)})
    return ", ".join(named + others)


def _param_id(test: RecordedTest) -> str:
    found = re.search(r"\[(.*)\]$", test.nodeid)
    return found.group(1) if found else test.case


def claim_verdict(tests: Sequence[RecordedTest]) -> str:
    """One line: "reproduces on all seeds (0, 1, 2)", "fails on seeds 1, 2", "strict xfail on ...:
    <reason>", joined when several apply."""
    by = {o: [t for t in tests if t.outcome == o] for o in OUTCOMES}
    parts = []
    if by["passed"] and not (by["failed"] or by["error"] or by["xpass"]):
        seeds = _seeds(by["passed"])
        parts.append(f"reproduces on all seeds ({', '.join(map(str, seeds))})" if len(seeds) > 1
                     else f"reproduces on seed {seeds[0]}" if seeds else f"reproduces ({len(by['passed'])} passed)")
    if by["failed"]:
        parts.append(f"fails on {_where(by['failed'])}")
    if by["error"]:
        parts.append(f"error on {_where(by['error'])}")
    if by["xpass"]:
        parts.append(f"passes although a strict xfail (which fails the suite) on {_where(by['xpass'])}")
    if by["xfail"]:
        reasons = "; ".join(dict.fromkeys(t.reason.rstrip(". ") for t in by["xfail"] if t.reason))
        parts.append(f"strict xfail on {_where(by['xfail'])}" + (f": {reasons}" if reasons else ""))
    if by["skipped"]:
        parts.append(f"{len(by['skipped'])} skipped")
    return "; ".join(parts) or "no tests ran"


def verdicts(outcomes: Sequence[RecordedTest]) -> list[dict]:
    """The claims, one per claim file (sorted), each with its verdict, outcome counts, figures and tests."""
    files = sorted({t.claim_file for t in outcomes})
    table = []
    for f in files:
        tests = sorted((t for t in outcomes if t.claim_file == f), key=lambda t: t.nodeid)
        table.append({"file": f, "verdict": claim_verdict(tests), "counts": counts(tests),
                      "figures": figures_for(tests), "tests": [asdict(t) for t in tests]})
    return table


# ---- the folder ------------------------------------------------------------------------------------

def new_folder(out: str | Path, now: datetime) -> Path:
    """<out>/runs/<UTC minute>Z, with -2, -3, ... appended when that minute already has one."""
    parent = Path(out) / "runs"
    parent.mkdir(parents=True, exist_ok=True)
    stem = now.strftime("%Y-%m-%dT%H%MZ")
    for n in range(1, 1000):
        folder = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"no free report folder name for {stem} in {parent}")


def point_latest(out: str | Path, folder: Path) -> Path:
    """Make <out>/latest name `folder`: a relative symlink, replaced atomically; a text file holding the
    relative path where symlinks cannot be made."""
    latest = Path(out) / "latest"
    target = folder.relative_to(Path(out)).as_posix()
    tmp = latest.with_name(f".latest.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(target, target_is_directory=True)
    except OSError:
        tmp.write_text(target + "\n")
    os.replace(tmp, latest)
    return latest


def latest_verdicts(out: str | Path) -> tuple[dict, Path] | None:
    """The newest recorded claims session's verdicts.json under <out>/runs (by the session's end time),
    and its path; None when no report there holds one."""
    found = []
    for path in Path(out).glob("runs/*/verdicts.json"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("session"):
            found.append((str(doc["session"].get("finished", "")), path.parent.name, doc, path))
    if not found:
        return None
    *_, doc, path = max(found, key=lambda f: f[:2])
    return doc, path


def outcomes_of(doc: Mapping) -> list[RecordedTest]:
    """The test outcomes recorded in a verdicts.json document."""
    return [RecordedTest(**t) for claim in doc.get("claims", []) for t in claim["tests"]]


def write(out: str | Path, runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = (), *,
          outcomes: Sequence[RecordedTest] | None = None, session: Mapping | None = None,
          seeds: Sequence[int] = (), store_root=None, sweeps: Mapping[int, Mapping] | None = None,
          now: datetime | None = None) -> Path:
    """Write a report folder under <out>/runs and point <out>/latest at it; returns the folder.

    `runs`/`missing`: what to draw (collect_runs); `outcomes` None means no claims session is recorded
    (the table says so); `session`: where the outcomes come from (end time "finished", "command",
    "exitstatus", optionally "verdicts_from"); `store_root`: the run store (also where the MNIST-1D
    arrays for the geometry figure are cached); `sweeps`: the UFM imbalance sweep per seed (None: those
    stored in the run store)."""
    now = now or datetime.now(timezone.utc)
    folder = new_folder(out, now)
    drawn, errors = draw_figures(runs, missing, cache_dir=store_root, sweeps=sweeps)
    for name, fig in drawn.items():
        figures.save(fig, folder / name)
    doc = {
        "format": 1,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "folder": folder.name,
        "seeds": list(seeds),
        "store": None if store_root is None else str(store_root),
        "session": None if outcomes is None else dict(session or {}),
        "summary": None if outcomes is None else counts(outcomes),
        "claims": [] if outcomes is None else verdicts(outcomes),
        "runs": {name: [r.label for r in group] for name, group in runs.items()},
        "not_drawn": not_drawn(runs, missing),
        "figures": {name: {"title": FIGURES[name], "error": errors.get(name)} for name in drawn},
    }
    (folder / "verdicts.json").write_text(json.dumps(_jsonable(doc), indent=1, allow_nan=False) + "\n")
    (folder / "report.md").write_text(markdown(doc))
    point_latest(out, folder)
    return folder


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ---- report.md -------------------------------------------------------------------------------------

def markdown(doc: Mapping) -> str:
    """report.md from the verdicts.json document."""
    lines = [f"# Neural Collapse claims report, {doc['folder']}", ""]
    session = doc["session"]
    facts = [f"written {doc['created']}", f"seeds {', '.join(map(str, doc['seeds']))}"]
    if doc.get("store"):
        facts.append(f"run store `{doc['store']}`")
    lines += [" · ".join(facts), ""]
    if session is None:
        lines += [f"**Verdicts: {NO_SESSION}.** Run `pytest claims` to check the claims; the figures below "
                  "are drawn from the runs in the store.", ""]
    else:
        total = sum(doc["summary"].values())
        lines += [f"**{total} tests: " + ", ".join(f"{n} {o}" for o, n in doc["summary"].items()) + "**", ""]
        origin = f"Verdicts from `{session['command']}`" if session.get("command") else "Verdicts from a claims session"
        origin += f", finished {session['finished']}" if session.get("finished") else ""
        origin += f" (exit status {session['exitstatus']})" if session.get("exitstatus") is not None else ""
        if session.get("verdicts_from"):
            origin += f"; read from `{session['verdicts_from']}`, figures redrawn from the run store now"
        lines += [origin + ".", ""]
    if doc["not_drawn"]:
        lines += ["**Runs not drawn** (missing from the store or not finished): "
                  + "; ".join(doc["not_drawn"]) + ".", ""]

    lines += ["## Verdicts", ""]
    if session is None:
        lines += [f"{NO_SESSION.capitalize()}.", ""]
    else:
        lines += ["| claim | verdict | tests | figures |", "|---|---|---|---|"]
        for claim in doc["claims"]:
            tally = ", ".join(f"{n} {o}" for o, n in claim["counts"].items() if n)
            lines.append(f"| [{Path(claim['file']).stem}](#{_anchor(claim['file'])}) | {_cell(claim['verdict'])} "
                         f"| {tally} | {_figure_links(claim['figures'], doc)} |")
        lines.append("")

    lines += ["## Figures", ""]
    for name, info in doc["figures"].items():
        lines += [f"### {info['title']}", "", f"![{info['title']}]({name})", ""]
        if info.get("error"):
            lines += [f"**Could not draw {name}:** {info['error']}", ""]

    if session is not None:
        lines += ["## Checks by claim", ""]
        for claim in doc["claims"]:
            lines += _claim_section(claim, doc)
    return "\n".join(lines).rstrip() + "\n"


def _claim_section(claim: Mapping, doc: Mapping) -> list[str]:
    """A claim's verdict, figures, what each of its checks measures, and a row per check."""
    statistics = {c["tolerance"]: c["statistic"] for t in claim["tests"] for c in t["checks"]}
    lines = [f"### {claim['file']}", "", f"**Verdict:** {claim['verdict']}.  ",
             f"**Figures:** {_figure_links(claim['figures'], doc) or 'none'}", ""]
    lines += [f"- `{name}`: {statistic}" for name, statistic in statistics.items()]
    lines += ["", "| test | outcome | check | measured | needs | seed | run | source | note |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in claim["tests"]:
        case = RecordedTest(**t).case
        outcome = f"**{t['outcome']}**" if t["outcome"] in ("failed", "error", "xpass") else t["outcome"]
        for c in t["checks"] or [None]:
            if c is None:
                row = [case, outcome, "", "", "", "", "", "", t["reason"]]
            else:
                # a failed check's message repeats the row; any other reason (xfail, error, ...) is news
                own = t["outcome"] != "failed" or c.get("holds", True)
                reason = t["reason"] if own and t["outcome"] != "passed" else ""
                note = " ".join(x for x in (c.get("note", ""), reason) if x)
                row = [case, outcome, f"`{c['tolerance']}`", _number(c.get("measured")),
                       f"{c['op']} {_number(c['threshold'])}", "" if c.get("seed") is None else str(c["seed"]),
                       c.get("run") or "", c.get("source", ""), note]
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    return lines + [""]


def _figure_links(names: Sequence[str], doc: Mapping) -> str:
    return ", ".join(f"[{n}]({n})" for n in names if n in doc["figures"])


def _number(value) -> str:
    if value is None:
        return "nan"
    if isinstance(value, str):
        return value
    return f"{value:.4g}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# ---- entry points ----------------------------------------------------------------------------------

def from_session(store: RunStore, out: str | Path, seeds: Sequence[int], outcomes: Sequence[RecordedTest],
                 session: Mapping) -> Path:
    """The report at the end of a claims session (fixtures/report.py): the session's outcomes, the
    session's runs as stored."""
    runs, missing = collect_runs(store, seeds)
    return write(out, runs, missing, outcomes=outcomes, session=session, seeds=seeds, store_root=store.root)


def from_store(store: RunStore, out: str | Path = "reports", seeds: str | Sequence[int] | None = None) -> Path:
    """`ncsim report`: redraw the figures from the stored runs (nothing trains) with the verdicts of the
    newest claims session under <out>, if any. Prints each run that is missing or did not finish."""
    seeds = suite.parse_seeds(seeds) if seeds is None or isinstance(seeds, str) else list(seeds)
    runs, missing = collect_runs(store, seeds)
    for line in not_drawn(runs, missing):
        print(f"ncsim report: run {line}; its figures say so")
    previous = latest_verdicts(out)
    outcomes = session = None
    if previous is not None:
        doc, path = previous
        # a copy made by an earlier `ncsim report` names the session's own file
        outcomes, session = outcomes_of(doc), {**doc["session"], "verdicts_from": doc["session"].get("verdicts_from")
                                               or str(path)}
    return write(out, runs, missing, outcomes=outcomes, session=session, seeds=seeds, store_root=store.root)
