"""The verdict figure: a forest plot of a claims session's check records (ncsim.verdict.Verdict), each
statistic against its threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerLine2DCompound

from ncsim.figures.base import WIDTH, finish, log_scale, message, plain, styled, wrap
from ncsim.verdict import Verdict

VERDICT_COLOURS = {
    "reproduces": "#1a9641",
    "within the indifference zone": "#7b3294",
    "undecided": "#fdae61",
    "premise not met": "#878787",  # no evidence either way: the runs do not satisfy the statement's premise
    "inconclusive": "#e08800",  # one look at fixed seeds (ncsim.checks.apply_rule), not a session's verdict
    "does not reproduce": "#d7191c",
}
VERDICT_PANELS = {  # panel -> title, x label, where the rule's reference lies
    "ratio": (
        "One-sided thresholds, log scale: left of 1 holds",
        "value / threshold (≤, <) or threshold / value (≥, >)",
        1.0,
    ),
    "equivalence": (
        "Equivalence to the reference configuration, log scale: holds when the 90% interval lies within the margins",
        "ratio to the reference configuration, same seed",
        1.0,
    ),
    "difference": (
        "One-sided thresholds on linear statistics, symlog scale: left of 0 holds",
        "value − threshold (≤, <) or threshold − value (≥, >)",
        0.0,
    ),
}
RULE_LABELS = {"every": "every seed", "mean": "one-sided bound, {mean}", "equivalence": "TOST interval"}
ROW_HEIGHT = 0.4  # inches per check: two lines of its 8-point labels
VERDICT_LABEL_SIZE = 8  # points: 12 px at DPI, legible where the figure is shown 800 px wide


def as_float(value) -> float:
    """A number of a check record as a float, None (NaN, which JSON lacks) included."""
    return float("nan") if value is None else float(value)


def verdict_panel(record: Verdict) -> str:
    """Where the verdict figure draws a check: "equivalence", "ratio" (a log-scale statistic against a
    positive threshold) or "difference" (a linear one, or a threshold of 0, where no ratio exists)."""
    if record.rule == "equivalence":
        return "equivalence"
    return "ratio" if record.scale == "log" and record.threshold > 0 else "difference"


def relative(record: Verdict, values: Sequence) -> np.ndarray:
    """Values of a check's statistic placed against its threshold so that left always means "holds":
    value / threshold for "<=" and "<", threshold / value for ">=" and ">" (a value on the wrong side of
    0 goes to 0 or inf accordingly), value − threshold or threshold − value in the "difference" panel;
    an equivalence ratio stays as it is."""
    x = np.array([as_float(v) for v in values], dtype=np.float64)
    threshold, upper, panel = record.threshold, record.op in ("<=", "<"), verdict_panel(record)
    with np.errstate(divide="ignore", invalid="ignore"):
        if panel == "equivalence":
            return x
        if panel == "difference":
            return x - threshold if upper else threshold - x
        ratio = x / threshold if upper else threshold / x
        return np.where(ratio <= 0, 0.0 if upper else np.inf, ratio)


def _limits(points: np.ndarray, panel: str) -> tuple[float, float, float | None]:
    """The range of the finite points of a panel and its reference, padded (what lies beyond is drawn at
    its edge), and the linear range of its symlog axis (None: a log axis)."""
    ref = VERDICT_PANELS[panel][2]
    if panel == "difference":
        finite = np.append(points[np.isfinite(points)], ref)
        nonzero = np.abs(finite[finite != 0])
        linthresh = float(np.clip(10 ** np.floor(np.log10(nonzero.min())), 1e-4, 0.1)) if len(nonzero) else 1e-3
        lo, hi = -max(-finite.min() * 1.5, linthresh), max(finite.max() * 1.5, linthresh)
        return lo, hi, linthresh
    finite = np.append(points[np.isfinite(points) & (points > 0)], ref)
    pad = max((finite.max() / finite.min()) ** 0.06, 1.4)
    return finite.min() / pad, finite.max() * pad, None


def _symlog_ticks(lo: float, hi: float, linthresh: float, per_side: int = 2) -> list[float]:
    """0 and up to `per_side` powers of ten on each side of a symlog axis over [lo, hi] (the largest
    kept; none within a decade of the linear range around 0): a label at every decade would run into
    the next at the report's width."""
    top = np.floor(np.log10(max(-lo, hi)))
    decades = np.arange(np.ceil(np.log10(linthresh)) + 1, top + 1)
    step = max(1, int(np.ceil(len(decades) / per_side)))
    powers = 10.0 ** decades[::-1][::step]
    return sorted({0.0, *powers[powers <= hi], *(-powers[-powers >= lo])})


