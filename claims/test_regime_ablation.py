"""Claim 8, which parts of the training regime collapse needs: without weight decay the collapse is
measurably weaker; under MSE loss collapse still happens.

Sources: Papyan, Han & Donoho, PNAS 2020 (weight decay in every experiment); Zhu et al., NeurIPS 2021,
Sec. 5.2 (weight decay matters for NC); Rangamani & Banburski-Fahey 2022 (regularisation drives NC);
Han, Papyan & Donoho, "Neural Collapse under MSE loss", ICLR 2022.
"""

from claims.test_nc1_variability import nc1_end, nc1_init_over_end
from ncsim.checks import Check

FIGURES = ("ablation.png",)


def ratio_to_default(column: str):
    """The end value of `column` in this run over the default run's (same seed): > 1 when weaker."""
    return lambda run, default: run.final(column) / default.final(column)


def end_values(column: str):
    return lambda run, default: f"{run.spec.name} {run.final(column):.3g} vs default {default.final(column):.3g}"


CHECKS = (
    Check("no_wd_nc1_ratio_min", ratio_to_default("train.nc1"), configs=("no-wd",), against="standard",
          controls=("self",), note=end_values("train.nc1")),
    Check("no_wd_nc3_ratio_min", ratio_to_default("train.nc3"), configs=("no-wd",), against="standard",
          controls=("self",), note=end_values("train.nc3")),
    Check("mse_nc1_end_max", nc1_end, configs=("mse",), controls=("init",)),
    Check("mse_nc1_init_over_end_min", nc1_init_over_end, configs=("mse",), controls=("init",)),
)


def test_regime_ablation(check, runs, claim_check):
    """Without weight decay collapse is weaker than in the default run; under MSE loss it still happens."""
    claim_check.of(check, runs)
