"""Claim 3, NC2 convergence to a simplex ETF: the centered class means, and the classifier rows, become
equinorm and equiangular with pairwise cosines -> -1/(C-1).

Source: Papyan, Han & Donoho, PNAS 2020, Figs. 2-4 (std/avg of norms; std of cosines; avg |cos +
1/(C-1)|), and Zhu et al., NeurIPS 2021, Sec. 5 (the normalised Gram distance to the ETF).
"""

import pytest

END_METRICS = ("nc2_equinorm", "w_equinorm", "nc2_equiangularity", "w_equiangularity",
               "nc2_maxangle", "w_maxangle", "nc2_etf_distance", "w_etf_distance")


def end_value(run, metric: str) -> float:
    return run.final(f"train.{metric}")


def shrink_factor(run, metric: str) -> float:
    """The metric at initialisation divided by its end value (> 1: it moved toward the ETF)."""
    return run[f"train.{metric}"][0] / run.final(f"train.{metric}")


@pytest.mark.runs("standard")
@pytest.mark.parametrize("metric", END_METRICS)
def test_etf_at_end(run, metric, claim_check):
    """At the end of training the means (nc2_*) and classifier rows (w_*) are close to a simplex ETF."""
    claim_check(f"{metric}_end_max", end_value(run, metric), seed=run.spec.seed, run=run.label)


@pytest.mark.runs("standard")
@pytest.mark.parametrize("metric", ("nc2_maxangle", "nc2_etf_distance"))
def test_etf_distance_shrinks(run, metric, claim_check):
    """The deviation from the ETF angles shrinks from initialisation to the end of training."""
    claim_check(f"{metric}_shrink_min", shrink_factor(run, metric), seed=run.spec.seed, run=run.label)
