"""The claims' runs are trained once across processes, in parallel (ncsim.pytest_plugin.runs.prefetch)."""

from __future__ import annotations

import threading

from ncsim import suite
from ncsim import train as train_mod
from ncsim.pytest_plugin import runs as plugin
from ncsim.spec import RunSpec
from ncsim.store import RunStore

pytest_plugins = ["pytester"]

TINY = RunSpec(epochs=1, train_size=200, width=4, layer_schedule="none")


def test_two_processes_share_the_training_and_train_each_run_once(cache_dir, monkeypatch, single_thread):
    """Two workers prefetch the same runs: every run is trained exactly once, and the two train
    side by side instead of one waiting on the other's lock."""
    wanted = [suite.RunId("standard", seed) for seed in range(4)]
    configs = suite.Configurations({"standard": TINY})
    real, trained, lock = train_mod.train, [], threading.Lock()

    def train(spec, **kw):
        with lock:
            trained.append((threading.current_thread().name, spec.seed))
        return real(spec, **kw)

    monkeypatch.setattr(train_mod, "train", train)
    workers = [
        threading.Thread(target=plugin.prefetch, args=(wanted, RunStore(cache_dir), configs), name=f"w{i}")
        for i in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(seed for _, seed in trained) == [0, 1, 2, 3]
    assert {name for name, _ in trained} == {"w0", "w1"}
    store = RunStore(cache_dir)
    assert all(store.read(TINY.replace(seed=r.seed).key()) for r in wanted)


def test_needed_runs_are_the_claims_configurations_and_their_references(pytester):
    """The runs a session prefetches: each CHECKS configuration and each `against` reference, over the
    session's seeds, the costliest first."""
    pytester.makefile(
        ".toml", tolerances='[t]\nvalue = 1\nop = "<="\nstatistic = "s"\nsource = "s"\ncalibration = "c"\n'
    )
    pytester.makepyfile(
        test_claim="""
from ncsim.checks import Check
CHECKS = (Check("t", len, configs=("lbfgs", "adam"), against="standard", controls=("self",)),)
"""
    )
    items, _ = pytester.inline_genitems("--seeds", "0,1", "-p", "no:cacheprovider")
    needed = plugin.needed_runs(items)
    assert needed[:2] == [suite.RunId("lbfgs", 0, 0), suite.RunId("lbfgs", 1, 1)]  # data seed = training seed
    assert set(needed) == {suite.RunId(c, s, s) for c in ("lbfgs", "adam", "standard") for s in (0, 1)}
    assert [item.name for item in items] == ["test_claim[lbfgs-t]", "test_claim[adam-t]"]
