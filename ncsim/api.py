"""The Python entry points, also importable from `ncsim` itself:

    import ncsim
    t = ncsim.load_run("standard-s0")                    # a stored run, by label or key prefix
    t = ncsim.obtain_run("adam", seed=3)                 # a suite run: from the store, or trained once
    t = ncsim.obtain_run(ncsim.RunSpec(epochs=5), cache_dir="/tmp/runs")
    m = ncsim.collapse_metrics(features, labels, W, b)   # NC1-NC4 of any features

Each returns what the rest of the package uses: a `Trajectory` (ncsim.trajectory) over the run's
record in the store (ncsim.store; `cache_dir` None is $NCSIM_CACHE or ~/.cache/ncsim), and the dict
of ncsim.metrics.collapse_metrics. A run is trained exactly as `ncsim train` and the claims train it
(ncsim.suite.obtain_run: the store's lock, atomic writes), so all three share one store.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ncsim import suite
from ncsim.metrics import collapse_metrics
from ncsim.spec import RunSpec, SpecError, load_specs
from ncsim.store import CorruptFileError, RunStore, store_root
from ncsim.trajectory import Trajectory


class RunLookupError(LookupError):
    """No stored run, or more than one, answers to a label or key prefix; the message lists the
    candidates (the close matches, or the ambiguous ones)."""


class DeviceUnavailable(SpecError):
    """A run that must be trained asks for a device this machine's torch cannot use."""


def check_store_path(cache_dir: str | Path | None = None) -> Path:
    """The store root `cache_dir` names (None or empty: the default, ncsim.store.store_root);
    NotADirectoryError naming the part of it that exists and is not a directory."""
    root = store_root(cache_dir)
    for p in (root, *root.parents):
        if p.exists() and not p.is_dir():
            raise NotADirectoryError(f"run store {str(root)!r}: {str(p)!r} is not a directory")
    return root


def open_store(cache_dir: str | Path | None = None) -> RunStore:
    """The run store at `cache_dir` (None or empty: the default), with a clear error when the path or
    a parent of it is not a directory (check_store_path, not the store's mkdir error)."""
    return RunStore(check_store_path(cache_dir))


def record_label(meta: dict) -> str | None:
    """The label a stored run answers to: that of its spec named apart from the suite's configurations
    (suite.named_apart), so that a record trained under a configuration's name with other settings never
    answers to the configuration's label, whatever label it was stored with; the stored label when the
    spec cannot be read; None when the record holds neither (e.g. a UFM sweep)."""
    try:
        return suite.named_apart(RunSpec.from_dict(meta["spec"])).label()
    except (KeyError, TypeError, SpecError):
        label = meta.get("label")
        return label if isinstance(label, str) else None


def stored_labels(store: RunStore) -> dict[str, str | None]:
    """Key -> label (record_label) of every record in the store (None for a record that is unreadable
    or holds no label, e.g. a UFM sweep)."""
    out: dict[str, str | None] = {}
    for key in store.keys():
        try:
            out[key] = record_label(store.read(key).meta)
        except (CorruptFileError, OSError):
            out[key] = None
    return out


def find_runs(store: RunStore, query: str) -> list[str]:
    """The keys of the stored records that `query` names: the keys it is a prefix of, or, when it is
    a prefix of none, those whose label is `query` (e.g. "standard-s0"). Sorted; empty when none."""
    keys = [k for k in store.keys() if k.startswith(query)] if query else []
    if keys:
        return keys
    return sorted(k for k, label in stored_labels(store).items() if label == query)


def close_matches(store: RunStore, query: str, n: int = 5) -> list[str]:
    """Up to `n` labels and keys of stored runs that look like `query` (for a "did you mean")."""
    labels = stored_labels(store)
    names = sorted({label for label in labels.values() if label} | set(labels))
    return difflib.get_close_matches(query, names, n=n, cutoff=0.5)


def matching_runs(store: RunStore, query: str) -> list[str]:
    """The keys `query` names (find_runs), at least one; RunLookupError listing the close matches (or
    how many records are stored) when there is none."""
    keys = find_runs(store, query)
    if not keys:
        near = close_matches(store, query)
        hint = f"; close matches: {', '.join(near)}" if near else f"; {len(store.keys())} records stored"
        raise RunLookupError(f"no stored run matches {query!r} in {store.root}{hint}")
    return keys


def _describe(store: RunStore, key: str) -> str:
    """ "<key> (<label>, <epochs> epochs, <status>)" for an ambiguity message."""
    try:
        m = store.read(key).meta
    except (CorruptFileError, OSError) as e:
        return f"{key} (unreadable: {e})"
    return f"{key} ({m.get('label', '?')}, {m.get('epochs_run', '?')} epochs, {m.get('status', '?')})"


