"""ncsim.metrics.collapse_metrics_streaming: the same dict as the in-memory call, from batches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncsim.metrics import collapse_metrics, collapse_metrics_streaming
from tests.test_metrics import assert_same, problems, random_problem

HYPOTHESIS = settings(max_examples=50, deadline=None)


def split(h, y, sizes):
    """(features, labels) batches of the given sizes (the last one takes the rest)."""
    edges = np.cumsum([0, *sizes])
    edges = [*edges[edges < len(y)], len(y)]
    return [(h[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]


@pytest.fixture(scope="module")
def problem():
    return random_problem(np.random.default_rng(10), [30, 7, 19, 12, 25], 16)


@pytest.mark.parametrize("sizes", [[1] * 93, [7] * 14, [40, 1, 13, 0, 39], [93], [92]])
@pytest.mark.parametrize("as_callable", [False, True])
def test_streaming_equals_in_memory(problem, sizes, as_callable):
    h, y, w, b = problem
    batches = split(h, y, sizes)
    source = (lambda: iter(batches)) if as_callable else batches
    streamed = collapse_metrics_streaming(source, w, b)
    in_memory = collapse_metrics(h, y, w, b)
    assert set(streamed) == set(in_memory)
    assert_same(streamed, in_memory, in_memory, rtol=1e-10, atol=0)


def test_generator_function_and_torch_float32_batches(problem):
    torch = pytest.importorskip("torch")
    h, y, w, b = problem
    h32 = h.astype(np.float32)

    def batches():
        for features, labels in split(h32, y, [17] * 6):
            yield torch.from_numpy(features), torch.from_numpy(labels)

    streamed = collapse_metrics_streaming(batches, torch.tensor(w, dtype=torch.float32), torch.tensor(b), num_classes=5)
    assert_same(streamed, collapse_metrics(h32, y, w.astype(np.float32), b), streamed, rtol=1e-10, atol=0)


@HYPOTHESIS
@given(problem=problems(), seed=st.integers(0, 2**32 - 1))
def test_any_batching_gives_the_in_memory_result(problem, seed):
    h, y, w, b = problem
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, len(y) + 1, size=len(y))
    streamed = collapse_metrics_streaming(split(h, y, sizes), w, b)
    assert_same(streamed, collapse_metrics(h, y, w, b), streamed, rtol=1e-10, atol=1e-14)


def test_one_shot_iterator_is_a_value_error(problem):
    h, y, *_ = problem
    with pytest.raises(ValueError, match="one-shot iterator"):
        collapse_metrics_streaming(iter(split(h, y, [10] * 10)))


def test_batches_that_change_between_passes_are_a_value_error(problem):
    h, y, *_ = problem
    calls = iter([split(h, y, [50]), split(h[:-1], y[:-1], [50])])
    with pytest.raises(ValueError, match="batches changed between the two passes"):
        collapse_metrics_streaming(lambda: iter(next(calls)))


@pytest.mark.parametrize(
    "batches, message",
    [
        ([], "no samples"),
        (
            [(np.ones((2, 3)), np.array([0, 1])), (np.ones((2, 4)), np.array([0, 1]))],
            "batches disagree on the feature dimension: 3 then 4",
        ),
        (
            [(np.ones((2, 3)), np.array([0, 1])), (np.ones((2, 3)), np.array([2, 5]))],
            r"labels outside \[0, 3\): found label 5",
        ),
    ],
)
def test_bad_batches_are_a_value_error(batches, message):
    with pytest.raises(ValueError, match=message):
        collapse_metrics_streaming(batches, num_classes=3)
