"""MNIST-1D (Greydanus & Kalyan 2020), built with the `mnist1d` package's procedural generator.

`make_dataset(get_dataset_args())` gives 4000 train / 1000 test signals of length 40 in 10 classes,
seed 42, bit-identical to the frozen copy; it takes about a second and needs no network. The package's
`get_dataset` (a network download that is then unpickled) is never used. The generated arrays are
cached as a checksummed npz in the run store's directory; a corrupt cache file is moved aside and
regenerated, under a file lock, so that concurrent processes regenerate it once.
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from ncsim import store
from ncsim.spec import NUM_CLASSES, RunSpec, SpecError

if TYPE_CHECKING:
    import torch

ARRAYS = ("x", "y", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors: x (N, 1, L) float32, y (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = NUM_CLASSES


def generator_args(overrides: dict | None = None):
    """mnist1d's default generator arguments with `overrides` applied."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args()
    for k, v in (overrides or {}).items():
        if not hasattr(args, k):
            raise ValueError(f"mnist1d has no generator argument {k!r}")
        setattr(args, k, v)
    return args


def generate(overrides: dict | None = None) -> dict[str, np.ndarray]:
    """Run the procedural generator, leaving the caller's Python and numpy global RNG state as it was
    (the generator reseeds both)."""
    from mnist1d.data import make_dataset

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        ds = make_dataset(generator_args(overrides))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {k: np.ascontiguousarray(ds[k]) for k in ARRAYS}


def cached_arrays(overrides: dict | None = None, cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """The generator's arrays, from `<cache_dir>/data/mnist1d-<hash>.npz` when valid (read without a
    lock), else generated and written atomically while holding `mnist1d-<hash>.lock`; a corrupt cache
    file is moved aside under that lock too."""
    overrides = json.loads(json.dumps(dict(overrides or {})))  # as the cache file's meta holds them
    tag = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir or store.default_cache_dir()) / "data" / f"mnist1d-{tag}.npz"
    try:
        return _read_cache(path, overrides)
    except (FileNotFoundError, store.CorruptFileError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_suffix(".lock")):
        store.remove_orphaned_temps(path.parent)
        try:
            return _read_cache(path, overrides)
        except FileNotFoundError:
            pass
        except store.CorruptFileError as e:
            aside = store.move_aside(path)
            warnings.warn(
                f"corrupt MNIST-1D cache {path} ({e}); moved to {aside.name} and regenerating",
                store.CorruptRecordWarning,
                stacklevel=2,
            )
        arrays = generate(overrides)
        store.write_npz(path, arrays, {"overrides": overrides})
        return arrays


def _read_cache(path: Path, overrides: dict) -> dict[str, np.ndarray]:
    """The cache file's arrays; CorruptFileError unless it verifies and holds `overrides`' data."""
    arrays, meta = store.read_npz(path)
    if meta.get("overrides") != overrides or set(arrays) != set(ARRAYS):
        raise store.CorruptFileError(f"{path}: holds other data than expected")
    return arrays


def minority_classes(num_classes: int) -> tuple[int, ...]:
    """The classes a spec's imbalance R subsamples: the upper half, C/2..C-1 (K_B = C/2 of Fang et al.'s
    minority classes)."""
    return tuple(range(num_classes // 2, num_classes))


def subset_indices(y: np.ndarray, train_size: int, imbalance: float, seed: int, num_classes: int) -> np.ndarray:
    """Indices of the training subset: per class, the first ceil share of a seeded permutation.
    train_size > 0 keeps about train_size samples, split over classes as in the full set;
    imbalance R > 1 keeps 1/R of each class in the upper half (classes C/2..C-1, the minority)."""
    rng = np.random.default_rng(seed)
    keep = []
    scale = train_size / len(y) if train_size else 1.0
    minority = minority_classes(num_classes)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        share = scale / (imbalance if c in minority else 1.0)
        keep.append(np.sort(idx[: max(1, int(round(share * len(idx))))]))
    return np.sort(np.concatenate(keep))


def load(spec: RunSpec, cache_dir: str | Path | None = None) -> Dataset:
    """The dataset a spec trains and is evaluated on: the train subset per spec (its classes, size,
    imbalance, label noise) and the test set of its classes (all C unless train_classes = k: 0..k-1)."""
    import torch

    a = cached_arrays(dict(spec.data), cache_dir)
    x, y = a["x"], a["y"].astype(np.int64)
    for split in ("y", "y_test"):
        if not np.array_equal(np.unique(a[split]), np.arange(NUM_CLASSES)):
            raise ValueError(f"the generated {split} labels are not exactly the classes 0..{NUM_CLASSES - 1}")
    x_test, y_test = a["x_test"], a["y_test"].astype(np.int64)
    num_classes = spec.train_classes or NUM_CLASSES
    if num_classes < NUM_CLASSES:
        (x, y), (x_test, y_test) = (
            (x[y < num_classes], y[y < num_classes]),
            (x_test[y_test < num_classes], y_test[y_test < num_classes]),
        )
    if spec.train_size or spec.imbalance != 1.0:
        if spec.train_size > len(y):
            raise SpecError(f"train_size={spec.train_size} exceeds the {len(y)} training signals")
        idx = subset_indices(y, spec.train_size, spec.imbalance, spec.seed, num_classes)
        x, y = x[idx], y[idx]
    if spec.label_noise:
        y = noisy_labels(y, spec.label_noise, spec.seed, num_classes)

    def t(arr):
        return torch.as_tensor(np.asarray(arr, dtype=np.float32)).unsqueeze(1).contiguous()

    return Dataset(
        x=t(x), y=torch.as_tensor(y), x_test=t(x_test), y_test=torch.as_tensor(y_test), num_classes=num_classes
    )


def train_set_size(spec: RunSpec, cache_dir: str | Path | None = None) -> int:
    """N_train: the number of train signals `load(spec, cache_dir)` gives (its classes, train_size and
    imbalance decide it)."""
    return len(load(spec, cache_dir).y)


def noisy_labels(y: np.ndarray, p: float, seed: int, num_classes: int) -> np.ndarray:
    """Symmetric label noise: each label, with probability p, is replaced by a class drawn uniformly from
    all C (possibly its own: a fraction p (C-1)/C of the labels changes), as Nguyen et al. 2023's code
    (julilien/MemorizationDilation, datasets.py). Seeded by the run's seed, apart from the subset's draw."""
    rng = np.random.default_rng([seed, 1])
    redraw = rng.random(len(y)) < p
    return np.where(redraw, rng.integers(0, num_classes, len(y)), y)
