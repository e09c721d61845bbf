"""The report's figures, drawn from run trajectories (matplotlib, Agg, PNG about 800 px wide).

Every function takes the runs it draws and returns a matplotlib Figure (the object-oriented API, no
pyplot state: nothing to close, headless everywhere); `save` writes it. Runs come as trajectories over
seeds, one list per configuration name; nothing here reads the store or trains (ncsim.report looks the
runs up). `missing` names runs (ncsim.suite.RunId) that were asked for but are not in the store.
Colours and the configurations each comparison draws come from the suite table (ncsim/suite.toml).

Conventions shared by all figures: a curve over seeds is the mean with a shaded min-max band (`band`);
the terminal phase of training (TPT, the first evaluated epoch with zero train error) is a dashed
vertical line at the mean TPT epoch of the seeds that reached it (`tpt_line`). A run that is missing or
did not finish (status "diverged" or "degenerate") is not drawn and the title says so; with nothing left
to draw the figure is a page that names the runs and why (`message`), never an empty plot.
"""

from __future__ import annotations

import functools
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import reduce
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ncsim import metrics, suite
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
    """Plot the mean over `items` of `series(item)` with a shaded min-max band, on the x values all
    items share. Items without the series (KeyError) are left out; False when none has it."""
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN epochs stay NaN: a gap in the curve
        mean, lo, hi = np.nanmean(ys, 0), np.nanmin(ys, 0), np.nanmax(ys, 0)
    ax.plot(xs, mean, color=color, label=label, **line)
    if len(curves) > 1:
        ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
    return True


def tpt_line(ax, runs: Sequence[Trajectory], color: str = "0.25", name: str = "") -> None:
    """Dashed vertical line at the mean TPT epoch of the runs that reached it (a legend-only entry
    when none did)."""
    reached = [r.tpt_epoch for r in runs if r.tpt_epoch is not None]
    prefix = f"{name} " if name else ""
    if not reached:
        ax.plot([], [], ls="--", lw=1, color=color, label=f"{prefix}TPT not reached")
        return
    mean = float(np.mean(reached))
    spread = ""
    if len(runs) > 1:
        span = f", {min(reached)}-{max(reached)}" if min(reached) < max(reached) else ""
        spread = f" ({len(reached)}/{len(runs)} runs{span})"
    ax.axvline(mean, ls="--", lw=1, color=color, label=f"{prefix}TPT: epoch {mean:.0f}{spread}")


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


def seeds_note(seeds) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 1:
        return f"seeds {', '.join(map(str, seeds))}: mean with min-max band"
    return f"seed {seeds[0]}" if seeds else ""


def finish(fig: Figure, title: str, note: str, absent: Sequence[str] = (), legend_axes=()) -> Figure:
    """Suptitle (title, a note such as the seeds drawn, and any runs not drawn) and one legend for the
    whole figure, gathered from `legend_axes` below the panels."""
    lines = [title, note] + (["not drawn: " + "; ".join(absent)] if absent else [])
    fig.suptitle("\n".join(_wrap(line) for line in lines if line))
    handles = {}
    for ax in legend_axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        ncols = 3 if max(map(len, handles)) <= 36 else 2
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=min(ncols, len(handles)), frameon=False)
    return fig


def _wrap(text: str, width: int = 110) -> str:
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
    """Training dynamics of one configuration: train and test loss (log scale) and error versus epoch,
    with the TPT marked; after the training-metrics figure of the seed lab README (experiment 1). It
    shows the terminal phase of Papyan, Han & Donoho, PNAS 2020, Sec. 2-3: train error reaches zero,
    test error holds after it."""
    title = "Training dynamics"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    fig = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    loss_ax, err_ax = fig.subplots(1, 2)
    for ax, what in ((loss_ax, "loss"), (err_ax, "error")):
        band(ax, ok, column(f"train_{what}"), label="train", color=TRAIN)
        band(ax, ok, column(f"test_{what}"), label="test", color=TEST)
        tpt_line(ax, ok)
        ax.set_xlabel("epoch")
    log_scale(loss_ax)
    loss_ax.set(title="Loss (log scale)", ylabel=f"{ok[0].spec.loss.upper()} loss")
    # symlog: linear below 0.1 % so that zero train error (TPT) is drawn, not cut off as on a log axis
    err_ax.set_yscale("symlog", linthresh=1e-3, linscale=0.5)
    err_ax.set_ylim(bottom=0)
    err_ax.yaxis.set_major_formatter(plain())
    err_ax.set(title="Error (symlog scale, 0 drawn)", ylabel="misclassified fraction")
    return finish(fig, f"{title}: {ok[0].spec.name}", seeds_note(r.spec.seed for r in ok), not_drawn(runs, missing),
                  [loss_ax])


