"""Where a check is decided: the claims' tolerance table, the checks a claim declares, the decision.

A claim file (claims/test_*.py) declares its statistics in a table `CHECKS` of `Check`s: the tolerance
each statistic is held to (an entry of the claims directory's tolerances.toml), the configurations it
is measured on, the reference configuration of a comparison, and the negative controls on which it
must fail (tests/test_negative_controls.py derives its cases from these tables).

A verdict is a statement about the distribution over seeds, never about one seed: `decide` takes the
statistic's value on every seed of a configuration and applies the tolerance's rule,

    every        each seed's value meets `op value` (exact or structural statements: NC4 = 0, a
                 TPT reached on every run); one failing seed refutes it;
    mean         the one-sided 95% confidence bound of the mean over seeds (of the log values for
                 `scale = "log"`, i.e. of the geometric mean; of the values for "linear") meets
                 `op value`; equivalently the one-sided t-test of "the mean is on the failing side
                 of the threshold" has p < 0.05. A direction ("no weight decay collapses less":
                 the log ratio over seeds, paired by seed) is this rule on a ratio;
    equivalence  two one-sided t-tests (TOST) on the log ratios: the geometric-mean ratio lies
                 within a factor `value` of 1 (margin fixed before looking), p < 0.05 for both;
                 the measured ratio and its 90% interval are reported as a finding,

and returns the record (ncsim.verdict.Verdict) that the report, verdicts.json and claims/calibrate.py
read; the pytest plugin (ncsim/pytest_plugin) asserts on it and carries it as the test property
PROPERTY. A record's verdict is "reproduces" (the rule holds), "does not reproduce" (the bound lies on
the failing side of the threshold even the other way round: the mean is significantly on the wrong
side), or "inconclusive" (neither). The levels above are those of one look at a fixed set of seeds; a
claims session decides at the levels of its sequential design instead (ncsim.sequential: alpha = 0.05
spent over the looks), where an inconclusive look adds seeds and the session's verdict of a check
that stays so is "undecided" or, at the design's last look, "within the indifference zone".

The tables live beside the claims they serve (`<claims dir>/tolerances.toml`,
`<claims dir>/expected_failures.toml`); nothing here knows where the package is installed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

# PROPERTY and property_value: the test property's name and codec, under the names the claim_check fixture uses
from ncsim.verdict import PROPERTY, Verdict, failure_message, property_value  # noqa: F401
from ncsim.verdict.record import OPEN_VERDICTS, PREMISE_NOT_MET

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

TOLERANCES = "tolerances.toml"
EXPECTED_FAILURES = "expected_failures.toml"

ALPHA = 0.05  # every rule's one-sided level
RULES = ("every", "mean", "equivalence")
SCALES = ("log", "linear")

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "within": None}
_FIELDS = {"value", "op", "statistic", "source", "calibration"}
_OPTIONAL = {"rule": "every", "scale": "log", "indifference": None}
# The smallest departure from a threshold that a decision must resolve, on a log scale: a factor 1.25.
# The weakest physical weakening of collapse the suite controls is half the default's weight decay,
# which moves end NC1 by 1.29x on the calibration seeds (ncsim.controls, wd-half); a check must
# tell its effect from the threshold at that resolution. A linear statistic states its own.
INDIFFERENCE_FACTOR = 1.25


@dataclass(frozen=True)
class Tolerance:
    """One entry of tolerances.toml: a claim statistic, its threshold `value`, how a value compares
    with it (`op`), and the rule that decides it over seeds (`rule`, `scale`; module docstring)."""

    name: str
    value: float
    op: str
    statistic: str
    source: str
    calibration: str
    rule: str = "every"
    scale: str = "log"
    indifference: float | None = None

    @property
    def indifference_delta(self) -> float | None:
        """The indifference zone of the check on its rule's scale (ncsim.sequential): the smallest
        departure from the threshold it must decide. On a log scale ln of the entry's `indifference`
        factor (default INDIFFERENCE_FACTOR); on a linear scale the entry's `indifference`, in the
        statistic's units; None for rule "every", which is decided on each run."""
        if self.rule == "every":
            return None
        if self.distances_on_log_scale:
            return math.log(self.indifference or INDIFFERENCE_FACTOR)
        return self.indifference

    @property
    def distances_on_log_scale(self) -> bool:
        """Whether distances from the threshold and spreads over seeds are taken on log x: the rule's
        scale, unless the threshold is 0 (an exact statement, NC4 = 0), which only a linear scale has."""
        return (self.rule == "equivalence" or self.scale == "log") and self.value > 0

    def holds(self, measured: float) -> bool:
        """True when one value satisfies `measured op value`; NaN never holds. (For "within": the
        value, a ratio, is within a factor `value` of 1.)"""
        if math.isnan(measured):
            return False
        if self.op == "within":
            return measured > 0 and abs(math.log(measured)) <= math.log(self.value)
        return _OPS[self.op](measured, self.value)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read: {e}") from None


