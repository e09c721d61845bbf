"""The `ncsim` command: train runs (served from the store when recorded), show stored runs, train
many seeds at once, and render the report from the store.

    ncsim train --preset standard --set epochs=2 --set optimizer=adam
    ncsim train my_run.toml --cache-dir /tmp/runs
    ncsim show                 # list stored runs (--json, --csv: one record per run)
    ncsim show KEY_OR_LABEL    # one run's summary (--json, --csv: its trajectory, a row per epoch)
    ncsim sweep standard --seeds 0-49 --scheduler tcp://head:8786   # many runs (ncsim.sweep)
    ncsim report               # figures and verdict table from stored runs, no training
    ncsim decide values.csv    # verdicts from per-seed values you already have (ncsim.decide)

Exit codes: 0 done; 2 a bad command, spec or environment (unwritable store, a store path that is a
file, CUDA asked for without CUDA, full disk), with one line `ncsim: error: ...` naming the problem;
3 a run that stopped (diverged or degenerate), with its reason; 1 a sweep in which a run failed;
130 interrupted (Ctrl-C); 141 (as a shell reports a command killed by SIGPIPE) when the reader of
its output went away (`ncsim show --csv | head -1`), quietly. A damaged record is flagged in `ncsim
show`, never fatal. Warnings (a record served as trained on another thread count, a corrupt record
moved aside) are one line each, `ncsim: warning: ...`. Text from a record (a run's name, a reason) is
printed with control characters escaped, so a record cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

import numpy as np

from ncsim import __version__
from ncsim.api import RunLookupError, check_device, matching_runs, open_store, record_label
from ncsim.decide import DecideError
from ncsim.spec import RunSpec, SpecError, load_specs, presets
from ncsim.store import CorruptFileError, Record, RunStore
from ncsim.suite import parse_seed_list
from ncsim.sweep import SweepError
from ncsim.verdict import jsonable

# Exit codes (see the module docstring; argparse's own usage errors exit 2 too).
EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 3, 130, 141
# What `ncsim show --json/--csv` gives for each stored record: identity, how far it ran, and the
# final value of these columns (NC2 as the ETF distance of the means).
FINAL_COLUMNS = ("train_error", "test_error", "train.nc1", "train.nc2_etf_distance", "train.nc3", "train.nc4")
LIST_FIELDS = ("key", "kind", "label", "status", "epochs", "tpt_epoch", *FINAL_COLUMNS, "reason")

SUMMARY_KEYS = (
    "nc1",
    "nc1_trace",
    "nc2_equinorm",
    "w_equinorm",
    "nc2_equiangularity",
    "nc2_maxangle",
    "w_maxangle",
    "nc3",
    "nc4",
    "ncc_error",
)


def parse_overrides(items: list[str]) -> dict:
    """`key=value` pairs; values parsed as TOML (so 2 is an int, true a bool) or kept as strings;
    `data.<arg>=value` sets a generator argument."""
    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set takes key=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        if key.startswith("data."):
            out.setdefault("data", {})[key[5:]] = value
        else:
            out[key] = value
    return out


def printable(text) -> str:
    """`text` as str with every non-printable character (newline, escape, ...) written as its Python
    escape, so that a name or reason read from a record prints as one inert line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _value(x, spec: str) -> str:
    """`x` formatted by `spec`, or "-" when it is missing or not a number."""
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return "-"


def _column(record: Record, name: str, at: int) -> float | None:
    """A column's entry (0: initialisation, -1: last evaluated epoch), None if the record lacks it."""
    v = record.arrays.get(name)
    ok = v is not None and v.ndim == 1 and len(v) and np.issubdtype(v.dtype, np.number)
    return float(v[at]) if ok else None


def _tpt(record: Record):
    """The record's stable TPT (ncsim.trajectory.Trajectory.tpt_epoch) from its columns, None if it has
    none or lacks the columns or a readable spec (whose train-set size sets the TPT's tolerance)."""
    from ncsim.trajectory import Trajectory

    a = record.arrays
    if not isinstance(record.meta.get("spec"), dict) or not all(k in a for k in ("epoch", "train_error", "fit_error")):
        return None
    try:
        return Trajectory(record).tpt_epoch
    except SpecError:
        return None


