"""Tests for ncsim.data: MNIST-1D generation, its checksummed npz cache, subsetting and imbalance."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from ncsim import data, store
from ncsim.spec import RunSpec

pytestmark = pytest.mark.usefixtures("no_home_cache")

N_TRAIN, N_TEST, LENGTH, C = 4000, 1000, 40, 10


def assert_same_arrays(a: dict, b: dict):
    """Same names, dtypes, shapes and bytes."""
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


def cache_file(root):
    files = sorted((root / "data").glob("mnist1d-*.npz"))
    files = [f for f in files if ".corrupt-" not in f.name]
    assert len(files) == 1, files
    return files[0]


@pytest.fixture(scope="module")
def generation():
    """One call of generate() between seeded global RNGs: (state before, state after, arrays)."""
    random.seed(1234)
    np.random.seed(1234)
    random.random(), np.random.random(3)  # move off the freshly seeded state
    before = (random.getstate(), np.random.get_state())
    arrays = data.generate()
    after = (random.getstate(), np.random.get_state())
    return before, after, arrays


@pytest.fixture
def spy_generate(monkeypatch, clean_arrays):
    """Replace the generator by one returning copies of the clean arrays; counts its calls."""
    calls = []

    def fake(overrides=None):
        calls.append(overrides)
        return {k: v.copy() for k, v in clean_arrays.items()}

    monkeypatch.setattr(data, "generate", fake)
    return calls


@pytest.fixture
def no_generate(monkeypatch):
    def fail(overrides=None):
        raise AssertionError("generate() was called: the cache was not used")

    monkeypatch.setattr(data, "generate", fail)


# --- generation ------------------------------------------------------------------------------------


def test_generate_leaves_python_random_state_unchanged(generation):
    before, after, _ = generation
    assert after[0] == before[0]


def test_generate_leaves_numpy_global_state_unchanged(generation):
    (_, np_before), (_, np_after), _ = generation
    assert np_after[0] == np_before[0]
    np.testing.assert_array_equal(np_after[1], np_before[1])
    assert tuple(np_after[2:]) == tuple(np_before[2:])


def test_generate_is_deterministic(generation, clean_arrays):
    # clean_arrays came from another generate() call (the session cache).
    assert_same_arrays(generation[2], clean_arrays)


def test_generated_shapes_and_classes(clean_arrays):
    a = clean_arrays
    assert a["x"].shape == (N_TRAIN, LENGTH) and a["x_test"].shape == (N_TEST, LENGTH)
    assert a["y"].shape == (N_TRAIN,) and a["y_test"].shape == (N_TEST,)
    assert set(np.unique(a["y"])) == set(np.unique(a["y_test"])) == set(range(C))
    assert np.isfinite(a["x"]).all() and np.isfinite(a["x_test"]).all()


def test_train_class_sizes_are_those_of_mnist1d(clean_arrays):
    # NC_REFERENCE.md: MNIST-1D's train classes have 394-411 samples.
    counts = np.bincount(clean_arrays["y"])
    assert counts.min() == 394 and counts.max() == 411


def test_num_classes_is_that_of_the_mnist1d_templates(clean_arrays):
    from mnist1d.data import get_templates

    assert data.NUM_CLASSES == len(get_templates()["y"]) == len(np.unique(clean_arrays["y"]))
    assert data.Dataset(*[None] * 4).num_classes == data.NUM_CLASSES


def test_unknown_generator_argument_is_rejected():
    with pytest.raises(ValueError, match="no_such_arg"):
        data.generator_args({"no_such_arg": 1})


def test_generator_overrides_are_applied():
    args = data.generator_args({"seed": 7, "iid_noise_scale": 0.5})
    assert (args.seed, args.iid_noise_scale) == (7, 0.5)
    assert data.generator_args().seed == 42


# --- the npz cache ---------------------------------------------------------------------------------


def test_cache_file_holds_the_arrays_and_overrides(data_cache, clean_arrays):
    arrays, meta = store.read_npz(cache_file(data_cache))
    assert_same_arrays(arrays, clean_arrays)
    assert meta == {"overrides": {}}


def test_cached_arrays_reads_back_without_generating(cache_dir, clean_arrays, no_generate):
    assert_same_arrays(data.cached_arrays(cache_dir=cache_dir), clean_arrays)


def test_cached_arrays_writes_a_new_cache(tmp_path, clean_arrays, spy_generate):
    got = data.cached_arrays(cache_dir=tmp_path)
    assert len(spy_generate) == 1
    arrays, _ = store.read_npz(cache_file(tmp_path))
    assert_same_arrays(arrays, got)
    assert_same_arrays(data.cached_arrays(cache_dir=tmp_path), clean_arrays)
    assert len(spy_generate) == 1  # the second call read the file


def test_cache_of_a_spec_with_padding_is_reused(tmp_path, spy_generate):
    # The spec holds padding as a tuple, the cache file's JSON meta as a list: the same overrides.
    overrides = dict(RunSpec(data={"padding": [30, 50]}).data)
    data.cached_arrays(overrides, cache_dir=tmp_path)
    data.cached_arrays(overrides, cache_dir=tmp_path)
    data.cached_arrays({"padding": [30, 50]}, cache_dir=tmp_path)
    assert spy_generate == [{"padding": [30, 50]}]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_cache_file_is_created_0644_less_the_umask(tmp_path, spy_generate, umask, mode):
    before = os.umask(umask)
    try:
        data.cached_arrays(cache_dir=tmp_path)
    finally:
        os.umask(before)
    assert cache_file(tmp_path).stat().st_mode & 0o777 == mode


def test_each_set_of_overrides_has_its_own_cache_file(tmp_path, spy_generate):
    data.cached_arrays({"seed": 1}, cache_dir=tmp_path)
    data.cached_arrays({"seed": 2}, cache_dir=tmp_path)
    data.cached_arrays({"seed": 1}, cache_dir=tmp_path)
    assert spy_generate == [{"seed": 1}, {"seed": 2}]
    assert len(list((tmp_path / "data").glob("mnist1d-*.npz"))) == 2


def test_cache_defaults_to_ncsim_cache_env(data_cache, clean_arrays, monkeypatch, no_generate):
    monkeypatch.setenv("NCSIM_CACHE", str(data_cache))
    assert_same_arrays(data.cached_arrays(), clean_arrays)


def _truncate(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _flip_bytes(path):
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2  # inside the stored (uncompressed) x array
    raw[mid : mid + 8] = bytes(b ^ 0xFF for b in raw[mid : mid + 8])
    path.write_bytes(bytes(raw))


def _other_data(path):
    arrays, _ = store.read_npz(path)
    store.write_npz(path, arrays, {"overrides": {"seed": 99}})


def _check_corruption_recovery(root, damage, clean_arrays):
    path = cache_file(root)
    damage(path)
    damaged = path.read_bytes()
    with pytest.warns(store.CorruptRecordWarning, match="corrupt MNIST-1D cache"):
        got = data.cached_arrays(cache_dir=root)
    assert_same_arrays(got, clean_arrays)
    aside = list((root / "data").glob("mnist1d-*.corrupt-*.npz"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # moved aside, bytes kept
    assert_same_arrays(store.read_npz(path)[0], clean_arrays)  # a valid cache was rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_arrays(data.cached_arrays(cache_dir=root), clean_arrays)


def test_truncated_cache_is_moved_aside_and_regenerated(cache_dir, clean_arrays):
    # The real generator: the regenerated arrays equal a clean generation.
    _check_corruption_recovery(cache_dir, _truncate, clean_arrays)


@pytest.mark.parametrize("damage", [_flip_bytes, _other_data], ids=["flipped-bytes", "other-data"])
def test_damaged_cache_is_moved_aside_and_regenerated(cache_dir, clean_arrays, spy_generate, damage):
    _check_corruption_recovery(cache_dir, damage, clean_arrays)
    assert spy_generate == [{}]


RACE_WORKER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from ncsim import data, store

    root, clean, log, n = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    arrays, _ = store.read_npz(clean)

    def generate(overrides=None):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.2)
        return {k: v.copy() for k, v in arrays.items()}

    data.generate = generate
    (root / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while len(list(root.glob("ready-*"))) < n and time.monotonic() < deadline:  # start together
        time.sleep(0.002)
    got = data.cached_arrays(cache_dir=root)
    assert all(got[k].tobytes() == arrays[k].tobytes() for k in arrays), "wrong arrays"
""")


