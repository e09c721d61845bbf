"""A decided check in words: its rule, and what a failed check says (the assertion message)."""

from __future__ import annotations

import math

from ncsim.verdict.record import Verdict

RULE_TEXT = {
    "every": "every seed",
    "mean": "one-sided confidence bound of the {mean} over seeds",
    "equivalence": "TOST: confidence interval of the geometric-mean ratio within a factor",
}


def describe_rule(rule: str = "every", scale: str = "log") -> str:
    """A rule in words, e.g. "one-sided confidence bound of the geometric mean over seeds" (rule "mean"
    on the log scale); the level is the decision's (ncsim.checks.ALPHA at one look, the sequential
    design's otherwise)."""
    return RULE_TEXT[rule].format(mean="geometric mean" if scale == "log" else "mean")


def failure_message(record: Verdict) -> str:
    """What a failed check says: the statistic, its value on every seed, the aggregate and bound the
    rule rests on, the threshold, the verdict and the source; for a check whose runs do not meet its
    premise, the premise and its value on every seed first."""

    def num(v):
        return "nan" if v is None else f"{v:.4g}"

    per_seed = ", ".join(
        f"{r} {num(v)}" for r, v in zip(record.runs or [record.run] * len(record.values), record.values)
    )
    alpha = (record.sequential or {}).get("alpha", 0.05)
    if record.rule == "every":
        rests = ""
    elif record.rule == "equivalence" and record.interval:
        lo, hi = record.interval
        rests = (
            f"; geometric-mean ratio {num(record.measured)}, {percent(1 - 2 * alpha)} interval {num(lo)}-{num(hi)}, "
            f"p {num(record.p_value)}"
        )
    else:
        rests = (
            f"; {'geometric ' if record.scale == 'log' else ''}mean {num(record.measured)}, "
            f"{percent(1 - alpha)} bound {num(record.bound)}, p {num(record.p_value)}"
        )
    premise, unmet = record.premise or {}, ""
    if premise and not all(premise["meets"]):
        missed = [(r, v) for r, v, ok in zip(premise["runs"], premise["values"], premise["meets"]) if not ok]
        measured = ", ".join(f"{r} {num(v)}" for r, v in missed)
        unmet = f"The statement assumes {premise['statement']}: " + (
            f"decided on the {sum(premise['meets'])} runs that meet it, not on {measured}. "
            if premise["met"]
            else f"too few runs meet it ({measured}). "
        )
    return (
        f"{unmet}{record.statistic} ({record.verdict}{design_text(record)}): claim needs {record.op} "
        f"{record.threshold:g} by {describe_rule(record.rule, record.scale)}{rests}; values: {per_seed}. "
        f"Source: {record.source}. {record.note or ''}"
    ).strip()


def percent(level: float) -> str:
    """A confidence level as a percentage, e.g. "95%", "98.75%"."""
    return f"{100 * level:.4g}%"


def design_text(record: Verdict) -> str:
    """What the sequential design says of a check (ncsim.sequential.summary), e.g. ", n = 10 at look 2
    of 4, level 0.0125; resolves a factor 1.31 of the threshold, the zone asks 1.25: 14 seeds would"."""
    d = record.sequential
    if not d:
        return ""
    text = f", n = {record.n} at look {d['look']} of {d['looks']}, level {d['alpha']:.4g}"
    if d.get("resolved") is None or d.get("indifference") is None:
        return text
    log = record.scale == "log" or record.rule == "equivalence"

    def zone(delta: float) -> str:
        return f"a factor {math.exp(delta):.3g}" if log else f"{delta:.3g}"

    need = d.get("seeds_needed")
    return (
        text + f"; resolves {zone(d['resolved'])} of the threshold, the indifference zone asks "
        f"{zone(d['indifference'])}" + (f": {need} seeds would" if need and d["resolved"] > d["indifference"] else "")
    )