def rule_problem(op: str, rule: str, scale: str, indifference: float | None = None) -> str | None:
    """What is wrong with a tolerance's op, rule, scale and indifference zone, or None: each must be one
    of its valid values, op "within" goes with rule "equivalence" and only with it, and a rule "mean"
    on a linear scale states its `indifference` (> 0, in the statistic's units; on a log scale it is a
    factor > 1)."""
    for field, value, valid in (("op", op, tuple(_OPS)), ("rule", rule, RULES), ("scale", scale, SCALES)):
        if value not in valid:
            return f"{field} {value!r}; valid: {list(valid)}"
    if (rule == "equivalence") != (op == "within"):
        return 'op "within" goes with rule "equivalence" and only with it'
    log = rule == "equivalence" or scale == "log"
    if rule == "mean" and not log and indifference is None:
        return 'a linear rule "mean" states its `indifference` (the smallest departure it must decide)'
    if indifference is not None and not (isinstance(indifference, (int, float)) and indifference > (1 if log else 0)):
        return f"indifference {indifference!r} must be {'a factor > 1' if log else '> 0'}"
    return None


@cache
def load_tolerances(claims_dir: str | Path) -> dict[str, Tolerance]:
    """`<claims_dir>/tolerances.toml`, validated: a missing field or an unknown op is a ValueError
    naming the entry."""
    path = Path(claims_dir) / TOLERANCES
    table = {}
    for name, entry in _read_toml(path).items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: [{name}] must be a table with fields {sorted(_FIELDS)}")
        missing, extra = _FIELDS - set(entry), set(entry) - _FIELDS - set(_OPTIONAL)
        if missing or extra:
            raise ValueError(f"{path}: entry [{name}] missing {sorted(missing)} / unknown {sorted(extra)}")
        entry = {**_OPTIONAL, **entry}
        problem = rule_problem(entry["op"], entry["rule"], entry["scale"], entry["indifference"])
        if problem is not None:
            raise ValueError(f"{path}: entry [{name}]: {problem}")
        table[name] = Tolerance(name=name, **{**entry, "value": float(entry["value"])})
    return table


def tolerance(claims_dir: str | Path, name: str) -> Tolerance:
    table = load_tolerances(claims_dir)
    if name not in table:
        raise KeyError(f"no tolerance {name!r} in {Path(claims_dir) / TOLERANCES}; known: {sorted(table)}")
    return table[name]


class Undecided(AssertionError):
    """A check that did not hold and is not refuted either: "undecided" (the session's seeds ran out
    before its bounds cleared the threshold), "within the indifference zone" (ncsim.sequential), or
    "premise not met" (its runs do not satisfy what the statement assumes: Premise). The pytest plugin
    reports it as an expected failure with its numbers, never as a pass."""


def assert_holds(record: Verdict) -> None:
    """Raise for a decided check that does not hold: Undecided when its verdict says the runs did not
    decide it, else AssertionError; the message is failure_message's."""
    if not record.holds:
        raise (Undecided if record.verdict in OPEN_VERDICTS else AssertionError)(failure_message(record))


@dataclass(frozen=True)
class ExpectedFailure:
    """A check that does not reproduce on a configuration: a strict xfail, which any failed assertion
    satisfies and a pass fails. A borderline check is never registered: seeds are added until it is
    decided (ncsim.sequential)."""

    tolerance: str
    config: str
    reason: str

    def covers(self, tolerance: str, config: str) -> bool:
        return (tolerance, config) == (self.tolerance, self.config)


