"""Tests for ncsim.train, ncsim.suite.obtain_run and ncsim.trajectory on tiny runs (a second or less each).

The shared run `tiny_record` (conftest.TINY) is 2 epochs on 400 signals at width 12, evaluated every
epoch, layers at epochs 0 and 2. Other runs here use 200 signals and evaluate only epochs 0 and last.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
import threadpoolctl
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies

import ncsim.suite
import ncsim.train
from ncsim import data, models, trajectory
from ncsim import train as train_mod
from ncsim.metrics import collapse_metrics
from ncsim.spec import RunSpec
from ncsim.store import Record, RunStore
from ncsim.threads import limit_threads
from ncsim.train import columns, loss_fn, train
from ncsim.trajectory import Trajectory, first_zero_error_epoch, tpt_epoch

pytestmark = pytest.mark.usefixtures("no_home_cache", "single_thread")

# A cheaper run than TINY: no per-epoch evaluation, no layer taps.
SMALL = RunSpec(name="small", epochs=2, train_size=200, width=12, eval_schedule="none", layer_schedule="none")

PENULTIMATE_KEYS = (
    "nc1",
    "nc1_trace",
    "cdnv",
    "nc2_equinorm",
    "nc2_equiangularity",
    "nc2_maxangle",
    "nc2_etf_distance",
    "ncc_error",
    "w_equinorm",
    "w_equiangularity",
    "w_maxangle",
    "w_etf_distance",
    "nc3",
    "nc3_etf_distance",
    "nc4",
)
LAYER_KEYS = (
    "nc1",
    "nc1_trace",
    "cdnv",
    "nc2_equinorm",
    "nc2_equiangularity",
    "nc2_maxangle",
    "nc2_etf_distance",
    "ncc_error",
)


def assert_same_arrays(a: dict, b: dict):
    """Same names, dtypes, shapes and bytes (NaN equals NaN)."""
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


def initial_parameters(spec: RunSpec) -> dict[str, np.ndarray]:
    """The network's parameters at initialisation, as train() builds it (seeded by spec.seed)."""
    torch.manual_seed(spec.seed)
    net = models.build(spec, spec.train_classes or 10)
    return {k: v.detach().numpy().copy() for k, v in net.named_parameters()}


def final_parameters(record: Record) -> dict[str, np.ndarray]:
    """The record's weights that are parameters (not batch-norm buffers)."""
    spec = RunSpec.from_dict(record.meta["spec"])
    names = {k for k, _ in models.build(spec, spec.train_classes or 10).named_parameters()}
    return {k: record.arrays[f"weights.{k}"] for k in names}


def parameter_distance(a: dict, b: dict) -> float:
    return math.sqrt(sum(float(((a[k].astype(np.float64) - b[k]) ** 2).sum()) for k in a))


def expected_taps(spec: RunSpec) -> list[str]:
    """Layer taps in block order: "<conv>.flat", "<conv>.pool" for 3-D outputs, the name for 2-D ones;
    the penultimate block is analysed as the penultimate layer, not as a tap."""
    net = models.build(spec, 10).eval()
    with torch.no_grad():
        _, outs = net(torch.zeros(2, 1, 40), taps=True)
    outs.pop("penultimate")
    return list(models.tap_features(outs))


# --- the shared tiny run ---------------------------------------------------------------------------


def test_record_has_the_trajectory_columns(tiny_record, tiny_spec):
    a = tiny_record.arrays
    for k in ("epoch", "train_loss", "train_error", "test_loss", "test_error", "fit_loss", "fit_error", "fit_lr"):
        assert k in a, k
    for k in PENULTIMATE_KEYS:
        assert f"train.{k}" in a and f"test.{k}" in a, k
    for tap in expected_taps(tiny_spec):
        for k in LAYER_KEYS:
            assert f"layer.{tap}.{k}" in a, (tap, k)
    assert set(Trajectory(tiny_record).columns()) == set(columns(tiny_record.meta["taps"]))


def test_record_is_keyed_by_the_spec(tiny_record, tiny_spec):
    assert tiny_record.key == tiny_spec.key()
    assert tiny_record.meta["key"] == tiny_spec.key() and tiny_record.meta["label"] == "tiny-s0"
    assert RunSpec.from_dict(tiny_record.meta["spec"]) == tiny_spec


def test_every_epoch_is_evaluated_with_schedule_all(tiny_record):
    a = tiny_record.arrays
    np.testing.assert_array_equal(a["epoch"], [0, 1, 2])
    for k, v in a.items():
        if not k.startswith("weights.") and k not in ("fit_loss", "fit_error", "fit_lr"):
            assert v.shape == (3,) and v.dtype == np.float64, k


def test_penultimate_metrics_are_finite_at_every_evaluated_epoch(tiny_record):
    a = tiny_record.arrays
    for k in (
        "train_loss",
        "train_error",
        "test_loss",
        "test_error",
        *(f"{s}.{m}" for s in ("train", "test") for m in PENULTIMATE_KEYS),
    ):
        assert np.isfinite(a[k]).all(), k
    assert ((a["train_error"] >= 0) & (a["train_error"] <= 1)).all()


def test_initial_loss_is_near_chance(tiny_record):
    # At initialisation the CE loss is about ln(10) = 2.30 (tolerance 0.3: random logits are not 0).
    assert tiny_record.arrays["train_loss"][0] == pytest.approx(math.log(10), abs=0.3)


def test_layer_metrics_only_at_layer_epochs(tiny_record, tiny_spec):
    # layer_schedule "every:2" over 2 epochs: layers at 0 and 2, NaN at 1.
    for tap in expected_taps(tiny_spec):
        for k in LAYER_KEYS:
            v = tiny_record.arrays[f"layer.{tap}.{k}"]
            assert np.isfinite(v[[0, 2]]).all() and np.isnan(v[1]), (tap, k)


def test_weights_are_the_models_state_dict(tiny_record, tiny_spec):
    state = models.build(tiny_spec, 10).state_dict()
    weights = {k[len("weights.") :]: v for k, v in tiny_record.arrays.items() if k.startswith("weights.")}
    assert list(weights) == list(state)
    for k, v in state.items():
        assert weights[k].shape == tuple(v.shape), k


def test_fit_loss_and_lr_have_one_entry_per_epoch(tiny_record):
    a = tiny_record.arrays
    assert a["fit_loss"].shape == (2,) and np.isfinite(a["fit_loss"]).all()
    # multistep over 2 epochs: milestone at epoch 1, x0.1 (relative tolerance for the float product).
    np.testing.assert_allclose(a["fit_lr"], [0.1, 0.01], rtol=1e-12)


def test_fit_error_is_a_count_of_train_signals_per_pass(tiny_record, tiny_spec, data_cache):
    fit, n = tiny_record.arrays["fit_error"], len(data.load(tiny_spec, data_cache).y)
    assert fit.shape == (2,) and ((fit >= 0) & (fit <= 1)).all()
    np.testing.assert_allclose(fit * n, np.round(fit * n), rtol=0, atol=1e-9)  # misclassified signals / N
    np.testing.assert_array_equal(Trajectory(tiny_record).fit_error, fit)


