"""Figures of one configuration's runs over seeds: training dynamics, NC1-NC4 over training, layer-wise
collapse, and the geometry at the end of training (a forward pass of the network)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ncsim import metrics
from ncsim.figures.base import (
    CLASSIFIER,
    MEANS,
    TEST,
    TRAIN,
    WIDTH,
    Series,
    _all_absent,
    band,
    column,
    epoch_log_scale,
    finish,
    no_data,
    not_drawn,
    scaled,
    seeds_note,
    styled,
    tpt_marks,
    usable,
)
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory


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
    return finish(
        fig, f"{title}: {ok[0].spec.name}", seeds_note(r.spec.seed for r in ok), not_drawn(runs, missing), [loss_ax]
    )


NC_PANELS = (  # title, y label, scale ("log" or "zero": zero_scale), [(column, label, colour)]
    (
        "NC1: within-class variability",
        "Tr(Σ_W Σ_B⁺)/C",
        "log",
        [("train.nc1", "train features", MEANS), ("test.nc1", "test features", "0.55")],
    ),
    (
        "NC2: equinorm",
        "std/mean of norms",
        "log",
        [("train.nc2_equinorm", "class means", MEANS), ("train.w_equinorm", "classifier rows W", CLASSIFIER)],
    ),
    (
        "NC2: equiangularity",
        "std of pairwise cosines",
        "log",
        [
            ("train.nc2_equiangularity", "class means", MEANS),
            ("train.w_equiangularity", "classifier rows W", CLASSIFIER),
        ],
    ),
    (
        "NC2: max-angle",
        "mean |cos + 1/(C-1)|",
        "log",
        [("train.nc2_maxangle", "class means", MEANS), ("train.w_maxangle", "classifier rows W", CLASSIFIER)],
    ),
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
            drawn = [
                band(ax, ok, column(col), label=label, color=color, ls="--" if col.startswith("test") else "-")
                for col, label, color in curves
            ]
            if not any(drawn):
                no_data(ax)
            tpt_marks(ax, ok)
        ax.set(title=panel, ylabel=ylabel)
    for ax in axes[3:]:
        ax.set_xlabel("epoch")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles[:2], labels[:2], loc="upper right")  # train, test: the TPT marks are in the figure legend
    return finish(
        fig,
        f"{title}: {ok[0].spec.name} (train set)",
        seeds_note(r.spec.seed for r in ok),
        not_drawn(runs, missing),
        axes[1:2],
    )


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
            drawn = [
                band(
                    top, ok, _mapped(layer_series(tap, metric), transform), label=label, color=color, marker="o", ms=2.5
                )
                for tap, label, color in zip(taps, names, colors)
            ]
            if not any(drawn):
                no_data(top)
            if not band(
                bottom,
                ok,
                _mapped(end_by_depth(metric), transform),
                label="end of training",
                color="k",
                marker="o",
                ms=3,
            ):
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
        ax.set_title(
            f"{what}\n{cosine} − ETF\nmax |deviation| {np.abs(deviation[key]).max():.2g}\n"
            f"{name} {run.final(f'train.{metric}'):.3g}",
            fontsize=7.5,
        )
        ax.set(xlabel="class c'", ylabel="class c", xticks=range(C), yticks=range(C))
        ax.tick_params(labelsize=6)
        ax.grid(False)
    fig.colorbar(
        image,
        ax=axes,
        shrink=0.9,
        label=f"cosine − ETF value (ETF: 1 on\nthe diagonal, −1/(C−1) = −{1 / (C - 1):.3g} off it)",
    )
    note = f"seed {run.spec.seed} shown (of {', '.join(str(r.spec.seed) for r in ok)})" if len(ok) > 1 else ""
    return finish(
        fig, f"{title}: {run.label} (train set), deviation from the simplex ETF", note, not_drawn(runs, missing)
    )
