"""Shared fixtures for the core tests (test_spec, test_data, test_train, test_cli).

Everything here is tiny and kept out of ~/.cache: the MNIST-1D arrays are generated once per session
into a temporary cache, and the one trained run the tests share takes about a second.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ncsim import data
from ncsim.spec import RunSpec
from ncsim.threads import limit_threads

# The shared tiny run: 2 epochs on 400 signals at width 12 (so that every layer tap has at least
# C-1 = 9 features and gets layer metrics), layers at epochs 0 and 2 only.
TINY = RunSpec(name="tiny", epochs=2, train_size=400, width=12, layer_schedule="every:2")


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """A session cache directory holding the default MNIST-1D arrays (generated once)."""
    root = tmp_path_factory.mktemp("ncsim-data-cache")
    data.cached_arrays(cache_dir=root)
    return root


@pytest.fixture(scope="session")
def clean_arrays(data_cache) -> dict:
    """The default MNIST-1D arrays, as read from the session cache."""
    return data.cached_arrays(cache_dir=data_cache)


@pytest.fixture
def no_home_cache(tmp_path, monkeypatch) -> Path:
    """Point NCSIM_CACHE (and XDG_CACHE_HOME) at a temporary directory, so that nothing can reach
    ~/.cache; the directory starts empty."""
    root = tmp_path / "env-cache"
    monkeypatch.setenv("NCSIM_CACHE", str(root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return root


@pytest.fixture
def cache_dir(tmp_path, data_cache, no_home_cache) -> Path:
    """A fresh store root that already holds the generated data (no regeneration), distinct from
    the NCSIM_CACHE directory."""
    root = tmp_path / "store"
    shutil.copytree(data_cache / "data", root / "data")
    return root


@pytest.fixture
def single_thread():
    with limit_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_spec() -> RunSpec:
    return TINY


@pytest.fixture(scope="session")
def tiny_record(data_cache):
    """The record of TINY, trained once per session (in the session data cache, no store)."""
    from ncsim.train import train

    with limit_threads(1):
        return train(TINY, cache_dir=data_cache)