NC_PANELS = (  # title, y label, log scale, [(column, label, colour)]
    ("NC1: within-class variability", "Tr(Σ_W Σ_B⁺)/C", True,
     [("train.nc1", "train features", MEANS), ("test.nc1", "test features", "0.55")]),
    ("NC2: equinorm", "std/mean of norms", True,
     [("train.nc2_equinorm", "class means", MEANS), ("train.w_equinorm", "classifier rows W", CLASSIFIER)]),
    ("NC2: equiangularity", "std of pairwise cosines", True,
     [("train.nc2_equiangularity", "class means", MEANS), ("train.w_equiangularity", "classifier rows W", CLASSIFIER)]),
    ("NC2: max-angle", "mean |cos + 1/(C-1)|", True,
     [("train.nc2_maxangle", "class means", MEANS), ("train.w_maxangle", "classifier rows W", CLASSIFIER)]),
    ("NC3: self-duality", "‖W/‖W‖ − M/‖M‖‖²", True, [("train.nc3", "W vs centered means", MEANS)]),
    ("NC4: nearest class centre", "NCC ≠ network (fraction)", False, [("train.nc4", "train", MEANS)]),
)


@styled
def nc_metrics(runs: Sequence[Trajectory], missing: Sequence[RunId] = ()) -> Figure:
    """NC1-NC4 of the penultimate train features over training, after Papyan, Han & Donoho, PNAS 2020,
    Figs. 2-7: NC1 = Tr(Σ_W Σ_B⁺)/C (Fig. 6, log scale; test-set NC1 dashed as the secondary view),
    equinorm of the centered class means and of the classifier rows (Fig. 2), equiangularity (Fig. 3),
    max-angle (Fig. 4), self-duality NC3 (Fig. 5) and the nearest-class-centre mismatch NC4 (Fig. 7)."""
    title = "Neural Collapse metrics NC1-NC4"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    fig = Figure(figsize=(WIDTH, 5.6), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True).ravel()
    for ax, (panel, ylabel, log, curves) in zip(axes, NC_PANELS):
        drawn = [band(ax, ok, column(col), label=label, color=color, ls="--" if col.startswith("test") else "-")
                 for col, label, color in curves]
        if not any(drawn):
            no_data(ax)
        tpt_line(ax, ok)
        if log:
            log_scale(ax)
        ax.set(title=panel, ylabel=ylabel)
    for ax in axes[3:]:
        ax.set_xlabel("epoch")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles[:2], labels[:2], loc="upper right")  # train, test: TPT is in the figure legend
    return finish(fig, f"{title}: {ok[0].spec.name} (train set)", seeds_note(r.spec.seed for r in ok),
                  not_drawn(runs, missing), axes[1:2])


LAYER_METRICS = (  # name, y label, transform of the recorded values, log scale
    ("NC1", "Tr(Σ_W Σ_B⁺)/C", lambda values: values, True),
    ("NC2: ETF distance", "Gram distance of means to ETF", lambda values: values, False),
    ("NCC accuracy", "nearest-class-centre accuracy", lambda values: 1 - values, False),
)
LAYER_COLUMNS = ("nc1", "nc2_etf_distance", "ncc_error")


def depth_taps(run: Trajectory) -> list[str]:
    """Layers in depth order: each block's full output (flattened for conv blocks; channel-pooled taps
    left out), then the penultimate layer."""
    return [t for t in run.taps() if not t.endswith(".pool")] + ["penultimate"]


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
        taps = depth_taps(run)
        return np.arange(len(taps)), np.array([layer_series(t, metric)(run)[1][-1] for t in taps])
    return series


