"""A claims session's tests, and the verdict of each claim file over its checks.

A check is decided over the seeds of a configuration (ncsim.checks: one test per check and
configuration, one record each). A claim file's verdict line counts its checks: "reproduces: 12 of 12
checks", "partly reproduces: ..." when some are documented strict xfails or were left undecided by
their seeds (ncsim.sequential), "does not reproduce: <checks>" when a check failed (claim_verdict).
The headline counts the empirical claims on trained CNNs apart from the numerical checks of the
unconstrained features model (claims/test_ufm_*.py, one value per test).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ncsim import suite
from ncsim.verdict import Verdict
from ncsim.verdict.record import records

# pytest's outcomes of a test: "xpassed" is a non-strict xfail that passed (an expected failure on a
# user's --spec that holds there: its check counts as reproducing), "xpass" a strict one that passed
# (which fails the suite).
OUTCOMES = ("passed", "xpassed", "failed", "xfail", "xpass", "skipped", "error")
KINDS = {  # kind of claim file (`kind`) -> what the headline calls it
    "cnn": "Empirical claims on trained CNNs (MNIST-1D), decided over seeds",
    "extended": "Extended tier (--extended): claims of 2021-2023 on trained CNNs, decided over seeds",
    "ufm": "Numerical checks of the unconstrained features model (theory, one value per test)",
}
CHECK_STATUSES = {  # what a test says of its check (check_status) -> how a verdict line names it
    "reproduces": "reproduces",
    "xfail": "does not reproduce (strict xfail, expected)",
    "within the indifference zone": "within the indifference zone",
    "undecided": "undecided",
    "premise not met": "premise not met (no evidence either way)",
    "does not reproduce": "does not reproduce",
    "inconclusive": "inconclusive",
    "error": "error before deciding",
    "xpass": "passes although a strict xfail (which fails the suite)",
    "skipped": "skipped",
}
SEVERE = ("does not reproduce", "inconclusive", "error", "xpass")  # what a verdict line names first
# What a claim with no severe check names beside its reproducing checks: documented non-reproductions,
# checks the seeds left open (ncsim.sequential), and checks whose runs do not meet the statement's
# premise (ncsim.checks.Premise).
OPEN = ("xfail", "within the indifference zone", "undecided", "premise not met")


@dataclass
class RecordedTest:
    """One test of a claims session: its id, outcome (one of OUTCOMES), the reason pytest gave (xfail
    reason, skip reason, error or failure message) and its decided checks (ncsim.verdict.Verdict: one
    per test, none when the test did not get to decide its check; given in their JSON form, they are
    read as Verdicts)."""

    nodeid: str
    outcome: str
    reason: str = ""
    checks: list[Verdict] = field(default_factory=list)

    def __post_init__(self):
        self.checks = records(self.checks)

    @property
    def claim_file(self) -> str:
        return self.nodeid.split("::", 1)[0]

    @property
    def case(self) -> str:
        """The test's name with its parameters, without the file."""
        return self.nodeid.split("::", 1)[-1]

    def to_json(self) -> dict:
        """The test as verdicts.json writes it (RecordedTest(**that) reads it back)."""
        return {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "reason": self.reason,
            "checks": [c.to_json() for c in self.checks],
        }


def many(n: int, one: str, more: str) -> str:
    """ "1 check", "3 checks"."""
    return f"{n} {one if n == 1 else more}"


def figures_for(tests: Sequence[RecordedTest]) -> list[str]:
    """The figures the claim file of these tests declares (its FIGURES, recorded with each check)."""
    return list(dict.fromkeys(f for t in tests for c in t.checks for f in c.figures))


def session_configs(outcomes: Sequence[RecordedTest] | None) -> tuple[str, ...]:
    """The suite's configurations that a claims session's checks read (each record's configuration and
    reference), in the suite's order; all of them when there is no session or it read none (UFM only)."""
    read = {n for t in outcomes or () for c in t.checks for n in (c.config, c.against)}
    return tuple(n for n in suite.CLAIM_CONFIGS if n in read) or suite.CLAIM_CONFIGS


def counts(tests: Sequence[RecordedTest]) -> dict[str, int]:
    c = Counter(t.outcome for t in tests)
    return {outcome: c.get(outcome, 0) for outcome in OUTCOMES}


def kind(claim_file: str, tests: Sequence[RecordedTest] = ()) -> str:
    """ "ufm" for a numerical check of the unconstrained features model (claims/test_ufm_*.py),
    "extended" for a claim of the extended tier (its checks' records say so: the file is marked
    pytest.mark.extended), "cnn" for any other empirical claim on trained networks."""
    if Path(claim_file).name.startswith("test_ufm_"):
        return "ufm"
    return "extended" if any(c.extended for t in tests for c in t.checks) else "cnn"


