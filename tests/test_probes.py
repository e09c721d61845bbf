"""Tests for ncsim.probes: pairwise cosines of classifier rows, per-class test error, and the statistics of
classes a network never trained on, on exact matrices and on the shared tiny run (conftest.TINY)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncsim import metrics, probes
from ncsim.spec import RunSpec
from ncsim.store import Record
from ncsim.threads import limit_threads
from ncsim.train import train
from ncsim.trajectory import Trajectory

pytestmark = pytest.mark.usefixtures("no_home_cache", "single_thread")

HYPOTHESIS = settings(max_examples=50, deadline=None)
C = 10


@pytest.fixture
def env_data_cache(data_cache, monkeypatch):
    """The probes read the data from the default store root: point it at the session's data cache."""
    monkeypatch.setenv("NCSIM_CACHE", str(data_cache))
    return data_cache


@pytest.fixture(scope="module")
def run(tiny_record):
    return Trajectory(tiny_record)


@pytest.fixture(scope="module")
def source_run(data_cache):
    """A tiny 5-way network (classes 0-4), as the transfer preset's "source-5" at toy size."""
    spec = RunSpec(
        name="source", train_classes=5, epochs=2, train_size=200, width=12, eval_schedule="none", layer_schedule="none"
    )
    with limit_threads(1):
        return Trajectory(train(spec, cache_dir=data_cache))


def with_classifier(run: Trajectory, w: np.ndarray) -> Trajectory:
    arrays = {**run.record.arrays, "weights.classifier.weight": np.asarray(w, dtype=np.float32)}
    return Trajectory(Record(run.key, run.meta, arrays))


def pairwise_cosines(rows) -> list[float]:
    """cos(w_k, w_k') for k < k', one pair at a time."""
    return [float(a @ b / np.sqrt((a @ a) * (b @ b))) for a, b in itertools.combinations(np.asarray(rows, float), 2)]


def simplex(k: int) -> np.ndarray:
    """The K x K simplex ETF I - 11^T/K (rows of equal norm, pairwise cosine -1/(K-1))."""
    return np.eye(k) - np.ones((k, k)) / k


# --- mean_pairwise_cosine ------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_simplex_etf_rows_have_mean_cosine_minus_one_over_k_minus_one(k):
    assert probes.mean_pairwise_cosine(simplex(k)) == pytest.approx(-1 / (k - 1), rel=1e-12)


@HYPOTHESIS
@given(k=st.integers(2, 8), extra=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_rotated_and_rescaled_simplex_keeps_its_cosine(k, extra, seed):
    # Any orthogonal map into p >= K dimensions and any positive row scales leave every cosine.
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((k + extra, k + extra)))
    rows = simplex(k) @ q[:k] * rng.uniform(0.01, 100, size=(k, 1))
    assert probes.mean_pairwise_cosine(rows) == pytest.approx(-1 / (k - 1), rel=1e-9)