def summary(record: Record, spec: RunSpec | None = None) -> str:
    """One screen: identity, status, TPT, final errors, final NC metrics (train and test), timings.
    `spec` (default: the one the record holds) names the run; what the record lacks shows as "-"."""
    m = record.meta
    s = spec.to_dict() if spec is not None else m.get("spec") if isinstance(m.get("spec"), dict) else {}
    t = m.get("timings") if isinstance(m.get("timings"), dict) else {}
    tpt = _tpt(record)
    lines = [
        f"run {printable(spec.label() if spec is not None else record_label(m) or '?')}  key {record.key}  "
        f"status {printable(m.get('status', '?'))}",
        f"  {s.get('model', '?')} (width {s.get('width', '?')}, k {s.get('kernel_size', '?')}, "
        f"bn {s.get('batch_norm', '?')})  "
        f"{s.get('optimizer', '?')} lr {_value(s.get('lr'), 'g')} wd {_value(s.get('weight_decay'), 'g')} "
        f"{s.get('schedule', '?')}  {s.get('loss', '?')}  batch {s.get('batch_size', '?')}  "
        f"epochs {m.get('epochs_run', '?')}/{s.get('epochs', '?')}",
    ]
    if m.get("status_reason"):
        lines.append(f"  reason: {printable(m['status_reason'])}")
    lines += [
        f"  TPT epoch: {tpt if tpt is not None else 'never'}   "
        f"final train error {_value(_column(record, 'train_error', -1), '.4f')}  "
        f"test error {_value(_column(record, 'test_error', -1), '.4f')}",
        f"  {'metric':<20}{'train':>12}{'test':>12}{'init (train)':>14}",
    ]
    rows = [k for k in SUMMARY_KEYS if f"train.{k}" in record.arrays]
    for k in rows:
        lines.append(
            f"  {k:<20}{_value(_column(record, 'train.' + k, -1), '.4g'):>12}"
            f"{_value(_column(record, 'test.' + k, -1), '.4g'):>12}"
            f"{_value(_column(record, 'train.' + k, 0), '.4g'):>14}"
        )
    if not rows:
        lines.append("  (no metric columns in this record)")
    lines.append(
        f"  time: {_value(t.get('total_s'), '.1f')} s total, {_value(t.get('fit_s'), '.1f')} s training, "
        f"{_value(t.get('eval_s'), '.1f')} s evaluation, {t.get('threads', '?')} threads"
    )
    lines.append(f"  precision: {printable(s.get('precision', 'fp32'))}{_kernels(m.get('precision'))}")
    return "\n".join(lines)


def _kernels(p) -> str:
    """The CPU kernels a record says trained it (ncsim.train.precision_meta), or "" for a record without."""
    if not isinstance(p, dict):
        return ""
    flag = {True: "yes", False: "no"}
    return (
        f" (CPU kernels {printable(p.get('cpu_capability', '?'))}, AVX-512 BF16 "
        f"{flag.get(p.get('avx512_bf16'), '?')}, AMX {flag.get(p.get('amx_tile'), '?')})"
    )


def check_threads(threads: int | None) -> None:
    """SpecError unless `threads` is None (the default: ncsim.threads.TRAIN_THREADS) or in [1, os.cpu_count()]."""
    limit = os.cpu_count() or 1
    if threads is not None and not 1 <= threads <= limit:
        raise SpecError(f"--threads {threads} must be in [1, {limit}] (this machine's CPU count)")


def cmd_train(args) -> int:
    from ncsim.suite import named_apart, obtain_run

    if bool(args.preset) == bool(args.file):
        raise SpecError("give exactly one of --preset NAME or FILE.toml; presets: " + ", ".join(presets()))
    source = args.preset or args.file
    if args.file and not Path(args.file).is_file():
        raise SpecError(f"no such spec file {args.file!r}")
    specs = [named_apart(spec) for spec in load_specs(source, parse_overrides(args.set))]
    check_threads(args.threads)
    store = open_store(args.cache_dir)
    for spec in specs:
        check_device(spec, store, args.refresh)
    stopped = []
    for spec in specs:
        traj = obtain_run(spec, store, refresh=args.refresh, progress=not args.quiet, threads=args.threads)
        print(("" if traj.trained else "[from store] ") + summary(traj.record, traj.spec))
        if traj.status != "ok":
            reason = traj.meta.get("status_reason") or "no reason recorded"
            stopped.append(f"ncsim: run {traj.label} {traj.status}: {reason}")
    for line in stopped:
        print(line, file=sys.stderr)
    return EXIT_STOPPED if stopped else 0


