"""Tests for ncsim.store: round trips, cross-process creation, corruption handling, atomicity, no pickle."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import filelock
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncsim.store import (
    CACHE_ENV,
    CorruptFileError,
    CorruptRecordWarning,
    Record,
    RunStore,
    default_cache_dir,
    read_npz,
    utc_stamp,
    write_npz,
)

KEY = "abc123"


def make_record(key: str = KEY, **meta) -> Record:
    return Record(
        key,
        {"spec": {"width": 16, "lr": 0.05, "tags": ["a", "ü"]}, "status": "ok", **meta},
        {
            "loss": np.linspace(0.0, 1.0, 7, dtype=np.float32),
            "weights": np.arange(12, dtype=np.float64).reshape(3, 4) / 7,
            "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
            "steps": np.array([1, 2, 3], dtype=np.int64),
            "mask": np.array([True, False, True]),
            "scalar": np.array(3.5),
            "empty": np.zeros((0, 4), dtype=np.float32),
            "big_endian": np.arange(3, dtype=">u2"),
            "nan": np.array([np.nan, -0.0, np.inf]),
        },
    )


class Creator:
    """A create() callable that counts its calls."""

    def __init__(self, record: Record):
        self.record, self.calls = record, 0

    def __call__(self) -> Record:
        self.calls += 1
        return self.record


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "store")


def corrupt_files(store: RunStore, key: str = KEY) -> list[Path]:
    return sorted(store.root.glob(f"{key}.corrupt-*.npz"))


# --- round trip ---------------------------------------------------------------------------------------------


def test_round_trip_preserves_dtypes_bits_and_meta(store):
    record = make_record(nested={"a": [1, 2.5, None, True], "b": {"c": "d"}}, as_tuple=(1, 2))
    path = store.save(record)
    assert path == store.path(KEY) == store.root / f"{KEY}.npz"

    loaded = store.load(KEY)
    assert loaded == Record(KEY, json.loads(json.dumps(record.meta)), record.arrays)
    for name, a in record.arrays.items():
        b = loaded.arrays[name]
        assert (b.dtype, b.shape, b.tobytes()) == (a.dtype, a.shape, a.tobytes()), name


def test_write_read_npz_round_trip(tmp_path):
    arrays = make_record().arrays
    write_npz(tmp_path / "x.npz", arrays, {"k": [1, {"v": None}]})
    got, meta = read_npz(tmp_path / "x.npz")
    assert meta == {"k": [1, {"v": None}]}
    assert Record("x", {}, got) == Record("x", {}, arrays)
    assert sorted(np.load(tmp_path / "x.npz").files) == sorted([*arrays, "__meta__", "__sha256__"])


def test_record_equality_compares_array_bits():
    a = make_record()
    assert a == make_record()
    assert a != make_record(status="failed")
    changed = dict(a.arrays, steps=a.arrays["steps"].astype(np.int32))
    assert a != Record(KEY, a.meta, changed)
    assert a != Record(KEY, a.meta, {k: v for k, v in a.arrays.items() if k != "mask"})


def test_keys_and_contains(store):
    assert store.keys() == [] and KEY not in store
    store.save(make_record("b-2"))
    store.save(make_record("a_1"))
    (store.root / "stray.txt").write_text("not a record")
    assert store.keys() == ["a_1", "b-2"]
    assert "a_1" in store and "c" not in store


def test_load_absent_returns_none(store):
    assert store.load(KEY) is None


def test_save_overwrites(store):
    store.save(make_record(status="first"))
    store.save(make_record(status="second"))
    assert store.load(KEY).meta["status"] == "second"
    assert store.keys() == [KEY]


# --- get_or_create ------------------------------------------------------------------------------------------


def test_get_or_create_computes_once_then_loads(store):
    create = Creator(make_record())
    first = store.get_or_create(KEY, create)
    second = store.get_or_create(KEY, create)
    assert create.calls == 1
    assert first == second == make_record()
    assert RunStore(store.root).load(KEY) == first


def test_get_or_create_refresh_recomputes(store):
    store.save(make_record(status="old"))
    create = Creator(make_record(status="new"))
    assert store.get_or_create(KEY, create, refresh=True).meta["status"] == "new"
    assert create.calls == 1
    assert store.load(KEY).meta["status"] == "new"


def test_get_or_create_returns_json_round_tripped_meta(store):
    record = store.get_or_create(KEY, Creator(make_record(shape=(3, 4))))
    assert record.meta["shape"] == [3, 4]


def test_get_or_create_rejects_record_with_other_key(store):
    with pytest.raises(ValueError, match="other"):
        store.get_or_create(KEY, Creator(make_record("other")))
    assert store.keys() == []


def test_get_or_create_times_out_while_lock_held(store):
    create = Creator(make_record())
    with filelock.FileLock(store.root / f"{KEY}.lock"):
        with pytest.raises(filelock.Timeout):
            store.get_or_create(KEY, create, timeout=0.05)
    assert create.calls == 0


WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import numpy as np
    from ncsim.store import Record, RunStore

    root, log, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    (root.parent / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while len(list(root.parent.glob("ready-*"))) < n and time.monotonic() < deadline:  # start together
        time.sleep(0.01)

    def create():
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.5)
        return Record("shared", {"creator": os.getpid()}, {"x": np.random.default_rng().normal(size=5)})

    record = RunStore(root).get_or_create("shared", create)
    print(json.dumps({"meta": record.meta, "x": record.arrays["x"].tolist()}))
""")