@cache
def load_expected_failures(claims_dir: str | Path) -> tuple[ExpectedFailure, ...]:
    """`<claims_dir>/expected_failures.toml`: tables `[<tolerance>.<config>]`, each with a `reason`; an
    entry naming an unknown tolerance, or with any other field, is a ValueError (a stale entry). Never
    by seed: a verdict is decided over the seeds."""
    path = Path(claims_dir) / EXPECTED_FAILURES
    if not path.is_file():
        return ()
    known = load_tolerances(claims_dir)
    out = []
    for name, by_config in _read_toml(path).items():
        if name not in known:
            raise ValueError(f"{path}: [{name}] names no tolerance of {Path(claims_dir) / TOLERANCES}")
        for config, entry in by_config.items():
            if not isinstance(entry, dict) or set(entry) != {"reason"}:
                raise ValueError(
                    f"{path}: [{name}.{config}] takes a `reason` only (a borderline check is not registered: "
                    f"the sequential design adds seeds until it is decided), got {entry!r}"
                )
            out.append(ExpectedFailure(name, config, str(entry["reason"])))
    return tuple(out)


# The fewest runs meeting a statement's premise on which its check is decided: a rule over seeds needs two.
PREMISE_RUNS = 2


@dataclass(frozen=True)
class Premise:
    """What a paper's statement assumes of each run, beyond the training itself: e.g. Papyan, Han &
    Donoho's Proposition 1 (PNAS 2020) assumes exact collapse, Sigma_W = 0; their terminal-phase
    statements assume a terminal phase to observe. `statistic(run)` -> float measures it on a
    trajectory; a run meets it when `statistic op value` holds. The check is decided over the runs that
    meet it (the statement says nothing of the others, which the record lists); with fewer than
    PREMISE_RUNS such runs it is "premise not met", evidence neither for nor against the statement. A
    run that did not finish is kept: the check fails on its NaN."""

    statement: str
    statistic: Callable[..., float]
    op: str
    value: float

    def __post_init__(self):
        if self.op not in _OPS or self.op == "within":
            raise ValueError(f"premise {self.statement!r}: op {self.op!r}; valid: {[o for o in _OPS if o != 'within']}")

    def meets(self, run) -> bool:
        """Whether one run meets the premise (a run that did not finish counts as meeting it)."""
        return run.status != "ok" or bool(_OPS[self.op](float(self.statistic(run)), self.value))

    def record(self, runs: Sequence) -> dict:
        """The premise on each run: {"statement", "runs" (labels), "values" (one per run), "meets" (one
        bool per run), "met" (at least PREMISE_RUNS runs meet it, so the check is decided on those)}."""
        values = [float(self.statistic(r)) if r.status == "ok" else math.nan for r in runs]
        meets = [self.meets(r) for r in runs]
        return premise_record(f"{self.statement} ({self.op} {self.value:g})", [r.label for r in runs], values, meets)


def premise_record(statement: str, runs: Sequence[str], values: Sequence[float], meets: Sequence[bool]) -> dict:
    """A premise's record (Premise.record) from each run's label, value and whether it meets it: "met"
    when at least PREMISE_RUNS runs do, so that the check is decided on those."""
    meets = [bool(m) for m in meets]
    return {
        "statement": statement,
        "runs": list(runs),
        "values": list(values),
        "meets": meets,
        "met": sum(meets) >= PREMISE_RUNS,
    }


@dataclass(frozen=True)
class Check:
    """One statistic of a claim, held to the tolerance `tolerance` on each configuration in `configs`.

    `statistic(run)` -> float measures it on a trajectory (ncsim.trajectory.Trajectory); with
    `against` set, `statistic(run, reference)` compares the run with the same seed of the reference
    configuration. `controls` names the negative controls on which the check must fail
    (tests/test_negative_controls.py); `note(run[, reference])`, if given, adds context to the record;
    `premise`, what the statement assumes of each run (Premise), if it assumes more than the training."""

    tolerance: str
    statistic: Callable[..., float]
    configs: tuple[str, ...] = ("standard",)
    against: str | None = None
    controls: tuple[str, ...] = ()
    note: Callable[..., str] | None = None
    premise: Premise | None = None

    def _runs(self, run, reference) -> tuple:
        """What the statistic takes: the run, and the reference run of a comparison."""
        return (run,) if self.against is None else (run, reference)

    def measure(self, run, reference=None) -> float:
        """The statistic on `run` (and `reference`); NaN, which fails every tolerance, when either
        did not finish (status "diverged" or "degenerate"): a claim on such a run fails as a check."""
        args = self._runs(run, reference)
        if any(r.status != "ok" for r in args):
            return float("nan")
        return float(self.statistic(*args))

    def describe(self, run, reference=None) -> str:
        """Context for the record: why a run did not finish, or the check's own note."""
        args = self._runs(run, reference)
        stopped = [f"run {r.label} {r.status}: {r.meta.get('status_reason')}" for r in args if r.status != "ok"]
        if stopped:
            return "; ".join(stopped)
        return "" if self.note is None else self.note(*args)


