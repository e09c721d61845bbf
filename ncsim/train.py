"""Train one RunSpec and record its Neural Collapse trajectory.

At every epoch of `spec.eval_schedule` (epoch 0 = initialisation always), in eval mode on the full
train set and separately on the test set: loss, error, and all of `collapse_metrics` on the
penultimate features with the classifier's W and b, and the ridge classifier of those features
(`ridge_lambda`). At every epoch of `spec.layer_schedule`, the
feature-only metrics at every layer tap on the train set (a tap with fewer than C-1 features cannot
hold a simplex and is skipped: meta["skipped_taps"]). Every training pass also records its loss and
the fraction of train signals its minibatches misclassified ("fit_loss", "fit_error"), which sees a
train-error bounce between evaluations; the TPT epochs are derived from these columns
(ncsim.trajectory). A run whose loss or features turn NaN or inf stops with status "diverged", one whose
features die so that the metrics are undefined (e.g. all class means equal) with status "degenerate";
meta["status_reason"] says where, and its record still has every column of a finished run, NaN where
nothing was measured. The result is a store.Record; nothing here plots or caches.

The training passes compute in spec.precision ("fp32", or "bf16-mixed": bf16 convolutions, float32
everything else; ncsim.models); evaluations are float32 and the metrics float64 either way, and
meta["precision"] records which CPU kernels ran (precision_meta).

Top to bottom: the stop signal and the column names; loss, optimizer and lr schedule; setup; one
training epoch; one evaluation; the epoch loop; train(); the record; the progress bar.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ncsim import __version__, data, models
from ncsim.metrics import (
    CLASSIFIER_KEYS,
    FEATURE_KEYS,
    FLOAT32_RESOLUTION,
    RIDGE_KEYS,
    DegenerateFeaturesError,
    NonFiniteError,
    collapse_metrics_streaming,
)
from ncsim.spec import TRAINER_VERSION, RunSpec, schedule_epochs
from ncsim.store import Record
from ncsim.threads import keep_freed_memory
from ncsim.trajectory import fit_error_tolerance, tpt_epoch

EVAL_CHUNK = 1000
PENULTIMATE_KEYS = FEATURE_KEYS + CLASSIFIER_KEYS + RIDGE_KEYS
LAYER_KEYS = FEATURE_KEYS


class RunStopped(Exception):
    """Training cannot go on: `status` "diverged" (a non-finite loss or features) or "degenerate"
    (features whose NC statistics are undefined). `measured` holds what the interrupted evaluation
    had measured before it stopped."""

    def __init__(self, status: str, reason: str, measured: dict | None = None):
        super().__init__(f"{status}: {reason}")
        self.status, self.reason, self.measured = status, reason, dict(measured or {})


def columns(taps: list[str], splits: tuple[str, ...] = ("train", "test")) -> list[str]:
    """Every trajectory column of a run with these layer taps, measured on these splits (the keys of
    its evaluation rows)."""
    return [
        "epoch",
        *(f"{split}_{m}" for split in splits for m in ("loss", "error")),
        *(f"{split}.{k}" for split in splits for k in PENULTIMATE_KEYS),
        *(f"layer.{tap}.{k}" for tap in taps for k in LAYER_KEYS),
    ]


def column_arrays(rows: list[dict], taps: list[str], splits: tuple[str, ...] = ("train", "test")) -> dict:
    """The trajectory columns (`columns`, and any other key of a row) over the evaluated epochs, as
    float64 arrays: NaN where nothing was measured (layer metrics off the layer schedule, whatever a
    stopped run did not reach)."""
    names = sorted(set(columns(taps, splits)) | {k for r in rows for k in r})
    return {k: np.asarray([r.get(k, np.nan) for r in rows], dtype=np.float64) for k in names}


def loss_fn(spec: RunSpec, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The batch mean of the spec's loss. "ce": cross-entropy, against the smoothed target
    (1 - alpha) e_y + alpha/C 1 when label_smoothing = alpha > 0 (Szegedy et al. 2016; torch's
    label_smoothing); "focal": -(1 - p_y)^gamma log p_y (Lin et al. 2017, without class weights, as Zhou et
    al. 2022's code, jinxinzhou/nc_loss Losses/focal_loss.py); "mse": the squared error to the one-hot
    target summed over classes (Han et al. 2022)."""
    if spec.loss == "ce":
        return F.cross_entropy(logits, y, label_smoothing=spec.label_smoothing)
    if spec.loss == "focal":
        log_p = F.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
        return (-((1 - log_p.exp()) ** spec.focal_gamma) * log_p).mean()
    onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    return ((logits - onehot) ** 2).sum(1).mean()


