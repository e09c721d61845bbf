"""The controls a claim check must fail on: regimes in which the effect it measures is absent or weaker.

A check that also passes where its effect is absent proves nothing. Each claim file's CHECKS names,
for every statistic, the controls on which its tolerance must not hold (tests/test_negative_controls.py
asserts it); the discrimination table (ncsim.discrimination) measures every check on every physical
control, to show how far from its threshold the nearest failing one lies.

Two kinds:
- physical: a real network in which the effect is weaker for a physical reason: no training, training
  stopped at the stable TPT, a learning rate of 0 from the onset of the terminal phase on (its
  parameters frozen while its minibatch passes go on), no batch norm, less weight decay (the dose-response of
  presets/weight-decay.toml), or, for a statistic of class imbalance, balanced classes, or, for a
  least-squares statistic of an MSE run, the cross-entropy run; for a
  comparison, two real regimes a known change apart (the weaker decay against the default, and the
  reverse). These are the evidence that a check discriminates.
- synthetic: a software check of a statistic's direction or of a comparison's null: the train metrics
  offered as the test ones, the metric columns in reverse epoch order, a run compared with itself or
  with its own initialisation. They show the code can fail, not that the effect is measured.

Every control is built from the runs of one seed through `obtain(config, seed)`, the claims' own runs,
so under pytest they are trained once into the run store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ncsim.store import Record
from ncsim.trajectory import Trajectory

Obtain = Callable[[str, int], Trajectory]

PHYSICAL, SYNTHETIC = "physical", "synthetic"


def _train_as_test(run: Trajectory) -> Trajectory:
    """The run with its train-set metrics offered as the test-set ones (no generalisation gap)."""
    arrays = dict(run.record.arrays)
    for k in list(arrays):
        if k.startswith("train.") or k.startswith("train_"):
            arrays["test" + k[len("train") :]] = arrays[k]
    return Trajectory(Record(run.key, run.meta, arrays), run.spec, run.data_cache)


def _reversed(run: Trajectory) -> Trajectory:
    """The run with its test and metric columns in reverse epoch order (train error, hence TPT, kept)."""
    arrays = {k: (v[::-1] if k.startswith(("train.", "test.", "test_")) else v) for k, v in run.record.arrays.items()}
    return Trajectory(Record(run.key, run.meta, arrays), run.spec, run.data_cache)


def _at_tpt(run: Trajectory) -> Trajectory:
    if run.tpt_epoch is None:
        raise ValueError(f"{run.label} never reaches its TPT: no at-tpt control")
    return run.truncated(run.tpt_epoch)


STANDARD = "standard"


@dataclass(frozen=True)
class Control:
    """One control: its `name` (as CHECKS name it), `kind` (PHYSICAL or SYNTHETIC), what it is, and how
    it is built from the runs of a seed: `build(obtain, seed)` gives a Trajectory, or for a `pair`
    control (a check `against` a reference) the pair (run, reference). `every_row` False: a physical
    control of one kind of statistic only, measured where a check names it, not on every row of the
    discrimination table (PHYSICAL_CONTROLS)."""

    name: str
    kind: str
    what: str
    build: Callable[[Obtain, int], object]
    pair: bool = False
    every_row: bool = True

    @property
    def physical(self) -> bool:
        return self.kind == PHYSICAL


def _config(name: str) -> Callable[[Obtain, int], Trajectory]:
    return lambda obtain, seed: obtain(name, seed)


def _pair(run: str, reference: str) -> Callable[[Obtain, int], tuple[Trajectory, Trajectory]]:
    return lambda obtain, seed: (obtain(run, seed), obtain(reference, seed))


def _standard(transform: Callable[[Trajectory], Trajectory]) -> Callable[[Obtain, int], Trajectory]:
    return lambda obtain, seed: transform(obtain(STANDARD, seed))


CONTROLS = {
    c.name: c
    for c in (
        Control(
            "init", PHYSICAL, "the default network at initialisation (no training)", _standard(lambda r: r.truncated(0))
        ),
        Control(
            "at-tpt",
            PHYSICAL,
            "the default run stopped at its stable TPT epoch (no terminal phase)",
            _standard(_at_tpt),
        ),
        Control(
            "lr0-at-tpt",
            PHYSICAL,
            "the default run with its learning rate set to 0 once two evaluations in a row find zero train "
            "error (a terminal phase without training)",
            _config("lr0-at-tpt"),
        ),
        Control(
            "no-bn",
            PHYSICAL,
            "the seed README's CNN without batch norm (never reaches zero train error)",
            _config("no-bn"),
        ),
        Control("no-wd", PHYSICAL, "the default regime without weight decay", _config("no-wd")),
        Control("wd-tenth", PHYSICAL, "the default regime with a tenth of its weight decay", _config("wd-tenth")),
        Control("wd-fifth", PHYSICAL, "the default regime with a fifth of its weight decay", _config("wd-fifth")),
        Control("wd-half", PHYSICAL, "the default regime with half its weight decay", _config("wd-half")),
        Control(  # the control of an imbalance statistic only: it is the default run itself
            "balanced",
            PHYSICAL,
            "the default run, every class equally sampled (R = 1)",
            _config(STANDARD),
            every_row=False,
        ),
        Control(  # the control of a least-squares statistic of an MSE run only: the default run itself
            "cross-entropy",
            PHYSICAL,
            "the default run, trained with cross-entropy: its classifier minimises another loss than least squares",
            _config(STANDARD),
            every_row=False,
        ),
        Control(
            "train-as-test", SYNTHETIC, "the train-set metrics offered as the test-set ones", _standard(_train_as_test)
        ),
        Control("reversed", SYNTHETIC, "the metric columns in reverse epoch order (TPT kept)", _standard(_reversed)),
        Control(
            "wd-half-vs-default",
            PHYSICAL,
            "the regime with half the default's weight decay compared with the default run (a small change)",
            _pair("wd-half", STANDARD),
            pair=True,
        ),
        Control(
            "wd-fifth-vs-default",
            PHYSICAL,
            "the regime with a fifth of the default's weight decay compared with the default run",
            _pair("wd-fifth", STANDARD),
            pair=True,
        ),
        Control(
            "default-vs-wd-fifth",
            PHYSICAL,
            "the default run compared with the regime with a fifth of its weight decay (the change reversed)",
            _pair(STANDARD, "wd-fifth"),
            pair=True,
        ),
        Control(
            "self",
            SYNTHETIC,
            "the default run compared with itself (no regime change)",
            lambda obtain, seed: (obtain(STANDARD, seed),) * 2,
            pair=True,
        ),
        Control(
            "untrained",
            SYNTHETIC,
            "the default network at initialisation compared with the default run",
            lambda obtain, seed: (obtain(STANDARD, seed).truncated(0), obtain(STANDARD, seed)),
            pair=True,
        ),
        Control(
            "untrained-reference",
            SYNTHETIC,
            "the default run compared with its own initialisation (a change in the run's favour)",
            lambda obtain, seed: (obtain(STANDARD, seed), obtain(STANDARD, seed).truncated(0)),
            pair=True,
        ),
    )
}
# The physical controls the discrimination table measures every check on: those of a run for a check
# of one run, the comparisons of the dose-response for a comparison.
PHYSICAL_CONTROLS = tuple(n for n, c in CONTROLS.items() if c.physical and c.every_row)


def measure(check, control: str, obtain: Obtain, seed: int) -> float:
    """The statistic of `check` (ncsim.checks.Check) on control `control` built from the runs of
    `seed`: of the pair for a comparison, of the run otherwise."""
    c = CONTROLS[control]
    built = c.build(obtain, seed)
    return check.measure(*built) if c.pair else check.measure(built)


def premised(check, control: str, obtain: Obtain, seeds) -> list[int]:
    """The seeds whose `control` run (the first of a pair) meets the premise of `check`'s statement
    (ncsim.checks.Premise): those a check is decided on; all of them for a check with no premise."""
    if check.premise is None:
        return list(seeds)
    c = CONTROLS[control]
    return [s for s in seeds if check.premise.meets(c.build(obtain, s)[0] if c.pair else c.build(obtain, s))]


def applicable(check, control: str) -> bool:
    """Whether `control` fits `check`: pair controls go with comparisons, run controls with the rest."""
    return CONTROLS[control].pair == (check.against is not None)
