"""What every figure shares: its style and size, saving, a band over seeds, the terminal-phase marks,
axis scales, the title with its note, and the page drawn where there is nothing to plot."""

from __future__ import annotations

import functools
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from functools import reduce
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ncsim.suite import RunId
from ncsim.trajectory import Trajectory

DPI = 110
WIDTH = 7.3  # inches: 800 px at DPI
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "figure.titlesize": 10.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.4,
}
TRAIN, TEST = "C0", "C1"
MEANS, CLASSIFIER = "C0", "C3"
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "lbfgs": "LBFGS"}

# (epochs, values) of one run; `band` averages them over runs.
Series = Callable[[object], tuple[np.ndarray, np.ndarray]]


# ---- shared helpers ------------------------------------------------------------------------------


def styled(draw):
    """Create a figure's artists under the report's style (fonts, grid) without touching global rcParams."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def column(name: str) -> Series:
    """A trajectory column over the evaluated epochs."""
    return lambda run: (run.epochs, run[name])


def band(ax, items: Sequence, series: Series, *, label: str, color: str, **line) -> bool:
    """Plot the aggregate over `items` of `series(item)` with a shaded min-max band, on the x values all
    items share: the geometric mean when `ax` already has a log y axis, the mean otherwise (set the
    scale first). Items without the series (KeyError) are left out; False when none has it."""
    curves = []
    for item in items:
        try:
            x, y = series(item)
        except KeyError:
            continue
        curves.append((np.asarray(x), np.asarray(y, dtype=np.float64)))
    if not curves:
        return False
    xs = reduce(np.intersect1d, [x for x, _ in curves])
    ys = np.array([y[np.isin(x, xs)] for x, y in curves])
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN epochs stay NaN: a gap in the curve
        centre = np.exp(np.nanmean(np.log(ys), 0)) if ax.get_yscale() == "log" else np.nanmean(ys, 0)
        lo, hi = np.nanmin(ys, 0), np.nanmax(ys, 0)
    ax.plot(xs, centre, color=color, label=label, **line)
    if len(curves) > 1:
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
    return True


def short_label(label: str, config: str | None) -> str:
    """A run label without its configuration: "standard-s3-d3" -> "s3-d3"."""
    return label.removeprefix(f"{config}-") if config else label


TPT_MARKS = (  # run attribute, line style, what the legend calls it
    ("tpt_epoch", "--", "stable TPT"),
    ("first_zero_error_epoch", ":", "first zero train error"),
)


def tpt_marks(ax, runs: Sequence[Trajectory], color: str = "0.25", name: str = "") -> None:
    """Each run's stable TPT (dashed) and first zero-error epoch (dotted) as thin vertical lines, with
    one legend entry per kind that gives every seed's epoch ("never" when it was not reached)."""
    prefix = f"{name} " if name else ""
    for attr, style, what in TPT_MARKS:
        epochs = [getattr(r, attr) for r in runs]
        for epoch in epochs:
            if epoch is not None:
                ax.axvline(epoch, ls=style, lw=0.8, color=color, alpha=0.8)
        each = ", ".join(
            f"{short_label(r.label, r.spec.name)} {'never' if e is None else e}" for r, e in zip(runs, epochs)
        )
        ax.plot([], [], ls=style, lw=0.8, color=color, label=f"{prefix}{what}: {each}")


def plain() -> FuncFormatter:
    """Tick labels as plain numbers: 0.001, not 10^-3."""
    return FuncFormatter(lambda v, _: f"{v:g}")


def log_scale(ax, axis: str = "y") -> None:
    """Log scale with plain-number tick labels ("0.05", not "5 x 10^-2"); minor ticks are labelled (at
    2 and 5 only) when the axis spans less than two decades, where there would be too few major ones."""
    getattr(ax, f"set_{axis}scale")("log")
    target = getattr(ax, f"{axis}axis")
    target.set_major_formatter(plain())

    def minor(v, _):
        lo, hi = getattr(ax, f"get_{axis}lim")()
        mantissa = round(v / 10 ** np.floor(np.log10(v)))
        return f"{v:g}" if hi / lo < 100 and mantissa in (2, 5) else ""

    target.set_minor_formatter(FuncFormatter(minor))


