"""The report's figures, drawn from run trajectories and check records (matplotlib, Agg, PNG about 800
px wide).

Every function takes what it draws and returns a matplotlib Figure (the object-oriented API, no pyplot
state: nothing to close, headless everywhere); `save` writes it. Runs come as trajectories over seeds,
one list per configuration name; nothing here reads the store or trains (ncsim.report looks the runs
up). `missing` names runs (ncsim.suite.RunId) that were asked for but are not in the store. Colours and
the configurations each comparison draws come from the suite table (ncsim/suite.toml). The verdict
figure (`verdicts`) draws the session's check records (ncsim.checks.decide), not runs.

Conventions shared by all figures: a curve over seeds is an aggregate with a shaded min-max band
(`band`): the geometric mean on a log axis, the mean otherwise. Each seed's terminal phase of training
is marked (`tpt_marks`) by two thin vertical lines: dashed at its stable TPT (`tpt_epoch`: from there on
the train error stays 0), dotted at its first zero-error epoch (the error may come back after it). A
quantity that is exactly 0 for long stretches (train error, NC4) is drawn on a symlog axis that shows 0
(`zero_scale`). A run that is missing or did not finish (status "diverged" or "degenerate") is not drawn
and the title says so; with nothing left to draw the figure is a page that names the runs and why
(`message`), never an empty plot.
"""

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
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerLine2DCompound
from matplotlib.ticker import FuncFormatter

from ncsim import data, metrics, probes, suite
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory

DPI = 110
WIDTH = 7.3                      # inches: 800 px at DPI
STYLE = {"font.size": 8.5, "axes.titlesize": 9, "axes.labelsize": 8.5, "xtick.labelsize": 7.5,
         "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "figure.titlesize": 10.5, "axes.grid": True,
         "grid.alpha": 0.3, "lines.linewidth": 1.4}
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
        each = ", ".join(f"{short_label(r.label, r.spec.name)} {'never' if e is None else e}"
                         for r, e in zip(runs, epochs))
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
    """"seeds 0, 1, 2" or "seed 0"."""
    seeds = sorted(set(seeds))
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def seeds_note(seeds) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 1:
        return f"{seed_list(seeds)}: geometric mean on log axes, else mean, with min-max band"
    return seed_list(seeds) if seeds else ""


def finish(fig: Figure, title: str, note: str, absent: Sequence[str] = (), legend_axes=(),
           handler_map: Mapping | None = None) -> Figure:
    """Suptitle (title, a note such as the seeds drawn, and any runs not drawn) and one legend for the
    whole figure, gathered from `legend_axes` below the panels (`handler_map`: matplotlib's, for
    legend entries drawn in their own way)."""
    lines = [title, note] + (["not drawn: " + "; ".join(absent)] if absent else [])
    fig.suptitle("\n".join(_wrap(line) for line in lines if line))
    handles = {}
    for ax in legend_axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        ncols = 3 if max(map(len, handles)) <= 36 else 2
        labels = [_wrap(label, 36 if ncols == 3 else 58) for label in handles]  # two columns fit the width
        fig.legend(list(handles.values()), labels, loc="outside lower center",
                   ncols=min(ncols, len(handles)), frameon=False, handler_map=handler_map)
    return fig


def _wrap(text: str, width: int = 95) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