def fit_with_probes(spec: RunSpec, data_cache):
    """One fit_epoch of `spec` from its initialisation, probed: (fit, N, minibatches in order, a
    (minibatch, misclassified signals) pair per gradient-carrying train-mode forward, closure calls per
    optimizer step (0 for a step without closure))."""
    ds, model, opt, _, gen = train_mod.setup(spec, data_cache)
    order = torch.randperm(len(ds.x), generator=torch.Generator().set_state(gen.get_state()))
    batches = [order[i : i + spec.batch_size] for i in range(0, len(order), spec.batch_size)]
    forwards, steps = [], []

    def hook(module, args, logits):
        if module.training and torch.is_grad_enabled():
            x = args[0]
            k = next(k for k, b in enumerate(batches) if len(b) == len(x) and torch.equal(ds.x[b], x))
            forwards.append((k, int((logits.argmax(1) != ds.y[batches[k]]).sum())))

    real_step = opt.step

    def step(closure=None):
        steps.append(0)
        if closure is None:
            return real_step()

        def counted():
            steps[-1] += 1
            return closure()

        return real_step(counted)

    model.register_forward_hook(hook)
    opt.step = step
    fit = train_mod.fit_epoch(spec, model, opt, ds, gen)
    return fit, len(ds.x), batches, forwards, steps


def test_fit_error_is_the_share_of_signals_the_minibatches_misclassified(data_cache):
    fit, n, batches, forwards, steps = fit_with_probes(SMALL, data_cache)
    assert isinstance(fit, train_mod.EpochFit)
    assert [k for k, _ in forwards] == list(range(len(batches))) and steps == [0] * len(batches)
    assert fit.error == sum(c for _, c in forwards) / n  # so 0 exactly when no signal was misclassified
    assert 0 < fit.error <= 1  # at initialisation some are


def test_lbfgs_fit_error_counts_each_step_once(data_cache):
    spec = SMALL.replace(optimizer="lbfgs", batch_size=100, lr=1.0, grad_clip=0.0, epochs=1)
    fit, n, batches, forwards, steps = fit_with_probes(spec, data_cache)
    assert len(steps) == len(batches) and sum(steps) > len(steps)  # the line search calls the closure again
    assert len(forwards) == sum(steps)
    first = {}
    for k, wrong in forwards:
        first.setdefault(k, wrong)
    assert sorted(first) == list(range(len(batches)))
    assert fit.error == sum(first.values()) / n and 0 <= fit.error <= 1
    assert sum(wrong for _, wrong in forwards) > sum(first.values())  # what counting every call would give
    rec = train(spec, cache_dir=data_cache)
    assert rec.arrays["fit_error"].shape == (1,) and 0 <= rec.arrays["fit_error"][0] <= 1


def test_recomputed_bn_statistics_are_the_train_sets_batch_statistics(data_cache):
    # Precise BN: each layer's running mean is the mean of its input over the whole train set at the
    # current weights, whatever the running averages were before; the momentum and weights stay.
    spec = SMALL.replace(train_size=0)
    ds = data.load(spec, data_cache)
    torch.manual_seed(0)
    net = models.build(spec, 10)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in norms:
        m.running_mean.fill_(1e3)  # what line-search trial points could leave
    params = {k: v.clone() for k, v in net.named_parameters()}
    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: inputs.setdefault(mod, []).append(args[0])) for m in norms]
    train_mod.recompute_bn_statistics(net.eval(), ds.x)
    for h in hooks:
        h.remove()
    assert len(ds.x) % train_mod.EVAL_CHUNK == 0 and not net.training
    for m in norms:
        assert len(inputs[m]) == len(ds.x) // train_mod.EVAL_CHUNK and m.momentum == 0.1
        x = torch.cat(inputs[m]).double()
        np.testing.assert_allclose(m.running_mean.double(), x.mean(0), rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, params[k]) for k, v in net.named_parameters())


def test_recomputed_bn_statistics_change_the_evaluation_not_the_training(data_cache):
    spec = SMALL.replace(optimizer="lbfgs", lr=0.1, batch_size=100, grad_clip=0.0, eval_schedule="all")
    running = train(spec, cache_dir=data_cache)
    recomputed = train(spec.replace(eval_bn_stats="recomputed"), cache_dir=data_cache)
    assert_same_arrays(final_parameters(running), final_parameters(recomputed))
    np.testing.assert_array_equal(running.arrays["fit_loss"], recomputed.arrays["fit_loss"])
    assert not np.array_equal(running.arrays["train.nc1"], recomputed.arrays["train.nc1"])
    assert recomputed.key != running.key


