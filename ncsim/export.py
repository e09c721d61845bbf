"""A run's trajectory as a table: tidy rows, a pandas DataFrame, a CSV file.

    rows = tidy_rows(t)       # one dict per evaluated epoch: label, key, epoch and every column
    df = to_frame(t)          # the same as a pandas DataFrame (pandas is optional)
    write_csv(t, "run.csv")   # the same as CSV, written atomically

The columns are those of Trajectory.columns() (ncsim.trajectory): losses, errors, "train.<metric>",
"test.<metric>", "layer.<tap>.<metric>" (NaN off the layer schedule). A CSV leaves a missing value
(NaN) empty; pandas.read_csv reads it back as NaN.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from ncsim.store import atomic_file
from ncsim.trajectory import Trajectory

IDENTITY = ("label", "key", "epoch")


def tidy_rows(trajectory: Trajectory) -> list[dict]:
    """One dict per evaluated epoch, in epoch order: "label", "key", "epoch" (an int), then every
    column of the trajectory (a float; NaN where nothing was measured)."""
    names = [c for c in trajectory.columns() if c != "epoch"]
    values = {c: trajectory[c] for c in names}
    return [
        {
            "label": trajectory.label,
            "key": trajectory.key,
            "epoch": int(epoch),
            **{c: float(values[c][i]) for c in names},
        }
        for i, epoch in enumerate(trajectory.epochs)
    ]


def to_frame(trajectory: Trajectory):
    """The trajectory's tidy rows as a pandas DataFrame (one row per evaluated epoch). ImportError
    naming pandas when it is not installed: write_csv or tidy_rows need nothing beyond ncsim."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "to_frame needs pandas (pip install pandas); without it, ncsim.export.write_csv(t, "
            "path) writes the same table as CSV and tidy_rows(t) gives it as dicts"
        ) from None
    rows = tidy_rows(trajectory)
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else list(IDENTITY))


def columns_of(rows: Iterable[dict]) -> list[str]:
    """The union of the rows' keys in first-seen order (rows of runs with other layer taps differ)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _cell(value) -> str:
    """A CSV cell: empty for None and NaN, repr for floats (round-trips exactly), str otherwise."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def write_rows(rows: Sequence[dict], stream, columns: Sequence[str] | None = None) -> None:
    """Write `rows` as CSV with a header to the text stream `stream`; a key a row lacks is empty."""
    columns = list(columns) if columns is not None else columns_of(rows)
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically, with the run store's mode (ncsim.store.atomic_file)."""
    with atomic_file(path) as f:
        f.write(text.encode("utf-8"))
    return Path(path)


def write_csv(trajectory: Trajectory | Sequence[Trajectory], path: str | Path) -> Path:
    """Write the tidy rows of a trajectory (or of several, one after the other) to the CSV file
    `path`, atomically; returns the path."""
    runs = [trajectory] if isinstance(trajectory, Trajectory) else list(trajectory)
    rows = [row for t in runs for row in tidy_rows(t)]
    buffer = io.StringIO()
    write_rows(rows, buffer, columns_of(rows) if rows else IDENTITY)
    return atomic_write_text(path, buffer.getvalue())