def zero_scale(ax, axis: str = "y") -> None:
    """Symlog scale for a fraction that is exactly 0 for long stretches (train error, NC4): linear below
    0.1 %, so that 0 is drawn instead of cut off as on a log axis, logarithmic above."""
    getattr(ax, f"set_{axis}scale")("symlog", linthresh=1e-3, linscale=0.5)
    getattr(ax, f"set_{axis}lim")(0, None)
    getattr(ax, f"{axis}axis").set_major_formatter(plain())


@contextmanager
def scaled(ax, scale: str):
    """Draw on `ax` in the block under `scale`: "log" (log_scale, set before drawing, so that `band`
    draws geometric means), "zero" (zero_scale, set after drawing, its limits starting at 0) or "linear"."""
    if scale == "log":
        log_scale(ax)
    yield ax
    if scale == "zero":
        zero_scale(ax)


def epoch_log_scale(ax) -> None:
    """Epochs on a log x axis that keeps epoch 0, the initialisation: symlog, linear from 0 to 1 and
    logarithmic from 1 on."""
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax.xaxis.set_major_formatter(plain())
    ax.set_xlabel("epoch (log scale from 1;\n0 = initialisation)")


def usable(runs: Sequence[Trajectory]) -> list[Trajectory]:
    """The runs that finished (status "ok"), the only ones drawn."""
    return [r for r in runs if r.status == "ok"]


def not_drawn(runs: Sequence[Trajectory], missing: Sequence[RunId] = ()) -> list[str]:
    """Why each run asked for is absent from a figure: missing from the store, or not finished."""
    out = [f"{run.label} (not in the run store)" for run in missing]
    for r in runs:
        if r.status != "ok":
            reason = r.meta.get("status_reason")
            out.append(f"{r.label} ({r.status}{': ' + reason if reason else ''})")
    return out


def no_data(ax, text: str = "no data recorded") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def seed_list(seeds) -> str:
    """ "seeds 0, 1, 2" or "seed 0"."""
    seeds = sorted(set(seeds))
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def seeds_note(seeds) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 1:
        return f"{seed_list(seeds)}: geometric mean on log axes, else mean, with min-max band"
    return seed_list(seeds) if seeds else ""


def finish(
    fig: Figure, title: str, note: str, absent: Sequence[str] = (), legend_axes=(), handler_map: Mapping | None = None
) -> Figure:
    """Suptitle (title, a note such as the seeds drawn, and any runs not drawn) and one legend for the
    whole figure, gathered from `legend_axes` below the panels (`handler_map`: matplotlib's, for
    legend entries drawn in their own way)."""
    lines = [title, note] + (["not drawn: " + "; ".join(absent)] if absent else [])
    fig.suptitle("\n".join(wrap(line) for line in lines if line))
    handles = {}
    for ax in legend_axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        ncols = 3 if max(map(len, handles)) <= 36 else 2
        labels = [wrap(label, 36 if ncols == 3 else 58) for label in handles]  # two columns fit the width
        fig.legend(
            list(handles.values()),
            labels,
            loc="outside lower center",
            ncols=min(ncols, len(handles)),
            frameon=False,
            handler_map=handler_map,
        )
    return fig


def wrap(text: str, width: int = 95) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


@styled
def message(title: str, lines: Sequence[str]) -> Figure:
    """A figure that says why there is nothing to draw (missing or failed runs, an error)."""
    fig = Figure(figsize=(WIDTH, 2.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    body = "\n".join(wrap(line, 95) for line in lines)
    ax.text(0.5, 0.5, body, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    fig.suptitle(f"{title}: nothing to draw (runs missing or failed)")
    return fig


def _all_absent(title: str, runs: Sequence[Trajectory], missing: Sequence[RunId]) -> Figure:
    absent = not_drawn(runs, missing) or ["no runs were asked for"]
    return message(title, ["No finished run to draw:"] + absent)