def _read(store: RunStore, key: str) -> Record | Exception:
    """The stored record, or the error reading it, without side effects."""
    try:
        return store.read(key)
    except (CorruptFileError, OSError) as e:
        return e


def _stored(store: RunStore):
    """(key, record or the error reading it) for every record file in the store."""
    for key in store.keys():
        yield key, _read(store, key)


def _listing(key: str, r: Record | Exception) -> dict:
    """The record's entry in `ncsim show --json/--csv` (LIST_FIELDS; None where it has nothing)."""
    if isinstance(r, Exception):
        return {**dict.fromkeys(LIST_FIELDS), "key": key, "kind": "unreadable", "reason": str(r)}
    m = r.meta
    if "kind" in m:  # not a training run: e.g. a UFM sweep that claims/test_ufm_imbalance.py stored
        return {**dict.fromkeys(LIST_FIELDS), "key": key, "kind": str(m["kind"])}
    epochs = m.get("epochs_run")
    return {
        "key": key,
        "kind": "run",
        "label": record_label(m),
        "status": m.get("status"),
        "epochs": epochs if isinstance(epochs, int) else None,
        "tpt_epoch": _tpt(r),
        **{name: _column(r, name, -1) for name in FINAL_COLUMNS},
        "reason": m.get("status_reason"),
    }


ROW_FORMAT = "{:<20}  {:<24} {:<10} {:>6} {:>5} {:>10} {:>10}"
HEADER = ROW_FORMAT.format("key", "label", "status", "epochs", "TPT", "train NC1", "test error")


def _row(key: str, r: Record | Exception) -> str:
    """The record's line in `ncsim show` (under HEADER); "-" for what it lacks."""
    if isinstance(r, Exception):
        return f"{key:<20}  unreadable: {r}"
    if "kind" in r.meta:
        return f"{key:<20}  {printable(r.meta['kind'])}"
    e = _listing(key, r)
    return ROW_FORMAT.format(
        key,
        *(printable("?" if e[k] is None else e[k]) for k in ("label", "status")),
        *("-" if e[k] is None else e[k] for k in ("epochs", "tpt_epoch")),
        _value(e["train.nc1"], ".3g"),
        _value(e["test_error"], ".4f"),
    )


def _emit(rows: list[dict], fmt: str, columns=None) -> None:
    """Print rows as a JSON array (fmt "json") or as CSV with a header (fmt "csv")."""
    from ncsim.export import write_rows

    if fmt == "json":
        print(json.dumps(jsonable(rows, nonfinite=lambda x: None), indent=1, allow_nan=False))  # null
    else:
        write_rows(rows, sys.stdout, columns)


def _trajectory_rows(store: RunStore, keys: list[str]) -> list[dict]:
    """The tidy rows (ncsim.export) of the runs `keys`; SpecError naming a record that has none."""
    from ncsim.export import tidy_rows
    from ncsim.trajectory import Trajectory

    rows = []
    for key in keys:
        record = _read(store, key)
        if isinstance(record, Exception):
            raise SpecError(f"record {key} is unreadable: {record}")
        if "spec" not in record.meta or "epoch" not in record.arrays:
            raise SpecError(f"record {key} holds no trajectory (kind {record.meta.get('kind', '?')!r})")
        rows += tidy_rows(Trajectory(record))
    return rows


def cmd_show(args) -> int:
    store = open_store(args.cache_dir)
    fmt = args.format
    if args.run is not None:
        keys = matching_runs(store, args.run)
        if fmt:
            _emit(_trajectory_rows(store, keys), fmt)
            return 0
        for key in keys:
            r = _read(store, key)
            print(summary(r) if isinstance(r, Record) else f"{key}  unreadable: {r}")
        return 0
    stored = list(_stored(store))
    if fmt:
        _emit([_listing(key, r) for key, r in stored], fmt, LIST_FIELDS)
    elif not stored:
        print(f"no runs stored in {store.root}")
    else:
        print(HEADER)
        for key, r in stored:
            print(_row(key, r))
    return 0