@styled
def layerwise(runs: Sequence[Trajectory], missing: Sequence[RunId] = ()) -> Figure:
    """Layer-wise collapse, after the seed lab README's experiment 2 figure and Rangamani et al., ICML
    2023, Figs. 1-3: NC1 (log scale), the ETF Gram
    distance of the centered class means (Zhu et al. 2021) and the nearest-class-centre accuracy with
    train means, at every layer over training (top row) and at the end of training against depth
    (bottom row). Conv layers are measured on their flattened outputs; train set, eval mode."""
    title = "Layer-wise collapse"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    taps = depth_taps(ok[0])
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(taps)))
    fig = Figure(figsize=(WIDTH, 6.0), layout="constrained")
    axes = fig.subplots(2, 3)
    names = [t.removesuffix(".flat") for t in taps]
    for j, ((name, ylabel, transform, log), metric) in enumerate(zip(LAYER_METRICS, LAYER_COLUMNS)):
        top, bottom = axes[0, j], axes[1, j]
        drawn = [band(top, ok, _mapped(layer_series(tap, metric), transform), label=label, color=color,
                      marker="o", ms=2.5) for tap, label, color in zip(taps, names, colors)]
        if not any(drawn):
            no_data(top)
        top.set(title=f"{name} over training", xlabel="epoch")
        if not band(bottom, ok, _mapped(end_by_depth(metric), transform), label="end of training",
                    color="k", marker="o", ms=3):
            no_data(bottom)
        bottom.set_xticks(range(len(taps)), names, rotation=35, ha="right")
        bottom.set(title=f"{name} at the end", xlabel="layer (input → output)")
        for ax in (top, bottom):
            if log:
                log_scale(ax)
            ax.set_ylabel(ylabel)
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


@styled
def geometry(runs: Sequence[Trajectory], missing: Sequence[RunId] = (), cache_dir=None) -> Figure:
    """Geometry at the end of training (a picture of NC2 and NC3, cf. Papyan, Han & Donoho, PNAS 2020,
    Fig. 1 and Zhu et al., NeurIPS 2021, Fig. 1): the cosine Gram matrix of the centered class means next
    to the ideal simplex ETF's, and that of the classifier rows W next to the cosines between the rows and
    the means (diagonal near 1: self-duality). One run, the lowest finished seed; `cache_dir` is where
    the run store keeps the MNIST-1D arrays."""
    title = "Geometry at the end of training"
    ok = usable(runs)
    if not ok:
        return _all_absent(title, runs, missing)
    run = min(ok, key=lambda r: r.spec.seed)
    g = end_geometry(run, cache_dir)
    C = len(g["etf"])
    fig = Figure(figsize=(WIDTH, 6.6), layout="constrained")
    axes = fig.subplots(2, 2)
    end = {k: f"{run.final(f'train.{k}'):.3g}" for k in ("nc2_etf_distance", "w_etf_distance", "nc3")}
    panels = (
        (axes[0, 0], "means", f"class means: cos(μ_c−μ_G, μ_c'−μ_G)\nETF distance {end['nc2_etf_distance']}"),
        (axes[0, 1], "etf", f"ideal simplex ETF: 1 and −1/(C−1) = −{1 / (C - 1):.3g}"),
        (axes[1, 0], "classifier", f"classifier rows: cos(w_c, w_c')\nETF distance {end['w_etf_distance']}"),
        (axes[1, 1], "cross", f"rows vs means: cos(w_c, μ_c'−μ_G)\nNC3 {end['nc3']}"),
    )
    # white at the ETF's off-diagonal cosine, so that any departure from the simplex shows in colour
    norm = TwoSlopeNorm(vcenter=-1 / (C - 1), vmin=-1, vmax=1)
    for ax, key, panel in panels:
        image = ax.imshow(g[key], cmap="RdBu_r", norm=norm)
        ax.set(title=panel, xlabel="class c'", ylabel="class c", xticks=range(C), yticks=range(C))
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.6, label="cosine (white: −1/(C−1))",
                 ticks=[-1, -0.5, -1 / (C - 1), 0.5, 1], format=FuncFormatter(lambda v, _: f"{v:.2g}"))
    note = f"seed {run.spec.seed} shown (of {', '.join(str(r.spec.seed) for r in ok)})" if len(ok) > 1 else ""
    return finish(fig, f"{title}: {run.label} (train set)", note, not_drawn(runs, missing))


def _describe(name: str, runs: Sequence[Trajectory], fields: Sequence[str]) -> str:
    spec = runs[0].spec
    parts = {"optimizer": OPTIMIZER_NAMES[spec.optimizer], "lr": f"lr {spec.lr:g}",
             "weight_decay": f"wd {spec.weight_decay:g}", "loss": spec.loss.upper()}
    return f"{name}: " + ", ".join(parts[f] for f in fields)


