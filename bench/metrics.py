"""Benchmark: ncsim.metrics.collapse_metrics against the textbook p x p computation of NC1.

    python bench/metrics.py [--repeats 5] [--textbook-repeats 3]

N = 4000 samples, C = 10 classes, p in {128, 1024, 5120} (random class means plus unit noise, a random
classifier with bias). Each time is the best of k runs (time.perf_counter). The textbook baseline forms
Sigma_W and Sigma_B as p x p matrices and takes the pseudo-inverse of Sigma_B from its full
eigendecomposition cut to the top C-1 eigenpairs (the decomposition np.linalg.pinv(hermitian=True)
uses; pinv's default SVD path is slower still), then Tr(Sigma_W Sigma_B^+) / C as an elementwise sum.
It computes NC1 only, while collapse_metrics computes every key, so the speed-up is a lower bound.
At p = 5120 one textbook run takes about a minute, so it is timed once there.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from timing import best_of  # bench/timing.py, beside this script

from ncsim.metrics import collapse_metrics, collapse_metrics_streaming

N, C, DIMS = 4000, 10, (128, 1024, 5120)
TARGET_SECONDS, TARGET_SPEEDUP, TARGET_P = 0.5, 50.0, 5120
STREAM_BATCH = 256


def textbook_nc1(h: np.ndarray, y: np.ndarray, c: int) -> float:
    means = np.stack([h[y == k].mean(axis=0) for k in range(c)])
    centered = means - h.mean(axis=0)
    residuals = h - means[y]
    sigma_w = residuals.T @ residuals / len(y)
    sigma_b = centered.T @ centered / c
    eigenvalues, eigenvectors = np.linalg.eigh(sigma_b)
    top = eigenvectors[:, -(c - 1) :]
    sigma_b_pinv = (top / eigenvalues[-(c - 1) :]) @ top.T
    return float(np.einsum("ij,ij->", sigma_w, sigma_b_pinv) / c)


def problem(p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, size=N)
    h = rng.standard_normal((C, p))[y] + rng.standard_normal((N, p))
    return h, y, rng.standard_normal((C, p)), rng.standard_normal(C)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="k for collapse_metrics and streaming")
    parser.add_argument("--textbook-repeats", type=int, default=3, help="k for the textbook (p < 5120)")
    args = parser.parse_args()

    print(f"N={N} C={C}, best of k runs; CPU cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'p':>6} {'fast s':>9} {'stream s':>9} {'textbook s':>11} {'k_tb':>5} {'speed-up':>9} {'nc1 rel diff':>13}")
    rows = {}
    for p in DIMS:
        h, y, w, b = problem(p)
        batches = [(h[i : i + STREAM_BATCH], y[i : i + STREAM_BATCH]) for i in range(0, N, STREAM_BATCH)]
        fast, metrics = best_of(lambda: collapse_metrics(h, y, w, b), args.repeats)
        stream, _ = best_of(lambda: collapse_metrics_streaming(batches, w, b), args.repeats)
        k_textbook = 1 if p >= 5120 else args.textbook_repeats
        slow, reference = best_of(lambda: textbook_nc1(h, y, C), k_textbook)
        rows[p] = (fast, slow / fast)
        print(
            f"{p:>6} {fast:>9.4f} {stream:>9.4f} {slow:>11.3f} {k_textbook:>5} {slow / fast:>8.0f}x "
            f"{abs(metrics['nc1'] - reference) / reference:>13.1e}"
        )

    fast, speedup = rows[TARGET_P]
    print(
        f"target p={TARGET_P}: whole call < {TARGET_SECONDS} s: {fast:.3f} s "
        f"{'met' if fast < TARGET_SECONDS else 'NOT met'}; >= {TARGET_SPEEDUP:.0f}x the textbook: "
        f"{speedup:.0f}x {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at end (other processes share these cores)")


if __name__ == "__main__":
    main()
