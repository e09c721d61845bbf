"""Neural Collapse statistics of a layer's features (and, optionally, of the classifier that reads them).

Notation (Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep learning
training", PNAS 117(40), 2020): N samples h_i in R^p with labels y_i in {0, ..., C-1}, N_c samples in
class c,

    mu_c    = (1/N_c) sum_{i: y_i = c} h_i                        class means
    mu_G    = (1/N) sum_i h_i                                     global mean: the SAMPLE mean over all N,
                                                                  not the mean of the class means (the two
                                                                  differ when classes are unbalanced)
    Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T      pooled within-class covariance
    Sigma_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T            between-class covariance, rank <= C-1
    Mdot    = [mu_c - mu_G]_c  (p x C)                            centered means; its transpose A (C x p)
                                                                  holds them as rows
    W (C x p), b (C)                                              last-layer classifier, logits W h + b

Everything is computed in float64, in two passes over the data (class sums and counts, then residual
statistics h_i - mu_{y_i}), without any p x p matrix: Sigma_B = (1/C) Mdot Mdot^T, so with the thin SVD
Mdot = U S V^T, Sigma_B^+ = C U S^-2 U^T and Tr(Sigma_W Sigma_B^+) = (C/N) sum_i ||S^-1 U^T (h_i -
mu_{y_i})||^2, which costs O(N p C).

Scale: the statistics are computed on h / a and W / a_W, with a and a_W the powers of two nearest
max |h_ij| and max |W_kj| (exact divisions), and b / (a a_W) (argmax(W h + b) is unchanged), so that
features or weights near 1e±150 neither overflow nor underflow in squares and products.

Singular-value cut: Sigma_B^+ keeps at most the top C-1 singular values s_k of Mdot (Papyan et al.'s
rank-(C-1) pseudo-inverse), and of those only the ones with s_k > max(C, p) * eps * s_1 (eps = float64
machine epsilon, s_1 the largest), the tolerance numpy.linalg.matrix_rank uses. Sigma_B is taken to be
zero, a ValueError, when s_1 <= max(C, p) * eps * ||[mu_1 ... mu_C]||_F: the class means are identical up
to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

_EPS = np.finfo(np.float64).eps
_CHUNK_ELEMENTS = 2**21  # the in-memory call streams row blocks of about 16 MB

Batches = Iterable | Callable[[], Iterator]



class DegenerateFeaturesError(ValueError):
    """The inputs are valid but the geometry is degenerate (identical class means, a zero centered
    mean or classifier row, coinciding means): the NC statistics are undefined there. A network
    whose features died raises this; a trainer records it rather than crashing."""


class NonFiniteError(ValueError):
    """The inputs hold NaN or inf (a trainer records a run whose features are non-finite as diverged)."""


def centered_means(features, labels, num_classes: int) -> np.ndarray:
    """The centered class means mu_c - mu_G as the rows of a C x p float64 array (A = Mdot^T in the
    module docstring), for any feature dimension p (also p < C-1, which collapse_metrics rejects).

    mu_G is the SAMPLE mean over all N (Papyan, Han & Donoho 2020, as everywhere in this module), so
    sum_c N_c (mu_c - mu_G) = 0. Under class imbalance mu_G is the count-weighted mean of the class
    means, not their plain mean: it is pulled towards the majority classes' means, and the rows do not
    sum to zero (their count-weighted sum does). For balanced classes the two conventions agree.

    Inputs as for collapse_metrics (numpy arrays or torch tensors); a shape mismatch, a label outside
    [0, C), an empty class, NaN or inf is a ValueError."""
    h, y = _as_float64(features), _as_labels(labels)
    _check_batch_shapes(h, y)
    _check_labels(y, num_classes)
    _check_finite(h, "features contain")
    counts = np.bincount(y, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError(f"class {np.flatnonzero(counts == 0)[0]} has no samples")
    one_hot = (np.arange(num_classes)[:, None] == y[None, :]).astype(np.float64)
    return one_hot @ h / counts[:, None] - h.mean(0)


# The keys collapse_metrics returns: always FEATURE_KEYS; with a classifier W also CLASSIFIER_KEYS.
FEATURE_KEYS = ("nc1", "nc1_trace", "cdnv", "nc2_equinorm", "nc2_equiangularity", "nc2_maxangle",
                "nc2_etf_distance", "ncc_error")
CLASSIFIER_KEYS = ("w_equinorm", "w_equiangularity", "w_maxangle", "w_etf_distance", "nc3", "nc3_etf_distance",
                   "nc4")


def collapse_metrics(features, labels, weight=None, bias=None, num_classes: int | None = None
                     ) -> dict[str, float]:
    """Neural Collapse statistics of `features` (N x p) with `labels` (N,), and of the classifier.

    Inputs may be numpy arrays or torch tensors (any device, any float dtype); they are converted to
    float64 numpy. `num_classes` C defaults to labels.max() + 1. See the module docstring for the notation
    and for the singular-value cut in Sigma_B^+; mu_G is the sample mean over all N.

    Keys, always:
      nc1               Tr(Sigma_W Sigma_B^+) / C. Papyan et al. 2020 (NC1, fig. 6), with the /C of Zhu et
                        al., "A geometric analysis of neural collapse with unconstrained features", NeurIPS
                        2021 (Sec. 4, NC1); Sigma_B^+ restricted to the top C-1 singular directions.
      nc1_trace         Tr(Sigma_W) / Tr(Sigma_B): the trace ratio of Tirer, Huang & Niles-Weed,
                        "Perturbation analysis of neural collapse", ICML 2023.
      cdnv              class-distance normalized variance, Galanti, Gyorgy & Hutter, "On the role of
                        neural collapse in transfer learning", ICLR 2022 (Sec. 3): the mean over pairs
                        c < c' of (var_c + var_c') / (2 ||mu_c - mu_c'||^2), var_c = mean over class c of
                        ||h_i - mu_c||^2.
      nc2_equinorm      std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G|| (std with ddof=1). Papyan et al.
                        (NC2, fig. 2).
      nc2_equiangularity  std (ddof=1) over c != c' of cos(mu_c - mu_G, mu_c' - mu_G). Papyan et al. fig. 3.
      nc2_maxangle      mean over c != c' of |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(C-1)|. Papyan et al.
                        fig. 4.
      nc2_etf_distance  || A A^T / ||A A^T||_F - (I - 11^T/C) / sqrt(C-1) ||_F, A = Mdot^T. Zhu et al. 2021
                        (Sec. 4, NC2 measured on the means).
      ncc_error         fraction of samples whose nearest class mean (Euclidean, uncentered h_i and mu_c)
                        is not their label: the nearest-class-center error of Papyan et al. (fig. 7).
    Keys when `weight` W (C x p) is given (bias b (C,) defaults to 0); W is not centered:
      w_equinorm, w_equiangularity, w_maxangle, w_etf_distance
                        the four NC2 statistics above on the rows w_c of W instead of mu_c - mu_G.
      nc3               || W^T / ||W||_F - Mdot / ||Mdot||_F ||_F^2: self-duality, Papyan et al. (NC3,
                        fig. 5).
      nc3_etf_distance  || W Mdot / ||W Mdot||_F - (I - 11^T/C) / sqrt(C-1) ||_F: Zhu et al.'s NC3.
      nc4               fraction of samples whose nearest class mean differs from argmax(W h_i + b):
                        Papyan et al. (NC4, fig. 7).

    Bad input (length mismatch, labels outside [0, C), an empty class, C < 2, p < C-1, NaN or inf,
    misshapen weight or bias, a `num_classes` that is not an int, identical class means, a zero
    centered mean or zero row of W, two coinciding class means) is a ValueError naming the problem;
    memory stays O(C p) whatever the labels (a stray label 10**9 is an empty-class error naming it).
    Perfectly collapsed features (Sigma_W = 0) give nc1 = 0.
    """
    h = _as_float64(features)
    y = _as_labels(labels)
    _check_batch_shapes(h, y)
    rows = max(1, _CHUNK_ELEMENTS // max(1, h.shape[1]))
    blocks = [(h[i:i + rows], y[i:i + rows]) for i in range(0, len(y), rows)]
    return collapse_metrics_streaming(blocks, weight, bias, num_classes=num_classes)


def collapse_metrics_streaming(batches: Batches, weight=None, bias=None, num_classes: int | None = None
                               ) -> dict[str, float]:
    """`collapse_metrics` over data that arrives in (features, labels) batches; returns the same dict.

    `batches` is read twice (class sums and counts, then residual statistics), so it must be either a
    re-iterable (a list, a torch DataLoader, ...) or a zero-argument callable returning a fresh iterator
    of batches; a one-shot iterator is a ValueError. Both passes must see the same samples (in any order).
    Memory: O(C p) plus one batch; no feature matrix and no p x p matrix is held. `num_classes` defaults
    to the largest label + 1.
    """
    start_pass = _pass_starter(batches)
    w, b = _as_classifier(weight, bias)
    means, counts, scale = _class_means(start_pass(), num_classes)
    c, p = means.shape
    if w is not None:
        _check_classifier_shapes(w, b, c, p)
        w_scale = _power_of_two(np.abs(w).max())
        w, b = w / w_scale, b / w_scale / scale
    geometry = _Geometry.of(means, counts)
    residuals = _residual_pass(start_pass(), geometry, w, b, scale)

    metrics = {"nc1": residuals.whitened_sq / residuals.n,
               "nc1_trace": residuals.within_sq.sum() / residuals.n / geometry.between_trace,
               "cdnv": _cdnv(residuals.within_sq / counts, geometry.mean_gaps),
               **_simplex_stats(geometry.centered, "nc2", "centered class mean")}
    if w is not None:
        metrics.update(_simplex_stats(w, "w", "weight row"))
        metrics["nc3"] = _squared_distance_of_directions(w, geometry.centered)
        metrics["nc3_etf_distance"] = etf_distance(w @ geometry.centered.T, "W Mdot")
        metrics["nc4"] = residuals.nc4_mismatches / residuals.n
    metrics["ncc_error"] = residuals.ncc_errors / residuals.n
    return {key: float(value) for key, value in metrics.items()}


# ---- input conversion and validation -------------------------------------------------------------------

def _as_float64(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor: torch is not imported here, only duck-typed
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_labels(labels) -> np.ndarray:
    y = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (N,), got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must have an integer dtype, got {y.dtype}")
    return y.astype(np.intp, copy=False)


def _check_batch_shapes(h: np.ndarray, y: np.ndarray) -> None:
    if h.ndim != 2:
        raise ValueError(f"features must be two-dimensional (N x p), got shape {h.shape}")
    if len(h) != len(y):
        raise ValueError(f"length mismatch: {len(h)} feature rows but {len(y)} labels")


def _check_finite(x: np.ndarray, what: str) -> None:
    """`what` is the subject and verb of the message, e.g. 'features contain'."""
    if np.isnan(x).any():
        raise NonFiniteError(f"{what} NaN")
    if not np.isfinite(x).all():
        raise NonFiniteError(f"{what} inf")


def _check_labels(y: np.ndarray, num_classes: int | None) -> None:
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))):
        raise ValueError(f"num_classes must be an int, got {num_classes!r}")
    if not y.size:
        return
    low, high = y.min(), y.max()
    if low < 0 or (num_classes is not None and high >= num_classes):
        bad = low if low < 0 else high
        raise ValueError(f"labels outside [0, {num_classes if num_classes is not None else 'C'}): "
                         f"found label {bad}")


def _as_classifier(weight, bias) -> tuple[np.ndarray | None, np.ndarray | None]:
    if weight is None:
        if bias is not None:
            raise ValueError("bias given without weight")
        return None, None
    w = _as_float64(weight)
    _check_finite(w, "weight contains")
    if bias is None:
        return w, np.zeros(len(w))
    b = _as_float64(bias)
    _check_finite(b, "bias contains")
    return w, b


def _check_classifier_shapes(w: np.ndarray, b: np.ndarray, c: int, p: int) -> None:
    if w.shape != (c, p):
        raise ValueError(f"weight has shape {w.shape}, expected (C, p) = ({c}, {p})")
    if b.shape != (c,):
        raise ValueError(f"bias has shape {b.shape}, expected (C,) = ({c},)")


def _pass_starter(batches: Batches) -> Callable[[], Iterator]:
    if callable(batches):
        return batches
    if iter(batches) is batches:
        raise ValueError("batches is a one-shot iterator but is read twice: pass a re-iterable "
                         "(e.g. a list) or a zero-argument callable returning a fresh iterator")
    return lambda: iter(batches)


def _checked_batches(source: Iterator, num_classes: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The non-empty (features, labels) batches of `source` as float64 / intp arrays, shape-checked."""
    p = None
    for features, labels in source:
        h, y = _as_float64(features), _as_labels(labels)
        _check_batch_shapes(h, y)
        if p is not None and h.shape[1] != p:
            raise ValueError(f"batches disagree on the feature dimension: {p} then {h.shape[1]}")
        p = h.shape[1]
        _check_labels(y, num_classes)
        if y.size:
            yield h, y