@styled
def message(title: str, lines: Sequence[str]) -> Figure:
    """A figure that says why there is nothing to draw (missing or failed runs, an error)."""
    fig = Figure(figsize=(WIDTH, 2.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    body = "\n".join(_wrap(line, 95) for line in lines)
    ax.text(0.5, 0.5, body, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    fig.suptitle(f"{title}: nothing to draw (runs missing or failed)")
    return fig


def _all_absent(title: str, runs: Sequence[Trajectory], missing: Sequence[RunId]) -> Figure:
    absent = not_drawn(runs, missing) or ["no runs were asked for"]
    return message(title, ["No finished run to draw:"] + absent)


# ---- the figures -------------------------------------------------------------------------------

@styled
def training(runs: Sequence[Trajectory], missing: Sequence[RunId] = ()) -> Figure:
    """Training dynamics of one configuration: train and test loss (log scale) and error (symlog, 0
    drawn) versus epoch, with each seed's stable TPT and first zero-error epoch marked; after the
    training-metrics figure of the seed lab README (experiment 1). It shows the terminal phase of Papyan,
    Han & Donoho, PNAS 2020, Sec. 2-3: train error reaches zero, test error holds after it."""
    title = "Training dynamics"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    fig = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    loss_ax, err_ax = fig.subplots(1, 2)
    for ax, what, scale in ((loss_ax, "loss", "log"), (err_ax, "error", "zero")):
        with scaled(ax, scale):
            band(ax, ok, column(f"train_{what}"), label="train", color=TRAIN)
            band(ax, ok, column(f"test_{what}"), label="test", color=TEST)
            tpt_marks(ax, ok)
        ax.set_xlabel("epoch")
    loss_ax.set(title="Loss (log scale)", ylabel=f"{ok[0].spec.loss.upper()} loss")
    err_ax.set(title="Error (symlog scale, 0 drawn)", ylabel="misclassified fraction")
    return finish(fig, f"{title}: {ok[0].spec.name}", seeds_note(r.spec.seed for r in ok), not_drawn(runs, missing),
                  [loss_ax])


NC_PANELS = (  # title, y label, scale ("log" or "zero": zero_scale), [(column, label, colour)]
    ("NC1: within-class variability", "Tr(Σ_W Σ_B⁺)/C", "log",
     [("train.nc1", "train features", MEANS), ("test.nc1", "test features", "0.55")]),
    ("NC2: equinorm", "std/mean of norms", "log",
     [("train.nc2_equinorm", "class means", MEANS), ("train.w_equinorm", "classifier rows W", CLASSIFIER)]),
    ("NC2: equiangularity", "std of pairwise cosines", "log",
     [("train.nc2_equiangularity", "class means", MEANS), ("train.w_equiangularity", "classifier rows W", CLASSIFIER)]),
    ("NC2: max-angle", "mean |cos + 1/(C-1)|", "log",
     [("train.nc2_maxangle", "class means", MEANS), ("train.w_maxangle", "classifier rows W", CLASSIFIER)]),
    ("NC3: self-duality", "‖W/‖W‖ − M/‖M‖‖²", "log", [("train.nc3", "W vs centered means", MEANS)]),
    ("NC4: nearest class centre", "NCC ≠ network (fraction)", "zero", [("train.nc4", "train", MEANS)]),
)


@styled
def nc_metrics(runs: Sequence[Trajectory], missing: Sequence[RunId] = ()) -> Figure:
    """NC1-NC4 of the penultimate train features over training, after Papyan, Han & Donoho, PNAS 2020,
    Figs. 2-7: NC1 = Tr(Σ_W Σ_B⁺)/C (Fig. 6, log scale; test-set NC1 dashed as the secondary view),
    equinorm of the centered class means and of the classifier rows (Fig. 2), equiangularity (Fig. 3),
    max-angle (Fig. 4), self-duality NC3 (Fig. 5) and the nearest-class-centre mismatch NC4 (Fig. 7, on
    a symlog axis: it is 0 for long stretches); each seed's stable TPT and first zero-error epoch marked."""
    title = "Neural Collapse metrics NC1-NC4"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    fig = Figure(figsize=(WIDTH, 5.6), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True).ravel()
    for ax, (panel, ylabel, scale, curves) in zip(axes, NC_PANELS):
        with scaled(ax, scale):
            drawn = [band(ax, ok, column(col), label=label, color=color, ls="--" if col.startswith("test") else "-")
                     for col, label, color in curves]
            if not any(drawn):
                no_data(ax)
            tpt_marks(ax, ok)
        ax.set(title=panel, ylabel=ylabel)
    for ax in axes[3:]:
        ax.set_xlabel("epoch")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles[:2], labels[:2], loc="upper right")  # train, test: the TPT marks are in the figure legend
    return finish(fig, f"{title}: {ok[0].spec.name} (train set)", seeds_note(r.spec.seed for r in ok),
                  not_drawn(runs, missing), axes[1:2])


LAYER_METRICS = (  # name, y label, transform of the recorded values, y scale (`scaled`)
    ("NC1", "Tr(Σ_W Σ_B⁺)/C", lambda values: values, "log"),
    ("NC2: ETF distance", "Gram distance of means to ETF", lambda values: values, "linear"),
    ("NCC accuracy", "nearest-class-centre accuracy", lambda values: 1 - values, "linear"),
)
LAYER_COLUMNS = ("nc1", "nc2_etf_distance", "ncc_error")


def layer_series(tap: str, metric: str) -> Series:
    """A layer metric at the layer-evaluated epochs; the penultimate layer's is its train.<metric> column
    at those epochs."""
    def series(run):
        if tap != "penultimate":
            return run.layer(tap, metric)
        col = run[f"train.{metric}"]
        layer_cols = [c for c in run.columns() if c.startswith("layer.")]
        at = ~np.isnan(run[layer_cols[0]]) if layer_cols else np.ones(len(col), bool)
        return run.epochs[at], col[at]
    return series


def end_by_depth(metric: str) -> Series:
    """The metric's end value against depth (0 = first layer)."""
    def series(run):
        taps = run.depth_layers()
        return np.arange(len(taps)), np.array([layer_series(t, metric)(run)[1][-1] for t in taps])
    return series


@styled
def layerwise(runs: Sequence[Trajectory], missing: Sequence[RunId] = ()) -> Figure:
    """Layer-wise collapse, after the seed lab README's experiment 2 figure and Rangamani et al., ICML
    2023, Figs. 1-3: NC1 (log scale), the ETF Gram distance of the centered class means (Zhu et al. 2021)
    and the nearest-class-centre accuracy with train means, at every layer over training (top row,
    epochs on a log axis that keeps the initialisation, epoch 0: `epoch_log_scale`) and at the end of
    training against depth (bottom row). Conv layers are measured on their flattened outputs; train set,
    eval mode."""
    title = "Layer-wise collapse"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    taps = ok[0].depth_layers()
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(taps)))
    fig = Figure(figsize=(WIDTH, 6.0), layout="constrained")
    axes = fig.subplots(2, 3)
    names = [t.removesuffix(".flat") for t in taps]
    for j, ((name, ylabel, transform, scale), metric) in enumerate(zip(LAYER_METRICS, LAYER_COLUMNS)):
        top, bottom = axes[0, j], axes[1, j]
        with scaled(top, scale), scaled(bottom, scale):
            drawn = [band(top, ok, _mapped(layer_series(tap, metric), transform), label=label, color=color,
                          marker="o", ms=2.5) for tap, label, color in zip(taps, names, colors)]
            if not any(drawn):
                no_data(top)
            if not band(bottom, ok, _mapped(end_by_depth(metric), transform), label="end of training",
                        color="k", marker="o", ms=3):
                no_data(bottom)
        epoch_log_scale(top)
        top.set(title=f"{name} over training", ylabel=ylabel)
        bottom.set_xticks(range(len(taps)), names, rotation=35, ha="right")
        bottom.set(title=f"{name} at the end", xlabel="layer (input → output)", ylabel=ylabel)
    note = seeds_note(r.spec.seed for r in ok) + "; conv layers on their flattened outputs"
    return finish(fig, f"{title}: {ok[0].spec.name} (train set)", note, not_drawn(runs, missing), [axes[0, 0]])


