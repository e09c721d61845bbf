"""Where a run comes from: the claims suite's configurations, seeds and runs (ncsim/suite.toml).

A run of the suite is identified by a `RunId` (configuration name, seed); its spec is the preset run
of that name with that seed (`config`), and `obtain_run` serves it from the run store, training it once
when the store has no record. The CLI (`ncsim train --preset ...`), the claims, the negative controls
and the report all go through here, so they train and read the very same specs.

The configurations can also come from a user's spec (`user_configurations`, pytest's --spec FILE): the
spec stands for "standard", and every other configuration is the user's spec with that configuration's
changes from the standard preset (`variant_changes`: Adam's optimizer and lr, MSE's loss, ...), left
out with the reason where those changes do not make a valid spec of it. Either way a session's
configurations are a `Configurations`, whose `spec(run)` gives the spec of a RunId.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from ncsim.spec import RunSpec, SpecError, distinct_name, load_specs
from ncsim.store import RunStore
from ncsim.trajectory import Trajectory

TABLE_PATH = Path(__file__).resolve().parent / "suite.toml"


@cache
def table() -> dict:
    """ncsim/suite.toml as a dict."""
    with open(TABLE_PATH, "rb") as f:
        return tomllib.load(f)


DEFAULT_SEEDS: tuple[int, ...] = tuple(table()["default_seeds"])
SEED_BUDGET: float = float(table()["seed_budget"])
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


@cache
def preset_runs() -> dict[str, RunSpec]:
    """Name -> spec (seed as in the preset) for every run of the suite's presets."""
    out: dict[str, RunSpec] = {}
    for preset in PRESETS:
        for spec in load_specs(preset):
            out.setdefault(spec.name, spec)
    return out


STANDARD = "standard"  # the default configuration, of which the others are variants


@dataclass(frozen=True)
class Configurations:
    """The configurations a session runs: name -> spec (trained on the session's seeds: `spec`), those
    left out with the reason, and the user spec file they derive from (None: the suite's presets)."""

    specs: Mapping[str, RunSpec]
    left_out: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None

    def spec(self, run: RunId) -> RunSpec:
        """The spec of one run: its configuration's spec with the run's seed and, when it is varied, its
        MNIST-1D generator seed; KeyError naming the configuration (and why it is left out) otherwise."""
        if run.config in self.left_out:
            raise KeyError(f"configuration {run.config!r} is left out: {self.left_out[run.config]}")
        if run.config not in self.specs:
            raise KeyError(f"unknown run configuration {run.config!r}; known: {sorted(self.specs)}")
        spec = self.specs[run.config].replace(seed=run.seed)
        if run.data_seed is not None:
            spec = spec.with_data(seed=run.data_seed)
        return spec


@cache
def suite_configurations() -> Configurations:
    """The suite's own configurations: every run of its presets."""
    return Configurations(preset_runs())


def config(run: RunId | str, seed: int | None = None) -> RunSpec:
    """The spec of a suite run (`config(RunId("adam", 3))` or `config("adam", 3)`); KeyError listing
    the known configurations otherwise."""
    return suite_configurations().spec(run if seed is None else RunId(run, seed))


def variant_changes(name: str) -> dict[str, Any]:
    """The fields in which the suite's configuration `name` differs from standard (its name and seed
    aside), e.g. {"optimizer": "adam", "lr": 0.001} for adam; under "data", the MNIST-1D generator
    arguments it sets otherwise (None: back to the generator's default)."""
    runs = preset_runs()
    base, variant = runs[STANDARD].to_dict(), runs[name].to_dict()
    changes = {k: v for k, v in variant.items() if k not in ("name", "seed", "data") and v != base[k]}
    data = {
        k: variant["data"].get(k)
        for k in {*base["data"], *variant["data"]}
        if variant["data"].get(k) != base["data"].get(k)
    }
    return {**changes, **({"data": data} if data else {})}


def derive(base: RunSpec, name: str) -> RunSpec:
    """The user's spec `base` with the changes of configuration `name` (variant_changes), named
    "<base name>+<name>"; SpecError when they do not make a valid spec."""
    changes = variant_changes(name)
    data = changes.pop("data", {})
    return base.replace(**changes, name=f"{base.name}+{name}").with_data(**data)


