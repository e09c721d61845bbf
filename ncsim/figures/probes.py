"""Figures of statistics probed on the trained networks (ncsim.probes): minority collapse under class
imbalance, and collapse on classes the network never saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ncsim import data, metrics, probes, suite
from ncsim.figures.base import CLASSIFIER, MEANS, WIDTH, finish, log_scale, message, seed_list, styled
from ncsim.figures.comparisons import _absent, _groups
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory


def _seed_points(
    ax,
    xs: Sequence[float],
    values: Sequence[Sequence[float]],
    *,
    color: str,
    label: str,
    marker: str = "o",
    ls: str = "-",
) -> None:
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
    for centred, color, marker, ls, what in (
        (False, CLASSIFIER, "o", "-", "raw rows"),
        (True, MEANS, "s", "--", "rows centred by their mean"),
    ):
        values = [
            [_probe(lambda r: probes.classifier_cosine(r, minority, centred), r) for r in groups[n]] for n in order
        ]
        _seed_points(cos_ax, R, values, color=color, marker=marker, ls=ls, label=f"minority rows: {what}")
    cos_ax.axhline(-1 / (C - 1), ls="--", color="0.4", lw=1, label=f"simplex ETF: −1/(C−1) = {-1 / (C - 1):.3g}")
    cos_ax.axhline(1.0, ls="--", color="0.2", lw=1, label="collapsed: 1")
    for classes, color, marker, what in ((minority, CLASSIFIER, "o", "minority"), (majority, MEANS, "s", "majority")):
        values = [[probes.class_test_error(r, classes) for r in groups[n]] for n in order]
        _seed_points(err_ax, R, values, color=color, marker=marker, label=f"{what} classes {classes[0]}-{classes[-1]}")
    err_ax.set_ylim(0, None)
    cos_ax.set(title=f"Minority classifier rows {minority[0]}-{minority[-1]}", ylabel="mean pairwise cosine")
    err_ax.set(title="Test error by class group", ylabel="misclassified fraction")
    for ax in (cos_ax, err_ax):
        log_scale(ax, "x")
        ax.set_xticks(R, [f"{r:g}\n{name}" for r, name in zip(R, order)])
        ax.minorticks_off()
        ax.set_xlabel("imbalance ratio R = n_majority / n_minority")
        ax.set_xlim(min(R) / 2, max(R) * 2)
    note = (
        f"{seed_list(r.spec.seed for g in groups.values() for r in g)}: one point per seed, "
        "the line through their means"
    )
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
        networks += [
            (f"untrained\n({source} at epoch 0)", "0.5", [r.truncated(0) for r in groups[source]]),
            (
                f"trained on classes\n0-{groups[source][0].spec.train_classes - 1} ({source})",
                suite.colour(source),
                groups[source],
            ),
        ]
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
    note = (
        f"{seed_list(r.spec.seed for g in groups.values() for r in g)}: one point per seed; CDNV and queries "
        f"from the test signals of classes {span}, support from their train signals"
    )
    return finish(
        fig,
        f"{title}: classes {span} unseen by {source}",
        note,
        _absent(runs, missing, (source, seen)),
        (cdnv_ax, ncc_ax),
    )