def make_optimizer(spec: RunSpec, params) -> torch.optim.Optimizer:
    params = list(params)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=spec.weight_decay
        )
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    # As Zhu et al.'s code (tding1/Neural-Collapse, utils.make_optimizer): history 10, strong-Wolfe line
    # search, torch's other defaults; LBFGS has no weight_decay argument, so the L2 term is in the closure.
    return torch.optim.LBFGS(
        params, lr=spec.lr, max_iter=spec.lbfgs_max_iter, history_size=10, line_search_fn="strong_wolfe"
    )


def make_scheduler(spec: RunSpec, opt: torch.optim.Optimizer):
    """Per-epoch lr schedule: constant; multistep x0.1 at 1/3 and 2/3 of training (Papyan et al.);
    cosine annealing to 0."""
    if spec.schedule == "multistep":
        m = sorted({max(1, spec.epochs // 3), max(1, 2 * spec.epochs // 3)})
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=m, gamma=0.1)
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def setup(spec: RunSpec, cache_dir=None):
    """(ds, model, opt, sched, gen): the run's data on spec.device, its network for the data's C
    classes seeded by spec.seed, optimizer, lr schedule, and the generator of the minibatch order."""
    device = torch.device(spec.device)
    keep_freed_memory()
    ds = data.load(spec, cache_dir)
    ds = data.Dataset(*(t.to(device) for t in (ds.x, ds.y, ds.x_test, ds.y_test)), ds.num_classes)
    model = models.initial_network(spec, ds.num_classes).to(device)
    opt = make_optimizer(spec, [p for p in model.parameters() if p.requires_grad])  # not a fixed ETF W
    sched = make_scheduler(spec, opt)
    gen = torch.Generator().manual_seed(spec.seed + 1_000_003)
    return ds, model, opt, sched, gen


class EpochFit(NamedTuple):
    """One training pass: the mean minibatch loss, and the fraction of train signals its minibatches
    misclassified (train mode, before each step) -- the free signal that sees a train-error bounce at
    every epoch, between the full evaluations (ncsim.trajectory.tpt_epoch, the stable TPT)."""

    loss: float
    error: float


def fit_epoch(spec: RunSpec, model, opt, ds: data.Dataset, gen: torch.Generator, update: bool = True) -> EpochFit:
    """One pass over the shuffled train set. Without `update` (a learning rate of 0: spec.freeze_at_tpt)
    each minibatch only goes forward in train mode, which moves the batch-norm running statistics as a
    step of size 0 would, and no gradient is computed: SGD, Adam and AdamW scale every update, weight
    decay included, by the learning rate, so the parameters are exactly those a step of size 0 leaves.
    A forward without gradient computes in float32 whatever spec.precision (ncsim.models.ConvBlock)."""
    model.train()
    perm = torch.randperm(len(ds.x), generator=gen)
    total, n, wrong = 0.0, 0, 0
    params = [p for p in model.parameters() if p.requires_grad]
    for i in range(0, len(perm), spec.batch_size):
        idx = perm[i : i + spec.batch_size]
        xb, yb = ds.x[idx], ds.y[idx]
        if not update:
            with torch.no_grad():
                logits = model(xb)
                wrong += int((logits.argmax(1) != yb).sum())
                total += float(loss_fn(spec, logits, yb)) * len(idx)
                n += len(idx)
            continue

        first = [True]

        def closure():
            nonlocal wrong
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            if first[0]:  # LBFGS calls the closure again at trial points: count the step's own batch once
                wrong += int((logits.detach().argmax(1) != yb).sum())
                first[0] = False
            loss = loss_fn(spec, logits, yb)
            if spec.optimizer == "lbfgs" and spec.weight_decay:
                loss = loss + 0.5 * spec.weight_decay * sum((p * p).sum() for p in params)
            loss.backward()
            if spec.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
            return loss

        if spec.optimizer == "lbfgs":
            # Every closure call, at each inner iteration and line-search trial point, is a train-mode
            # forward that moves the batch-norm running statistics, as in Zhu et al.'s train_2nd_order.py:
            # they track the iterates within the step, trial points included (the lbfgs preset therefore
            # evaluates with eval_bn_stats = "recomputed").
            loss = opt.step(closure)
        else:
            loss = closure()
            opt.step()
        total += float(loss.detach()) * len(idx)
        n += len(idx)
    return EpochFit(total / n, wrong / n)


@torch.no_grad()
def forward_all(model, x: torch.Tensor, taps: bool) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Eval-mode forward over a whole split in chunks of EVAL_CHUNK signals: per chunk, the logits and
    the 2-D features of the penultimate layer and, with `taps`, of every tap."""
    model.eval()
    out = []
    for i in range(0, len(x), EVAL_CHUNK):
        z, outs = model(x[i : i + EVAL_CHUNK], taps=True)
        out.append((z, models.tap_features(outs) if taps else {"penultimate": outs["penultimate"]}))
    return out


@torch.no_grad()
def recompute_bn_statistics(model, x: torch.Tensor) -> None:
    """Precise batch norm (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021, Sec. 3): set every
    batch-norm layer's running mean and variance to the average, over the train set's chunks of
    EVAL_CHUNK signals, of the batch statistics at the current weights (train-mode forwards, momentum
    None: a cumulative average), in place of the exponential averages training left. The mean is the
    train set's exactly when the chunks are equal; the variance is the mean within-chunk variance.
    The momentum of each layer is restored; the weights do not change."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for i in range(0, len(x), EVAL_CHUNK):
            model(x[i : i + EVAL_CHUNK])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)


def evaluate(spec: RunSpec, model, ds: data.Dataset, layers: bool) -> dict[str, float]:
    """One evaluation row (evaluate_splits) of the run's network on its train and test sets, the layer
    taps on the train set with `layers`. With spec.eval_bn_stats "recomputed", the batch-norm
    statistics are first recomputed at the current weights (recompute_bn_statistics)."""
    if spec.eval_bn_stats == "recomputed":
        recompute_bn_statistics(model, ds.x)

    def split(x, y, taps):
        chunks = [(z, f, part) for (z, f), part in zip(forward_all(model, x, taps), y.split(EVAL_CHUNK))]
        return lambda: iter(chunks)

    return evaluate_splits(
        {"train": split(ds.x, ds.y, layers), "test": split(ds.x_test, ds.y_test, False)},
        model.classifier,
        ds.num_classes,
        lambda z, y: loss_fn(spec, z, y),
        ridge_lambda(spec),
    )


Chunks = Callable[[], Iterable[tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]]]


