"""Figures that compare configurations on shared axes: the optimizers, and the contrast figures of
suite.toml's [figures.*] tables (ablation, losses, label noise)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ncsim import suite
from ncsim.figures.base import (
    OPTIMIZER_NAMES,
    WIDTH,
    band,
    column,
    finish,
    message,
    no_data,
    not_drawn,
    scaled,
    seeds_note,
    styled,
    tpt_marks,
    usable,
)
from ncsim.figures.runs import _mapped
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory

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
    """ "<config>: <its fields>", e.g. "standard: wd 0.005, CE, learned W" (DESCRIBED)."""
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
CONTRAST_DEFAULTS = {
    "panels": ["nc1", "nc3", "ridge", "test_error"],
    "fields": ["weight_decay", "loss", "classifier"],
    "subject": "train set",
}


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
    return finish(
        fig,
        f"{title} ({table['subject']})",
        seeds_note(r.spec.seed for g in groups.values() for r in g),
        _absent(runs, missing, names),
        axes[:, 0],
    )


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
