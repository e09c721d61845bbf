"""The UFM imbalance figure: the geometry of the unconstrained features model's minimisers against the
imbalance ratio (the sweeps claims/test_ufm_imbalance.py stores)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from ncsim.figures.base import CLASSIFIER, MEANS, WIDTH, band, finish, log_scale, message, seeds_note, styled


@styled
def ufm_imbalance(sweeps: Mapping[int, Mapping[str, np.ndarray]], num_classes: int = 4) -> Figure:
    """The unconstrained features model's global minimiser against the imbalance ratio R
    (stored by claims/test_ufm_imbalance.py; `sweeps` maps each seed to its sweep): mean pairwise cosines of the
    minority and of the majority classifier rows, with the minority-collapse threshold R* (Fang, He, Long
    & Su, PNAS 2021), the Gram distance of the class means (centred at their unweighted mean) and of W to
    the simplex ETF and to the SELI geometry (Thrampoulidis et al., NeurIPS 2022; sweeps without the
    SELI columns are drawn without them), and the minority/majority classifier norm ratio."""
    from ncsim.ufm import collapse_threshold  # here: ncsim.ufm imports torch

    title = "UFM geometry under class imbalance"
    if not sweeps:
        return message(title, ["No imbalance sweep in the run store: claims/test_ufm_imbalance.py stores one."])
    fig = Figure(figsize=(WIDTH, 3.4), layout="constrained")
    cos_ax, etf_ax, norm_ax = fig.subplots(1, 3, sharex=True)

    def key(name):
        return lambda sweep: (sweep["R"], sweep[name])

    seeds, sweeps = list(sweeps), list(sweeps.values())
    band(cos_ax, sweeps, key("minority_cos"), label="minority rows", color=CLASSIFIER)
    band(cos_ax, sweeps, key("majority_cos"), label="majority rows", color=MEANS)
    cos_ax.axhline(-1 / (num_classes - 1), ls=":", color="0.4", label="ETF: −1/(C−1)")
    cos_ax.axhline(1.0, ls="-.", color="0.4", lw=1, label="collapsed: 1")
    thresholds = sorted({collapse_threshold(sweep) for sweep in sweeps} - {np.inf})
    if thresholds:
        cos_ax.axvline(
            thresholds[0],
            ls="--",
            color=CLASSIFIER,
            lw=1,
            label="R*: minority collapse at " + ", ".join(f"{R:g}" for R in thresholds),
        )
    band(etf_ax, sweeps, key("means_etf_distance"), label="class means: to the ETF", color="C2")
    band(etf_ax, sweeps, key("w_etf_distance"), label="classifier rows W: to the ETF", color="C4")
    band(etf_ax, sweeps, key("seli_means_distance"), label="class means: to SELI", color="C2", ls="--")
    band(etf_ax, sweeps, key("seli_w_distance"), label="classifier rows W: to SELI", color="C4", ls="--")
    band(norm_ax, sweeps, key("minority_norm_ratio"), label="‖w_minority‖ / ‖w_majority‖", color="C5")
    cos_ax.set(title="Mean pairwise cosine of rows", ylabel="cosine")
    etf_ax.set(title="Distance to the ETF and to SELI", ylabel="Gram distance (0 = ETF or SELI)")
    norm_ax.set(title="Classifier norm ratio", ylabel="minority / majority")
    for ax in (cos_ax, etf_ax, norm_ax):
        log_scale(ax, "x")
        ax.set_xlabel("imbalance ratio R")
    return finish(
        fig, f"{title} (CE UFM without bias, C = {num_classes})", seeds_note(seeds), (), (cos_ax, etf_ax, norm_ax)
    )


# ---- the verdict figure ----------------------------------------------------------------------------