def test_bf16_mixed_trains_close_to_fp32_and_records_the_kernels_that_ran(tiny_record, data_cache):
    """Same initialisation and data order; bf16 convolutions only move the trajectory by their rounding
    (the float32 run's fit loss within 5%), and meta["precision"] says which arithmetic and CPU ran it."""
    spec = SMALL.replace(model="cnn1d-seed", width=8)
    full = train(spec, cache_dir=data_cache)
    low = train(spec.replace(precision="bf16-mixed"), cache_dir=data_cache)
    assert low.key != full.key and full.key == spec.key()
    np.testing.assert_allclose(low.arrays["fit_loss"], full.arrays["fit_loss"], rtol=0.05)
    assert not np.array_equal(low.arrays["fit_loss"], full.arrays["fit_loss"])
    weights = [k for k in low.arrays if k.startswith("weights.") and "num_batches" not in k]
    assert all(low.arrays[k].dtype == np.float32 for k in weights)  # float32 master weights
    for record, precision in ((full, "fp32"), (low, "bf16-mixed"), (tiny_record, "fp32")):
        p = record.meta["precision"]
        assert p["precision"] == precision and p["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        assert set(p) == {"precision", "cpu_capability", "avx512_bf16", "amx_tile"}


def test_the_allocator_setting_changes_no_value(tiny_record, tiny_spec, data_cache):
    """keep_freed_memory (called by every setup) takes effect on glibc and only moves where buffers live:
    training again after it repeats the shared run bit for bit (and tests/test_reference.py's trajectory,
    recorded before the setting existed, still matches)."""
    import platform

    from ncsim.threads import keep_freed_memory

    assert keep_freed_memory() == (platform.libc_ver()[0] == "glibc")
    assert_same_arrays(train(tiny_spec, cache_dir=data_cache).arrays, tiny_record.arrays)


def test_meta_status_taps_and_epochs_run(tiny_record, tiny_spec):
    m = tiny_record.meta
    assert m["status"] == "ok" and m["epochs_run"] == 2
    assert m["taps"] == expected_taps(tiny_spec)
    assert m["taps"][:2] == ["conv1.flat", "conv1.pool"] and m["taps"][-1] == "conv3.pool"


def test_tpt_epochs_are_derived_from_the_train_and_fit_error(tiny_record):
    a, t = tiny_record.arrays, Trajectory(tiny_record)
    assert t.first_zero_error_epoch == first_zero_error_epoch(a["epoch"], a["train_error"])
    assert t.tpt_epoch == tpt_epoch(
        a["epoch"], a["train_error"], a["fit_error"], trajectory.fit_error_tolerance(t.train_signals)
    )
    assert "tpt_epoch" not in tiny_record.meta  # derived state is not stored twice


def test_meta_timings_and_versions(tiny_record):
    t, v = tiny_record.meta["timings"], tiny_record.meta["versions"]
    assert t["total_s"] >= t["fit_s"] + t["eval_s"] - 1e-6 and min(t["fit_s"], t["eval_s"]) > 0
    assert t["threads"] == 1
    assert v["torch"] == torch.__version__ and v["numpy"] == np.__version__
    assert {"ncsim", "mnist1d", "python"} <= set(v)


def test_meta_is_json_and_storable(tiny_record, tmp_path):
    assert json.loads(json.dumps(tiny_record.meta)) == tiny_record.meta
    st = RunStore(tmp_path)
    st.save(tiny_record)
    assert st.load(tiny_record.key) == tiny_record


def test_final_row_is_computed_from_the_final_weights(tiny_record, tiny_spec, data_cache):
    # Recompute the last evaluation from the stored weights. Error: at most one sample may flip on a
    # float32 near-tie; NC1 to a relative 1e-6 (the metric runs in float64 on float32 features).
    feats = Trajectory(tiny_record).features("train", cache_dir=data_cache)
    logits = feats["h"] @ feats["W"].T + feats["b"]
    err = float((logits.argmax(1) != feats["y"]).mean())
    assert abs(err - tiny_record.arrays["train_error"][-1]) <= 1 / len(feats["y"]) + 1e-12
    m = collapse_metrics(feats["h"], feats["y"], feats["W"], feats["b"], 10)
    assert m["nc1"] == pytest.approx(tiny_record.arrays["train.nc1"][-1], rel=1e-6)


# --- determinism ------------------------------------------------------------------------------------


def test_same_spec_trains_bit_identically(tiny_record, tiny_spec, data_cache):
    again = train(tiny_spec, cache_dir=data_cache)
    assert_same_arrays(again.arrays, tiny_record.arrays)
    assert Trajectory(again).tpt_epoch == Trajectory(tiny_record).tpt_epoch
    assert Trajectory(again).first_zero_error_epoch == Trajectory(tiny_record).first_zero_error_epoch


def test_another_seed_trains_differently(tiny_record, tiny_spec, data_cache):
    other = train(tiny_spec.replace(seed=1), cache_dir=data_cache)
    a, b = other.arrays, tiny_record.arrays
    assert not np.array_equal(a["train_loss"], b["train_loss"])
    assert not np.array_equal(a["weights.classifier.weight"], b["weights.classifier.weight"])
    assert not np.array_equal(a["weights.blocks.conv1.0.weight"], b["weights.blocks.conv1.0.weight"])


def test_training_does_not_depend_on_the_global_torch_rng(data_cache):
    torch.manual_seed(123)
    a = train(SMALL, cache_dir=data_cache)
    torch.manual_seed(456)
    torch.rand(10)
    b = train(SMALL, cache_dir=data_cache)
    assert_same_arrays(a.arrays, b.arrays)


# --- evaluation schedules ---------------------------------------------------------------------------


def test_schedule_none_evaluates_epoch_zero_and_the_last_only(data_cache):
    rec = train(SMALL.replace(epochs=3), cache_dir=data_cache)
    np.testing.assert_array_equal(rec.arrays["epoch"], [0, 3])
    assert rec.arrays["fit_loss"].shape == rec.arrays["fit_error"].shape == (3,)
    assert not any(k.startswith("layer.") for k in rec.arrays) and rec.meta["taps"] == []


def test_layer_epochs_are_evaluated_even_off_the_eval_schedule(data_cache):
    rec = train(SMALL.replace(epochs=3, eval_schedule="every:3", layer_schedule="every:2"), cache_dir=data_cache)
    np.testing.assert_array_equal(rec.arrays["epoch"], [0, 2, 3])
    v = rec.arrays["layer.conv2.pool.nc1"]
    assert np.isfinite(v[[0, 1, 2]]).all()  # 0, 2 on the layer schedule; 3 is the last


@pytest.mark.parametrize(
    "epochs, err, first",
    [
        ([0, 5, 10], [0.9, 0.0, 0.0], 5),
        ([0, 5, 10], [0.0, 0.1, 0.0], 0),  # the first zero, although the error comes back
        ([0, 5, 10], [0.9, 1e-12, 0.1], None),  # exactly 0, not nearly
        ([0, 5, 10], [0.9, 0.5, np.nan], None),  # a stopped run's last row
    ],
)
def test_first_zero_error_epoch(epochs, err, first):
    assert first_zero_error_epoch(np.array(epochs), np.array(err)) == first


def passes(n: int, **bounces: float) -> np.ndarray:
    """fit_error of n training passes, 0 except bounces p<k>=error (pass k, i.e. fit_error[k-1])."""
    fit = np.zeros(n)
    for name, error in bounces.items():
        fit[int(name[1:]) - 1] = error
    return fit


@pytest.mark.parametrize(
    "epochs, err, fit, tpt",
    [
        ([0, 5, 10], [0.9, 0.0, 0.0], passes(10), 5),
        ([0, 5, 10], [0.9, 0.0, 0.0], passes(10, p7=0.01), 10),  # a bounce only the passes see
        ([0, 5, 10], [0.9, 0.0, 0.0], passes(10, p6=0.01), 10),  # ... in the first pass after epoch 5
        ([0, 5, 10], [0.9, 0.0, 0.0], passes(10, p5=0.3), 5),  # pass 5 leads up to epoch 5: before it
        ([0, 5, 10], [0.9, 0.0, 0.0], passes(10, p8=1 / 4000), 5),  # one signal of 4000: within the tolerance
        ([0, 5, 10], [0.9, 0.0, 0.0], passes(10, p8=2 / 4000), 10),  # two are a bounce
        ([0, 5, 10, 15], [0.9, 0.0, 0.1, 0.0], passes(15), 15),  # a later non-zero evaluation
        ([0, 5, 10], [0.0, 0.1, 0.0], passes(10), 10),
        ([0, 5, 10], [0.9, 0.5, 0.1], passes(10), None),  # no zero at all
        ([0, 5, 10], [0.9, 0.5, 0.0], np.full(10, 0.2), 10),  # zero at the last evaluation, no pass after it
        ([0, 5, 10], [0.9, 0.0, np.nan], passes(10), None),  # a stopped run's last row
        ([0], [0.0], passes(0), 0),  # initialisation only
    ],
)
def test_tpt_epoch_is_the_stable_tpt(epochs, err, fit, tpt):
    assert tpt_epoch(np.array(epochs), np.array(err), fit, trajectory.fit_error_tolerance(4000)) == tpt


def test_the_stable_tpt_tolerance_is_stated_and_adjustable():
    fit = passes(10, p8=1 / 4000)
    assert trajectory.fit_error_tolerance(4000) == 1 / 4000 and trajectory.fit_error_tolerance(2193) == 1 / 2193
    assert tpt_epoch(np.array([0, 5, 10]), np.array([0.9, 0.0, 0.0]), fit, tolerance=0.0) == 10
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="number of train signals"):
            trajectory.fit_error_tolerance(bad)


