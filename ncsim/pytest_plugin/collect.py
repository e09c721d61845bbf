"""The tests of a claim file, made from its declaration: the plugin reads the module's CHECKS
(ncsim.claim: tables of ncsim.checks.Check under test names) and makes one test per table name,
parametrized over the table's cases, as scikit-learn's parametrize_with_checks makes the tests of an
estimator from its table of checks.

A table of run checks is parametrized over its checks x configurations, with ids like
`standard-nc1_end_max` (so `pytest -k nc1_end_max` selects one statistic, `-k standard` one
configuration); the test measures the check on the configuration's runs over the session's seeds and
decides it over them (claim_check.of). A table with cases is parametrized over its cases x checks, with
ids like `C4-p6-gd-seed0-ufm_grad_norm_max`; the test measures each check on the case's input
(claim_check.on). A claim file is a module beside a tolerances.toml.

A claim file written wrong is a one-line error naming the problem, reported as the collection error
of its file before anything runs (ClaimFileError): CHECKS of the wrong type, a check naming an unknown
tolerance, a statistic named test_* (pytest would collect it as a test), a table named as a function of
the module, or a test function of its own that takes `check`, `runs` or `case` (the plugin makes those
tests).
"""

from __future__ import annotations

import pytest

from ncsim import checks, claim
from ncsim.pytest_plugin.runs import case_marks

# The parameters of a made test: a run-checks test takes its configuration's runs, a case test its case.
MADE = ("runs", "case")


class ClaimFileError(pytest.UsageError, pytest.Collector.CollectError):
    """A claim file written wrong. Raised while its file is collected, it is reported as that file's
    collection error by its message alone (a CollectError), in an xdist worker too, and the session
    stops before any test runs."""


def is_claim_file(collector) -> bool:
    return isinstance(collector, pytest.Module) and (collector.path.parent / checks.TOLERANCES).is_file()


def declaration_problems(collector) -> list[str]:
    """What is wrong with a claim module's CHECKS (ncsim.claim.problems), and a table named as a
    function the module defines itself."""
    module = collector.obj
    try:
        known = checks.load_tolerances(collector.path.parent)
    except ValueError as e:
        return [str(e)]
    found = claim.problems(module, known)
    names = {table.name for table in claim.tables(module)}
    found += [
        f"{name} is both a table of CHECKS and a function of the module; rename one"
        for name in sorted(names)
        if callable(getattr(module, name, None)) and not hasattr(getattr(module, name), "ncsim_tables")
    ]
    return found


def made_test(name: str, tables: list[claim.Checks]):
    """The test function of the tables named `name`: it takes a check and a configuration's runs, or a
    check and a case."""
    if tables[0].cases is None:

        def test(check, runs, claim_check):
            claim_check.of(check, runs)
    else:

        def test(check, case, claim_check):
            claim_check.on(check, case)

    test.__name__ = test.__qualname__ = name
    test.ncsim_tables = tables
    return test


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """A claim file's CHECKS: the tests of its tables (pytest's own collection of each made function,
    which pytest_generate_tests then parametrizes). Each made function is set on the module under its
    test name, where pytest looks a test function up."""
    if name != "CHECKS" or not is_claim_file(collector):
        return None
    try:
        found = declaration_problems(collector)
    except claim.DeclarationError as e:  # it names the file
        raise ClaimFileError(str(e)) from None
    if found:
        raise ClaimFileError(f"{collector.nodeid}: " + "; ".join(found))
    tables = claim.tables(collector.obj)
    items = []
    for test_name in dict.fromkeys(t.name for t in tables):
        test = made_test(test_name, [t for t in tables if t.name == test_name])
        test.__module__ = collector.obj.__name__
        # Reported (report.location, a skip's line) at the claim file, whose tests these are: pytest
        # places a function's report where its `place_as` is.
        test.place_as = collector.obj
        setattr(collector.obj, test_name, test)
        items += collector.ihook.pytest_pycollect_makeitem(collector=collector, name=test_name, obj=test) or []
    return items


def own_test_problem(metafunc) -> str | None:
    """What is wrong with a test function written by hand, or None: one of a claim file that takes what
    only a made test takes (`check`, `runs`, `case`), or any that takes `runs`."""
    in_claims = (metafunc.definition.path.parent / checks.TOLERANCES).is_file()
    taken = [n for n in (("check", *MADE) if in_claims else ("runs",)) if n in metafunc.fixturenames]
    if not taken:
        return None
    return (
        f"{metafunc.definition.nodeid} takes `{taken[0]}`: the plugin makes the tests of a claim's checks "
        f"itself; declare them in a CHECKS table of ncsim.checks.Check in its module (docs/adding-a-claim.md)"
    )


def pytest_generate_tests(metafunc):
    tables = getattr(metafunc.function, "ncsim_tables", None)
    if tables is None:
        problem = own_test_problem(metafunc)
        if problem is not None:
            raise ClaimFileError(problem)
        return
    config, params = metafunc.config, []
    for table in tables:
        for case_id, check, where in table.items():
            marks = case_marks(config, f"{where}-checks", where, check.against) if isinstance(where, str) else ()
            params.append(pytest.param(check, where, id=case_id, marks=marks))
    runs = tables[0].cases is None
    metafunc.parametrize("check,runs" if runs else "check,case", params, indirect=["runs"] if runs else False)