def _place(x: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions on a panel and the marker of each: "o" inside, "<" / ">" clipped at the left / right
    edge (0 and inf included), "x" for NaN (drawn at the right, the failing side)."""
    x = np.asarray(x, dtype=np.float64)
    marker = np.where(np.isnan(x), "x", np.where(x < lo, "<", np.where(x > hi, ">", "o")))
    return np.where(np.isnan(x) | (x > hi), hi, np.where(x < lo, lo, x)), marker


def _row_label(record: Verdict) -> str:
    claim = (record.claim or "").removeprefix("test_")
    rule = RULE_LABELS[record.rule].format(mean="geometric mean" if record.scale == "log" else "mean")
    return f"{record.tolerance} [{record.config}]\n{claim} · {rule}"


def _verdict_label(record: Verdict, outcome: str | None) -> str:
    extra = {"xfail": "\n(strict xfail, expected)", "xpass": "\n(xpass: fails the suite)"}
    return record.verdict + extra.get(outcome, "")


def _draw_check(ax, y: float, record: Verdict, lo: float, hi: float) -> None:
    """One row: the seeds as dots, the aggregate as a diamond with its one-sided bound (a bar ending in a
    cap) or its equivalence interval (a bar with two caps), in the colour of the verdict."""
    colour = VERDICT_COLOURS.get(record.verdict, "0.4")
    values = record.values
    pos, markers = _place(relative(record, values), lo, hi)
    offsets = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(len(values))
    for x, dy, m in zip(pos, offsets, markers):
        ax.plot(
            x,
            y + dy,
            m,
            ms=3.5 if m == "o" else 5,
            color=colour,
            alpha=0.6,
            mec="none" if m == "o" else colour,
            clip_on=False,
            zorder=3,
        )
    ends = record.interval or ([record.measured, record.bound] if record.bound is not None else [])
    if record.measured is not None and ends:
        (a, b), _ = _place(relative(record, ends), lo, hi)
        ax.plot([a, b], [y, y], color=colour, lw=2, solid_capstyle="butt", zorder=4)
        caps = [a, b] if record.interval else [b]
        ax.plot(caps, [y] * len(caps), "|", ms=9, mew=2, color=colour, zorder=4)
    if record.measured is not None:
        (x,), (m,) = _place(relative(record, [record.measured]), lo, hi)
        ax.plot(x, y, "D" if m == "o" else m, ms=6, color=colour, mec="k", mew=0.6, clip_on=False, zorder=5)
    for margin in _margins(record):
        ax.plot([margin, margin], [y - 0.45, y + 0.45], ls="--", lw=1, color="0.3", zorder=2)


def _margins(record: Verdict) -> list[float]:
    """The equivalence margins of a check, 1/value and value; none for a one-sided one."""
    margin = record.threshold
    return [1 / margin, margin] if verdict_panel(record) == "equivalence" else []


class _CapAtEnd(HandlerLine2DCompound):
    """A legend entry of a one-sided bound: the bar with its cap at the right end only."""

    def get_xdata(self, legend, xdescent, ydescent, width, height, fontsize):
        xdata, _ = super().get_xdata(legend, xdescent, ydescent, width, height, fontsize)
        return xdata, xdata[-1:]


def _verdict_legend(ax) -> dict:
    """Legend entries (empty artists on `ax`) for the marks of the verdict figure, and the handler map
    that draws them."""
    for verdict, colour in VERDICT_COLOURS.items():
        ax.plot([], [], "s", ms=7, color=colour, label=verdict)
    ax.plot([], [], "o", ms=3.5, color="0.4", alpha=0.6, mec="none", label="one seed")
    ax.plot([], [], "D", ms=6, color="0.6", mec="k", mew=0.6, label="aggregate (geometric mean, mean or median)")
    (bound,) = ax.plot([], [], "-|", lw=2, ms=9, mew=2, color="0.4", label="bar to the one-sided bound (rule mean)")
    ax.errorbar(
        [np.nan],
        [np.nan],
        xerr=[1],
        fmt="none",
        lw=2,
        capsize=4.5,
        capthick=2,
        color="0.4",
        label="90% interval (equivalence)",
    )
    ax.plot([], [], "k-", lw=1.2, label="threshold (equivalence: ratio 1)")
    ax.plot([], [], "--", lw=1, color="0.3", label="equivalence margin")
    ax.plot([], [], ">", ms=5, color="0.4", label="beyond the axis, e.g. 0 or inf: at its edge")
    ax.plot([], [], "x", ms=5, color="0.4", label="NaN (not measured)")
    return {bound: _CapAtEnd()}


@styled
def verdicts(records: Sequence[Verdict], outcomes: Sequence[str | None] = ()) -> Figure:
    """The verdicts of a claims session over seeds, a forest plot of its check records
    (ncsim.verdict.Verdict; `outcomes`, if given, the pytest outcome of each record's test, in the same
    order): one row per check and configuration of the CNN claims, its seeds as dots, the aggregate the
    rule rests on as a diamond with its one-sided bound or equivalence interval (at the decision's level) as a bar,
    coloured by verdict and named at the right. Each statistic is drawn against its threshold
    (`relative`) so that left always means "holds": one-sided thresholds of log-scale statistics as
    ratios on a log axis (holds where the bound, or for rule "every" each seed, lies left of 1),
    equivalence ratios (TOST: holds where the interval lies within the dashed margins), linear
    statistics and thresholds of 0 as signed differences on a symlog axis (left of 0 holds). The
    numerical UFM checks (claims/test_ufm_*.py: theory, one value per test, no seeds) are left out and
    counted in the note; the report's table lists them."""
    title = "Verdicts over seeds"
    outcome = dict(zip(map(id, records), outcomes))
    cnn = [r for r in records if not (r.claim or "").startswith("test_ufm_")]
    left_out = f"numerical UFM checks not drawn: {len(records) - len(cnn)} (see the table)"
    if not cnn:
        return message(title, ["No check of a CNN claim was decided in this session.", left_out])
    panels = {p: [r for r in cnn if verdict_panel(r) == p] for p in VERDICT_PANELS}
    panels = {p: rows for p, rows in panels.items() if rows}
    heights = [len(rows) * ROW_HEIGHT + 0.9 for rows in panels.values()]
    fig = Figure(figsize=(WIDTH, sum(heights) + 2.0), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (panel, rows) in zip(axes, panels.items()):
        name, xlabel, ref = VERDICT_PANELS[panel]
        points = np.concatenate(
            [relative(r, [*r.values, r.measured, r.bound, *(r.interval or ()), *_margins(r)]) for r in rows]
        )
        lo, hi, linthresh = _limits(points, panel)
        if linthresh is None:
            log_scale(ax, "x")
        else:
            ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
            ax.set_xticks(_symlog_ticks(lo, hi, linthresh))
            ax.xaxis.set_major_formatter(plain())
        ax.tick_params(axis="x", top=True, labeltop=True)  # a tall panel is read from the top too
        ax.axvline(ref, color="k", lw=1.2, zorder=1)
        for y, record in enumerate(rows):
            _draw_check(ax, y, record, lo, hi)
            if y and record.claim != rows[y - 1].claim:
                ax.axhline(y - 0.5, color="0.6", lw=0.6)
        edges = ax.xaxis.get_transform().transform([lo, hi])  # a little room for the marks at the edges
        ax.set_xlim(ax.xaxis.get_transform().inverted().transform(edges + np.array([-1, 1]) * 0.02 * np.ptp(edges)))
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_yticks(range(len(rows)), [_row_label(r) for r in rows], fontsize=VERDICT_LABEL_SIZE)
        ax.grid(False, axis="y")
        right = ax.secondary_yaxis("right")
        right.set_yticks(
            range(len(rows)), [_verdict_label(r, outcome.get(id(r))) for r in rows], fontsize=VERDICT_LABEL_SIZE
        )
        for label, record in zip(right.get_yticklabels(), rows):
            label.set_color(VERDICT_COLOURS.get(record.verdict, "0.4"))
        ax.set_title(wrap(name, 65), loc="left")
        ax.set_xlabel(xlabel)
    handler_map = _verdict_legend(axes[0])
    seeds = sorted({s for r in cnn for s in r.seeds or () if s is not None})
    note = (
        f"{len(cnn)} checks of the CNN claims (check and configuration), each decided over seeds "
        f"{', '.join(map(str, seeds))}; {left_out}"
    )
    return finish(fig, title, note, (), axes[:1], handler_map)
