"""Claim 9, train versus test: the same metrics measured on test features collapse less than on train
features.

Source: Papyan, Han & Donoho, PNAS 2020, Sec. 5 and SI (NC is a train-set phenomenon; test features are
a secondary view); Hui, Belkin & Nakkiran, "Limitations of Neural Collapse for understanding
generalization", 2022 (test collapse is weaker).
"""

from ncsim.checks import Check

FIGURES = ("nc_metrics.png",)


def ratio_test_to_train(metric: str):
    return lambda run: run.final(f"test.{metric}") / run.final(f"train.{metric}")


def ncc_error_gap(run) -> float:
    return run.final("test.ncc_error") - run.final("train.ncc_error")


CHECKS = (
    Check("test_over_train_nc1_min", ratio_test_to_train("nc1"), controls=("train-as-test",)),
    Check("test_over_train_nc2_etf_distance_min", ratio_test_to_train("nc2_etf_distance"),
          controls=("train-as-test",)),
    Check("test_minus_train_ncc_error_min", ncc_error_gap, controls=("train-as-test",)),
)


def test_test_features_collapse_less(check, runs, claim_check):
    """The test features are less collapsed than the train features, and the nearest train class
    mean errs more often on them."""
    claim_check.of(check, runs)