def check_status(test: RecordedTest) -> str:
    """What a test says of its check, a key of CHECK_STATUSES: its pytest outcome, and for a failure or
    an expected failure the verdict of its record ("does not reproduce"; "undecided", "within the
    indifference zone" or "premise not met" when its runs left it open, whatever the outcome;
    "inconclusive" for a record decided at one look); a test that failed without deciding a check is an
    error."""
    failing = [c.verdict for c in test.checks if not c.holds]
    if test.outcome in ("xfail", "failed") and failing and len(set(failing)) == 1 and failing[0] in OPEN:
        return failing[0]
    if test.outcome != "failed":
        return {"passed": "reproduces", "xpassed": "reproduces"}.get(test.outcome, test.outcome)
    if not failing:
        return "error"
    return "inconclusive" if all(v == "inconclusive" for v in failing) else "does not reproduce"


def check_name(test: RecordedTest) -> str:
    """ "<tolerance> [<where>]" of a test's check; the test's parameter id when it decided none."""
    record = next(iter(test.checks), None)
    return f"{record.tolerance} [{record.where or _param_id(test)}]" if record else _param_id(test)


def _param_id(test: RecordedTest) -> str:
    found = re.search(r"\[(.*)\]$", test.nodeid)
    return found.group(1) if found else test.case


def claim_verdict(tests: Sequence[RecordedTest]) -> tuple[str, str]:
    """The claim's status and its verdict line over its checks (one test each), e.g.

        reproduces           "reproduces: 12 of 12 checks"
        partly reproduces    "partly reproduces: 9 checks reproduce; 3 do not (strict xfail, expected):
                             <checks>: <reasons>"
        does not reproduce   "does not reproduce: <checks>; error before deciding: <checks>; 9 of 12 checks
                             reproduce"

    the checks that did not reproduce named first, most severe first (SEVERE), then those left open
    (OPEN). A claim with an expected failure or an open check is never headlined as reproducing."""
    by = {s: [t for t in tests if check_status(t) == s] for s in CHECK_STATUSES}
    ran, passed = len(tests) - len(by["skipped"]), len(by["reproduces"])
    xfail = [t for s in OPEN for t in by[s]]

    def listed(*statuses: str) -> str:
        return ", ".join(dict.fromkeys(check_name(t) for s in statuses for t in by[s]))

    reasons = "; ".join(dict.fromkeys(t.reason.rstrip(". ") for t in by["xfail"] if t.reason))
    expected = "; ".join(
        f"{many(len(by[s]), one, more)} {what}: {listed(s)}"
        for s, one, more, what in (
            ("xfail", "does", "do", "not (strict xfail, expected)"),
            ("within the indifference zone", "is", "are", "within the indifference zone"),
            ("undecided", "is", "are", "undecided"),
            ("premise not met", "has", "have", "an unmet premise"),
        )
        if by[s]
    ) + (f": {reasons}" if reasons else "")
    severe = [s for s in SEVERE if by[s]]
    if severe:
        status = CHECK_STATUSES[severe[0]]
        parts = [f"{CHECK_STATUSES[s]}: {listed(s)}" for s in severe] + [f"{passed} of {ran} checks reproduce"]
        parts += [expected] if xfail else []
    elif xfail:
        status = "partly reproduces" if passed else CHECK_STATUSES[next(s for s in OPEN if by[s])]
        parts = (
            [f"partly reproduces: {many(passed, 'check reproduces', 'checks reproduce')}", expected]
            if passed
            else [f"{status}: {listed(*OPEN)}" + (f": {reasons}" if reasons else "")]
        )
    else:
        status = "reproduces" if passed else "no checks ran"
        parts = [f"reproduces: {passed} of {ran} checks" if passed else status]
    if by["skipped"]:
        parts.append(f"{len(by['skipped'])} skipped")
    return status, "; ".join(parts)


def verdicts(outcomes: Sequence[RecordedTest]) -> list[dict]:
    """The claims, one per claim file (sorted): its kind (KINDS), status and verdict line
    (claim_verdict), how many checks have each status, the pytest outcome counts, its figures and its
    tests with their check records."""
    files = sorted({t.claim_file for t in outcomes})
    table = []
    for f in files:
        tests = sorted((t for t in outcomes if t.claim_file == f), key=lambda t: t.nodeid)
        status, line = claim_verdict(tests)
        tally = Counter(map(check_status, tests))
        table.append(
            {
                "file": f,
                "kind": kind(f, tests),
                "status": status,
                "verdict": line,
                "check_statuses": {s: tally[s] for s in CHECK_STATUSES if tally[s]},
                "counts": counts(tests),
                "figures": figures_for(tests),
                "tests": [t.to_json() for t in tests],
            }
        )
    return table


def headline(claims: Sequence[Mapping]) -> dict[str, dict]:
    """Per kind of claim (KINDS, those present): how many claim files have each status and how
    many checks each check status."""
    out = {}
    for k in KINDS:
        mine = [c for c in claims if c["kind"] == k]
        if mine:
            checks = sum((Counter(c["check_statuses"]) for c in mine), Counter())
            out[k] = {
                "claims": dict(Counter(c["status"] for c in mine).most_common()),
                "checks": {s: checks[s] for s in CHECK_STATUSES if checks[s]},
            }
    return out
