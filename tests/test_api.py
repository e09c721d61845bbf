"""Tests for the Python entry points (ncsim.api, re-exported by ncsim) and the exports (ncsim.export)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import ncsim
from ncsim import api, export, suite
from ncsim import train as train_mod
from ncsim.spec import RunSpec, SpecError
from ncsim.store import CorruptFileError, Record, RunStore
from ncsim.trajectory import Trajectory

pytestmark = pytest.mark.usefixtures("no_home_cache", "single_thread")


@pytest.fixture
def store(cache_dir, tiny_record) -> RunStore:
    """A store holding the shared tiny run ("tiny-s0")."""
    s = RunStore(cache_dir)
    s.save(tiny_record)
    return s


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(train_mod, "train", fail)


def relabelled(record: Record, key: str, label: str) -> Record:
    return Record(key, {**record.meta, "label": label}, record.arrays)


# --- import ncsim -----------------------------------------------------------------------------------


def test_import_ncsim_stays_light_and_exports_the_api():
    code = (
        "import sys, ncsim; light = not {'torch', 'numpy'} & set(sys.modules); "
        "f = ncsim.load_run, ncsim.obtain_run, ncsim.collapse_metrics, ncsim.RunSpec, ncsim.Trajectory; "
        "print(light, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]  # nothing heavy on import, and no torch for the API


def test_the_exports_are_the_api_functions():
    from ncsim.metrics import collapse_metrics

    assert ncsim.load_run is api.load_run and ncsim.obtain_run is api.obtain_run
    assert ncsim.collapse_metrics is collapse_metrics
    assert ncsim.RunSpec is RunSpec and ncsim.Trajectory is Trajectory
    assert {"load_run", "obtain_run", "collapse_metrics"} <= set(dir(ncsim)) and "load_run" in ncsim.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ncsim.nope  # noqa: B018


# --- load_run -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["tiny-s0", "key", "prefix"])
def test_load_run_by_label_key_or_prefix(store, tiny_record, no_training, query):
    query = {"key": tiny_record.key, "prefix": tiny_record.key[:4]}.get(query, query)
    t = ncsim.load_run(query, cache_dir=store.root)
    assert isinstance(t, Trajectory) and t.key == tiny_record.key and t.label == "tiny-s0"
    assert t.record == tiny_record


def test_load_run_honours_ncsim_cache(store, tiny_record, no_training, monkeypatch):
    monkeypatch.setenv("NCSIM_CACHE", str(store.root))
    assert ncsim.load_run("tiny-s0").key == tiny_record.key


def test_load_run_of_an_unknown_label_lists_close_matches(store, no_training):
    with pytest.raises(api.RunLookupError, match=r"no stored run matches 'tiny-s1' in .*; close matches: tiny-s0"):
        ncsim.load_run("tiny-s1", cache_dir=store.root)


def test_load_run_from_an_empty_store_says_so(cache_dir):
    with pytest.raises(api.RunLookupError, match="no stored run matches 'tiny-s0' .*0 records stored"):
        ncsim.load_run("tiny-s0", cache_dir=cache_dir)


def test_load_run_of_an_ambiguous_label_lists_the_candidates(store, tiny_record):
    store.save(relabelled(tiny_record, "0" * 20, "tiny-s0"))
    with pytest.raises(api.RunLookupError) as e:
        ncsim.load_run("tiny-s0", cache_dir=store.root)
    message = str(e.value)
    assert "'tiny-s0' names 2 stored runs" in message and "give a longer key prefix" in message
    assert f"{'0' * 20} (tiny-s0, 2 epochs, ok)" in message and f"{tiny_record.key} (tiny-s0, 2 epochs, ok)" in message
    assert ncsim.load_run("00", cache_dir=store.root).key == "0" * 20  # a key prefix settles it


def test_load_run_of_a_corrupt_record_names_it(store, tiny_record):
    store.path(tiny_record.key).write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match=f"{tiny_record.key}.npz"):
        ncsim.load_run(tiny_record.key, cache_dir=store.root)


def test_load_run_of_a_record_that_is_no_run(store):
    store.save(Record("ufmsweep", {"kind": "ufm-sweep"}, {"x": np.zeros(2)}))
    with pytest.raises(api.RunLookupError, match="record ufmsweep .* is not a training run .*'ufm-sweep'"):
        ncsim.load_run("ufm", cache_dir=store.root)


def test_load_run_with_a_store_path_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        ncsim.load_run("tiny-s0", cache_dir=path)
    assert path.read_text() == ""


# --- obtain_run ---------------------------------------------------------------------------------------


def test_obtain_run_serves_a_stored_run(store, tiny_spec, tiny_record, no_training):
    t = ncsim.obtain_run(tiny_spec, cache_dir=store.root)
    assert t.trained is False and t.record == tiny_record


def test_obtain_run_trains_once_then_serves(cache_dir, tiny_spec):
    spec = tiny_spec.replace(layer_schedule="none", epochs=1)
    first = ncsim.obtain_run(spec.to_dict(), seed=4, cache_dir=cache_dir)
    again = ncsim.obtain_run(spec, seed=4, cache_dir=cache_dir)
    assert first.trained is True and again.trained is False
    assert first.spec == spec.replace(seed=4) and again.record == first.record
    assert RunStore(cache_dir).keys() == [spec.replace(seed=4).key()]


def test_resolve_spec_of_a_suite_configuration_is_the_claims_spec():
    assert api.resolve_spec("adam", seed=3) == suite.config("adam", 3)
    assert api.resolve_spec("standard", seed=2, data_seed=2) == suite.config(suite.RunId("standard", 2, 2))


def test_resolve_spec_of_a_toml_file(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('name = "one"\nepochs = 3\n')
    assert api.resolve_spec(path, seed=7) == RunSpec(name="one", epochs=3, seed=7)
    assert api.resolve_spec(str(path)) == RunSpec(name="one", epochs=3)


@pytest.mark.parametrize(
    "source, fragments",
    [
        ("optimizers", ["'optimizers' describes", "runs (", "adam", "give a seed"]),
        ("nowhere.toml", ["no such spec file 'nowhere.toml'"]),
        ("nope", ["unknown preset 'nope'"]),
        ({"lr": -1}, ["lr=-1.0 must be > 0"]),
        (3, ["got int"]),
    ],
)
def test_resolve_spec_of_a_bad_description(source, fragments):
    with pytest.raises(SpecError) as e:
        api.resolve_spec(source)
    for fragment in fragments:
        assert fragment in str(e.value), fragment


def test_obtain_run_of_cuda_without_cuda_is_refused_before_training(cache_dir, tiny_spec, no_training, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(api.DeviceUnavailable, match="run tiny-s0 asks for device 'cuda' .* no CUDA device"):
        ncsim.obtain_run(tiny_spec.replace(device="cuda"), cache_dir=cache_dir)
    assert RunStore(cache_dir).keys() == []


def test_a_stored_cuda_run_is_served_without_cuda(store, tiny_spec, tiny_record, no_training, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tiny_spec.replace(device="cuda")
    store.save(Record(spec.key(), {**tiny_record.meta, "spec": spec.to_dict()}, tiny_record.arrays))
    assert ncsim.obtain_run(spec, cache_dir=store.root).key == spec.key()
    with pytest.raises(api.DeviceUnavailable):
        ncsim.obtain_run(spec, cache_dir=store.root, refresh=True)  # refresh trains: refused


# --- exports ------------------------------------------------------------------------------------------


@pytest.fixture
def tiny(tiny_record) -> Trajectory:
    return Trajectory(tiny_record)


def same(a, b) -> bool:
    return a == b or isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


def test_tidy_rows_has_a_row_per_evaluated_epoch_with_every_column(tiny):
    rows = export.tidy_rows(tiny)
    assert [r["epoch"] for r in rows] == tiny.epochs.tolist() == [0, 1, 2]
    assert all(type(r["epoch"]) is int for r in rows)
    for i, row in enumerate(rows):
        assert list(row)[:3] == ["label", "key", "epoch"] and (row["label"], row["key"]) == ("tiny-s0", tiny.key)
        assert set(row) == {"label", "key", "epoch", *tiny.columns()}
        for name in tiny.columns():
            assert same(row[name], float(tiny[name][i])), name
    assert any(math.isnan(r["layer.conv1.flat.nc1"]) for r in rows)  # epoch 1 is off the layer schedule


def test_write_csv_round_trips_the_rows(tiny, tmp_path):
    path = export.write_csv(tiny, tmp_path / "tiny.csv")
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    rows = export.tidy_rows(tiny)
    assert len(back) == len(rows) and list(back[0]) == list(rows[0])
    for got, want in zip(back, rows):
        for name, value in want.items():
            cell = got[name]
            if isinstance(value, float):
                assert (cell == "" and math.isnan(value)) or float(cell) == value, name
            else:
                assert cell == str(value), name
    assert oct(path.stat().st_mode & 0o777) == oct(0o644 & ~current_umask())
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.csv"]


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_write_csv_of_several_runs(tiny, tmp_path):
    other = Trajectory(relabelled(tiny.record, "0" * 20, "other-s0"))
    path = export.write_csv([tiny, other], tmp_path / "two.csv")
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert [r["key"] for r in back] == [tiny.key] * 3 + ["0" * 20] * 3


def test_a_failed_write_csv_keeps_the_old_file_and_leaves_no_temp(tiny, tmp_path, monkeypatch):
    path = tmp_path / "tiny.csv"
    path.write_text("old\n")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export.write_csv(tiny, path)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["tiny.csv"]


def test_to_frame_without_pandas_names_pandas_and_csv(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"to_frame needs pandas \(pip install pandas\).*write_csv"):
        export.to_frame(tiny)


def test_to_frame_has_the_tidy_rows(tiny):
    pd = pytest.importorskip("pandas")
    frame = export.to_frame(tiny)
    rows = export.tidy_rows(tiny)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(rows[0]) and len(frame) == len(rows)
    for name in rows[0]:
        assert all(same(got, want[name]) for got, want in zip(frame[name].tolist(), rows)), name