def _finite(values: np.ndarray, tol: Tolerance) -> bool:
    return bool(np.isfinite(values).all() and (tol.scale != "log" and tol.rule != "equivalence" or (values > 0).all()))


def apply_rule(tol: Tolerance, values: Sequence[float], alpha: float = ALPHA) -> dict:
    """The rule of `tol` on one value per seed at one-sided level `alpha`: whether it holds, the verdict,
    and the statistics it rests on (aggregate: the geometric or arithmetic mean; bound: the one-sided
    1 - alpha bound of the mean, or for "equivalence" the 1 - 2 alpha interval of the geometric-mean
    ratio; p_value). Rule "every" states something of each run: one failing seed refutes it."""
    x = np.asarray(values, dtype=np.float64)
    out = {"aggregate": None, "bound": None, "interval": None, "p_value": None, "n": len(x)}
    if tol.rule == "every" or not len(x):
        ok = [tol.holds(v) for v in x]
        out["aggregate"] = float(np.nanmedian(x)) if np.isfinite(x).any() else None
        holds = bool(ok) and all(ok)
        return {
            **out,
            "holds": holds,
            "verdict": "reproduces" if holds else "does not reproduce",
        }
    if not _finite(x, tol):
        return {**out, "holds": False, "verdict": "does not reproduce"}
    log = tol.rule == "equivalence" or tol.scale == "log"
    y = np.log(x) if log else x
    back = np.exp if log else (lambda v: v)
    n, m = len(y), float(y.mean())
    se = float(y.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    from scipy import stats  # here: importing scipy.stats costs ~1 s of every pytest start-up

    t = float(stats.t.ppf(1 - alpha, n - 1)) if n > 1 else math.nan
    out["aggregate"] = float(back(m))

    def sf(z: float) -> float | None:  # one-sided p of a t statistic; se = 0 gives z = +-inf
        return None if n < 2 else float(stats.t.sf(z, n - 1))

    with np.errstate(divide="ignore", invalid="ignore"):
        if tol.rule == "equivalence":
            margin = math.log(tol.value)
            lo, hi = (m, m) if n < 2 else (m - t * se, m + t * se)
            p = None if n < 2 else max(sf(np.float64(m + margin) / se), sf(np.float64(margin - m) / se))
            holds = -margin < lo and hi < margin
            beyond = lo > margin or hi < -margin
            return {
                **out,
                "interval": [float(back(lo)), float(back(hi))],
                "p_value": p,
                "holds": bool(holds),
                "p_differs": None if n < 2 else float(2 * sf(abs(np.float64(m)) / se)),
                "verdict": "reproduces" if holds else "does not reproduce" if beyond else "inconclusive",
            }
        thr = math.log(tol.value) if log else tol.value
        upper = tol.op in ("<=", "<")
        bound = m if n < 2 else m + t * se if upper else m - t * se
        other = m if n < 2 else m - t * se if upper else m + t * se
        z = np.float64(thr - m if upper else m - thr) / se if n > 1 else math.nan
        holds = bool(_OPS[tol.op](bound, thr))
        wrong = bool(not _OPS[tol.op](other, thr))
    return {
        **out,
        "bound": float(back(bound)),
        "p_value": sf(z),
        "holds": holds,
        "verdict": "reproduces" if holds else "does not reproduce" if wrong else "inconclusive",
    }


def decide(tol: Tolerance, values: Sequence[float], alpha: float = ALPHA, **identity) -> Verdict:
    """The record of one decided check (ncsim.verdict.Verdict): the tolerance and its rule, the value
    on every seed (None for NaN: JSON has none), the decision (apply_rule at level `alpha`) and
    `identity`, the fields saying where it was decided (claim, case, config, seeds, runs, note, ...).
    With a `premise` record (Premise.record) that too few runs meet, the verdict is "premise not met"
    whatever the rule says: the values are no evidence either way."""
    decision = apply_rule(tol, values, alpha)
    if not (identity.get("premise") or {}).get("met", True):
        decision |= {"holds": False, "verdict": PREMISE_NOT_MET}
    return Verdict(
        tolerance=tol.name,
        statistic=tol.statistic,
        op=tol.op,
        threshold=tol.value,
        rule=tol.rule,
        scale=tol.scale,
        source=tol.source,
        values=[None if math.isnan(v) else float(v) for v in map(float, values)],
        measured=decision.pop("aggregate"),
        **decision,
        **identity,
    )
