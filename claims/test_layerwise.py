"""Claim 6, collapse ordered by depth: at the end of training, across the layers with parameters, NC1
does not increase with depth and is lowest at the penultimate layer, the class means' distance to a
simplex ETF falls with depth, and log NC1 falls about linearly with the layer index.

Sources: Rangamani, Lindegaard, Galanti & Poggio, "Feature learning in deep classifiers through
Intermediate Neural Collapse", ICML 2023, abstract: "as we move deeper into a trained neural network, the
within-class covariance decreases relative to the between-class covariance" (Figs. 1-3, NC1 and the
ETF geometry by layer). He & Su, "A law of data separation in deep learning", PNAS 120(36), 2023:
"each layer improves data separation at a constant geometric rate", i.e. the separation fuzziness D_l =
Tr(SS_w SS_b^+) (NC1 up to the factor C for balanced classes) follows log D_l ~ a + l log rho on the
training data after training; their code fits log D_l on the layer index by least squares and reports
R^2. Depth steps are the layers with parameters (Trajectory.depth_layers: conv1-conv4 on their full,
flattened outputs, and the penultimate Linear+BN+ReLU); the parameter-free average pooling after conv4
is not a step (He & Su count no pooling layer either). Their feedforward fits also include the raw
input as layer 0; here the first point is conv1. Train set, eval mode.
"""

import numpy as np

from ncsim.checks import Check
from ncsim.claim import Checks

FIGURES = ("layerwise.png",)


def depth_profile(run, metric: str = "nc1") -> tuple[list[str], np.ndarray]:
    """The layers with parameters in depth order and the metric's end values there."""
    layers = run.depth_layers()
    values = [run.final(f"layer.{t}.{metric}") for t in layers[:-1]] + [run.final(f"train.{metric}")]
    return layers, np.asarray(values)


def max_depth_increase(metric: str):
    """max over consecutive layers of metric(l+1)/metric(l): <= 1 when it never increases with depth."""

    def statistic(run) -> float:
        _, v = depth_profile(run, metric)
        return float(np.max(v[1:] / v[:-1]))

    return statistic


def nc1_penultimate_over_min_earlier(run) -> float:
    """NC1 at the penultimate layer over the smallest NC1 of the earlier layers (< 1: lowest there)."""
    _, v = depth_profile(run, "nc1")
    return float(v[-1] / v[:-1].min())


def etf_penultimate_over_first(run) -> float:
    """Zhu et al.'s ETF distance of the class means at the penultimate layer over that at conv1."""
    _, v = depth_profile(run, "nc2_etf_distance")
    return float(v[-1] / v[0])


def separation_law_fit(run) -> tuple[float, float]:
    """(slope, R^2) of the least-squares line log10 NC1_l = a + slope * l over the layers l = 1..L
    (He & Su 2023); slope < 0 when collapse grows with depth, R^2 = 1 on an exact geometric law."""
    _, v = depth_profile(run, "nc1")
    index, logs = np.arange(1, len(v) + 1), np.log10(v)
    slope, intercept = np.polyfit(index, logs, 1)
    residual = logs - (intercept + slope * index)
    return float(slope), float(1 - residual @ residual / np.sum((logs - logs.mean()) ** 2))


def separation_law_r2(run) -> float:
    """R^2 of the fit signed by its direction (-R^2 when log NC1 rises with depth): a law of separation
    is a straight fall, so a straight rise must not count. (At initialisation NC1 barely changes with
    depth, slope -0.04 per layer and R^2 0.16-0.24 on seeds 0-2: the init control.)"""
    slope, r2 = separation_law_fit(run)
    return r2 if slope < 0 else -r2


def separation_law_slope(run) -> float:
    return separation_law_fit(run)[0]


def by_depth(run) -> str:
    names, nc1 = depth_profile(run, "nc1")
    _, etf = depth_profile(run, "nc2_etf_distance")
    slope, r2 = separation_law_fit(run)
    return (
        "NC1 / ETF distance by depth: "
        + ", ".join(f"{n.removesuffix('.flat')} {a:.3g} / {b:.3g}" for n, a, b in zip(names, nc1, etf))
        + f"; log10 NC1 slope {slope:.3g} per layer, R^2 {r2:.3f}"
    )


# Across the layers with parameters NC1 and the ETF distance fall with depth, NC1 is
# lowest at the penultimate layer, and log NC1 is close to linear in the layer index.
CHECKS = Checks(
    "test_collapse_ordered_by_depth",
    Check("layer_nc1_depth_increase_max", max_depth_increase("nc1"), controls=("init",), note=by_depth),
    Check(
        "layer_nc1_penultimate_over_earlier_max", nc1_penultimate_over_min_earlier, controls=("init",), note=by_depth
    ),
    Check("layer_etf_depth_increase_max", max_depth_increase("nc2_etf_distance"), controls=("init",), note=by_depth),
    Check("layer_etf_penultimate_over_first_max", etf_penultimate_over_first, controls=("init",), note=by_depth),
    Check("layer_separation_slope_max", separation_law_slope, controls=("init",), note=by_depth),
    Check("layer_separation_r2_min", separation_law_r2, controls=("init",), note=by_depth),
)