def test_concurrent_processes_create_exactly_once(tmp_path):
    n = 4
    root, log = tmp_path / "store", tmp_path / "create.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), str(log), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    creators = log.read_text().split()
    assert len(creators) == 1
    assert all(r == results[0] for r in results)
    assert results[0]["meta"] == {"creator": int(creators[0])}
    assert RunStore(root).keys() == ["shared"]


# --- corruption ---------------------------------------------------------------------------------------------


def rezip(path: Path, change) -> None:
    """Rewrite the zip at `path` as a valid zip, with `change(entries)` applied to its {member: bytes}."""
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    change(entries)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def flip_array_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(make_record().arrays["weights"].tobytes()) + 20
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "flipped array byte": flip_array_byte,
    "not a zip": lambda p: p.write_bytes(b"these bytes are no zip archive at all\n" * 10),
    "plain npy": lambda p: p.write_bytes(npy_bytes(np.arange(3))),
    "tampered digest": lambda p: rezip(
        p, lambda e: e.update({"__sha256__.npy": npy_bytes(np.frombuffer(b"0" * 64, dtype=np.uint8))})
    ),
    "array changed, digest stale": lambda p: rezip(
        p, lambda e: e.update({"steps.npy": npy_bytes(np.array([1, 2, 4]))})
    ),
    "array added": lambda p: rezip(p, lambda e: e.update({"extra.npy": npy_bytes(np.zeros(2))})),
    "missing meta": lambda p: rezip(p, lambda e: e.pop("__meta__.npy")),
    "object array": lambda p: rezip(
        p, lambda e: e.update({"steps.npy": npy_bytes(np.array([1, "x", None], dtype=object))})
    ),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_corrupt_record_is_reported_moved_aside_and_recomputed(store, corrupt):
    path = store.save(make_record())
    corrupt(path)
    original = path.read_bytes()

    with pytest.raises(CorruptFileError, match=str(path)):
        read_npz(path)
    with pytest.warns(CorruptRecordWarning, match=path.name) as caught:
        assert store.load(KEY) is None
    assert not path.exists() and store.keys() == [] and KEY not in store
    [aside] = corrupt_files(store)
    assert re.fullmatch(rf"{KEY}\.corrupt-\d{{8}}T\d{{12}}Z\.npz", aside.name)
    assert aside.name in str(caught[0].message)
    assert aside.read_bytes() == original

    create = Creator(make_record())
    assert store.get_or_create(KEY, create) == make_record()
    assert create.calls == 1
    assert corrupt_files(store) == [aside]


def test_get_or_create_recomputes_corrupt_record(store):
    path = store.save(make_record())
    flip_array_byte(path)
    create = Creator(make_record())
    with pytest.warns(CorruptRecordWarning):
        assert store.get_or_create(KEY, create) == make_record()
    assert create.calls == 1 and len(corrupt_files(store)) == 1


def test_record_under_wrong_key_is_corrupt(store):
    store.save(make_record("other"))
    store.path("other").rename(store.path(KEY))
    with pytest.warns(CorruptRecordWarning, match="other"):
        assert store.load(KEY) is None
    assert len(corrupt_files(store)) == 1


def test_utc_stamp_is_sortable_and_file_name_safe():
    first, second = utc_stamp(), utc_stamp()
    assert re.fullmatch(r"\d{8}T\d{12}Z", first) and first <= second


