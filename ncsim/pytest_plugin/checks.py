"""The `claim_check` fixture, and the expected failures of a claims directory as strict xfails.

    claim_check.of(check, run)                  # a CHECKS-table claim: measure, record, assert
    claim_check(tolerance, measured, run=...)   # any other claim (e.g. the UFM's): the same, by name

Each decided check is recorded as the test property "ncsim_check" (ncsim.checks.decide), which
pytest carries from xdist workers to the controller, where the report turns them into the verdict
table. Tolerances and expected failures are read from the directory of the claim file being run.
"""

from __future__ import annotations

import pytest

from ncsim import checks, suite


class ClaimCheck:
    def __init__(self, request):
        self.request = request
        self.claims_dir = request.path.parent

    def __call__(self, tolerance: str, measured: float, *, seed: int | None = None, run: str | None = None,
                 config: str | None = None, note: str = "") -> None:
        """Assert `measured <op> threshold` for the named tolerance; the failure message gives the
        measured value, the threshold, the run and the source."""
        node = self.request.node
        record = checks.decide(
            checks.tolerance(self.claims_dir, tolerance), measured,
            claim=self.request.path.stem, case=getattr(getattr(node, "callspec", None), "id", node.name),
            config=config, seed=seed, run=run, note=note,
            figures=list(getattr(self.request.module, "FIGURES", ())))
        node.user_properties.append((checks.PROPERTY, record))
        assert record["holds"], checks.failure_message(record)

    def of(self, check: checks.Check, run) -> None:
        """Measure `check` on `run` (and on the same seed of its reference configuration) and assert."""
        seed = run.spec.seed
        reference = self.request.getfixturevalue("get_run")(check.against, seed) if check.against else None
        self(check.tolerance, check.measure(run, reference), seed=seed, run=run.label,
             config=run.spec.name, note=check.describe(run, reference))


@pytest.fixture
def claim_check(request) -> ClaimCheck:
    return ClaimCheck(request)


def pytest_collection_modifyitems(config, items):
    """Mark each case that claims/expected_failures.toml names (by tolerance, configuration and
    optionally seeds) as a strict xfail that only an assertion can satisfy: an error in setup (say a
    run that could not be trained) is not the documented non-reproduction."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        check, run = params.get("check"), params.get("run")
        if not isinstance(check, checks.Check) or not isinstance(run, suite.RunId):
            continue
        try:
            table = checks.load_expected_failures(item.path.parent)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
        for xfail in table:
            if xfail.covers(check.tolerance, run.config, run.seed):
                item.add_marker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=xfail.reason))
