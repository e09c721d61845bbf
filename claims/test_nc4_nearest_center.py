"""Claim 5, NC4 simplification to the nearest class centre: on the train set the network's decision
argmax(W h + b) agrees with the nearest train class mean.

Source: Papyan, Han & Donoho, PNAS 2020, Fig. 7 (the NCC mismatch falls to 0 during TPT).
"""

import pytest


def nc4_end(run) -> float:
    return run.final("train.nc4")


def nc4_post_tpt_mean(run) -> float:
    """Mean mismatch over the second half of the terminal phase; NaN without TPT."""
    epochs, nc4 = run.post_tpt("train.nc4")
    return float(nc4[len(nc4) // 2:].mean()) if len(nc4) else float("nan")


@pytest.mark.runs("standard")
def test_ncc_agrees_at_end(run, claim_check):
    claim_check("nc4_end_max", nc4_end(run), seed=run.spec.seed, run=run.label)


@pytest.mark.runs("standard")
def test_ncc_agrees_late_in_tpt(run, claim_check):
    claim_check("nc4_late_tpt_mean_max", nc4_post_tpt_mean(run), seed=run.spec.seed, run=run.label)