def test_repeated_corruption_keeps_every_corrupt_file(store):
    for i in range(3):
        store.path(KEY).write_bytes(b"garbage %d" % i)
        with pytest.warns(CorruptRecordWarning):
            store.load(KEY)
    assert sorted(p.read_bytes() for p in corrupt_files(store)) == [b"garbage 0", b"garbage 1", b"garbage 2"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_file_is_rejected_or_read_intact(tmp_path, data):
    """Whatever single byte is changed or wherever the file is cut, read_npz either raises CorruptFileError
    or returns exactly what was written (a change to zip metadata that does not touch the content)."""
    path = tmp_path / "fuzz.npz"
    arrays, meta = {"a": np.arange(4, dtype=np.int16), "b": np.array([0.5])}, {"m": 1}
    write_npz(path, arrays, meta)
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        raw[data.draw(st.integers(0, len(raw) - 1), label="offset")] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(raw))
    try:
        got, got_meta = read_npz(path)
    except CorruptFileError:
        return
    assert got_meta == meta and Record("f", {}, got) == Record("f", {}, arrays)


# --- atomicity ----------------------------------------------------------------------------------------------


def test_failing_create_leaves_nothing_behind(store):
    def create():
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        store.get_or_create(KEY, create)
    assert store.keys() == [] and KEY not in store
    assert [p.name for p in store.root.iterdir()] == [f"{KEY}.lock"]


def test_failing_create_on_refresh_keeps_old_record(store):
    store.save(make_record())

    def create():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.get_or_create(KEY, create, refresh=True)
    assert store.load(KEY) == make_record()


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    with pytest.raises(TypeError):
        write_npz(tmp_path / "x.npz", {"a": np.zeros(2)}, {"not json": object()})

    def replace_fails(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", replace_fails)  # the temp file is complete, the rename fails
    with pytest.raises(OSError, match="disk full"):
        write_npz(tmp_path / "x.npz", {"a": np.zeros(2)}, {})
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_is_not_a_record(store):
    # What a write killed before os.replace leaves: a partial temp file next to the records.
    stray = store.root / f".{KEY}.npz.x1y2z3.tmp"
    stray.write_bytes(b"PK\x03\x04 partial")
    assert store.keys() == [] and KEY not in store and store.load(KEY) is None
    create = Creator(make_record())
    assert store.get_or_create(KEY, create) == make_record() and create.calls == 1
    assert store.keys() == [KEY]


# --- no pickle ----------------------------------------------------------------------------------------------


def test_write_npz_refuses_object_arrays_and_reserved_names(tmp_path):
    with pytest.raises(ValueError, match="object"):
        write_npz(tmp_path / "x.npz", {"a": np.array([{"x": 1}], dtype=object)}, {})
    with pytest.raises(ValueError, match="object"):
        write_npz(tmp_path / "x.npz", {"a": np.zeros(1, dtype=[("f", object)])}, {})
    with pytest.raises(ValueError, match="reserved"):
        write_npz(tmp_path / "x.npz", {"__meta__": np.zeros(1)}, {})
    assert list(tmp_path.iterdir()) == []


def test_read_npz_rejects_pickled_object_array(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, a=np.array([print, "x"], dtype=object), __meta__=np.frombuffer(b"{}", dtype=np.uint8))
    with pytest.raises(CorruptFileError, match="allow_pickle"):
        read_npz(path)


def test_read_npz_missing_file_passes_through(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_npz(tmp_path / "absent.npz")


# --- keys and cache dir -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "a.b", "../x", "a/b", "a b", "é", "x\n", 12, None])
def test_invalid_keys_rejected(store, key):
    with pytest.raises(ValueError, match="invalid run key"):
        store.path(key)
    with pytest.raises(ValueError):
        store.get_or_create(key, Creator(make_record()))
    with pytest.raises(ValueError):
        store.save(Record(key, {}, {}))


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "c"
    assert RunStore().root == tmp_path / "c" and (tmp_path / "c").is_dir()

    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir() == tmp_path / "xdg" / "ncsim"

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ncsim"


# --- failure paths: a directory record, a read-only store, a failed final write, orphans, modes ---------------


def test_record_path_that_is_a_directory_is_corrupt_and_recomputed(store):
    (store.root / f"{KEY}.npz").mkdir()
    assert store.keys() == [KEY]
    with pytest.raises(CorruptFileError, match="not a regular file"):
        store.read(KEY)
    create = Creator(make_record())
    with pytest.warns(CorruptRecordWarning, match="not a regular file"):
        assert store.get_or_create(KEY, create) == make_record()
    assert create.calls == 1 and len(corrupt_files(store)) == 1 and corrupt_files(store)[0].is_dir()


def test_stored_record_is_served_without_a_lock(store, monkeypatch):
    # What a read-only store (no write permission, so no lock file can be opened) looks like to the code;
    # unlike chmod, this holds when the tests run as root.
    store.save(make_record())

    def no_lock(key):
        raise PermissionError(13, "Permission denied", str(store.root / f"{key}.lock"))

    monkeypatch.setattr(store, "_lock", no_lock)
    create = Creator(make_record())
    assert store.get_or_create(KEY, create) == make_record() and create.calls == 0
    assert store.load(KEY) == make_record() and store.keys() == [KEY]
    with pytest.raises(PermissionError):  # creating still needs the lock
        store.get_or_create("other", create)


def test_read_only_store_directory_serves_its_records(tmp_path):
    root = tmp_path / "ro"
    RunStore(root).save(make_record())
    (root / f"{KEY}.lock").unlink()
    root.chmod(0o555)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("chmod does not remove write permission here (running as root)")
        store = RunStore(root)
        assert store.get_or_create(KEY, Creator(make_record())) == make_record()
        assert store.keys() == [KEY] and store.load(KEY) == make_record()
    finally:
        root.chmod(0o755)


def fail_store_writes(monkeypatch, root: Path) -> None:
    """Make write_npz fail with ENOSPC inside `root`, as on a full disk; elsewhere it works."""
    import errno

    import ncsim.store as store_mod

    real = store_mod.write_npz

    def write(path, arrays, meta):
        if Path(path).parent == root:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, arrays, meta)

    monkeypatch.setattr(store_mod, "write_npz", write)


def test_failed_final_write_keeps_the_record_in_a_named_fallback_file(store, tmp_path, monkeypatch):
    from ncsim.store import RecordSaveError

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    fail_store_writes(monkeypatch, store.root)
    with pytest.raises(RecordSaveError) as e:
        store.get_or_create(KEY, Creator(make_record()))
    message = str(e.value)
    (fallback,) = tmp_path.glob(f"ncsim-{KEY}-*.npz")
    assert str(fallback) in message and str(store.path(KEY)) in message and "No space left" in message
    arrays, meta = read_npz(fallback)
    assert Record(meta["key"], meta["meta"], arrays) == make_record()
    assert isinstance(e.value, OSError) and store.keys() == []


def test_failed_final_write_and_fallback_says_the_record_is_lost(store, tmp_path, monkeypatch):
    from ncsim.store import RecordSaveError

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "missing"))
    fail_store_writes(monkeypatch, store.root)
    with pytest.raises(RecordSaveError, match=r"failed too .*the record is lost"):
        store.get_or_create(KEY, Creator(make_record()))