def test_processes_racing_on_a_corrupt_cache_regenerate_it_once(cache_dir, data_cache, clean_arrays, tmp_path):
    n = 4
    path = cache_file(cache_dir)
    _truncate(path)
    damaged, log = path.read_bytes(), tmp_path / "generate.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE_WORKER, str(cache_dir), str(cache_file(data_cache)), str(log), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert len(log.read_text().split()) == 1
    aside = list((cache_dir / "data").glob("mnist1d-*.corrupt-*.npz"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged
    assert_same_arrays(store.read_npz(path)[0], clean_arrays)


# --- subsetting and imbalance ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def y(data_cache):
    return data.cached_arrays(cache_dir=data_cache)["y"]


def test_full_set_is_kept_without_train_size_or_imbalance(y):
    np.testing.assert_array_equal(data.subset_indices(y, 0, 1.0, seed=0, num_classes=C), np.arange(len(y)))


@pytest.mark.parametrize("train_size", [100, 400, 1000, 3000])
def test_train_size_keeps_about_that_many_split_as_the_full_set(y, train_size):
    idx = data.subset_indices(y, train_size, 1.0, seed=0, num_classes=C)
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
    full, kept = np.bincount(y, minlength=C), np.bincount(y[idx], minlength=C)
    # Per class the share is rounded to the nearest sample: within 0.5 of train_size/N of the class.
    np.testing.assert_allclose(kept, full * train_size / len(y), atol=0.5 + 1e-9)
    assert abs(len(idx) - train_size) <= C / 2


def test_every_class_keeps_at_least_one_sample(y):
    idx = data.subset_indices(y, 1, 1.0, seed=0, num_classes=C)
    assert np.bincount(y[idx], minlength=C).tolist() == [1] * C


@pytest.mark.parametrize("ratio", [2.0, 4.0, 10.0])
def test_imbalance_keeps_one_in_r_of_the_upper_classes(y, ratio):
    idx = data.subset_indices(y, 0, ratio, seed=0, num_classes=C)
    full, kept = np.bincount(y, minlength=C), np.bincount(y[idx], minlength=C)
    np.testing.assert_array_equal(kept[: C // 2], full[: C // 2])  # majority: all kept
    np.testing.assert_allclose(kept[C // 2 :], full[C // 2 :] / ratio, atol=0.5 + 1e-9)
    # Overall the minority is ~1/R of the majority (class sizes differ by up to 4%: 5% tolerance).
    assert kept[C // 2 :].sum() / kept[: C // 2].sum() == pytest.approx(1 / ratio, rel=0.05)


def test_imbalance_combines_with_train_size(y):
    idx = data.subset_indices(y, 1000, 10.0, seed=3, num_classes=C)
    kept = np.bincount(y[idx], minlength=C)
    assert all(95 <= k <= 105 for k in kept[: C // 2]), kept  # ~100 = 1000/10 per class
    assert all(9 <= k <= 11 for k in kept[C // 2 :]), kept  # ~10 = 100/R


def test_subset_is_deterministic_for_a_seed(y):
    a = data.subset_indices(y, 400, 3.0, seed=5, num_classes=C)
    b = data.subset_indices(y, 400, 3.0, seed=5, num_classes=C)
    np.testing.assert_array_equal(a, b)


def test_subset_changes_with_the_seed(y):
    a = data.subset_indices(y, 400, 3.0, seed=5, num_classes=C)
    b = data.subset_indices(y, 400, 3.0, seed=6, num_classes=C)
    assert not np.array_equal(a, b)


def test_subset_does_not_touch_global_rngs(y):
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    data.subset_indices(y, 400, 2.0, seed=5, num_classes=C)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


# --- load ------------------------------------------------------------------------------------------


def test_load_gives_float32_channel_tensors(cache_dir, clean_arrays):
    ds = data.load(RunSpec(), cache_dir)
    assert ds.x.dtype == ds.x_test.dtype == torch.float32
    assert ds.y.dtype == ds.y_test.dtype == torch.int64
    assert tuple(ds.x.shape) == (N_TRAIN, 1, LENGTH) and tuple(ds.x_test.shape) == (N_TEST, 1, LENGTH)
    assert tuple(ds.y.shape) == (N_TRAIN,) and tuple(ds.y_test.shape) == (N_TEST,)
    assert ds.num_classes == C
    np.testing.assert_array_equal(ds.x[:, 0].numpy(), clean_arrays["x"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test.numpy(), clean_arrays["y_test"])


def test_load_subsets_the_train_set_only(cache_dir, clean_arrays):
    spec = RunSpec(train_size=300, imbalance=2.0, seed=4)
    ds = data.load(spec, cache_dir)
    idx = data.subset_indices(clean_arrays["y"], 300, 2.0, 4, C)
    np.testing.assert_array_equal(ds.x[:, 0].numpy(), clean_arrays["x"][idx].astype(np.float32))
    np.testing.assert_array_equal(ds.y.numpy(), clean_arrays["y"][idx])
    assert tuple(ds.x_test.shape) == (N_TEST, 1, LENGTH)
    assert ds.num_classes == C


def test_train_set_size_counts_the_signals_a_spec_trains_on(cache_dir, clean_arrays):
    """N_train of the full set, of a class subset, and of an imbalanced subset (its per-class shares)."""
    y = clean_arrays["y"]
    assert data.train_set_size(RunSpec(), cache_dir) == N_TRAIN
    assert data.train_set_size(RunSpec(train_classes=5), cache_dir) == int((y < 5).sum())
    counts = np.bincount(y, minlength=C)
    imbalanced = sum(int(round(n / (10.0 if c in data.minority_classes(C) else 1.0))) for c, n in enumerate(counts))
    assert data.train_set_size(RunSpec(imbalance=10.0, seed=7), cache_dir) == imbalanced


def test_load_is_deterministic_for_a_spec(cache_dir):
    spec = RunSpec(train_size=200, seed=9)
    a, b = data.load(spec, cache_dir), data.load(spec, cache_dir)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_load_rejects_a_train_size_above_the_train_set(cache_dir):
    with pytest.raises(ValueError, match="train_size=4001"):
        data.load(RunSpec(train_size=4001), cache_dir)


def test_load_rejects_labels_outside_the_classes(cache_dir, monkeypatch, clean_arrays):
    bad = {**clean_arrays, "y_test": np.where(clean_arrays["y_test"] == 9, 10, clean_arrays["y_test"])}
    monkeypatch.setattr(data, "cached_arrays", lambda overrides=None, cache_dir=None: bad)
    with pytest.raises(ValueError, match=r"y_test labels are not exactly the classes 0\.\.9"):
        data.load(RunSpec(), cache_dir)


def test_load_passes_the_specs_data_overrides_to_the_cache(cache_dir, monkeypatch, clean_arrays):
    seen = []

    def fake_cached(overrides=None, cache_dir=None):
        seen.append(overrides)
        return clean_arrays

    monkeypatch.setattr(data, "cached_arrays", fake_cached)
    data.load(RunSpec.from_dict({"data": {"seed": 3, "shear_scale": 0.5}}), cache_dir)
    assert seen == [{"seed": 3, "shear_scale": 0.5}]


# --- a subset of the classes, label noise -----------------------------------------------------------


def changed_fraction(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a != b).double().mean())


def test_train_classes_keeps_only_the_first_k_classes_in_train_and_test(cache_dir, clean_arrays):
    ds = data.load(RunSpec(train_classes=5), cache_dir)
    assert ds.num_classes == 5
    assert sorted(torch.unique(ds.y).tolist()) == sorted(torch.unique(ds.y_test).tolist()) == [0, 1, 2, 3, 4]
    train, test = clean_arrays["y"] < 5, clean_arrays["y_test"] < 5
    np.testing.assert_array_equal(ds.x[:, 0].numpy(), clean_arrays["x"][train].astype(np.float32))
    np.testing.assert_array_equal(ds.y.numpy(), clean_arrays["y"][train])
    np.testing.assert_array_equal(ds.x_test[:, 0].numpy(), clean_arrays["x_test"][test].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test.numpy(), clean_arrays["y_test"][test])


def test_train_classes_nine_keeps_all_but_the_last_class(cache_dir):
    a, b = data.load(RunSpec(train_classes=C - 1), cache_dir), data.load(RunSpec(), cache_dir)
    assert a.num_classes == C - 1 and b.num_classes == C
    assert torch.equal(a.y, b.y[b.y < C - 1]) and torch.equal(a.x_test, b.x_test[b.y_test < C - 1])


def test_train_size_and_imbalance_apply_within_the_kept_classes(cache_dir, clean_arrays):
    # 4 classes: train_size splits over them only, and the minority is classes 2, 3 (the upper half of 4).
    ds = data.load(RunSpec(train_classes=4, train_size=400, imbalance=4.0, seed=2), cache_dir)
    kept = np.bincount(ds.y.numpy(), minlength=4)
    full = np.bincount(clean_arrays["y"], minlength=C)[:4]
    scale = 400 / full.sum()
    np.testing.assert_allclose(kept[:2], full[:2] * scale, atol=0.5 + 1e-9)
    np.testing.assert_allclose(kept[2:], full[2:] * scale / 4.0, atol=0.5 + 1e-9)
    assert ds.num_classes == 4 and len(ds.y_test) == int((clean_arrays["y_test"] < 4).sum())


@pytest.mark.parametrize("p", [0.1, 0.3, 0.8, 1.0])
def test_label_noise_changes_a_fraction_p_times_c_minus_1_over_c(cache_dir, p):
    # Each label is redrawn w.p. p uniformly over all C classes, so it changes w.p. q = p (C-1)/C,
    # independently: the count of changes on 4000 labels is Binomial(4000, q); 5 standard deviations
    # (at most 5 * sqrt(4000 / 4) / 4000 = 0.040, here <= 0.035) is a false-alarm rate below 1e-6.
    clean, noisy = data.load(RunSpec(), cache_dir), data.load(RunSpec(label_noise=p), cache_dir)
    q = p * (C - 1) / C
    assert changed_fraction(noisy.y, clean.y) == pytest.approx(q, abs=5 * math.sqrt(q * (1 - q) / N_TRAIN))


def test_full_label_noise_makes_labels_uniform_and_independent_of_the_class(cache_dir):
    # p = 1: every label is uniform over the C classes. Per true class (~400 labels), the noisy labels'
    # counts are Binomial(~400, 1/10): each within 5 standard deviations (5 * 6 = 30) of 40.
    clean, noisy = data.load(RunSpec(), cache_dir), data.load(RunSpec(label_noise=1.0, seed=3), cache_dir)
    for c in range(C):
        counts = np.bincount(noisy.y[clean.y == c].numpy(), minlength=C)
        n = counts.sum()
        assert len(counts) == C
        assert np.all(np.abs(counts - n / C) <= 5 * math.sqrt(n * 0.1 * 0.9)), (c, counts)


def test_label_noise_is_deterministic_for_a_seed_and_changes_with_it(cache_dir):
    a = data.load(RunSpec(label_noise=0.3, seed=4), cache_dir)
    b = data.load(RunSpec(label_noise=0.3, seed=4), cache_dir)
    c = data.load(RunSpec(label_noise=0.3, seed=5), cache_dir)
    assert torch.equal(a.y, b.y)
    assert not torch.equal(a.y, c.y)
    assert torch.equal(a.x, c.x)  # the full train set either way: only the labels differ


def test_label_noise_leaves_the_signals_and_the_test_set_clean(cache_dir, clean_arrays):
    ds = data.load(RunSpec(label_noise=0.5, train_classes=6), cache_dir)
    test = clean_arrays["y_test"] < 6
    np.testing.assert_array_equal(ds.y_test.numpy(), clean_arrays["y_test"][test])
    np.testing.assert_array_equal(ds.x_test[:, 0].numpy(), clean_arrays["x_test"][test].astype(np.float32))
    np.testing.assert_array_equal(ds.x[:, 0].numpy(), clean_arrays["x"][clean_arrays["y"] < 6].astype(np.float32))


def test_noisy_labels_of_k_classes_stay_within_the_k_classes(cache_dir):
    ds = data.load(RunSpec(train_classes=3, label_noise=1.0), cache_dir)
    assert ds.num_classes == 3 and set(torch.unique(ds.y).tolist()) == {0, 1, 2}
    assert set(torch.unique(ds.y_test).tolist()) == {0, 1, 2}


def test_zero_label_noise_is_the_clean_data(cache_dir, clean_arrays):
    spec = RunSpec(train_size=300, imbalance=2.0, seed=4)
    a, b = data.load(spec.replace(label_noise=0.0), cache_dir), data.load(spec, cache_dir)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("x", "y", "x_test", "y_test"))
    y = clean_arrays["y"].astype(np.int64)
    np.testing.assert_array_equal(data.noisy_labels(y, 0.0, seed=1, num_classes=C), y)


def test_label_noise_is_applied_after_the_imbalanced_subset(cache_dir, clean_arrays):
    # The subset is drawn from the clean labels (the same signals as without noise, so the class sizes
    # of the subset are those imbalance sets); then its labels are made noisy.
    spec = RunSpec(train_size=1000, imbalance=5.0, seed=7)
    clean, noisy = data.load(spec, cache_dir), data.load(spec.replace(label_noise=0.4), cache_dir)
    assert torch.equal(clean.x, noisy.x) and len(noisy.y) == len(clean.y)
    idx = data.subset_indices(clean_arrays["y"], 1000, 5.0, 7, C)
    np.testing.assert_array_equal(clean.y.numpy(), clean_arrays["y"][idx])
    np.testing.assert_array_equal(
        noisy.y.numpy(), data.noisy_labels(clean_arrays["y"][idx].astype(np.int64), 0.4, 7, C)
    )
    assert not torch.equal(clean.y, noisy.y)


def test_noisy_labels_is_seeded_apart_from_the_global_rngs(y):
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    a = data.noisy_labels(y, 0.5, seed=5, num_classes=C)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    np.random.seed(99)
    np.testing.assert_array_equal(data.noisy_labels(y, 0.5, seed=5, num_classes=C), a)
    assert a.shape == y.shape and a.min() >= 0 and a.max() < C
