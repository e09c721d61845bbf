"""The weight-decay dose-response: end-of-training collapse against the weight decay of suite.toml's
[figures.weight-decay] configurations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ncsim import suite
from ncsim.figures.base import MEANS, WIDTH, finish, log_scale, message, no_data, plain, seed_list, styled
from ncsim.figures.comparisons import _absent, _groups
from ncsim.figures.probes import _seed_points
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory

# Below it the weight-decay axis is linear, so that lambda = 0 (no-wd) is drawn, apart from the smallest
# positive dose (5e-4), instead of lying at minus infinity on a log axis.
DOSE_LINTHRESH = 1e-4
DOSE_PANELS = (  # title, column at the last epoch, y label, log y axis
    ("NC1", "train.nc1", "Tr(Σ_W Σ_B⁺)/C", True),
    ("NC3", "train.nc3", "‖W/‖W‖ − M/‖M‖‖²", True),
    ("NC2: ETF distance of means", "train.nc2_etf_distance", "Gram distance to ETF", True),
    ("Test error", "test_error", "misclassified fraction", False),
)


def end_values(runs: Sequence[Trajectory], column: str) -> list[float]:
    """`column` at each run's last evaluated epoch; NaN for a run without it (not drawn)."""
    return [run.final(column) if column in run.columns() else np.nan for run in runs]


def dose_scale(ax, doses: Sequence[float], names: Sequence[str]) -> None:
    """The weight decay lambda on a symlog x axis (linear below DOSE_LINTHRESH, so 0 is drawn), one tick
    per dose naming its configuration."""
    ax.set_xscale("symlog", linthresh=DOSE_LINTHRESH, linscale=0.6)
    # Doses a factor 2 apart are close on the axis: the labels slant so that they do not overlap.
    ax.set_xticks(doses, [f"{d:g} {name}" for d, name in zip(doses, names)], rotation=30, ha="right")
    ax.xaxis.set_minor_locator(NullLocator())  # the y axis keeps its minor ticks: log_scale labels them
    ax.set_xlim(-DOSE_LINTHRESH / 2, max(doses) * 1.5)


def label_within_a_decade(ax) -> None:
    """Label every minor tick of a log y axis that spans less than a decade, where log_scale's labels (at
    the powers of 10, and at 2 and 5) may leave it without a number."""
    lo, hi = ax.get_ylim()
    if hi / lo < 10:
        ax.yaxis.set_minor_formatter(plain())


@styled
def weight_decay(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """The weight-decay dose-response (Pan & Cao, "Towards Understanding Neural Collapse: The Effects of
    Batch Normalization and Weight Decay", arXiv 2309.04644, 2023: with batch norm, a stronger presence
    of NC under larger weight decay; claims/test_weight_decay_dose.py): at the end of training, NC1, NC3
    and the ETF distance of the class means (train features; log axes) and the test error against the
    weight decay lambda of [figures.weight-decay]'s configurations (the default 5e-3 divided by 1, 2, 5
    and 10, and 0); one point per seed, the geometric mean over seeds (the mean for the test error)
    joined across lambda."""
    title = "Weight-decay dose-response"
    names = suite.figure_configs("weight-decay")
    groups = _groups({name: runs.get(name, []) for name in names})
    if not groups:
        return message(title, ["No finished run to draw:"] + _absent(runs, missing, names))
    order = sorted(groups, key=lambda name: groups[name][0].spec.weight_decay)
    doses = [groups[name][0].spec.weight_decay for name in order]
    fig = Figure(figsize=(WIDTH, 5.8), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    for ax, (panel, column, ylabel, log) in zip(axes, DOSE_PANELS):
        if log:
            log_scale(ax)
        values = [end_values(groups[name], column) for name in order]
        if any(np.isfinite(v).any() for v in values):
            what = "geometric mean over seeds" if log else "mean over seeds"
            _seed_points(ax, doses, values, color=MEANS, label=what)
            if log:
                label_within_a_decade(ax)
        else:
            no_data(ax)
        ax.set(title=panel, ylabel=ylabel)
    axes[3].set_ylim(0, None)
    axes[0].plot([], [], "o", ms=4, color=MEANS, alpha=0.45, mec="none", label="one seed")
    for ax in axes:
        dose_scale(ax, doses, order)
    for ax in axes[2:]:
        ax.set_xlabel(f"weight decay λ\n(symlog: linear below {DOSE_LINTHRESH:g}, so 0 is drawn)")
    note = (
        f"{seed_list(r.spec.seed for g in groups.values() for r in g)}: one point per seed, the line through "
        "their geometric means (the mean for the test error); NC metrics on the train set"
    )
    return finish(fig, title, note, _absent(runs, missing, names), axes)
