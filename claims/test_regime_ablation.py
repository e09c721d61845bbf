"""Claim 8, which parts of the training regime collapse needs: without weight decay the collapse is
measurably weaker; under MSE loss collapse still happens.

Sources: Papyan, Han & Donoho, PNAS 2020 (weight decay in every experiment); Zhu et al., NeurIPS 2021,
Sec. 5.2 (weight decay matters for NC); Rangamani & Banburski-Fahey 2022 (regularisation drives NC);
Han, Papyan & Donoho, "Neural Collapse under MSE loss", ICLR 2022.
"""

import pytest

METRICS = ("nc1", "nc3")


@pytest.mark.runs("no-wd")
@pytest.mark.parametrize("metric", METRICS)
def test_no_weight_decay_weakens_collapse(run, metric, get_run, claim_check):
    """End metric without weight decay over the default run's (same seed): > 1 when weaker."""
    ref = get_run("standard", run.spec.seed)
    a, b = run.final(f"train.{metric}"), ref.final(f"train.{metric}")
    claim_check(f"no_wd_{metric}_ratio_min", a / b, seed=run.spec.seed, run=run.label,
                note=f"no weight decay {a:.3g} vs default {b:.3g}")


@pytest.mark.runs("mse")
def test_mse_collapses(run, claim_check):
    claim_check("mse_nc1_end_max", run.final("train.nc1"), seed=run.spec.seed, run=run.label)


@pytest.mark.runs("mse")
def test_mse_nc1_falls(run, claim_check):
    claim_check("mse_nc1_init_over_end_min", run["train.nc1"][0] / run.final("train.nc1"),
                seed=run.spec.seed, run=run.label)