def _sweep_line(r: dict) -> str:
    """One run's line in `ncsim sweep`."""
    head = f"{str(r.get('label')):<24} {str(r.get('key')):<20}"
    if r["status"] == "failed":
        return f"{head}  FAILED   {r.get('error')}"
    what = f"trained in {r['seconds']:.1f} s on {r['host']}" if r["trained"] else "found in the store"
    stop = f": {r['reason']}" if r["status"] != "ok" else ""
    return f"{head}  {r['status']:<9}{what}{stop}"


def cmd_sweep(args) -> int:
    from ncsim.sweep import group_readable, sweep, sweep_specs

    seeds = _seeds(args.seeds) if args.seeds is not None else None
    if args.threads < 1 or args.scheduler in (None, "local"):
        check_threads(args.threads)
    if Path(args.source).suffix and not Path(args.source).is_file():
        raise SpecError(f"no such spec file {args.source!r}")
    specs = sweep_specs(args.source, seeds, not args.fixed_data_seed, parse_overrides(args.set))
    with group_readable():  # the store's folder as the sweep's files: readable by the group
        store = open_store(args.cache_dir)
    if args.scheduler is None:
        for spec in specs:
            check_device(spec, store)
    print(
        f"sweep: {len(specs)} runs into {store.root}"
        + (f" on {args.scheduler}" if args.scheduler else " here, one after another"),
        flush=True,
    )
    results = sweep(
        specs,
        store.root,
        scheduler=args.scheduler,
        threads=args.threads,
        on_result=lambda r: print(_sweep_line(r), flush=True),
    )
    failed = [r for r in results if r["status"] == "failed"]
    stopped = [r for r in results if r["status"] not in ("ok", "failed")]
    trained = sum(r["trained"] for r in results)
    print(
        f"sweep: {len(results)} runs: {trained} trained, {len(results) - trained - len(failed)} found in the "
        f"store, {len(stopped)} stopped (diverged or degenerate), {len(failed)} failed"
        + (f" ({', '.join(str(r['label']) for r in failed)})" if failed else "")
    )
    return EXIT_FAILED if failed else EXIT_STOPPED if stopped else 0


def _seeds(raw: str) -> list[int]:
    """--seeds as ncsim.suite.parse_seed_list reads it ("0-49", "0,1,5"); SpecError otherwise."""
    try:
        return parse_seed_list(raw)
    except ValueError as e:
        raise SpecError(f"--seeds: {e}") from None


def cmd_report(args) -> int:
    from ncsim import report, suite

    seeds = _seeds(args.seeds) if args.seeds is not None else list(suite.DEFAULT_SEEDS)
    configs = suite.user_configurations(args.spec) if args.spec else None
    folder = report.from_store(
        open_store(args.cache_dir), args.out, seeds=seeds, vary_data_seed=not args.fixed_data_seed, configs=configs
    )
    print(f"report written to {folder}")
    return 0


