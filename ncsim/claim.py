"""What a claim file declares: its checks, grouped under the test names pytest shows, and where each
check is measured. The pytest plugin (ncsim/pytest_plugin/runs.py) reads the declaration and makes
the test items; a claim file holds its source (the module docstring), its statistics and its table,
and a test function only where a claim needs one.

A claim file's `CHECKS` is one of

    (Check(...), ...)                     the checks of the test named after the file (test_<file>)
    Checks("test_name", Check(...), ...)  the same under another name
    (Checks(...), Checks(...), ...)       several tables, e.g. one per kind of input

A table without `cases` measures each check on the runs of each of its configurations (`Check.configs`)
over the session's seeds, decided over the seeds; its cases are "<configuration>-<tolerance>". A table
with `cases` (a model of its own, such as the unconstrained features model) measures each check on
each case's input, one value per case; its cases are "<case id>-<tolerance>". Either way the test id is
`<file>::<name>[<case>]`, and several tables may share a name (their cases must differ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ncsim.checks import Check


@dataclass(frozen=True)
class Case:
    """One input of a table of checks that measure no run of the suite: `id` names it in the test id,
    `make(store)` builds the input the checks' statistics take (from the run store, where it solves
    or stores what it needs), and `seed` and `run` are what the record names as its seed and run."""

    id: str
    make: Callable[..., object]
    run: str
    seed: int | None = None


class Checks:
    """A table of checks under one test name: `Checks("test_name", Check(...), ..., cases=None)`.

    Without `cases`, each check is measured on the runs of its configurations (Check.configs, against
    Check.against); with `cases` (a sequence of Case), each check on each case's input, and a check's
    `note(input)`, when given, adds context to its record."""

    def __init__(self, name: str, *checks: Check, cases: Iterable[Case] | None = None):
        self.name = name
        self.checks = checks
        self.cases = None if cases is None else tuple(cases)

    def __repr__(self) -> str:
        cases = "" if self.cases is None else f", {len(self.cases)} cases"
        return f"Checks({self.name!r}, {', '.join(c.tolerance for c in self.checks)}{cases})"

    def items(self) -> list[tuple[str, Check, str | Case]]:
        """(case id, check, configuration name or Case) of every test case, in the table's order: by
        check, then configuration; or by case, then check."""
        if self.cases is None:
            return [(f"{name}-{check.tolerance}", check, name) for check in self.checks for name in check.configs]
        return [(f"{case.id}-{check.tolerance}", check, case) for case in self.cases for check in self.checks]


class DeclarationError(ValueError):
    """A claim file's CHECKS written wrong; the message names the file and the problem."""


def tables(module) -> tuple[Checks, ...]:
    """The tables a claim module declares in CHECKS (none when it has no CHECKS); a DeclarationError
    for CHECKS of another type, or a table of something other than Checks."""
    where = Path(getattr(module, "__file__", None) or module.__name__).name
    declared = getattr(module, "CHECKS", None)
    if declared is None:
        return ()
    if isinstance(declared, Checks):
        return (declared,)
    hint = (
        "CHECKS must be a tuple of ncsim.checks.Check, a ncsim.claim.Checks table or a tuple of them "
        f"(docs/adding-a-claim.md), got {type(declared).__name__}"
    )
    if not isinstance(declared, (tuple, list)):
        raise DeclarationError(f"{where}: {hint}")
    if all(isinstance(c, Check) for c in declared):
        return (Checks(Path(where).stem, *declared),)
    if all(isinstance(t, Checks) for t in declared):
        return tuple(declared)
    wrong = next(c for c in declared if not isinstance(c, (Check, Checks)))
    raise DeclarationError(f"{where}: CHECKS holds {wrong!r} ({type(wrong).__name__}); " + hint.split(", got")[0])


def problems(module, known_tolerances: Iterable[str]) -> list[str]:
    """What is wrong with a claim module's tables, one line each: a table whose name is not a test
    name, or holds something other than Checks, or no check; a check naming a tolerance that
    `known_tolerances` lacks; a check of a case table with configurations, a reference or controls
    (those describe runs); a case id repeated under a test name; tables of one name that mix run checks
    and cases; a statistic or note named test_*, which pytest would collect as a test. A
    DeclarationError (tables) for CHECKS of the wrong type."""
    known, seen, out, kinds = set(known_tolerances), set(), [], {}
    for table in tables(module):
        kinds.setdefault(table.name, set()).add(table.cases is None)
        if not isinstance(table.name, str) or not table.name.startswith("test"):
            out.append(
                f"table {table.name!r}: its name is the test name pytest shows and must start with "
                f"'test' (e.g. 'test_{table.name}')"
            )
        wrong = [c for c in table.checks if not isinstance(c, Check)]
        if wrong or not table.checks:
            out.append(
                f"table {table.name!r} must hold one or more ncsim.checks.Check, got "
                f"{', '.join(type(c).__name__ for c in wrong) or 'none'}"
            )
            continue
        for check in table.checks:
            if check.tolerance not in known:
                out.append(f"{table.name}: check {check.tolerance!r} names no tolerance of tolerances.toml")
            for f in (check.statistic, check.note):
                name = getattr(f, "__name__", "")
                if name.startswith("test"):
                    out.append(
                        f"{name} is a function of the check {check.tolerance!r} in CHECKS, and pytest "
                        f"collects every test_* function as a test; rename it "
                        f"(e.g. {name.removeprefix('test_')})"
                    )
            if table.cases is not None and (check.configs != ("standard",) or check.against or check.controls):
                out.append(
                    f"{table.name}: check {check.tolerance!r} is measured on the table's cases: it takes "
                    f"no configs, against or controls"
                )
        if table.cases is not None:
            if not table.cases or not all(isinstance(c, Case) for c in table.cases):
                out.append(f"table {table.name!r}: cases must be one or more ncsim.claim.Case")
                continue
        for case_id, *_ in table.items():
            if (table.name, case_id) in seen:
                out.append(f"{table.name}[{case_id}] is declared twice")
            seen.add((table.name, case_id))
    out += [
        f"the tables named {name} mix run checks and cases; name them apart" for name, k in kinds.items() if len(k) > 1
    ]
    return out


def run_checks(module) -> list[Check]:
    """The checks a claim module measures on runs of the suite's configurations (those of its tables
    without cases), in their order: what the negative controls and the docs' configuration columns read."""
    return [check for table in tables(module) if table.cases is None for check in table.checks]


def declared_run_checks(package) -> list[tuple[str, Check]]:
    """(claim file, Check) for every check of runs that a claim file (test_*.py) of the package
    `package` (e.g. the `claims` package) declares, files in name order."""
    import importlib
    import pkgutil

    out = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("test_"):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            out += [(info.name, c) for c in run_checks(module)]
    return out
