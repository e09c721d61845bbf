"""Verdicts from values a lab already has: `ncsim decide FILE.csv`.

The CSV holds one value per row with a header naming the columns

    check (or statistic), configuration, seed, value[, premise]

`check` names a tolerance of a claims directory's tolerances.toml (its threshold, op, rule and scale),
or any name when the threshold and rule are given on the command line (`tolerance_from_options`).
The values of each (check, configuration) are decided over their seeds by ncsim.checks.decide, the
function the claims use, so a claim's per-seed values give the claim's own decision: its verdict,
aggregate, one-sided bound (or the equivalence interval) and p-value. A value may be "nan" or "inf"
(a run that did not finish; it fails the rule as it does in a claim).

The optional column `premise` (true or false) says whether the run meets what the check's statement
assumes of it (ncsim.checks.Premise, e.g. a terminal phase to observe): as in a claim, the check is
then decided over the runs that meet it, and is "premise not met" when fewer than PREMISE_RUNS do.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ncsim import checks
from ncsim.store import atomic_file
from ncsim.verdict import Verdict, jsonable

CHECK_COLUMNS = ("check", "statistic")
REQUIRED = ("configuration", "seed", "value")
PREMISE_COLUMN = "premise"
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")
PREMISE_STATEMENT = "the premise of the check's statement, as the CSV's premise column says of each run"
OUTPUT_FIELDS = (
    "tolerance",
    "config",
    "n",
    "seeds",
    "values",
    "op",
    "threshold",
    "rule",
    "scale",
    "measured",
    "bound",
    "interval",
    "p_value",
    "verdict",
    "holds",
)


class DecideError(ValueError):
    """Bad input to `ncsim decide`: the message names the file, the row and the problem."""


def read_values(path: str | Path) -> dict[tuple[str, str], list[tuple[int, float, bool | None]]]:
    """(check, configuration) -> [(seed, value, meets premise), ...] in file order (meets None without
    a premise column); DecideError naming the row (1 = the header) and the problem for a missing
    column, an empty cell, a seed that is not an integer >= 0, a value that is not a number, a premise
    that is not true or false, or a (check, configuration, seed) given twice."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DecideError(f"{path}: cannot read: {e}") from None
    rows = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(rows, [])]
    name = next((c for c in CHECK_COLUMNS if c in header), None)
    missing = [c for c in REQUIRED if c not in header] + ([] if name else ["check (or statistic)"])
    if missing:
        raise DecideError(
            f"{path}: row 1 (header): missing column(s) {', '.join(missing)}; "
            f"the columns are check, configuration, seed, value"
        )
    optional = (PREMISE_COLUMN,) if PREMISE_COLUMN in header else ()
    at = {c: header.index(c) for c in (name, *REQUIRED, *optional)}
    out: dict[tuple[str, str], list[tuple[int, float, bool | None]]] = {}
    first_row: dict[tuple[str, str, int], int] = {}
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DecideError(f"{path}: row {number}: {len(row)} cells, the header has {len(header)}")
        cells = {c: row[i].strip() for c, i in at.items()}
        empty = [c for c, v in cells.items() if not v]
        if empty:
            raise DecideError(f"{path}: row {number}: empty {', '.join(empty)}")
        try:
            seed = int(cells["seed"])
            if seed < 0:
                raise ValueError
        except ValueError:
            raise DecideError(f"{path}: row {number}: seed {cells['seed']!r} is not an integer >= 0") from None
        try:
            value = float(cells["value"])
        except ValueError:
            raise DecideError(f"{path}: row {number}: value {cells['value']!r} is not a number") from None
        meets = None
        if optional:
            flag = cells[PREMISE_COLUMN].lower()
            if flag not in TRUE + FALSE:
                raise DecideError(f"{path}: row {number}: premise {cells[PREMISE_COLUMN]!r} is not true or false")
            meets = flag in TRUE
        key = (cells[name], cells["configuration"], seed)
        if key in first_row:
            raise DecideError(
                f"{path}: row {number}: {key[0]} on {key[1]} seed {seed} is given twice (first in row {first_row[key]})"
            )
        first_row[key] = number
        out.setdefault(key[:2], []).append((seed, value, meets))
    if not out:
        raise DecideError(f"{path}: no values (only a header, or an empty file)")
    return out


