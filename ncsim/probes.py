"""Statistics of a trained network beyond its recorded columns, computed from a run's final weights
(ncsim.trajectory.Trajectory; its epoch-0 network after truncated(0)): the classifier rows of a subset
of classes, the test error on a subset of classes, and the features of classes the network never trained
on. Claims and figures read them from here, float64 throughout.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ncsim import metrics
from ncsim.data import cached_arrays


def mean_pairwise_cosine(rows) -> float:
    """Mean over pairs k < k' of cos(w_k, w_k') of the rows of a K x p matrix (K >= 2)."""
    w = np.asarray(rows, dtype=np.float64)
    if w.ndim != 2 or len(w) < 2:
        raise ValueError(f"need a K x p matrix with K >= 2 rows, got shape {w.shape}")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    if (norms == 0).any():
        raise metrics.DegenerateFeaturesError("a zero row has no direction: its cosine is undefined")
    u = w / norms
    i, j = np.triu_indices(len(u), k=1)
    return float(np.mean(np.einsum("ij,ij->i", u[i], u[j])))


def classifier_cosine(run, classes, centred: bool = False) -> float:
    """Mean pairwise cosine of the classifier rows w_k, k in `classes`, of the run's network: the raw rows
    (Fang et al. 2021's code, HornHehhf/LPM), or with `centred` the rows minus their mean over all C."""
    w = run.weights()["classifier.weight"].astype(np.float64)
    return mean_pairwise_cosine((w - w.mean(0) if centred else w)[list(classes)])


def central_path_distance(run) -> float:
    """The distance of the run's final classifier from the central path in the metric of Han, Papyan &
    Donoho's term (B) (metrics.central_path_distance), on its final train features, lambda the run's
    ridge parameter (wd / 2: ncsim.train.ridge_lambda, as the recorded ridge columns)."""
    from ncsim.train import ridge_lambda

    f = run.features("train")
    return metrics.central_path_distance(f["h"], f["y"], f["W"], len(f["W"]), ridge_lambda(run.spec))


@lru_cache(maxsize=32)
def _test_predictions(run) -> tuple[np.ndarray, np.ndarray]:
    f = run.features("test")
    return np.argmax(f["h"] @ f["W"].T + f["b"], axis=1), f["y"]


def class_test_error(run, classes) -> float:
    """The run's test error on the test signals of `classes` (prediction: argmax over all its C logits)."""
    pred, y = _test_predictions(run)
    keep = np.isin(y, list(classes))
    return float(np.mean(pred[keep] != y[keep]))


def class_signals(run, classes, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST-1D signals (N x 1 x L, of the run's generator arguments) of `classes` in a split ("train":
    the full 4000-signal train set, whatever the run trained on; "test"), labelled by their position in
    `classes` (0..len-1, in the order given)."""
    a = cached_arrays(dict(run.spec.data), run.data_cache)
    x, y = (a["x"], a["y"]) if split == "train" else (a["x_test"], a["y_test"])
    index = {int(c): i for i, c in enumerate(classes)}
    keep = np.isin(y, list(index))
    return x[keep][:, None, :], np.array([index[int(c)] for c in y[keep]], dtype=np.int64)


@lru_cache(maxsize=32)
def new_class_statistics(run, classes: tuple[int, ...], shots: int, episodes: int) -> dict[str, float]:
    """The network's features of `classes`: "cdnv" of their test signals (metrics.collapse_metrics; Galanti
    et al. 2022) and "few_shot_error", the nearest-class-centre error of `shots`-shot episodes with support
    from their train signals and every test signal as query (metrics.few_shot_ncc_error, seeded by the
    run's seed)."""
    (xs, ys), (xq, yq) = class_signals(run, classes, "train"), class_signals(run, classes, "test")
    net = run.model()
    hs, hq = run.embed(xs, net), run.embed(xq, net)
    return {
        "cdnv": metrics.collapse_metrics(hq, yq, num_classes=len(classes))["cdnv"],
        "few_shot_error": metrics.few_shot_ncc_error(
            hs, ys, hq, yq, shots=shots, episodes=episodes, seed=run.spec.seed
        ),
    }