def cmd_decide(args) -> int:
    """Decide each (check, configuration) of a CSV of per-seed values (ncsim.decide); exit 1 when one
    does not hold."""
    from ncsim import decide

    given = None
    if args.threshold is not None:
        given = {
            "threshold": args.threshold,
            "op": args.op or "<=",
            "rule": args.rule or "mean",
            "scale": args.scale or "log",
        }
    elif args.op or args.rule or args.scale:
        raise decide.DecideError("--op, --rule and --scale go with --threshold")
    claims_dir = (
        args.claims if args.claims is not None else ("claims" if Path("claims/tolerances.toml").is_file() else None)
    )
    records = decide.decide_file(args.file, claims_dir, given)
    print(decide.table(records))
    out = decide.write(records, args.out or Path(args.file).with_suffix(".decisions.json"))
    print(f"decisions written to {out}")
    return 0 if all(r.holds for r in records) else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncsim", description="Neural Collapse, tested.")
    p.add_argument("--version", action="version", version=f"ncsim {__version__}")
    p.add_argument("--cache-dir", default=None, help="run store directory (default: $NCSIM_CACHE or ~/.cache/ncsim)")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a preset or a TOML spec (served from the store when recorded)")
    t.add_argument("file", nargs="?", help="a TOML spec file")
    t.add_argument("--preset", help=f"a shipped preset: {', '.join(presets())}")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    t.add_argument("--refresh", action="store_true", help="retrain even if the store has the run")
    t.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"torch and BLAS threads to train on, 1 to {os.cpu_count() or 1} (default 1: a run's values "
        f"depend on the thread count, docs/run-store.md)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("show", help="list stored runs, or summarise one (key prefix or label)")
    s.add_argument("run", nargs="?")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="as JSON: one record per stored run, or the run's trajectory (a row per evaluated epoch)",
    )
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv", help="as CSV, the same rows as --json")
    w = sub.add_parser("sweep", help="train a configuration, preset or TOML spec over many seeds, here or on Dask")
    w.add_argument(
        "source",
        metavar="PRESET_OR_CONFIG",
        help="a suite configuration (standard, adam, ...), a preset, or a TOML spec file",
    )
    w.add_argument(
        "--seeds",
        default=None,
        help="seeds and ranges, e.g. 0-49 or 0,1,5 (default: the suite's default seeds for a "
        "configuration, the file's own for a preset or file)",
    )
    w.add_argument(
        "--fixed-data-seed",
        action="store_true",
        help="keep the MNIST-1D generator's default data seed (default: the data seed is the training seed)",
    )
    w.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    w.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a Dask scheduler address (tcp://host:8786), or 'local' for a LocalCluster here "
        "(default: train here, one run after another)",
    )
    w.add_argument("--threads", type=int, default=1, help="torch and BLAS threads per run (default 1)")
    r = sub.add_parser("report", help="render figures and the verdict table from stored runs")
    r.add_argument("--out", default="reports", help="parent folder of report folders (default: reports)")
    r.add_argument(
        "--fixed-data-seed",
        action="store_true",
        help="the runs keep the MNIST-1D generator's default data seed (as pytest --fixed-data-seed; "
        "default: the data seed is the training seed)",
    )
    r.add_argument(
        "--seeds",
        default=None,
        help="seeds and ranges, e.g. 0,1,2 or 0-4 (default: the suite's default seeds in ncsim/suite.toml, "
        "as for pytest)",
    )
    r.add_argument(
        "--spec",
        default=None,
        metavar="FILE.toml",
        help="draw the runs of your own spec and the configurations derived from it (as pytest --spec)",
    )
    d = sub.add_parser("decide", help="verdicts from per-seed values you already have (a CSV), by the claims' rules")
    d.add_argument("file", metavar="FILE.csv", help="columns check (or statistic), configuration, seed, value")
    d.add_argument(
        "--claims",
        default=None,
        metavar="DIR",
        help="the claims directory whose tolerances.toml holds the checks (default: ./claims if present)",
    )
    d.add_argument("--threshold", type=float, default=None, help="the threshold of every check (instead of --claims)")
    d.add_argument("--op", default=None, help="with --threshold: <=, <, >=, > or within (default <=)")
    d.add_argument("--rule", default=None, help="with --threshold: every, mean or equivalence (default mean)")
    d.add_argument("--scale", default=None, help="with --threshold: log or linear (default log)")
    d.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="where the decisions go, .json or .csv (default: FILE.decisions.json)",
    )
    for sp in (t, s, w, r):  # before or after the command; SUPPRESS: not given here keeps the main option's
        sp.add_argument(
            "--cache-dir",
            default=argparse.SUPPRESS,
            help="run store directory (default: $NCSIM_CACHE or ~/.cache/ncsim; empty counts as unset)",
        )
    return p


COMMANDS = {"train": cmd_train, "show": cmd_show, "sweep": cmd_sweep, "report": cmd_report, "decide": cmd_decide}


def _warn(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for the command: one line on stderr."""
    print(f"ncsim: warning: {_one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warn
            rc = COMMANDS[args.command](args)
            sys.stdout.flush()  # here, so that a reader gone away is seen here and not at exit
        return rc
    except BrokenPipeError:
        # Whatever is still buffered has no reader: point stdout at /dev/null so that the flush at
        # exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (SpecError, OSError, SweepError, RunLookupError, DecideError) as e:
        print(f"ncsim: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ncsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _one_line(error: Exception) -> str:
    """The error's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