def tolerance_from_options(name: str, threshold: float, op: str, rule: str, scale: str) -> checks.Tolerance:
    """A tolerance given on the command line, validated as tolerances.toml's entries are."""
    problem = checks.rule_problem(op, rule, scale)
    if problem is not None:
        raise DecideError(f"--{problem}")
    if not math.isfinite(threshold):
        raise DecideError(f"--threshold {threshold!r} must be a finite number")
    return checks.Tolerance(
        name=name,
        value=float(threshold),
        op=op,
        statistic=name,
        source="the command line",
        calibration="given on the command line",
        rule=rule,
        scale=scale,
    )


def decide_file(path: str | Path, claims_dir: str | Path | None = None, given: dict | None = None) -> list[Verdict]:
    """The decided record (ncsim.checks.decide) of every (check, configuration) of the CSV, with the
    tolerance of `given` (threshold, op, rule, scale: for every check) or else of `claims_dir`'s
    tolerances.toml; DecideError for a check that neither names."""
    groups = read_values(path)
    table = {} if given is not None else _tolerances(claims_dir)
    records = []
    for (name, config), pairs in groups.items():
        if given is not None:
            tol = tolerance_from_options(name, **given)
        elif name in table:
            tol = table[name]
        else:
            raise DecideError(
                f"{path}: check {name!r} is not in {Path(claims_dir) / checks.TOLERANCES} "
                f"(give --threshold, --op and --rule, or name one of its {len(table)} checks)"
            )
        premise = _premise(config, pairs)
        if premise is not None and premise["met"]:  # decided over the runs the statement speaks of
            pairs = [p for p in pairs if p[2]]
        seeds, values = [s for s, _, _ in pairs], [v for _, v, _ in pairs]
        runs = [f"{config}-s{s}" for s in seeds]
        records.append(
            checks.decide(tol, values, claim="decide", config=config, seeds=seeds, runs=runs, premise=premise)
        )
    return records


def _premise(config: str, pairs: list[tuple[int, float, bool | None]]) -> dict | None:
    """The premise record (ncsim.checks.premise_record) of a group with a premise column, None without."""
    if pairs[0][2] is None:
        return None
    meets = [bool(m) for _, _, m in pairs]
    return checks.premise_record(
        PREMISE_STATEMENT, [f"{config}-s{s}" for s, _, _ in pairs], [float(m) for m in meets], meets
    )


def _tolerances(claims_dir) -> dict[str, checks.Tolerance]:
    if claims_dir is None:
        raise DecideError("no tolerances: give --claims DIR (a folder with tolerances.toml) or --threshold and --op")
    try:
        return checks.load_tolerances(str(claims_dir))
    except ValueError as e:
        raise DecideError(str(e)) from None


def table(records: list[Verdict]) -> str:
    """The decisions as a fixed-width text table, one line per (check, configuration)."""

    def num(v):
        return "-" if v is None else f"{v:.4g}"

    lines = [
        f"{'check':34} {'configuration':16} {'n':>2} {'aggregate':>10} {'bound':>19} {'p':>9} {'needs':>12}  verdict"
    ]
    for r in records:
        bound = f"{num(r.interval[0])}-{num(r.interval[1])}" if r.interval else num(r.bound)
        lines.append(
            f"{r.tolerance:34} {r.config:16} {r.n:>2} {num(r.measured):>10} {bound:>19} "
            f"{num(r.p_value):>9} {r.op + ' ' + format(r.threshold, 'g'):>12}  {r.verdict}"
        )
    return "\n".join(lines)


def write(records: list[Verdict], out: str | Path) -> Path:
    """The decisions as JSON (a list of records, the fields of OUTPUT_FIELDS and the source) or, for
    a .csv path, as CSV; written atomically."""
    out = Path(out)
    rows = [{k: _plain(getattr(r, k)) for k in (*OUTPUT_FIELDS, "statistic", "source", "premise")} for r in records]
    if out.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(
            {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()} for row in rows
        )
        data = buffer.getvalue().encode()
    else:
        data = (json.dumps(jsonable(rows), indent=1, allow_nan=False) + "\n").encode()
    with atomic_file(out) as f:
        f.write(data)
    return out


def _plain(value):
    """A field of a record as a row holds it: a tuple as a list."""
    return list(value) if isinstance(value, tuple) else value