def _with_passes(record: Record, fit: list[float], data_cache, **meta) -> Trajectory:
    """The record with eval-mode train error 0.9, 0, 0 at epochs 0-2 and training passes 1-2 `fit`."""
    arrays = {**record.arrays, "train_error": np.array([0.9, 0.0, 0.0]), "fit_error": np.array(fit)}
    return Trajectory(Record(record.key, {**record.meta, **meta}, arrays), data_cache=data_cache)


def test_the_stable_tpt_allows_one_signal_of_the_runs_own_train_set(tiny_record, tiny_spec, data_cache):
    """One misclassified signal of N_train in a pass after the TPT is within the tolerance, two are a
    bounce, whatever N_train is (TINY trains on about 400 signals, not the full set's 4000)."""
    n = len(data.load(tiny_spec, data_cache).y)
    assert tiny_record.meta["train_signals"] == n < 4000
    assert _with_passes(tiny_record, [0.0, 1 / n], data_cache).tpt_epoch == 1
    assert _with_passes(tiny_record, [0.0, 2 / n], data_cache).tpt_epoch == 2


def test_a_record_without_its_train_set_size_gets_it_from_the_data(tiny_record, tiny_spec, data_cache):
    meta = {k: v for k, v in tiny_record.meta.items() if k != "train_signals"}
    bare = Record(tiny_record.key, meta, tiny_record.arrays)
    n = len(data.load(tiny_spec, data_cache).y)
    assert Trajectory(bare, data_cache=data_cache).train_signals == data.train_set_size(tiny_spec, data_cache) == n
    assert _with_passes(bare, [0.0, 1 / n], data_cache).tpt_epoch == 1


def test_meta_has_the_first_zero_and_the_stable_tpt(data_cache, monkeypatch):
    # Reaching zero train error takes a long run; instead the evaluation reports error 0 at epochs 2
    # and 3 (the first zero: 2) and 0.5 at epoch 4, after which no stable TPT exists.
    real = train_mod.evaluate
    forced = iter([0.5, 0.5, 0.0, 0.0, 0.5])

    def evaluate(spec, model, ds, layers):
        return {**real(spec, model, ds, layers), "train_error": next(forced)}

    monkeypatch.setattr(train_mod, "evaluate", evaluate)
    rec = train(SMALL.replace(epochs=4, eval_schedule="all"), cache_dir=data_cache)
    np.testing.assert_array_equal(rec.arrays["train_error"], [0.5, 0.5, 0.0, 0.0, 0.5])
    assert Trajectory(rec).first_zero_error_epoch == 2 and Trajectory(rec).tpt_epoch is None


def test_meta_tpt_epoch_moves_past_a_bounce_between_evaluations(data_cache, monkeypatch):
    # Every evaluation from epoch 1 on reports train error 0, but training pass 3 (between the
    # evaluations of epochs 2 and 3) misclassifies: the stable TPT is 3, the first zero 1.
    real_evaluate, real_fit = train_mod.evaluate, train_mod.fit_epoch
    forced_eval, forced_fit = iter([0.5, 0.0, 0.0, 0.0, 0.0]), iter([0.4, 0.0, 0.1, 0.0])

    def evaluate(spec, model, ds, layers):
        return {**real_evaluate(spec, model, ds, layers), "train_error": next(forced_eval)}

    def fit_epoch(*args, **kwargs):
        return train_mod.EpochFit(real_fit(*args, **kwargs).loss, next(forced_fit))

    monkeypatch.setattr(train_mod, "evaluate", evaluate)
    monkeypatch.setattr(train_mod, "fit_epoch", fit_epoch)
    rec = train(SMALL.replace(epochs=4, eval_schedule="all"), cache_dir=data_cache)
    np.testing.assert_array_equal(rec.arrays["fit_error"], [0.4, 0.0, 0.1, 0.0])
    assert Trajectory(rec).first_zero_error_epoch == 1 and Trajectory(rec).tpt_epoch == 3


# --- optimisers, schedules, losses, model variants -------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "sgd"},
        {"optimizer": "adam", "lr": 1e-3},
        {"optimizer": "adamw", "lr": 1e-3},
        {"optimizer": "lbfgs", "lr": 1.0, "batch_size": 200},
        {"optimizer": "sgd", "nesterov": True},
        {"loss": "ce"},
        {"loss": "mse"},
        {"grad_clip": 0.5},
        {"model": "cnn1d-seed"},
        {"batch_norm": False},
        {"imbalance": 4.0},
        {"loss": "focal", "focal_gamma": 2.0},
        {"label_smoothing": 0.1},
        {"train_classes": 4},
        {"label_noise": 0.5},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_variant_trains_and_moves_the_weights(data_cache, changes):
    spec = SMALL.replace(**changes)
    rec = train(spec, cache_dir=data_cache)
    assert rec.meta["status"] == "ok" and rec.meta["epochs_run"] == 2
    assert np.isfinite(rec.arrays["fit_loss"]).all() and np.isfinite(rec.arrays["train.nc1"]).all()
    assert parameter_distance(final_parameters(rec), initial_parameters(spec)) > 1e-4


def test_seed_model_taps_are_its_blocks_in_order(data_cache):
    spec = SMALL.replace(model="cnn1d-seed", epochs=1, layer_schedule="all")
    rec = train(spec, cache_dir=data_cache)
    assert rec.meta["taps"] == [
        "conv1.flat",
        "conv1.pool",
        "conv2.flat",
        "conv2.pool",
        "conv3.flat",
        "conv3.pool",
        "conv4.flat",
        "conv4.pool",
        "pool",
    ]
    assert rec.arrays["weights.classifier.weight"].shape == (10, 4 * 12)  # 4w-D penultimate layer


def test_nesterov_changes_the_trajectory(data_cache):
    plain = train(SMALL, cache_dir=data_cache)
    nesterov = train(SMALL.replace(nesterov=True), cache_dir=data_cache)
    assert not np.array_equal(plain.arrays["weights.classifier.weight"], nesterov.arrays["weights.classifier.weight"])


def test_grad_clip_bounds_every_step(data_cache):
    # Plain SGD (no momentum, no weight decay): each step moves the parameters by lr * ||clipped grad||
    # <= lr * grad_clip, so 2 steps (200 signals, batch 128) move them at most 2 * 0.1 * 1e-3 (plus a
    # relative 1e-6 for float32 rounding). Unclipped, one step moves them by ~lr * ||grad|| >> that.
    spec = SMALL.replace(epochs=1, momentum=0.0, weight_decay=0.0, grad_clip=1e-3, schedule="constant")
    rec = train(spec, cache_dir=data_cache)
    moved = parameter_distance(final_parameters(rec), initial_parameters(spec))
    assert 0 < moved <= 2 * 0.1 * 1e-3 * (1 + 1e-6)