def _mapped(series: Series, transform) -> Series:
    """The series with `transform` applied to its values."""
    def mapped(run):
        x, y = series(run)
        return x, transform(y)
    return mapped


def end_geometry(run: Trajectory, cache_dir=None) -> dict[str, np.ndarray]:
    """Cosine Gram matrices at the end of training, from the final weights and one eval-mode forward
    pass over the train set (Trajectory.features): of the centered class means mu_c - mu_G (mu_G the
    sample mean), of the classifier rows w_c, of rows against means cos(w_c, mu_c' - mu_G), and the
    simplex ETF's (1 on the diagonal, -1/(C-1) off it)."""
    f = run.features("train", cache_dir)
    h, y, W = f["h"], f["y"], f["W"]
    C = len(W)
    centered = metrics.centered_means(h, y, C)
    m, w = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (centered, W))
    etf = np.full((C, C), -1 / (C - 1))
    np.fill_diagonal(etf, 1.0)
    return {"means": m @ m.T, "classifier": w @ w.T, "cross": w @ m.T, "etf": etf}


GEOMETRY_PANELS = (  # key of end_geometry, its name, its cosine, the end metric it pictures
    ("means", "class means", "cos(μ_c−μ_G, μ_c'−μ_G)", "nc2_etf_distance", "ETF distance"),
    ("classifier", "classifier rows", "cos(w_c, w_c')", "w_etf_distance", "ETF distance"),
    ("cross", "rows vs means (NC3)", "cos(w_c, μ_c'−μ_G)", "nc3", "NC3"),
)


@styled
def geometry(runs: Sequence[Trajectory], missing: Sequence[RunId] = (), cache_dir=None) -> Figure:
    """Geometry at the end of training (a picture of NC2 and NC3, cf. Papyan, Han & Donoho, PNAS 2020,
    Fig. 1 and Zhu et al., NeurIPS 2021, Fig. 1): how far the cosine Gram matrices of the centered class
    means, of the classifier rows W and of the rows against the means (self-duality) are from the ideal
    simplex ETF's, cosine minus the ETF value (1 on the diagonal, −1/(C−1) off it), on one symmetric
    diverging scale as tight as the largest deviation: white is the ETF, colour is departure from it. One
    run, the lowest finished seed; `cache_dir` is where the run store keeps the MNIST-1D arrays."""
    title = "Geometry at the end of training"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    run = min(ok, key=lambda r: r.spec.seed)
    g = end_geometry(run, cache_dir)
    C = len(g["etf"])
    deviation = {key: g[key] - g["etf"] for key, *_ in GEOMETRY_PANELS}
    largest = max(float(np.abs(d).max()) for d in deviation.values())
    norm = Normalize(vmin=-largest, vmax=largest) if largest > 0 else Normalize(-1e-12, 1e-12)
    fig = Figure(figsize=(WIDTH, 3.5), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (key, what, cosine, metric, name) in zip(axes, GEOMETRY_PANELS):
        image = ax.imshow(deviation[key], cmap="RdBu_r", norm=norm)
        ax.set_title(f"{what}\n{cosine} − ETF\nmax |deviation| {np.abs(deviation[key]).max():.2g}\n"
                     f"{name} {run.final(f'train.{metric}'):.3g}", fontsize=7.5)
        ax.set(xlabel="class c'", ylabel="class c", xticks=range(C), yticks=range(C))
        ax.tick_params(labelsize=6)
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.9, label=f"cosine − ETF value (ETF: 1 on\nthe diagonal, "
                                                   f"−1/(C−1) = −{1 / (C - 1):.3g} off it)")
    note = f"seed {run.spec.seed} shown (of {', '.join(str(r.spec.seed) for r in ok)})" if len(ok) > 1 else ""
    return finish(fig, f"{title}: {run.label} (train set), deviation from the simplex ETF", note,
                  not_drawn(runs, missing))


LOSS_NAMES = {"ce": "CE", "mse": "MSE", "focal": "focal loss"}
DESCRIBED = {  # field of _describe -> its text for a spec ("": left out, at the field's default where it says nothing)
    "optimizer": lambda s: OPTIMIZER_NAMES[s.optimizer],
    "lr": lambda s: f"lr {s.lr:g}",
    "weight_decay": lambda s: f"wd {s.weight_decay:g}",
    "loss": lambda s: LOSS_NAMES.get(s.loss, s.loss),
    "classifier": lambda s: f"{s.classifier} W",
    "label_smoothing": lambda s: f"label smoothing α {s.label_smoothing:g}" if s.label_smoothing else "",
    "focal_gamma": lambda s: f"γ {s.focal_gamma:g}" if s.loss == "focal" else "",
    "label_noise": lambda s: f"{s.label_noise:.0%} label noise" if s.label_noise else "clean labels",
    "train_classes": lambda s: f"classes 0-{s.train_classes - 1}" if s.train_classes else "all classes",
    "imbalance": lambda s: f"R = {s.imbalance:g}",
}


