"""Claim 8, which parts of the training regime collapse needs: without weight decay the collapse is
measurably weaker; under MSE loss collapse still happens, all of it (NC1-NC4; the central path is
claim test_central_path).

Sources: Papyan, Han & Donoho, PNAS 2020 (weight decay in every experiment); Zhu et al., NeurIPS 2021,
Sec. 5.2 (weight decay matters for NC); Rangamani & Banburski-Fahey 2022 (regularisation drives NC);
Han, Papyan & Donoho, "Neural Collapse under MSE loss", ICLR 2022.
"""

from operator import methodcaller

from claims.shared import nc1_end, nc1_init_over_end, nc3_end, nc4_end
from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("ablation.png",)


def ratio_to_default(column: str):
    """The end value of `column` in this run over the default run's (same seed): > 1 when weaker."""
    return lambda run, default: run.final(column) / default.final(column)


def end_values(column: str):
    return lambda run, default: f"{run.spec.name} {run.final(column):.3g} vs default {default.final(column):.3g}"


# Without weight decay collapse is weaker than in the default run; under MSE loss NC1-NC4 still
# hold.
CHECKS = Checks(
    "test_regime_ablation",
    Check(
        "no_wd_nc1_ratio_min",
        ratio_to_default("train.nc1"),
        configs=("no-wd",),
        against="standard",
        controls=("self",),
        note=end_values("train.nc1"),
    ),
    Check(
        "no_wd_nc3_ratio_min",
        ratio_to_default("train.nc3"),
        configs=("no-wd",),
        against="standard",
        controls=("self",),
        note=end_values("train.nc3"),
    ),
    Check("mse_nc1_end_max", nc1_end, configs=("mse",), controls=("init",)),
    Check("mse_nc1_init_over_end_min", nc1_init_over_end, configs=("mse",), controls=("init",)),
    # NC2-NC4 under MSE, at the thresholds of the cross-entropy claims (Han et al. 2022, Figs. 2-5)
    Check(
        "nc2_etf_distance_end_max",
        methodcaller("final", "train.nc2_etf_distance"),
        configs=("mse",),
        controls=("init",),
    ),
    Check(
        "w_etf_distance_end_max", methodcaller("final", "train.w_etf_distance"), configs=("mse",), controls=("init",)
    ),
    Check("nc3_end_max", nc3_end, configs=("mse",), controls=("init",)),
    Check("nc4_end_max", nc4_end, configs=("mse",), controls=("init",)),
)
