"""The run store: each run's record, computed once and served from disk to every later request.

A record is one `.npz` file per run key under the store root. Files are written atomically (temp file in the
same directory, fsync, `os.replace`), read without pickle, and carry a SHA-256 digest of their content, so a
truncated or tampered file is detected rather than used. A corrupt record is moved aside (never deleted) and
recomputed. `RunStore.get_or_create` holds a per-key `filelock.FileLock` while it creates, so when several
processes (e.g. pytest-xdist workers) ask for the same key at once, exactly one computes it and the others
load its result; serving a valid stored record takes no lock and no write permission. Files are created
with mode 0644 less the umask, so a store shared by several users is readable by all of them. Temp files
that a killed writer left behind are removed when they are over an hour old and unlocked.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

CACHE_ENV = "NCSIM_CACHE"
ORPHAN_AGE_S = 3600.0  # a temp file this old belongs to no live writer (writes take seconds)

_META = "__meta__"
_DIGEST = "__sha256__"
_KEY_RE = re.compile(r"[0-9A-Za-z_-]+")
_TEMP_RE = re.compile(r"\.(?P<target>.+)\.npz\.[0-9A-Za-z_]+\.tmp")


def store_root(root: str | Path | None) -> Path:
    """The store root a caller names: `root`, or default_cache_dir() when it is None or empty (an
    empty --cache-dir counts as unset, as an empty $NCSIM_CACHE does: never the working directory)."""
    return Path(root).expanduser() if root is not None and str(root) != "" else default_cache_dir()


def default_cache_dir() -> Path:
    """The store root used when none is given: `$NCSIM_CACHE` if set, else `$XDG_CACHE_HOME/ncsim` if
    `XDG_CACHE_HOME` is set, else `~/.cache/ncsim`. Empty variables count as unset."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ncsim"
    return Path.home() / ".cache" / "ncsim"


def utc_stamp() -> str:
    """The current UTC time as a compact, sortable file-name part, e.g. "20250102T030405123456Z"."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def move_aside(path: str | Path) -> Path:
    """Rename a corrupt file to `<stem>.corrupt-<UTC stamp>.npz` beside it (never overwriting an
    earlier one) so its bytes are kept for inspection; returns the new path."""
    path = Path(path)
    stamp = utc_stamp()
    aside = path.with_name(f"{path.stem}.corrupt-{stamp}.npz")
    n = 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.stem}.corrupt-{stamp}-{n}.npz")
    os.replace(path, aside)
    return aside


class CorruptFileError(ValueError):
    """A record file that exists but fails to parse or to verify; the message names the path and the fault."""


class CorruptRecordWarning(UserWarning):
    """Issued when the store finds a corrupt record and moves it aside."""


class RecordSaveError(OSError):
    """A computed record could not be written to the store; the message names the record path, the
    cause, and the fallback file (under the system temp directory) that holds the record instead."""


def _digest(meta_bytes: bytes, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the meta JSON bytes and, in sorted name order, each array's name, dtype, shape and C-order
    bytes. Each header is length-prefixed, so distinct contents cannot hash the same byte stream."""
    h = hashlib.sha256()
    h.update(len(meta_bytes).to_bytes(8, "big"))
    h.update(meta_bytes)
    for name in sorted(arrays):
        a = arrays[name]
        # The .npy descr, not dtype.str: it also distinguishes structured dtypes of equal itemsize.
        header = json.dumps([name, str(np.lib.format.dtype_to_descr(a.dtype)), list(a.shape)]).encode()
        h.update(len(header).to_bytes(8, "big"))
        h.update(header)
        h.update(a.tobytes(order="C"))
    return h.hexdigest()


def umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write `arrays` and the JSON-able dict `meta` to the `.npz` file `path`, atomically: readers see either
    the previous file or the complete new one, and a failed write leaves no file behind (not even a temp file).

    The file gets mode 0644 less the umask (not mkstemp's 0600). Raises ValueError for object-dtype arrays or
    for names that are empty or start with "__" (reserved), and TypeError if `meta` is not a dict or not
    JSON-serialisable; in both cases nothing is written."""
    path = Path(path)
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise ValueError(f"array name {name!r} is empty, not a string, or reserved (starts with '__')")
        if a.dtype.hasobject:
            raise ValueError(f"array {name!r} has object dtype {a.dtype}; records never hold pickled data")
    meta_bytes = json.dumps(meta, ensure_ascii=False).encode("utf-8")
    entries = {
        **arrays,
        _META: np.frombuffer(meta_bytes, dtype=np.uint8),
        _DIGEST: np.frombuffer(_digest(meta_bytes, arrays).encode("ascii"), dtype=np.uint8),
    }

    with atomic_file(path) as f:
        # Written entry by entry (the layout np.savez produces) so that array names never collide
        # with np.savez's own keyword arguments.
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, a in entries.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)


@contextmanager
def atomic_file(path: str | Path):
    """A binary file to write `path` through, atomically: a temp file in the same directory, given
    mode 0644 less the umask, fsynced and renamed over `path` when the block ends; readers see the old
    file or the whole new one, and a block that raises leaves neither half a file nor the temp file."""
    path = Path(path)
    if path.is_dir():  # checked first: the temp file would go into its parent, which may be anywhere
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to write", str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o644 & ~umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _parse_npz(f) -> tuple[dict[str, np.ndarray], dict]:
    """Parse and verify an open record file; raises on any fault (the caller reports it)."""
    npz = np.load(f, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    with npz:
        entries = {name: npz[name] for name in npz.files}
    for required in (_META, _DIGEST):
        if required not in entries:
            raise ValueError(f"missing entry {required!r}")
    meta_bytes = entries.pop(_META).tobytes()
    digest = entries.pop(_DIGEST).tobytes().decode("ascii")
    unknown = [name for name in entries if name.startswith("__")]
    if unknown:
        raise ValueError(f"unknown reserved entries {unknown}")
    if digest != _digest(meta_bytes, entries):
        raise ValueError("sha256 digest mismatch: content differs from what was written")
    meta = json.loads(meta_bytes.decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"meta is a JSON {type(meta).__name__}, not an object")
    return entries, meta


def read_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by `write_npz` and return `(arrays, meta)`, bit-identical to what was written.

    Never unpickles. Any fault in the content (not a zip, truncated, missing entries, object arrays, digest
    mismatch, bad JSON) raises CorruptFileError naming the path and the fault. Errors opening the file
    (FileNotFoundError, PermissionError, ...) pass through unchanged."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return _parse_npz(f)
        except Exception as e:  # a damaged archive can fail in almost any way; all of them mean "corrupt"
            raise CorruptFileError(f"{path}: {type(e).__name__}: {e}") from e


def remove_orphaned_temps(directory: str | Path, max_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete the temp files `write_npz` left in `directory` when killed mid-write: those older than
    `max_age_s` whose target's lock (`<stem>.lock`, as RunStore and the data cache name it) is free.
    Returns the paths removed; files it cannot remove (e.g. a read-only directory) are left alone."""
    removed = []
    now = time.time()
    for tmp in Path(directory).glob(".*.tmp"):
        match = _TEMP_RE.fullmatch(tmp.name)
        try:
            if match is None or now - tmp.stat().st_mtime < max_age_s:
                continue
            with FileLock(tmp.parent / f"{match['target']}.lock", timeout=0):
                tmp.unlink()
            removed.append(tmp)
        except (OSError, Timeout):
            continue
    return removed


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@dataclass(frozen=True, eq=False)
class Record:
    """One run's result: its spec key, JSON-able `meta` (spec, status, timings, versions, ...) and named arrays.

    Two records are equal when key and meta are equal and the arrays have the same names, dtypes, shapes and
    bytes (so NaNs compare equal to themselves)."""

    key: str
    meta: dict
    arrays: dict[str, np.ndarray]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (
            self.key == other.key
            and self.meta == other.meta
            and self.arrays.keys() == other.arrays.keys()
            and all(_same_array(np.asarray(a), np.asarray(other.arrays[n])) for n, a in self.arrays.items())
        )


class RunStore:
    """A directory of records, one `<key>.npz` per run key, safe to share between processes.

    Every write of `<key>.npz` (save, moving a corrupt record aside) happens under the lock `<key>.lock`;
    reads need no lock because writes are atomic."""

    def __init__(self, root: str | Path | None = None):
        """Open (creating it if needed) the store at `root`, or at `default_cache_dir()` when None, and
        remove orphaned temp files (`remove_orphaned_temps`)."""
        self.root = store_root(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, FileLock] = {}
        remove_orphaned_temps(self.root)

    def path(self, key: str) -> Path:
        """The record file for `key`; ValueError unless `key` is a non-empty string of [0-9a-zA-Z_-]."""
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"invalid run key {key!r}: must match [0-9a-zA-Z_-]+")
        return self.root / f"{key}.npz"

    def _lock(self, key: str) -> FileLock:
        # One FileLock object per key, so that nested acquisitions in one thread are re-entrant.
        if key not in self._locks:
            self._locks[key] = FileLock(self.root / f"{key}.lock")
        return self._locks[key]

    def read(self, key: str) -> Record:
        """The stored record for `key`, verified, with no lock and no side effect: FileNotFoundError if
        absent, CorruptFileError if it does not verify, holds another key or is not a regular file (e.g. a
        directory); other errors opening it (PermissionError, ...) pass through."""
        path = self.path(key)
        if not stat.S_ISREG(path.stat().st_mode):
            raise CorruptFileError(f"{path}: not a regular file (a directory or a special file)")
        arrays, stored = read_npz(path)
        if stored.get("key") != key or not isinstance(stored.get("meta"), dict):
            raise CorruptFileError(f"{path}: holds key {stored.get('key')!r} (expected {key!r}) or no meta dict")
        return Record(key, stored["meta"], arrays)

    def _load_locked(self, key: str) -> Record | None:
        """`load`, for a caller that holds the key's lock."""
        try:
            return self.read(key)
        except FileNotFoundError:
            return None
        except CorruptFileError as e:
            aside = self._move_aside(key)
            warnings.warn(
                f"corrupt record {self.path(key)} ({e}); moved aside to {aside.name} and will be recomputed",
                CorruptRecordWarning,
                stacklevel=3,
            )
            return None

    def _move_aside(self, key: str) -> Path:
        return move_aside(self.path(key))

    def load(self, key: str) -> Record | None:
        """The stored record for `key`, or None if there is none. A corrupt record is reported with a
        CorruptRecordWarning, moved aside to `<key>.corrupt-<UTC timestamp>.npz` (its bytes kept), and None is
        returned. Waits for the key's lock only when the record is corrupt."""
        try:
            return self.read(key)
        except FileNotFoundError:
            return None
        except CorruptFileError:
            # Re-check under the lock: another process may have replaced the file meanwhile.
            with self._lock(key):
                return self._load_locked(key)

    def save(self, record: Record) -> Path:
        """Atomically write `record` to `path(record.key)`, replacing any previous one; returns the path."""
        path = self.path(record.key)
        with self._lock(record.key):
            write_npz(path, record.arrays, {"key": record.key, "meta": record.meta})
        return path

    def get_or_create(
        self, key: str, create: Callable[[], Record], refresh: bool = False, timeout: float | None = None
    ) -> Record:
        """The record for `key`, computing it with `create()` only if no valid one is stored (or if `refresh`).

        A valid stored record is returned without taking the lock (so a read-only store serves what it
        holds). Otherwise the key's lock is held while checking again and creating, so among processes asking
        at once exactly one calls `create()` and the others then load its result. Waits for the lock for
        `timeout` seconds (None: forever), then raises `filelock.Timeout`. If `create()` raises, the exception
        propagates and the store is unchanged. If writing the created record fails, RecordSaveError names
        the fallback file that holds it. The record returned is the one read back from disk, so every caller
        gets the same (JSON round-tripped) meta."""
        self.path(key)
        if not refresh:
            try:
                return self.read(key)
            except (FileNotFoundError, CorruptFileError):
                pass
        with self._lock(key).acquire(timeout=-1 if timeout is None else timeout):
            if not refresh:
                record = self._load_locked(key)
                if record is not None:
                    return record
            record = create()
            if not isinstance(record, Record) or record.key != key:
                raise ValueError(f"create() for key {key!r} returned {record!r:.200}, not a Record with that key")
            try:
                self.save(record)
            except OSError as e:
                raise self._save_fallback(record, e) from e
            return self.read(key)

    def _save_fallback(self, record: Record, error: OSError) -> RecordSaveError:
        """Write `record` under the system temp directory; the error to raise, naming both paths."""
        path = self.path(record.key)
        fallback = Path(tempfile.gettempdir()) / f"ncsim-{record.key}-{utc_stamp()}.npz"
        try:
            write_npz(fallback, record.arrays, {"key": record.key, "meta": record.meta})
            kept = f"the record was kept in {fallback}: move it to {path} once the store is writable"
        except OSError as e2:
            kept = f"writing it to {fallback} failed too ({e2}): the record is lost"
        return RecordSaveError(f"could not write record {path} ({error.strerror or error}); {kept}")

    def keys(self) -> list[str]:
        """Sorted keys of the records present (corrupt files moved aside and temp files excluded), after
        removing orphaned temp files."""
        remove_orphaned_temps(self.root)
        return sorted(p.stem for p in self.root.glob("*.npz") if _KEY_RE.fullmatch(p.stem))

    def __contains__(self, key: str) -> bool:
        """Whether a record file exists for `key` (without verifying it; `load` verifies)."""
        return self.path(key).is_file()