def evaluate_splits(
    splits: dict[str, Chunks],
    classifier: torch.nn.Linear,
    num_classes: int,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ridge: float,
) -> dict[str, float]:
    """One evaluation row, the measurement ncsim's trainer and ncsim.recorder share. For each split,
    `splits[split]()` yields one (logits, features, labels) triple per chunk of the split, each time
    the same samples in the same order, `features` mapping "penultimate" (and any layer tap) to the
    chunk's 2-D features. Per split: "<split>_loss" (`loss` of all the logits), "<split>_error", and
    the collapse metrics "<split>.<key>" of the penultimate features with the classifier's W and b and
    the ridge classifier of parameter `ridge`; the feature-only metrics "layer.<tap>.<key>" of every
    other tap at least C-1 wide. The metrics stream over the chunks
    (ncsim.metrics.collapse_metrics_streaming, float64), each pass asking `splits[split]()` again: no
    N x p matrix is built. Raises RunStopped: "diverged" for non-finite logits, loss or features,
    "degenerate" where the metrics are undefined, with what was measured before."""
    W = classifier.weight.detach()
    b = classifier.bias.detach() if classifier.bias is not None else None
    row = {}
    for split, chunks in splits.items():
        logits, labels, widths = [], [], {}
        for z, features, t in chunks():  # the features of a chunk are dropped as soon as it is read
            logits.append(z)
            labels.append(t)
            widths = widths or {name: f.flatten(1).shape[1] for name, f in features.items()}
        logits, y = torch.cat(logits), torch.cat(labels)
        row[f"{split}_loss"] = float(loss(logits, y))
        row[f"{split}_error"] = float((logits.argmax(1) != y).double().mean())
        if not torch.isfinite(logits).all():
            raise RunStopped("diverged", f"non-finite logits on the {split} set", row)
        where = "penultimate features"
        try:
            m = collapse_metrics_streaming(
                _float64(chunks, "penultimate"), W, b, num_classes, ridge=ridge, resolution=FLOAT32_RESOLUTION
            )
            row.update({f"{split}.{k}": v for k, v in m.items()})
            for tap, width in widths.items():
                if tap == "penultimate" or _too_narrow(width, num_classes):
                    continue
                where = f"features at {tap}"
                m = collapse_metrics_streaming(
                    _float64(chunks, tap), num_classes=num_classes, resolution=FLOAT32_RESOLUTION
                )
                row.update({f"layer.{tap}.{k}": v for k, v in m.items()})
        except NonFiniteError as e:
            raise RunStopped("diverged", f"non-finite {where} on the {split} set ({e})", row) from e
        except DegenerateFeaturesError as e:
            raise RunStopped("degenerate", f"{split} set: {e}", row) from e
    nonfinite = [k for k in row if k.endswith("_loss") and not math.isfinite(row[k])]
    if nonfinite:
        raise RunStopped("diverged", f"non-finite {' and '.join(nonfinite)}", row)
    return row


