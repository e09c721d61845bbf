"""Claim 17, a fixed simplex-ETF classifier: training with the last layer fixed to a simplex ETF reaches
the test accuracy of a learned classifier, and the features collapse onto the fixed frame.

Source: Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021,
Sec. 5 (improving network design), and the authors' README (tding1/Neural-Collapse): "one may fix the
last-layer classifier to be a Simplex ETF with d = K for network training, which reduces memory cost by
over 20% on ResNet18 without sacrificing the generalization performance"; their ETF_fc (models/resnet.py):
W = the simplex ETF with unit-norm rows in the first C feature coordinates, frozen, the bias trained
(ncsim.models.simplex_etf). Yang et al., NeurIPS 2022, train with the same fixed frame. Here d = 4w = 128
(the suite's network), not d = C: the claim checked is the accuracy and the collapse, not the memory.
With W fixed, NC3 measures the class means against the fixed frame itself.
"""

from operator import methodcaller

from claims.shared import nc1_end, nc3_end
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("ablation.png",)
FIXED = ("etf-classifier",)


def error_excess(run, learned) -> float:
    """Final test error with the fixed ETF classifier minus that of the learned classifier (same seed):
    > 0 when the fixed frame generalises worse."""
    return run.final("test_error") - learned.final("test_error")


def error_note(run, learned) -> str:
    return f"test error: fixed ETF {run.final('test_error'):.3g} vs learned {learned.final('test_error'):.3g}"


# With W fixed to a simplex ETF the test error is not worse than the learned classifier's
# beyond the stated margin, and the features collapse (NC1, NC2) onto the fixed frame (NC3).
CHECKS = Checks(
    "test_fixed_etf_classifier",
    Check(
        "etf_test_error_excess_max",
        error_excess,
        configs=FIXED,
        against="standard",
        controls=("untrained",),
        note=error_note,
    ),
    Check("nc1_end_max", nc1_end, configs=FIXED, controls=("init", "no-bn")),
    Check(
        "nc2_etf_distance_end_max", methodcaller("final", "train.nc2_etf_distance"), configs=FIXED, controls=("init",)
    ),
    Check("nc3_end_max", nc3_end, configs=FIXED, controls=("init",)),
)
