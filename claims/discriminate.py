"""The discrimination table of the claims: every check of runs against its physical controls.

    python claims/discriminate.py [--seeds 100-104] [--cache-dir DIR] [-k TEXT] [--write]

(default: the calibration seeds of ncsim/suite.toml, the data seed varied with them)

For every check a claim file declares (claim.run_checks) and every configuration it is measured on:
the check's statistic on its configuration and on every physical control (ncsim.controls), each
decided by the check's own rule, and the margins from the threshold in seed standard deviations
(ncsim.discrimination). Prints one line per check x configuration; with --write, records the table in
claims/discrimination.json (atomically), which docs/generate.py renders into docs/discrimination.md.
Runs missing from the store are trained (about a minute each).
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
from ncsim import checks, claim, discrimination, suite  # noqa: E402
from ncsim.export import atomic_write_text  # noqa: E402
from ncsim.store import RunStore  # noqa: E402

CLAIMS_DIR = Path(__file__).resolve().parent
TABLE = CLAIMS_DIR / "discrimination.json"


def table(seeds: list[int], cache_dir: str | None, k: str | None = None) -> list[dict]:
    """The rows (discrimination.Row.to_json) of every check x configuration whose "claim tolerance
    config" contains `k`."""
    store = RunStore(cache_dir) if cache_dir else RunStore()
    configs = suite.suite_configurations()

    @cache
    def obtain(config: str, seed: int):
        return suite.obtain_run(configs.spec(suite.RunId(config, seed, seed)), store)

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default=",".join(map(str, suite.table()["calibration_seeds"])))
    p.add_argument("--cache-dir", default=None)
    p.add_argument("-k", dest="k", default=None, help="only the rows whose 'claim tolerance config' contains this")
    p.add_argument("--write", action="store_true", help=f"record the table in {TABLE.name}")
    args = p.parse_args(argv)
    if args.write and args.k:
        p.error("--write records the whole table: not with -k")
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
