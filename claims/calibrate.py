"""Calibrate the tolerance table: every claim statistic on the calibration seeds, against its threshold.

    python claims/calibrate.py [--seeds 100,101,102,103,104] [--cache-dir DIR] [-k EXPR] [--write]

(default: the calibration seeds of ncsim/suite.toml)

Runs the claims themselves (pytest, in this process, no report; the extended tier too) on the
calibration seeds, with the MNIST-1D generator seed varied with the training seed (as every session
does: the data are a second source of variation) and no seeds added (--looks 1), collects the decided
checks (the "ncsim_check" properties, ncsim.checks.decide), and prints one row per check and
configuration: the values by seed, the aggregate and the bound or interval its rule rests on, the
p-value, the threshold and the verdict. The calibration seeds are disjoint from the seeds the suite
tests (ncsim/suite.toml), so a threshold is never fitted to the seeds it is then tested on. With
--write, each entry's `calibration` field in claims/tolerances.toml gets the measured values after its
stated basis (README, "Calibration").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from ncsim import checks, suite
from ncsim.verdict import PROPERTY, Verdict, from_property

CLAIMS_DIR = Path(__file__).resolve().parent
CALIBRATION_SEEDS = ",".join(map(str, suite.table()["calibration_seeds"]))


class Collector:
    def __init__(self):
        self.records: list[Verdict] = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call":
            self.records += [from_property(value) for name, value in report.user_properties if name == PROPERTY]


def _num(v) -> str:
    return "nan" if v is None else f"{v:.3g}"


def summary(record: Verdict) -> str:
    """ "standard-s100-d100 0.0024, ...; mean 0.0023, bound 0.0025, p 1e-08 -> reproduces"."""
    values = ", ".join(f"{run} {_num(v)}" for run, v in zip(record.runs, record.values))
    rest = ""
    if record.rule == "mean":
        rest = f"; mean {_num(record.measured)}, bound {_num(record.bound)}, p {_num(record.p_value)}"
    elif record.rule == "equivalence" and record.interval:
        rest = (
            f"; ratio {_num(record.measured)} ({_num(record.interval[0])}-{_num(record.interval[1])}), "
            f"p {_num(record.p_value)}, differs from 1 p {_num(record.p_differs)}"
        )
    return f"{values}{rest} -> {record.verdict}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default=CALIBRATION_SEEDS)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("-k", dest="k", default=None)
    p.add_argument(
        "--write", action="store_true", help="record the measured values in each measured entry's calibration field"
    )
    args = p.parse_args(argv)
    cmd = [
        str(CLAIMS_DIR),
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-report",
        f"--seeds={args.seeds}",
        "--looks=1",  # the values of the calibration seeds themselves: no seeds added
        "--extended",
        "-o",
        "addopts=",
        "-o",
        "xfail_strict=true",
        "-k",
        args.k or "not ufm",
    ]
    if args.cache_dir:
        cmd.append(f"--cache-dir={args.cache_dir}")
    collector = Collector()
    pytest.main(cmd, plugins=[collector])
    by_tolerance: dict[str, list[dict]] = {}
    for record in collector.records:
        by_tolerance.setdefault(record.tolerance, []).append(record)
    rows = {}
    for name in sorted(by_tolerance):
        tol = checks.tolerance(CLAIMS_DIR, name)
        print(f"\n{name}  ({tol.op} {tol.value:g}, rule {tol.rule}{'' if tol.rule == 'every' else ', ' + tol.scale})")
        lines = [summary(r) for r in sorted(by_tolerance[name], key=lambda r: str(r.config))]
        print("\n".join("  " + line for line in lines))
        rows[name] = f"Calibration seeds {args.seeds} (data seed = training seed): " + "; ".join(lines) + "."
    if args.write:
        unwritten = write_calibration(CLAIMS_DIR / checks.TOLERANCES, rows)
        if unwritten:
            print(f"\nnot written (no entry with a calibration field in {checks.TOLERANCES}): {', '.join(unwritten)}")
    return 0


# What ends an entry's stated basis in its calibration field: the measured part begins there.
MEASURED_MARKERS = (" Measured on", " Calibration seeds")


def write_calibration(path: Path, rows: dict[str, str]) -> list[str]:
    """Replace the measured part of each named entry's calibration field by `rows[name]`, keeping the
    basis of the threshold written before it (the text up to a MEASURED_MARKERS phrase) and everything
    else in the file as it is: comments, other fields and entries, layout (tomlkit round-trips the TOML
    document). Written atomically (a temp file in the same folder, then os.replace). Returns the names
    of `rows` with no entry holding a calibration field, which are left unwritten."""
    import tomlkit

    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    unwritten = []
    for name, measured in rows.items():
        entry = doc.get(name)
        if not isinstance(entry, dict) or "calibration" not in entry:
            unwritten.append(name)
            continue
        basis = str(entry["calibration"])
        for marker in MEASURED_MARKERS:
            basis = basis.split(marker)[0]
        entry["calibration"] = f"{basis} {measured}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
    return unwritten


if __name__ == "__main__":
    sys.exit(main())
