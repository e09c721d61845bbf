"""The `ncsim` command: train runs (served from the store when recorded), show stored runs, and
render the report from the store.

    ncsim train --preset standard --set epochs=2 --set optimizer=adam
    ncsim train my_run.toml --cache-dir /tmp/runs
    ncsim show                 # list stored runs
    ncsim show KEY_OR_LABEL    # one run's summary
    ncsim report               # figures and verdict table from stored runs, no training
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from ncsim.spec import SpecError, load_specs, presets
from ncsim.store import RunStore

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


def summary(traj) -> str:
    """One screen: identity, status, TPT, final errors, final NC metrics (train and test), timings."""
    s, t = traj.spec, traj.meta["timings"]
    lines = [
        f"run {traj.label}  key {traj.key}  status {traj.status}",
        f"  {s.model} (width {s.width}, k {s.kernel_size}, bn {s.batch_norm})  {s.optimizer} lr {s.lr:g} "
        f"wd {s.weight_decay:g} {s.schedule}  {s.loss}  batch {s.batch_size}  epochs {traj.meta['epochs_run']}/{s.epochs}",
        f"  TPT epoch: {traj.tpt_epoch if traj.tpt_epoch is not None else 'never'}   "
        f"final train error {traj.final('train_error'):.4f}  test error {traj.final('test_error'):.4f}",
        f"  {'metric':<20}{'train':>12}{'test':>12}{'init (train)':>14}",
    ]
    for k in SUMMARY_KEYS:
        if f"train.{k}" in traj.record.arrays:
            lines.append(f"  {k:<20}{traj.final('train.' + k):>12.4g}{traj.final('test.' + k):>12.4g}"
                         f"{traj['train.' + k][0]:>14.4g}")
    lines.append(f"  time: {t['total_s']:.1f} s total, {t['fit_s']:.1f} s training, {t['eval_s']:.1f} s evaluation, "
                 f"{t['threads']} threads")
    return "\n".join(lines)


def cmd_train(args) -> int:
    from ncsim.runs import obtain

    if bool(args.preset) == bool(args.file):
        raise SpecError("give exactly one of --preset NAME or FILE.toml; presets: " + ", ".join(presets()))
    source = args.preset or args.file
    if args.file and not Path(args.file).is_file():
        raise SpecError(f"no such spec file {args.file!r}")
    specs = load_specs(source, parse_overrides(args.set))
    store = RunStore(args.cache_dir)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    for spec in specs:
        cached = spec.key() in store and not args.refresh
        traj = obtain(spec, store, refresh=args.refresh, progress=not args.quiet)
        print(("[from store] " if cached else "") + summary(traj))
    return 0


def cmd_show(args) -> int:
    from ncsim.trajectory import Trajectory

    store = RunStore(args.cache_dir)
    records = [r for r in (store.load(k) for k in store.keys()) if r is not None]
    if args.run is None:
        if not records:
            print(f"no runs stored in {store.root}")
        for r in records:
            m = r.meta
            print(f"{r.key}  {m['label']:<24} {m['status']:<9} epochs {m['epochs_run']:>4}  "
                  f"TPT {m['tpt_epoch'] if m['tpt_epoch'] is not None else '-':>4}  "
                  f"NC1 {r.arrays['train.nc1'][-1]:.3g}")
        return 0
    match = [r for r in records if r.key.startswith(args.run) or r.meta["label"] == args.run]
    if not match:
        raise SpecError(f"no stored run matches {args.run!r} in {store.root}")
    for r in match:
        print(summary(Trajectory(r)))
    return 0


def cmd_report(args) -> int:
    from ncsim import report

    folder = report.from_store(RunStore(args.cache_dir), args.out, seeds=args.seeds)
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
    t.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("show", help="list stored runs, or summarise one (key prefix or label)")
    s.add_argument("run", nargs="?")
    r = sub.add_parser("report", help="render figures and the verdict table from stored runs")
    r.add_argument("--out", default="reports", help="parent folder of report folders (default: reports)")
    r.add_argument("--seeds", default=None, help="comma-separated seeds (default: pytest.ini's)")
    for sp in (t, s, r):
        sp.add_argument("--cache-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        return {"train": cmd_train, "show": cmd_show, "report": cmd_report}[args.command](args)
    except SpecError as e:
        print(f"ncsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