@pytest.mark.parametrize(
    "schedule, lrs",
    [
        ("constant", [0.1, 0.1, 0.1]),
        ("multistep", [0.1, 0.01, 0.001]),  # x0.1 at 1/3 and 2/3 of training
        ("cosine", [0.1, 0.1 * (1 + math.cos(math.pi / 3)) / 2, 0.1 * (1 + math.cos(2 * math.pi / 3)) / 2]),
    ],
)
def test_lr_schedule(data_cache, schedule, lrs):
    rec = train(SMALL.replace(epochs=3, schedule=schedule), cache_dir=data_cache)
    assert rec.meta["status"] == "ok"
    np.testing.assert_allclose(rec.arrays["fit_lr"], lrs, rtol=1e-9)  # float rounding of the schedulers


def test_ce_loss_is_mean_cross_entropy():
    z, y = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]), torch.tensor([0, 1])
    assert float(loss_fn(RunSpec(loss="ce"), z, y)) == pytest.approx(float(F.cross_entropy(z, y)), rel=1e-7)


def test_mse_loss_is_squared_error_to_one_hot_summed_over_classes():
    z, y = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]), torch.tensor([0, 1])
    # (1 + 0 + 1 + 0.25 + 0.25 + 9) / 2 samples
    assert float(loss_fn(RunSpec(loss="mse"), z, y)) == pytest.approx(11.5 / 2, rel=1e-7)


LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [-4.0, 1.0, 0.25], [0.0, 0.0, 0.0]], dtype=torch.float64)
TARGETS = torch.tensor([0, 1, 2, 1])


def softmax_rows(z: torch.Tensor) -> list[list[float]]:
    rows = []
    for row in z.tolist():
        e = [math.exp(v) for v in row]
        rows.append([v / sum(e) for v in e])
    return rows


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
def test_focal_loss_is_the_mean_of_minus_one_minus_p_to_the_gamma_times_log_p(gamma):
    probs = softmax_rows(LOGITS)
    expected = sum(-((1 - p[y]) ** gamma) * math.log(p[y]) for p, y in zip(probs, TARGETS.tolist())) / len(probs)
    got = loss_fn(RunSpec(loss="focal", focal_gamma=gamma), LOGITS, TARGETS)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.5, 0.9])
def test_label_smoothing_is_cross_entropy_against_the_smoothed_one_hot_target(alpha):
    c = LOGITS.shape[1]
    probs = softmax_rows(LOGITS)
    expected = 0.0
    for p, y in zip(probs, TARGETS.tolist()):
        target = [(1 - alpha) * (k == y) + alpha / c for k in range(c)]
        expected -= sum(t * math.log(q) for t, q in zip(target, p))
    got = float(loss_fn(RunSpec(loss="ce", label_smoothing=alpha), LOGITS, TARGETS))
    assert got == pytest.approx(expected / len(probs), rel=1e-12)
    assert got != pytest.approx(float(loss_fn(RunSpec(loss="ce"), LOGITS, TARGETS)), rel=1e-3)


@settings(max_examples=40, deadline=None)
@given(seed=strategies.integers(0, 2**32 - 1), gamma=strategies.floats(0.01, 10.0), scale=strategies.floats(0.1, 20.0))
def test_focal_loss_is_below_cross_entropy(seed, gamma, scale):
    # -(1 - p)^g log p < -log p for every p in (0, 1) and g > 0: the batch mean is below CE's.
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(8, 10, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, 10, (8,), generator=g)
    focal = float(loss_fn(RunSpec(loss="focal", focal_gamma=gamma), z, y))
    ce = float(loss_fn(RunSpec(loss="ce"), z, y))
    assert 0 <= focal < ce


def test_focal_loss_decreases_with_gamma():
    losses = [float(loss_fn(RunSpec(loss="focal", focal_gamma=g), LOGITS, TARGETS)) for g in (0.5, 1.0, 2.0, 4.0)]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == 4


def test_tiny_run_with_three_classes_noisy_labels_and_focal_loss(data_cache):
    spec = SMALL.replace(train_classes=3, label_noise=0.3, loss="focal", focal_gamma=2.0)
    rec = train(spec, cache_dir=data_cache)
    assert rec.meta["status"] == "ok" and rec.key == spec.key() != SMALL.key()
    assert rec.arrays["weights.classifier.weight"].shape == (3, 4 * 12)
    assert rec.arrays["weights.classifier.bias"].shape == (3,)
    t = Trajectory(rec)
    assert t.model().classifier.out_features == 3
    # The recorded train loss at epoch 0 is the focal loss of the initial network on the noisy labels.
    f = t.truncated(0).features("train", cache_dir=data_cache)
    assert set(np.unique(f["y"]).tolist()) == {0, 1, 2}
    logits = torch.as_tensor(f["h"] @ f["W"].T + f["b"])
    assert float(loss_fn(spec, logits, torch.as_tensor(f["y"]))) == pytest.approx(rec.arrays["train_loss"][0], rel=1e-5)
    clean = data.load(spec.replace(label_noise=0.0), data_cache).y.numpy()
    assert 0 < np.mean(f["y"] != clean) < 0.4


# --- divergence -------------------------------------------------------------------------------------


def test_huge_lr_diverges_and_returns_a_record(data_cache, tmp_path):
    # The largest lr a spec allows, on the MSE loss: the training loss is inf in epoch 2.
    spec = SMALL.replace(epochs=4, lr=10.0, loss="mse", schedule="constant")
    rec = train(spec, cache_dir=data_cache)
    assert isinstance(rec, Record) and rec.meta["status"] == "diverged"
    n = rec.meta["epochs_run"]
    assert 1 <= n < 4  # stopped early
    assert rec.arrays["epoch"][-1] == n and rec.arrays["fit_loss"].shape == rec.arrays["fit_error"].shape == (n,)
    assert not np.isfinite(rec.arrays["fit_loss"][-1]) or not np.isfinite(rec.arrays["train_loss"][-1])
    assert Trajectory(rec).tpt_epoch is None
    RunStore(tmp_path).save(rec)  # a diverged record is JSON-clean and storable
    assert RunStore(tmp_path).load(rec.key) == rec


def test_nonfinite_fit_loss_stops_the_run_at_that_epoch(data_cache, monkeypatch):
    real = train_mod.fit_epoch
    calls = []

    def fit_epoch(*args, **kwargs):
        calls.append(1)
        fit = real(*args, **kwargs)
        return fit._replace(loss=float("nan")) if len(calls) == 2 else fit

    monkeypatch.setattr(train_mod, "fit_epoch", fit_epoch)
    rec = train(SMALL.replace(epochs=5, eval_schedule="all"), cache_dir=data_cache)
    assert rec.meta["status"] == "diverged" and rec.meta["epochs_run"] == 2 and len(calls) == 2
    np.testing.assert_array_equal(rec.arrays["epoch"], [0, 1, 2])
    assert np.isfinite(rec.arrays["train_loss"][:2]).all() and np.isnan(rec.arrays["train_loss"][2])


def test_nonfinite_initial_loss_is_diverged_at_epoch_zero(data_cache, monkeypatch):
    monkeypatch.setattr(train_mod, "loss_fn", lambda spec, logits, y: torch.tensor(float("inf")))
    rec = train(SMALL, cache_dir=data_cache)
    assert rec.meta["status"] == "diverged" and rec.meta["epochs_run"] == 0
    assert rec.meta["status_reason"] == "epoch 0: non-finite train_loss and test_loss"
    np.testing.assert_array_equal(rec.arrays["epoch"], [0])
    assert np.isfinite(rec.arrays["train.nc1"]).all()  # the features were fine: measured


