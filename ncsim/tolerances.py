"""The claims' tolerance table: claims/tolerances.toml, one entry per checked statistic.

Each entry states the threshold, the direction of the check, where the claim comes from, and how the
threshold was calibrated (the statistic's values over several seeds and the margin chosen), so a reader
can audit every number a claim is held to in one file.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

TABLE = Path(__file__).resolve().parent.parent / "claims" / "tolerances.toml"
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_FIELDS = {"value", "op", "statistic", "source", "calibration"}


@dataclass(frozen=True)
class Tolerance:
    name: str
    value: float
    op: str
    statistic: str
    source: str
    calibration: str

    def holds(self, measured: float) -> bool:
        """True when `measured op value`; NaN never holds."""
        return not math.isnan(measured) and _OPS[self.op](measured, self.value)


@lru_cache(maxsize=None)
def load(path: str | Path = TABLE) -> dict[str, Tolerance]:
    """Read and validate the table; a missing field or unknown op is a ValueError naming the entry."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    table = {}
    for name, entry in raw.items():
        missing, extra = _FIELDS - set(entry), set(entry) - _FIELDS
        if missing or extra:
            raise ValueError(f"{path}: entry [{name}] missing {sorted(missing)} / unknown {sorted(extra)}")
        if entry["op"] not in _OPS:
            raise ValueError(f"{path}: entry [{name}] has op {entry['op']!r}; valid: {sorted(_OPS)}")
        table[name] = Tolerance(name=name, **{**entry, "value": float(entry["value"])})
    return table


def get(name: str) -> Tolerance:
    table = load()
    if name not in table:
        raise KeyError(f"no tolerance {name!r} in {TABLE}; known: {sorted(table)}")
    return table[name]
