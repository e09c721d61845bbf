"""Claim 9, train versus test: the same metrics measured on test features collapse less than on train
features.

Source: Papyan, Han & Donoho, PNAS 2020, Sec. 5 and SI (NC is a train-set phenomenon; test features are
a secondary view); Hui, Belkin & Nakkiran, "Limitations of Neural Collapse for understanding
generalization", 2022 (test collapse is weaker).
"""

import pytest


def ratio_test_to_train(run, metric: str) -> float:
    return run.final(f"test.{metric}") / run.final(f"train.{metric}")


@pytest.mark.runs("standard")
@pytest.mark.parametrize("metric", ("nc1", "nc2_etf_distance"))
def test_test_features_collapse_less(run, metric, claim_check):
    claim_check(f"test_over_train_{metric}_min", ratio_test_to_train(run, metric), seed=run.spec.seed, run=run.label)


@pytest.mark.runs("standard")
def test_ncc_error_higher_on_test(run, claim_check):
    d = run.final("test.ncc_error") - run.final("train.ncc_error")
    claim_check("test_minus_train_ncc_error_min", d, seed=run.spec.seed, run=run.label)
