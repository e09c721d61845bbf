"""A run that fails returns a record that says how, instead of raising."""

import numpy as np
import pytest

from ncsim import metrics, train
from ncsim.spec import RunSpec
from ncsim.trajectory import Trajectory

TINY = RunSpec(epochs=2, train_size=300, width=8, layer_schedule="none")


def test_degenerate_features_stop_the_run_with_a_record(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train.collapse_metrics_streaming

    def dies_after_init(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 0 (train and test) is fine, epoch 1 has dead features
            raise metrics.DegenerateFeaturesError("class means are identical (Sigma_B = 0)")
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "collapse_metrics_streaming", dies_after_init)
    rec = train.train(TINY, cache_dir=tmp_path)
    assert rec.meta["status"] == "degenerate"
    assert "epoch 1" in rec.meta["status_reason"] and "Sigma_B = 0" in rec.meta["status_reason"]
    assert rec.meta["epochs_run"] == 1
    assert np.isnan(rec.arrays["train.nc1"][-1]) and not np.isnan(rec.arrays["train.nc1"][0])


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")
def test_nonfinite_loss_marks_the_run_diverged(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "fit_epoch", lambda *a, **k: train.EpochFit(float("nan"), 1.0))
    rec = train.train(TINY, cache_dir=tmp_path)
    assert rec.meta["status"] == "diverged"
    assert "training loss nan" in rec.meta["status_reason"]
    assert rec.meta["epochs_run"] == 1
    np.testing.assert_array_equal(rec.arrays["fit_error"], [1.0])  # the stopping pass is recorded
    assert Trajectory(rec).tpt_epoch is None and Trajectory(rec).first_zero_error_epoch is None
    assert np.isnan(Trajectory(rec).final("train.nc1")) and not np.isnan(Trajectory(rec).at("train.nc1", 0))