@HYPOTHESIS
@given(k=st.integers(2, 7), p=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_mean_pairwise_cosine_is_the_mean_over_pairs(k, p, seed):
    rows = np.random.default_rng(seed).standard_normal((k, p))
    assert probes.mean_pairwise_cosine(rows) == pytest.approx(np.mean(pairwise_cosines(rows)), rel=1e-9, abs=1e-12)


def test_identical_and_parallel_rows_have_cosine_one():
    row = np.array([0.3, -2.0, 1.5])
    assert probes.mean_pairwise_cosine([row, row, row]) == pytest.approx(1.0, rel=1e-15)
    assert probes.mean_pairwise_cosine([row, 2 * row, 1e-3 * row]) == pytest.approx(1.0, rel=1e-12)
    assert probes.mean_pairwise_cosine([row, -row]) == pytest.approx(-1.0, rel=1e-15)


def test_a_zero_row_is_degenerate():
    with pytest.raises(metrics.DegenerateFeaturesError, match="zero row"):
        probes.mean_pairwise_cosine([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("bad", [[[1.0, 2.0]], [1.0, 2.0, 3.0], np.ones((2, 2, 2))])
def test_fewer_than_two_rows_or_not_a_matrix_is_a_value_error(bad):
    with pytest.raises(ValueError, match="K >= 2 rows"):
        probes.mean_pairwise_cosine(bad)


# --- classifier_cosine ---------------------------------------------------------------------------------


def test_classifier_cosine_raw_and_centred_on_a_trained_run(run):
    w = run.weights()["classifier.weight"].astype(np.float64)
    classes = [5, 6, 7, 8, 9]
    raw, centred = probes.classifier_cosine(run, classes), probes.classifier_cosine(run, classes, centred=True)
    assert raw == pytest.approx(np.mean(pairwise_cosines(w[classes])), rel=1e-9)
    assert centred == pytest.approx(np.mean(pairwise_cosines((w - w.mean(0))[classes])), rel=1e-9)
    # centred over all C rows (not over the chosen ones): the subset's own mean would give another value
    assert centred != pytest.approx(np.mean(pairwise_cosines(w[classes] - w[classes].mean(0))), rel=1e-6)
    assert raw != pytest.approx(centred, rel=1e-6)


def test_classifier_cosine_of_a_simplex_classifier_is_minus_one_over_c_minus_one(run):
    # An ETF classifier (rows summing to 0, so that centring leaves them): -1/(C-1) raw and centred, on all
    # classes and on any subset.
    p = run.weights()["classifier.weight"].shape[1]
    etf = with_classifier(run, np.hstack([simplex(C), np.zeros((C, p - C))]))
    for classes in (range(C), [0, 3], [5, 6, 7, 8, 9]):
        for centred in (False, True):
            assert probes.classifier_cosine(etf, classes, centred) == pytest.approx(-1 / (C - 1), rel=1e-6)


def test_classifier_cosine_of_the_initialisation_reads_the_initial_weights(run):
    w0 = run.truncated(0).weights()["classifier.weight"].astype(np.float64)
    got = probes.classifier_cosine(run.truncated(0), range(C))
    assert got == pytest.approx(np.mean(pairwise_cosines(w0)), rel=1e-9)
    assert got != pytest.approx(probes.classifier_cosine(run, range(C)), rel=1e-6)


# --- class_test_error, class_signals ---------------------------------------------------------------------


def test_class_test_errors_average_to_the_recorded_test_error(run, env_data_cache):
    f = run.features("test")
    counts = np.bincount(f["y"], minlength=C)
    per_class = np.array([probes.class_test_error(run, [c]) for c in range(C)])
    assert probes.class_test_error(run, range(C)) == pytest.approx(counts @ per_class / counts.sum(), abs=1e-12)
    # The recorded column was computed from the same final weights: at most one float32 near-tie apart.
    assert abs(probes.class_test_error(run, range(C)) - run.final("test_error")) <= 1 / counts.sum() + 1e-12
    minority = [5, 6, 7, 8, 9]
    assert probes.class_test_error(run, minority) == pytest.approx(
        counts[minority] @ per_class[minority] / counts[minority].sum(), abs=1e-12
    )


def test_class_test_error_of_a_network_that_predicts_one_class(run, env_data_cache):
    # W = 0 with bias favouring class 3: every prediction is 3, so class 3 has error 0 and the others 1.
    arrays = {
        **run.record.arrays,
        "weights.classifier.weight": np.zeros_like(run.weights()["classifier.weight"]),
        "weights.classifier.bias": np.eye(C, dtype=np.float32)[3],
    }
    const = Trajectory(Record(run.key, run.meta, arrays))
    assert probes.class_test_error(const, [3]) == 0.0
    assert probes.class_test_error(const, [0, 1, 9]) == 1.0


@pytest.mark.parametrize("split, xs, ys", [("train", "x", "y"), ("test", "x_test", "y_test")])
def test_class_signals_are_the_full_splits_signals_of_the_classes_renumbered(
    source_run, clean_arrays, env_data_cache, split, xs, ys
):
    x, y = probes.class_signals(source_run, [5, 7, 8], split)
    keep = np.isin(clean_arrays[ys], [5, 7, 8])
    assert x.shape == (int(keep.sum()), 1, clean_arrays[xs].shape[1]) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], clean_arrays[xs][keep])
    np.testing.assert_array_equal(y, np.select([clean_arrays[ys][keep] == c for c in (5, 7, 8)], [0, 1, 2]))


def test_class_signals_of_train_ignore_the_runs_subset(source_run, clean_arrays, env_data_cache):
    # source_run trained on 200 signals of classes 0-4; the probe's train signals are all of MNIST-1D's.
    x, _ = probes.class_signals(source_run, [0], "train")
    assert len(x) == int((clean_arrays["y"] == 0).sum()) > 200 / 5


# --- new_class_statistics -----------------------------------------------------------------------------


def test_new_class_statistics_are_the_cdnv_and_few_shot_error_of_the_held_out_classes(
    source_run, clean_arrays, env_data_cache
):
    new = (5, 6, 7, 8, 9)
    s = probes.new_class_statistics(source_run, new, 3, 4)
    assert source_run.weights()["classifier.weight"].shape[0] == 5
    train_keep, test_keep = clean_arrays["y"] >= 5, clean_arrays["y_test"] >= 5
    hs = source_run.embed(clean_arrays["x"][train_keep][:, None])
    hq = source_run.embed(clean_arrays["x_test"][test_keep][:, None])
    ys, yq = clean_arrays["y"][train_keep] - 5, clean_arrays["y_test"][test_keep] - 5
    assert s["cdnv"] == pytest.approx(metrics.collapse_metrics(hq, yq)["cdnv"], rel=1e-12)
    assert s["few_shot_error"] == pytest.approx(
        metrics.few_shot_ncc_error(hs, ys, hq, yq, shots=3, episodes=4, seed=source_run.spec.seed), abs=1e-15
    )
    assert 0 < s["few_shot_error"] < 0.8  # better than chance (4/5) even for a barely trained network


def test_new_class_statistics_of_the_initialisation_differ_from_the_trained_networks(source_run, env_data_cache):
    trained = probes.new_class_statistics(source_run, (5, 6, 7, 8, 9), 3, 4)
    initial = probes.new_class_statistics(source_run.truncated(0), (5, 6, 7, 8, 9), 3, 4)
    assert set(trained) == set(initial) == {"cdnv", "few_shot_error"}
    assert trained["cdnv"] != pytest.approx(initial["cdnv"], rel=1e-6)


def test_class_signals_label_by_position_in_the_order_given(run, env_data_cache):
    x, y = probes.class_signals(run, [9, 5], "test")
    x5, _ = probes.class_signals(run, [5], "test")
    x9, _ = probes.class_signals(run, [9], "test")
    assert set(np.unique(y)) == {0, 1}
    np.testing.assert_array_equal(x[y == 1], x5)
    np.testing.assert_array_equal(x[y == 0], x9)
