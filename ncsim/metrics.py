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
rank-(C-1) pseudo-inverse), and of those only the ones with s_k > max(C, p) * eps * s_1 (s_1 the largest),
the tolerance numpy.linalg.matrix_rank uses, with eps the RESOLUTION OF THE FEATURES: the machine epsilon
of their dtype (float32 features: 1.2e-7, not float64's 2.2e-16), or the `resolution` argument for data
already converted. A direction of Mdot below that is rounding noise of the features, and inverting it
would inflate NC1 by noise (near-degenerate means: initialisation, early layers). `means_conditioning`
= s_{C-1}/s_1 reports how close the means are to that cut. Sigma_B is taken to be zero, a ValueError, when
s_1 <= max(C, p) * eps64 * ||[mu_1 ... mu_C]||_F: the class means are identical up to float64 rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

_EPS = np.finfo(np.float64).eps
FLOAT32_RESOLUTION = float(np.finfo(np.float32).eps)
_CHUNK_ELEMENTS = 2**21  # the in-memory call streams row blocks of about 16 MB

Batches = Iterable | Callable[[], Iterator]


class DegenerateFeaturesError(ValueError):
    """The inputs are valid but the geometry is degenerate (identical class means, a zero centered
    mean or classifier row, coinciding means): the NC statistics are undefined there. A network
    whose features died raises this; a trainer records it rather than crashing."""


class NonFiniteError(ValueError):
    """The inputs hold NaN or inf (a trainer records a run whose features are non-finite as diverged)."""


CENTERS = ("sample", "classes")


def centered_means(features, labels, num_classes: int, center: str = "sample") -> np.ndarray:
    """The centered class means mu_c - m as the rows of a C x p float64 array (A = Mdot^T in the
    module docstring), for any feature dimension p (also p < C-1, which collapse_metrics rejects).

    center "sample": m = mu_G, the SAMPLE mean over all N (Papyan, Han & Donoho 2020; the convention of
    every statistic in this module), so sum_c N_c (mu_c - mu_G) = 0. Under class imbalance mu_G is the
    count-weighted mean of the class means: it is pulled towards the majority classes' means, the rows
    do not sum to zero, and even class means forming an exact simplex ETF measure a nonzero ETF distance
    (counts (R, R, 1, 1): 0.27 at R = 2, 0.75 at R = 100), so this convention cannot tell a geometry that
    breaks under imbalance from one that does not.
    center "classes": m = (1/C) sum_c mu_c, the unweighted mean of the class means (the centring of
    Fang et al. 2021 and Thrampoulidis et al. 2022 under imbalance): the rows sum to zero, and an exact
    simplex ETF measures ETF distance 0 whatever the counts. For balanced classes the two agree.

    Inputs as for collapse_metrics (numpy arrays or torch tensors); a shape mismatch, a label outside
    [0, C), an empty class, NaN or inf is a ValueError."""
    h, y = _as_float64(features), _as_labels(labels)
    _check_batch_shapes(h, y)
    _check_labels(y, num_classes)
    _check_finite(h, "features contain")
    counts = np.bincount(y, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError(f"class {np.flatnonzero(counts == 0)[0]} has no samples")
    if center not in CENTERS:
        raise ValueError(f"unknown center {center!r}; valid: {', '.join(CENTERS)}")
    one_hot = (np.arange(num_classes)[:, None] == y[None, :]).astype(np.float64)
    means = one_hot @ h / counts[:, None]
    return means - (h.mean(0) if center == "sample" else means.mean(0))


# The keys collapse_metrics returns: always FEATURE_KEYS; with a classifier W also CLASSIFIER_KEYS; with
# a ridge parameter also RIDGE_KEYS.
FEATURE_KEYS = (
    "nc1",
    "nc1_trace",
    "cdnv",
    "within_offspan",
    "means_conditioning",
    "nc2_equinorm",
    "nc2_equiangularity",
    "nc2_maxangle",
    "nc2_etf_distance",
    "ncc_error",
)
CLASSIFIER_KEYS = ("w_equinorm", "w_equiangularity", "w_maxangle", "w_etf_distance", "nc3", "nc3_etf_distance", "nc4")
RIDGE_KEYS = ("ridge_distance", "ridge_direction_distance", "ridge_nc3", "ridge_nc4")
# Keys that describe the geometry rather than measure a distance from collapse (0 at exact NC): at an
# exact simplex ETF means_conditioning is 1, and within_offspan is a fraction of a zero scatter.
DIAGNOSTIC_KEYS = ("within_offspan", "means_conditioning")


def collapse_metrics(
    features, labels, weight=None, bias=None, num_classes: int | None = None, ridge: float | None = None
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
      within_offspan    the fraction of Tr(Sigma_W) outside the span of the kept directions of Mdot:
                        1 - sum_i ||U^T (h_i - mu_{y_i})||^2 / sum_i ||h_i - mu_{y_i}||^2. NC1 does not
                        see this part of the within-class variance (Sigma_B^+ is zero there); it is what
                        the exact least-squares classifier, through Sigma_T^+, inverts.
      means_conditioning  s_{C-1} / s_1 of Mdot (0 when its rank is below C-1): how far the class means
                        are from the singular-value cut (module docstring); NC1 of means conditioned near
                        max(C, p) * eps is dominated by the features' rounding.
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
    Keys when `ridge` lambda >= 0 is given (with W): the ridge (least-squares) classifier of the features,
    W_r, b_r = argmin (1/N) sum_i ||W h_i + b - e_{y_i}||^2 + lambda ||W||_F^2, in closed form
    W_r = diag(pi) Mdot^T (Sigma_T + lambda I)^+, b_r = pi - W_r mu_G (pi_c = N_c/N; Sigma_T = Sigma_W +
    Mdot diag(pi) Mdot^T the total covariance; lambda = 0 is Webb & Lowe's classifier, PNAS 2020 Prop. 1,
    with Sigma_T^+ cut at the features' resolution squared). Han, Papyan & Donoho, "Neural collapse under
    MSE loss: proximity to and dynamics on the central path", ICLR 2022: on the central path the network's
    classifier is this W_r of its own features. This holds a p x p matrix: call it at the penultimate layer.
      ridge_distance    ||W - W_r||_F / ||W_r||_F (Han et al.'s deviation from the least-squares classifier)
      ridge_direction_distance  ||W/||W||_F - W_r/||W_r||_F||_F^2 (scale-free, as nc3: for losses whose W
                        has no least-squares scale, e.g. cross-entropy)
      ridge_nc3         nc3 of W_r: self-duality of the ridge classifier
      ridge_nc4         nc4 of (W_r, b_r): its disagreement with the nearest class mean

    Bad input (length mismatch, labels outside [0, C), an empty class, C < 2, p < C-1, NaN or inf,
    misshapen weight or bias, a `num_classes` that is not an int, identical class means, a zero
    centered mean or zero row of W, two coinciding class means) is a ValueError naming the problem;
    memory stays O(C p) whatever the labels (a stray label 10**9 is an empty-class error naming it).
    Perfectly collapsed features (Sigma_W = 0) give nc1 = 0.
    """
    resolution = _resolution_of(features)
    h = _as_float64(features)
    y = _as_labels(labels)
    _check_batch_shapes(h, y)
    rows = max(1, _CHUNK_ELEMENTS // max(1, h.shape[1]))
    blocks = [(h[i : i + rows], y[i : i + rows]) for i in range(0, len(y), rows)]
    return collapse_metrics_streaming(blocks, weight, bias, num_classes=num_classes, ridge=ridge, resolution=resolution)


def collapse_metrics_streaming(
    batches: Batches,
    weight=None,
    bias=None,
    num_classes: int | None = None,
    ridge: float | None = None,
    resolution: float = _EPS,
) -> dict[str, float]:
    """`collapse_metrics` over data that arrives in (features, labels) batches; returns the same dict.
    `resolution` is the relative precision of the features before any conversion (their dtype's machine
    epsilon; FLOAT32_RESOLUTION for float32 network features), which sets the singular-value cut.

    `batches` is read twice (class sums and counts, then residual statistics), so it must be either a
    re-iterable (a list, a torch DataLoader, ...) or a zero-argument callable returning a fresh iterator
    of batches; a one-shot iterator is a ValueError. Both passes must see the same samples (in any order).
    Memory: O(C p) plus one batch; no feature matrix, and no p x p matrix unless `ridge` is given (the
    ridge classifier needs Sigma_W). `num_classes` defaults
    to the largest label + 1.
    """
    if ridge is not None and (weight is None or not np.isfinite(ridge) or ridge < 0):
        raise ValueError(f"ridge={ridge!r} needs a classifier W and must be a finite lambda >= 0")
    if not (np.isfinite(resolution) and 0 < resolution < 1):
        raise ValueError(f"resolution={resolution!r} must be a relative precision in (0, 1)")
    start_pass = _pass_starter(batches)
    w, b = _as_classifier(weight, bias)
    means, counts, scale = _class_means(start_pass(), num_classes)
    c, p = means.shape
    if w is not None:
        _check_classifier_shapes(w, b, c, p)
        w_scale = _power_of_two(np.abs(w).max())
        w, b = w / w_scale, b / w_scale / scale
    geometry = _Geometry.of(means, counts, resolution)
    residuals = _residual_pass(start_pass(), geometry, w, b, scale, covariance=ridge is not None)

    within_total = residuals.within_sq.sum()
    metrics = {
        "nc1": residuals.whitened_sq / residuals.n,
        "nc1_trace": within_total / residuals.n / geometry.between_trace,
        "cdnv": _cdnv(residuals.within_sq / counts, geometry.mean_gaps),
        "within_offspan": 1 - residuals.inspan_sq / within_total if within_total > 0 else 0.0,
        "means_conditioning": geometry.conditioning,
        **_simplex_stats(geometry.centered, "nc2", "centered class mean"),
    }
    if w is not None:
        metrics.update(_simplex_stats(w, "w", "weight row"))
        metrics["nc3"] = direction_distance(w, geometry.centered) ** 2
        metrics["nc3_etf_distance"] = etf_distance(w @ geometry.centered.T, "W Mdot")
        metrics["nc4"] = residuals.nc4_mismatches / residuals.n
    if ridge is not None:
        w_r, b_r = _ridge_classifier(geometry, residuals, ridge / scale**2, resolution)
        # In the scaled units the network's classifier is w * w_scale * scale; W_r's is w_r.
        metrics["ridge_distance"] = np.linalg.norm(w * (w_scale * scale) - w_r) / np.linalg.norm(w_r)
        metrics["ridge_direction_distance"] = direction_distance(w, w_r) ** 2
        metrics["ridge_nc3"] = direction_distance(w_r, geometry.centered) ** 2
        metrics["ridge_nc4"] = _residual_pass(start_pass(), geometry, w_r, b_r, scale).nc4_mismatches / residuals.n
    metrics["ncc_error"] = residuals.ncc_errors / residuals.n
    return {key: float(value) for key, value in metrics.items()}


def ridge_classifier(features, labels, num_classes: int, lam: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(W_r, b_r): the minimiser of (1/N) sum_i ||W h_i + b - e_{y_i}||^2 + lam ||W||_F^2, for any feature
    dimension p (collapse_metrics measures it beside a network's classifier: RIDGE_KEYS). lam = 0 is the
    Webb-Lowe classifier of Papyan, Han & Donoho, PNAS 2020, Prop. 1 (ncsim.ufm.webb_lowe_classifier
    derives it). The features' dtype sets the pseudo-inverse cut (_ridge_weights). In memory."""
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam={lam!r} must be a finite ridge parameter >= 0")
    resolution = _resolution_of(features)
    h, y = _as_float64(features), _as_labels(labels)
    centered = centered_means(h, y, num_classes)  # validates shapes, labels, finiteness
    pi = np.bincount(y, minlength=num_classes) / len(y)
    residual = h - h.mean(0)
    w_r = _ridge_weights(centered, pi, residual.T @ residual / len(y), lam, len(y), resolution)
    return w_r, pi - w_r @ h.mean(0)


def central_path_distance(features, labels, weight, num_classes: int, lam: float) -> float:
    """sqrt(B(W) / B(0)): how far the classifier W lies from the central path, in the metric of the
    deviation term (B) of Han, Papyan & Donoho (ICLR 2022, Sec. 3), who decompose the MSE loss into (A),
    the loss with the classifier at least squares, and (B) = 1/2 ||(W - W_r)(Sigma_T + lam I)^{1/2}||_F^2.
    For the features h_i fixed and L(W, b) = (1/2N) sum_i ||W h_i + b - e_{y_i}||^2 + (lam/2) ||W||_F^2
    (half ridge_classifier's objective: the same minimiser (W_r, b_r)), B(W) is what L(W, b) exceeds
    L(W_r, b_r) by when b is the best bias for W (b = pi - W mu_G), and B(0) that excess for the zero
    classifier, 1/2 ||W_r (Sigma_T + lam I)^{1/2}||_F^2. Equivalently ||(W - W_r) S^{1/2}||_F /
    ||W_r S^{1/2}||_F with S = Sigma_T + lam I: the relative distance ||W - W_r||_F / ||W_r||_F with every
    direction weighted by the features' spread along it, so that the directions the features do not span,
    where W may differ from W_r at no cost in loss, count only through lam. 0 on the central path (W = W_r),
    1 for W = 0. In memory, float64."""
    h, y = _as_float64(features), _as_labels(labels)
    w_r, _ = ridge_classifier(h, y, num_classes, lam)
    w, b = _as_classifier(weight, None)
    _check_classifier_shapes(w, b, num_classes, h.shape[1])
    residual = h - h.mean(0)

    def weighted_square(a: np.ndarray) -> float:  # ||a (Sigma_T + lam I)^{1/2}||_F^2
        return np.sum((a @ residual.T) ** 2) / len(y) + lam * np.sum(a**2)

    scale = weighted_square(w_r)
    if not scale > 0:
        raise DegenerateFeaturesError("the least-squares classifier of these features is 0: no central path to be near")
    return float(np.sqrt(weighted_square(w - w_r) / scale))


def _ridge_classifier(g: _Geometry, r: _Residuals, lam: float, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """W_r and b_r = pi - W_r mu_G of collapse_metrics' RIDGE_KEYS, in the scaled units of g, from the
    within-class scatter of pass 2: Sigma_T = Sigma_W + Mdot diag(pi) Mdot^T."""
    pi = g.counts / g.counts.sum()
    sigma_t = r.within_cov / r.n + (g.centered.T * pi) @ g.centered
    w_r = _ridge_weights(g.centered, pi, sigma_t, lam, r.n, resolution)
    return w_r, pi - w_r @ (pi @ g.means)


def _ridge_weights(
    centered: np.ndarray, pi: np.ndarray, sigma_t: np.ndarray, lam: float, n: int, resolution: float
) -> np.ndarray:
    """W_r = diag(pi) Mdot^T (Sigma_T + lam I)^+. The pseudo-inverse drops the eigenvalues below the larger
    of two cuts times the largest: (max(C, p) * resolution)^2, the features' singular-value cut squared,
    and max(N, p) * eps64, the rounding of a sum of N outer products."""
    eigval, eigvec = np.linalg.eigh(sigma_t + lam * np.eye(len(sigma_t)))
    cut = max((max(centered.shape) * resolution) ** 2, max(n, len(sigma_t)) * _EPS)
    kept = eigval > cut * eigval[-1]
    inverse = (eigvec[:, kept] / eigval[kept]) @ eigvec[:, kept].T
    return (pi[:, None] * centered) @ inverse


def _resolution_of(features) -> float:
    """The machine epsilon of the features' own floating dtype (numpy or torch); float64's otherwise."""
    return _RESOLUTIONS.get(str(getattr(features, "dtype", "")).removeprefix("torch."), _EPS)


_RESOLUTIONS = {"float16": float(np.finfo(np.float16).eps), "bfloat16": 2.0**-7, "float32": FLOAT32_RESOLUTION}


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
        raise ValueError(f"labels outside [0, {num_classes if num_classes is not None else 'C'}): found label {bad}")


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
        raise ValueError(
            "batches is a one-shot iterator but is read twice: pass a re-iterable "
            "(e.g. a list) or a zero-argument callable returning a fresh iterator"
        )
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

    means: np.ndarray  # C x p, mu_c
    centered: np.ndarray  # C x p, A = Mdot^T, rows mu_c - mu_G
    counts: np.ndarray  # C, N_c
    basis: np.ndarray  # p x k, U over the kept singular values (k <= C-1)
    whitener: np.ndarray  # p x k, U S^-1 over the kept singular values
    between_trace: float  # Tr(Sigma_B)
    mean_gaps: np.ndarray  # C x C, ||mu_c - mu_c'||^2
    conditioning: float  # s_{C-1} / s_1 of Mdot

    @classmethod
    def of(cls, means: np.ndarray, counts: np.ndarray, resolution: float = _EPS) -> _Geometry:
        c, p = means.shape
        global_mean = counts @ means / counts.sum()
        centered = means - global_mean
        u, s, _ = np.linalg.svd(np.ascontiguousarray(centered.T), full_matrices=False)  # Mdot = U S V^T
        if s[0] <= max(c, p) * _EPS * np.linalg.norm(means):
            raise DegenerateFeaturesError(
                "class means are identical (Sigma_B = 0): nc1 and the NC2 statistics are undefined"
            )
        kept = s[: c - 1] > max(c, p) * resolution * s[0]
        basis = u[:, : c - 1][:, kept]
        conditioning = s[c - 2] / s[0] if len(s) >= c - 1 else 0.0
        return cls(
            means,
            centered,
            counts,
            basis,
            basis / s[: c - 1][kept],
            float((s**2).sum() / c),
            _squared_distances(centered),
            float(conditioning),
        )


# ---- pass 2: residual statistics -----------------------------------------------------------------------


@dataclass
class _Residuals:
    n: int = 0
    counts: np.ndarray | None = None
    whitened_sq: float = 0.0  # sum_i ||S^-1 U^T (h_i - mu_{y_i})||^2
    inspan_sq: float = 0.0  # sum_i ||U^T (h_i - mu_{y_i})||^2
    within_sq: np.ndarray | None = None  # per class, sum_{i in c} ||h_i - mu_c||^2
    within_cov: np.ndarray | None = None  # sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T, when asked for
    ncc_errors: int = 0
    nc4_mismatches: int = 0


def _residual_pass(
    source: Iterator,
    g: _Geometry,
    w: np.ndarray | None,
    b: np.ndarray | None,
    scale: float = 1.0,
    covariance: bool = False,
) -> _Residuals:
    """Pass 2 on h / `scale` (g, w and b are already scaled); with `covariance`, also the p x p within-class
    scatter."""
    c, k = len(g.means), g.whitener.shape[1]
    # One product r @ probe gives S^-1 U^T r, U^T r, r . (mu_c - mu_G) and W r for every residual r.
    probe = np.hstack([g.whitener, g.basis, g.centered.T] + ([] if w is None else [w.T]))
    mean_logits = None if w is None else g.means @ w.T + b
    acc = _Residuals(counts=np.zeros(c, dtype=np.intp), within_sq=np.zeros(c))
    if covariance:
        acc.within_cov = np.zeros((g.means.shape[1],) * 2)
    for h, y in _checked_batches(source, c):
        r = g.means[y]
        np.subtract(h / scale if scale != 1.0 else h, r, out=r)
        projected = r @ probe
        acc.whitened_sq += np.einsum("ij,ij->", projected[:, :k], projected[:, :k])
        acc.inspan_sq += np.einsum("ij,ij->", projected[:, k : 2 * k], projected[:, k : 2 * k])
        acc.within_sq += np.bincount(y, weights=np.einsum("ij,ij->i", r, r), minlength=c)
        if covariance:
            acc.within_cov += r.T @ r
        nearest = _nearest_mean(y, projected[:, 2 * k : 2 * k + c], g.mean_gaps)
        acc.ncc_errors += int(np.count_nonzero(nearest != y))
        if w is not None:
            logits = projected[:, 2 * k + c :] + mean_logits[y]  # W h + b = W (h - mu_y) + (W mu_y + b)
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
    return {
        f"{prefix}_equinorm": norms.std(ddof=1) / norms.mean(),
        f"{prefix}_equiangularity": cosines.std(ddof=1),
        f"{prefix}_maxangle": np.abs(cosines + 1 / (c - 1)).mean(),
        f"{prefix}_etf_distance": etf_distance(gram, what + "s' Gram matrix"),
    }


def etf_distance(m: np.ndarray, what: str = "matrix") -> float:
    """|| M/||M||_F - (I - 11^T/C)/sqrt(C-1) ||_F for a C x C matrix M (Zhu et al. 2021, Sec. 4)."""
    c = len(m)
    scale = np.linalg.norm(m)
    if scale == 0:
        raise DegenerateFeaturesError(f"{what} is zero: its distance to the simplex ETF is undefined")
    etf = (np.eye(c) - 1 / c) / np.sqrt(c - 1)
    return np.linalg.norm(m / scale - etf)


def direction_distance(a, b) -> float:
    """|| a/||a||_F - b/||b||_F ||_F: 0 exactly when a is a positive multiple of b, at most 2 (the
    scale-free distance of Zhu et al.'s ETF metric, for any target b). NC3 is its square for W against
    Mdot^T; ncsim.ufm compares Gram matrices with SELI's by it."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a / np.linalg.norm(a) - b / np.linalg.norm(b)))


def _squared_distances(vectors: np.ndarray) -> np.ndarray:
    """C x C matrix of ||v_c - v_c'||^2, from the differences (no cancellation), in O(C p) memory."""
    return _squared_distances_to(vectors, vectors)


def _cdnv(variances: np.ndarray, mean_gaps: np.ndarray) -> float:
    """Mean over pairs c < c' of (var_c + var_c') / (2 ||mu_c - mu_c'||^2) (Galanti et al. 2022)."""
    i, j = np.triu_indices(len(variances), k=1)
    gaps = mean_gaps[i, j]
    if (gaps == 0).any():
        at = np.flatnonzero(gaps == 0)[0]
        raise DegenerateFeaturesError(f"classes {i[at]} and {j[at]} have the same mean: cdnv is undefined")
    return np.mean((variances[i] + variances[j]) / (2 * gaps))


def few_shot_ncc_error(support, support_labels, query, query_labels, shots: int, episodes: int, seed: int) -> float:
    """Mean error of the nearest-class-centre classifier over few-shot episodes (Galanti, Gyorgy & Hutter,
    ICLR 2022, Sec. 3: h(x) = argmin_c ||f(x) - mu_f(S_c)|| with S_c a class's k-shot sample): in each
    episode, `shots` support features per class are drawn without replacement from `support` (every
    class of `support_labels`, an n-way episode over all of them), and every query is assigned to the
    class whose support mean is nearest (Euclidean; a tie goes to the lower label). The draws come from
    numpy's default_rng(seed), so a seed gives the same episodes on every machine."""
    hs, hq = _as_float64(support), _as_float64(query)
    ys, yq = _as_labels(support_labels), _as_labels(query_labels)
    _check_batch_shapes(hs, ys)
    _check_batch_shapes(hq, yq)
    for x, what in ((hs, "support features contain"), (hq, "query features contain")):
        _check_finite(x, what)
    if hs.shape[1] != hq.shape[1]:
        raise ValueError(f"support features have p = {hs.shape[1]}, query features p = {hq.shape[1]}")
    classes = np.unique(ys)
    if len(classes) < 2 or not np.isin(yq, classes).all():
        raise ValueError(
            f"support must hold >= 2 classes and every query label; support classes "
            f"{classes.tolist()}, query classes {np.unique(yq).tolist()}"
        )
    if shots < 1 or episodes < 1:
        raise ValueError(f"shots and episodes must be >= 1, got shots={shots}, episodes={episodes}")
    pools = [np.flatnonzero(ys == c) for c in classes]
    if min(len(p) for p in pools) < shots:
        raise ValueError(
            f"a {shots}-shot episode needs {shots} support samples per class; the smallest class "
            f"has {min(len(p) for p in pools)}"
        )
    rng = np.random.default_rng(seed)
    truth = np.searchsorted(classes, yq)
    errors = []
    for _ in range(episodes):
        means = np.stack([hs[rng.choice(p, shots, replace=False)].mean(0) for p in pools])
        nearest = np.argmin(_squared_distances_to(hq, means), axis=1)
        errors.append(np.mean(nearest != truth))
    return float(np.mean(errors))


def _squared_distances_to(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """N x C matrix of ||x_i - m_c||^2, from the differences (no cancellation), in O(N p) memory."""
    return np.stack([np.einsum("ij,ij->i", points - m, points - m) for m in centres], axis=1)
