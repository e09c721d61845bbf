"""A decided check in words: its rule, and what a failed check says (the assertion message)."""

from __future__ import annotations

from ncsim.verdict.record import Verdict

RULE_TEXT = {
    "every": "every seed",
    "mean": "one-sided 95% bound of the {mean} over seeds",
    "equivalence": "TOST: 90% interval of the geometric-mean ratio within a factor",
}


def describe_rule(rule: str = "every", scale: str = "log") -> str:
    """A rule in words, e.g. "one-sided 95% bound of the geometric mean over seeds" (rule "mean" on
    the log scale)."""
    return RULE_TEXT[rule].format(mean="geometric mean" if scale == "log" else "mean")


def failure_message(record: Verdict) -> str:
    """What a failed check says: the statistic, its value on every seed, the aggregate and bound the
    rule rests on, the threshold, the verdict and the source."""

    def num(v):
        return "nan" if v is None else f"{v:.4g}"

    per_seed = ", ".join(
        f"{r} {num(v)}" for r, v in zip(record.runs or [record.run] * len(record.values), record.values)
    )
    if record.rule == "every":
        rests = ""
    elif record.rule == "equivalence" and record.interval:
        lo, hi = record.interval
        rests = (
            f"; geometric-mean ratio {num(record.measured)}, 90% interval {num(lo)}-{num(hi)}, p {num(record.p_value)}"
        )
    else:
        rests = (
            f"; {'geometric ' if record.scale == 'log' else ''}mean {num(record.measured)}, "
            f"95% bound {num(record.bound)}, p {num(record.p_value)}"
        )
    return (
        f"{record.statistic} ({record.verdict}): claim needs {record.op} {record.threshold:g} "
        f"by {describe_rule(record.rule, record.scale)}{rests}; values: {per_seed}. Source: {record.source}. "
        f"{record.note or ''}"
    ).strip()
