"""The record of one decided check (`Verdict`), and its JSON form.

A check is decided over the seeds of a configuration by ncsim.checks.decide; the record holds the
tolerance and its rule (copied, so that a record read back later needs no tolerances.toml), the value
on every seed, the statistics the rule rests on, the verdict, and where the check was decided (claim,
test case, configuration, seeds, runs). It is the one thing the test property "ncsim_check" (junit
xml), the failure message, claims/calibrate.py, verdicts.json, report.md and the verdict figure read.

JSON has no non-finite numbers: a value that is not finite is the string "inf", "-inf" or "nan", and a
seed that measured NaN is null (decide records it as None). `Verdict.from_json(v.to_json()) == v`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields

import numpy as np

PROPERTY = "ncsim_check"  # the name of the test property that carries a decided check (JSON text)
# "inconclusive": one look's bounds straddle the threshold (ncsim.checks.apply_rule). A claims session
# looks again with more seeds (ncsim.sequential); a check its seeds did not decide is "undecided", or,
# at the design's last look, "within the indifference zone". "premise not met": too few runs satisfy
# what the paper's statement assumes (ncsim.checks.Premise), so the values are no evidence either way.
PREMISE_NOT_MET = "premise not met"
VERDICTS = (
    "reproduces",
    "does not reproduce",
    "inconclusive",
    "undecided",
    "within the indifference zone",
    PREMISE_NOT_MET,
)
UNSETTLED = ("inconclusive", "undecided", "within the indifference zone")
OPEN_VERDICTS = (*UNSETTLED, PREMISE_NOT_MET)  # neither reproduces nor does not: the runs did not decide
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


@dataclass(frozen=True)
class Verdict:
    """One check decided over seeds.

    The tolerance (tolerances.toml): `tolerance` (its name), `statistic`, `op`, `threshold`, `rule`,
    `scale`, `source`. The decision (ncsim.checks.apply_rule): `values` (one per seed, None for NaN),
    `measured` (the aggregate the rule rests on: the geometric or arithmetic mean, for rule "every" the
    median; None when no value is finite), `bound` (the one-sided bound of the mean at the
    decision's level: 95% at one look, the sequential design's otherwise), `interval` (for "equivalence",
    the two-sided interval of the geometric-mean ratio at twice that level), `p_value`, `n` (the number of
    values), `holds`, `verdict` (one of VERDICTS) and, for "equivalence", `p_differs` (the two-sided p
    of "the ratio differs from 1"). Where it was decided: `claim` (the claim file's stem), `case` (the
    test's parameter id), `figures` (those its claim file names), `extended` (a claim of the extended
    tier), `seeds`, `runs` (run labels), and either `run` (a check of one value on one named run, as
    the UFM claims make) or the `config` and its reference configuration `against` (a comparison);
    `note`: why a run stopped, or context the claim adds. `discriminates`: whether some physical
    control fails the check on the calibration seeds, and `evidence` what the discrimination table
    (ncsim.discrimination, claims/discrimination.json) says of it (None: not in the table);
    `reference`: the agreement of the values with the check's values on the calibration seeds
    (ncsim.reference.agreement: its "verdict" is "agrees", "differs" or "inconclusive"); `sequential`:
    the look it was decided at, its level and indifference zone (ncsim.sequential.summary); `premise`:
    for a check whose statement assumes something of each run (ncsim.checks.Premise), that assumption
    ("statement"), every run of the configuration ("runs") with its value ("values") and whether it
    meets it ("meets"), and whether enough do ("met"): the check's own `values` and `runs` are those
    of the runs that meet it."""

    tolerance: str
    statistic: str
    op: str
    threshold: float
    rule: str
    scale: str
    source: str
    values: tuple[float | None, ...]
    measured: float | None
    bound: float | None
    interval: tuple[float, float] | None
    p_value: float | None
    n: int
    holds: bool
    verdict: str
    p_differs: float | None = None
    claim: str | None = None
    case: str | None = None
    figures: tuple[str, ...] = ()
    extended: bool = False
    seeds: tuple[int | None, ...] | None = None
    runs: tuple[str | None, ...] | None = None
    run: str | None = None
    config: str | None = None
    against: str | None = None
    note: str = ""
    discriminates: bool | None = None
    evidence: str | None = None
    reference: dict | None = None
    sequential: dict | None = None
    premise: dict | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} of check {self.tolerance!r}: one of {list(VERDICTS)}")
        for name in ("values", "figures", "seeds", "runs", "interval"):  # lists given become tuples
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def aggregate(self) -> float | None:
        """The aggregate the rule rests on (the same as `measured`; verdicts.json writes both)."""
        return self.measured

    @property
    def where(self) -> str:
        """The configuration the check was decided on ("lbfgs vs standard" for a comparison); for a
        check of one run, which names no configuration, its run and seed."""
        if self.config:
            return self.config + (f" vs {self.against}" if self.against else "")
        seed = next(iter(self.seeds or ()), None)
        return " ".join(x for x in (self.run or "", "" if seed is None else f"s{seed}") if x)

    def to_json(self) -> dict:
        """The record as verdicts.json writes it: non-finite numbers as strings, the fields in the order
        below. `aggregate` repeats `measured`; `p_differs` is written for rule "equivalence" only; a check
        of one run writes its `run`, a check over a configuration's seeds its reference `against`."""
        out = {
            "tolerance": self.tolerance,
            "statistic": self.statistic,
            "op": self.op,
            "threshold": self.threshold,
            "rule": self.rule,
            "scale": self.scale,
            "source": self.source,
            "values": list(self.values),
            "measured": self.measured,
            "aggregate": self.measured,
            "bound": self.bound,
            "interval": None if self.interval is None else list(self.interval),
            "p_value": self.p_value,
            "n": self.n,
            "holds": self.holds,
        }
        if self.rule == "equivalence":
            out["p_differs"] = self.p_differs
        out |= {
            "verdict": self.verdict,
            "claim": self.claim,
            "case": self.case,
            "figures": list(self.figures),
            "extended": self.extended,
            "seeds": None if self.seeds is None else list(self.seeds),
            "runs": None if self.runs is None else list(self.runs),
        }
        if self.run is not None:
            out["run"] = self.run
        out["config"] = self.config
        if self.run is None:
            out["against"] = self.against
        out["note"] = self.note
        if self.discriminates is not None:
            out |= {"discriminates": self.discriminates, "evidence": self.evidence}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.sequential is not None:
            out["sequential"] = self.sequential
        if self.premise is not None:
            out["premise"] = self.premise
        return jsonable(out)

    @classmethod
    def from_json(cls, doc: Mapping | str) -> Verdict:
        """A record read back from its JSON form (a dict, or its text): the numbers written as "inf",
        "-inf" or "nan" turned back into floats. A missing field of the decision, or a field this record
        does not have, is a ValueError naming it."""
        if isinstance(doc, str):
            doc = json.loads(doc)
        if not isinstance(doc, Mapping):
            raise ValueError(f"a check record is a JSON object, got {type(doc).__name__}")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        given = {k: v for k, v in doc.items() if k != "aggregate"}
        unknown, missing = set(given) - known, required - set(given)
        if unknown or missing:
            raise ValueError(
                f"check record {doc.get('tolerance')!r}: unknown fields {sorted(unknown)}, "
                f"missing fields {sorted(missing)}"
            )
        for name in ("threshold", "measured", "bound", "p_value", "p_differs"):
            if name in given:
                given[name] = _number(given[name])
        for name in ("values", "interval"):
            if given.get(name) is not None:
                given[name] = [_number(v) for v in given[name]]
        if isinstance(given.get("premise"), Mapping):
            given["premise"] = {**given["premise"], "values": [_number(v) for v in given["premise"].get("values", [])]}
        return cls(**given)


def _number(value):
    """A number of the JSON form back as a float: "inf", "-inf" and "nan" (strings) as those floats."""
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value


def jsonable(value, nonfinite: Callable[[float], object] = str):
    """`value` with every non-finite float replaced by `nonfinite(x)` (JSON has no such numbers; by
    default the string "inf", "-inf" or "nan", as verdicts.json writes them) and numpy scalars as Python
    numbers, recursively through dicts, lists and tuples."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return nonfinite(value)
    if isinstance(value, Mapping):
        return {k: jsonable(v, nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, nonfinite) for v in value]
    return value


def property_value(record: Verdict) -> str:
    """A decided check as the JSON text of the test property PROPERTY (what junit xml shows)."""
    return json.dumps(record.to_json(), allow_nan=False)


def from_property(value: str | Mapping) -> Verdict:
    """A decided check read back from its test property PROPERTY (JSON text, or its parsed object)."""
    return Verdict.from_json(value)


def records(values: Sequence[Verdict | Mapping]) -> list[Verdict]:
    """Check records, each a Verdict or its JSON form (as verdicts.json holds it), as Verdicts."""
    return [v if isinstance(v, Verdict) else Verdict.from_json(v) for v in values]
