"""report.md, from the verdicts.json document: the headline counts, a verdict line per claim, the
figures, and a row per check (its values per seed, aggregate, bound or interval, p-value, threshold).
The cells of a check's row (`per_seed`, `aggregate_text`, `rests_on`, `p_text`, `needs`, `number`) are
those docs/generate.py writes on the results page too."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ncsim import figures, reference
from ncsim.checks import ALPHA
from ncsim.report import stability
from ncsim.report.aggregate import CHECK_STATUSES, KINDS, RecordedTest, many
from ncsim.verdict import Verdict, describe_rule
from ncsim.verdict.message import percent

NO_SESSION = "no claims session recorded on these seeds and configurations"
CHECK_COLUMNS = (
    "check",
    "configuration",
    "rule",
    "values per seed",
    "aggregate",
    "bound / interval",
    "p",
    "needs",
    "verdict",
    "outcome",
    "note",
)


def markdown(doc: Mapping) -> str:
    """report.md from the verdicts.json document."""
    lines = [f"# Neural Collapse claims report, {doc['folder']}", ""]
    session = doc["session"]
    facts = [f"written {doc['created']}", f"seeds {', '.join(map(str, doc['seeds']))}"]
    if doc.get("store"):
        facts.append(f"run store `{doc['store']}`")
    lines += [" · ".join(facts), ""]
    if session is None:
        lines += [
            f"**Verdicts: {NO_SESSION}.** Run `pytest claims` to check the claims; the figures below "
            "are drawn from the runs in the store.",
            "",
        ]
    else:
        for k, counted in doc["headline"].items():
            files, checks = sum(counted["claims"].values()), sum(counted["checks"].values())
            lines += [
                f"**{KINDS[k]}: {many(files, 'claim file', 'claim files')} ({tally(counted['claims'])}); "
                f"{many(checks, 'check', 'checks')} ({tally(counted['checks'], CHECK_STATUSES)}).**",
                "",
            ]
        total = sum(doc["summary"].values())
        lines += [f"{total} tests: " + ", ".join(f"{n} {o}" for o, n in doc["summary"].items() if n) + ".", ""]
        origin = f"Verdicts from `{session['command']}`" if session.get("command") else "Verdicts from a claims session"
        origin += f", finished {session['finished']}" if session.get("finished") else ""
        origin += f" (exit status {session['exitstatus']})" if session.get("exitstatus") is not None else ""
        if session.get("verdicts_from"):
            origin += f"; read from `{session['verdicts_from']}`, figures redrawn from the run store now"
        lines += [origin + ".", ""]
    if doc["not_drawn"]:
        lines += [
            "**Runs not drawn** (missing from the store or not finished): " + "; ".join(doc["not_drawn"]) + ".",
            "",
        ]

    lines += ["## Verdicts", ""]
    if session is None:
        lines += [f"{NO_SESSION.capitalize()}.", ""]
    elif "stability" in doc:
        lines += [stability.describe(doc["stability"]), ""]
        lines += [stability.describe_false(doc["false_verdicts"]), ""] if "false_verdicts" in doc else []
    for k, title in KINDS.items():
        claims = [c for c in doc["claims"] if c["kind"] == k]
        if claims:
            lines += [f"**{title}**", "", "| claim | verdict | tests | figures |", "|---|---|---|---|"]
            for claim in claims:
                outcomes = ", ".join(f"{n} {o}" for o, n in claim["counts"].items() if n)
                lines.append(
                    f"| [{Path(claim['file']).stem}](#{_anchor(claim['file'])}) | {_cell(claim['verdict'])} "
                    f"| {outcomes} | {_figure_links(claim['figures'], doc)} |"
                )
            lines.append("")

    lines += ["## Figures", ""]
    for name, info in doc["figures"].items():
        lines += [f"### {info['title']}", "", f"![{info['title']}]({name})", ""]
        if info.get("error"):
            lines += [f"**Could not draw {name}:** {info['error']}", ""]

    if session is not None:
        lines += ["## Checks by claim", ""]
        for claim in doc["claims"]:
            lines += claim_section(claim, doc)
    return "\n".join(lines).rstrip() + "\n"


def tally(counted: Mapping[str, int], names: Mapping[str, str] | None = None) -> str:
    """ "reproduces: 12, undecided: 1", each status named by `names` where it names it."""
    return ", ".join(f"{(names or {}).get(status, status)}: {n}" for status, n in counted.items())


def claim_section(claim: Mapping, doc: Mapping) -> list[str]:
    """A claim's verdict, figures, what each of its checks measures and where it comes from, and a row
    per check (one per test; a test that decided none gets a row with its reason)."""
    tests = [RecordedTest(**t) for t in claim["tests"]]
    statistics = {c.tolerance: (c.statistic, c.source) for t in tests for c in t.checks}
    lines = [
        f"### {claim['file']}",
        "",
        f"**Verdict:** {claim['verdict']}.  ",
        f"**Figures:** {_figure_links(claim['figures'], doc) or 'none'}",
        "",
    ]
    lines += [
        f"- `{name}`: {statistic}" + (f" ({source})" if source else "")
        for name, (statistic, source) in statistics.items()
    ]
    lines += ["", "| " + " | ".join(CHECK_COLUMNS) + " |", "|" + "---|" * len(CHECK_COLUMNS)]
    for t in tests:
        outcome = f"**{t.outcome}**" if t.outcome in ("failed", "error", "xpass") else t.outcome
        for c in t.checks or [None]:
            if c is None:
                row = [t.case] + [""] * 8 + [outcome, t.reason]
            else:
                # a failed check's message repeats the row; any other reason (xfail, error, ...) is news
                own = t.outcome != "failed" or c.holds
                reason = t.reason if own and t.outcome != "passed" else ""
                row = [
                    f"`{c.tolerance}`",
                    c.where,
                    describe_rule(c.rule, c.scale),
                    per_seed(c),
                    aggregate_text(c),
                    rests_on(c),
                    p_text(c),
                    needs(c),
                    c.verdict,
                    outcome,
                    " ".join(x for x in (c.note, reason) if x),
                ]
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    return lines + [""] + discrimination_lines([c for t in tests for c in t.checks])


def discrimination_lines(records: Sequence[Verdict]) -> list[str]:
    """What the discrimination table (claims/discrimination.json) says of each check: the physical
    control it fails on nearest its threshold, or that it is a premise (no physical control fails it);
    and whether its values agree with its reference distribution (ncsim.reference)."""
    known = [c for c in records if c.evidence is not None]
    if not known:
        return []
    lines = ["**Discrimination and reference agreement** (calibration seeds; docs/discrimination.md):", ""]
    for c in known:
        agreement = "" if c.reference is None else f"; reference: {reference.describe(c.reference)}"
        lines.append(f"- `{c.tolerance}` [{c.where}]: {c.evidence}{agreement}")
    return lines + [""]


def per_seed(record: Verdict) -> str:
    """Each seed's value, compact: "s0 2.4e-3, s1 2.2e-3, s2 nan" (the run label without its
    configuration, e.g. "s3-d3" under a varied data seed)."""
    values = record.values
    runs, seeds = record.runs or [None] * len(values), record.seeds or [None] * len(values)

    def label(run, seed) -> str:
        if run and record.config:
            return figures.short_label(run, record.config)
        return "" if seed is None else f"s{seed}"

    return ", ".join(f"{label(r, s)} {number(v)}".strip() for r, s, v in zip(runs, seeds, values))


def aggregate_text(record: Verdict) -> str:
    """The aggregate the rule rests on, named ("2.3e-3 (geometric mean)"); one value is itself."""
    if len(record.values) <= 1 or record.measured is None:
        return number(record.measured)
    log = record.rule == "equivalence" or record.scale == "log"
    what = "median" if record.rule == "every" else "geometric mean" if log else "mean"
    return f"{number(record.measured)} ({what})"


def rests_on(record: Verdict) -> str:
    """The bound or interval the rule rests on at its level ("98.75% bound 2.5e-3", "97.5% interval 0.8
    to 1.3"), with the seeds and look of a sequential decision ("n = 10, look 2 of 4")."""
    alpha = (record.sequential or {}).get("alpha", ALPHA)
    d = record.sequential
    look = f"; n = {record.n}, look {d['look']} of {d['looks']}" if d else ""
    if record.interval:
        lo, hi = record.interval
        return f"{percent(1 - 2 * alpha)} interval {number(lo)} to {number(hi)}{look}"
    return "" if record.bound is None else f"{percent(1 - alpha)} bound {number(record.bound)}{look}"


def p_text(record: Verdict) -> str:
    """The p-value, and for an equivalence that of "the ratio differs from 1"."""
    p = "" if record.p_value is None else number(record.p_value)
    if record.p_differs is not None:
        p += f"; differs from 1: p {number(record.p_differs)}"
    return p


def needs(record: Verdict) -> str:
    """The threshold: "<= 0.05", "within ×3 of 1"."""
    if record.op == "within":
        return f"within ×{number(record.threshold)} of 1"
    return f"{record.op} {number(record.threshold)}"


def _figure_links(names: Sequence[str], doc: Mapping) -> str:
    return ", ".join(f"[{n}]({n})" for n in names if n in doc["figures"])


def number(value) -> str:
    """At most 3 significant digits, compact ("0.052", "2.4e-3", "1.2e4"); None is NaN (JSON has none),
    a string (verdicts.json's "inf", "nan") stays as it is."""
    if value is None:
        return "nan"
    if isinstance(value, str):
        return value
    if value == 0 or not math.isfinite(value) or 1e-2 <= abs(value) < 1e3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
