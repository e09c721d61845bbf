"""The discrimination table: for every claim check, how far its reference value and its nearest failing
physical control lie from its threshold.

A "reproduces" is evidence only if the check would have failed had the effect been absent or a few
times weaker. For each check x configuration this measures, on the calibration seeds (data seed
varied with them):
- the reference: the check's statistic on its own configuration, decided by its own rule
  (ncsim.checks.decide), and the seed standard deviation s of the values on the rule's scale (of
  log x on a log scale, of x on a linear one);
- every physical control (ncsim.controls: no training, training stopped at the stable TPT, a learning
  rate of 0 from the terminal phase on, no batch norm, weight decay 0, 1/10, 1/5, 1/2 of the
  default's), decided by the same rule, and the check's own declared controls;
- the margins, in units of s: the reference's distance from the threshold on the passing side, and the
  nearest failing physical control's distance on the failing side.

A check that no physical control fails is not evidence of its effect: the table says so, and the
report states it as a premise. `claims/discriminate.py` computes the table and writes it to
claims/discrimination.json, which docs/generate.py renders.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from ncsim import checks, controls
from ncsim.checks import Check, Tolerance


def signed_distance(tol: Tolerance, x: float | None) -> float:
    """How far `x` lies on the passing side of the threshold, on the tolerance's scale (log x for a log
    scale or an equivalence; negative on the failing side; NaN for a missing or non-positive log value).
    For op "within": log(value) - |log x|."""
    if x is None or not math.isfinite(x):
        return math.nan
    log = tol.distances_on_log_scale
    if log and x <= 0:
        return math.nan
    t = math.log if log else float
    if tol.op == "within":
        return math.log(tol.value) - abs(math.log(x))
    if tol.op in ("<=", "<"):
        return t(tol.value) - t(x)
    return t(x) - t(tol.value)


def seed_sd(tol: Tolerance, values: Sequence[float | None]) -> float:
    """The standard deviation over seeds (ddof 1) of the values on the tolerance's scale; NaN with fewer
    than two finite (and, on a log scale, positive) values."""
    x = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    log = tol.distances_on_log_scale
    ok = np.isfinite(x) & ((x > 0) if log else True)
    y = np.log(x[ok]) if log else x[ok]
    return float(y.std(ddof=1)) if len(y) > 1 else math.nan


@dataclass(frozen=True)
class Decided:
    """The statistic on one regime over the seeds: the values, the aggregate and verdict of the check's
    rule, and `error` when it cannot be measured there (e.g. a statistic of the network on a run cut
    at its TPT, whose network is not recorded). `null`: the statistic is its null value by construction
    on every seed (exactly 1, a ratio of the run to itself such as init / end at initialisation, or
    exactly 0), so its failing is no measurement of the effect."""

    name: str
    values: list[float | None] = field(default_factory=list)
    measured: float | None = None
    verdict: str | None = None
    holds: bool | None = None
    error: str | None = None
    null: bool = False

    @property
    def fails(self) -> bool:
        """It fails the check as a measurement: measured (a finite aggregate), not held, and not the null
        by construction. A statistic undefined on the regime (a terminal-phase statistic of a run that
        never reaches its TPT) cannot hold there, but says nothing of a weaker effect."""
        finite = self.measured is not None and math.isfinite(self.measured)
        return self.error is None and finite and self.holds is False and not self.null


@dataclass(frozen=True)
class Row:
    """One check on one configuration: `reference` (its own configuration), `controls` (each control's
    decision; `physical` names the physical ones), the seed SD `sd` of the reference on the rule's
    scale, and the margins in units of it (module docstring)."""

    claim: str
    tolerance: str
    config: str
    op: str
    threshold: float
    rule: str
    scale: str
    seeds: list[int]
    reference: Decided
    sd: float
    controls: list[Decided]
    physical: list[str]

    def nearest_failing(self) -> Decided | None:
        """The failing physical control closest to the threshold (on the rule's scale), or None."""
        tol = self.tolerance_entry()
        failing = [c for c in self.controls if c.name in self.physical and c.fails]
        finite = [c for c in failing if math.isfinite(signed_distance(tol, c.measured))]
        if finite:
            return max(finite, key=lambda c: signed_distance(tol, c.measured))
        return failing[0] if failing else None

    def tolerance_entry(self) -> Tolerance:
        return Tolerance(self.tolerance, self.threshold, self.op, "", "", "", self.rule, self.scale)

    def margins(self) -> tuple[float, float]:
        """(reference margin, control margin) in seed SDs: the reference's distance from the threshold
        on the passing side, and the nearest failing physical control's on the failing side (NaN where
        either is missing or s is 0)."""
        tol, near = self.tolerance_entry(), self.nearest_failing()
        sd = self.sd if self.sd > 0 else math.nan
        ref = signed_distance(tol, self.reference.measured) / sd
        ctl = math.nan if near is None else -signed_distance(tol, near.measured) / sd
        return ref, ctl

    @property
    def discriminates(self) -> bool:
        """Some physical control fails the check."""
        return self.nearest_failing() is not None

    @classmethod
    def from_json(cls, row: Mapping) -> Row:
        """The Row a to_json dict was made from (its derived fields recomputed by to_json again)."""
        names = [f for f in cls.__dataclass_fields__]
        d = {k: row[k] for k in names}
        d["sd"] = math.nan if d["sd"] is None else d["sd"]
        d["reference"] = Decided(**row["reference"])
        d["controls"] = [Decided(**c) for c in row["controls"]]
        return cls(**d)

    def with_control(self, decided: Decided, physical: bool) -> Row:
        """The row with `decided` in place of its control of the same name (or added)."""
        kept = [c for c in self.controls if c.name != decided.name]
        names = [n for n in self.physical if n != decided.name] + ([decided.name] if physical else [])
        return dataclasses.replace(self, controls=[*kept, decided], physical=names)

    def to_json(self) -> dict:
        out = asdict(self)
        near = self.nearest_failing()
        ref, ctl = self.margins()
        out.update(
            sd=None if math.isnan(self.sd) else self.sd,
            nearest_failing=None if near is None else near.name,
            reference_margin_sd=None if math.isnan(ref) else ref,
            control_margin_sd=None if math.isnan(ctl) else ctl,
            discriminates=self.discriminates,
        )
        proposed = dose_threshold(out) if self.config == controls.STANDARD else None
        out["dose_threshold"] = None if proposed is None else {"value": proposed[0], "fails": proposed[1]}
        return out


def _decided(tol: Tolerance, name: str, measure: Callable[[int], float], seeds: Sequence[int]) -> Decided:
    try:
        values = [measure(seed) for seed in seeds]
    except (KeyError, ValueError) as e:
        return Decided(name, error=str(e.args[0] if e.args else e))
    record = checks.decide(tol, values)
    null = bool(values) and (all(v == 1.0 for v in values) or all(v == 0.0 for v in values))
    return Decided(name, record.values, record.measured, record.verdict, record.holds, null=null)


def row(claim: str, check: Check, config: str, tol: Tolerance, obtain: controls.Obtain, seeds: Sequence[int]) -> Row:
    """The discrimination row of `check` on `config` over `seeds`, its runs from `obtain(config, seed)`."""

    def own(seed: int) -> float:
        reference = None if check.against is None else obtain(check.against, seed)
        return check.measure(obtain(config, seed), reference)

    names = [n for n in controls.PHYSICAL_CONTROLS if controls.applicable(check, n)]
    names += [n for n in check.controls if n not in names]
    reference = _decided(tol, config, own, seeds)
    decided = [control_decided(check, n, tol, obtain, seeds) for n in names]
    return Row(
        claim=claim,
        tolerance=check.tolerance,
        config=config,
        op=tol.op,
        threshold=tol.value,
        rule=tol.rule,
        scale=tol.scale,
        seeds=list(seeds),
        reference=reference,
        sd=seed_sd(tol, reference.values),
        controls=decided,
        physical=[n for n in names if controls.CONTROLS[n].physical],
    )


def control_decided(
    check: Check, control: str, tol: Tolerance, obtain: controls.Obtain, seeds: Sequence[int]
) -> Decided:
    """`check` on control `control` over `seeds`, decided by its own rule (a column of a row)."""
    return _decided(tol, control, lambda s: controls.measure(check, control, obtain, s), seeds)


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _dose_text(proposed: Mapping | None) -> str:
    return "-" if not proposed else f"{_fmt(proposed['value'])} ({proposed['fails']} fails)"


def markdown(rows: Sequence[dict]) -> str:
    """The table as Markdown, from the rows' JSON (Row.to_json): one line per check x configuration."""
    lines = [
        "| check | config | threshold | reference | nearest failing physical control | margins (seed SDs) "
        "| physical controls passed | dose-response threshold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        near = next((c for c in r["controls"] if c["name"] == r["nearest_failing"]), None)
        passed = [c["name"] for c in r["controls"] if c["name"] in r["physical"] and c["holds"]]
        passed += [
            f"{c['name']} (null by construction)" for c in r["controls"] if c.get("null") and c["name"] in r["physical"]
        ]
        near_text = "**none**" if near is None else f"{near['name']} {_fmt(near['measured'])}"
        lines.append(
            f"| `{r['tolerance']}` | {r['config']} | {r['op']} {_fmt(r['threshold'])} | "
            f"{_fmt(r['reference']['measured'])} ({r['reference']['verdict']}) | {near_text} | "
            f"{_fmt(r['reference_margin_sd'])} / {_fmt(r['control_margin_sd'])} | {', '.join(passed) or '-'} | "
            f"{_dose_text(r.get('dose_threshold'))} |"
        )
    return "\n".join(lines) + "\n"


TABLE = "discrimination.json"


@cache
def load(claims_dir: str | Path) -> dict[tuple[str, str], dict]:
    """(tolerance, configuration) -> its row (Row.to_json) from `<claims_dir>/discrimination.json`;
    empty when the claims directory has no table. A table that cannot be read is a ValueError naming
    the file."""
    path = Path(claims_dir) / TABLE
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {(r["tolerance"], r["config"]): r for r in doc["rows"]}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: cannot read the discrimination table: {e}") from None


def evidence(row: Mapping) -> str:
    """One sentence on what the row shows: the nearest failing physical control and the margins, or that
    none fails (the check is then a premise of the claim, not evidence of it)."""
    seeds = ",".join(map(str, row["seeds"]))
    if not row["discriminates"]:
        passed = [c["name"] for c in row["controls"] if c["name"] in row["physical"] and c["holds"]]
        return (
            f"premise, not evidence: no physical control fails it on seeds {seeds} "
            f"(passed by {', '.join(passed) or 'none measurable'})"
        )
    near = next(c for c in row["controls"] if c["name"] == row["nearest_failing"])
    return (
        f"does not hold on {near['name']} ({CONTROL_WHAT.get(near['name'], near['name'])}: {near['verdict']}, "
        f"{_fmt(near['measured'])}, {_side(row['control_margin_sd'], 'beyond')}; this configuration "
        f"{_fmt(row['reference']['measured'])}, {_side(row['reference_margin_sd'], 'inside')}), seeds {seeds}"
    )


def _side(margin: float | None, positive: str) -> str:
    """ "2.8 seed SDs beyond the threshold", or the other side when the margin is negative."""
    if margin is None:
        return "its distance from the threshold unknown (no spread over seeds)"
    other = "inside" if positive == "beyond" else "beyond"
    return f"{_fmt(abs(margin))} seed SDs {positive if margin >= 0 else other} the threshold"


CONTROL_WHAT = {name: c.what for name, c in controls.CONTROLS.items()}


# The regimes a threshold from the dose-response must fail, in order: the first that a 1-2-5 value
# separates from the default regime sets it (`dose_threshold`).
MUST_FAIL = ("wd-fifth", "wd-tenth", "no-wd", "at-tpt", "init")
# How far inside a dose-response threshold the default's own bound must lie: another seed set or
# machine moves a bound by up to about a fifth, and the default must hold its threshold there too.
ROBUST = 1.25


def one_two_five(x: float, below: bool) -> float:
    """The largest value of the 1-2-5 series (..., 0.01, 0.02, 0.05, 0.1, ...) strictly below `x` (or
    the smallest strictly above, `below` False); x > 0."""
    e = math.floor(math.log10(x))
    series = [m * 10.0**k for k in (e - 1, e, e + 1) for m in (1, 2, 5)]
    return max(v for v in series if v < x * (1 - 1e-12)) if below else min(v for v in series if v > x * (1 + 1e-12))


def _bounds(values: Sequence[float | None]) -> tuple[float, float] | None:
    """The one-sided 95% lower and upper bounds of the geometric mean of positive values (t over
    seeds); None with fewer than two such values."""
    x = np.array([v for v in values if v is not None and v > 0 and math.isfinite(v)], dtype=np.float64)
    if len(x) < 2:
        return None
    from scipy import stats

    y = np.log(x)
    half = float(stats.t.ppf(1 - checks.ALPHA, len(y) - 1) * y.std(ddof=1) / math.sqrt(len(y)))
    return math.exp(y.mean() - half), math.exp(y.mean() + half)


def dose_threshold(row: Mapping) -> tuple[float, str] | None:
    """The threshold the dose-response of the default regime sets for a row (Row.to_json) of
    "standard" with a log-scale mean rule and op "<=" or ">=": the 1-2-5 value nearest to the first
    regime of MUST_FAIL whose one-sided 95% bound on the reference's side it lies beyond, on the
    reference's side of it, that the reference's own bound clears by a factor ROBUST (the regime fails
    it, the reference holds it, each at the 5% level, the reference with room for another seed set).
    (value, regime), or None where no regime is separated so (or the rule is another)."""
    if row["rule"] != "mean" or row["scale"] != "log" or row["op"] not in ("<=", ">=", "<", ">"):
        return None
    upper = row["op"] in ("<=", "<")
    ref = _bounds(row["reference"]["values"])
    if ref is None:
        return None
    by_name = {c["name"]: c for c in row["controls"]}
    for name in MUST_FAIL:
        c = by_name.get(name)
        b = None if c is None or c["error"] else _bounds(c["values"])
        if b is None:
            continue
        v = one_two_five(b[0], below=True) if upper else one_two_five(b[1], below=False)
        if (ref[1] * ROBUST <= v) if upper else (ref[0] >= v * ROBUST):
            return v, name
    return None