def infinite_signals(monkeypatch):
    """Make data.load return train and test signals of inf and NaN, so that every feature is
    non-finite from initialisation on."""
    real = data.load

    def load(spec, cache_dir=None):
        ds = real(spec, cache_dir)
        return dataclasses.replace(ds, x=ds.x * np.inf, x_test=ds.x_test * np.inf)

    monkeypatch.setattr(data, "load", load)


@pytest.mark.parametrize("failure", ["diverged", "degenerate"])
def test_a_run_stopped_at_initialisation_has_every_column(data_cache, tmp_path, monkeypatch, failure):
    spec = SMALL.replace(epochs=1, layer_schedule="all")
    finished = train(spec, cache_dir=data_cache)
    if failure == "diverged":
        infinite_signals(monkeypatch)
    else:

        def dead(*args, **kwargs):
            raise train_mod.DegenerateFeaturesError("class means are identical (Sigma_B = 0)")

        monkeypatch.setattr(train_mod, "collapse_metrics_streaming", dead)
    rec = train(spec, cache_dir=data_cache)
    assert rec.meta["status"] == failure and rec.meta["epochs_run"] == 0
    assert rec.meta["status_reason"].startswith("epoch 0: ") and "train set" in rec.meta["status_reason"]
    assert sorted(rec.arrays) == sorted(finished.arrays) and rec.meta["taps"] == finished.meta["taps"]
    run = Trajectory(rec)
    np.testing.assert_array_equal(run.epochs, [0])
    assert math.isnan(run.final("train.nc1")) and math.isnan(run.final("test.nc4"))
    assert len(run.layer("conv2.pool", "nc1")[0]) == 0
    assert run.tpt_epoch is None and math.isnan(run.at_tpt("train.nc1"))
    RunStore(tmp_path).save(rec)
    assert RunStore(tmp_path).load(rec.key) == rec


def test_dead_network_returns_a_record_that_says_so(data_cache):
    # lr=10 and weight decay 0.1 without batch norm or momentum: the loss stays finite, but at epoch
    # 2 all penultimate features are 0, and the metrics refuse identical class means. The run must
    # not raise, and its record must not claim a healthy run.
    spec = SMALL.replace(lr=10.0, weight_decay=0.1, momentum=0.0, batch_norm=False, schedule="constant")
    rec = train(spec, cache_dir=data_cache)
    assert isinstance(rec, Record) and rec.meta["status"] != "ok"
    assert rec.arrays["epoch"][-1] == rec.meta["epochs_run"] == 2


def test_narrow_width_with_layer_taps_trains(data_cache):
    # width 8: conv1's channel-pooled tap has 8 < C-1 features, too few for the layer metrics. The
    # run must still train and record the taps it can.
    rec = train(SMALL.replace(epochs=1, width=8, layer_schedule="every:1"), cache_dir=data_cache)
    assert rec.meta["status"] == "ok"
    layer_cols = [k for k in rec.arrays if k.startswith("layer.")]
    assert layer_cols and all(np.isfinite(rec.arrays[k]).all() for k in layer_cols)
    assert "conv3.pool" in rec.meta["taps"]


# --- suite.obtain_run and the store --------------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although the record is stored")

    monkeypatch.setattr(ncsim.train, "train", fail)


def test_obtain_trains_once_then_serves_from_the_store(cache_dir, monkeypatch):
    store = RunStore(cache_dir)
    calls = []
    real = ncsim.train.train

    def counting(spec, **kwargs):
        calls.append(spec)
        return real(spec, **kwargs)

    monkeypatch.setattr(ncsim.train, "train", counting)
    first = ncsim.suite.obtain_run(SMALL, store)
    assert len(calls) == 1 and SMALL.key() in store
    monkeypatch.setattr(ncsim.train, "train", lambda *a, **k: pytest.fail("trained a stored run"))
    second = ncsim.suite.obtain_run(SMALL, store)
    assert_same_arrays(second.record.arrays, first.record.arrays)
    assert second.meta == first.meta


def test_obtain_uses_the_store_root_as_data_cache(cache_dir, monkeypatch):
    # The store was seeded with the data: obtaining must not generate it again.
    monkeypatch.setattr(data, "generate", lambda *a: pytest.fail("regenerated the data"))
    traj = ncsim.suite.obtain_run(SMALL, RunStore(cache_dir))
    assert traj.status == "ok"


def test_obtain_under_another_name_serves_the_same_record(cache_dir, tiny_record, tiny_spec, no_training):
    store = RunStore(cache_dir)
    store.save(tiny_record)
    traj = ncsim.suite.obtain_run(tiny_spec.replace(name="renamed"), store)
    assert traj.key == tiny_record.key and traj.label == "renamed-s0"
    assert_same_arrays(traj.record.arrays, tiny_record.arrays)


def test_obtain_refresh_retrains(cache_dir, tiny_record, tiny_spec, monkeypatch):
    store = RunStore(cache_dir)
    store.save(Record(tiny_record.key, {**tiny_record.meta, "status": "stale"}, tiny_record.arrays))
    monkeypatch.setattr(ncsim.train, "train", lambda spec, **k: tiny_record)
    assert ncsim.suite.obtain_run(tiny_spec, store).status == "stale"
    assert ncsim.suite.obtain_run(tiny_spec, store, refresh=True).status == "ok"
    assert store.load(tiny_record.key).meta["status"] == "ok"


# --- Trajectory -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traj(tiny_record):
    return Trajectory(tiny_record)


def with_train_error(record: Record, err: list[float], fit_error: list[float] | None = None) -> Trajectory:
    """A copy of `record` whose train error is `err` and whose training passes' error is `fit_error`
    (default: every pass clean), with both TPT epochs as train() would set them."""
    fit = np.zeros(len(record.arrays["fit_error"])) if fit_error is None else fit_error
    arrays = {
        **record.arrays,
        "train_error": np.asarray(err, dtype=np.float64),
        "fit_error": np.asarray(fit, dtype=np.float64),
    }
    return Trajectory(Record(record.key, record.meta, arrays))


def test_trajectory_identity(traj, tiny_spec):
    assert traj.key == tiny_spec.key() and traj.label == "tiny-s0" and traj.status == "ok"
    assert traj.spec == tiny_spec
    np.testing.assert_array_equal(traj.epochs, [0, 1, 2])


def test_final_and_at(traj, tiny_record):
    a = tiny_record.arrays
    assert traj.final("train.nc1") == a["train.nc1"][-1]
    assert traj.at("test_error", 1) == a["test_error"][1]
    assert traj.at("train.nc1", 2) == traj.final("train.nc1")


def test_at_an_unevaluated_epoch_is_a_key_error(traj):
    with pytest.raises(KeyError, match="epoch 7 was not evaluated"):
        traj.at("train.nc1", 7)


