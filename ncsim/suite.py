"""Where a run comes from: the claims suite's configurations, seeds and runs (ncsim/suite.toml).

A run of the suite is identified by a `RunId` (configuration name, seed); its spec is the preset run
of that name with that seed (`config`), and `obtain` serves it from the run store, training it once
when the store has no record. The CLI (`ncsim train --preset ...`), the claims, the negative controls
and the report all go through here, so they train and read the very same specs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from ncsim.spec import RunSpec, load_specs
from ncsim.store import RunStore
from ncsim.trajectory import Trajectory

TABLE_PATH = Path(__file__).resolve().parent / "suite.toml"


@lru_cache(maxsize=None)
def table() -> dict:
    """ncsim/suite.toml as a dict."""
    with open(TABLE_PATH, "rb") as f:
        return tomllib.load(f)


DEFAULT_SEEDS: tuple[int, ...] = tuple(table()["default_seeds"])
PRESETS: tuple[str, ...] = tuple(table()["presets"])
CONFIGS: tuple[str, ...] = tuple(table()["configs"])
# The configurations the claims read and the report draws (the others serve negative controls only).
CLAIM_CONFIGS: tuple[str, ...] = tuple(n for n, c in table()["configs"].items() if not c.get("control"))


class RunId(NamedTuple):
    """One run of the suite: a configuration name, a training seed and, when it is varied too, the
    MNIST-1D generator seed (None: the generator's default, 42)."""

    config: str
    seed: int
    data_seed: int | None = None

    @property
    def label(self) -> str:
        """The readable id used in test ids and figures, e.g. "standard-s0" or "standard-s3-d3"."""
        return f"{self.config}-s{self.seed}" + ("" if self.data_seed is None else f"-d{self.data_seed}")


@lru_cache(maxsize=None)
def preset_runs() -> dict[str, RunSpec]:
    """Name -> spec (seed as in the preset) for every run of the suite's presets."""
    out: dict[str, RunSpec] = {}
    for preset in PRESETS:
        for spec in load_specs(preset):
            out.setdefault(spec.name, spec)
    return out


def config(run: RunId | str, seed: int | None = None) -> RunSpec:
    """The spec of a suite run (`config(RunId("adam", 3))` or `config("adam", 3)`); KeyError listing
    the known configurations otherwise."""
    run = run if seed is None else RunId(run, seed)
    known = preset_runs()
    if run.config not in known:
        raise KeyError(f"unknown run configuration {run.config!r}; known: {sorted(known)}")
    spec = known[run.config].replace(seed=run.seed)
    if run.data_seed is not None:
        spec = spec.replace(data={**dict(spec.data), "seed": run.data_seed})
    return spec


def cost(config: str) -> float:
    """Training time of a configuration relative to a default run (1 when the table says nothing)."""
    return float(table()["configs"].get(config, {}).get("cost", 1.0))


def colour(config: str) -> str:
    """The configuration's colour in every figure (grey when the table names none)."""
    return table()["configs"].get(config, {}).get("colour", "0.3")


def figure_configs(figure: str) -> tuple[str, ...]:
    """The configurations a comparison figure draws (suite.toml, [figures.<name>])."""
    return tuple(table()["figures"][figure]["configs"])


def parse_seeds(raw: str | None) -> list[int]:
    """"1,2,3" -> [1, 2, 3]; None -> DEFAULT_SEEDS; ValueError naming the bad input otherwise."""
    if raw is None:
        return list(DEFAULT_SEEDS)
    try:
        seeds = [int(s) for s in str(raw).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"seeds must be comma-separated integers, got {raw!r}") from None
    if not seeds:
        raise ValueError("seeds list is empty")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be >= 0, got {raw!r}")
    return seeds


def obtain(spec: RunSpec, store: RunStore | None = None, refresh: bool = False,
           progress: bool = False, wait: bool = True) -> Trajectory:
    """The run's trajectory: the stored record, or a new one trained and stored. Across processes
    sharing a store exactly one trains a given spec (the store's lock); `refresh` retrains and
    overwrites; with `wait` False, a run another process is training raises filelock.Timeout at once
    instead of waiting for it. The trajectory's `trained` is True only when this call trained it
    (decided inside the lock)."""
    store = store if store is not None else RunStore()
    trained = []

    def create():
        from ncsim.train import train  # torch is imported only by a process that trains

        trained.append(True)
        return train(spec, cache_dir=store.root, progress=progress)

    traj = Trajectory(store.get_or_create(spec.key(), create, refresh=refresh, timeout=None if wait else 0), spec)
    traj.trained = bool(trained)
    return traj
