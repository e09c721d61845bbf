"""ncsim.metrics.collapse_metrics: exact cases, invariances, a plain textbook reference, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncsim import metrics
from ncsim.metrics import collapse_metrics

HYPOTHESIS = settings(max_examples=50, deadline=None)

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
WEIGHT_KEYS = ("w_equinorm", "w_equiangularity", "w_maxangle", "w_etf_distance", "nc3", "nc3_etf_distance", "nc4")
RIDGE_KEYS = ("ridge_distance", "ridge_direction_distance", "ridge_nc3", "ridge_nc4")
SCALE_FREE_FEATURE_KEYS = (
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


# ---- data ---------------------------------------------------------------------------------------------


def random_problem(rng: np.random.Generator, counts, p: int, spread: float = 1.0):
    """Features around random class means (with an offset), labels shuffled, a random classifier."""
    c = len(counts)
    labels = rng.permutation(np.repeat(np.arange(c), counts))
    means = rng.standard_normal((c, p)) * 2 + rng.standard_normal(p)
    features = means[labels] + spread * rng.standard_normal((len(labels), p))
    return features, labels, rng.standard_normal((c, p)), rng.standard_normal(c)


@st.composite
def problems(draw):
    """A random problem of random shape: 2..6 classes, 1..12 samples each (unbalanced), p >= C-1."""
    c = draw(st.integers(2, 6))
    p = draw(st.integers(max(c - 1, 1), 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    counts = rng.integers(1, 13, size=c)
    return random_problem(rng, counts, p, spread=draw(st.sampled_from([0.1, 1.0, 3.0])))


def orthonormal(rng: np.random.Generator, p: int, k: int) -> np.ndarray:
    """p x k with orthonormal columns, uniformly random."""
    q, r = np.linalg.qr(rng.standard_normal((p, k)))
    return q * np.sign(np.diag(r))


def assert_same(a: dict, b: dict, keys, rtol=1e-8, atol=1e-12):
    for key in keys:
        assert a[key] == pytest.approx(b[key], rel=rtol, abs=atol), key


# ---- a plain textbook reference (p x p matrices, loops) -------------------------------------------------


def textbook_metrics(h, y, w=None, b=None, ridge=None):
    c = y.max() + 1
    n, p = h.shape
    means = np.array([h[y == k].mean(axis=0) for k in range(c)])
    global_mean = h.mean(axis=0)
    sigma_w = sum(np.outer(h[i] - means[y[i]], h[i] - means[y[i]]) for i in range(n)) / n
    sigma_b = sum(np.outer(m - global_mean, m - global_mean) for m in means) / c
    eigenvalues, eigenvectors = np.linalg.eigh(sigma_b)
    top = eigenvectors[:, -(c - 1) :]
    sigma_b_pinv = top @ np.diag(1 / eigenvalues[-(c - 1) :]) @ top.T
    centered = means - global_mean
    variances = [np.mean([np.sum((x - means[k]) ** 2) for x in h[y == k]]) for k in range(c)]
    cdnv = np.mean(
        [
            (variances[i] + variances[j]) / (2 * np.sum((means[i] - means[j]) ** 2))
            for i, j in itertools.combinations(range(c), 2)
        ]
    )
    nearest = np.array([np.argmin([np.linalg.norm(x - m) for m in means]) for x in h])
    out = {
        "nc1": np.trace(sigma_w @ sigma_b_pinv) / c,
        "nc1_trace": np.trace(sigma_w) / np.trace(sigma_b),
        "within_offspan": 1 - np.trace(top.T @ sigma_w @ top) / np.trace(sigma_w),
        "means_conditioning": np.sqrt(eigenvalues[-(c - 1)] / eigenvalues[-1]),
        "cdnv": cdnv,
        "ncc_error": np.mean(nearest != y),
        **textbook_simplex(centered, "nc2"),
    }
    if w is not None:
        etf = (np.eye(c) - np.ones((c, c)) / c) / np.sqrt(c - 1)
        wm = w @ centered.T
        predictions = np.array([np.argmax(w @ x + b) for x in h])
        out.update(textbook_simplex(w, "w"))
        out["nc3"] = np.linalg.norm(w.T / np.linalg.norm(w) - centered.T / np.linalg.norm(centered)) ** 2
        out["nc3_etf_distance"] = np.linalg.norm(wm / np.linalg.norm(wm) - etf)
        out["nc4"] = np.mean(nearest != predictions)
    if ridge is not None:
        # The ridge classifier by np.linalg.lstsq on the stacked system [H 1; sqrt(N lam) I 0] [W b]^T = [Y; 0].
        x = np.vstack([np.hstack([h, np.ones((n, 1))]), np.hstack([np.sqrt(n * ridge) * np.eye(p), np.zeros((p, 1))])])
        targets = np.vstack([np.eye(c)[y], np.zeros((p, c))])
        solution = np.linalg.lstsq(x, targets, rcond=None)[0]
        w_r, b_r = solution[:p].T, solution[p]
        ridge_predictions = np.array([np.argmax(w_r @ v + b_r) for v in h])
        unit = lambda a: a / np.linalg.norm(a)  # noqa: E731
        out["ridge_distance"] = np.linalg.norm(w - w_r) / np.linalg.norm(w_r)
        out["ridge_direction_distance"] = np.linalg.norm(unit(w) - unit(w_r)) ** 2
        out["ridge_nc3"] = np.linalg.norm(unit(w_r.T) - unit(centered.T)) ** 2
        out["ridge_nc4"] = np.mean(nearest != ridge_predictions)
    return out


def textbook_simplex(v, prefix):
    c = len(v)
    norms = [np.linalg.norm(x) for x in v]
    cosines = [v[i] @ v[j] / (norms[i] * norms[j]) for i in range(c) for j in range(c) if i != j]
    gram = v @ v.T
    etf = (np.eye(c) - np.ones((c, c)) / c) / np.sqrt(c - 1)
    return {
        f"{prefix}_equinorm": np.std(norms, ddof=1) / np.mean(norms),
        f"{prefix}_equiangularity": np.std(cosines, ddof=1),
        f"{prefix}_maxangle": np.mean([abs(x + 1 / (c - 1)) for x in cosines]),
        f"{prefix}_etf_distance": np.linalg.norm(gram / np.linalg.norm(gram) - etf),
    }


# ---- exact cases --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("c, p", [(2, 3), (4, 9), (10, 32)])
def test_simplex_etf_with_no_spread_is_fully_collapsed(c, p):
    rng = np.random.default_rng(c)
    etf = np.sqrt(c / (c - 1)) * (np.eye(c) - 1 / c)  # C x C, rows a simplex ETF
    centered = 3.0 * etf @ orthonormal(rng, p, c).T  # rows in a random C-dim subspace of R^p
    offset = rng.standard_normal(p)
    labels = np.repeat(np.arange(c), 5)  # balanced, so mu_G = offset
    features = centered[labels] + offset
    weight = 0.7 * centered
    m = collapse_metrics(features, labels, weight, bias=-weight @ offset)
    assert set(m) == set(FEATURE_KEYS + WEIGHT_KEYS)
    assert m.pop("means_conditioning") == pytest.approx(1, abs=1e-10)  # the C-1 singular values are equal
    assert 0 <= m.pop("within_offspan") <= 1  # a fraction of a within-class scatter that is rounding only
    for key in m:
        assert m[key] == pytest.approx(0, abs=1e-10), key


@pytest.mark.filterwarnings("error")
def test_no_within_class_spread_gives_zero_nc1_without_warnings():
    rng = np.random.default_rng(0)
    means = rng.standard_normal((4, 6))
    labels = np.repeat(np.arange(4), [3, 1, 7, 2])
    m = collapse_metrics(means[labels], labels)
    for key in ("nc1", "nc1_trace", "cdnv", "ncc_error"):
        assert m[key] == pytest.approx(0, abs=1e-20), key


def test_weight_keys_only_with_weight():
    h, y, w, b = random_problem(np.random.default_rng(1), [5, 6, 7], 4)
    assert set(collapse_metrics(h, y)) == set(FEATURE_KEYS)
    assert set(collapse_metrics(h, y, w)) == set(FEATURE_KEYS + WEIGHT_KEYS)
    assert all(type(v) is float for v in collapse_metrics(h, y, w, b).values())
    assert set(collapse_metrics(h, y, w, ridge=0.1)) == set(FEATURE_KEYS + WEIGHT_KEYS + RIDGE_KEYS)
    assert (metrics.FEATURE_KEYS, metrics.CLASSIFIER_KEYS, metrics.RIDGE_KEYS) == (
        FEATURE_KEYS,
        WEIGHT_KEYS,
        RIDGE_KEYS,
    )


# ---- the textbook formulas ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "counts, p",
    [
        ([40, 40, 40, 40], 6),  # p < N
        ([5, 5, 5, 5, 5], 60),  # p > N
        ([3, 50, 12, 1, 27, 8], 10),  # unbalanced, a class of one
        ([2, 30], 1),  # C = 2, p = C-1
    ],
)
def test_matches_textbook_formulas(counts, p):
    h, y, w, b = random_problem(np.random.default_rng(len(counts) * p), counts, p)
    fast, slow = collapse_metrics(h, y, w, b), textbook_metrics(h, y, w, b)
    assert fast["nc1"] == pytest.approx(slow["nc1"], rel=1e-8)
    assert_same(fast, slow, FEATURE_KEYS + WEIGHT_KEYS, rtol=1e-8, atol=1e-12)


@HYPOTHESIS
@given(problem=problems(), ridge=st.sampled_from([0.0, 1e-3, 0.1, 10.0]))
def test_ridge_classifier_is_least_squares(problem, ridge):
    """RIDGE_KEYS: the closed form diag(pi) Mdot^T (Sigma_T + lam I)^+ against np.linalg.lstsq of the
    penalised least-squares problem (the Webb-Lowe identity at lam = 0, PNAS 2020 Prop. 1)."""
    h, y, w, b = problem
    if ridge == 0 and len(h) <= h.shape[1] + 1:
        ridge = 1e-3  # Sigma_T singular: the minimum-norm solutions of lstsq and of the cut agree only generically
    fast, slow = collapse_metrics(h, y, w, b, ridge=ridge), textbook_metrics(h, y, w, b, ridge=ridge)
    assert_same(fast, slow, ("ridge_distance", "ridge_direction_distance", "ridge_nc3"), rtol=1e-6, atol=1e-9)
    assert fast["ridge_nc4"] == pytest.approx(slow["ridge_nc4"], abs=1.5 / len(y))  # ties of argmax aside


def test_ridge_of_the_network_classifier_is_zero_and_bad_lambda_is_refused():
    h, y, _, _ = random_problem(np.random.default_rng(8), [30, 30, 30], 5)
    slow = textbook_metrics(h, y, np.ones((3, 5)), np.zeros(3), ridge=0.5)
    x = np.vstack([np.hstack([h, np.ones((90, 1))]), np.hstack([np.sqrt(90 * 0.5) * np.eye(5), np.zeros((5, 1))])])
    solution = np.linalg.lstsq(x, np.vstack([np.eye(3)[y], np.zeros((5, 3))]), rcond=None)[0]
    m = collapse_metrics(h, y, solution[:5].T, solution[5], ridge=0.5)
    assert m["ridge_distance"] == pytest.approx(0, abs=1e-10) and m["ridge_nc4"] == 0
    assert slow["ridge_distance"] > 0.1  # the control: another classifier is far from it
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="ridge"):
            collapse_metrics(h, y, np.ones((3, 5)), ridge=bad)
    with pytest.raises(ValueError, match="ridge"):
        collapse_metrics(h, y, ridge=0.1)


def test_singular_value_cut_is_at_the_features_resolution():
    """Class means that differ only by float32 rounding in one of their C-1 directions: at float64's
    resolution that direction is inverted and NC1 explodes; at the features' own (float32), it is cut,
    and means_conditioning flags how close the means are to degenerate."""
    rng = np.random.default_rng(9)
    c, p, n = 4, 8, 50
    means = np.zeros((c, p))
    means[:3, :2] = [[1, 0], [0, 1], [-1, -1]]
    means[3] = means[:3].mean(0) + 1e-9 * rng.standard_normal(p)  # a fourth mean at rounding distance
    y = np.repeat(np.arange(c), n)
    noise = 0.01 * rng.standard_normal((c * n, p))
    for k in range(c):
        noise[y == k] -= noise[y == k].mean(0)  # the class means stay `means`
    h = (means[y] + noise).astype(np.float32)
    at_float32 = collapse_metrics(h, y)
    at_float64 = collapse_metrics(h.astype(np.float64), y)
    assert at_float32["means_conditioning"] < 1e-5
    assert at_float32["nc1"] < 1e-2 < at_float64["nc1"]


def test_nc1_scales_with_the_square_of_within_class_noise():
    rng = np.random.default_rng(3)
    c, p = 5, 20
    labels = rng.permutation(np.repeat(np.arange(c), [8, 12, 9, 15, 10]))
    means = rng.standard_normal((c, p))
    noise = rng.standard_normal((len(labels), p))
    for k in range(c):
        noise[labels == k] -= noise[labels == k].mean(axis=0)  # class means stay exactly `means`
    base = collapse_metrics(means[labels] + noise, labels)["nc1"]
    for t in (0.01, 0.3, 7.0):
        assert collapse_metrics(means[labels] + t * noise, labels)["nc1"] == pytest.approx(t**2 * base, rel=1e-8)


def test_nc1_of_label_independent_features_grows_with_samples_per_class():
    """NC_REFERENCE: for random features NC1 grows about linearly with the samples per class."""
    rng = np.random.default_rng(4)
    c, p = 10, 64
    nc1 = {n: collapse_metrics(rng.standard_normal((c * n, p)), np.repeat(np.arange(c), n))["nc1"] for n in (50, 500)}
    assert 5 < nc1[500] / nc1[50] < 20


def test_num_classes_and_input_types():
    h, y, w, b = random_problem(np.random.default_rng(5), [4, 5, 6], 3)
    reference = collapse_metrics(h, y, w, b)
    assert collapse_metrics(h, y, w, b, num_classes=3) == reference
    torch = pytest.importorskip("torch")
    from_torch = collapse_metrics(
        torch.tensor(h, requires_grad=True), torch.tensor(y), torch.tensor(w), torch.tensor(b)
    )
    assert_same(from_torch, reference, reference, rtol=1e-12)
    from_float32 = collapse_metrics(h.astype(np.float32), y.astype(np.int32), w.astype(np.float32), b)
    assert_same(from_float32, reference, ("nc1", "nc2_equinorm"), rtol=1e-4)


# ---- invariances (hypothesis) -------------------------------------------------------------------------


@HYPOTHESIS
@given(problem=problems(), seed=st.integers(0, 2**32 - 1))
def test_rotation_and_translation_invariance(problem, seed):
    h, y, w, b = problem
    rng = np.random.default_rng(seed)
    q = orthonormal(rng, h.shape[1], h.shape[1])
    shift = 5 * rng.standard_normal(h.shape[1])
    rotated_w = w @ q.T  # W h = (W Q^T)(Q h)
    moved = collapse_metrics(h @ q.T + shift, y, rotated_w, b - rotated_w @ shift)
    assert_same(moved, collapse_metrics(h, y, w, b), FEATURE_KEYS + WEIGHT_KEYS, rtol=1e-7, atol=1e-10)


@HYPOTHESIS
@given(problem=problems(), feature_scale=st.floats(1e-3, 1e3), weight_scale=st.floats(1e-3, 1e3))
def test_positive_scaling_invariance(problem, feature_scale, weight_scale):
    h, y, w, b = problem
    reference = collapse_metrics(h, y, w, b)
    assert_same(collapse_metrics(feature_scale * h, y), reference, SCALE_FREE_FEATURE_KEYS, rtol=1e-7)
    scaled_weight = collapse_metrics(h, y, weight_scale * w, weight_scale * b)
    assert_same(scaled_weight, reference, WEIGHT_KEYS, rtol=1e-7, atol=1e-12)


@HYPOTHESIS
@given(problem=problems(), seed=st.integers(0, 2**32 - 1))
def test_sample_permutation_and_class_relabelling_invariance(problem, seed):
    h, y, w, b = problem
    rng = np.random.default_rng(seed)
    reference = collapse_metrics(h, y, w, b)
    order = rng.permutation(len(y))
    assert_same(collapse_metrics(h[order], y[order], w, b), reference, reference, rtol=1e-9)
    relabel = rng.permutation(len(w))  # class k becomes relabel[k]
    inverse = np.argsort(relabel)
    renamed = collapse_metrics(h, relabel[y], w[inverse], b[inverse])
    assert_same(renamed, reference, reference, rtol=1e-9)


# ---- bad input ----------------------------------------------------------------------------------------

_H, _Y, _W, _B = random_problem(np.random.default_rng(6), [4, 4, 4], 5)


def _bad(**changes):
    """A call on a valid 3-class problem with some arguments replaced."""
    args = {"features": _H, "labels": _Y, "weight": _W, "bias": _B, **changes}
    return lambda: collapse_metrics(**args)


def _with(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


@pytest.mark.parametrize(
    "call, message",
    [
        (_bad(labels=_Y[:-1]), "length mismatch"),
        (_bad(labels=_with(_Y, 0, 3).astype(int), num_classes=3), r"labels outside \[0, 3\): found label 3"),
        (_bad(labels=_with(_Y, 0, -1).astype(int)), "labels outside .* found label -1"),
        (_bad(labels=np.where(_Y == 1, 2, _Y), weight=None, bias=None), "class 1 has no samples"),
        (_bad(labels=_Y, num_classes=4, weight=None, bias=None), "class 3 has no samples"),
        (_bad(labels=np.zeros_like(_Y), weight=None, bias=None), "fewer than 2 classes"),
        (_bad(features=_H[:, :1]), "feature dimension p = 1 is less than C-1 = 2"),
        (_bad(features=_with(_H, (2, 3), np.nan)), "features contain NaN"),
        (_bad(features=_with(_H, (2, 3), -np.inf)), "features contain inf"),
        (_bad(weight=_with(_W, (1, 1), np.nan)), "weight contains NaN"),
        (_bad(bias=_with(_B, 2, np.inf)), "bias contains inf"),
        (_bad(weight=_W[:, :4]), r"weight has shape \(3, 4\), expected \(C, p\) = \(3, 5\)"),
        (_bad(weight=_W[:2]), r"weight has shape \(2, 5\)"),
        (_bad(bias=_B[:2]), r"bias has shape \(2,\), expected"),
        (_bad(weight=None), "bias given without weight"),
        (_bad(weight=_with(_W, 2, 0.0)), "weight row 2 is zero"),
        (_bad(labels=_Y.astype(float)), "integer dtype"),
        (_bad(features=_H[:, 0]), "two-dimensional"),
        (_bad(features=_H[:0], labels=_Y[:0]), "no samples"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_identical_class_means_are_a_value_error():
    rng = np.random.default_rng(7)
    points = rng.standard_normal((6, 4)) + 10
    features = np.vstack([points, points, points])  # every class has the same samples
    with pytest.raises(ValueError, match=r"class means are identical \(Sigma_B = 0\)"):
        collapse_metrics(features, np.repeat(np.arange(3), 6))


def test_two_coinciding_class_means_are_a_value_error():
    points = np.array([[0.0, 1.0], [2.0, 3.0]])
    features = np.vstack([points, points, points + [5.0, 0.0]])
    with pytest.raises(ValueError, match="classes 0 and 1 have the same mean"):
        collapse_metrics(features, np.repeat(np.arange(3), 2))


def test_class_mean_at_the_global_mean_is_a_value_error():
    features = np.array([[-1.0, 0.0], [-1.0, 1.0], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="centered class mean 1 is zero"):
        collapse_metrics(features, np.repeat(np.arange(3), 2))


# ---- extreme inputs: stray labels, num_classes, feature and weight scales -------------------------------


def test_a_stray_huge_label_is_named_without_allocating_for_it():
    labels = _Y.copy()
    labels[0] = 10**9
    with pytest.raises(
        ValueError, match=r"class \d has no samples \(C = 1000000001 from the largest label, 1000000000\)"
    ):
        collapse_metrics(_H, labels)
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\): found label 1000000000"):
        collapse_metrics(_H, labels, num_classes=3)


def test_a_huge_num_classes_is_an_empty_class_without_allocating_for_it():
    with pytest.raises(ValueError, match="class 3 has no samples"):
        collapse_metrics(_H, _Y, num_classes=10**9)


@pytest.mark.parametrize("bad", [1.5, 3.0, True, "3", np.float64(3.0)])
def test_num_classes_must_be_an_int(bad):
    with pytest.raises(ValueError, match=r"num_classes must be an int, got"):
        collapse_metrics(_H, _Y, num_classes=bad)


def test_numpy_integer_num_classes_is_accepted():
    assert collapse_metrics(_H, _Y, num_classes=np.int64(3)) == collapse_metrics(_H, _Y)


@pytest.mark.parametrize("scale", [1e155, 1e-160, 1e300, 5e-300])
def test_extreme_feature_scales_give_the_unit_scale_metrics(scale):
    reference = collapse_metrics(_H, _Y, _W, _B)
    scaled = collapse_metrics(_H * scale, _Y, _W, _B * scale)  # W (a h) + a b = a (W h + b): same argmax
    assert_same(scaled, reference, reference, rtol=1e-12)


@pytest.mark.parametrize("scale", [1e250, 1e-250])
def test_extreme_weight_scales_give_the_unit_scale_metrics(scale):
    reference = collapse_metrics(_H, _Y, _W, _B)
    scaled = collapse_metrics(_H, _Y, _W * scale, _B * scale)
    assert all(np.isfinite(v) for v in scaled.values())
    assert_same(scaled, reference, reference, rtol=1e-12)


@HYPOTHESIS
@given(problem=problems(), exponent=st.integers(-300, 300), weight_exponent=st.integers(-300, 300))
def test_metrics_are_invariant_to_scales_over_the_float64_range(problem, exponent, weight_exponent):
    h, y, w, b = problem
    a, c = 2.0**exponent, 2.0**weight_exponent
    reference = collapse_metrics(h, y, w, b)
    assert_same(collapse_metrics(h * a, y, w * c, b * a * c), reference, reference, rtol=1e-12, atol=0)


@pytest.mark.parametrize("scale", [1e155, 1e-160])
def test_identical_class_means_stay_degenerate_at_any_scale(scale):
    from ncsim.metrics import DegenerateFeaturesError

    points = np.random.default_rng(7).standard_normal((6, 4)) + 10
    with pytest.raises(DegenerateFeaturesError, match="class means are identical"):
        collapse_metrics(np.vstack([points] * 3) * scale, np.repeat(np.arange(3), 6))


def test_exact_least_squares_jumps_where_the_ridge_classifier_does_not():
    """Why the exact Webb-Lowe classifier is not self-dual at small but nonzero NC1 (wl_cnn_nc3_max):
    simplex-ETF means in p = 128 at NC1 ~1e-3, with within-class noise whose off-span part is correlated
    with its in-span part (as in the CNN, where a quarter of Tr(Sigma_W) lies off the span) plus a little
    isotropic noise. Sigma_T^+ inverts the small off-span eigenvalues, so the exact classifier (lam = 0)
    turns away from the means; the ridge classifier at lam = 5e-3 stays self-dual. (With isotropic noise
    alone both are nearly self-dual: exact NC3 0.03 at NC1 2e-3.)"""
    rng = np.random.default_rng(11)
    c, p, n = 10, 128, 400
    basis = orthonormal(rng, p, p)
    span, off = basis[:, :c], basis[:, c:]
    etf = np.sqrt(c / (c - 1)) * (np.eye(c) - 1 / c) @ span.T
    y = np.repeat(np.arange(c), n)
    z = 0.012 * rng.standard_normal((c * n, c))
    h = (
        etf[y]
        + z @ span.T
        + (z @ rng.standard_normal((c, p - c)) * 0.5 / np.sqrt(c) + 1e-3 * rng.standard_normal((c * n, p - c))) @ off.T
    )
    m = collapse_metrics(h, y)
    assert 5e-4 < m["nc1"] < 2e-3 and m["within_offspan"] > 0.5
    exact = collapse_metrics(h, y, *metrics.ridge_classifier(h, y, c, 0.0))
    ridge = collapse_metrics(h, y, *metrics.ridge_classifier(h, y, c, 5e-3))
    assert exact["nc3"] > 0.2 > 0.01 > ridge["nc3"]
    assert exact["nc4"] == ridge["nc4"] == 0  # both still decide as the nearest class mean


# ---- few-shot nearest-class-centre error ----------------------------------------------------------------


def few_shot(support, ys, query, yq, shots=2, episodes=5, seed=0):
    return metrics.few_shot_ncc_error(support, ys, query, yq, shots=shots, episodes=episodes, seed=seed)


def clusters(rng: np.random.Generator, c: int, n: int, p: int, spread: float, labels=None):
    """n samples per class around c random centres; labels `labels` (default 0..c-1) in blocks."""
    labels = np.arange(c) if labels is None else np.asarray(labels)
    centres = rng.standard_normal((c, p)) * 3
    y = np.repeat(labels, n)
    return centres[np.repeat(np.arange(c), n)] + spread * rng.standard_normal((c * n, p)), y


def test_few_shot_error_of_separated_clusters_is_zero_and_of_swapped_labels_one():
    hs, ys = clusters(np.random.default_rng(2), 4, 10, 6, spread=1e-3)
    hq, yq = clusters(np.random.default_rng(2), 4, 5, 6, spread=1e-3)  # the same centres
    assert few_shot(hs, ys, hq, yq, shots=3, episodes=4, seed=5) == 0.0
    assert few_shot(hs, ys, hq, (yq + 1) % 4, shots=1, episodes=4) == 1.0


def test_few_shot_classes_need_not_be_consecutive_labels():
    hs, ys = clusters(np.random.default_rng(3), 3, 6, 4, spread=1e-2, labels=[2, 5, 9])
    hq, yq = clusters(np.random.default_rng(3), 3, 4, 4, spread=1e-2, labels=[2, 5, 9])
    assert few_shot(hs, ys, hq, yq) == 0.0
    assert few_shot(hs, ys, hq[yq != 5], yq[yq != 5]) == 0.0  # a query set without one of the classes


def test_a_query_at_a_classs_support_mean_is_assigned_to_it():
    # shots = the class size: every episode's centre is the class's full support mean.
    rng = np.random.default_rng(4)
    hs, ys = rng.standard_normal((15, 5)), np.repeat(np.arange(3), 5)
    means = np.stack([hs[ys == c].mean(0) for c in range(3)])
    assert few_shot(hs, ys, means, np.arange(3), shots=5, episodes=3) == 0.0
    assert few_shot(hs, ys, means, np.array([1, 2, 0]), shots=5, episodes=3) == 1.0


def test_full_shot_episodes_give_the_nearest_class_mean_error():
    # shots = the class size: the error is that of the full class means, for any seed (a plain loop here).
    rng = np.random.default_rng(5)
    hs, ys = clusters(rng, 4, 6, 3, spread=2.0)
    hq, yq = clusters(rng, 4, 20, 3, spread=2.0)
    means = [hs[ys == c].mean(0) for c in range(4)]
    wrong = sum(int(np.argmin([np.sum((x - m) ** 2) for m in means]) != y) for x, y in zip(hq, yq))
    assert 0 < wrong < len(yq)
    for seed in (0, 1, 7):
        assert few_shot(hs, ys, hq, yq, shots=6, episodes=2, seed=seed) == pytest.approx(wrong / len(yq), abs=1e-15)


def test_few_shot_error_averages_the_episodes_draws():
    # Class 0's support is {0, 10}, class 1's {4}; the query 1 (class 0) is right exactly when the episode
    # draws 0: each episode's error is 0 or 1 with probability 1/2. Over 1000 episodes the mean is a
    # Binomial(1000, 1/2) / 1000: within 5 standard deviations (0.079) of 0.5.
    hs, ys = np.array([[0.0], [10.0], [4.0]]), np.array([0, 0, 1])
    e = few_shot(hs, ys, np.array([[1.0]]), np.array([0]), shots=1, episodes=1000, seed=3)
    assert e == pytest.approx(0.5, abs=0.079)
    assert (e * 1000) == pytest.approx(round(e * 1000), abs=1e-9)


def test_a_tie_goes_to_the_lower_label():
    hs, ys = np.array([[-1.0, 0.0], [1.0, 0.0]]), np.array([7, 3])  # class 7 at -1, class 3 at +1
    query = np.array([[0.0, 5.0]])  # equidistant from both
    assert few_shot(hs, ys, query, np.array([3]), shots=1, episodes=1) == 0.0
    assert few_shot(hs, ys, query, np.array([7]), shots=1, episodes=1) == 1.0


def test_few_shot_error_is_deterministic_for_a_seed_and_changes_with_it():
    rng = np.random.default_rng(6)
    hs, ys = clusters(rng, 5, 30, 8, spread=2.5)
    hq, yq = clusters(rng, 5, 30, 8, spread=2.5)
    a = few_shot(hs, ys, hq, yq, shots=1, episodes=10, seed=11)
    assert few_shot(hs, ys, hq, yq, shots=1, episodes=10, seed=11) == a
    assert few_shot(hs, ys, hq, yq, shots=1, episodes=10, seed=12) != a
    assert 0 < a < 1


def test_few_shot_error_leaves_the_global_rng_alone_and_takes_tensors():
    import torch

    rng = np.random.default_rng(8)
    hs, ys = clusters(rng, 3, 8, 4, spread=2.0)
    hq, yq = clusters(rng, 3, 8, 4, spread=2.0)
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    a = few_shot(hs, ys, hq, yq, shots=2, episodes=6, seed=2)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    b = few_shot(
        torch.tensor(hs, dtype=torch.float64),
        torch.tensor(ys),
        torch.tensor(hq, dtype=torch.float64),
        torch.tensor(yq),
        shots=2,
        episodes=6,
        seed=2,
    )
    assert a == b


@st.composite
def few_shot_problems(draw):
    """Support (4..9 samples per class) and query sets of 2..5 classes in p = 1..8 dimensions."""
    c, p = draw(st.integers(2, 5)), draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([0.3, 1.0, 3.0]))
    centres = rng.standard_normal((c, p)) * 2
    ys = rng.permutation(np.repeat(np.arange(c), rng.integers(4, 10, size=c)))
    yq = rng.integers(0, c, size=20)
    hs = centres[ys] + spread * rng.standard_normal((len(ys), p))
    hq = centres[yq] + spread * rng.standard_normal((len(yq), p))
    return hs, ys, hq, yq


@HYPOTHESIS
@given(
    problem=few_shot_problems(),
    shots=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-100, 100),
)
def test_few_shot_error_is_invariant_to_translating_and_scaling_all_features(problem, shots, seed, scale, shift):
    hs, ys, hq, yq = problem
    t = shift * np.linspace(-1, 1, hs.shape[1])  # one translation for support and query
    e = few_shot(hs, ys, hq, yq, shots=shots, episodes=3, seed=seed)
    assert few_shot(scale * hs + t, ys, scale * hq + t, yq, shots=shots, episodes=3, seed=seed) == e
    assert 0 <= e <= 1 and e * 3 * len(yq) == pytest.approx(round(e * 3 * len(yq)), abs=1e-6)


_HS, _YS = np.arange(12.0).reshape(6, 2), np.array([0, 0, 0, 1, 1, 2])
_HQ, _YQ = np.ones((3, 2)), np.array([0, 1, 2])


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"query_labels": np.array([0, 1, 3])}, ValueError, r"every query label.*support classes \[0, 1, 2\]"),
        (
            {"support_labels": np.zeros(6, dtype=int), "query_labels": np.zeros(3, dtype=int)},
            ValueError,
            ">= 2 classes",
        ),
        ({"shots": 2}, ValueError, "2-shot episode needs 2 support samples per class; the smallest class has 1"),
        ({"shots": 0}, ValueError, "shots and episodes must be >= 1"),
        ({"episodes": 0}, ValueError, "shots and episodes must be >= 1"),
        ({"query": np.ones((3, 3))}, ValueError, "support features have p = 2, query features p = 3"),
        ({"support_labels": _YS[:-1]}, ValueError, "length mismatch"),
        ({"support": _with(_HS, (1, 1), np.nan)}, metrics.NonFiniteError, "support features contain NaN"),
        ({"query": _with(_HQ, (2, 0), np.nan)}, metrics.NonFiniteError, "query features contain NaN"),
        ({"query": _with(_HQ, (0, 0), np.inf)}, metrics.NonFiniteError, "query features contain inf"),
    ],
)
def test_bad_few_shot_input_is_an_error_naming_the_problem(changes, error, message):
    args = {
        "support": _HS,
        "support_labels": _YS,
        "query": _HQ,
        "query_labels": _YQ,
        "shots": 1,
        "episodes": 2,
        "seed": 0,
        **changes,
    }
    with pytest.raises(error, match=message):
        metrics.few_shot_ncc_error(**args)
    assert issubclass(metrics.NonFiniteError, ValueError)


@HYPOTHESIS
@given(problem=problems(), ridge=st.sampled_from([1e-3, 0.1, 10.0]))
def test_central_path_distance_is_the_loss_excess_of_han_et_al(problem, ridge):
    """central_path_distance^2 = B(W) / B(0), B(W) = L(W, b*(W)) - L(W_r, b_r): the last layer's MSE loss
    L(W, b) = (1/2N) sum ||W h + b - e_y||^2 + (lam/2) ||W||^2 above its minimum, at the best bias
    b*(W) = pi - W mu_G (Han, Papyan & Donoho 2022's term (B)); 0 for W = W_r, 1 for W = 0."""
    h, y, w, _ = problem
    c, n = len(w), len(y)
    w_r, b_r = metrics.ridge_classifier(h, y, c, ridge)
    pi = np.bincount(y, minlength=c) / n

    def loss(w, b):
        return 0.5 * (np.sum((h @ w.T + b - np.eye(c)[y]) ** 2) / n + ridge * np.sum(w**2))

    def excess(w):
        return loss(w, pi - w @ h.mean(0)) - loss(w_r, b_r)

    assert metrics.central_path_distance(h, y, w, c, ridge) ** 2 == pytest.approx(
        excess(w) / excess(np.zeros_like(w)), rel=1e-6, abs=1e-9
    )
    assert metrics.central_path_distance(h, y, w_r, c, ridge) == pytest.approx(0, abs=1e-6)
    assert metrics.central_path_distance(h, y, np.zeros_like(w), c, ridge) == pytest.approx(1)
