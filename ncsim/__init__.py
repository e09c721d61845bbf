"""ncsim: Neural Collapse, tested.

Data flows one way: spec (ncsim.spec) -> run (ncsim.train) -> record (ncsim.store) -> claims (claims/)
and figures (ncsim.figures). The metric math lives in ncsim.metrics.

The Python entry points (ncsim.api), importable from here:

    ncsim.load_run(label_or_key, cache_dir=None) -> Trajectory      a stored run; nothing trains
    ncsim.obtain_run(config_or_spec, seed=None, cache_dir=None)     from the store, or trained once
    ncsim.collapse_metrics(features, labels, W=None, b=None)        NC1-NC4 of any features
    ncsim.RunSpec, ncsim.Trajectory                                  a run's description and its view
    ncsim.Recorder(name, seed=..., model=..., ...)                    record your own training loop

and ncsim.export (tidy rows, pandas, CSV) and ncsim.sweep (many runs, locally or on Dask). They are
imported on first use, so that `import ncsim` stays as light as the version number.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_run": "ncsim.api",
    "obtain_run": "ncsim.api",
    "collapse_metrics": "ncsim.metrics",
    "RunSpec": "ncsim.spec",
    "Trajectory": "ncsim.trajectory",
    "Recorder": "ncsim.recorder",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'ncsim' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