def load_run(label_or_key: str, cache_dir: str | Path | None = None) -> Trajectory:
    """The stored run a label ("standard-s0") or a key prefix names, as a Trajectory. Unlike obtain_run
    (a run described by its spec or configuration: from the store, or trained once) it never trains:
    it finds a run already in the store by the label or key it was stored under. RunLookupError
    listing the close matches when no run answers, or the candidates (key, label, epochs, status)
    when several do; CorruptFileError when the one that answers does not verify."""
    store = open_store(cache_dir)
    keys = matching_runs(store, str(label_or_key))
    if len(keys) > 1:
        raise RunLookupError(
            f"{label_or_key!r} names {len(keys)} stored runs in {store.root}: "
            f"{'; '.join(_describe(store, k) for k in keys)}; give a longer key prefix"
        )
    record = store.read(keys[0])
    if "spec" not in record.meta:
        raise RunLookupError(
            f"record {keys[0]} in {store.root} is not a training run (kind {record.meta.get('kind', '?')!r})"
        )
    return Trajectory(record)


def resolve_spec(
    config_or_spec: RunSpec | dict | str | Path, seed: int | None = None, data_seed: int | None = None
) -> RunSpec:
    """The one spec a description names, with `seed` and `data_seed` (the MNIST-1D generator seed)
    set when given: a RunSpec; a dict of spec fields; the name of a suite configuration ("standard",
    "adam", ...: the spec the claims train, ncsim.suite.config); or a preset name or TOML file that
    describes exactly one run. SpecError naming the problem otherwise."""
    if isinstance(config_or_spec, RunSpec):
        spec = config_or_spec
    elif isinstance(config_or_spec, dict):
        spec = RunSpec.from_dict(config_or_spec)
    elif isinstance(config_or_spec, str) and config_or_spec in suite.preset_runs():
        spec = suite.config(config_or_spec, 0)
    elif isinstance(config_or_spec, (str, Path)):
        specs = load_specs(config_or_spec)
        if len({s.name for s in specs}) > 1 or len(specs) > 1 and seed is None:
            raise SpecError(
                f"{str(config_or_spec)!r} describes {len(specs)} runs "
                f"({', '.join(sorted({s.name for s in specs}))}); name one configuration "
                f"(known: {', '.join(sorted(suite.preset_runs()))}), give a seed or pass a RunSpec"
            )
        spec = specs[0]
    else:
        raise SpecError(
            f"expected a RunSpec, a dict, a configuration name or a TOML path, got {type(config_or_spec).__name__}"
        )
    spec = spec if seed is None else spec.replace(seed=seed)
    return spec if data_seed is None else spec.with_data(seed=data_seed)


def check_device(spec: RunSpec, store: RunStore | None = None, refresh: bool = False) -> None:
    """DeviceUnavailable when `spec` asks for CUDA, torch here has none, and the run would have to be
    trained (it is not in `store`, or `refresh`); a stored CUDA run is served on any machine."""
    if spec.device != "cuda" or (store is not None and not refresh and spec.key() in store):
        return
    import torch

    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU visible"
        raise DeviceUnavailable(
            f"run {spec.label()} asks for device 'cuda' but torch {torch.__version__} "
            f'({build}) has no CUDA device; set device = "cpu" or install a CUDA build of torch'
        )


def obtain_run(
    config_or_spec: RunSpec | dict | str | Path,
    seed: int | None = None,
    cache_dir: str | Path | None = None,
    *,
    data_seed: int | None = None,
    refresh: bool = False,
    progress: bool = False,
) -> Trajectory:
    """The run a description names (resolve_spec), from the store when recorded, else trained once
    on one thread and stored (ncsim.suite.obtain_run); `refresh` retrains it. The trajectory's
    `trained` says whether this call trained it. SpecError for a bad description, DeviceUnavailable for a CUDA run that
    cannot be trained here."""
    spec = resolve_spec(config_or_spec, seed, data_seed)
    store = open_store(cache_dir)
    check_device(spec, store, refresh)
    return suite.obtain_run(spec, store, refresh=refresh, progress=progress)


__all__ = [
    "load_run",
    "obtain_run",
    "collapse_metrics",
    "resolve_spec",
    "find_runs",
    "matching_runs",
    "close_matches",
    "open_store",
    "check_device",
    "RunLookupError",
    "DeviceUnavailable",
]
