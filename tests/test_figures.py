"""Tests for the report's figures (ncsim.figures), drawn from tiny stored runs.

The runs are the suite's named configurations cut down to 3 epochs on 400 signals at width 12 (about a
second each), trained once per session into a temporary store (`tiny`, shared with test_report.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from ncsim import figures, suite
from ncsim.suite import RunId, obtain
from ncsim.store import Record, RunStore
from ncsim.trajectory import Trajectory
from ncsim.threads import limit_threads

TINY = {"epochs": 3, "train_size": 400, "width": 12, "layer_schedule": "every:1", "eval_schedule": "all"}
TINY_SEEDS = {"standard": (0, 1), "adam": (0,), "lbfgs": (0,), "no-wd": (0,), "mse": (0,)}


@dataclass
class TinyRuns:
    root: Path                                 # the store (and its MNIST-1D arrays)
    runs: dict[str, list[Trajectory]]          # configuration name -> trajectories over seeds


_TRAINED: list[TinyRuns] = []


def tiny_runs(tmp_path_factory, data_cache) -> TinyRuns:
    """The tiny runs, trained on first use in this process (both test modules share them)."""
    if not _TRAINED:
        root = tmp_path_factory.mktemp("figures-store")
        shutil.copytree(data_cache / "data", root / "data")
        store = RunStore(root)
        with limit_threads(1):
            runs = {name: [obtain(suite.config(name, seed).replace(**TINY), store) for seed in seeds]
                    for name, seeds in TINY_SEEDS.items()}
        _TRAINED.append(TinyRuns(root, runs))
    return _TRAINED[0]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, data_cache) -> TinyRuns:
    return tiny_runs(tmp_path_factory, data_cache)


def failed(run: Trajectory, status: str = "diverged") -> Trajectory:
    """The same run, recorded as not finished."""
    meta = {**run.meta, "status": status, "status_reason": "epoch 2: training loss nan"}
    return Trajectory(Record(run.key, meta, run.record.arrays), run.spec)


def all_text(fig: Figure) -> str:
    """Every piece of text a reader sees: suptitle, panel titles and labels, texts, legends."""
    parts = [fig.get_suptitle()] + [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        parts += [t.get_text() for t in ax.get_xticklabels()]
    parts += [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    return "\n".join(parts)


def legend_labels(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def assert_png(fig: Figure, path: Path) -> None:
    """Saved, non-empty, about 800 px wide, not blank."""
    figures.save(fig, path)
    assert path.stat().st_size > 5000
    pixels = imread(path)
    assert 780 <= pixels.shape[1] <= 820
    assert pixels[..., :3].std() > 0.01


SWEEP = {"R": np.array([1.0, 2, 5, 10]), "minority_cos": np.array([-1 / 3, -0.2, 0.1, 0.9]),
         "majority_cos": np.array([-1 / 3, -0.5, -0.7, -0.9]), "minority_norm_ratio": np.array([1, 0.8, 0.6, 0.3]),
         "means_etf_distance": np.array([0, 0.3, 0.6, 0.9]), "w_etf_distance": np.array([0, 0.2, 0.5, 0.8])}
SWEEPS = {0: SWEEP, 1: {**SWEEP, "minority_cos": SWEEP["minority_cos"] + 0.05}}

# name -> (draw(tiny runs), words the suptitle holds, panel titles)
CASES = {
    "training": (lambda t: figures.training(t.runs["standard"]), ["Training dynamics", "seeds 0, 1"],
                 ["Loss (log scale)", "Error (symlog scale, 0 drawn)"]),
    "nc_metrics": (lambda t: figures.nc_metrics(t.runs["standard"]), ["NC1-NC4", "train set"],
                   ["NC1: within-class variability", "NC2: equinorm", "NC2: equiangularity", "NC2: max-angle",
                    "NC3: self-duality", "NC4: nearest class centre"]),
    "layerwise": (lambda t: figures.layerwise(t.runs["standard"]), ["Layer-wise collapse"],
                  ["NC1 over training", "NC2: ETF distance over training", "NCC accuracy over training",
                   "NC1 at the end", "NC2: ETF distance at the end", "NCC accuracy at the end"]),
    "optimizers": (lambda t: figures.optimizers(t.runs), ["Optimizer comparison"],
                   ["Train loss", "Train error", "Test accuracy", "NC1", "NC3", "NC2: ETF distance of means"]),
    "geometry": (lambda t: figures.geometry(t.runs["standard"], cache_dir=t.root),
                 ["Geometry at the end of training", "standard-s0", "seed 0 shown"], None),
    "ablation": (lambda t: figures.ablation(t.runs), ["Regime ablation"],
                 ["NC1: weight decay on / off", "NC3: weight decay on / off", "NC1: cross-entropy vs MSE loss",
                  "NC3: cross-entropy vs MSE loss"]),
    "ufm_imbalance": (lambda t: figures.ufm_imbalance(SWEEPS), ["UFM geometry under class imbalance", "seeds 0, 1"],
                      ["Mean pairwise cosine of rows", "ETF Gram distance", "Classifier norm ratio"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_figure_is_titled_labelled_and_saved(name, tiny, tmp_path):
    draw, words, panels = CASES[name]
    fig = draw(tiny)
    for word in words:
        assert word in fig.get_suptitle()
    if panels is not None:
        assert titles(fig) == panels
    panels_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert all(ax.get_ylabel() for ax in panels_axes)
    assert all(ax.get_xlabel() for ax in panels_axes if ax.get_subplotspec().is_last_row())
    assert fig.legends or name == "geometry"
    assert "nothing to draw" not in fig.get_suptitle() and "not drawn" not in fig.get_suptitle()
    assert_png(fig, tmp_path / f"{name}.png")


def test_bottom_rows_carry_the_epoch_axis(tiny):
    for fig in (figures.nc_metrics(tiny.runs["standard"]), figures.optimizers(tiny.runs)):
        assert [ax.get_xlabel() for ax in fig.axes] == [""] * 3 + ["epoch"] * 3


def test_training_figure_scales_and_legend(tiny):
    fig = figures.training(tiny.runs["standard"])
    loss, err = fig.axes
    assert loss.get_yscale() == "log" and err.get_yscale() == "symlog"
    labels = legend_labels(fig)
    assert labels[:2] == ["train", "test"] and "TPT" in labels[2]
    assert [ax.get_ylabel() for ax in fig.axes] == ["CE loss", "misclassified fraction"]


def test_nc_metrics_plots_means_and_classifier(tiny):
    fig = figures.nc_metrics(tiny.runs["standard"])
    assert [ax.get_yscale() for ax in fig.axes] == ["log"] * 5 + ["linear"]
    assert {"class means", "classifier rows W"} <= set(legend_labels(fig))
    nc1 = fig.axes[0]
    assert [t.get_text() for t in nc1.get_legend().get_texts()] == ["train features", "test features"]


def test_layerwise_depth_axis_ends_at_the_penultimate_layer(tiny):
    run = tiny.runs["standard"][0]
    fig = figures.layerwise(tiny.runs["standard"])
    depth_ax = fig.axes[3]
    names = [t.get_text() for t in depth_ax.get_xticklabels()]
    flat = [t.removesuffix(".flat") for t in run.taps() if not t.endswith(".pool")]
    assert names == flat + ["penultimate"]
    # The end-of-training profile's last point is the run's own penultimate NC1 (mean over the 2 seeds).
    (line,) = depth_ax.get_lines()
    expected = np.mean([r.final("train.nc1") for r in tiny.runs["standard"]])
    assert line.get_ydata()[-1] == pytest.approx(expected)
    assert legend_labels(fig) == names


def test_optimizer_legend_names_each_optimizer(tiny):
    labels = legend_labels(figures.optimizers(tiny.runs))
    for label in ("standard: SGD, lr 0.05", "adam: Adam, lr 0.001", "lbfgs: LBFGS, lr 1"):
        assert label in labels


def test_ablation_compares_with_the_default(tiny):
    fig = figures.ablation(tiny.runs)
    top, bottom = fig.axes[0], fig.axes[2]
    assert {line.get_label() for line in top.get_lines()} >= {"standard: wd 0.005, CE", "no-wd: wd 0, CE"}
    assert {line.get_label() for line in bottom.get_lines()} >= {"standard: wd 0.005, CE", "mse: wd 0.005, MSE"}


def test_end_geometry_from_the_final_weights(tiny):
    run = tiny.runs["standard"][0]
    g = figures.end_geometry(run, cache_dir=tiny.root)
    for key in ("means", "classifier"):
        assert np.allclose(g[key], g[key].T) and np.allclose(np.diag(g[key]), 1)
    assert np.allclose(np.diag(g["etf"]), 1) and np.allclose(g["etf"][0, 1:], -1 / 9)
    fig = figures.geometry(tiny.runs["standard"], cache_dir=tiny.root)
    assert np.array_equal(fig.axes[1].get_images()[0].get_array(), g["etf"])
    assert np.array_equal(fig.axes[0].get_images()[0].get_array(), g["means"])
    assert f"ETF distance {run.final('train.nc2_etf_distance'):.3g}" in fig.axes[0].get_title()
    assert f"NC3 {run.final('train.nc3'):.3g}" in fig.axes[3].get_title()


def test_band_is_the_mean_with_a_min_max_band():
    fig = Figure()
    ax = fig.add_subplot()
    items = [(np.array([0, 1, 2, 3]), np.array([1.0, 2, 3, 4])), (np.array([0, 1, 2]), np.array([3.0, 4, 5]))]
    assert figures.band(ax, items, lambda item: item, label="x", color="C0")
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [0, 1, 2] and list(line.get_ydata()) == [2, 3, 4]
    (poly,) = ax.collections
    ys = poly.get_paths()[0].vertices[:, 1]
    assert ys.min() == 1 and ys.max() == 5
    assert not figures.band(ax, items, lambda item: {}["missing"], label="y", color="C1")


def test_tpt_line_at_the_mean_of_the_seeds_that_reached_it():
    fig = Figure()
    ax = fig.add_subplot()
    runs = [SimpleNamespace(tpt_epoch=10), SimpleNamespace(tpt_epoch=20), SimpleNamespace(tpt_epoch=None)]
    figures.tpt_line(ax, runs)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [15, 15] and line.get_linestyle() == "--"
    assert line.get_label() == "TPT: epoch 15 (2/3 runs, 10-20)"
    figures.tpt_line(ax, runs[2:], name="adam")
    assert ax.get_lines()[-1].get_label() == "adam TPT not reached"


ALL = {
    "training": lambda runs, missing: figures.training(runs.get("standard", []), missing),
    "nc_metrics": lambda runs, missing: figures.nc_metrics(runs.get("standard", []), missing),
    "layerwise": lambda runs, missing: figures.layerwise(runs.get("standard", []), missing),
    "geometry": lambda runs, missing: figures.geometry(runs.get("standard", []), missing),
    "optimizers": lambda runs, missing: figures.optimizers(runs, missing),
    "ablation": lambda runs, missing: figures.ablation(runs, missing),
}


@pytest.mark.parametrize("name", list(ALL))
def test_missing_runs_give_a_figure_that_says_so(name, tmp_path):
    fig = ALL[name]({}, [RunId("standard", 0), RunId("standard", 1)])
    assert "nothing to draw (runs missing or failed)" in fig.get_suptitle()
    text = all_text(fig)
    assert "standard-s0 (not in the run store)" in text
    assert_png(fig, tmp_path / "missing.png")


@pytest.mark.parametrize("name", list(ALL))
def test_failed_runs_give_a_figure_that_says_so(name, tiny):
    runs = {n: [failed(r) for r in group] for n, group in tiny.runs.items()}
    fig = ALL[name](runs, [])
    assert "nothing to draw" in fig.get_suptitle()
    assert "standard-s0 (diverged: epoch 2: training loss nan)" in all_text(fig)


def test_a_failed_seed_is_left_out_and_named(tiny):
    ok, bad = tiny.runs["standard"]
    fig = figures.training([ok, failed(bad, "degenerate")], missing=[RunId("standard", 2)])
    title = fig.get_suptitle()
    assert "seed 0" in title and "seeds 0, 1" not in title
    assert "not drawn: standard-s2 (not in the run store); standard-s1 (degenerate: epoch 2" in title.replace("\n", " ")


def test_a_configuration_without_runs_is_named_in_a_comparison(tiny):
    runs = {"standard": tiny.runs["standard"], "adam": tiny.runs["adam"]}
    fig = figures.optimizers(runs, missing=[RunId("lbfgs", 0)])
    assert "lbfgs-s0 (not in the run store)" in fig.get_suptitle()
    fig = figures.optimizers(runs)
    assert "lbfgs (no runs)" in fig.get_suptitle()


def test_ufm_imbalance_without_sweeps_says_so():
    assert "nothing to draw" in figures.ufm_imbalance({}).get_suptitle()