def test_unknown_column_is_a_key_error_listing_columns(traj):
    with pytest.raises(KeyError, match=r"no column 'train\.nc9'.*train\.nc1"):
        traj["train.nc9"]


def test_weights_are_not_columns(traj):
    with pytest.raises(KeyError):
        traj["weights.classifier.weight"]
    cols = traj.columns()
    assert "train.nc1" in cols and "epoch" in cols
    assert not any(c.startswith("weights.") for c in cols) and not {"fit_loss", "fit_error", "fit_lr"} & set(cols)
    assert set(traj.weights()) == set(models.build(traj.spec, 10).state_dict())


def test_layer_gives_only_the_layer_epochs(traj, tiny_record):
    epochs, values = traj.layer("conv2.pool", "nc1")
    np.testing.assert_array_equal(epochs, [0, 2])
    np.testing.assert_array_equal(values, tiny_record.arrays["layer.conv2.pool.nc1"][[0, 2]])
    assert traj.taps() == tiny_record.meta["taps"]


def test_model_rebuilds_the_final_network(traj, tiny_record):
    net = traj.model()
    assert not net.training
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), tiny_record.arrays[f"weights.{k}"])


@pytest.mark.parametrize("model", ["cnn1d", "cnn1d-seed"])
def test_the_network_has_the_datas_number_of_classes(model):
    net = models.build(SMALL.replace(model=model), num_classes=4)
    assert net(torch.zeros(3, 1, 40)).shape == (3, 4)


def test_model_rebuilds_with_the_records_number_of_classes(tiny_record, tiny_spec):
    torch.manual_seed(0)
    four = models.build(tiny_spec, 4).state_dict()
    arrays = {**tiny_record.arrays, **{f"weights.{k}": v.numpy() for k, v in four.items()}}
    net = Trajectory(Record(tiny_record.key, tiny_record.meta, arrays)).model()
    assert net.classifier.out_features == 4
    np.testing.assert_array_equal(net.classifier.weight.detach().numpy(), four["classifier.weight"].numpy())


def test_features_rejects_an_unknown_split(traj):
    with pytest.raises(ValueError, match="split"):
        traj.features("valid")


def test_without_tpt_at_tpt_is_nan_and_post_tpt_empty(tiny_record):
    t = with_train_error(tiny_record, [0.9, 0.5, 0.1])
    assert t.tpt_epoch is None and t.first_zero_error_epoch is None and math.isnan(t.at_tpt("train.nc1"))
    epochs, values = t.post_tpt("train.nc1")
    assert len(epochs) == len(values) == 0


def test_at_tpt_and_post_tpt(tiny_record):
    t = with_train_error(tiny_record, [0.9, 0.0, 0.0])
    assert t.tpt_epoch == t.first_zero_error_epoch == 1
    assert t.at_tpt("train.nc1") == tiny_record.arrays["train.nc1"][1]
    epochs, values = t.post_tpt("train.nc1")
    np.testing.assert_array_equal(epochs, [1, 2])
    np.testing.assert_array_equal(values, tiny_record.arrays["train.nc1"][1:])


def test_truncated_at_zero_keeps_only_initialisation(traj, tiny_record):
    t0 = traj.truncated(0)
    np.testing.assert_array_equal(t0.epochs, [0])
    for c in traj.columns():
        np.testing.assert_array_equal(t0[c], tiny_record.arrays[c][:1])
    assert t0.tpt_epoch == t0.first_zero_error_epoch == (0 if tiny_record.arrays["train_error"][0] == 0 else None)
    for k in ("fit_loss", "fit_error", "fit_lr"):
        assert t0.record.arrays[k].shape == (0,), k
    assert t0.meta["truncated_at"] == 0 and t0.key == traj.key
    assert t0.final("train.nc1") == traj.at("train.nc1", 0)


def test_truncation_recomputes_tpt(tiny_record):
    t = with_train_error(tiny_record, [0.9, 0.2, 0.0])
    assert t.tpt_epoch == 2
    assert t.truncated(1).tpt_epoch is None and t.truncated(2).tpt_epoch == 2
    assert with_train_error(tiny_record, [0.0, 0.2, 0.1]).truncated(0).tpt_epoch == 0


def test_truncation_cuts_the_passes_and_recomputes_both_tpts(tiny_record):
    # Zero train error at epochs 1 and 2, but pass 2 misclassified: the stable TPT is 2. Cut after
    # epoch 1, pass 2 is gone and the stable TPT is 1.
    t = with_train_error(tiny_record, [0.9, 0.0, 0.0], fit_error=[0.3, 0.05])
    assert t.first_zero_error_epoch == 1 and t.tpt_epoch == 2
    t1 = t.truncated(1)
    np.testing.assert_array_equal(t1.fit_error, [0.3])
    for k in ("fit_loss", "fit_lr"):
        np.testing.assert_array_equal(t1.record.arrays[k], tiny_record.arrays[k][:1])
    assert t1.first_zero_error_epoch == 1 and t1.tpt_epoch == 1
    t0 = t.truncated(0)
    assert t0.fit_error.shape == (0,) and t0.first_zero_error_epoch is None and t0.tpt_epoch is None
    np.testing.assert_array_equal(t.fit_error, [0.3, 0.05])  # the original keeps its passes


def test_truncation_leaves_the_original_untouched(traj):
    before = traj["train.nc1"].copy()
    traj.truncated(0)
    np.testing.assert_array_equal(traj["train.nc1"], before)
    assert traj.meta.get("truncated_at") is None


def test_truncated_at_zero_carries_the_initial_network(traj, tiny_spec):
    w0 = traj.truncated(0).weights()
    initial = models.initial_network(tiny_spec, 10).state_dict()
    assert set(w0) == set(initial) == set(traj.weights())
    for k, v in initial.items():
        np.testing.assert_array_equal(w0[k], v.numpy(), err_msg=k)
    assert not np.array_equal(w0["classifier.weight"], traj.weights()["classifier.weight"])
    assert not np.array_equal(w0["blocks.conv1.0.weight"], traj.weights()["blocks.conv1.0.weight"])
    # batch-norm buffers at initialisation: running mean 0, variance 1
    assert not w0["blocks.conv1.1.running_mean"].any() and (w0["blocks.conv1.1.running_var"] == 1).all()


def test_truncated_between_refuses_a_network_it_does_not_have(traj):
    """A record keeps the initial and final weights only: cut after an epoch between, the run has no
    network of that epoch (a statistic of the network on it would silently measure the final one)."""
    with pytest.raises(KeyError, match="truncated after epoch 1 has no network of that epoch"):
        traj.truncated(1).weights()
    with pytest.raises(KeyError, match="no network of that epoch"):
        traj.truncated(1).model()
    last = int(traj.epochs[-1])
    for k, v in traj.truncated(last).weights().items():  # cut at the end: the final network is that epoch's
        np.testing.assert_array_equal(v, traj.weights()[k], err_msg=k)


