"""The `claim_check` fixture, and the expected failures of a claims directory as xfails.

    claim_check.of(check, runs)                 # a check of runs: measure on every seed, decide
    claim_check.on(check, case)                 # a check of a case table (e.g. the UFM's): one value
    claim_check(tolerance, measured, run=...)   # a test of its own: one value, by name

The tests a claim file's CHECKS declares call the first two (ncsim.pytest_plugin.collect).

Each decided check is recorded as the test property "ncsim_check" (ncsim.checks.decide), which
pytest carries from xdist workers to the controller, where the report turns them into the verdict
table. Tolerances and expected failures are read from the directory of the claim file being run,
wherever it is: nothing here looks for the claims next to the installed package.
"""

from __future__ import annotations

import pytest

from ncsim import checks, claim, discrimination, reference, sequential
from ncsim.pytest_plugin.recorded import RecordedConfigurations, lacking
from ncsim.pytest_plugin.runs import EXTENDED, configurations
from ncsim.pytest_plugin.session import claims_session


class ClaimCheck:
    def __init__(self, request):
        self.request = request
        self.claims_dir = request.path.parent

    def _decide(self, tolerance: str, values, over_seeds: bool = False, **identity) -> None:
        """Decide the values by the tolerance's rule, record and assert; `over_seeds`: a check over a
        configuration's seeds, decided at the level of the session's sequential design."""
        node = self.request.node
        tol = checks.tolerance(self.claims_dir, tolerance)
        design = claims_session(self.request.config).design if over_seeds else None
        row = discrimination.load(self.claims_dir).get((tolerance, identity.get("config")))
        if row is not None:  # the table's keys name a configuration: a check of one named run has none
            identity |= {
                "discriminates": row["discriminates"],
                "evidence": discrimination.evidence(row),
                "reference": reference.agreement(tol, row["reference"]["values"], values),
            }
        record = checks.decide(
            tol,
            values,
            alpha=checks.ALPHA if design is None else design.alpha,
            claim=self.request.path.stem,
            case=getattr(getattr(node, "callspec", None), "id", node.name),
            figures=list(getattr(self.request.module, "FIGURES", ())),
            extended=node.get_closest_marker(EXTENDED) is not None,
            **identity,
        )
        if design is not None:
            record = sequential.settle(record, tol, design)
        node.user_properties.append((checks.PROPERTY, checks.property_value(record)))
        try:
            checks.assert_holds(record)
        except checks.Undecided as e:
            if node.get_closest_marker("xfail"):  # a documented non-reproduction: any failure is expected
                raise AssertionError(str(e)) from None
            short = (
                record.verdict == sequential.UNDECIDED and record.config in claims_session(self.request.config).short
            )
            pytest.xfail(f"{e}{' (the session seed budget ran out: --seed-budget)' if short else ''}")
        self._assert_agrees(record)

    def _assert_agrees(self, record) -> None:
        """On the suite's own configurations a statistic that moved beyond its reference margin fails
        (ncsim.reference): the suite no longer measures what it measured on its calibration seeds. On a
        user's --spec or recorded runs it is reported only; an expected failure is decided by its rule."""
        if record.reference is None or record.reference["verdict"] != "differs":
            return
        configs = configurations(self.request.config)
        own = configs.source is None and not isinstance(configs, RecordedConfigurations)
        if not own or self.request.node.get_closest_marker("xfail"):
            return
        pytest.fail(
            f"{record.tolerance} [{record.where}] differs from its reference distribution: "
            f"{reference.describe(record.reference)}; values {list(record.values)}",
            pytrace=False,
        )

    def __call__(
        self,
        tolerance: str,
        measured: float,
        *,
        seed: int | None = None,
        run: str | None = None,
        config: str | None = None,
        note: str = "",
    ) -> None:
        """Assert that one measured value meets the named tolerance (its rule over one value); the
        failure message gives the value, the threshold, the run and the source."""
        self._decide(tolerance, [measured], seeds=[seed], runs=[run], run=run, config=config, note=note)

    def of(self, check: checks.Check, runs) -> None:
        """Measure `check` on every run of a configuration (and on the same seed of its reference
        configuration), decide it over the seeds by the tolerance's rule, and assert."""
        obtain_run = self.request.getfixturevalue("obtain_run")
        refs = [
            obtain_run(check.against, r.spec.seed, dict(r.spec.data).get("seed")) if check.against else None
            for r in runs
        ]
        try:
            premise = None if check.premise is None else check.premise.record(runs)
            if premise is not None and premise["met"]:  # decided over the runs the statement speaks of
                runs, refs = zip(*[(r, ref) for r, ref, ok in zip(runs, refs, premise["meets"]) if ok])
            notes = [check.describe(r, ref) for r, ref in zip(runs, refs)]
            values = [check.measure(r, ref) for r, ref in zip(runs, refs)]
        except KeyError as e:
            if not isinstance(configurations(self.request.config), RecordedConfigurations):
                raise
            pytest.skip(lacking(e))
        params = getattr(getattr(self.request.node, "callspec", None), "params", {})
        self._decide(
            check.tolerance,
            values,
            over_seeds=True,
            seeds=[r.spec.seed for r in runs],
            runs=[r.label for r in runs],
            config=params.get("runs", runs[0].spec.name if runs else None),
            against=check.against,
            note="; ".join(f"{r.label}: {n}" for r, n in zip(runs, notes) if n),
            premise=premise,
        )

    def on(self, check: checks.Check, case: claim.Case) -> None:
        """Measure `check` on the input of `case` (built from the run store), decide the one value by the
        tolerance's rule, and assert; the check's note of the input, if any, goes into the record."""
        x = case.make(self.request.getfixturevalue("run_store"))
        measured = check.statistic(x)
        self(check.tolerance, measured, seed=case.seed, run=case.run, note="" if check.note is None else check.note(x))


@pytest.fixture
def claim_check(request) -> ClaimCheck:
    return ClaimCheck(request)


def pytest_collection_modifyitems(config, items):
    """Mark each case that claims/expected_failures.toml names (by tolerance and configuration, or by
    tolerance and the case id of a case table) as a strict xfail that only an assertion can satisfy: an
    error in setup (say a run that could not be trained) is not the documented non-reproduction.
    On a user's spec (--spec) the entries, documented on the suite's own runs, are never strict: a
    check that holds there is reported as a pass."""
    own_spec = configurations(config).source is not None
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        check, case = params.get("check"), params.get("case")
        name = case.id if isinstance(case, claim.Case) else params.get("runs")
        if not isinstance(check, checks.Check):
            continue
        try:
            table = checks.load_expected_failures(item.path.parent)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None
        for xfail in table:
            if xfail.covers(check.tolerance, name):
                reason = f"on the suite's own {name} runs: {xfail.reason}" if own_spec else xfail.reason
                item.add_marker(pytest.mark.xfail(strict=not own_spec, reason=reason, raises=AssertionError))