def _describe(name: str, runs: Sequence[Trajectory], fields: Sequence[str]) -> str:
    """"<config>: <its fields>", e.g. "standard: wd 0.005, CE, learned W" (DESCRIBED)."""
    spec = runs[0].spec
    return f"{name}: " + ", ".join(part for part in (DESCRIBED[f](spec) for f in fields) if part)


def _comparison(axes, groups: Mapping[str, Sequence[Trajectory]], panels, fields) -> None:
    """Each panel: one band per configuration, its seeds' TPT marks in its colour, under its `scale`
    (`scaled`)."""
    for ax, (panel, series, ylabel, scale) in zip(axes, panels):
        with scaled(ax, scale):
            drawn = False
            for name, group in groups.items():
                color = suite.colour(name)
                drawn |= band(ax, group, series, label=_describe(name, group, fields), color=color)
                tpt_marks(ax, group, color=color, name=name)
            if not drawn:
                no_data(ax)
        ax.set(title=panel, ylabel=ylabel)


def _groups(runs: Mapping[str, Sequence[Trajectory]]) -> dict[str, list[Trajectory]]:
    """The finished runs of each configuration that has any."""
    groups = {name: usable(group) for name, group in runs.items()}
    return {name: group for name, group in groups.items() if group}


def _absent(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId], names: Sequence[str]) -> list[str]:
    """not_drawn over several configurations, plus those with no run at all."""
    out = not_drawn([r for group in runs.values() for r in group], missing)
    named = {run.config for run in missing} | set(runs)
    return out + [f"{name} (no runs)" for name in names if name not in named]


