"""Train one RunSpec and record its Neural Collapse trajectory.

At every epoch of `spec.eval_schedule` (epoch 0 = initialisation always), in eval mode on the full
train set and separately on the test set: loss, error, and all of `collapse_metrics` on the
penultimate features with the classifier's W and b. At every epoch of `spec.layer_schedule`, the
feature-only metrics at every layer tap on the train set (a tap with fewer than C-1 features cannot
hold a simplex and is skipped: meta["skipped_taps"]). The TPT epoch (Papyan et al. 2020) is the
first evaluated epoch whose full train-set error in eval mode is exactly 0. A run whose loss turns NaN
or inf stops and its record says so (status "diverged"), as does one whose features die so that the
metrics are undefined (status "degenerate", e.g. all class means equal); meta["status_reason"] says
where. The result is a store.Record; nothing here plots or caches.
"""

from __future__ import annotations

import math
import platform
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from ncsim import __version__, data, models
from ncsim.metrics import DegenerateFeaturesError, collapse_metrics
from ncsim.spec import RunSpec, schedule_epochs
from ncsim.store import Record

LAYER_KEYS = ("nc1", "nc1_trace", "cdnv", "nc2_equinorm", "nc2_equiangularity", "nc2_maxangle",
              "nc2_etf_distance", "ncc_error")
