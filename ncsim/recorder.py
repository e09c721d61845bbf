"""Record a user's own training loop as an ncsim run: the user keeps their model, data, optimizer and
loop; the Recorder measures at the epochs its schedule names and writes a record with the columns of
ncsim's own runs into the run store, where the claims read it (`pytest claims --runs NAME`).

    rec = ncsim.Recorder("digits-mlp", seed=s, model=model, penultimate=model.body,
                         classifier=model.head, train=train_loader, test=test_loader, epochs=E)
    for epoch in range(1, E + 1):
        ...                                  # the user's own training pass
        rec.after_epoch(epoch, fit_loss=..., fit_error=...)   # the fit values are optional
    t = rec.close()                          # writes the record (also rec.trajectory); or `with rec:`

What is measured is what ncsim's trainer measures (ncsim.train.evaluate_splits, the same function):
at epoch 0 (when the Recorder is made) and at every epoch of `eval_schedule`, in eval mode under
no_grad, over the train loader and separately the test loader: loss, error, and the collapse
metrics of the penultimate features h (the output of `penultimate`, flattened) with the classifier's
W and b and the ridge classifier of lambda = weight_decay / 2 (the field weight_decay, 0 when not
given; ncsim.train.ridge_lambda); at the epochs of `layer_schedule`, the feature-only metrics at each
module of `taps` (train set). The features stream through ncsim.metrics.collapse_metrics_streaming:
each metric pass runs the model over the loader again (one pass for the losses, two or three for
the penultimate metrics, two per tap), and no N x p matrix is held. An evaluation neither changes the
model's train/eval mode nor draws from torch's random number generators.

A run ends with a status as ncsim's own runs do: "ok" when all `epochs` were recorded; "diverged"
(a non-finite reported fit loss, or non-finite logits, loss or features) or "degenerate" (features
whose statistics are undefined), after which after_epoch returns False and records nothing more;
"stopped" when the loop ended before `epochs` (close() early, or an exception in the `with` block),
the last epoch reached being evaluated at close(). meta["status_reason"] says where and why.

The record's key hashes the user's description (ncsim.recorded.RecordedSpec: name, seed, epochs,
the schedules and the other fields passed); a key already in the store is an error when the
Recorder is made, unless overwrite=True.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from ncsim import train as trainer
from ncsim.recorded import SOURCE, RecordedSpec
from ncsim.store import Record, RunStore
from ncsim.trajectory import Trajectory

STOPPED = "stopped"


class AlreadyRecorded(FileExistsError):
    """The store holds a run of the same description (its `key`) and overwrite was not asked for."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Recorder:
    """Measures a user's training loop and records it as the run `name`-s`seed` (module docstring).

    model         the user's nn.Module; model(x) gives the logits of a batch
    penultimate   the module whose output, flattened, is the penultimate feature h
    classifier    the final nn.Linear, logits = W h + b
    train, test   re-iterable loaders of (x, y) batches (a torch DataLoader); test may be None, and the
                  run then has no test columns (the claims that need them are skipped)
    epochs        the number of training epochs the loop runs
    taps          layer taps: {name: module} in depth order, or qualified module names of `model`
                  (model.named_modules()); a tap narrower than C-1 features is skipped
    loss_fn       loss_fn(logits, y) -> the batch mean (default: cross-entropy)
    cache_dir     the run store (None: $NCSIM_CACHE or ~/.cache/ncsim)
    overwrite     replace a record of the same description
    **fields      the rest of the description (JSON values: lr, weight_decay, optimizer, ...), hashed
                  into the key; eval_schedule and layer_schedule ("all", "every:K", "log:K", "none";
                  default "all" and "log:12") choose the measured epochs. A field named as one of the
                  arguments above (e.g. the figures' "classifier": "learned") goes in fields={...}
    """

    def __init__(
        self,
        name: str,
        seed: int,
        *,
        model: torch.nn.Module,
        penultimate: torch.nn.Module,
        classifier: torch.nn.Linear,
        train: Iterable,
        epochs: int,
        test: Iterable | None = None,
        taps: Mapping[str, torch.nn.Module] | Sequence[str] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        cache_dir=None,
        overwrite: bool = False,
        fields: Mapping | None = None,
        **more_fields,
    ):
        from ncsim.api import open_store

        self.spec = RecordedSpec(name, seed, epochs, {**(fields or {}), **more_fields})
        self.eval_at, self.layer_at = trainer.eval_epochs(self.spec)
        self.store: RunStore = open_store(cache_dir)
        self.overwrite = overwrite
        if not overwrite and self.spec.key() in self.store:
            raise AlreadyRecorded(
                self.spec.key(),
                f"{self.spec.label()} is already recorded with this description "
                f"(key {self.spec.key()} in {self.store.root}); pass overwrite=True "
                f"to replace it",
            )
        if not isinstance(classifier, torch.nn.Linear):
            raise TypeError(
                f"classifier must be the final torch.nn.Linear (logits = W h + b), got {type(classifier).__name__}"
            )
        for what, module in (("model", model), ("penultimate", penultimate)):
            if not isinstance(module, torch.nn.Module):
                raise TypeError(f"{what} must be a torch.nn.Module, got {type(module).__name__}")
        self.model, self.penultimate, self.classifier = model, penultimate, classifier
        self.loaders = {"train": train, **({"test": test} if test is not None else {})}
        self.taps = _resolve_taps(model, taps)
        self.loss = loss_fn if loss_fn is not None else F.cross_entropy
        self.history = trainer.History()
        self.epoch = 0
        self.widths: dict[str, int] = {}
        self.signals: dict[str, int] = {}
        self.reported = set()
        self.closed = False
        self.trajectory: Trajectory | None = None  # the record, once close() wrote it
        self.t_start = time.perf_counter()
        self._measure(0)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    def after_epoch(
        self, epoch: int, *, fit_loss: float | None = None, fit_error: float | None = None, lr: float | None = None
    ) -> bool:
        """Training epoch `epoch` (1, 2, ... in order) is done: measure if the schedule says so.
        `fit_loss`, `fit_error` (the fraction of train samples the epoch's minibatches misclassified,
        from which the stable TPT is found) and `lr` are the pass's own values, recorded when given.
        Returns whether the run goes on (False once it diverged or degenerated: stop the loop)."""
        if self.closed:
            raise RuntimeError(f"{self.spec.label()}: after_epoch({epoch}) after close()")
        if self.history.status != "ok":
            return False
        if epoch != self.epoch + 1 or epoch > self.spec.epochs:
            raise ValueError(
                f"{self.spec.label()}: after_epoch({epoch}) after epoch {self.epoch}: call it after "
                f"every epoch 1..{self.spec.epochs}, in order"
            )
        self.epoch = epoch
        h = self.history
        for column, value in (("fit_loss", fit_loss), ("fit_error", fit_error), ("fit_lr", lr)):
            getattr(h, column).append(math.nan if value is None else float(value))
            if value is not None:
                self.reported.add(column)
        if fit_loss is not None and not math.isfinite(fit_loss):
            h.stopped(epoch, trainer.RunStopped("diverged", f"training loss {fit_loss}"))
        elif epoch in self.eval_at:
            self._measure(epoch)
        return h.status == "ok"

    def close(self) -> Trajectory:
        """Write the record (ncsim.store, atomically) and return it as a Trajectory. A run closed
        before its last epoch is "stopped", its last epoch evaluated if the schedule skipped it."""
        if self.closed:
            raise RuntimeError(f"{self.spec.label()} is already closed")
        self.closed = True
        h = self.history
        if h.status == "ok" and self.epoch < self.spec.epochs:
            if h.rows[-1]["epoch"] != self.epoch:
                self._measure(self.epoch)
            if h.status == "ok":
                h.status, h.reason = STOPPED, f"stopped by the user after epoch {self.epoch} of {self.spec.epochs}"
        record = self._record()
        if not self.overwrite and record.key in self.store:
            raise self.store._save_fallback(
                record, FileExistsError("recorded meanwhile by another process; pass overwrite=True to replace it")
            )
        try:
            self.store.save(record)
        except OSError as e:
            raise self.store._save_fallback(record, e) from e
        self.trajectory = Trajectory(self.store.read(record.key), data_cache=self.store.root)
        return self.trajectory

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if self.closed:
            return False
        if error is not None and self.history.status == "ok":
            self.history.status = STOPPED
            self.history.reason = f"the training loop raised {kind.__name__} after epoch {self.epoch}: {error}"
        self.close()
        return False

    # ---- measuring ---------------------------------------------------------------------------------

    def _measure(self, epoch: int) -> None:
        """One evaluation row at `epoch` (ncsim.train.evaluate_splits), or the run's stop."""
        layers = epoch in self.layer_at and bool(self.taps)
        splits = {
            split: self._chunks(split, loader, layers and split == "train") for split, loader in self.loaders.items()
        }
        h = self.history
        with h.timed("eval"), self._evaluating():
            try:
                h.rows.append(
                    {
                        "epoch": epoch,
                        **trainer.evaluate_splits(splits, self.classifier, self.num_classes, self.loss, self._ridge()),
                    }
                )
            except trainer.RunStopped as stop:
                h.stopped(epoch, stop)

    def _ridge(self) -> float:
        return trainer.ridge_lambda(self.spec) if "weight_decay" in self.spec.fields else 0.0

    @contextmanager
    def _evaluating(self):
        """Eval mode, no gradients, torch's generators untouched (a DataLoader draws a seed from the
        global one per pass), and forward hooks that keep the current batch's outputs of the
        penultimate module and the taps; all undone afterwards."""
        was_training = self.model.training
        device = self._device()
        self._outputs: dict[str, torch.Tensor] = {}
        modules = {"penultimate": self.penultimate, **self.taps}
        hooks = [m.register_forward_hook(self._keeper(name)) for name, m in modules.items()]
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
                self.model.eval()
                yield
        finally:
            for hook in hooks:
                hook.remove()
            self.model.train(was_training)

    def _keeper(self, name: str):
        def keep(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"{self.spec.label()}: the output of {name} is a {type(output).__name__}, not a tensor of features"
                )
            self._outputs[name] = output.flatten(1)

        return keep

    def _device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def _chunks(self, split: str, loader: Iterable, taps: bool):
        """The (logits, features, labels) of every batch of `loader`, for evaluate_splits; counts the
        split's signals (the train count sets the stable TPT's tolerance, one signal of N_train)."""
        device = self._device()
        names = ["penultimate", *self.taps] if taps else ["penultimate"]

        def run():
            self.signals[split] = 0
            for x, y in loader:
                self.signals[split] += len(y)
                logits = self.model(x.to(device))
                feats = {name: self._outputs[name] for name in names}
                self.widths.update({name: f.shape[1] for name, f in feats.items()})
                yield logits, feats, y.to(logits.device)

        return run

    # ---- the record --------------------------------------------------------------------------------

    def _record(self) -> Record:
        h, spec = self.history, self.spec
        narrow = [t for t in self.taps if t in self.widths and trainer._too_narrow(self.widths[t], self.num_classes)]
        taps = [t for t in self.taps if t not in narrow] if self.layer_at else []
        arrays = trainer.column_arrays(h.rows, taps, tuple(self.loaders))
        for column in sorted(self.reported):
            arrays[column] = np.asarray(getattr(h, column), dtype=np.float64)
        total = time.perf_counter() - self.t_start
        meta = {
            "source": SOURCE,
            "spec": spec.to_dict(),
            "key": spec.key(),
            "label": spec.label(),
            "status": h.status,
            "status_reason": h.reason,
            "taps": taps,
            "skipped_taps": [f"{t} (p={self.widths[t]} < C-1)" for t in narrow],
            "epochs_run": self.epoch,
            "splits": list(self.loaders),
            "train_signals": self.signals.get("train"),
            "modules": {
                "model": type(self.model).__name__,
                "penultimate": type(self.penultimate).__name__,
                "classifier": f"Linear({self.classifier.in_features}, {self.classifier.out_features})",
            },
            "timings": {
                "total_s": total,
                "fit_s": total - h.seconds["eval"],
                "eval_s": h.seconds["eval"],
                "threads": torch.get_num_threads(),
            },
            "versions": trainer.versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return Record(key=spec.key(), meta=meta, arrays=arrays)


def _resolve_taps(model: torch.nn.Module, taps) -> dict[str, torch.nn.Module]:
    """{tap name: module} from a mapping or from qualified module names of `model`."""
    if taps is None:
        return {}
    if isinstance(taps, Mapping):
        out = dict(taps)
    else:
        named = dict(model.named_modules())
        unknown = [t for t in taps if t not in named]
        if unknown:
            raise ValueError(
                f"taps {unknown} name no module of the model; its modules: {sorted(n for n in named if n)}"
            )
        out = {t: named[t] for t in taps}
    bad = [n for n, m in out.items() if not isinstance(m, torch.nn.Module) or n == "penultimate" or not n]
    if bad:
        raise ValueError(f"taps {bad}: each is a named torch.nn.Module other than the penultimate one")
    return out
