"""Claim 9, collapse on test features: Neural Collapse occurs on the train set but not on the test set;
after the terminal phase starts, train-feature collapse keeps going while test-feature collapse stalls.

Source: Hui, Belkin & Nakkiran, "Limitations of Neural Collapse for Understanding Generalization in Deep
Learning", arXiv 2202.08384, 2022, abstract: "We refine the Neural Collapse conjecture into two separate
conjectures: collapse on the train set (an optimization property) and collapse on the test distribution
(a generalization property). We find that while Neural Collapse often occurs on the train set, it does not
occur on the test set." (Papyan, Han & Donoho 2020 define NC on train activations and say nothing of test
features collapsing less; a test NC1 above the train NC1 alone follows from any generalisation gap and
is not checked.) Both statistics use the same epochs: the stable TPT of the run (train error) and the end;
the fall ratio, a statement about the course of the terminal phase, is decided over the runs that have
one to observe (claims.shared.TERMINAL_PHASE).
"""

from claims.shared import MIN_POINTS, TERMINAL_PHASE
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("nc_metrics.png",)


def nc1_fall(run, split: str) -> float:
    """NC1 of the split at the stable TPT over its end value (> 1: it kept falling); NaN without TPT."""
    return run.at_tpt(f"{split}.nc1") / run.final(f"{split}.nc1")


def train_fall_over_test_fall(run) -> float:
    """How many times more train NC1 falls than test NC1 from the stable TPT to the end (1: alike)."""
    return nc1_fall(run, "train") / nc1_fall(run, "test")


def nc1_end_on_test(run) -> float:
    return run.final("test.nc1")


def falls(run) -> str:
    epochs, _ = run.post_tpt("test.nc1")
    return (
        f"NC1 from the stable TPT (epoch {run.tpt_epoch}, {len(epochs)} evaluations) to the end: "
        f"train {run.at_tpt('train.nc1'):.3g} -> {run.final('train.nc1'):.3g}, "
        f"test {run.at_tpt('test.nc1'):.3g} -> {run.final('test.nc1'):.3g}"
        + ("" if len(epochs) >= MIN_POINTS else " (few points)")
    )


# After TPT train NC1 falls several times more than test NC1, and test NC1 ends above the
# level that counts as collapse on the train set.
CHECKS = Checks(
    "test_test_collapse_stalls",
    Check(
        "train_over_test_nc1_fall_min",
        train_fall_over_test_fall,
        controls=("train-as-test", "lr0-at-tpt"),
        note=falls,
        premise=TERMINAL_PHASE,
    ),
    Check("test_nc1_end_min", nc1_end_on_test, controls=("train-as-test",), note=falls),
)
