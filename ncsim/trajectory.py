"""Trajectory: a read-only view of a run record for claims, figures and the CLI.

Columns are float64 arrays over the evaluated epochs (`epochs`): "train_loss", "train_error",
"test_loss", "test_error", "train.<metric>" and "test.<metric>" for every key of
ncsim.metrics.collapse_metrics on the penultimate features, and "layer.<tap>.<metric>" for the
feature-only metrics at each layer tap (NaN at epochs off the layer schedule). A run that stopped
(status "diverged" or "degenerate") has every one of these columns too, NaN where nothing was
measured, so that a check on it fails instead of raising.
"""

from __future__ import annotations

import functools

import numpy as np

from ncsim import __version__, data
from ncsim.recorded import RecordedSpec, is_recorded
from ncsim.spec import TRAINER_VERSION, RunSpec, SpecError
from ncsim.store import Record

_PER_RUN = ("fit_loss", "fit_error", "fit_lr")  # one value per training epoch 1..E, not per evaluation


def first_zero_error_epoch(epochs, train_error) -> int | None:
    """The first evaluated epoch whose full train-set error in eval mode is exactly 0 (where Papyan
    et al. 2020 start the terminal phase); None when there is none. The error can come back after it."""
    zero = np.flatnonzero(np.asarray(train_error) == 0.0)
    return int(np.asarray(epochs)[zero[0]]) if len(zero) else None


def fit_error_tolerance(train_signals: int) -> float:
    """The fit error a training pass after the stable TPT may have: one misclassified signal of the run's
    N_train train signals. One is allowed because in train mode the minibatch's batch-norm statistics
    decide, and on the calibration runs such isolated single misses came on runs whose eval-mode train
    error stayed 0 at every evaluation: they never showed in eval mode."""
    if isinstance(train_signals, bool) or int(train_signals) != train_signals or train_signals < 1:
        raise ValueError(f"the number of train signals must be an int >= 1, got {train_signals!r}")
    return 1 / int(train_signals)


def tpt_epoch(epochs, train_error, fit_error, tolerance: float) -> int | None:
    """The stable TPT: the first evaluated epoch e with eval-mode train error exactly 0 after which the
    train error stays 0 -- exactly 0 at every later evaluated epoch, and at most `tolerance` in every
    training pass after e (epochs e+1, ..., `fit_error[k-1]` being pass k's fraction of misclassified
    train signals, train mode), so that a bounce between two evaluations is seen too; `tolerance` is
    fit_error_tolerance of the run's train-set size. None when there is no such epoch."""
    epochs, err = np.asarray(epochs), np.asarray(train_error)
    fit = np.asarray(fit_error)
    for i, e in enumerate(epochs):
        if (err[i:] == 0.0).all() and (fit[int(e) :] <= tolerance).all():
            return int(e)
    return None


def spec_of(record: Record) -> RunSpec | RecordedSpec:
    """The spec a record was made from (a RunSpec, or the user's description of a recorded run);
    SpecError naming the ncsim and trainer versions that wrote the record when this version cannot read
    its spec (a field added or removed since)."""
    try:
        return (RecordedSpec if is_recorded(record.meta) else RunSpec).from_dict(record.meta["spec"])
    except SpecError as e:
        versions = record.meta.get("versions") if isinstance(record.meta.get("versions"), dict) else {}
        wrote = (
            f"ncsim {versions.get('ncsim', '(unrecorded version)')}, trainer version "
            f"{record.meta.get('trainer_version', '(unrecorded)')}"
        )
        raise SpecError(
            f"record {record.key} was written by {wrote}; this is ncsim {__version__}, trainer version "
            f"{TRAINER_VERSION}, which cannot read its spec ({e}): read it with the version that wrote "
            f"it, or retrain the run"
        ) from None


