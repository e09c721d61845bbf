"""UFM claim 6: under class imbalance the UFM minimiser leaves the simplex ETF for the SELI geometry as
the regularisation vanishes, and at finite regularisation the minority classifiers collapse together
once the imbalance ratio R passes a finite threshold.

Sources:
- Thrampoulidis, Kini, Vakilian & Behnia, "Imbalance Trouble: Revisiting Neural-Collapse Geometry",
  NeurIPS 2022 (arXiv 2208.05512), abstract: "we prove for the UFM with cross-entropy loss and vanishing
  regularization that, irrespective of class imbalances, the embeddings and classifiers always
  interpolate a simplex-encoded label matrix and that their individual geometries are determined by the
  SVD factors of this same label matrix", and "we caution that convergence worsens with increasing
  imbalances". SELI (their Definition 2) is ncsim.ufm.seli_geometry: classifier Gram (P D P)^(1/2),
  class-mean Gram (P D P)^(+1/2), class-mean logits P (P = I - 11^T/C, D = diag(n_c)).
- Fang, He, Long & Su, "Exploring Deep Neural Networks via Layer-Peeled Model: Minority Collapse in
  Imbalanced Training", PNAS 2021: Minority Collapse, the minority classifiers becoming
  indistinguishable (pairwise cosine 1) when the imbalance ratio is large.

Setup: the CE UFM without bias (the model of both papers), C = 4, p = 4, the first 2 classes majority
with n_maj = R n_min, n_min = 1, lambda_W = lambda_H = lambda, LBFGS, seeds 0 and 1 (each reaches the same
minimiser). (With a regularised bias, as this sweep had before, the bias takes over: at lambda = 5e-3 the
minority rows are parallel at R = 100 but shrink to 0 by R = 200, where their cosine means nothing, and
the path comes nowhere near SELI in the range solved: the classifier Gram is 0.46 from SELI at lambda = 1e-8,
R = 100, against 0.05 without bias.) Three computations:

1. The sweep over R (lambda = 5e-3, R from 1 to 1000 log-spaced, refined by bisection around the
   minority-collapse threshold R*; ncsim.ufm.imbalance_sweep, stored in the run store for the report's
   figure). The class means are centred at the unweighted mean of the class means (an exact simplex ETF
   then measures 0 whatever the counts; centred at the count-weighted sample mean it would measure 0.27
   at R = 2 and 0.75 at R = 100, which is how the previous version of this claim passed for a trivial
   reason). R* is the smallest R whose minority rows have cosine >= 1 - 1e-4 (ncsim.ufm.COLLAPSE_TOL).
2. The threshold at lambda = 1e-2, 5e-3, 2.5e-3 (bisection over 1..300), against the closed form
   R_c = 1/(2 lambda) - 1 derived in ncsim.ufm.minority_collapse_ratio: the collapsed configuration is a
   strict saddle below R_c and stable above it. Fang et al. show the collapse as R -> infinity; here it
   happens at a finite R, and R_c grows as 1/lambda.
3. The regularisation path at R = 2, 5, 10, 20, 50, 100: lambda = 1e-2 .. 1e-6. SELI is the
   vanishing-regularisation limit, so what is compared at finite lambda is the distance to SELI
   (ncsim.metrics.direction_distance of the classifier Gram, of the centred class means' Gram and of the
   class-mean logits, the largest of the three): it must fall as lambda falls, be at lambda = 1e-6 at
   most half the distance to the ETF, and grow with R (the paper's caution). At lambda = 5e-3, the
   sweep's regularisation, the geometry is not SELI at large R (it is minority-collapsed): the sweep
   records the SELI distances for the figure, and no check holds it to SELI.
"""

import math

import numpy as np

from ncsim import suite, ufm
from ncsim.checks import Check
from ncsim.claim import Case, Checks

FIGURES = ("ufm_imbalance.png",)
# The sweep's seeds and arguments are the suite's (ncsim/suite.toml, [ufm-imbalance-sweep]): the figure
# ufm_imbalance.png draws the very sweep stored here.
SWEEP = suite.ufm_imbalance_sweep()
SEEDS, R_VALUES, LAM = SWEEP.seeds, SWEEP.R_values, SWEEP.arguments["lam"]
C, DIM, N_MIN = (SWEEP.arguments[name] for name in ("num_classes", "dim", "n_min"))
GTOL = ufm.DEFAULT_GTOL
THRESHOLD_LAMS = (1e-2, 5e-3, 2.5e-3)
# The bisection's bracket (1, R_MAX] holds every threshold; far above its threshold the minority rows
# shrink to 0 and their cosine is undefined (lambda = 1e-2: norm 1.5 at R = 400, 0 at R = 1000).
R_MAX = 300
SELI_RS = (2, 5, 10, 20, 50, 100)
SELI_LAMS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def sweep(store, seed: int) -> dict[str, np.ndarray]:
    return ufm.imbalance_sweep_stored(store, R_VALUES, seed=seed, gtol=GTOL, **SWEEP.arguments)