def named_apart(spec: RunSpec) -> RunSpec:
    """`spec` under a name that never passes it off as one of the suite's configurations: unchanged
    unless it bears a configuration's name ("standard", "adam", ...) and differs from that configuration
    beyond its seeds, then named "<name>-<6 hex digits of its seedless key>" (ncsim.spec.distinct_name).
    So `--set epochs=2` on the standard preset, a spec file named "standard" or a RunSpec built by
    hand is never labelled "standard-s0"."""
    runs = preset_runs()
    return distinct_name(spec, runs[spec.name]) if spec.name in runs else spec


def load_user_spec(source: str | Path) -> RunSpec:
    """The one run a user's spec file describes (ncsim.spec.load_specs; its seed is replaced by each
    session seed), named apart from the suite's configurations (named_apart); SpecError naming the
    problem."""
    specs = load_specs(source)
    if len(specs) != 1:
        raise SpecError(
            f"{Path(source).name}: describes {len(specs)} runs; a spec to check the claims on is "
            f"one run (no [[runs]] tables, no `seeds`: the session's seeds replace its seed)"
        )
    return named_apart(specs[0])


def user_configurations(source: str | Path) -> Configurations:
    """The configurations of a user's spec file: its run as standard, and each other configuration of
    the suite derived from it (`derive`), left out with the reason where its changes do not apply."""
    base = load_user_spec(source)
    specs, left_out = {STANDARD: base}, {}
    for name in preset_runs():
        if name == STANDARD:
            continue
        try:
            specs[name] = derive(base, name)
        except SpecError as e:
            changes = ", ".join(f"{k}={v!r}" for k, v in variant_changes(name).items())
            left_out[name] = f"its changes from {STANDARD} ({changes}) do not apply to {Path(source).name}: {e}"
    return Configurations(specs, left_out, str(source))


def cost(config: str) -> float:
    """Training time of a configuration relative to a default run (1 when the table says nothing)."""
    return float(table()["configs"].get(config, {}).get("cost", 1.0))


def colour(config: str) -> str:
    """The configuration's colour in every figure (grey when the table names none)."""
    return table()["configs"].get(config, {}).get("colour", "0.3")


class NewClassProbe(NamedTuple):
    """How a network is probed on classes it never trained on (ncsim.probes.new_class_statistics): the
    held-out `classes`, and `shots` examples per class in each of `episodes` few-shot episodes."""

    classes: tuple[int, ...]
    shots: int
    episodes: int


def new_class_probe(config: str) -> NewClassProbe:
    """The new-class probe of a configuration trained on some classes only (suite.toml,
    [configs.<name>]'s new_classes), the one its claim and its figure both use; KeyError naming the
    configuration when it has none."""
    entry = table()["configs"].get(config, {}).get("new_classes")
    if entry is None:
        raise KeyError(f"configuration {config!r} has no new_classes probe in {TABLE_PATH}")
    return NewClassProbe(tuple(int(c) for c in entry["classes"]), int(entry["shots"]), int(entry["episodes"]))


class UFMSweep(NamedTuple):
    """The UFM imbalance sweep of the suite (suite.toml, [ufm-imbalance-sweep]): its `seeds`, its ratios
    `R_values` and the other keyword `arguments` of ncsim.ufm.imbalance_sweep (num_classes, dim,
    n_min, lam)."""

    seeds: tuple[int, ...]
    R_values: tuple[float, ...]
    arguments: dict[str, Any]


def ufm_imbalance_sweep() -> UFMSweep:
    """The sweep that claims/test_ufm_imbalance.py stores and the figure ufm_imbalance.png draws."""
    entry = dict(table()["ufm-imbalance-sweep"])
    seeds, R_values = tuple(int(s) for s in entry.pop("seeds")), tuple(float(R) for R in entry.pop("R_values"))
    return UFMSweep(seeds, R_values, entry)


def figure_configs(figure: str) -> tuple[str, ...]:
    """The configurations a comparison figure draws (suite.toml, [figures.<name>])."""
    return tuple(table()["figures"][figure]["configs"])


MAX_RUNS = 10_000  # beyond this a seed range is a typo (0-4999999), not a sweep
_SEEDS_PART = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")