class Trajectory:
    """A stored run, read-only. What a claim may ask of a run:

    identity     key, label, spec, status ("ok", "diverged", "degenerate"; meta["status_reason"]
                 says at which epoch and why)
    columns      t[name] over the evaluated epochs `epochs`, t.at(name, epoch), t.final(name),
                 columns(); the names are those of the module docstring, present in every run
    layers       taps() in depth order, layer(tap, metric) at the layer-evaluated epochs
    TPT          tpt_epoch (the stable TPT, from which the train error stays 0), at_tpt(name),
                 post_tpt(name); first_zero_error_epoch (the error may bounce back after it);
                 fit_error (per training pass); train_signals (N_train)
    network      weights(), model(), features(split), embed(x): the final network (the initial one after
                 truncated(0)), not the one at an epoch between
    controls     truncated(epoch): the same run cut after an epoch (e.g. at initialisation)

    Anything else (a column the run lacks, an epoch it did not evaluate) is a KeyError.
    """

    def __init__(self, record: Record, spec: RunSpec | None = None, data_cache=None):
        """`spec`, when given, is the spec the caller asked for (its name may differ from the one the
        record was first trained under; the key is the same). `data_cache`: where features() finds the
        MNIST-1D arrays (the root of the store the record came from; None: the default store root)."""
        self.record = record
        self.meta = record.meta
        self.spec = spec if spec is not None else spec_of(record)
        self.epochs = record.arrays["epoch"].astype(int)
        self.data_cache = data_cache

    key = property(lambda self: self.record.key)
    label = property(lambda self: self.spec.label())
    status = property(lambda self: self.meta["status"])
    tpt_epoch = property(
        lambda self: tpt_epoch(
            self.epochs, self["train_error"], self.fit_error, fit_error_tolerance(self.train_signals)
        ),
        doc="The run's stable TPT (module function tpt_epoch, from the columns), or None.",
    )
    first_zero_error_epoch = property(
        lambda self: first_zero_error_epoch(self.epochs, self["train_error"]),
        doc="The first evaluated epoch with train error 0, or None.",
    )
    fit_error = property(
        lambda self: self._column("fit_error", "per-pass fit error (rec.after_epoch(fit_error=...))"),
        doc="Per training pass 1..E: the fraction of train signals its minibatches misclassified.",
    )

    @functools.cached_property
    def train_signals(self) -> int:
        """N_train: how many signals the run trains on, as its record states it (meta "train_signals");
        for a record that does not, ncsim.data.train_set_size of its spec (which loads the data)."""
        stated = self.meta.get("train_signals")
        if isinstance(stated, int) and not isinstance(stated, bool) and stated >= 1:
            return stated
        return data.train_set_size(self.spec, self.data_cache)

    def _column(self, name: str, what: str):
        """A per-run array a recorded run may lack (KeyError naming `what`)."""
        if name not in self.record.arrays:
            raise KeyError(f"run {self.label} has no {what}")
        return self.record.arrays[name]

    def _needs_network(self) -> None:
        """KeyError for a run recorded from a user's loop, which keeps no network to rebuild."""
        if is_recorded(self.meta):
            raise KeyError(
                f"run {self.label} was recorded from its own training loop and keeps no network "
                f"(no features, embeddings or initial weights)"
            )

    def columns(self) -> list[str]:
        """The names t[name] accepts."""
        n = len(self.epochs)
        return sorted(
            k
            for k, v in self.record.arrays.items()
            if not k.startswith("weights.") and k not in _PER_RUN and v.shape == (n,)
        )

    def __getitem__(self, name: str) -> np.ndarray:
        """The column over the evaluated epochs (float64, one value per entry of `epochs`)."""
        if name not in self.record.arrays or name.startswith("weights."):
            raise KeyError(f"run {self.label} has no column {name!r}; columns: {self.columns()}")
        return self.record.arrays[name]

    def at(self, name: str, epoch: int) -> float:
        """The column's value at an evaluated epoch."""
        hit = np.flatnonzero(self.epochs == epoch)
        if not len(hit):
            raise KeyError(f"epoch {epoch} was not evaluated in run {self.label}")
        return float(self[name][hit[0]])

    def final(self, name: str) -> float:
        """The column at the last evaluated epoch (for a stopped run, the epoch it stopped at,
        where what it did not measure is NaN)."""
        return float(self[name][-1])

    def taps(self) -> list[str]:
        """Layer taps in depth order (input side first)."""
        return list(self.meta.get("taps", []))

    def depth_layers(self) -> list[str]:
        """The layers with parameters in depth order, the steps of a depth profile: each conv block's
        full output (its "<block>.flat" tap), then "penultimate". Left out: the channel-pooled view of a
        block ("<block>.pool", a second measurement of the same layer) and the 2-D taps before the
        penultimate layer, which in both networks are parameter-free average poolings (ncsim.models)."""
        if is_recorded(self.meta):  # the taps the user named, in the depth order given
            if not self.taps():
                raise KeyError(f"run {self.label} recorded no layer taps (Recorder(taps=...))")
            return self.taps() + ["penultimate"]
        return [t for t in self.taps() if t.endswith(".flat")] + ["penultimate"]

    def layer(self, tap: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(epochs, values) of a layer metric at the epochs where layers were evaluated."""
        v = self[f"layer.{tap}.{metric}"]
        ok = ~np.isnan(v)
        return self.epochs[ok], v[ok]

    def _network_is_final(self) -> None:
        """KeyError for a run truncated after an epoch e > 0: a record keeps no weights between
        initialisation and the end, so its network at epoch e cannot be rebuilt."""
        epoch = self.meta.get("truncated_at")
        if epoch:
            raise KeyError(
                f"run {self.label} truncated after epoch {epoch} has no network of that epoch "
                f"(a record keeps the initial and final weights only)"
            )

    def weights(self) -> dict[str, np.ndarray]:
        """The final state dict as numpy arrays (parameters and batch-norm buffers)."""
        self._network_is_final()
        return {k[len("weights.") :]: v for k, v in self.record.arrays.items() if k.startswith("weights.")}

    def truncated(self, epoch: int) -> Trajectory:
        """The same run's trajectory cut after `epoch` (a negative control: e.g. truncated at
        initialisation). The trajectory columns are cut; the network (weights(), model(), features(),
        embed()) is the initial one for epoch 0 (rebuilt from the seed, ncsim.models.initial_network) and
        refused otherwise (a record keeps no weights between: KeyError)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(
                f"truncated({epoch!r}): the epoch to cut after must be an integer >= 0 (0: initialisation)"
            )
        keep = self.epochs <= epoch
        cols = set(self.columns())
        arrays = {
            k: (v[keep] if k in cols else v[:epoch] if k in _PER_RUN else v) for k, v in self.record.arrays.items()
        }
        if epoch == 0:
            arrays.update({f"weights.{k}": v for k, v in self.initial_weights().items()})
        # Cut before its last evaluated epoch, the run has no network of that epoch (_network_is_final).
        meta = {**self.meta, "truncated_at": epoch} if epoch < int(self.epochs[-1]) else dict(self.meta)
        return Trajectory(Record(self.key, meta, arrays), self.spec, self.data_cache)

    def post_tpt(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(epochs, values) of a column from the (stable) TPT epoch on; empty when TPT was never reached."""
        if self.tpt_epoch is None:
            return self.epochs[:0], self[name][:0]
        keep = self.epochs >= self.tpt_epoch
        return self.epochs[keep], self[name][keep]

    def at_tpt(self, name: str) -> float:
        """The column at the (stable) TPT epoch; NaN when TPT was never reached."""
        return float("nan") if self.tpt_epoch is None else self.at(name, self.tpt_epoch)

    def initial_weights(self) -> dict[str, np.ndarray]:
        """The state dict at initialisation (epoch 0), rebuilt from the spec's seed; the caller's torch
        generator state is left as it was."""
        self._needs_network()
        import torch

        from ncsim import models

        with torch.random.fork_rng(devices=[]):
            net = models.initial_network(self.spec, num_classes=len(self.weights()["classifier.weight"]))
        return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}

    def model(self):
        """The trained network, rebuilt from the record's final weights (eval mode, CPU), with as many
        classes C as its classifier has rows."""
        self._needs_network()
        import torch

        from ncsim import models

        weights = self.weights()
        net = models.build(self.spec, num_classes=len(weights["classifier.weight"]))
        net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
        return net.eval()

    def features(self, split: str = "train", cache_dir=None) -> dict[str, np.ndarray]:
        """Final penultimate features h (N x p, float64), labels, and the classifier W, b of a split
        ("train" or "test"), recomputed from the final weights with one eval-mode forward pass; the data
        come from `cache_dir`, else the store the run was obtained from (data_cache), else the default."""
        self._needs_network()
        from ncsim import data

        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        ds = data.load(self.spec, cache_dir or self.data_cache)
        x, y = (ds.x, ds.y) if split == "train" else (ds.x_test, ds.y_test)
        net = self.model()
        return {
            "h": self.embed(x, net),
            "y": y.numpy(),
            "W": net.classifier.weight.detach().double().numpy(),
            "b": net.classifier.bias.detach().double().numpy(),
        }

    def embed(self, x, net=None) -> np.ndarray:
        """Penultimate features h (N x p, float64) of signals x (N x 1 x L, any that the network takes,
        e.g. of classes it never trained on), from one eval-mode forward pass of `net` (default: model())."""
        import torch

        net = self.model() if net is None else net
        with torch.no_grad():
            _, outs = net(torch.as_tensor(np.asarray(x, dtype=np.float32)), taps=True)
        return outs["penultimate"].double().numpy()
