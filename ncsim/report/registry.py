"""The report's figures, each declared once: its file name, title, drawing function, the configurations
it reads and whether it runs the network. Everything else (the titles report.md shows, which figures a
session draws, which are drawn outside forked processes) derives from REGISTRY; claim files name their
figures by file name (FIGURES).

A comparison figure reads the configurations its table of ncsim/suite.toml names ([figures.<table>]:
its configurations, and for a contrast figure its rows and panels).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ncsim import figures, suite
from ncsim.report.aggregate import RecordedTest, figures_for
from ncsim.store import RunStore
from ncsim.suite import RunId
from ncsim.trajectory import Trajectory


@dataclass(frozen=True)
class Inputs:
    """What the figures of one report draw: the runs of each configuration over seeds, the runs asked for
    that are not in the store, the run store (None: none), the UFM imbalance sweeps per seed (None: those
    stored in the run store) and the tests of a claims session (None: no session recorded)."""

    runs: Mapping[str, Sequence[Trajectory]] = field(default_factory=dict)
    missing: Sequence[RunId] = ()
    cache_dir: str | Path | None = None
    sweeps: Mapping[int, Mapping] | None = None
    outcomes: Sequence[RecordedTest] | None = None

    def of(self, configs: Sequence[str]) -> list[Trajectory]:
        """The runs of the first of `configs` (a figure of one configuration's runs)."""
        return list(self.runs.get(configs[0], [])) if configs else []

    def missing_of(self, configs: Sequence[str]) -> list[RunId]:
        return [run for run in self.missing if run.config in configs]

    def stored_sweeps(self) -> Mapping[int, Mapping]:
        if self.sweeps is not None:
            return self.sweeps
        from ncsim import ufm  # imports torch: only when the sweeps are drawn

        if not self.cache_dir:
            return {}
        sweep = suite.ufm_imbalance_sweep()
        return ufm.stored_imbalance_sweeps(RunStore(self.cache_dir), sweep.R_values, sweep.seeds, **sweep.arguments)


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report. `draw(inputs, configs)` returns it (a matplotlib Figure); `reads` is the
    configurations it draws, or the name of the suite.toml table that names them (a comparison);
    `network`: it runs the network (a forward pass, or ncsim.probes), so it is drawn in the report's own
    process, never in a forked one (ncsim.report.render); `session`: it draws a claims session's check records, and only
    with one."""

    file: str
    title: str
    draw: Callable[[Inputs, tuple[str, ...]], object]
    reads: tuple[str, ...] | str = ()
    network: bool = False
    session: bool = False

    @property
    def table(self) -> str | None:
        """The suite.toml table ([figures.<table>]) that names its configurations; None for another."""
        return self.reads if isinstance(self.reads, str) else None

    def configs(self) -> tuple[str, ...]:
        return suite.figure_configs(self.reads) if isinstance(self.reads, str) else self.reads


def _records(inputs: Inputs) -> object:
    tests = inputs.outcomes or ()
    return figures.verdicts([c for t in tests for c in t.checks], [t.outcome for t in tests for _ in t.checks])


STANDARD = (suite.STANDARD,)
REGISTRY = (  # in the order the report shows them
    FigureSpec("verdicts.png", "Verdicts over seeds", lambda i, c: _records(i), session=True),
    FigureSpec("training.png", "Training dynamics", lambda i, c: figures.training(i.of(c), i.missing_of(c)), STANDARD),
    FigureSpec(
        "nc_metrics.png", "NC1-NC4 over training", lambda i, c: figures.nc_metrics(i.of(c), i.missing_of(c)), STANDARD
    ),
    FigureSpec(
        "layerwise.png", "Layer-wise collapse", lambda i, c: figures.layerwise(i.of(c), i.missing_of(c)), STANDARD
    ),
    FigureSpec(
        "optimizers.png", "Optimizer comparison", lambda i, c: figures.optimizers(i.runs, i.missing_of(c)), "optimizers"
    ),
    FigureSpec(
        "geometry.png",
        "Geometry at the end of training",
        lambda i, c: figures.geometry(i.of(c), i.missing_of(c), cache_dir=i.cache_dir),
        STANDARD,
        network=True,
    ),
    FigureSpec("ablation.png", "Regime ablation", lambda i, c: figures.ablation(i.runs, i.missing_of(c)), "ablation"),
    FigureSpec(
        "weight_decay.png",
        "Weight-decay dose-response",
        lambda i, c: figures.weight_decay(i.runs, i.missing_of(c)),
        "weight-decay",
    ),
    FigureSpec("losses.png", "All losses collapse", lambda i, c: figures.losses(i.runs, i.missing_of(c)), "losses"),
    FigureSpec(
        "label_noise.png",
        "Collapse under label noise",
        lambda i, c: figures.label_noise(i.runs, i.missing_of(c)),
        "label-noise",
    ),
    FigureSpec(
        "imbalance.png",
        "Minority collapse under class imbalance",
        lambda i, c: figures.imbalance(i.runs, i.missing_of(c)),
        "imbalance",
        network=True,
    ),
    FigureSpec(
        "transfer.png",
        "Collapse on new classes",
        lambda i, c: figures.transfer(i.runs, i.missing_of(c)),
        "transfer",
        network=True,
    ),
    FigureSpec(
        "ufm_imbalance.png", "UFM geometry under class imbalance", lambda i, c: figures.ufm_imbalance(i.stored_sweeps())
    ),
)
BY_FILE = {f.file: f for f in REGISTRY}
FIGURES = {f.file: f.title for f in REGISTRY}  # file -> title, in the order the report shows them
FIGURE_TABLES = {f.file: f.table for f in REGISTRY if f.table}  # a comparison -> its suite.toml table
RUNS_THE_NETWORK = {f.file for f in REGISTRY if f.network}


def figure_makers(
    runs: Mapping[str, Sequence[Trajectory]],
    missing: Sequence[RunId] = (),
    *,
    cache_dir=None,
    sweeps: Mapping[int, Mapping] | None = None,
    outcomes: Sequence[RecordedTest] | None = None,
) -> dict[str, Callable[[], object]]:
    """File name -> a function drawing that figure of REGISTRY (a matplotlib Figure). With a claims
    session recorded (`outcomes` not None): verdicts.png, which draws the check records of `outcomes`
    (with each test's outcome), and the figures the checked claims declare (all, when they declare none);
    without one, every figure but those of a session and a comparison none of whose variants is among
    the runs asked for. ufm_imbalance.png draws `sweeps` (None: the suite's sweep, ncsim.suite.
    ufm_imbalance_sweep, as stored in the run store at `cache_dir`)."""
    inputs = Inputs(runs, missing, cache_dir, sweeps, outcomes)

    def maker(spec: FigureSpec) -> Callable[[], object]:
        return lambda: spec.draw(inputs, spec.configs())

    if outcomes is None:
        asked = set(runs) | {run.config for run in missing}
        return {
            f.file: maker(f)
            for f in REGISTRY
            if not f.session and (f.table is None or asked & (set(f.configs()) - {suite.STANDARD}))
        }
    declared = {f.file for f in REGISTRY if f.session} | set(figures_for(outcomes))
    drawn = [f for f in REGISTRY if f.file in declared] if len(declared) > 1 else REGISTRY
    return {f.file: maker(f) for f in drawn}
