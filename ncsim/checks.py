"""Where a check is decided: the claims' tolerance table, the checks a claim declares, the decision.

A claim file (claims/test_*.py) declares its statistics in a table `CHECKS` of `Check`s: the tolerance
each statistic is held to (an entry of the claims directory's tolerances.toml), the configurations it
is measured on, the reference configuration of a comparison, and the negative controls on which it
must fail (tests/test_negative_controls.py derives its cases from these tables). `decide` compares one
measured value with its tolerance and returns the JSON-able record that the report, verdicts.json and
claims/calibrate.py read; the pytest plugin (ncsim/pytest_plugin) asserts on it.

The tables live beside the claims they serve (`<claims dir>/tolerances.toml`,
`<claims dir>/expected_failures.toml`); nothing here knows where the package is installed.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

TOLERANCES = "tolerances.toml"
EXPECTED_FAILURES = "expected_failures.toml"
PROPERTY = "ncsim_check"   # the name of the test property that carries a decided check

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_FIELDS = {"value", "op", "statistic", "source", "calibration"}


@dataclass(frozen=True)
class Tolerance:
    """One entry of tolerances.toml: a claim statistic holds when `measured <op> value`."""

    name: str
    value: float
    op: str
    statistic: str
    source: str
    calibration: str

    def holds(self, measured: float) -> bool:
        """True when `measured op value`; NaN never holds."""
        return not math.isnan(measured) and _OPS[self.op](measured, self.value)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read: {e}") from None


@lru_cache(maxsize=None)
def load_tolerances(claims_dir: str | Path) -> dict[str, Tolerance]:
    """`<claims_dir>/tolerances.toml`, validated: a missing field or an unknown op is a ValueError
    naming the entry."""
    path = Path(claims_dir) / TOLERANCES
    table = {}
    for name, entry in _read_toml(path).items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: [{name}] must be a table with fields {sorted(_FIELDS)}")
        missing, extra = _FIELDS - set(entry), set(entry) - _FIELDS
        if missing or extra:
            raise ValueError(f"{path}: entry [{name}] missing {sorted(missing)} / unknown {sorted(extra)}")
        if entry["op"] not in _OPS:
            raise ValueError(f"{path}: entry [{name}] has op {entry['op']!r}; valid: {sorted(_OPS)}")
        table[name] = Tolerance(name=name, **{**entry, "value": float(entry["value"])})
    return table


def tolerance(claims_dir: str | Path, name: str) -> Tolerance:
    table = load_tolerances(claims_dir)
    if name not in table:
        raise KeyError(f"no tolerance {name!r} in {Path(claims_dir) / TOLERANCES}; known: {sorted(table)}")
    return table[name]


@dataclass(frozen=True)
class ExpectedFailure:
    """A check that does not reproduce, kept as a strict xfail: on `config` (all seeds, or `seeds`)."""

    tolerance: str
    config: str
    reason: str
    seeds: tuple[int, ...] | None = None

    def covers(self, tolerance: str, config: str, seed: int) -> bool:
        return (tolerance, config) == (self.tolerance, self.config) and (self.seeds is None or seed in self.seeds)


@lru_cache(maxsize=None)
def load_expected_failures(claims_dir: str | Path) -> tuple[ExpectedFailure, ...]:
    """`<claims_dir>/expected_failures.toml`: tables `[<tolerance>.<config>]` with a `reason` and
    optionally `seeds`; an entry naming an unknown tolerance is a ValueError (a stale entry)."""
    path = Path(claims_dir) / EXPECTED_FAILURES
    if not path.is_file():
        return ()
    known = load_tolerances(claims_dir)
    out = []
    for name, by_config in _read_toml(path).items():
        if name not in known:
            raise ValueError(f"{path}: [{name}] names no tolerance of {Path(claims_dir) / TOLERANCES}")
        for config, entry in by_config.items():
            if not isinstance(entry, dict) or set(entry) - {"reason", "seeds"} or "reason" not in entry:
                raise ValueError(f"{path}: [{name}.{config}] needs `reason` (and optionally `seeds`), got {entry!r}")
            seeds = entry.get("seeds")
            out.append(ExpectedFailure(name, config, str(entry["reason"]),
                                       None if seeds is None else tuple(int(s) for s in seeds)))
    return tuple(out)


@dataclass(frozen=True)
class Check:
    """One statistic of a claim, held to the tolerance `tolerance` on each configuration in `configs`.

    `statistic(run)` -> float measures it on a trajectory (ncsim.trajectory.Trajectory); with
    `against` set, `statistic(run, reference)` compares the run with the same seed of the reference
    configuration. `controls` names the negative controls on which the check must fail
    (tests/test_negative_controls.py); `note(run[, reference])`, if given, adds context to the record."""

    tolerance: str
    statistic: Callable[..., float]
    configs: tuple[str, ...] = ("standard",)
    against: str | None = None
    controls: tuple[str, ...] = ()
    note: Callable[..., str] | None = None

    def measure(self, run, reference=None) -> float:
        """The statistic on `run` (and `reference`); NaN, which fails every tolerance, when either
        did not finish (status "diverged" or "degenerate"): a claim on such a run fails as a check."""
        args = (run,) if self.against is None else (run, reference)
        if any(r.status != "ok" for r in args):
            return float("nan")
        return float(self.statistic(*args))

    def describe(self, run, reference=None) -> str:
        """Context for the record: why a run did not finish, or the check's own note."""
        args = (run,) if self.against is None else (run, reference)
        stopped = [f"run {r.label} {r.status}: {r.meta.get('status_reason')}" for r in args if r.status != "ok"]
        if stopped:
            return "; ".join(stopped)
        return "" if self.note is None else self.note(*args)


def decide(tol: Tolerance, measured: float, **identity) -> dict:
    """The record of one decided check: `identity` (claim, case, config, seed, run, note, ...), the
    measured value (None for NaN: JSON has no NaN), the tolerance, and whether it holds."""
    measured = float(measured)
    return {"tolerance": tol.name, "statistic": tol.statistic, "measured": None if math.isnan(measured) else measured,
            "op": tol.op, "threshold": tol.value, "source": tol.source, "holds": tol.holds(measured), **identity}


def failure_message(record: dict) -> str:
    """What a failed check says: the statistic, the measured value, the threshold, the run and source."""
    measured = float("nan") if record["measured"] is None else record["measured"]
    where = f" (run {record['run']})" if record.get("run") else ""
    return (f"{record['statistic']}: measured {measured:.4g}, claim needs {record['op']} {record['threshold']:g}"
            f"{where}. Source: {record['source']}. {record.get('note') or ''}").strip()