def threshold_sweeps(store, seed: int) -> dict[float, dict[str, np.ndarray]]:
    """lambda -> the bisection of the minority-collapse threshold over 1..R_MAX at that lambda."""
    return {
        lam: ufm.imbalance_sweep(
            (1, R_MAX), num_classes=C, dim=DIM, n_min=N_MIN, lam=lam, seed=seed, gtol=GTOL, store=store
        )
        for lam in THRESHOLD_LAMS
    }


def seli_paths(store, seed: int) -> dict[float, dict[str, np.ndarray]]:
    """R -> the regularisation path at R over SELI_LAMS."""
    return {
        R: ufm.seli_path(R, SELI_LAMS, num_classes=C, dim=DIM, n_min=N_MIN, seed=seed, gtol=GTOL, store=store)
        for R in SELI_RS
    }


def table(s) -> str:
    rows = [f"{'R':>6} {'min cos':>9} {'maj cos':>9} {'W ETF':>7} {'means ETF':>9} {'SELI W':>7} {'SELI means':>10}"]
    rows += [
        f"{R:6g} {a:9.5f} {b:9.5f} {c:7.4f} {d:9.4f} {e:7.4f} {f:10.4f}"
        for R, a, b, c, d, e, f in zip(
            s["R"],
            s["minority_cos"],
            s["majority_cos"],
            s["w_etf_distance"],
            s["means_etf_distance"],
            s["seli_w_distance"],
            s["seli_means_distance"],
        )
    ]
    return "\n".join(rows)


# ---- statistics of a sweep over increasing R starting at R = 1 (ufm.imbalance_sweep's columns) ---------


def _over_R(s: dict[str, np.ndarray], column: str) -> np.ndarray:
    """`column` along R; a ValueError unless R starts at 1 and increases."""
    R = s["R"]
    if R[0] != 1 or (np.diff(R) <= 0).any():
        raise ValueError(f"the sweep must start at R = 1 and increase, got R = {R}")
    return s[column]


def max_grad_norm(s) -> float:
    """The largest final gradient norm over R: every solve reached a critical point."""
    return float(np.max(s["grad_norm"]))


def etf_distance_at_1(s) -> float:
    """The means' ETF Gram distance at R = 1 (balanced: a simplex ETF)."""
    return float(_over_R(s, "means_etf_distance")[0])


def etf_distance_min(s) -> float:
    """The smallest ETF Gram distance of the class means (centred at their unweighted mean) over R > 1:
    for every R > 1 the means are not a simplex ETF."""
    return float(_over_R(s, "means_etf_distance")[1:].min())


def w_etf_distance_min_increase(s) -> float:
    """The smallest increase of the classifier rows' ETF Gram distance between consecutive R (> 0: W
    leaves the ETF further as R grows)."""
    return float(np.diff(_over_R(s, "w_etf_distance")).min())


def minority_cos_min_increase(s) -> float:
    """The smallest increase of the minority rows' pairwise cosine between consecutive R up to R* (the
    cosine grows towards 1; from R* on it is 1 within the collapse tolerance)."""
    cos = _over_R(s, "minority_cos")
    return float(np.diff(cos[s["R"] <= ufm.collapse_threshold(s)]).min())


def minority_collapse_max(s) -> float:
    """max over R >= R* of 1 - minority cosine: the minority rows are collapsed (<= ufm.COLLAPSE_TOL) at
    a finite R* and at every larger R of the sweep; without any collapsed R, 1 - cosine at the largest R."""
    one_minus_cos = 1 - _over_R(s, "minority_cos")
    return float(one_minus_cos[s["R"] >= min(ufm.collapse_threshold(s), s["R"][-1])].max())


# ---- statistic of the minority-collapse thresholds at several lambdas ----------------------------------


def threshold_error(sweeps: dict[float, dict[str, np.ndarray]]) -> float:
    """max over lambda of |R* - R_c| n_min: the measured threshold (the smallest collapsed integer n_maj
    over n_min) within one step of the closed form R_c (ufm.minority_collapse_ratio)."""
    return max(
        abs(ufm.collapse_threshold(s) - ufm.minority_collapse_ratio(C, N_MIN, lam, lam)) * N_MIN
        for lam, s in sweeps.items()
    )


# ---- statistics of the regularisation paths (ufm.seli_path) at several R --------------------------------


def _seli_distance(path: dict[str, np.ndarray]) -> np.ndarray:
    """The largest of the three SELI distances, along the path's lambdas."""
    return np.max([path[k] for k in ("seli_w_distance", "seli_means_distance", "seli_logits_distance")], axis=0)


def _by_lambda(path) -> np.ndarray:
    """The path's row order by decreasing lambda."""
    return np.argsort(-path["lam"], kind="stable")


