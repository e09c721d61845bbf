"""Calibrate the tolerance table: every claim statistic over several seeds, against its threshold.

    python claims/calibrate.py --seeds 0,1,2,3,4 [--cache-dir DIR] [-k EXPR]

Runs the claims themselves (pytest, in this process, no report) on the given seeds, collects the
statistic each check measured (the "ncsim_check" properties, see ncsim.checks.decide), and prints one
row per tolerance: the values by case (run and seed, or the UFM case id), their range, the threshold and the margin between the worst seed and
the threshold (as a factor for ratio-like checks, as a difference where the threshold is 0 or the
statistic can be negative). The numbers in claims/tolerances.toml's `calibration` fields come from this
printout (README, "Calibration").
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from ncsim import checks

CLAIMS_DIR = Path(__file__).resolve().parent


class Collector:
    def __init__(self):
        self.values: dict[str, dict[str, float]] = defaultdict(dict)

    def pytest_runtest_logreport(self, report):
        for name, value in report.user_properties:
            if name == checks.PROPERTY:
                measured = value["measured"]
                self.values[value["tolerance"]][value["case"]] = float("nan") if measured is None else measured


def margin(tol: checks.Tolerance, worst: float) -> str:
    if math.isnan(worst) or math.isinf(worst):
        return "n/a"
    if tol.value > 0 and worst > 0:
        f = worst / tol.value if tol.op in (">=", ">") else tol.value / worst
        return f"x{f:.2f}"
    return f"{(worst - tol.value) if tol.op in ('>=', '>') else (tol.value - worst):+.3g}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("-k", dest="k", default=None)
    p.add_argument("--write", action="store_true",
                   help="record the measured values in each measured entry's calibration field")
    args = p.parse_args(argv)
    cmd = [str(CLAIMS_DIR), "-q", "-p", "no:cacheprovider", "--no-report", f"--seeds={args.seeds}",
           "-o", "addopts=", "-o", "xfail_strict=true"]
    if args.cache_dir:
        cmd.append(f"--cache-dir={args.cache_dir}")
    if args.k:
        cmd += ["-k", args.k]
    collector = Collector()
    pytest.main(cmd, plugins=[collector])
    table = checks.load_tolerances(CLAIMS_DIR)
    rows = {}
    print(f"\n{'tolerance':<42}{'op':>3}{'thr':>9}  {'worst':>10}{'best':>10}{'margin':>8}  values by case")
    for name in sorted(collector.values):
        tol, vals = table[name], collector.values[name]
        xs = [v for v in vals.values() if not math.isnan(v)]
        bad_first = (lambda v: -v) if tol.op in (">=", ">") else (lambda v: v)
        worst = max(xs, key=bad_first) if len(xs) == len(vals) and xs else float("nan")
        best = min(xs, key=bad_first) if xs else float("nan")
        listing = ", ".join(f"{k} {v:.3g}" for k, v in sorted(vals.items()))
        print(f"{name:<42}{tol.op:>3}{tol.value:>9.3g}  {worst:>10.4g}{best:>10.4g}{margin(tol, worst):>8}  {listing}")
        rows[name] = f"Measured on seeds {args.seeds}: {listing}; worst {worst:.4g} (margin {margin(tol, worst)})."
    if args.write:
        write_calibration(CLAIMS_DIR / checks.TOLERANCES, rows)
    return 0


def write_calibration(path: Path, rows: dict[str, str]) -> None:
    """Replace the "Measured on ..." part of each named entry's calibration field, keeping the basis of
    the threshold written before it."""
    lines, entry = path.read_text().splitlines(keepends=True), None
    for i, line in enumerate(lines):
        if line.startswith("["):
            entry = line.strip()[1:-1]
        elif entry in rows and line.startswith("calibration = "):
            basis = line[len('calibration = "'):].rstrip().rstrip('"').split(" Measured on")[0]
            lines[i] = f'calibration = "{basis} {rows[entry]}"\n'
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
