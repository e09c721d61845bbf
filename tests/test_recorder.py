"""ncsim.Recorder: a user's own training loop recorded as a run, measured as ncsim's trainer measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ncsim import api
from ncsim import train as train_mod
from ncsim.recorded import RecordedRunMissing, RecordedSpec, find
from ncsim.recorder import Recorder
from ncsim.spec import RunSpec
from ncsim.trajectory import Trajectory

MIRRORED = RunSpec(name="mirrored", epochs=2, train_size=200, width=12, eval_schedule="all", layer_schedule="every:1")


def test_the_recorders_columns_equal_the_trainers_on_the_same_network_and_data(cache_dir, single_thread):
    stored = api.obtain_run(MIRRORED, cache_dir=cache_dir)  # ncsim's trainer, stored
    spec = MIRRORED
    ds, model, opt, sched, gen = train_mod.setup(spec, cache_dir)  # the same network, data and order
    chunks = train_mod.EVAL_CHUNK
    blocks = ["conv1", "conv2", "conv3"]
    rec = Recorder(
        "mirror",
        seed=spec.seed,
        model=model,
        penultimate=model.blocks["penultimate"],
        classifier=model.classifier,
        train=list(zip(ds.x.split(chunks), ds.y.split(chunks))),
        test=list(zip(ds.x_test.split(chunks), ds.y_test.split(chunks))),
        epochs=spec.epochs,
        taps={f"{b}.flat": model.blocks[b] for b in blocks},
        loss_fn=lambda z, y: train_mod.loss_fn(spec, z, y),
        cache_dir=cache_dir,
        weight_decay=spec.weight_decay,
        eval_schedule=spec.eval_schedule,
        layer_schedule=spec.layer_schedule,
    )
    for epoch in range(1, spec.epochs + 1):  # a loop of the user's own
        lr = opt.param_groups[0]["lr"]
        fit = train_mod.fit_epoch(spec, model, opt, ds, gen)
        sched.step()
        assert rec.after_epoch(epoch, fit_loss=fit.loss, fit_error=fit.error, lr=lr)
    recorded = rec.close()

    assert recorded.status == "ok" and recorded.meta["source"] == "recorded" and recorded.label == "mirror-s0"
    assert recorded.taps() == [f"{b}.flat" for b in blocks]
    theirs = {k for k in stored.record.arrays if not k.startswith("weights.") and ".pool." not in k}
    assert theirs <= set(recorded.record.arrays)
    for column in sorted(theirs):
        np.testing.assert_array_equal(recorded.record.arrays[column], stored.record.arrays[column], err_msg=column)
    assert len(theirs) > 70


class Toy(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        return self.head(self.body(x))


def toy_data(n: int = 60, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 4, generator=g) + 3 * nn.functional.one_hot(y, 4).float()
    return [(x[i : i + 20], y[i : i + 20]) for i in range(0, n, 20)]


def toy_recorder(store, name="toy", seed=0, epochs=3, test=True, **kw) -> tuple[Recorder, Toy]:
    torch.manual_seed(seed)
    model = Toy()
    rec = Recorder(
        name,
        seed=seed,
        model=model,
        penultimate=model.body,
        classifier=model.head,
        train=toy_data(),
        test=toy_data(30, 1) if test else None,
        epochs=epochs,
        cache_dir=store,
        **kw,
    )
    return rec, model


def fit(model, batches, steps: int = 5):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        for x, y in batches:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()


def test_a_run_records_every_column_and_is_found_by_name_and_seed(tmp_path):
    rec, model = toy_recorder(tmp_path, taps=["body.1"], weight_decay=0.0, layer_schedule="all")
    for epoch in (1, 2, 3):
        fit(model, toy_data())
        rec.after_epoch(epoch, fit_loss=0.5, fit_error=0.0)
    t = rec.close()
    assert list(t.epochs) == [0, 1, 2, 3] and t.status == "ok"
    assert set(train_mod.columns(["body.1"])) <= set(t.columns())
    assert np.isfinite(t["layer.body.1.nc1"]).all() and np.isfinite(t["test.nc1"]).all()
    assert t.final("train.nc1") < t["train.nc1"][0]  # the toy classes separate
    store = api.open_store(tmp_path)
    description = RecordedSpec("toy", 0, 3, {"weight_decay": 0.0, "layer_schedule": "all"})
    assert find(store, "toy", 0) == t.key == description.key()
    loaded = api.load_run("toy-s0", cache_dir=tmp_path)
    assert isinstance(loaded.spec, RecordedSpec) and loaded.spec.weight_decay == 0.0
    assert loaded.fit_error.tolist() == [0, 0, 0]
    with pytest.raises(RecordedRunMissing, match=r"'toy' has no run of seed 7 .* has seeds 0"):
        find(store, "toy", 7)


def test_the_same_description_is_not_recorded_twice_without_overwrite(tmp_path):
    rec, _ = toy_recorder(tmp_path, epochs=1)
    rec.after_epoch(1)
    first = rec.close()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        toy_recorder(tmp_path, epochs=1)
    assert api.open_store(tmp_path).read(first.key).meta["created"] == first.meta["created"]
    again, _ = toy_recorder(tmp_path, epochs=1, overwrite=True)
    again.after_epoch(1)
    assert again.close().key == first.key
    other, _ = toy_recorder(tmp_path, epochs=1, lr=0.1)  # another description: another key
    assert other.spec.key() != first.key


def test_a_run_stopped_early_or_interrupted_is_recorded_with_its_status(tmp_path):
    rec, model = toy_recorder(tmp_path, epochs=5, eval_schedule="every:4", layer_schedule="none")
    rec.after_epoch(1)
    rec.after_epoch(2)
    t = rec.close()
    assert t.status == "stopped" and "after epoch 2 of 5" in t.meta["status_reason"]
    assert list(t.epochs) == [0, 2]  # the epoch it stopped at is measured

    with pytest.raises(RuntimeError, match="the user's bug"):
        with toy_recorder(tmp_path, name="crash", epochs=3)[0] as rec:
            rec.after_epoch(1)
            raise RuntimeError("the user's bug")
    t = api.load_run("crash-s0", cache_dir=tmp_path)
    assert t.status == "stopped" and "RuntimeError" in t.meta["status_reason"] and list(t.epochs) == [0, 1]


def test_a_diverged_run_stops_and_keeps_what_was_measured(tmp_path):
    rec, model = toy_recorder(tmp_path, epochs=3)
    assert rec.after_epoch(1, fit_loss=1.0)
    assert rec.after_epoch(2, fit_loss=float("nan")) is False
    assert rec.after_epoch(3) is False
    t = rec.close()
    assert t.status == "diverged" and "epoch 2" in t.meta["status_reason"] and list(t.epochs) == [0, 1, 2]
    assert np.isnan(t.final("train.nc1")) and np.isfinite(t["train.nc1"][1])


def test_epochs_out_of_order_and_a_classifier_that_is_not_linear_are_errors(tmp_path):
    rec, model = toy_recorder(tmp_path, epochs=3)
    with pytest.raises(ValueError, match=r"after_epoch\(2\) after epoch 0"):
        rec.after_epoch(2)
    with pytest.raises(TypeError, match="nn.Linear"):
        Recorder(
            "bad",
            seed=0,
            model=model,
            penultimate=model.body,
            classifier=model.body,
            train=toy_data(),
            epochs=1,
            cache_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="name no module"):
        toy_recorder(tmp_path, name="taps", taps=["body.9"])
    with pytest.raises(ValueError, match="letters, digits"):
        RecordedSpec("my run", 0, 1)


def test_no_test_loader_means_no_test_columns(tmp_path):
    rec, _ = toy_recorder(tmp_path, epochs=1, test=False)
    rec.after_epoch(1)
    t = rec.close()
    assert "train.nc1" in t.columns() and not any(c.startswith("test") for c in t.columns())
    with pytest.raises(KeyError, match="test_error"):
        t["test_error"]
    with pytest.raises(KeyError, match="keeps no network"):
        t.model()


def test_an_evaluation_leaves_the_users_random_state_and_mode_alone(tmp_path):
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*map(torch.cat, zip(*toy_data()))), batch_size=16, shuffle=True
    )
    torch.manual_seed(3)
    model = Toy().train()
    state = torch.get_rng_state()
    rec = Recorder(
        "rng",
        seed=0,
        model=model,
        penultimate=model.body,
        classifier=model.head,
        train=loader,
        epochs=1,
        cache_dir=tmp_path,
    )
    assert torch.equal(torch.get_rng_state(), state) and model.training
    rec.after_epoch(1)
    assert torch.equal(torch.get_rng_state(), state)
    rec.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_model_and_batches_on_the_gpu_give_the_cpu_columns(tmp_path):
    runs = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = Toy().to(device)
        batches = [(x.to(device), y.to(device)) for x, y in toy_data()]
        fit(model, batches)
        rec = Recorder(
            f"gpu-{device}",
            seed=0,
            model=model,
            penultimate=model.body,
            classifier=model.head,
            train=batches,
            epochs=1,
            cache_dir=tmp_path,
        )
        rec.after_epoch(1)
        runs[device] = rec.close()
    for column in runs["cpu"].columns():
        np.testing.assert_allclose(runs["cuda"][column], runs["cpu"][column], rtol=1e-4, atol=1e-6, err_msg=column)


def test_a_recorded_trajectory_skips_what_it_lacks_rather_than_rebuilding_a_network(tmp_path):
    rec, _ = toy_recorder(tmp_path, epochs=1)
    rec.after_epoch(1)  # no fit error reported, no taps
    t = rec.close()
    assert isinstance(t, Trajectory)
    with pytest.raises(KeyError, match="fit error"):
        t.tpt_epoch
    with pytest.raises(KeyError, match="no layer taps"):
        t.depth_layers()
    with pytest.raises(KeyError, match="keeps no network"):
        t.truncated(0)


def test_features_stream_batch_by_batch_and_are_never_held_for_the_whole_split(tmp_path):
    import weakref

    alive, most = weakref.WeakSet(), [0]

    class Counted(nn.Module):  # the penultimate layer, counting its outputs still referenced anywhere
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 8)

        def forward(self, x):
            out = self.linear(x).relu()
            alive.add(out)
            most[0] = max(most[0], len(alive))
            return out

    torch.manual_seed(0)
    body, head = Counted(), nn.Linear(8, 3)
    model = nn.Sequential(body, head)
    batches = toy_data(300)  # 15 batches of 20
    rec = Recorder(
        "stream",
        seed=0,
        model=model,
        penultimate=body,
        classifier=head,
        train=batches,
        epochs=1,
        cache_dir=tmp_path,
        weight_decay=1e-3,
    )
    rec.after_epoch(1)
    assert np.isfinite(rec.close().final("train.ridge_distance"))
    assert most[0] <= 3 < len(batches)  # a few batches at a time, whatever N
