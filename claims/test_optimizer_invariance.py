"""Claim 7, optimizer invariance: SGD and Adam both reach the terminal phase and collapse, and their end
NC metrics agree within a stated factor; LBFGS is measured the same way.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021,
Sec. 5.1 and Fig. 3 (SGD, Adam and LBFGS all show NC1-NC3 shrinking on MNIST / CIFAR-10).
"""

from claims.test_nc1_variability import nc1_end
from claims.test_terminal_phase import tpt_fraction
from ncsim.checks import Check

FIGURES = ("optimizers.png",)
OPTIMIZERS = ("adam", "lbfgs")


def ratio_to_sgd(column: str):
    """The end value of `column` under this optimizer over SGD's (same seed); decided by an equivalence
    test on the log ratios, and reported as a measured finding."""
    return lambda run, sgd: run.final(column) / sgd.final(column)


def end_values(column: str):
    return lambda run, sgd: f"{run.spec.optimizer} {run.final(column):.3g} vs sgd {sgd.final(column):.3g}"


CHECKS = (
    Check("tpt_fraction_max", tpt_fraction, configs=OPTIMIZERS, controls=("init", "no-bn")),
    Check("optimizer_nc1_end_max", nc1_end, configs=OPTIMIZERS, controls=("init",)),
    Check("optimizer_nc1_ratio_within", ratio_to_sgd("train.nc1"), configs=OPTIMIZERS, against="standard",
          controls=("untrained",), note=end_values("train.nc1")),
    Check("optimizer_nc3_ratio_within", ratio_to_sgd("train.nc3"), configs=OPTIMIZERS, against="standard",
          controls=("untrained",), note=end_values("train.nc3")),
    Check("optimizer_nc2_etf_distance_ratio_within", ratio_to_sgd("train.nc2_etf_distance"), configs=OPTIMIZERS,
          against="standard", controls=("untrained",), note=end_values("train.nc2_etf_distance")),
)


def test_optimizer_invariance(check, runs, claim_check):
    """Adam and LBFGS reach TPT and collapse, and their end metrics are equivalent to SGD's within a
    factor fixed beforehand (same seeds, paired)."""
    claim_check.of(check, runs)
