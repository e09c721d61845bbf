"""Claim 5 of the theory issue, on a trained network: the MSE-optimal linear classifier of the
penultimate features (Webb & Lowe; Papyan, Han & Donoho, PNAS 2020, Proposition 1) is, once the
features have collapsed (NC1, NC2), self-dual to the class means (NC3) and decides as the nearest
class mean (NC4).

W = diag(pi) M^T Sigma_T^+, b = pi - W mu_G (ncsim.ufm.webb_lowe_classifier; pi = 1/C for balanced
classes, the proposition's form), fitted on the final train features of the default run.
"""

import numpy as np
import pytest

from ncsim import metrics, ufm


def webb_lowe_statistics(h: np.ndarray, y: np.ndarray, num_classes: int = 10) -> dict[str, float]:
    """NC3 and NC4 of the Webb-Lowe classifier fitted on (h, y), and its relative deviation from the
    least-squares solution computed by np.linalg.lstsq."""
    W, b = ufm.webb_lowe_classifier(h, y, num_classes)
    m = metrics.collapse_metrics(h, y, W, b, num_classes)
    return {"nc3": m["nc3"], "nc4": m["nc4"], "lstsq": ufm.lstsq_deviation(h, y, num_classes, W, b)}


@pytest.fixture
def statistics(run):
    f = run.features("train")
    return webb_lowe_statistics(f["h"], f["y"])


@pytest.mark.runs("standard")
@pytest.mark.parametrize("statistic", ("lstsq", "nc3", "nc4"))
def test_webb_lowe_on_collapsed_features(run, statistics, statistic, claim_check):
    claim_check(f"wl_cnn_{statistic}_max", statistics[statistic], seed=run.spec.seed, run=run.label)