# ---- pass 1: class means -------------------------------------------------------------------------------

def _class_means(source: Iterator, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Class means divided by `scale` (C x p), counts (C) and `scale`, the power of two nearest max |h|.
    Class sums are kept only for the labels present, so memory is O(C p) for any label values."""
    rows: dict[int, int] = {}  # label -> its row in sums and counts
    sums = counts = scale = None
    for h, y in _checked_batches(source, num_classes):
        high, low = h.max(), h.min()  # NaN and inf reach these: one check of two numbers, not of all of h
        if not (np.isfinite(high) and np.isfinite(low)):
            _check_finite(h, "features contain")
        batch_scale = _power_of_two(max(high, -low))
        if scale is None:
            sums, counts, scale = np.zeros((0, h.shape[1])), np.zeros(0, dtype=np.intp), batch_scale
        elif batch_scale > scale:
            sums *= scale / batch_scale
            scale = batch_scale
        labels, inverse = np.unique(y, return_inverse=True)
        at = np.array([rows.setdefault(label, len(rows)) for label in labels.tolist()])
        grow = len(rows) - len(counts)
        if grow:
            sums = np.vstack([sums, np.zeros((grow, h.shape[1]))])
            counts = np.concatenate([counts, np.zeros(grow, dtype=np.intp)])
        one_hot = (np.arange(len(labels))[:, None] == inverse.ravel()[None, :]).astype(np.float64)
        sums[at] += one_hot @ (h / scale)
        counts[at] += np.bincount(inverse.ravel(), minlength=len(labels))
    if scale is None:
        raise ValueError("no samples: the batches are empty")
    c = num_classes if num_classes is not None else max(rows) + 1
    if c < 2:
        raise ValueError(f"fewer than 2 classes: C = {c}")
    if len(rows) < c:
        empty = next(k for k in range(c) if k not in rows)
        largest = "" if num_classes is not None else f" (C = {c} from the largest label, {c - 1})"
        raise ValueError(f"class {empty} has no samples{largest}")
    if sums.shape[1] < c - 1:
        raise ValueError(f"feature dimension p = {sums.shape[1]} is less than C-1 = {c - 1}")
    order = [rows[k] for k in range(c)]
    return sums[order] / counts[order, None], counts[order], scale


def _power_of_two(x: float) -> float:
    """2**e with x / 2**e in [1, 2) (1.0 for x = 0): dividing by it is exact and brings x near 1."""
    return float(np.ldexp(1.0, np.frexp(x)[1] - 1)) if x > 0 else 1.0


@dataclass(frozen=True)
class _Geometry:
    """What pass 2 needs from pass 1: the means and the top singular directions of Mdot."""
    means: np.ndarray       # C x p, mu_c
    centered: np.ndarray    # C x p, A = Mdot^T, rows mu_c - mu_G
    counts: np.ndarray      # C, N_c
    whitener: np.ndarray    # p x k, U S^-1 over the kept singular values (k <= C-1)
    between_trace: float    # Tr(Sigma_B)
    mean_gaps: np.ndarray   # C x C, ||mu_c - mu_c'||^2

    @classmethod
    def of(cls, means: np.ndarray, counts: np.ndarray) -> _Geometry:
        c, p = means.shape
        global_mean = counts @ means / counts.sum()
        centered = means - global_mean
        u, s, _ = np.linalg.svd(np.ascontiguousarray(centered.T), full_matrices=False)  # Mdot = U S V^T
        tolerance = max(c, p) * _EPS
        if s[0] <= tolerance * np.linalg.norm(means):
            raise DegenerateFeaturesError("class means are identical (Sigma_B = 0): nc1 and the NC2 statistics are "
                             "undefined")
        kept = s[:c - 1] > tolerance * s[0]
        whitener = u[:, :c - 1][:, kept] / s[:c - 1][kept]
        return cls(means, centered, counts, whitener, float((s**2).sum() / c), _squared_distances(centered))


# ---- pass 2: residual statistics -----------------------------------------------------------------------

@dataclass
class _Residuals:
    n: int = 0
    counts: np.ndarray | None = None
    whitened_sq: float = 0.0            # sum_i ||S^-1 U^T (h_i - mu_{y_i})||^2
    within_sq: np.ndarray | None = None  # per class, sum_{i in c} ||h_i - mu_c||^2
    ncc_errors: int = 0
    nc4_mismatches: int = 0


def _residual_pass(source: Iterator, g: _Geometry, w: np.ndarray | None, b: np.ndarray | None,
                   scale: float = 1.0) -> _Residuals:
    """Pass 2 on h / `scale` (g, w and b are already scaled)."""
    c, k = len(g.means), g.whitener.shape[1]
    # One product r @ probe gives S^-1 U^T r, r . (mu_c - mu_G) and W r for every residual r.
    probe = np.hstack([g.whitener, g.centered.T] + ([] if w is None else [w.T]))
    mean_logits = None if w is None else g.means @ w.T + b
    acc = _Residuals(counts=np.zeros(c, dtype=np.intp), within_sq=np.zeros(c))
    for h, y in _checked_batches(source, c):
        r = g.means[y]
        np.subtract(h / scale if scale != 1.0 else h, r, out=r)
        projected = r @ probe
        acc.whitened_sq += np.einsum("ij,ij->", projected[:, :k], projected[:, :k])
        acc.within_sq += np.bincount(y, weights=np.einsum("ij,ij->i", r, r), minlength=c)
        nearest = _nearest_mean(y, projected[:, k:k + c], g.mean_gaps)
        acc.ncc_errors += int(np.count_nonzero(nearest != y))
        if w is not None:
            logits = projected[:, k + c:] + mean_logits[y]  # W h + b = W (h - mu_y) + (W mu_y + b)
            acc.nc4_mismatches += int(np.count_nonzero(nearest != np.argmax(logits, axis=1)))
        acc.n += len(y)
        acc.counts += np.bincount(y, minlength=c)
    if not np.array_equal(acc.counts, g.counts):
        raise ValueError("batches changed between the two passes: class counts differ")
    return acc


def _nearest_mean(y: np.ndarray, r_dot_centered: np.ndarray, mean_gaps: np.ndarray) -> np.ndarray:
    """argmin_c ||h_i - mu_c||, from r_i = h_i - mu_{y_i} and r_i . (mu_c - mu_G).

    ||h_i - mu_c||^2 - ||h_i - mu_{y_i}||^2 = ||mu_{y_i} - mu_c||^2 + 2 r_i . (mu_{y_i} - mu_c): exact for
    the true class (0) and free of the cancellation of expanding ||h_i||^2 when the spread is small.
    """
    rows = np.arange(len(y))
    excess = mean_gaps[y] + 2 * (r_dot_centered[rows, y][:, None] - r_dot_centered)
    return np.argmin(excess, axis=1)


# ---- statistics of C vectors ---------------------------------------------------------------------------

def _simplex_stats(vectors: np.ndarray, prefix: str, what: str) -> dict[str, float]:
    """Equinorm, equiangularity, max-angle and ETF distance of the C rows of `vectors` (C x p)."""
    c = len(vectors)
    norms = np.linalg.norm(vectors, axis=1)
    if (norms == 0).any():
        raise DegenerateFeaturesError(f"{what} {np.flatnonzero(norms == 0)[0]} is zero: its angles are undefined")
    gram = vectors @ vectors.T
    cosines = (gram / np.outer(norms, norms))[~np.eye(c, dtype=bool)]
    return {f"{prefix}_equinorm": norms.std(ddof=1) / norms.mean(),
            f"{prefix}_equiangularity": cosines.std(ddof=1),
            f"{prefix}_maxangle": np.abs(cosines + 1 / (c - 1)).mean(),
            f"{prefix}_etf_distance": etf_distance(gram, what + "s' Gram matrix")}


def etf_distance(m: np.ndarray, what: str = "matrix") -> float:
    """|| M/||M||_F - (I - 11^T/C)/sqrt(C-1) ||_F for a C x C matrix M (Zhu et al. 2021, Sec. 4)."""
    c = len(m)
    scale = np.linalg.norm(m)
    if scale == 0:
        raise DegenerateFeaturesError(f"{what} is zero: its distance to the simplex ETF is undefined")
    etf = (np.eye(c) - 1 / c) / np.sqrt(c - 1)
    return np.linalg.norm(m / scale - etf)


def _squared_distance_of_directions(a: np.ndarray, b: np.ndarray) -> float:
    """|| a/||a||_F - b/||b||_F ||_F^2."""
    return np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)) ** 2


def _squared_distances(vectors: np.ndarray) -> np.ndarray:
    """C x C matrix of ||v_c - v_c'||^2, from the differences (no cancellation), in O(C p) memory."""
    return np.stack([np.einsum("ij,ij->i", vectors - v, vectors - v) for v in vectors])


def _cdnv(variances: np.ndarray, mean_gaps: np.ndarray) -> float:
    """Mean over pairs c < c' of (var_c + var_c') / (2 ||mu_c - mu_c'||^2) (Galanti et al. 2022)."""
    i, j = np.triu_indices(len(variances), k=1)
    gaps = mean_gaps[i, j]
    if (gaps == 0).any():
        at = np.flatnonzero(gaps == 0)[0]
        raise DegenerateFeaturesError(f"classes {i[at]} and {j[at]} have the same mean: cdnv is undefined")
    return np.mean((variances[i] + variances[j]) / (2 * gaps))