def ridge_lambda(spec: RunSpec) -> float:
    """lambda of the ridge classifier measured beside the network's (metrics.RIDGE_KEYS): the weight decay
    of the run's own objective on W, (1/N) sum ||W h + b - y||^2 + (wd/2) ||W||^2 (SGD's weight_decay wd is
    the gradient of (wd/2) ||W||^2), so that under MSE loss with the features fixed W_r is the classifier
    that minimises the run's loss (Han, Papyan & Donoho 2022's central path). The same lambda for every loss."""
    return spec.weight_decay / 2


def _float64(chunks: Chunks, name: str) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """The (features, labels) batches of one feature name for the streaming metrics, each pass
    converting a chunk's features (flattened to 2-D) to float64 as it comes."""
    return lambda: ((f[name].flatten(1).cpu().numpy().astype(np.float64), y.cpu().numpy()) for _, f, y in chunks())


def _too_narrow(width: int, num_classes: int) -> bool:
    """Fewer than C-1 features cannot hold a simplex of C class means: no layer metrics there."""
    return width < num_classes - 1


@dataclass
class History:
    """What the epoch loop measured: one row per evaluated epoch, the mean minibatch loss and the lr
    of every trained epoch, how the run ended, and the seconds spent training and evaluating."""

    rows: list[dict] = field(default_factory=list)
    fit_loss: list[float] = field(default_factory=list)
    fit_error: list[float] = field(default_factory=list)
    fit_lr: list[float] = field(default_factory=list)
    status: str = "ok"
    reason: str | None = None
    seconds: dict[str, float] = field(default_factory=lambda: {"fit": 0.0, "eval": 0.0})

    def in_terminal_phase(self, train_signals: int) -> bool:
        """The stable TPT's criterion (ncsim.trajectory.tpt_epoch) over the last two evaluations: zero
        train error at both, and in every training pass between them at most the fit error the stable
        TPT allows (one misclassified signal of `train_signals`)."""
        if len(self.rows) < 2:
            return False
        window = self.rows[-2:]
        epochs = [r["epoch"] for r in window]
        errors = [r.get("train_error", math.nan) for r in window]
        return tpt_epoch(epochs, errors, self.fit_error, fit_error_tolerance(train_signals)) == epochs[0]

    def stopped(self, epoch: int, stop: RunStopped) -> None:
        """The run stopped at `epoch`: its row holds what was measured, and the status says why."""
        self.rows.append({"epoch": epoch, **stop.measured})
        self.status, self.reason = stop.status, f"epoch {epoch}: {stop.reason}"

    @contextmanager
    def timed(self, phase: str):
        """Add the block's wall time to seconds[phase], even when it raises."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t0


def eval_epochs(spec: RunSpec) -> tuple[set[int], set[int]]:
    """The evaluated epochs, and those of them with the layer taps (none for layer_schedule "none")."""
    layer_at = set(schedule_epochs(spec.layer_schedule, spec.epochs)) if spec.layer_schedule != "none" else set()
    return set(schedule_epochs(spec.eval_schedule, spec.epochs)) | layer_at, layer_at


def run_epochs(spec: RunSpec, ds, model, opt, sched, gen, after_epoch=None) -> History:
    """Epoch 0 evaluates the initialisation; each later epoch is one fit_epoch and one lr-schedule
    step, then an evaluation if scheduled. With spec.freeze_at_tpt, every epoch after the first
    evaluation that finds the run in its terminal phase (History.in_terminal_phase) trains at learning
    rate 0 (recorded as 0 in fit_lr). A RunStopped ends the loop with a row for its epoch;
    `after_epoch(epoch, history)` is called after every epoch."""
    eval_at, layer_at = eval_epochs(spec)
    h = History()
    frozen = False  # spec.freeze_at_tpt, once the run is in its terminal phase (History.in_terminal_phase)
    for epoch in range(spec.epochs + 1):
        try:
            if epoch > 0:
                with h.timed("fit"):
                    h.fit_lr.append(0.0 if frozen else opt.param_groups[0]["lr"])
                    fit = fit_epoch(spec, model, opt, ds, gen, update=not frozen)
                    h.fit_loss.append(fit.loss)
                    h.fit_error.append(fit.error)
                    sched.step()
                if not math.isfinite(h.fit_loss[-1]):
                    raise RunStopped("diverged", f"training loss {h.fit_loss[-1]}")
            if epoch in eval_at:
                with h.timed("eval"):
                    h.rows.append({"epoch": epoch, **evaluate(spec, model, ds, layers=epoch in layer_at)})
                frozen = frozen or (spec.freeze_at_tpt and h.in_terminal_phase(len(ds.y)))
        except RunStopped as stop:
            h.stopped(epoch, stop)
        if after_epoch is not None:
            after_epoch(epoch, h)
        if h.status != "ok":
            break
    return h


def train(spec: RunSpec, cache_dir=None, progress: bool = False) -> Record:
    """Train `spec` from scratch and return its record (trajectory, final weights, timings)."""
    t_start = time.perf_counter()
    ds, model, opt, sched, gen = setup(spec, cache_dir)
    with _progress_bar(spec, progress) as show:
        history = run_epochs(spec, ds, model, opt, sched, gen, after_epoch=show)
    return _record(spec, ds, model, history, t_start)


def _record(spec: RunSpec, ds: data.Dataset, model, h: History, t_start: float) -> Record:
    """The run's store.Record: every trajectory column over the evaluated epochs (NaN where nothing
    was measured: layer metrics off the layer schedule, whatever a stopped run did not reach), the
    per-epoch fit loss and lr, the final weights, and meta (with "train_signals", N_train, which sets
    the stable TPT's tolerance: ncsim.trajectory.fit_error_tolerance)."""
    widths = _tap_widths(model, ds)
    taps = [name for name, p in widths if not _too_narrow(p, ds.num_classes)] if eval_epochs(spec)[1] else []
    arrays = column_arrays(h.rows, taps)
    arrays["fit_loss"] = np.asarray(h.fit_loss, dtype=np.float64)
    arrays["fit_error"] = np.asarray(h.fit_error, dtype=np.float64)
    arrays["fit_lr"] = np.asarray(h.fit_lr, dtype=np.float64)
    for name, tensor in model.state_dict().items():
        arrays[f"weights.{name}"] = tensor.detach().cpu().numpy()
    meta = {
        "spec": spec.to_dict(),
        "key": spec.key(),
        "label": spec.label(),
        "status": h.status,
        "status_reason": h.reason,
        "taps": taps,
        "skipped_taps": [f"{name} (p={p} < C-1)" for name, p in widths if _too_narrow(p, ds.num_classes)],
        "epochs_run": len(h.fit_loss),
        "train_signals": len(ds.y),
        "timings": {
            "total_s": time.perf_counter() - t_start,
            "fit_s": h.seconds["fit"],
            "eval_s": h.seconds["eval"],
            "threads": torch.get_num_threads(),
        },
        "versions": versions(),
        "trainer_version": TRAINER_VERSION,
        "precision": precision_meta(spec),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return Record(key=spec.key(), meta=meta, arrays=arrays)


def precision_meta(spec: RunSpec) -> dict:
    """Which arithmetic trained the run (meta["precision"]): the spec's precision, torch's CPU kernel
    level (torch.backends.cpu.get_cpu_capability: "AVX512", "AVX2", ...), and whether the CPU has the
    AVX-512 BF16 and AMX tile instructions that make bf16 convolutions native. Without them a
    "bf16-mixed" run still trains (oneDNN emulates bf16 by conversion) with the same rounding, only
    without the speed."""
    cpu = getattr(torch, "cpu", None)

    def has(name: str) -> bool | None:  # torch.cpu's feature probes are private: None where absent
        probe = getattr(cpu, name, None)
        return bool(probe()) if callable(probe) else None

    return {
        "precision": spec.precision,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": has("_is_avx512_bf16_supported"),
        "amx_tile": has("_is_amx_tile_supported"),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    import mnist1d  # noqa: F401

    return {
        "ncsim": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "mnist1d": version("mnist1d"),
        "python": platform.python_version(),
    }


def _tap_widths(model, ds: data.Dataset) -> list[tuple[str, int]]:
    """Each layer tap's feature count (the penultimate layer is not a tap), from a forward pass on
    two signals."""
    [(_, feats)] = forward_all(model, ds.x[:2], taps=True)
    return [(name, f.shape[1]) for name, f in feats.items() if name != "penultimate"]


@contextmanager
def _progress_bar(spec: RunSpec, enabled: bool):
    """A tqdm bar over the epochs showing the last fit loss, train error and NC1; yields run_epochs'
    `after_epoch` callback (None when disabled)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=spec.epochs, desc=spec.label(), unit="ep", leave=False)

    def show(epoch: int, h: History) -> None:
        last, nan = (h.rows[-1] if h.rows else {}), float("nan")
        bar.update(1 if epoch else 0)
        bar.set_postfix(
            loss=f"{h.fit_loss[-1] if h.fit_loss else nan:.3g}",
            err=f"{last.get('train_error', nan):.4f}",
            nc1=f"{last.get('train.nc1', nan):.3g}",
        )

    try:
        yield show
    finally:
        bar.close()
