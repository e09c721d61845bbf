"""The report of a claims session: one folder with the figures and the verdict table.

    <out>/runs/<UTC time, e.g. 2026-11-24T1530Z>/
        report.md        headline counts, a verdict per claim, the figures embedded, a row per check
        verdicts.json    the same content, machine-readable, with every field of every check record
        verdicts.png (with a claims session)  training.png  nc_metrics.png  layerwise.png
        optimizers.png  geometry.png  ablation.png  losses.png  label_noise.png  imbalance.png
        transfer.png  ufm_imbalance.png
    <out>/latest         symlink to the newest folder (where links cannot be made: a text file naming it)

A check is decided over the seeds of a configuration (ncsim.checks: one test per check and
configuration, one record each). A claim file's verdict line counts its checks: "reproduces: 12 of 12
checks", "partly reproduces: ..." when some are documented strict xfails, "does not reproduce: <checks>"
or "inconclusive: <checks>" when a check failed (claim_verdict). The headline counts the empirical
claims on trained CNNs apart from the numerical checks of the unconstrained features model
(claims/test_ufm_*.py, one value per test).

`write` assembles a folder from what it is given: the runs to draw (configuration name -> trajectories
over seeds) and the test outcomes of a claims session. `from_session` (the pytest plugin,
ncsim/pytest_plugin/report.py) and `from_store` (`ncsim report`) look the runs up in the run store and never train;
`from_store` takes its verdicts from the newest verdicts.json under <out>, if any.

In verdicts.json a measured value that is not a finite number is the string "inf", "-inf" or "nan"
(JSON has no such numbers); a check that measured NaN records null (ncsim.checks.decide). Each claim's
figures are those its claim file declares (FIGURES, carried in its checks' records); the UFM imbalance
figure draws the sweeps stored by claims/test_ufm_imbalance.py and never solves anything itself.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ncsim import figures, suite
from ncsim.checks import describe_rule, jsonable
from ncsim.spec import RunSpec
from ncsim.store import RunStore
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory

# pytest's outcomes of a test: "xpassed" is a non-strict xfail that passed (a borderline check that
# reproduced: its check counts as reproducing), "xpass" a strict one that passed (which fails the suite).
OUTCOMES = ("passed", "xpassed", "failed", "xfail", "xpass", "skipped", "error")
FIGURES = {  # file -> title, in the order the report shows them
    "verdicts.png": "Verdicts over seeds",
    "training.png": "Training dynamics",
    "nc_metrics.png": "NC1-NC4 over training",
    "layerwise.png": "Layer-wise collapse",
    "optimizers.png": "Optimizer comparison",
    "geometry.png": "Geometry at the end of training",
    "ablation.png": "Regime ablation",
    "losses.png": "All losses collapse",
    "label_noise.png": "Collapse under label noise",
    "imbalance.png": "Minority collapse under class imbalance",
    "transfer.png": "Collapse on new classes",
    "ufm_imbalance.png": "UFM geometry under class imbalance",
}
NO_SESSION = "no claims session recorded on these seeds and configurations"
KINDS = {  # kind of claim file (`kind`) -> what the headline calls it
    "cnn": "Empirical claims on trained CNNs (MNIST-1D), decided over seeds",
    "extended": "Extended tier (--extended): claims of 2021-2023 on trained CNNs, decided over seeds",
    "ufm": "Numerical checks of the unconstrained features model (theory, one value per test)",
}
CHECK_STATUSES = {  # what a test says of its check (check_status) -> how a verdict line names it
    "reproduces": "reproduces",
    "xfail": "does not reproduce (strict xfail, expected)",
    "xfail-inconclusive": "inconclusive (xfail, expected)",
    "does not reproduce": "does not reproduce",
    "inconclusive": "inconclusive",
    "error": "error before deciding",
    "xpass": "passes although a strict xfail (which fails the suite)",
    "skipped": "skipped",
}
SEVERE = ("does not reproduce", "inconclusive", "error", "xpass")   # what a verdict line names first


@dataclass
class RecordedTest:
    """One test of a claims session: its id, outcome (one of OUTCOMES), the reason pytest gave (xfail
    reason, skip reason, error or failure message) and its "ncsim_check" records (ncsim.checks.decide:
    one per test, none when the test did not get to decide its check)."""

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

def collect_runs(store: RunStore, seeds: Sequence[int], names: Sequence[str] = suite.CLAIM_CONFIGS,
                 vary_data_seed: bool = False, configs: suite.Configurations | None = None
                 ) -> tuple[dict[str, list[Trajectory]], list[RunId]]:
    """The stored runs of each configuration and seed (looked up by the key of `configs.spec(run)`, the
    suite's configurations by default, never trained; with `vary_data_seed` the MNIST-1D generator seed
    is the training seed, as pytest's --vary-data-seed), and the ids of those not in the store. A
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


# ---- figures ---------------------------------------------------------------------------------------

def figure_makers(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = (), *, cache_dir=None,
                  sweeps: Mapping[int, Mapping] | None = None, outcomes: Sequence[RecordedTest] | None = None
                  ) -> dict[str, Callable[[], object]]:
    """File name -> a function drawing that figure of FIGURES (a matplotlib Figure). With a claims
    session recorded (`outcomes` not None): verdicts.png, which draws the check records of `outcomes`
    (with each test's outcome), and the figures the checked claims declare (all, when they declare none);
    without one, every figure but a comparison none of whose variants is among the runs asked for
    (FIGURE_TABLES). ufm_imbalance.png draws `sweeps` (None: the sweeps stored in the run store at
    `cache_dir`)."""
    def of(*names):
        return [run for run in missing if run.config in names]

    def stored_sweeps():
        from ncsim import ufm  # imports torch: only when the sweeps are drawn

        return ufm.stored_imbalance_sweeps(RunStore(cache_dir)) if cache_dir else {}

    standard = runs.get("standard", [])
    makers = {
        "verdicts.png": lambda: figures.verdicts([{**c, "outcome": t.outcome} for t in outcomes for c in t.checks]),
        "training.png": lambda: figures.training(standard, of("standard")),
        "nc_metrics.png": lambda: figures.nc_metrics(standard, of("standard")),
        "layerwise.png": lambda: figures.layerwise(standard, of("standard")),
        "optimizers.png": lambda: figures.optimizers(runs, of(*suite.figure_configs("optimizers"))),
        "geometry.png": lambda: figures.geometry(standard, of("standard"), cache_dir=cache_dir),
        "ablation.png": lambda: figures.ablation(runs, of(*suite.figure_configs("ablation"))),
        "losses.png": lambda: figures.losses(runs, of(*suite.figure_configs("losses"))),
        "label_noise.png": lambda: figures.label_noise(runs, of(*suite.figure_configs("label-noise"))),
        "imbalance.png": lambda: figures.imbalance(runs, of(*suite.figure_configs("imbalance"))),
        "transfer.png": lambda: figures.transfer(runs, of(*suite.figure_configs("transfer"))),
        "ufm_imbalance.png": lambda: figures.ufm_imbalance(
            sweeps if sweeps is not None else stored_sweeps()),
    }
    if outcomes is None:
        del makers["verdicts.png"]
        asked = set(runs) | {run.config for run in missing}
        for name, table in FIGURE_TABLES.items():  # a comparison none of whose variants was asked for
            if not asked & (set(suite.figure_configs(table)) - {suite.STANDARD}):
                del makers[name]
        return makers
    declared = {"verdicts.png", *figures_for(outcomes)}  # a session draws the figures of the claims it checked
    return {name: make for name, make in makers.items() if name in declared} if len(declared) > 1 else makers


def session_configs(outcomes: Sequence[RecordedTest] | None) -> tuple[str, ...]:
    """The suite's configurations that a claims session's checks read (each record's configuration and
    reference), in the suite's order; all of them when there is no session or it read none (UFM only)."""
    read = {n for t in outcomes or () for c in t.checks for n in (c.get("config"), c.get("against"))}
    return tuple(n for n in suite.CLAIM_CONFIGS if n in read) or suite.CLAIM_CONFIGS


FIGURE_TABLES = {  # a comparison figure -> its table in suite.toml ([figures.<table>]), which names its configurations
    "optimizers.png": "optimizers", "ablation.png": "ablation", "losses.png": "losses",
    "label_noise.png": "label-noise", "imbalance.png": "imbalance", "transfer.png": "transfer",
}
_MAKERS: dict[str, tuple[Callable[[], object], Path]] = {}  # what render's forked processes draw


def _draw_and_save(name: str) -> str | None:
    """Draw the figure `name` of _MAKERS and save it; the error if drawing raised, when the figure
    names the error instead, so one bug costs one figure, not the report."""
    make, path = _MAKERS[name]
    error = None
    try:
        fig = make()
    except Exception as e:  # noqa: BLE001 - reported in the figure and in report.md
        error = f"{type(e).__name__}: {e}"
        fig = figures.message(FIGURES[name], [f"could not draw: {error}"])
    figures.save(fig, path)
    return error


# Figures that run the network (a forward pass for the features; imbalance.png and transfer.png through
# ncsim.probes): drawn in this process, since a forked child must not use torch, whose OpenMP thread pool
# does not survive a fork.
RUNS_THE_NETWORK = {"geometry.png", "imbalance.png", "transfer.png"}


def render(makers: Mapping[str, Callable[[], object]], folder: Path) -> dict[str, str]:
    """Draw and save every figure of `makers` into `folder`; returns file name -> error for those that
    raised. Drawing is mostly Python (threads would not help), so the figures of the stored columns are
    drawn by forked processes, one per core, which read the runs this process holds, while this process
    draws those of RUNS_THE_NETWORK; one after the other where processes cannot be forked."""
    _MAKERS.clear()
    _MAKERS.update({name: (make, folder / name) for name, make in makers.items()})
    here = [name for name in makers if name in RUNS_THE_NETWORK]
    forked = [name for name in makers if name not in RUNS_THE_NETWORK]
    processes = min(len(forked), os.cpu_count() or 1)
    try:
        if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                pending = pool.map_async(_draw_and_save, forked, chunksize=1)
                errors = dict(zip(here, map(_draw_and_save, here)))
                errors.update(zip(forked, pending.get()))
        else:
            errors = {name: _draw_and_save(name) for name in makers}
    finally:
        _MAKERS.clear()
    return {name: errors[name] for name in makers if errors[name] is not None}


# ---- verdicts --------------------------------------------------------------------------------------

def figures_for(tests: Sequence[RecordedTest]) -> list[str]:
    """The figures the claim file of these tests declares (its FIGURES, recorded with each check)."""
    return list(dict.fromkeys(f for t in tests for c in t.checks for f in c.get("figures", ())))


def counts(tests: Sequence[RecordedTest]) -> dict[str, int]:
    c = Counter(t.outcome for t in tests)
    return {outcome: c.get(outcome, 0) for outcome in OUTCOMES}


def kind(claim_file: str, tests: Sequence[RecordedTest] = ()) -> str:
    """"ufm" for a numerical check of the unconstrained features model (claims/test_ufm_*.py),
    "extended" for a claim of the extended tier (its checks' records say so: the file is marked
    pytest.mark.extended), "cnn" for any other empirical claim on trained networks."""
    if Path(claim_file).name.startswith("test_ufm_"):
        return "ufm"
    return "extended" if any(c.get("extended") for t in tests for c in t.checks) else "cnn"


def check_status(test: RecordedTest) -> str:
    """What a test says of its check, a key of CHECK_STATUSES: its pytest outcome, and for a failure or
    an expected failure the verdict of its record ("does not reproduce", or "inconclusive" when the
    bound straddles the threshold); a test that failed without deciding a check is an error."""
    failing = [c.get("verdict") for c in test.checks if not c.get("holds")]
    if test.outcome == "xfail" and failing and all(v == "inconclusive" for v in failing):
        return "xfail-inconclusive"
    if test.outcome != "failed":
        return {"passed": "reproduces", "xpassed": "reproduces"}.get(test.outcome, test.outcome)
    if not failing:
        return "error"
    return "inconclusive" if all(v == "inconclusive" for v in failing) else "does not reproduce"


def where(record: Mapping) -> str:
    """The configuration a check was decided on ("lbfgs vs standard" for a comparison); for a UFM check,
    which records no configuration, its run and seed."""
    if record.get("config"):
        return record["config"] + (f" vs {record['against']}" if record.get("against") else "")
    seed = next(iter(record.get("seeds") or ()), None)
    return " ".join(x for x in (record.get("run") or "", "" if seed is None else f"s{seed}") if x)


def check_name(test: RecordedTest) -> str:
    """"<tolerance> [<where>]" of a test's check; the test's parameter id when it decided none."""
    record = next(iter(test.checks), None)
    return f"{record['tolerance']} [{where(record) or _param_id(test)}]" if record else _param_id(test)


def _param_id(test: RecordedTest) -> str:
    found = re.search(r"\[(.*)\]$", test.nodeid)
    return found.group(1) if found else test.case


def _many(n: int, one: str, more: str) -> str:
    return f"{n} {one if n == 1 else more}"


def claim_verdict(tests: Sequence[RecordedTest]) -> tuple[str, str]:
    """The claim's status and its verdict line over its checks (one test each), e.g.

        reproduces           "reproduces: 12 of 12 checks"
        partly reproduces    "partly reproduces: 9 checks reproduce; 3 do not (strict xfail, expected):
                             <checks>: <reasons>"
        does not reproduce   "does not reproduce: <checks>; inconclusive: <checks>; 9 of 12 checks reproduce"

    the checks that did not reproduce named first, most severe first (SEVERE). A claim with an expected
    failure is never headlined as reproducing."""
    by = {s: [t for t in tests if check_status(t) == s] for s in CHECK_STATUSES}
    ran, passed = len(tests) - len(by["skipped"]), len(by["reproduces"])
    xfail = by["xfail"] + by["xfail-inconclusive"]

    def listed(*statuses: str) -> str:
        return ", ".join(dict.fromkeys(check_name(t) for s in statuses for t in by[s]))

    reasons = "; ".join(dict.fromkeys(t.reason.rstrip(". ") for t in xfail if t.reason))
    expected = ("; ".join(f"{_many(len(by[s]), one, more)} {what}: {listed(s)}" for s, one, more, what in (
        ("xfail", "does", "do", "not (strict xfail, expected)"),
        ("xfail-inconclusive", "is", "are", "inconclusive (xfail, expected)")) if by[s])
                + (f": {reasons}" if reasons else ""))
    severe = [s for s in SEVERE if by[s]]
    if severe:
        status = CHECK_STATUSES[severe[0]]
        parts = [f"{CHECK_STATUSES[s]}: {listed(s)}" for s in severe] + [f"{passed} of {ran} checks reproduce"]
        parts += [expected] if xfail else []
    elif xfail:
        status = ("partly reproduces" if passed else CHECK_STATUSES["xfail"] if by["xfail"]
                  else CHECK_STATUSES["xfail-inconclusive"])
        parts = ([f"partly reproduces: {_many(passed, 'check reproduces', 'checks reproduce')}", expected] if passed
                 else [f"{status}: {listed('xfail', 'xfail-inconclusive')}" + (f": {reasons}" if reasons else "")])
    else:
        status = "reproduces" if passed else "no checks ran"
        parts = [f"reproduces: {passed} of {ran} checks" if passed else status]
    if by["skipped"]:
        parts.append(f"{len(by['skipped'])} skipped")
    return status, "; ".join(parts)


def verdicts(outcomes: Sequence[RecordedTest]) -> list[dict]:
    """The claims, one per claim file (sorted): its kind (KINDS), status and verdict line
    (claim_verdict), how many checks have each status, the pytest outcome counts, its figures and its
    tests with their check records."""
    files = sorted({t.claim_file for t in outcomes})
    table = []
    for f in files:
        tests = sorted((t for t in outcomes if t.claim_file == f), key=lambda t: t.nodeid)
        status, line = claim_verdict(tests)
        tally = Counter(map(check_status, tests))
        table.append({"file": f, "kind": kind(f, tests), "status": status, "verdict": line,
                      "check_statuses": {s: tally[s] for s in CHECK_STATUSES if tally[s]}, "counts": counts(tests),
                      "figures": figures_for(tests), "tests": [asdict(t) for t in tests]})
    return table


def headline(claims: Sequence[Mapping]) -> dict[str, dict]:
    """Per kind of claim (KINDS, those present): how many claim files have each status and how
    many checks each check status."""
    out = {}
    for k in KINDS:
        mine = [c for c in claims if c["kind"] == k]
        if mine:
            checks = sum((Counter(c["check_statuses"]) for c in mine), Counter())
            out[k] = {"claims": dict(Counter(c["status"] for c in mine).most_common()),
                      "checks": {s: checks[s] for s in CHECK_STATUSES if checks[s]}}
    return out


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


def same_session(doc: Mapping, seeds: Sequence[int], vary_data_seed: bool = False,
                 configs: suite.Configurations | None = None) -> bool:
    """Whether a verdicts.json document records a claims session on exactly these seeds, with the same
    data seeds (--vary-data-seed) and the same configurations: the suite's (`configs` None or without
    a source), or those of a --spec session whose run has the key of `configs`' standard run."""
    session = doc.get("session") or {}
    vary = session.get("vary_data_seed", "--vary-data-seed" in str(session.get("command", "")))
    want = None if configs is None or configs.source is None else configs.specs[suite.STANDARD].key()
    try:
        run = session.get("spec", {}).get("run")
        have = None if run is None else RunSpec.from_dict(run).key()
    except (AttributeError, TypeError, ValueError):  # a spec this version cannot read is not this one
        return False
    return list(doc.get("seeds") or ()) == list(seeds) and bool(vary) == bool(vary_data_seed) and have == want


def latest_verdicts(out: str | Path, matches: Callable[[Mapping], bool] = lambda doc: True
                    ) -> tuple[dict, Path] | None:
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


def write(out: str | Path, runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = (), *,
          outcomes: Sequence[RecordedTest] | None = None, session: Mapping | None = None,
          seeds: Sequence[int] = (), store_root=None, sweeps: Mapping[int, Mapping] | None = None,
          now: datetime | None = None) -> Path:
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
        "claims": claims,
        "runs": {name: [r.label for r in group] for name, group in runs.items()},
        "not_drawn": not_drawn(runs, missing),
        "figures": {name: {"title": FIGURES[name], "error": errors.get(name)} for name in makers},
    }
    (folder / "verdicts.json").write_text(json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")
    (folder / "report.md").write_text(markdown(doc))
    point_latest(out, folder)
    return folder


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
        for k, tally in doc["headline"].items():
            files, checks = sum(tally["claims"].values()), sum(tally["checks"].values())
            lines += [f"**{KINDS[k]}: {_many(files, 'claim file', 'claim files')} ({_tally(tally['claims'])}); "
                      f"{_many(checks, 'check', 'checks')} ({_tally(tally['checks'], CHECK_STATUSES)}).**", ""]
        total = sum(doc["summary"].values())
        lines += [f"{total} tests: " + ", ".join(f"{n} {o}" for o, n in doc["summary"].items() if n) + ".", ""]
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
    for k, title in KINDS.items():
        claims = [c for c in doc["claims"] if c["kind"] == k]
        if claims:
            lines += [f"**{title}**", "", "| claim | verdict | tests | figures |", "|---|---|---|---|"]
            for claim in claims:
                outcomes = ", ".join(f"{n} {o}" for o, n in claim["counts"].items() if n)
                lines.append(f"| [{Path(claim['file']).stem}](#{_anchor(claim['file'])}) | {_cell(claim['verdict'])} "
                             f"| {outcomes} | {_figure_links(claim['figures'], doc)} |")
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


def _tally(counted: Mapping[str, int], names: Mapping[str, str] | None = None) -> str:
    return ", ".join(f"{(names or {}).get(status, status)}: {n}" for status, n in counted.items())


CHECK_COLUMNS = ("check", "configuration", "rule", "values per seed", "aggregate", "bound / interval", "p",
                 "needs", "verdict", "outcome", "note")


def _claim_section(claim: Mapping, doc: Mapping) -> list[str]:
    """A claim's verdict, figures, what each of its checks measures and where it comes from, and a row
    per check (one per test; a test that decided none gets a row with its reason)."""
    statistics = {c["tolerance"]: (c["statistic"], c.get("source", "")) for t in claim["tests"] for c in t["checks"]}
    lines = [f"### {claim['file']}", "", f"**Verdict:** {claim['verdict']}.  ",
             f"**Figures:** {_figure_links(claim['figures'], doc) or 'none'}", ""]
    lines += [f"- `{name}`: {statistic}" + (f" ({source})" if source else "")
              for name, (statistic, source) in statistics.items()]
    lines += ["", "| " + " | ".join(CHECK_COLUMNS) + " |", "|" + "---|" * len(CHECK_COLUMNS)]
    for t in claim["tests"]:
        outcome = f"**{t['outcome']}**" if t["outcome"] in ("failed", "error", "xpass") else t["outcome"]
        for c in t["checks"] or [None]:
            if c is None:
                row = [RecordedTest(**t).case] + [""] * 8 + [outcome, t["reason"]]
            else:
                # a failed check's message repeats the row; any other reason (xfail, error, ...) is news
                own = t["outcome"] != "failed" or c.get("holds", True)
                reason = t["reason"] if own and t["outcome"] != "passed" else ""
                row = [f"`{c['tolerance']}`", where(c), describe_rule(c), per_seed(c), _aggregate(c), _rests_on(c),
                       _p(c), _needs(c), c.get("verdict", ""), outcome,
                       " ".join(x for x in (c.get("note", ""), reason) if x)]
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    return lines + [""]


def per_seed(record: Mapping) -> str:
    """Each seed's value, compact: "s0 2.4e-3, s1 2.2e-3, s2 nan" (the run label without its
    configuration, e.g. "s3-d3" under a varied data seed)."""
    values = record.get("values") or []
    runs, seeds = record.get("runs") or [None] * len(values), record.get("seeds") or [None] * len(values)

    def label(run, seed) -> str:
        if run and record.get("config"):
            return figures.short_label(run, record["config"])
        return "" if seed is None else f"s{seed}"
    return ", ".join(f"{label(r, s)} {_number(v)}".strip() for r, s, v in zip(runs, seeds, values))


def _aggregate(record: Mapping) -> str:
    """The aggregate the rule rests on, named ("2.3e-3 (geometric mean)"); one value is itself."""
    if len(record.get("values") or []) <= 1 or record.get("measured") is None:
        return _number(record.get("measured"))
    rule = record.get("rule", "every")
    log = rule == "equivalence" or record.get("scale") == "log"
    return f"{_number(record['measured'])} ({'median' if rule == 'every' else 'geometric mean' if log else 'mean'})"


def _rests_on(record: Mapping) -> str:
    if record.get("interval"):
        lo, hi = record["interval"]
        return f"90% interval {_number(lo)} to {_number(hi)}"
    return "" if record.get("bound") is None else f"95% bound {_number(record['bound'])}"


def _p(record: Mapping) -> str:
    p = "" if record.get("p_value") is None else _number(record["p_value"])
    if record.get("p_differs") is not None:
        p += f"; differs from 1: p {_number(record['p_differs'])}"
    return p


def _needs(record: Mapping) -> str:
    if record["op"] == "within":
        return f"within ×{_number(record['threshold'])} of 1"
    return f"{record['op']} {_number(record['threshold'])}"


def _figure_links(names: Sequence[str], doc: Mapping) -> str:
    return ", ".join(f"[{n}]({n})" for n in names if n in doc["figures"])


def _number(value) -> str:
    """At most 3 significant digits, compact ("0.052", "2.4e-3", "1.2e4"); None is NaN (JSON has none),
    a string (verdicts.json's "inf", "nan") stays as it is."""
    if value is None:
        return "nan"
    if isinstance(value, str):
        return value
    if value == 0 or not math.isfinite(value) or 1e-2 <= abs(value) < 1e3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# ---- entry points ----------------------------------------------------------------------------------

def from_session(store: RunStore, out: str | Path, seeds: Sequence[int], outcomes: Sequence[RecordedTest],
                 session: Mapping, vary_data_seed: bool = False, configs: suite.Configurations | None = None) -> Path:
    """The report at the end of a claims session (ncsim/pytest_plugin/report.py): the session's
    outcomes, and the runs of the configurations its checks read (session_configs: a session without
    --extended draws no extended figure) as stored (those of `configs`, a --spec session's; default the
    suite's)."""
    runs, missing = collect_runs(store, seeds, session_configs(outcomes), vary_data_seed=vary_data_seed,
                                 configs=configs)
    return write(out, runs, missing, outcomes=outcomes, session=session, seeds=seeds, store_root=store.root)


def from_store(store: RunStore, out: str | Path = "reports", seeds: str | Sequence[int] | None = None,
               vary_data_seed: bool = False, configs: suite.Configurations | None = None) -> Path:
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
        outcomes, session = outcomes_of(doc), {**doc["session"], "verdicts_from": doc["session"].get("verdicts_from")
                                               or str(path)}
    runs, missing = collect_runs(store, seeds, session_configs(outcomes), vary_data_seed=vary_data_seed,
                                 configs=configs)
    for line in not_drawn(runs, missing):
        print(f"ncsim report: run {line}; its figures say so")
    return write(out, runs, missing, outcomes=outcomes, session=session, seeds=seeds, store_root=store.root)