@styled
def optimizers(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """Optimizer comparison, after the seed lab README's experiment 3 figures and Zhu et al., NeurIPS
    2021, Sec. 5.1 and Fig. 3: train loss, train error, test accuracy and the NC metrics NC1, NC3 and the
    ETF distance of the class means under SGD ("standard"), Adam, AdamW and LBFGS (15 epochs of 20 inner
    iterations per step), on shared axes; each optimizer's TPT marks in its colour."""
    title = "Optimizer comparison"
    names = suite.figure_configs("optimizers")
    groups = _groups({name: runs.get(name, []) for name in names})
    if not groups:
        return message(title, ["No finished run to draw:"] + _absent(runs, missing, names))
    fig = Figure(figsize=(WIDTH, 6.2), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True).ravel()
    panels = (
        ("Train loss", column("train_loss"), "loss", "log"),
        ("Train error", column("train_error"), "misclassified fraction", "zero"),
        ("Test accuracy", _mapped(column("test_error"), lambda e: 1 - e), "accuracy", "linear"),
        ("NC1", column("train.nc1"), "Tr(Σ_W Σ_B⁺)/C", "log"),
        ("NC3", column("train.nc3"), "‖W/‖W‖ − M/‖M‖‖²", "log"),
        ("NC2: ETF distance of means", column("train.nc2_etf_distance"), "Gram distance to ETF", "linear"),
    )
    _comparison(axes, groups, panels, ("optimizer", "lr"))
    for ax in axes[3:]:
        ax.set_xlabel("epoch")
    seeds = seeds_note(r.spec.seed for g in groups.values() for r in g)
    return finish(fig, f"{title} (NC metrics on the train set)", seeds, _absent(runs, missing, names), axes[:1])


CONTRAST_PANELS = {  # key of a [figures.X] table's `panels` -> title, series, y label, scale (`scaled`)
    "nc1": ("NC1", column("train.nc1"), "Tr(Σ_W Σ_B⁺)/C", "log"),
    "nc3": ("NC3", column("train.nc3"), "‖W/‖W‖ − M/‖M‖‖²", "log"),
    "ridge": ("W vs ridge", column("train.ridge_distance"), "‖W − W_r‖/‖W_r‖", "log"),
    "train_error": ("Train error", column("train_error"), "misclassified fraction\n(of its train labels)", "zero"),
    "test_error": ("Test error", column("test_error"), "misclassified fraction", "zero"),
}
CONTRAST_DEFAULTS = {"panels": ["nc1", "nc3", "ridge", "test_error"], "fields": ["weight_decay", "loss", "classifier"],
                     "subject": "train set"}


def contrast_table(figure: str) -> dict:
    """A contrast figure's table of suite.toml ([figures.<figure>]) with the defaults of what it leaves out:
    `title`, `configs` (the first is the reference), `contrasts` (variant -> what the row contrasts),
    `panels` (keys of CONTRAST_PANELS), `fields` (what the legend says of each configuration, DESCRIBED) and
    `subject` (what the metrics are measured on, for the title)."""
    table = {**CONTRAST_DEFAULTS, **suite.table()["figures"][figure]}
    unknown = sorted(set(table["panels"]) - set(CONTRAST_PANELS)) + sorted(set(table["fields"]) - set(DESCRIBED))
    if unknown:
        raise KeyError(f"[figures.{figure}] names unknown panels or fields: {unknown}")
    return table


@styled
def contrasts(figure: str, runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """A contrast figure of suite.toml's [figures.<figure>] (`contrast_table`): one row per contrast of the
    reference (its first configuration) against a variant, each panel a quantity over training on shared
    axes (NC1, NC3, the distance of W to the ridge classifier of its features, the train or the test
    error: `panels`), the legend naming what distinguishes the configurations (`fields`)."""
    table = contrast_table(figure)
    title, names = table["title"], tuple(table["configs"])
    groups = _groups({name: runs.get(name, []) for name in names})
    if not groups:
        return message(title, ["No finished run to draw:"] + _absent(runs, missing, names))
    rows = table["contrasts"]
    fig = Figure(figsize=(WIDTH, 2.9 * len(rows)), layout="constrained")
    # A row's contrast heads the row once (its subfigure's title): in each of four narrow panel titles it
    # would be wider than the panel.
    subfigures = np.atleast_1d(fig.subfigures(len(rows), 1))
    axes = np.array([sub.subplots(1, len(table["panels"])) for sub in subfigures])
    for ax in axes.ravel()[1:]:
        ax.sharex(axes[0, 0])
    for sub, row, (variant, what) in zip(subfigures, axes, rows.items()):
        pair = {name: groups[name] for name in (names[0], variant) if name in groups}
        _comparison(row, pair, [CONTRAST_PANELS[key] for key in table["panels"]], table["fields"])
        sub.suptitle(what, fontsize="medium", fontweight="bold")
    for ax in axes[:-1].ravel():
        ax.tick_params(labelbottom=False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    return finish(fig, f"{title} ({table['subject']})", seeds_note(r.spec.seed for g in groups.values() for r in g),
                  _absent(runs, missing, names), axes[:, 0])


def ablation(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """Regime ablation: NC1, NC3 and the relative distance of the classifier to the ridge classifier W_r
    (lambda = wd/2) of its features (the central path of Han, Papyan & Donoho, ICLR 2022; metrics.RIDGE_KEYS) of the
    default run ("standard") against the same regime without weight decay ("no-wd"; Zhu et al., NeurIPS
    2021, Sec. 5.2), with MSE loss ("mse"; Han et al. 2022, Fig. 2) and with the classifier fixed to a
    simplex ETF ("etf-classifier"; Zhu et al. 2021, Sec. 5), and the test error of each: one row per
    contrast of suite.toml's [figures.ablation] (`contrasts`)."""
    return contrasts("ablation", runs, missing)


def losses(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """All losses collapse (Zhou et al., "Are All Losses Created Equal", NeurIPS 2022;
    claims/test_all_losses.py): NC1, NC3, W vs ridge and the test error of cross-entropy ("standard")
    against label smoothing (alpha 0.1; Guo et al. 2024: collapses faster and further), focal loss (gamma
    3) and MSE, one row each ([figures.losses])."""
    return contrasts("losses", runs, missing)


def label_noise(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """Collapse under 20% label noise (Nguyen et al., "Memorization-Dilation", ICLR 2023;
    claims/test_label_noise.py): NC1 and NC3 of the train features with their given (noisy) labels, the
    train error on those labels (it falls to 0 as the network memorises them) and the test error, of the
    clean run ("standard") against cross-entropy and label smoothing on noisy labels ([figures.label-noise])."""
    return contrasts("label-noise", runs, missing)


def _seed_points(ax, xs: Sequence[float], values: Sequence[Sequence[float]], *, color: str, label: str,
                 marker: str = "o", ls: str = "-") -> None:
    """One point per seed at each x, and the aggregate over seeds (the geometric mean on a log y axis, the
    mean otherwise; NaN left out) as a line through the x values."""
    centres = []
    for x, vals in zip(xs, values):
        v = np.asarray(vals, dtype=np.float64)
        ax.plot(np.full(len(v), x), v, marker, ms=4, color=color, alpha=0.45, mec="none", ls="none")
        finite = v[np.isfinite(v) & ((v > 0) if ax.get_yscale() == "log" else True)]
        if not len(finite):
            centres.append(np.nan)
        else:
            centres.append(float(np.exp(np.log(finite).mean()) if ax.get_yscale() == "log" else finite.mean()))
    ax.plot(xs, centres, color=color, ls=ls, marker=marker, ms=6, mec="k", mew=0.5, label=label)


def _probe(statistic, run) -> float:
    """A probe's value for a run (ncsim.probes); NaN where the run's network leaves it undefined."""
    try:
        return float(statistic(run))
    except metrics.DegenerateFeaturesError:
        return float("nan")


@styled
def imbalance(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """Minority collapse in the CNN (Fang, He, Long & Su, PNAS 2021; claims/test_minority_collapse.py)
    against the imbalance ratio R of [figures.imbalance]'s configurations (the classes C/2..C-1, the
    minority, keep 1/R of their train signals: ncsim.data.subset_indices): the mean pairwise cosine of the
    minority classifier rows, raw (as Fang et al.'s code) and centred by the mean row
    (ncsim.probes.classifier_cosine), with the simplex value −1/(C−1) and collapse (1) marked, and the
    test error on the minority and on the majority classes (ncsim.probes.class_test_error); one point per
    seed, the mean over seeds joined across R. Reads the final weights and runs the network on the test set."""
    title = "Minority collapse under class imbalance"
    names = suite.figure_configs("imbalance")
    groups = _groups({name: runs.get(name, []) for name in names})
    if not groups:
        return message(title, ["No finished run to draw:"] + _absent(runs, missing, names))
    C = len(next(iter(groups.values()))[0].weights()["classifier.weight"])
    minority = data.minority_classes(C)
    majority = tuple(c for c in range(C) if c not in minority)
    order = sorted(groups, key=lambda name: groups[name][0].spec.imbalance)
    R = [groups[name][0].spec.imbalance for name in order]
    fig = Figure(figsize=(WIDTH, 3.6), layout="constrained")
    cos_ax, err_ax = fig.subplots(1, 2)
    for centred, color, marker, ls, what in ((False, CLASSIFIER, "o", "-", "raw rows"),
                                             (True, MEANS, "s", "--", "rows centred by their mean")):
        values = [[_probe(lambda r: probes.classifier_cosine(r, minority, centred), r) for r in groups[n]]
                  for n in order]
        _seed_points(cos_ax, R, values, color=color, marker=marker, ls=ls, label=f"minority rows: {what}")
    cos_ax.axhline(-1 / (C - 1), ls="--", color="0.4", lw=1, label=f"simplex ETF: −1/(C−1) = {-1 / (C - 1):.3g}")
    cos_ax.axhline(1.0, ls="--", color="0.2", lw=1, label="collapsed: 1")
    for classes, color, marker, what in ((minority, CLASSIFIER, "o", "minority"), (majority, MEANS, "s", "majority")):
        values = [[probes.class_test_error(r, classes) for r in groups[n]] for n in order]
        _seed_points(err_ax, R, values, color=color, marker=marker,
                     label=f"{what} classes {classes[0]}-{classes[-1]}")
    err_ax.set_ylim(0, None)
    cos_ax.set(title=f"Minority classifier rows {minority[0]}-{minority[-1]}", ylabel="mean pairwise cosine")
    err_ax.set(title="Test error by class group", ylabel="misclassified fraction")
    for ax in (cos_ax, err_ax):
        log_scale(ax, "x")
        ax.set_xticks(R, [f"{r:g}\n{name}" for r, name in zip(R, order)])
        ax.minorticks_off()
        ax.set_xlabel("imbalance ratio R = n_majority / n_minority")
        ax.set_xlim(min(R) / 2, max(R) * 2)
    note = (f"{seed_list(r.spec.seed for g in groups.values() for r in g)}: one point per seed, "
            "the line through their means")
    return finish(fig, title, note, _absent(runs, missing, names), (cos_ax, err_ax))


@styled
def transfer(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """Collapse on new classes (Galanti, Gyorgy & Hutter, ICLR 2022; claims/test_new_classes.py): on the
    held-out classes of the source configuration's probe (ncsim.suite.new_class_probe, "source-5"),
    the CDNV of their test features (log scale) and the `shots`-shot nearest-class-centre error over
    `episodes` episodes (ncsim.probes.new_class_statistics) of the untrained network (the source run at
    epoch 0), of the source network and of the network trained on all classes ("standard", those classes
    seen); one point per seed and the aggregate (the geometric mean on the log axis, else the mean).
    Runs the networks on the classes' signals."""
    title = "Collapse on new classes"
    source, seen = suite.figure_configs("transfer")
    classes, shots, episodes = suite.new_class_probe(source)
    groups = _groups({name: runs.get(name, []) for name in (source, seen)})
    if not groups:
        return message(title, ["No finished run to draw:"] + _absent(runs, missing, (source, seen)))
    networks = []  # (tick label, colour, runs)
    if source in groups:
        networks += [(f"untrained\n({source} at epoch 0)", "0.5", [r.truncated(0) for r in groups[source]]),
                     (f"trained on classes\n0-{groups[source][0].spec.train_classes - 1} ({source})",
                      suite.colour(source), groups[source])]
    if seen in groups:
        networks.append((f"trained on all\nclasses ({seen})", suite.colour(seen), groups[seen]))
    stats = [[probes.new_class_statistics(r, classes, shots, episodes) for r in group] for *_, group in networks]
    fig = Figure(figsize=(WIDTH, 3.6), layout="constrained")
    cdnv_ax, ncc_ax = fig.subplots(1, 2)
    log_scale(cdnv_ax)
    for ax, key in ((cdnv_ax, "cdnv"), (ncc_ax, "few_shot_error")):
        for x, ((_, color, _), group) in enumerate(zip(networks, stats)):
            _seed_points(ax, [x], [[s[key] for s in group]], color=color, marker="o", label="")
        ax.set_xticks(range(len(networks)), [label for label, *_ in networks])
        ax.set_xlim(-0.5, len(networks) - 0.5)
        ax.set_xlabel("network")
    ncc_ax.axhline(1 - 1 / len(classes), ls="--", color="0.4", lw=1, label=f"chance: 1 − 1/{len(classes)}")
    ncc_ax.set_ylim(0, None)
    cdnv_ax.plot([], [], "o", ms=4, color="0.4", alpha=0.45, mec="none", label="one seed")
    cdnv_ax.plot([], [], "o", ms=6, color="0.4", mec="k", mew=0.5, label="aggregate over seeds")
    span = f"{classes[0]}-{classes[-1]}"
    cdnv_ax.set(title=f"CDNV of classes {span} (log scale)", ylabel="class-distance normalised variance")
    ncc_ax.set(title=f"{shots}-shot nearest-class-centre error\n({episodes} episodes)", ylabel="misclassified fraction")
    note = (f"{seed_list(r.spec.seed for g in groups.values() for r in g)}: one point per seed; CDNV and queries "
            f"from the test signals of classes {span}, support from their train signals")
    return finish(fig, f"{title}: classes {span} unseen by {source}", note,
                  _absent(runs, missing, (source, seen)), (cdnv_ax, ncc_ax))


@styled
def ufm_imbalance(sweeps: Mapping[int, Mapping[str, np.ndarray]], num_classes: int = 4) -> Figure:
    """The unconstrained features model's global minimiser against the imbalance ratio R
    (stored by claims/test_ufm_imbalance.py; `sweeps` maps each seed to its sweep): mean pairwise cosines of the
    minority and of the majority classifier rows, with the minority-collapse threshold R* (Fang, He, Long
    & Su, PNAS 2021), the Gram distance of the class means (centred at their unweighted mean) and of W to
    the simplex ETF and to the SELI geometry (Thrampoulidis et al., NeurIPS 2022; sweeps without the
    SELI columns are drawn without them), and the minority/majority classifier norm ratio."""
    from ncsim.ufm import collapse_threshold  # here: ncsim.ufm imports torch

    title = "UFM geometry under class imbalance"
    if not sweeps:
        return message(title, ["No imbalance sweep in the run store: claims/test_ufm_imbalance.py stores one."])
    fig = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    cos_ax, etf_ax, norm_ax = fig.subplots(1, 3, sharex=True)

    def key(name):
        return lambda sweep: (sweep["R"], sweep[name])
    seeds, sweeps = list(sweeps), list(sweeps.values())
    band(cos_ax, sweeps, key("minority_cos"), label="minority rows", color=CLASSIFIER)
    band(cos_ax, sweeps, key("majority_cos"), label="majority rows", color=MEANS)
    cos_ax.axhline(-1 / (num_classes - 1), ls=":", color="0.4", label="ETF: −1/(C−1)")
    cos_ax.axhline(1.0, ls="-.", color="0.4", lw=1, label="collapsed: 1")
    thresholds = sorted({collapse_threshold(sweep) for sweep in sweeps} - {np.inf})
    if thresholds:
        cos_ax.axvline(thresholds[0], ls="--", color=CLASSIFIER, lw=1,
                       label="R*: minority collapse at " + ", ".join(f"{R:g}" for R in thresholds))
    band(etf_ax, sweeps, key("means_etf_distance"), label="class means: to the ETF", color="C2")
    band(etf_ax, sweeps, key("w_etf_distance"), label="classifier rows W: to the ETF", color="C4")
    band(etf_ax, sweeps, key("seli_means_distance"), label="class means: to SELI", color="C2", ls="--")
    band(etf_ax, sweeps, key("seli_w_distance"), label="classifier rows W: to SELI", color="C4", ls="--")
    band(norm_ax, sweeps, key("minority_norm_ratio"), label="‖w_minority‖ / ‖w_majority‖", color="C5")
    cos_ax.set(title="Mean pairwise cosine of rows", ylabel="cosine")
    etf_ax.set(title="Distance to the ETF and to SELI", ylabel="Gram distance (0 = ETF or SELI)")
    norm_ax.set(title="Classifier norm ratio", ylabel="minority / majority")
    for ax in (cos_ax, etf_ax, norm_ax):
        log_scale(ax, "x")
        ax.set_xlabel("imbalance ratio R")
    return finish(fig, f"{title} (CE UFM without bias, C = {num_classes})", seeds_note(seeds), (),
                  (cos_ax, etf_ax, norm_ax))


# ---- the verdict figure ----------------------------------------------------------------------------

VERDICT_COLOURS = {"reproduces": "#1a9641", "inconclusive": "#e08800", "does not reproduce": "#d7191c"}
VERDICT_PANELS = {  # panel -> title, x label, where the rule's reference lies
    "ratio": ("One-sided thresholds, log scale: left of 1 holds",
              "value / threshold (≤, <) or threshold / value (≥, >)", 1.0),
    "equivalence": ("Equivalence to the reference configuration, log scale: holds when the 90% interval "
                    "lies within the margins", "ratio to the reference configuration, same seed", 1.0),
    "difference": ("One-sided thresholds on linear statistics, symlog scale: left of 0 holds",
                   "value − threshold (≤, <) or threshold − value (≥, >)", 0.0),
}
RULE_LABELS = {"every": "every seed", "mean": "95% bound, {mean}", "equivalence": "TOST, 90% interval"}
ROW_HEIGHT = 0.4                 # inches per check: two lines of its 8-point labels
VERDICT_LABEL_SIZE = 8           # points: 12 px at DPI, legible where the figure is shown 800 px wide


def as_float(value) -> float:
    """A number of a check record as a float: None (NaN, which JSON lacks) and verdicts.json's strings
    "inf", "-inf" and "nan" included."""
    return float("nan") if value is None else float(value)


def verdict_panel(record: Mapping) -> str:
    """Where the verdict figure draws a check: "equivalence", "ratio" (a log-scale statistic against a
    positive threshold) or "difference" (a linear one, or a threshold of 0, where no ratio exists)."""
    if record["rule"] == "equivalence":
        return "equivalence"
    return "ratio" if record.get("scale", "log") == "log" and as_float(record["threshold"]) > 0 else "difference"


def relative(record: Mapping, values: Sequence) -> np.ndarray:
    """Values of a check's statistic placed against its threshold so that left always means "holds":
    value / threshold for "<=" and "<", threshold / value for ">=" and ">" (a value on the wrong side of
    0 goes to 0 or inf accordingly), value − threshold or threshold − value in the "difference" panel;
    an equivalence ratio stays as it is."""
    x = np.array([as_float(v) for v in values], dtype=np.float64)
    threshold, upper, panel = as_float(record["threshold"]), record["op"] in ("<=", "<"), verdict_panel(record)
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


def _row_label(record: Mapping) -> str:
    claim = str(record.get("claim", "")).removeprefix("test_")
    rule = RULE_LABELS[record["rule"]].format(mean="geometric mean" if record.get("scale") == "log" else "mean")
    return f"{record['tolerance']} [{record.get('config')}]\n{claim} · {rule}"


def _verdict_label(record: Mapping) -> str:
    extra = {"xfail": "\n(strict xfail, expected)", "xpass": "\n(xpass: fails the suite)"}
    return record.get("verdict", "") + extra.get(record.get("outcome"), "")


def _draw_check(ax, y: float, record: Mapping, lo: float, hi: float) -> None:
    """One row: the seeds as dots, the aggregate as a diamond with its one-sided bound (a bar ending in a
    cap) or its equivalence interval (a bar with two caps), in the colour of the verdict."""
    colour = VERDICT_COLOURS.get(record.get("verdict"), "0.4")
    values = record.get("values") or []
    pos, markers = _place(relative(record, values), lo, hi)
    offsets = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(len(values))
    for x, dy, m in zip(pos, offsets, markers):
        ax.plot(x, y + dy, m, ms=3.5 if m == "o" else 5, color=colour, alpha=0.6, mec="none" if m == "o" else colour,
                clip_on=False, zorder=3)
    ends = record.get("interval") or ([record["measured"], record["bound"]] if record.get("bound") is not None else [])
    if record.get("measured") is not None and ends:
        (a, b), _ = _place(relative(record, ends), lo, hi)
        ax.plot([a, b], [y, y], color=colour, lw=2, solid_capstyle="butt", zorder=4)
        caps = [a, b] if record.get("interval") else [b]
        ax.plot(caps, [y] * len(caps), "|", ms=9, mew=2, color=colour, zorder=4)
    if record.get("measured") is not None:
        (x,), (m,) = _place(relative(record, [record["measured"]]), lo, hi)
        ax.plot(x, y, "D" if m == "o" else m, ms=6, color=colour, mec="k", mew=0.6, clip_on=False, zorder=5)
    for margin in _margins(record):
        ax.plot([margin, margin], [y - 0.45, y + 0.45], ls="--", lw=1, color="0.3", zorder=2)


def _margins(record: Mapping) -> list[float]:
    """The equivalence margins of a check, 1/value and value; none for a one-sided one."""
    margin = as_float(record["threshold"])
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
    bound, = ax.plot([], [], "-|", lw=2, ms=9, mew=2, color="0.4", label="bar to the one-sided 95% bound (rule mean)")
    ax.errorbar([np.nan], [np.nan], xerr=[1], fmt="none", lw=2, capsize=4.5, capthick=2, color="0.4",
                label="90% interval (equivalence)")
    ax.plot([], [], "k-", lw=1.2, label="threshold (equivalence: ratio 1)")
    ax.plot([], [], "--", lw=1, color="0.3", label="equivalence margin")
    ax.plot([], [], ">", ms=5, color="0.4", label="beyond the axis, e.g. 0 or inf: at its edge")
    ax.plot([], [], "x", ms=5, color="0.4", label="NaN (not measured)")
    return {bound: _CapAtEnd()}


@styled
def verdicts(records: Sequence[Mapping]) -> Figure:
    """The verdicts of a claims session over seeds, a forest plot of its check records (ncsim.checks.decide;
    each may carry the pytest "outcome" of its test): one row per check and configuration of the CNN
    claims, its seeds as dots, the aggregate the rule rests on as a diamond with its one-sided 95% bound
    or 90% equivalence interval as a bar, coloured by verdict and named at the right. Each statistic is
    drawn against its threshold (`relative`) so that left always means "holds": one-sided thresholds of
    log-scale statistics as ratios on a log axis (holds where the bound, or for rule "every" each seed,
    lies left of 1), equivalence ratios (TOST: holds where the interval lies within the dashed margins),
    linear statistics and thresholds of 0 as signed differences on a symlog axis (left of 0 holds). The
    numerical UFM checks (claims/test_ufm_*.py: theory, one value per test, no seeds) are left out and
    counted in the note; the report's table lists them."""
    title = "Verdicts over seeds"
    cnn = [r for r in records if not str(r.get("claim", "")).startswith("test_ufm_")]
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
        points = np.concatenate([relative(r, [*(r.get("values") or []), r.get("measured"), r.get("bound"),
                                              *(r.get("interval") or []), *_margins(r)]) for r in rows])
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
            if y and record.get("claim") != rows[y - 1].get("claim"):
                ax.axhline(y - 0.5, color="0.6", lw=0.6)
        edges = ax.xaxis.get_transform().transform([lo, hi])  # a little room for the marks at the edges
        ax.set_xlim(ax.xaxis.get_transform().inverted().transform(edges + np.array([-1, 1]) * 0.02 * np.ptp(edges)))
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_yticks(range(len(rows)), [_row_label(r) for r in rows], fontsize=VERDICT_LABEL_SIZE)
        ax.grid(False, axis="y")
        right = ax.secondary_yaxis("right")
        right.set_yticks(range(len(rows)), [_verdict_label(r) for r in rows], fontsize=VERDICT_LABEL_SIZE)
        for label, record in zip(right.get_yticklabels(), rows):
            label.set_color(VERDICT_COLOURS.get(record.get("verdict"), "0.4"))
        ax.set_title(_wrap(name, 65), loc="left")
        ax.set_xlabel(xlabel)
    handler_map = _verdict_legend(axes[0])
    seeds = sorted({s for r in cnn for s in r.get("seeds") or () if s is not None})
    note = (f"{len(cnn)} checks of the CNN claims (check and configuration), each decided over seeds "
            f"{', '.join(map(str, seeds))}; {left_out}")
    return finish(fig, title, note, (), axes[:1], handler_map)
