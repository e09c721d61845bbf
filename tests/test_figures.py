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

import claims.test_minority_collapse as minority_claim
import claims.test_new_classes as new_classes_claim
from ncsim import checks, data, figures, probes, suite
from ncsim.store import Record, RunStore
from ncsim.suite import RunId, obtain_run
from ncsim.threads import limit_threads
from ncsim.trajectory import Trajectory
from ncsim.verdict import Verdict

TINY = {"epochs": 3, "train_size": 400, "width": 12, "layer_schedule": "every:1", "eval_schedule": "all"}
TINY_SEEDS = {
    "standard": (0, 1),
    "adam": (0,),
    "adamw": (0,),
    "lbfgs": (0,),
    "no-wd": (0,),
    "mse": (0,),
    "etf-classifier": (0,),
    "label-smoothing": (0,),
    "focal": (0,),
    "label-noise": (0,),
    "label-noise-ls": (0,),
    "wd-half": (0,),
    "wd-fifth": (0,),
    "wd-tenth": (0,),
    "imbalance-10": (0, 1),
    "imbalance-100": (0, 1),
    "source-5": (0, 1),
}


@dataclass
class TinyRuns:
    root: Path  # the store (and its MNIST-1D arrays)
    runs: dict[str, list[Trajectory]]  # configuration name -> trajectories over seeds


_TRAINED: list[TinyRuns] = []


def tiny_runs(tmp_path_factory, data_cache) -> TinyRuns:
    """The tiny runs, trained on first use in this process (both test modules share them)."""
    if not _TRAINED:
        root = tmp_path_factory.mktemp("figures-store")
        shutil.copytree(data_cache / "data", root / "data")
        store = RunStore(root)
        # The tiny runs stand in for the suite's runs, and the figures show them under the configurations'
        # names (obtain_run names them apart, as runs that differ from the configurations).
        specs = {
            name: [suite.config(name, seed).replace(**TINY) for seed in seeds] for name, seeds in TINY_SEEDS.items()
        }
        with limit_threads(1):
            runs = {
                name: [Trajectory(obtain_run(spec, store).record, spec, data_cache=root) for spec in group]
                for name, group in specs.items()
            }
        _TRAINED.append(TinyRuns(root, runs))
    return _TRAINED[0]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, data_cache) -> TinyRuns:
    return tiny_runs(tmp_path_factory, data_cache)


@pytest.fixture
def probe_cache(tiny, monkeypatch) -> Path:
    """ncsim.probes reads the MNIST-1D arrays from the default store (NCSIM_CACHE): here the tiny store,
    which holds them, so that the imbalance and transfer figures neither regenerate them nor reach ~/.cache."""
    monkeypatch.setenv("NCSIM_CACHE", str(tiny.root))
    return tiny.root


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


def on_bottom_row(fig: Figure, ax) -> bool:
    """Whether `ax` is in the figure's last row of panels (that of its last row of subfigures, if any)."""
    sub = ax.get_figure(root=False)
    return ax.get_subplotspec().is_last_row() and (sub is fig or sub is fig.subfigs[-1])


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def assert_png(fig: Figure, path: Path) -> None:
    """Saved, non-empty, about 800 px wide, not blank."""
    figures.save(fig, path)
    assert path.stat().st_size > 5000
    pixels = imread(path)
    assert 780 <= pixels.shape[1] <= 820
    assert pixels[..., :3].std() > 0.01


SWEEP = {
    "R": np.array([1.0, 2, 5, 10]),
    "minority_cos": np.array([-1 / 3, -0.2, 0.1, 0.9]),
    "majority_cos": np.array([-1 / 3, -0.5, -0.7, -0.9]),
    "minority_norm_ratio": np.array([1, 0.8, 0.6, 0.3]),
    "means_etf_distance": np.array([0, 0.3, 0.6, 0.9]),
    "w_etf_distance": np.array([0, 0.2, 0.5, 0.8]),
}
SWEEPS = {0: SWEEP, 1: {**SWEEP, "minority_cos": SWEEP["minority_cos"] + 0.05}}

