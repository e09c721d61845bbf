"""Obtain a run: from the store when its record exists, else train it once and store it."""

from __future__ import annotations

from ncsim.spec import RunSpec
from ncsim.store import RunStore
from ncsim.train import train
from ncsim.trajectory import Trajectory


def obtain(spec: RunSpec, store: RunStore | None = None, refresh: bool = False,
           progress: bool = False) -> Trajectory:
    """The run's trajectory. Across processes sharing a store, exactly one trains a given spec
    (the store's lock); `refresh` retrains and overwrites."""
    store = store if store is not None else RunStore()
    record = store.get_or_create(spec.key(), lambda: train(spec, cache_dir=store.root, progress=progress),
                                 refresh=refresh)
    return Trajectory(record, spec)