def seli_min_decrease(paths) -> float:
    """min over R and over consecutive lambdas (decreasing) of the fall of the SELI distance: > 0 when
    the minimiser moves towards SELI at every step of vanishing regularisation."""
    return float(min(np.min(-np.diff(_seli_distance(p)[_by_lambda(p)])) for p in paths.values()))


def seli_over_etf_max(paths) -> float:
    """At the smallest lambda of each path: max over R and over the classifier Gram and the centred
    class means' Gram of (distance to SELI) / (distance to the simplex ETF). (The logits are left out:
    SELI's class-mean logits are P, the ETF's.)"""

    def ratio(p):
        i = _by_lambda(p)[-1]
        return max(
            p["seli_w_distance"][i] / p["w_etf_distance"][i], p["seli_means_distance"][i] / p["means_etf_distance"][i]
        )

    return float(max(ratio(p) for p in paths.values()))


def seli_min_increase_over_R(paths) -> float:
    """At the smallest lambda: the smallest increase of the SELI distance between consecutive R (> 0:
    convergence to SELI is slower the larger the imbalance)."""
    Rs = sorted(paths)
    at_smallest = [_seli_distance(paths[R])[_by_lambda(paths[R])[-1]] for R in Rs]
    return float(np.diff(at_smallest).min())


# ---- what the report shows beside a check: the values along R or lambda ---------------------------------


def sweep_note(s) -> str:
    return (
        f"R* = {ufm.collapse_threshold(s):g} (R_c = {ufm.minority_collapse_ratio(C, N_MIN, LAM, LAM):g}); "
        "means ETF distance over R: "
        + ", ".join(f"{d:.3f}" for d in s["means_etf_distance"])
        + "; minority cos over R: "
        + ", ".join(f"{c:.4f}" for c in s["minority_cos"])
    )


def thresholds_note(sweeps) -> str:
    return "; ".join(
        f"lambda {lam:g}: R* {ufm.collapse_threshold(s):g}, R_c {ufm.minority_collapse_ratio(C, N_MIN, lam, lam):g}"
        for lam, s in sweeps.items()
    )


def seli_note(paths) -> str:
    return "; ".join(
        f"R {R:g}: SELI distance over lambda " + ", ".join(f"{d:.4f}" for d in _seli_distance(p))
        for R, p in paths.items()
    )


def finite(tolerance: str, statistic, note) -> Check:
    """The check of `statistic`, which fails on a value that is not finite (an infinite one could meet
    a one-sided threshold)."""

    def measured(data) -> float:
        value = statistic(data)
        if not math.isfinite(value):
            raise AssertionError(f"{tolerance}: {value}")
        return value

    measured.__name__ = statistic.__name__
    return Check(tolerance, measured, note=note)


def printed_sweep(store, seed: int) -> dict[str, np.ndarray]:
    """The sweep, its table printed (pytest shows it beside a failed check)."""
    data = sweep(store, seed)
    print(f"imbalance sweep, lambda {LAM:g}, seed {seed}:\n{table(data)}")
    return data


SWEEP_CHECKS = tuple(
    finite(t, statistic, sweep_note)
    for t, statistic in (
        ("ufm_grad_norm_max", max_grad_norm),
        ("ufm_etf_distance_max", etf_distance_at_1),
        ("ufm_imbalance_etf_distance_min", etf_distance_min),
        ("ufm_imbalance_w_etf_distance_min_increase", w_etf_distance_min_increase),
        ("ufm_imbalance_minority_cos_min_increase", minority_cos_min_increase),
        ("ufm_imbalance_minority_collapse_max", minority_collapse_max),
    )
)
THRESHOLD_CHECKS = (finite("ufm_imbalance_collapse_threshold_error", threshold_error, thresholds_note),)
SELI_CHECKS = tuple(
    finite(t, statistic, seli_note)
    for t, statistic in (
        ("ufm_seli_distance_min_decrease", seli_min_decrease),
        ("ufm_seli_over_etf_max", seli_over_etf_max),
        ("ufm_seli_distance_min_increase_over_R", seli_min_increase_over_R),
    )
)
INPUTS = {
    "sweep": (printed_sweep, SWEEP_CHECKS),
    "thresholds": (threshold_sweeps, THRESHOLD_CHECKS),
    "seli": (seli_paths, SELI_CHECKS),
}


def kind_case(kind: str, seed: int) -> Case:
    make = INPUTS[kind][0]
    return Case(f"{kind}-seed{seed}", lambda store: make(store, seed), run=f"ufm-ce-imbalance-{kind}", seed=seed)


# The sweep converges; the means are an ETF at R = 1 and not for R > 1; W leaves the ETF as R grows; the
# minority cosine grows to 1, reached at a finite R* that matches the closed form at three lambdas; along
# vanishing lambda the minimiser approaches SELI, more slowly the larger R.
CHECKS = tuple(
    Checks("test_imbalance_seli_and_minority_collapse", *checks, cases=[kind_case(kind, s) for s in SEEDS])
    for kind, (_, checks) in INPUTS.items()
)