def parse_seed_list(raw: str) -> list[int]:
    """Seeds from integers and inclusive ranges, comma-separated: "0-49" -> 0..49, "0,1,5" ->
    [0, 1, 5], "0-4,10" -> [0, ..., 4, 10], in the order given: the one syntax of every --seeds
    (pytest's and ncsim's). ValueError naming the input when a part is not a seed >= 0 or a range a-b
    with a <= b, when a seed is given twice (a repeated seed would count one run twice in a decision
    over seeds), or when there are over MAX_RUNS."""
    seeds: list[int] = []
    for part in str(raw).split(","):
        if not part.strip():
            continue
        match = _SEEDS_PART.fullmatch(part.strip())
        if match is None:
            raise ValueError(
                f"seeds take integers >= 0 and ranges a-b, comma-separated (e.g. 0-49 or 0,1,5), got {raw!r}"
            )
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise ValueError(f"seed range {part.strip()!r} runs backwards")
        if len(seeds) + high - low + 1 > MAX_RUNS:
            raise ValueError(f"{raw!r} gives more than {MAX_RUNS} seeds")
        seeds.extend(range(low, high + 1))
    if not seeds:
        raise ValueError(f"no seeds in {raw!r}")
    repeated = sorted(seed for seed, n in Counter(seeds).items() if n > 1)
    if repeated:
        raise ValueError(f"seed(s) {', '.join(map(str, repeated))} given more than once in {raw!r}")
    return seeds


def parse_seeds(raw: str | None) -> list[int]:
    """--seeds (parse_seed_list's syntax: "1,2,3", "0-4", "0-2,7"); None -> DEFAULT_SEEDS."""
    return list(DEFAULT_SEEDS) if raw is None else parse_seed_list(raw)


class ThreadCountWarning(UserWarning):
    """A stored run served to a caller that asked for another thread count than it was trained on."""


def threads_note(traj: Trajectory, threads: int) -> str | None:
    """What a caller asking for `threads` training threads should know of a stored run trained on
    another count (its meta's timings.threads), or None: a run's arrays depend on the thread count
    (the order of torch's reductions), so the record is not what a training on `threads` would give."""
    timings = traj.meta.get("timings")
    recorded = timings.get("threads") if isinstance(timings, dict) else None
    if not isinstance(recorded, int) or recorded == threads:
        return None
    return (
        f"run {traj.label} ({traj.key}) was served from the store as trained on "
        f"{recorded} threads, not {threads}: its values differ from a training on {threads} in the last digits "
        f"(retrain it with --refresh to store the {threads}-thread run)"
    )


def obtain_run(
    spec: RunSpec,
    store: RunStore | None = None,
    refresh: bool = False,
    progress: bool = False,
    wait: bool = True,
    threads: int | None = None,
) -> Trajectory:
    """The run's trajectory: the stored record, or a new one trained and stored. Across processes
    sharing a store exactly one trains a given spec (the store's lock); `refresh` retrains and
    overwrites; with `wait` False, a run another process is training raises filelock.Timeout at once
    instead of waiting for it. A run trains on `threads` torch and BLAS threads (None:
    ncsim.threads.TRAIN_THREADS, one), whatever the process's setting; a stored run trained on another
    count is served with a ThreadCountWarning (threads_note). The spec is named apart from the suite's
    configurations when it differs from the one whose name it bears (named_apart). The trajectory's
    `trained` is True only when this call trained it (decided inside the lock)."""
    from ncsim.threads import TRAIN_THREADS

    store = store if store is not None else RunStore()
    spec, threads = named_apart(spec), threads or TRAIN_THREADS
    trained = []

    def create():
        from ncsim.threads import limit_threads
        from ncsim.train import train  # torch is imported only by a process that trains

        trained.append(True)
        with limit_threads(threads):
            return train(spec, cache_dir=store.root, progress=progress)

    traj = Trajectory(
        store.get_or_create(spec.key(), create, refresh=refresh, timeout=None if wait else 0),
        spec,
        data_cache=store.root,
    )
    traj.trained = bool(trained)
    note = None if traj.trained else threads_note(traj, threads)
    if note is not None:
        warnings.warn(note, ThreadCountWarning, stacklevel=2)
    return traj
