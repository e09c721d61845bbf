"""Claim 7, optimizer invariance: SGD and Adam both reach the terminal phase and collapse, and their end
NC metrics agree within a stated factor; LBFGS is measured the same way.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021,
Sec. 5.1 and Fig. 3 (SGD, Adam and LBFGS all show NC1-NC3 shrinking on MNIST / CIFAR-10).
"""

import pytest

from claims.test_terminal_phase import tpt_fraction

COMPARED = ("nc1", "nc3", "nc2_etf_distance")


def factor_apart(a: float, b: float) -> float:
    """max(a/b, b/a): 1 when equal."""
    return max(a / b, b / a)


@pytest.mark.runs("adam", "lbfgs")
def test_reaches_tpt(run, claim_check):
    claim_check("tpt_fraction_max", tpt_fraction(run), seed=run.spec.seed, run=run.label)


@pytest.mark.runs("adam", "lbfgs")
def test_collapses(run, claim_check):
    claim_check("optimizer_nc1_end_max", run.final("train.nc1"), seed=run.spec.seed, run=run.label)


@pytest.mark.runs("adam", "lbfgs")
@pytest.mark.parametrize("metric", COMPARED)
def test_agrees_with_sgd(run, metric, get_run, claim_check):
    """The end value of `metric` under this optimizer is within a factor of SGD's (same seed)."""
    sgd = get_run("standard", run.spec.seed)
    a, b = run.final(f"train.{metric}"), sgd.final(f"train.{metric}")
    claim_check(f"optimizer_{metric}_factor_max", factor_apart(a, b), seed=run.spec.seed, run=run.label,
                note=f"{run.spec.optimizer} {a:.3g} vs sgd {b:.3g}")
