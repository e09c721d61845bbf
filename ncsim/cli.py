"""The `ncsim` command: train runs (served from the store when recorded), show stored runs, and
render the report from the store.

    ncsim train --preset standard --set epochs=2 --set optimizer=adam
    ncsim train my_run.toml --cache-dir /tmp/runs
    ncsim show                 # list stored runs
    ncsim show KEY_OR_LABEL    # one run's summary
    ncsim report               # figures and verdict table from stored runs, no training

A bad command, spec or environment (unwritable store, full disk) exits 2 with one line
`ncsim: error: ...` naming the problem; a damaged record is flagged in `ncsim show`, never fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

import numpy as np

from ncsim.spec import RunSpec, SpecError, load_specs, presets
from ncsim.store import CorruptFileError, Record, RunStore

SUMMARY_KEYS = ("nc1", "nc1_trace", "nc2_equinorm", "w_equinorm", "nc2_equiangularity", "nc2_maxangle",
                "w_maxangle", "nc3", "nc4", "ncc_error")


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
    """The record's stable TPT (ncsim.trajectory.tpt_epoch) from its columns, None if it has none or
    lacks the columns."""
    from ncsim.trajectory import tpt_epoch

    a = record.arrays
    if not all(k in a for k in ("epoch", "train_error", "fit_error")):
        return None
    return tpt_epoch(a["epoch"], a["train_error"], a["fit_error"])


def summary(record: Record, spec: RunSpec | None = None) -> str:
    """One screen: identity, status, TPT, final errors, final NC metrics (train and test), timings.
    `spec` (default: the one the record holds) names the run; what the record lacks shows as "-"."""
    m = record.meta
    s = spec.to_dict() if spec is not None else m.get("spec") if isinstance(m.get("spec"), dict) else {}
    t = m.get("timings") if isinstance(m.get("timings"), dict) else {}
    tpt = _tpt(record)
    lines = [
        f"run {spec.label() if spec is not None else m.get('label', '?')}  key {record.key}  status {m.get('status', '?')}",
        f"  {s.get('model', '?')} (width {s.get('width', '?')}, k {s.get('kernel_size', '?')}, bn {s.get('batch_norm', '?')})  "
        f"{s.get('optimizer', '?')} lr {_value(s.get('lr'), 'g')} wd {_value(s.get('weight_decay'), 'g')} "
        f"{s.get('schedule', '?')}  {s.get('loss', '?')}  batch {s.get('batch_size', '?')}  "
        f"epochs {m.get('epochs_run', '?')}/{s.get('epochs', '?')}",
    ]
    if m.get("status_reason"):
        lines.append(f"  reason: {m['status_reason']}")
    lines += [
        f"  TPT epoch: {tpt if tpt is not None else 'never'}   "
        f"final train error {_value(_column(record, 'train_error', -1), '.4f')}  "
        f"test error {_value(_column(record, 'test_error', -1), '.4f')}",
        f"  {'metric':<20}{'train':>12}{'test':>12}{'init (train)':>14}",
    ]
    rows = [k for k in SUMMARY_KEYS if f"train.{k}" in record.arrays]
    for k in rows:
        lines.append(f"  {k:<20}{_value(_column(record, 'train.' + k, -1), '.4g'):>12}"
                     f"{_value(_column(record, 'test.' + k, -1), '.4g'):>12}"
                     f"{_value(_column(record, 'train.' + k, 0), '.4g'):>14}")
    if not rows:
        lines.append("  (no metric columns in this record)")
    lines.append(f"  time: {_value(t.get('total_s'), '.1f')} s total, {_value(t.get('fit_s'), '.1f')} s training, "
                 f"{_value(t.get('eval_s'), '.1f')} s evaluation, {t.get('threads', '?')} threads")
    return "\n".join(lines)


def check_threads(threads: int | None) -> None:
    """SpecError unless `threads` is None (torch's choice) or in [1, os.cpu_count()]."""
    limit = os.cpu_count() or 1
    if threads is not None and not 1 <= threads <= limit:
        raise SpecError(f"--threads {threads} must be in [1, {limit}] (this machine's CPU count)")


def cmd_train(args) -> int:
    from ncsim.suite import obtain
    from ncsim.threads import limit_threads

    if bool(args.preset) == bool(args.file):
        raise SpecError("give exactly one of --preset NAME or FILE.toml; presets: " + ", ".join(presets()))
    source = args.preset or args.file
    if args.file and not Path(args.file).is_file():
        raise SpecError(f"no such spec file {args.file!r}")
    specs = load_specs(source, parse_overrides(args.set))
    check_threads(args.threads)
    store = RunStore(args.cache_dir)
    with limit_threads(args.threads) if args.threads else contextlib.nullcontext():
        for spec in specs:
            traj = obtain(spec, store, refresh=args.refresh, progress=not args.quiet)
            print(("" if traj.trained else "[from store] ") + summary(traj.record, traj.spec))
    return 0


def _stored(store: RunStore):
    """(key, record or the error reading it) for every record file in the store, without side effects."""
    for key in store.keys():
        try:
            yield key, store.read(key)
        except (CorruptFileError, OSError) as e:
            yield key, e


def _row(key: str, r: Record | Exception) -> str:
    if isinstance(r, Exception):
        return f"{key}  unreadable: {r}"
    m = r.meta
    if "kind" in m:  # not a training run: e.g. a UFM sweep that claims/test_ufm_imbalance.py stored
        return f"{key}  {m['kind']}"
    tpt = _tpt(r)
    return (f"{key}  {str(m.get('label', '?')):<24} {str(m.get('status', '?')):<9} epochs {str(m.get('epochs_run', '?')):>4}  "
            f"TPT {tpt if tpt is not None else '-':>4}  NC1 {_value(_column(r, 'train.nc1', -1), '.3g')}")


def cmd_show(args) -> int:
    store = RunStore(args.cache_dir)
    stored = list(_stored(store))
    if args.run is None:
        if not stored:
            print(f"no runs stored in {store.root}")
        for key, r in stored:
            print(_row(key, r))
        return 0
    match = [(key, r) for key, r in stored
             if key.startswith(args.run) or isinstance(r, Record) and r.meta.get("label") == args.run]
    if not match:
        raise SpecError(f"no stored run matches {args.run!r} in {store.root}")
    for key, r in match:
        print(summary(r) if isinstance(r, Record) else _row(key, r))
    return 0


def cmd_report(args) -> int:
    from ncsim import report, suite

    try:
        seeds = suite.parse_seeds(args.seeds)
    except ValueError as e:
        raise SpecError(f"--seeds: {e}") from None
    folder = report.from_store(RunStore(args.cache_dir), args.out, seeds=seeds, vary_data_seed=args.vary_data_seed)
    print(f"report written to {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ncsim", description="Neural Collapse, tested.")
    p.add_argument("--cache-dir", default=None, help="run store directory (default: $NCSIM_CACHE or ~/.cache/ncsim)")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a preset or a TOML spec (served from the store when recorded)")
    t.add_argument("file", nargs="?", help="a TOML spec file")
    t.add_argument("--preset", help=f"a shipped preset: {', '.join(presets())}")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    t.add_argument("--refresh", action="store_true", help="retrain even if the store has the run")
    t.add_argument("--threads", type=int, default=None,
                   help=f"torch and BLAS threads, 1 to {os.cpu_count() or 1} (default: torch's choice)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("show", help="list stored runs, or summarise one (key prefix or label)")
    s.add_argument("run", nargs="?")
    r = sub.add_parser("report", help="render figures and the verdict table from stored runs")
    r.add_argument("--out", default="reports", help="parent folder of report folders (default: reports)")
    r.add_argument("--vary-data-seed", action="store_true",
                   help="the runs' MNIST-1D generator seed is their training seed (as pytest --vary-data-seed)")
    r.add_argument("--seeds", default=None, help="comma-separated seeds (default: the suite's default seeds in ncsim/suite.toml, as for pytest)")
    for sp in (t, s, r):
        sp.add_argument("--cache-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        return {"train": cmd_train, "show": cmd_show, "report": cmd_report}[args.command](args)
    except (SpecError, OSError) as e:
        print(f"ncsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