def test_the_initial_networks_features_give_the_recorded_epoch_zero_metrics(traj, tiny_record, data_cache):
    t0 = traj.truncated(0)
    for split in ("train", "test"):
        f = t0.features(split, cache_dir=data_cache)
        m = collapse_metrics(f["h"], f["y"], f["W"], f["b"], 10)
        assert m["nc1"] == pytest.approx(tiny_record.arrays[f"{split}.nc1"][0], rel=1e-9), split
        err = float(((f["h"] @ f["W"].T + f["b"]).argmax(1) != f["y"]).mean())
        assert abs(err - tiny_record.arrays[f"{split}_error"][0]) <= 1 / len(f["y"]) + 1e-12, split


def test_truncated_at_zero_leaves_the_global_torch_rng_alone(traj):
    torch.manual_seed(123)
    torch.rand(3)
    state = torch.get_rng_state()
    w0 = traj.truncated(0).weights()
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(9)  # and the initial weights do not depend on it
    np.testing.assert_array_equal(traj.truncated(0).weights()["classifier.weight"], w0["classifier.weight"])


def test_initial_network_seeds_the_global_generator():
    # The contrast to the test above: building the network does draw from torch's global RNG.
    torch.manual_seed(5)
    state = torch.get_rng_state()
    models.initial_network(SMALL.replace(seed=3), 10)
    assert not torch.equal(torch.get_rng_state(), state)


def test_embed_of_the_train_signals_is_the_train_features(traj, data_cache, tiny_spec):
    ds = data.load(tiny_spec, data_cache)
    f = traj.features("train", cache_dir=data_cache)
    h = traj.embed(ds.x)
    assert h.dtype == np.float64 and h.shape == (len(ds.x), 4 * 12)
    np.testing.assert_array_equal(h, f["h"])
    np.testing.assert_array_equal(traj.embed(ds.x.numpy(), traj.model()), h)  # numpy signals, a given net


def test_embed_takes_signals_of_any_class_and_uses_the_given_network(traj, data_cache, clean_arrays):
    x = clean_arrays["x_test"][:7, None, :]
    t0 = traj.truncated(0)
    assert t0.embed(x).shape == (7, 48)
    assert not np.array_equal(t0.embed(x), traj.embed(x))
    np.testing.assert_array_equal(traj.embed(x, t0.model()), t0.embed(x))


# --- threads ----------------------------------------------------------------------------------------


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


def test_limit_threads_sets_torch_and_blas_and_restores_both():
    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    with limit_threads(2):
        assert torch.get_num_threads() == 2 and set(blas_threads()) <= {2}
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before


def test_obtain_trains_on_the_threads_it_is_given_whatever_the_process_setting(cache_dir, tiny_spec):
    # Why: when a session fixture sets 1 thread per worker and a test's limit_threads block restores the 2
    # it found, every later run of that worker would train oversubscribed.
    before = torch.get_num_threads()
    with limit_threads(2):
        traj = ncsim.suite.obtain_run(tiny_spec, RunStore(cache_dir), threads=1)
        assert torch.get_num_threads() == 2
    assert traj.trained and traj.meta["timings"]["threads"] == 1
    assert torch.get_num_threads() == before


def test_training_leaves_a_fixed_etf_classifier_where_it_was(data_cache):
    for optimizer in ("sgd", "adamw", "lbfgs"):
        spec = SMALL.replace(classifier="etf", optimizer=optimizer, grad_clip=0.0, weight_decay=0.01)
        rec = train(spec, cache_dir=data_cache)
        np.testing.assert_array_equal(rec.arrays["weights.classifier.weight"], models.simplex_etf(10, 48).numpy())
        start = initial_parameters(spec)
        assert not np.array_equal(rec.arrays["weights.classifier.bias"], start["classifier.bias"]), optimizer


# --- freeze_at_tpt: a terminal phase at learning rate 0 ----------------------------------------------


def _rows(*errors: float) -> list[dict]:
    return [{"epoch": 4 * i, "train_error": e} for i, e in enumerate(errors)]


@pytest.mark.parametrize(
    "errors, fit, expected",
    [
        ((0.5, 0.0, 0.0), [0.0] * 8, True),  # two evaluations in a row at zero, clean passes between
        ((0.0, 0.0, 0.5), [0.0] * 8, False),  # the last evaluation misclassifies
        ((0.5, 0.5, 0.0), [0.0] * 8, False),  # only one evaluation at zero
        ((0.5, 0.0, 0.0), [0.0] * 4 + [0.0, 0.0, 0.0, 2 / 100], False),  # a pass with two misses between them
        (
            (0.5, 0.0, 0.0),
            [0.3] * 4 + [0.0, 0.0, 1 / 100, 0.0],
            True,
        ),  # one miss is allowed; earlier passes do not count
        ((0.0,), [], False),  # a single evaluation
    ],
)
def test_in_terminal_phase_is_the_stable_tpt_criterion_over_the_last_two_evaluations(errors, fit, expected):
    h = train_mod.History(rows=_rows(*errors), fit_error=fit)
    assert h.in_terminal_phase(100) is expected


def test_freeze_at_tpt_stops_the_parameters_and_not_the_batch_norm_statistics(monkeypatch, data_cache):
    """Once two evaluations in a row find zero train error, every later epoch trains at lr 0: the
    parameters stay those of that epoch exactly, the batch-norm running statistics still move (train-mode
    passes), fit_lr records 0; up to the freeze the run is the unfrozen run's. The evaluation is stubbed
    to report zero train error from epoch 2 on (so the freeze comes after epoch 3), and every training
    pass counted clean."""
    monkeypatch.setattr(train_mod, "fit_error_tolerance", lambda n: 1.0)

    def run(freeze: bool):
        spec = SMALL.replace(epochs=5, eval_schedule="all", freeze_at_tpt=freeze)
        epochs = itertools.count()  # the evaluation's call number is its epoch: every epoch is evaluated
        monkeypatch.setattr(train_mod, "evaluate", lambda *a, **k: {"train_error": 0.0 if next(epochs) >= 2 else 0.5})
        ds, model, opt, sched, gen = train_mod.setup(spec, data_cache)
        states = {}
        h = train_mod.run_epochs(
            spec,
            ds,
            model,
            opt,
            sched,
            gen,
            after_epoch=lambda e, _: states.setdefault(e, copy.deepcopy(model.state_dict())),
        )
        return h, states

    (frozen, at), (free, free_at) = run(True), run(False)
    assert frozen.fit_lr[:3] == free.fit_lr[:3] and frozen.fit_lr[3:] == [0.0, 0.0]
    assert frozen.fit_loss[:3] == free.fit_loss[:3]
    moved = {k for k in at[3] if not torch.equal(at[5][k], at[3][k])}
    assert moved and all("running" in k or "num_batches" in k for k in moved)  # only batch norm's statistics
    assert any(not torch.equal(free_at[5][k], at[5][k]) for k in at[5] if k.endswith("weight"))


def test_freeze_at_tpt_is_refused_with_lbfgs():
    with pytest.raises(ValueError, match="freeze_at_tpt.*line search"):
        RunSpec(optimizer="lbfgs", freeze_at_tpt=True)


def test_freeze_at_tpt_leaves_the_key_of_every_other_spec():
    assert RunSpec(freeze_at_tpt=False).key() == RunSpec().key() != RunSpec(freeze_at_tpt=True).key()