# name -> (draw(tiny runs), words the suptitle holds, panel titles)
CASES = {
    "training": (
        lambda t: figures.training(t.runs["standard"]),
        ["Training dynamics", "seeds 0, 1"],
        ["Loss (log scale)", "Error (symlog scale, 0 drawn)"],
    ),
    "nc_metrics": (
        lambda t: figures.nc_metrics(t.runs["standard"]),
        ["NC1-NC4", "train set"],
        [
            "NC1: within-class variability",
            "NC2: equinorm",
            "NC2: equiangularity",
            "NC2: max-angle",
            "NC3: self-duality",
            "NC4: nearest class centre",
        ],
    ),
    "layerwise": (
        lambda t: figures.layerwise(t.runs["standard"]),
        ["Layer-wise collapse"],
        [
            "NC1 over training",
            "NC2: ETF distance over training",
            "NCC accuracy over training",
            "NC1 at the end",
            "NC2: ETF distance at the end",
            "NCC accuracy at the end",
        ],
    ),
    "optimizers": (
        lambda t: figures.optimizers(t.runs),
        ["Optimizer comparison"],
        ["Train loss", "Train error", "Test accuracy", "NC1", "NC3", "NC2: ETF distance of means"],
    ),
    "geometry": (
        lambda t: figures.geometry(t.runs["standard"], cache_dir=t.root),
        ["Geometry at the end of training", "standard-s0", "deviation from the simplex ETF", "seed 0 shown"],
        None,
    ),
    "ablation": (
        lambda t: figures.ablation(t.runs),
        ["Regime ablation"],
        ["NC1", "NC3", "W vs ridge", "Test error"] * 3,
    ),
    "losses": (
        lambda t: figures.losses(t.runs),
        ["All losses collapse", "seeds 0, 1"],
        ["NC1", "NC3", "W vs ridge", "Test error"] * 3,
    ),
    "label_noise": (
        lambda t: figures.label_noise(t.runs),
        ["Collapse under label noise", "given (noisy) labels"],
        ["NC1", "NC3", "Train error", "Test error"] * 2,
    ),
    "weight_decay": (
        lambda t: figures.weight_decay(t.runs),
        ["Weight-decay dose-response", "seeds 0, 1"],
        ["NC1", "NC3", "NC2: ETF distance of means", "Test error"],
    ),
    "imbalance": (
        lambda t: figures.imbalance(t.runs),
        ["Minority collapse under class imbalance", "seeds 0, 1"],
        ["Minority classifier rows 5-9", "Test error by class group"],
    ),
    "transfer": (
        lambda t: figures.transfer(t.runs),
        ["Collapse on new classes", "classes 5-9 unseen by source-5", "seeds 0, 1"],
        ["CDNV of classes 5-9 (log scale)", "5-shot nearest-class-centre error\n(200 episodes)"],
    ),
    "ufm_imbalance": (
        lambda t: figures.ufm_imbalance(SWEEPS),
        ["UFM geometry under class imbalance", "seeds 0, 1"],
        ["Mean pairwise cosine of rows", "Distance to the ETF and to SELI", "Classifier norm ratio"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_figure_is_titled_labelled_and_saved(name, tiny, probe_cache, tmp_path):
    draw, words, panels = CASES[name]
    fig = draw(tiny)
    for word in words:
        assert word in fig.get_suptitle()
    if panels is not None:
        assert titles(fig) == panels
    panels_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert all(ax.get_ylabel() for ax in panels_axes)
    assert all(ax.get_xlabel() for ax in panels_axes if on_bottom_row(fig, ax))
    assert fig.legends or name == "geometry"
    assert "nothing to draw" not in fig.get_suptitle() and "not drawn" not in fig.get_suptitle()
    assert_png(fig, tmp_path / f"{name}.png")


def test_bottom_rows_carry_the_epoch_axis(tiny):
    for fig in (figures.nc_metrics(tiny.runs["standard"]), figures.optimizers(tiny.runs)):
        assert [ax.get_xlabel() for ax in fig.axes] == [""] * 3 + ["epoch"] * 3


def tpt_legend(runs) -> list[str]:
    """The legend entries tpt_marks gives these runs."""
    return [
        f"{what}: "
        + ", ".join(f"s{r.spec.seed} {'never' if getattr(r, attr) is None else getattr(r, attr)}" for r in runs)
        for attr, _, what in figures.TPT_MARKS
    ]


def test_training_figure_scales_and_legend(tiny):
    runs = tiny.runs["standard"]
    fig = figures.training(runs)
    loss, err = fig.axes
    assert loss.get_yscale() == "log" and err.get_yscale() == "symlog" and err.get_ylim()[0] == 0
    assert legend_labels(fig) == ["train", "test"] + tpt_legend(runs)
    assert [ax.get_ylabel() for ax in fig.axes] == ["CE loss", "misclassified fraction"]


def test_log_axes_draw_the_geometric_mean_over_seeds(tiny):
    runs = tiny.runs["standard"]
    loss, err = figures.training(runs).axes
    train = np.array([r["train_loss"] for r in runs])
    assert np.allclose(loss.get_lines()[0].get_ydata(), np.exp(np.log(train).mean(0)))
    assert np.allclose(err.get_lines()[0].get_ydata(), np.mean([r["train_error"] for r in runs], 0))


def test_nc_metrics_plots_means_and_classifier(tiny):
    fig = figures.nc_metrics(tiny.runs["standard"])
    assert [ax.get_yscale() for ax in fig.axes] == ["log"] * 5 + ["symlog"]  # NC4: 0 for long stretches
    nc4 = fig.axes[5]
    assert nc4.get_ylim()[0] == 0 and nc4.get_yaxis().get_transform().linthresh == 1e-3
    assert {"class means", "classifier rows W"} <= set(legend_labels(fig))
    nc1 = fig.axes[0]
    assert [t.get_text() for t in nc1.get_legend().get_texts()] == ["train features", "test features"]


def test_layerwise_depth_axis_ends_at_the_penultimate_layer(tiny):
    run = tiny.runs["standard"][0]
    fig = figures.layerwise(tiny.runs["standard"])
    depth_ax = fig.axes[3]
    names = [t.get_text() for t in depth_ax.get_xticklabels()]
    flat = [t.removesuffix(".flat") for t in run.taps() if t.endswith(".flat")]
    assert names == flat + ["penultimate"]  # the layers with parameters: no pooling tap
    # The end-of-training profile's last point is the runs' own penultimate NC1 (geometric mean over the
    # 2 seeds: NC1 is drawn on a log axis).
    (line,) = depth_ax.get_lines()
    expected = np.exp(np.mean([np.log(r.final("train.nc1")) for r in tiny.runs["standard"]]))
    assert line.get_ydata()[-1] == pytest.approx(expected)
    assert legend_labels(fig) == names


def test_layerwise_epochs_are_on_a_log_axis_that_keeps_initialisation(tiny):
    fig = figures.layerwise(tiny.runs["standard"])
    for ax in fig.axes[:3]:
        assert ax.get_xscale() == "symlog" and ax.get_xaxis().get_transform().linthresh == 1
        assert "0 = initialisation" in ax.get_xlabel()
        assert min(line.get_xdata()[0] for line in ax.get_lines()) == 0  # epoch 0 is drawn, not cut off
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "linear", "linear"] * 2


def test_optimizer_legend_names_each_optimizer(tiny):
    labels = legend_labels(figures.optimizers(tiny.runs))
    for label in ("standard: SGD, lr 0.05", "adam: Adam, lr 0.001", "adamw: AdamW, lr 0.001", "lbfgs: LBFGS, lr 0.1"):
        assert label in labels


def test_ablation_compares_with_the_default(tiny):
    fig = figures.ablation(tiny.runs)
    rows = [fig.axes[0], fig.axes[4], fig.axes[8]]  # the NC1 panel of each contrast's row
    wants = [
        {"standard: wd 0.005, CE, learned W", "no-wd: wd 0, CE, learned W"},
        {"standard: wd 0.005, CE, learned W", "mse: wd 0.005, MSE, learned W"},
        {"standard: wd 0.005, CE, learned W", "etf-classifier: wd 0.005, CE, etf W"},
    ]
    for ax, want in zip(rows, wants):
        assert {line.get_label() for line in ax.get_lines()} >= want


def test_contrast_figures_name_what_distinguishes_their_configurations(tiny):
    wants = {
        figures.losses: [
            {"standard: CE", "label-smoothing: CE, label smoothing α 0.1"},
            {"standard: CE", "focal: focal loss, γ 3"},
            {"standard: CE", "mse: MSE"},
        ],
        figures.label_noise: [
            {"standard: clean labels, CE", "label-noise: 20% label noise, CE"},
            {"standard: clean labels, CE", "label-noise-ls: 20% label noise, CE, label smoothing α 0.1"},
        ],
    }
    for draw, rows in wants.items():
        fig = draw(tiny.runs)
        ncols = fig.axes[0].get_subplotspec().get_gridspec().ncols
        for ax, want in zip(fig.axes[::ncols], rows):
            assert {line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")} >= want


def test_label_noise_draws_the_train_error_on_the_noisy_labels(tiny):
    fig = figures.label_noise(tiny.runs)
    train_error = fig.axes[2]
    assert train_error.get_yscale() == "symlog" and train_error.get_ylim()[0] == 0
    (noisy,) = [line for line in train_error.get_lines() if line.get_label().startswith("label-noise:")]
    assert np.allclose(noisy.get_ydata(), tiny.runs["label-noise"][0]["train_error"])


def test_a_contrast_table_with_an_unknown_panel_is_an_error(monkeypatch):
    table = suite.table()
    bad = {**table, "figures": {**table["figures"], "losses": {**table["figures"]["losses"], "panels": ["nc9"]}}}
    monkeypatch.setattr(suite, "table", lambda: bad)
    with pytest.raises(KeyError, match="nc9"):
        figures.contrast_table("losses")


DOSES = {"no-wd": 0.0, "wd-tenth": 5e-4, "wd-fifth": 1e-3, "wd-half": 2.5e-3, "standard": 5e-3}


def test_weight_decay_draws_end_values_against_the_dose(tiny):
    fig = figures.weight_decay(tiny.runs)
    assert [ax.get_yscale() for ax in fig.axes] == ["log"] * 3 + ["linear"]
    for ax, (_, column, _, log) in zip(fig.axes, figures.DOSE_PANELS):
        assert ax.get_xscale() == "symlog" and ax.get_xaxis().get_transform().linthresh == 1e-4
        assert list(ax.get_xticks()) == list(DOSES.values())
        assert ax.get_xlim()[0] < 0  # lambda = 0 is drawn inside the axis, not on its edge
        (centres,) = [line for line in ax.get_lines() if line.get_label().endswith("over seeds")]
        assert list(centres.get_xdata()) == list(DOSES.values())
        ends = [[r.final(column) for r in tiny.runs[name]] for name in DOSES]
        want = [np.exp(np.log(v).mean()) if log else np.mean(v) for v in ends]
        assert centres.get_ydata() == pytest.approx(want)
        seeds = [line for line in ax.get_lines() if line.get_label().startswith("_") and len(line.get_xdata())]
        assert [len(line.get_xdata()) for line in seeds] == [len(v) for v in ends]  # one point per seed
    for ax in fig.axes[2:]:  # the bottom row names each dose's configuration
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{d:g} {name}" for name, d in DOSES.items()]
        assert "symlog" in ax.get_xlabel() and "0 is drawn" in ax.get_xlabel()
    assert {"one seed", "geometric mean over seeds", "mean over seeds"} <= set(legend_labels(fig))


def test_weight_decay_leaves_a_missing_dose_out_and_names_it(tiny):
    runs = {name: tiny.runs[name] for name in ("standard", "wd-half", "no-wd")}
    fig = figures.weight_decay(runs, [RunId("wd-fifth", 0)])
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["0 no-wd", "0.0025 wd-half", "0.005 standard"]
    title = fig.get_suptitle().replace("\n", " ")
    assert "wd-fifth-s0 (not in the run store)" in title and "wd-tenth (no runs)" in title


def test_imbalance_draws_the_probes_against_R(tiny, probe_cache):
    fig = figures.imbalance(tiny.runs)
    cos_ax, err_ax = fig.axes
    names = ["standard", "imbalance-10", "imbalance-100"]
    assert cos_ax.get_xscale() == "log" and [t.get_text() for t in cos_ax.get_xticklabels()] == [
        "1\nstandard",
        "10\nimbalance-10",
        "100\nimbalance-100",
    ]
    minority, majority = tuple(range(5, 10)), tuple(range(5))
    assert minority == minority_claim.MINORITY  # the classes the claim checks

    def means(ax, label):
        (line,) = [line for line in ax.get_lines() if line.get_label() == label]
        assert list(line.get_xdata()) == [1, 10, 100]
        return line.get_ydata()

    for centred, what in ((False, "raw rows"), (True, "rows centred by their mean")):
        want = [np.mean([probes.classifier_cosine(r, minority, centred) for r in tiny.runs[n]]) for n in names]
        assert means(cos_ax, f"minority rows: {what}") == pytest.approx(want)
    for classes, what in ((minority, "minority classes 5-9"), (majority, "majority classes 0-4")):
        want = [np.mean([probes.class_test_error(r, classes) for r in tiny.runs[n]]) for n in names]
        assert means(err_ax, what) == pytest.approx(want)
    flat = {
        line.get_label(): line.get_ydata()[0]
        for line in cos_ax.get_lines()
        if len(set(line.get_ydata())) == 1 and not line.get_label().startswith("_")
    }
    assert flat["simplex ETF: −1/(C−1) = -0.111"] == pytest.approx(-1 / 9) and flat["collapsed: 1"] == 1
    seed_points = [line for line in cos_ax.get_lines() if line.get_label().startswith("_") and line.get_marker() == "o"]
    assert [len(line.get_xdata()) for line in seed_points] == [2, 2, 2]  # one point per seed at each R


def test_transfer_draws_new_class_statistics_of_three_networks(tiny, probe_cache):
    assert suite.new_class_probe("source-5") == (
        new_classes_claim.NEW_CLASSES,
        new_classes_claim.SHOTS,
        new_classes_claim.EPISODES,
    )  # the claim's probe
    fig = figures.transfer(tiny.runs)
    cdnv_ax, ncc_ax = fig.axes
    assert cdnv_ax.get_yscale() == "log"
    assert [t.get_text() for t in cdnv_ax.get_xticklabels()] == [
        "untrained\n(source-5 at epoch 0)",
        "trained on classes\n0-4 (source-5)",
        "trained on all\nclasses (standard)",
    ]
    source, seen = tiny.runs["source-5"], tiny.runs["standard"]
    networks = [[r.truncated(0) for r in source], source, seen]
    for ax, key, log in ((cdnv_ax, "cdnv", True), (ncc_ax, "few_shot_error", False)):
        aggregates = [
            line.get_ydata()[0]
            for line in ax.get_lines()
            if line.get_marker() == "o" and line.get_markersize() == 6 and len(line.get_xdata())
        ]
        want = []
        for runs in networks:
            v = np.array([probes.new_class_statistics(r, (5, 6, 7, 8, 9), 5, 200)[key] for r in runs])
            want.append(np.exp(np.log(v).mean()) if log else v.mean())
        assert aggregates == pytest.approx(want)
    assert any(line.get_label() == "chance: 1 − 1/5" for line in ncc_ax.get_lines())


def test_transfer_without_the_source_runs_draws_the_seen_network_and_says_so(tiny, probe_cache):
    fig = figures.transfer({"standard": tiny.runs["standard"]}, [RunId("source-5", 0)])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["trained on all\nclasses (standard)"]
    assert "not drawn: source-5-s0 (not in the run store)" in fig.get_suptitle().replace("\n", " ")


def test_imbalance_leaves_a_stopped_run_out_and_names_it(tiny, probe_cache):
    runs = {**tiny.runs, "imbalance-100": [failed(r) for r in tiny.runs["imbalance-100"]]}
    fig = figures.imbalance(runs)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1\nstandard", "10\nimbalance-10"]
    assert "imbalance-100-s0 (diverged: epoch 2: training loss nan)" in fig.get_suptitle().replace("\n", " ")


def test_tiny_runs_keep_the_classes_the_figures_read(tiny, probe_cache):
    for name in ("imbalance-10", "imbalance-100"):  # every minority class keeps a train signal
        y = data.load(tiny.runs[name][0].spec, tiny.root).y.numpy()
        assert set(np.unique(y)) == set(range(10)) and min(np.bincount(y)[5:]) >= 1
    run = tiny.runs["source-5"][0]
    assert set(np.unique(data.load(run.spec, tiny.root).y.numpy())) == set(range(5))  # trained on 0-4 only
    for split in ("train", "test"):  # the new classes' signals come from the full data set, enough for 5 shots
        _, y = probes.class_signals(run, range(5, 10), split)
        assert min(np.bincount(y, minlength=5)) >= 5


def test_geometry_shows_the_deviation_from_the_etf_on_a_tight_symmetric_scale(tiny):
    run = tiny.runs["standard"][0]
    g = figures.end_geometry(run, cache_dir=tiny.root)  # from the final weights
    for key in ("means", "classifier"):
        assert np.allclose(g[key], g[key].T) and np.allclose(np.diag(g[key]), 1)
    assert np.allclose(np.diag(g["etf"]), 1) and np.allclose(g["etf"][0, 1:], -1 / 9)
    fig = figures.geometry(tiny.runs["standard"], cache_dir=tiny.root)
    panels, colorbar = fig.axes[:3], fig.axes[3]
    images = [ax.get_images()[0] for ax in panels]
    for image, key in zip(images, ("means", "classifier", "cross")):
        assert np.allclose(image.get_array(), g[key] - g["etf"])
        assert image.get_cmap().name == "RdBu_r"
    largest = max(np.abs(g[key] - g["etf"]).max() for key in ("means", "classifier", "cross"))
    for image in images:  # one scale, symmetric about 0 (the ETF), as tight as the largest deviation
        assert (image.norm.vmin, image.norm.vmax) == pytest.approx((-largest, largest))
    assert largest < 1  # a cosine deviates from the ETF by less than the -1..1 range of the cosines
    assert "cosine − ETF value" in colorbar.get_ylabel()
    assert f"ETF distance {run.final('train.nc2_etf_distance'):.3g}" in panels[0].get_title()
    assert f"NC3 {run.final('train.nc3'):.3g}" in panels[2].get_title()


def test_band_is_the_mean_or_geometric_mean_with_a_min_max_band():
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
    log_ax = fig.add_subplot()  # on a log axis: the geometric mean
    figures.log_scale(log_ax)
    items = [(np.array([0, 1]), np.array([1e-3, 1.0])), (np.array([0, 1]), np.array([1e-1, 4.0]))]
    figures.band(log_ax, items, lambda item: item, label="x", color="C0")
    assert np.allclose(log_ax.get_lines()[0].get_ydata(), [1e-2, 2.0])


def run_with(seed, tpt, first):
    return SimpleNamespace(
        tpt_epoch=tpt,
        first_zero_error_epoch=first,
        label=f"standard-s{seed}",
        spec=SimpleNamespace(name="standard", seed=seed),
    )


def test_tpt_marks_every_seeds_stable_tpt_and_first_zero_error_epoch():
    fig = Figure()
    ax = fig.add_subplot()
    runs = [run_with(0, 12, 8), run_with(1, 20, 20), run_with(2, None, 15), run_with(3, None, None)]
    figures.tpt_marks(ax, runs)
    marks = [(line.get_xdata()[0], line.get_linestyle()) for line in ax.get_lines() if len(line.get_xdata())]
    assert marks == [(12, "--"), (20, "--"), (8, ":"), (20, ":"), (15, ":")]
    assert all(line.get_linewidth() < 1 for line in ax.get_lines())
    assert ax.get_legend_handles_labels()[1] == [
        "stable TPT: s0 12, s1 20, s2 never, s3 never",
        "first zero train error: s0 8, s1 20, s2 15, s3 never",
    ]
    figures.tpt_marks(ax, runs[3:], color="C1", name="adam")
    assert ax.get_legend_handles_labels()[1][2:] == [
        "adam stable TPT: s3 never",
        "adam first zero train error: s3 never",
    ]


ALL = {
    "training": lambda runs, missing: figures.training(runs.get("standard", []), missing),
    "nc_metrics": lambda runs, missing: figures.nc_metrics(runs.get("standard", []), missing),
    "layerwise": lambda runs, missing: figures.layerwise(runs.get("standard", []), missing),
    "geometry": lambda runs, missing: figures.geometry(runs.get("standard", []), missing),
    "optimizers": lambda runs, missing: figures.optimizers(runs, missing),
    "ablation": lambda runs, missing: figures.ablation(runs, missing),
    "losses": lambda runs, missing: figures.losses(runs, missing),
    "label_noise": lambda runs, missing: figures.label_noise(runs, missing),
    "weight_decay": lambda runs, missing: figures.weight_decay(runs, missing),
    "imbalance": lambda runs, missing: figures.imbalance(runs, missing),
    "transfer": lambda runs, missing: figures.transfer(runs, missing),
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


# --- the verdict figure: check records as ncsim.checks.decide makes them (test_report.py uses them too) --


def tol(name, value, op="<=", rule="mean", scale="log") -> checks.Tolerance:
    return checks.Tolerance(
        name=name,
        value=value,
        op=op,
        statistic=f"the statistic of {name}",
        source="Papyan, Han & Donoho, PNAS 2020, Fig. 6",
        calibration="",
        rule=rule,
        scale=scale,
    )


NC1_END = tol("nc1_end_max", 0.05)
NC1_FALL = tol("nc1_tpt_over_end_min", 3.0, ">=")
TREND = tol("nc1_post_tpt_trend_max", -0.8, scale="linear")
TPT_FRACTION = tol("tpt_fraction_max", 0.8, rule="every")
WL_NC3 = tol("wl_cnn_nc3_max", 0.05)
WL_NC4 = tol("wl_cnn_nc4_max", 0.0, rule="every")
RATIO = tol("optimizer_nc1_ratio_within", 3.0, "within", "equivalence")
UFM_GRAD = tol("ufm_grad_norm_max", 1e-6, rule="every")


def ufm_check(tolerance=UFM_GRAD, value=1e-9, seed=0, run="ufm-mse-adam") -> Verdict:
    """The record claim_check(...) makes of one value of a UFM claim."""
    return checks.decide(
        tolerance,
        [value],
        claim="test_ufm_mse",
        case="x",
        seeds=[seed],
        runs=[run],
        run=run,
        config=None,
        note="",
        figures=[],
    )


def check(
    tolerance=NC1_END,
    values=(2.4e-3, 2.2e-3, 2.5e-3),
    config="standard",
    claim="test_nc1_variability",
    against=None,
    figures=(),
    note="",
) -> Verdict:
    """The record claim_check.of makes of a check decided over seeds 0, 1, 2 of `config`."""
    return checks.decide(
        tolerance,
        values,
        claim=claim,
        case=f"{config}-{tolerance.name}",
        config=config,
        seeds=[0, 1, 2][: len(values)],
        runs=[f"{config}-s{s}" for s in range(len(values))],
        against=against,
        note=note,
        figures=list(figures),
    )


RECORDS = [  # ratio panel: one holds, one fails; equivalence; difference panel: linear, threshold 0; a UFM check
    check(),
    check(NC1_FALL, (1.2, 1.5, 1.1)),
    check(RATIO, (15.6, 38.3, 20.0), "lbfgs", "test_optimizer_invariance", "standard"),
    check(TREND, (-0.99, -0.5, -0.95)),
    check(WL_NC4, (0.0, 0.0, 0.0), claim="test_webb_lowe_cnn"),
    ufm_check(),
]


def panels(fig: Figure) -> dict:
    """Each panel of the verdict figure by the start of its title: (axes, row labels, verdict labels)."""
    return {
        ax.get_title(loc="left").split(",")[0]: (
            ax,
            [t.get_text() for t in ax.get_yticklabels()],
            ax.child_axes[0].get_yticklabels(),
        )
        for ax in fig.axes
    }


def mark_lines(ax, marker: str, row: int) -> list:
    """The lines that draw the marks `marker` on a row of a panel (jittered seeds included)."""
    return [
        line
        for line in ax.get_lines()
        if line.get_marker() == marker and any(abs(y - row) < 0.3 for y in np.atleast_1d(line.get_ydata()))
    ]


def marks(ax, marker: str, row: int) -> list[float]:
    """x positions of the marks `marker` on a row of a panel."""
    return [
        float(x)
        for line in mark_lines(ax, marker, row)
        for x, y in zip(np.atleast_1d(line.get_xdata()), np.atleast_1d(line.get_ydata()))
        if abs(y - row) < 0.3
    ]


def test_verdict_figure_has_a_row_per_check_of_the_cnn_claims(tmp_path):
    fig = figures.verdicts(RECORDS)
    assert fig.get_suptitle().startswith("Verdicts over seeds\n5 checks of the CNN claims")
    assert "numerical UFM checks not drawn: 1" in fig.get_suptitle()
    found = panels(fig)
    assert list(found) == [
        "One-sided thresholds",
        "Equivalence to the reference configuration",
        "One-sided thresholds on linear statistics",
    ]
    assert found["One-sided thresholds"][1] == [
        f"{name} [standard]\nnc1_variability · one-sided bound, geometric mean"
        for name in ("nc1_end_max", "nc1_tpt_over_end_min")
    ]
    assert found["Equivalence to the reference configuration"][1] == [
        "optimizer_nc1_ratio_within [lbfgs]\noptimizer_invariance · TOST interval"
    ]
    assert [label.split("\n")[0] for label in found["One-sided thresholds on linear statistics"][1]] == [
        "nc1_post_tpt_trend_max [standard]",
        "wl_cnn_nc4_max [standard]",
    ]
    assert not any("ufm" in text for _, labels, _ in found.values() for text in labels)
    assert_png(fig, tmp_path / "verdicts.png")


def test_verdict_figure_draws_each_statistic_against_its_threshold():
    found = panels(figures.verdicts(RECORDS))
    ratio, equivalence, difference = (found[name][0] for name in found)
    for ax, reference in ((ratio, 1.0), (equivalence, 1.0), (difference, 0.0)):
        assert [reference, reference] in [list(line.get_xdata()) for line in ax.get_lines()]  # the threshold line
    assert ratio.get_xscale() == "log" and difference.get_xscale() == "symlog"
    end, fall = RECORDS[0], RECORDS[1]
    # "<=": value / threshold; ">=": threshold / value; left of 1 holds, right of it fails
    assert marks(ratio, "D", 0) == pytest.approx([end.measured / 0.05])
    assert marks(ratio, "|", 0) == pytest.approx([end.bound / 0.05]) and end.bound / 0.05 < 1
    assert marks(ratio, "D", 1) == pytest.approx([3.0 / fall.measured]) and 3.0 / fall.bound > 1
    assert sorted(marks(ratio, "o", 1)) == pytest.approx(sorted(3.0 / np.array([1.2, 1.5, 1.1])))
    # equivalence: the ratio itself, its 90% interval between two caps, the margins at 1/3 and 3
    assert marks(equivalence, "|", 0) == pytest.approx(RECORDS[2].interval)
    assert [1 / 3, 3.0] == pytest.approx(
        [line.get_xdata()[0] for line in equivalence.get_lines() if line.get_linestyle() == "--"]
    )
    # linear statistics and thresholds of 0: value - threshold
    assert marks(difference, "D", 0) == pytest.approx([RECORDS[3].measured + 0.8])
    assert marks(difference, "D", 1) == [0.0]


def test_verdict_figure_colours_rows_by_verdict():
    found = panels(figures.verdicts(RECORDS))
    rows = [(ax, i, label) for ax, _, labels in found.values() for i, label in enumerate(labels)]
    verdicts = [r.verdict for r in RECORDS[:2]] + [RECORDS[2].verdict] + [r.verdict for r in RECORDS[3:5]]
    assert verdicts == ["reproduces", "does not reproduce", "does not reproduce", "inconclusive", "reproduces"]
    for (ax, i, label), verdict in zip(rows, verdicts):
        colour = figures.VERDICT_COLOURS[verdict]
        assert label.get_text() == verdict and label.get_color() == colour
        (diamond,) = mark_lines(ax, "D", i)
        assert diamond.get_color() == colour
    labels = set(legend_labels(figures.verdicts(RECORDS)))
    assert set(figures.VERDICT_COLOURS) <= labels and "threshold (equivalence: ratio 1)" in labels


def test_verdict_figure_shows_non_finite_values_at_the_edge():
    strict = check(TPT_FRACTION, (0.5, float("inf"), float("nan")), "lbfgs")
    nothing = check(NC1_END, (float("nan"),) * 3)
    assert strict.values == (0.5, float("inf"), None) and nothing.measured is None
    as_json = Verdict.from_json({**strict.to_json(), "values": [0.5, "inf", None]})  # as verdicts.json writes it
    for records in ([strict, nothing], [as_json, nothing]):
        ax, labels, verdicts = panels(figures.verdicts(records, ["xfail", "passed"]))["One-sided thresholds"]
        right = ax.get_xlim()[1]
        assert marks(ax, "o", 0) == pytest.approx([0.5 / 0.8])
        # the inf seed and the median (inf too) at the right edge, the failing side, and so is the NaN seed
        (beyond, median), (missing,) = marks(ax, ">", 0), marks(ax, "x", 0)
        assert beyond == median == missing and right > beyond > 0.95 * right
        assert len(marks(ax, "x", 1)) == 3 and marks(ax, "D", 1) == []  # no aggregate: nothing to mark
        assert verdicts[0].get_text() == "does not reproduce\n(strict xfail, expected)"


def test_relative_places_left_as_holding():
    assert figures.relative(check(), [0.01, 0.1]) == pytest.approx([0.2, 2.0])
    assert list(figures.relative(check(NC1_FALL), [6.0, 0.0, -1.0])) == [0.5, np.inf, np.inf]
    assert list(figures.relative(check(tol("x", 0.5)), [-1.0])) == [0.0]
    assert figures.relative(check(TREND), [-0.9, "inf", None])[:2] == pytest.approx([-0.1, np.inf])
    assert figures.relative(check(tol("x", 0.0, ">", scale="linear")), [0.01]) == pytest.approx([-0.01])
    assert figures.relative(check(RATIO), [2.0]) == pytest.approx([2.0])
    assert [figures.verdict_panel(check(t)) for t in (NC1_END, RATIO, TREND, WL_NC4)] == [
        "ratio",
        "equivalence",
        "difference",
        "difference",
    ]


def test_verdict_figure_grows_with_its_rows():
    few, many = (figures.verdicts([check()] * n) for n in (4, 40))
    assert many.get_figheight() - few.get_figheight() == pytest.approx(36 * figures.ROW_HEIGHT)
    assert "nothing to draw" in figures.verdicts([ufm_check()]).get_suptitle()