def age(path: Path, seconds: float) -> Path:
    t = path.stat().st_mtime - seconds
    os.utime(path, (t, t))
    return path


def test_orphaned_temp_files_are_removed_on_open_and_listing(store):
    old = age(write_temp(store.root, KEY, "abc123"), 2 * 3600)
    fresh = write_temp(store.root, KEY, "def456")
    RunStore(store.root)
    assert not old.exists() and fresh.exists()
    old = age(write_temp(store.root, KEY, "ghi789"), 2 * 3600)
    assert store.keys() == [] and not old.exists()
    unrelated = store.root / ".notes.tmp"
    unrelated.touch()
    age(unrelated, 2 * 3600)
    store.keys()
    assert unrelated.exists()


def test_orphaned_temp_file_of_a_locked_key_is_kept(store):
    old = age(write_temp(store.root, KEY, "abc123"), 2 * 3600)
    with filelock.FileLock(store.root / f"{KEY}.lock"):
        RunStore(store.root)
        assert old.exists()
    store.keys()
    assert not old.exists()


def write_temp(root: Path, key: str, suffix: str) -> Path:
    """A temp file as write_npz names it, as a write killed before os.replace leaves it."""
    path = root / f".{key}.npz.{suffix}.tmp"
    path.write_bytes(b"PK\x03\x04 partial")
    return path


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o644)])
def test_records_are_created_0644_less_the_umask(store, umask, mode):
    before = os.umask(umask)
    try:
        path = store.save(make_record())
    finally:
        os.umask(before)
    assert path.stat().st_mode & 0o777 == mode
