"""The discrimination table of the claims: every check of runs against its physical controls.

    python claims/discriminate.py [--seeds 100-104] [--cache-dir DIR] [-k TEXT] [--write]
    python claims/discriminate.py --control NAME [--cache-dir DIR] [--write]

(default: the calibration seeds of ncsim/suite.toml, the data seed varied with them)

For every check a claim file declares (claim.run_checks) and every configuration it is measured on:
the check's statistic on its configuration and on every physical control (ncsim.controls), each
decided by the check's own rule, and the margins from the threshold in seed standard deviations
(ncsim.discrimination). Prints one line per check x configuration; with --write, records the table in
claims/discrimination.json (atomically), which docs/generate.py renders into docs/discrimination.md.
Runs missing from the store are trained (about a minute each).

With -k and --write, only the rows whose "claim tolerance config" contains TEXT are measured (on the
recorded table's seeds) and recorded, in the claims' order, beside the recorded rows of every other
check; a recorded row of a check no longer declared is dropped: a new or re-encoded check needs only its
own rows.

With --control NAME, only that control (ncsim.controls) is measured, on the recorded table's seeds, and
merged into every row of claims/discrimination.json it applies to, each row's nearest failing control
and margins recomputed: a control added to the suite needs only its own runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the claims package, when run as a script
    sys.path.insert(0, str(ROOT))

import claims  # noqa: E402
from ncsim import checks, claim, controls, discrimination, suite  # noqa: E402
from ncsim.export import atomic_write_text  # noqa: E402
from ncsim.store import RunStore  # noqa: E402

CLAIMS_DIR = Path(__file__).resolve().parent
TABLE = CLAIMS_DIR / "discrimination.json"


def run_source(cache_dir: str | None):
    """obtain(config, seed): the suite's run of that configuration and seed (data seed = seed) from the
    store, trained when missing, each read once."""
    store = RunStore(cache_dir) if cache_dir else RunStore()
    configs = suite.suite_configurations()

    @cache
    def obtain(config: str, seed: int):
        return suite.obtain_run(configs.spec(suite.RunId(config, seed, seed)), store)

    return obtain


def table(seeds: list[int], cache_dir: str | None, k: str | None = None) -> list[dict]:
    """The rows (discrimination.Row.to_json) of every check x configuration whose "claim tolerance
    config" contains `k`."""
    obtain = run_source(cache_dir)
    rows = []
    for name, check in claim.declared_run_checks(claims):
        tol = checks.tolerance(CLAIMS_DIR, check.tolerance)
        for config in check.configs:
            if k and k not in f"{name} {check.tolerance} {config}":
                continue
            row = discrimination.row(name, check, config, tol, obtain, seeds).to_json()
            print(discrimination.markdown([row]).splitlines()[-1], flush=True)
            rows.append(row)
    return rows


def with_rows(k: str, cache_dir: str | None) -> dict:
    """The recorded table with the rows whose "claim tolerance config" contains `k` measured anew on its
    seeds, every other declared check's recorded row kept, and the rows of undeclared checks dropped."""
    doc = json.loads(TABLE.read_text(encoding="utf-8"))
    recorded = {(r["claim"], r["tolerance"], r["config"]): r for r in doc["rows"]}
    fresh = {(r["claim"], r["tolerance"], r["config"]): r for r in table(doc["seeds"], cache_dir, k)}
    rows = []
    for name, check in claim.declared_run_checks(claims):
        for config in check.configs:
            key = (name, check.tolerance, config)
            if key not in fresh and key not in recorded:
                raise SystemExit(f"no recorded row for {' '.join(key)}: measure it (-k) or the whole table")
            rows.append(fresh.get(key) or recorded[key])
    return {**doc, "rows": rows}


def with_control(name: str, cache_dir: str | None) -> dict:
    """The recorded table with control `name` measured on its seeds and merged into every row it
    applies to (a physical control of the table's set, or one a check declares)."""
    doc = json.loads(TABLE.read_text(encoding="utf-8"))
    obtain = run_source(cache_dir)
    declared = {(n, c.tolerance, config): c for n, c in claim.declared_run_checks(claims) for config in c.configs}
    physical = controls.CONTROLS[name].physical
    rows = []
    for r in doc["rows"]:
        check = declared[(r["claim"], r["tolerance"], r["config"])]
        row = discrimination.Row.from_json(r)
        if controls.applicable(check, name) and (name in controls.PHYSICAL_CONTROLS or name in check.controls):
            tol = checks.tolerance(CLAIMS_DIR, check.tolerance)
            row = row.with_control(discrimination.control_decided(check, name, tol, obtain, doc["seeds"]), physical)
        rows.append(row.to_json())
        print(discrimination.markdown([rows[-1]]).splitlines()[-1], flush=True)
    return {**doc, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default=",".join(map(str, suite.table()["calibration_seeds"])))
    p.add_argument("--cache-dir", default=None)
    p.add_argument("-k", dest="k", default=None, help="only the rows whose 'claim tolerance config' contains this")
    p.add_argument("--write", action="store_true", help=f"record the table in {TABLE.name}")
    p.add_argument(
        "--control", choices=sorted(controls.CONTROLS), help="measure this control only, on the table's seeds"
    )
    args = p.parse_args(argv)
    if args.control and args.k:
        p.error("--control measures one column of every row: not with -k")
    if args.write and args.k:
        atomic_write_text(TABLE, json.dumps(with_rows(args.k, args.cache_dir), indent=1, allow_nan=False) + "\n")
        return 0
    if args.control:
        doc = with_control(args.control, args.cache_dir)
        if args.write:
            atomic_write_text(TABLE, json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return 0
    seeds = suite.parse_seeds(args.seeds)
    rows = table(seeds, args.cache_dir, args.k)
    if args.write:
        doc = {
            "seeds": seeds,
            "data_seed": "the training seed",
            "command": "python claims/discriminate.py --write",
            "rows": rows,
        }
        atomic_write_text(TABLE, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
