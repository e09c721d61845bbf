"""Claim 6, layer-wise ordering of collapse: at the end of training NC1 does not increase with depth and
is lowest at the penultimate layer, and the ETF geometry is markedly stronger at the penultimate layer
than at the first conv layer.

Source: Rangamani et al., "Feature learning in deep classifiers through Intermediate Neural Collapse",
ICML 2023, Figs. 1-3 (NC1 and NC2 decrease monotonically with depth). Each block is measured on its
full output (a conv block's flattened channels x length), the penultimate layer on h; train set, eval mode.
"""

import numpy as np

from ncsim.checks import Check

FIGURES = ("layerwise.png",)


def depth_profile(run, metric: str = "nc1") -> tuple[list[str], np.ndarray]:
    """Taps in depth order (each block's full output: flattened for conv blocks; then the
    penultimate layer) and the metric's end values there."""
    taps = [t for t in run.taps() if not t.endswith(".pool")]
    values = [run.final(f"layer.{t}.{metric}") for t in taps] + [run.final(f"train.{metric}")]
    return taps + ["penultimate"], np.asarray(values)


def nc1_max_depth_increase(run) -> float:
    """max over consecutive layers of NC1(l+1)/NC1(l): <= 1 when NC1 never increases with depth."""
    _, v = depth_profile(run, "nc1")
    return float(np.max(v[1:] / v[:-1]))


def nc1_penultimate_over_min_earlier(run) -> float:
    """NC1 at the penultimate layer over the smallest NC1 of the earlier layers (< 1: lowest there)."""
    _, v = depth_profile(run, "nc1")
    return float(v[-1] / v[:-1].min())


def etf_penultimate_over_first(run) -> float:
    """Zhu et al.'s ETF distance of the class means at the penultimate layer over that at conv1."""
    _, v = depth_profile(run, "nc2_etf_distance")
    return float(v[-1] / v[0])


def nc1_by_depth(run) -> str:
    names, nc1 = depth_profile(run, "nc1")
    return "NC1 by depth: " + ", ".join(f"{n} {v:.3g}" for n, v in zip(names, nc1))


CHECKS = (
    Check("layer_nc1_depth_increase_max", nc1_max_depth_increase, controls=("init",), note=nc1_by_depth),
    Check("layer_nc1_penultimate_over_earlier_max", nc1_penultimate_over_min_earlier, controls=("init",),
          note=nc1_by_depth),
    Check("layer_etf_penultimate_over_first_max", etf_penultimate_over_first, controls=("init",), note=nc1_by_depth),
)


def test_collapse_ordered_by_depth(check, runs, claim_check):
    """NC1 does not increase with depth and is lowest at the penultimate layer; the ETF is much
    closer there than at conv1."""
    claim_check.of(check, runs)