EVAL_CHUNK = 2000


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads, restoring the previous count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def loss_fn(spec: RunSpec, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy, or for "mse" the per-sample squared error to the one-hot target summed over
    classes and averaged over samples (Han et al. 2022)."""
    if spec.loss == "ce":
        return F.cross_entropy(logits, y)
    onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    return ((logits - onehot) ** 2).sum(1).mean()


def make_optimizer(spec: RunSpec, params) -> torch.optim.Optimizer:
    params = list(params)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                               weight_decay=spec.weight_decay)
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    # LBFGS has no weight_decay argument: the L2 term is added to the loss in the closure.
    return torch.optim.LBFGS(params, lr=spec.lr, max_iter=1, history_size=10, line_search_fn="strong_wolfe")


def make_scheduler(spec: RunSpec, opt: torch.optim.Optimizer):
    """Per-epoch lr schedule: constant; multistep x0.1 at 1/3 and 2/3 of training (Papyan et al.);
    cosine annealing to 0."""
    if spec.schedule == "multistep":
        m = sorted({max(1, spec.epochs // 3), max(1, 2 * spec.epochs // 3)})
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=m, gamma=0.1)
    if spec.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.epochs)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@torch.no_grad()
def forward_all(model, x: torch.Tensor, taps: bool):
    """Eval-mode forward over a whole split in chunks: logits and, with taps, each tap's 2-D features."""
    model.eval()
    logits, feats = [], defaultdict(list)
    for i in range(0, len(x), EVAL_CHUNK):
        z, outs = model(x[i:i + EVAL_CHUNK], taps=True)
        logits.append(z)
        chosen = models.tap_features(outs) if taps else {"penultimate": outs["penultimate"]}
        for k, v in chosen.items():
            feats[k].append(v)
    return torch.cat(logits), {k: torch.cat(v) for k, v in feats.items()}


def evaluate(spec: RunSpec, model, ds: data.Dataset, layers: bool) -> dict[str, float]:
    """One evaluation row: loss, error and penultimate collapse metrics on train and test; with
    `layers`, the feature-only metrics at every tap (train set)."""
    W = model.classifier.weight.detach()
    b = model.classifier.bias.detach()
    row = {}
    for split, x, y in (("train", ds.x, ds.y), ("test", ds.x_test, ds.y_test)):
        logits, feats = forward_all(model, x, taps=layers and split == "train")
        row[f"{split}_loss"] = float(loss_fn(spec, logits, y))
        row[f"{split}_error"] = float((logits.argmax(1) != y).double().mean())
        if not all(torch.isfinite(f).all() for f in feats.values()):
            return {**row, "nonfinite": 1.0}
        try:
            m = collapse_metrics(feats.pop("penultimate"), y, W, b, ds.num_classes)
            row.update({f"{split}.{k}": v for k, v in m.items()})
            for tap, f in feats.items():
                if f.shape[1] < ds.num_classes - 1:  # too narrow to hold a simplex: see skipped_taps
                    continue
                m = collapse_metrics(f, y, num_classes=ds.num_classes)
                row.update({f"layer.{tap}.{k}": m[k] for k in LAYER_KEYS})
        except DegenerateFeaturesError as e:
            return {**row, "degenerate": f"{split}: {e}"}
    return row


def _fit_epoch(spec, model, opt, ds, gen) -> float:
    """One pass over the shuffled train set; returns the mean minibatch loss."""
    model.train()
    perm = torch.randperm(len(ds.x), generator=gen)
    total, n = 0.0, 0
    params = [p for p in model.parameters() if p.requires_grad]
    for i in range(0, len(perm), spec.batch_size):
        idx = perm[i:i + spec.batch_size]
        xb, yb = ds.x[idx], ds.y[idx]

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(spec, model(xb), yb)
            if spec.optimizer == "lbfgs" and spec.weight_decay:
                loss = loss + 0.5 * spec.weight_decay * sum((p * p).sum() for p in params)
            loss.backward()
            if spec.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
            return loss

        if spec.optimizer == "lbfgs":
            # The line search evaluates the closure at trial points, each of which would move the
            # batch-norm running statistics; keep one update per step, at the accepted point.
            buffers = [b.clone() for b in model.buffers()]
            loss = opt.step(closure)
            with torch.no_grad():
                for b, saved in zip(model.buffers(), buffers):
                    b.copy_(saved)
                model(xb)
        else:
            loss = closure()
            opt.step()
        total += float(loss.detach()) * len(idx)
        n += len(idx)
    return total / n


def versions() -> dict[str, str]:
    import mnist1d  # noqa: F401
    from importlib.metadata import version

    return {"ncsim": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "mnist1d": version("mnist1d"), "python": platform.python_version()}


def train(spec: RunSpec, cache_dir=None, progress: bool = False) -> Record:
    """Train `spec` from scratch and return its record (trajectory, final weights, timings)."""
    t_start = time.perf_counter()
    device = torch.device(spec.device)
    ds = data.load(spec, cache_dir)
    ds = data.Dataset(*(t.to(device) for t in (ds.x, ds.y, ds.x_test, ds.y_test)), ds.num_classes)
    torch.manual_seed(spec.seed)
    model = models.build(spec, ds.num_classes).to(device)
    opt = make_optimizer(spec, model.parameters())
    sched = make_scheduler(spec, opt)
    gen = torch.Generator().manual_seed(spec.seed + 1_000_003)
    eval_at = set(schedule_epochs(spec.eval_schedule, spec.epochs))
    layer_at = set(schedule_epochs(spec.layer_schedule, spec.epochs)) if spec.layer_schedule != "none" else set()
    eval_at |= layer_at

    rows, fit_loss, lrs = [], [], []
    status, reason, t_fit, t_eval = "ok", None, 0.0, 0.0
    bar = _progress(spec, progress)
    for epoch in range(spec.epochs + 1):
        if epoch > 0:
            t0 = time.perf_counter()
            lrs.append(opt.param_groups[0]["lr"])
            fit_loss.append(_fit_epoch(spec, model, opt, ds, gen))
            sched.step()
            t_fit += time.perf_counter() - t0
            if not math.isfinite(fit_loss[-1]):
                status, reason = "diverged", f"epoch {epoch}: training loss {fit_loss[-1]}"
        if epoch in eval_at or status != "ok":
            t0 = time.perf_counter()
            row = evaluate(spec, model, ds, layers=epoch in layer_at) if status == "ok" else {}
            t_eval += time.perf_counter() - t0
            if row.pop("nonfinite", 0.0) or not all(math.isfinite(row.get(k, 0.0)) for k in ("train_loss", "test_loss")):
                status, reason = "diverged", reason or f"epoch {epoch}: non-finite loss or features in evaluation"
            if "degenerate" in row:
                status, reason = "degenerate", f"epoch {epoch}, {row.pop('degenerate')}"
            rows.append({"epoch": epoch, **row})
        if bar is not None:
            bar.update(1 if epoch else 0)
            last = rows[-1] if rows else {}
            bar.set_postfix(loss=f"{fit_loss[-1] if fit_loss else float('nan'):.3g}",
                            err=f"{last.get('train_error', float('nan')):.4f}",
                            nc1=f"{last.get('train.nc1', float('nan')):.3g}")
        if status != "ok":
            break
    if bar is not None:
        bar.close()

    arrays = _columns(rows)
    arrays["fit_loss"] = np.asarray(fit_loss, dtype=np.float64)
    arrays["fit_lr"] = np.asarray(lrs, dtype=np.float64)
    for name, tensor in model.state_dict().items():
        arrays[f"weights.{name}"] = tensor.detach().cpu().numpy()
    err = arrays.get("train_error", np.array([]))
    zero = np.flatnonzero(err == 0.0)
    taps = list(dict.fromkeys(k[len("layer."):].rsplit(".", 1)[0] for r in rows for k in r if k.startswith("layer.")))
    skipped = [f"{name} (p={p} < C-1)" for name, p in _tap_widths(model, ds) if p < ds.num_classes - 1]
    meta = {
        "spec": spec.to_dict(), "key": spec.key(), "label": spec.label(), "status": status, "status_reason": reason, "taps": taps,
        "skipped_taps": skipped,
        "epochs_run": len(fit_loss), "tpt_epoch": int(arrays["epoch"][zero[0]]) if len(zero) else None,
        "timings": {"total_s": time.perf_counter() - t_start, "fit_s": t_fit, "eval_s": t_eval,
                    "threads": torch.get_num_threads()},
        "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return Record(key=spec.key(), meta=meta, arrays=arrays)


def _tap_widths(model, ds: data.Dataset) -> list[tuple[str, int]]:
    """Each layer tap's feature count, from a forward pass on two signals."""
    _, feats = forward_all(model, ds.x[:2], taps=True)
    return [(name, f.shape[1]) for name, f in feats.items()]


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows -> float64 columns over evaluated epochs; a key missing in a row (layer metrics off the
    layer schedule) is NaN there."""
    keys = sorted({k for r in rows for k in r})
    return {k: np.asarray([r.get(k, np.nan) for r in rows], dtype=np.float64) for k in keys}


def _progress(spec: RunSpec, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=spec.epochs, desc=spec.label(), unit="ep", leave=False)