def _comparison(axes, groups: Mapping[str, Sequence[Trajectory]], panels, fields) -> None:
    """Each panel: one band per configuration (its TPT line in its colour)."""
    for ax, (panel, series, ylabel, scale) in zip(axes, panels):
        drawn = False
        for name, group in groups.items():
            color = suite.colour(name)
            drawn |= band(ax, group, series, label=_describe(name, group, fields), color=color)
            tpt_line(ax, group, color=color, name=name)
        if not drawn:
            no_data(ax)
        if scale == "log":
            log_scale(ax)
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
    ETF distance of the class means under SGD ("standard"), Adam and LBFGS, on shared axes; each
    optimizer's TPT dashed in its colour."""
    title = "Optimizer comparison"
    names = suite.figure_configs("optimizers")
    groups = _groups({name: runs.get(name, []) for name in names})
    if not groups:
        return message(title, ["No finished run to draw:"] + _absent(runs, missing, names))
    fig = Figure(figsize=(WIDTH, 6.2), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True).ravel()
    panels = (
        ("Train loss", column("train_loss"), "loss", "log"),
        ("Train error", column("train_error"), "misclassified fraction", "linear"),
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


@styled
def ablation(runs: Mapping[str, Sequence[Trajectory]], missing: Sequence[RunId] = ()) -> Figure:
    """Regime ablation: NC1 and NC3 of the default run ("standard") against the same regime without
    weight decay ("no-wd"; Zhu et al., NeurIPS 2021, Sec. 5.2) and with MSE loss ("mse"; Han, Papyan &
    Donoho, ICLR 2022, Fig. 2)."""
    title = "Regime ablation"
    names = suite.figure_configs("ablation")
    contrasts = suite.table()["figures"]["ablation"]["contrasts"]
    groups = _groups({name: runs.get(name, []) for name in names})
    if not groups:
        return message(title, ["No finished run to draw:"] + _absent(runs, missing, names))
    fig = Figure(figsize=(WIDTH, 5.8), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    for row, (variant, what) in zip(axes, contrasts.items()):
        pair = {name: groups[name] for name in (names[0], variant) if name in groups}
        panels = [(f"NC1: {what}", column("train.nc1"), "Tr(Σ_W Σ_B⁺)/C", "log"),
                  (f"NC3: {what}", column("train.nc3"), "‖W/‖W‖ − M/‖M‖‖²", "log")]
        _comparison(row, pair, panels, ("weight_decay", "loss"))
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    return finish(fig, f"{title} (train set)", seeds_note(r.spec.seed for g in groups.values() for r in g),
                  _absent(runs, missing, names), axes[:, 0])


@styled
def ufm_imbalance(sweeps: Mapping[int, Mapping[str, np.ndarray]], num_classes: int = 4) -> Figure:
    """The unconstrained features model's global minimiser against the imbalance ratio R
    (stored by claims/test_ufm_imbalance.py; `sweeps` maps each seed to its sweep): mean pairwise cosines of the
    minority and of the majority classifier rows (minority collapse: Fang, He, Long & Su, PNAS 2021,
    Sec. 3), the ETF Gram distance of the class means and of W (SELI, not an ETF, for R > 1:
    Thrampoulidis et al., NeurIPS 2022), and the minority/majority classifier norm ratio."""
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
    band(etf_ax, sweeps, key("means_etf_distance"), label="class means", color="C2")
    band(etf_ax, sweeps, key("w_etf_distance"), label="classifier rows W", color="C4")
    band(norm_ax, sweeps, key("minority_norm_ratio"), label="‖w_minority‖ / ‖w_majority‖", color="C5")
    cos_ax.set(title="Mean pairwise cosine of rows", ylabel="cosine")
    etf_ax.set(title="ETF Gram distance", ylabel="distance (0 = simplex ETF)")
    norm_ax.set(title="Classifier norm ratio", ylabel="minority / majority")
    for ax in (cos_ax, etf_ax, norm_ax):
        log_scale(ax, "x")
        ax.set_xlabel("imbalance ratio R")
    return finish(fig, f"{title} (CE UFM, C = {num_classes})", seeds_note(seeds), (),
                  (cos_ax, etf_ax, norm_ax))
