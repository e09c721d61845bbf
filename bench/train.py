"""Training throughput of the default run, against the same network computed layer by layer and
against a matmul, all measured in the same process.

    python bench/train.py [--epochs 3] [--threads 1,2]

Prints
- per layer type, the share of one training epoch (one thread, torch.profiler self time of each op)
  before (models.reference_forward: torch.nn's layers one by one on (N, C, L) tensors, the plain
  forward the channels-last one must beat) and after (the model's channels-last forward); target: layers
  other than convolutions and the linear layers at most 25% of an epoch;
- per thread count (torch and BLAS: ncsim.threads.limit_threads): seconds per training epoch before
  and after and their ratio (target >= 1.3x), GFLOP/s (the FLOPs of one epoch counted by torch's
  FlopCounterMode) against a 2048 x 2048 float32 matmul, and the cost of the evaluations (train and
  test forward passes and every metric, with and without the layer taps) over the default schedule as
  a share of its training time (target <= 15%).
The machine is shared: compare the ratios, measured in one run, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from timing import best_of  # bench/timing.py, beside this script

from ncsim import data, models, suite, train
from ncsim.threads import limit_threads


def matmul_gflops(n: int = 2048, reps: int = 10, dtype: torch.dtype = torch.float32, clock=time.perf_counter) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = clock()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (clock() - t) / 1e9


def epoch_flops(spec, ds) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = models.build(spec, ds.num_classes).train()
    counter = FlopCounterMode(display=False)
    with counter:
        for i in range(0, len(ds.x), spec.batch_size):
            train.loss_fn(spec, model(ds.x[i : i + spec.batch_size]), ds.y[i : i + spec.batch_size]).backward()
    return float(counter.get_total_flops())


# Layer type of each profiled op (torch.profiler names), for the per-layer-type shares of an epoch.
LAYER_TYPES = {
    "convolution": ("convolution", "conv2d", "conv1d"),
    "linear": ("addmm", "aten::mm", "aten::linear"),
    "batch norm": ("batch_norm",),
    "pooling": (
        "pool",
        "bmm",
        "maximum",
        "relumaxpool",
        "aten::stack",
        "aten::cat",
        "aten::ge",
        "aten::gt",
        "bitwise_and",
    ),
    "relu": ("relu", "clamp_min", "threshold_backward"),
}


def layer_type(op: str) -> str:
    name = op.lower()
    return next((kind for kind, marks in LAYER_TYPES.items() if any(m in name for m in marks)), "other")


def setup(spec, reference: bool):
    """train.setup's (ds, model, opt, sched, gen), the model computed layer by layer with `reference`."""
    run = train.setup(spec)
    if reference:
        model = run[1]
        model.forward = lambda x, taps=False: models.reference_forward(model, x)
    return run


def epoch_profile(spec, reference: bool) -> dict[str, float]:
    """Share of one training epoch (self CPU time, one thread) by layer type; "other" is the optimizer,
    the loss, batching and autograd bookkeeping."""
    from torch.profiler import ProfilerActivity, profile

    ds, model, opt, _, gen = setup(spec, reference)
    train.fit_epoch(spec, model, opt, ds, gen)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train.fit_epoch(spec, model, opt, ds, gen)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    shares = dict.fromkeys([*LAYER_TYPES, "other"], 0.0)
    for e in events:
        shares[layer_type(e.key)] += e.self_cpu_time_total / total
    return shares


def fit_seconds(spec, epochs: int) -> tuple[float, float]:
    """The best of `epochs` training epochs, layer by layer (before) and channels-last (after), timed
    alternately so that a change in the machine's load hits both alike."""
    before, after = setup(spec, True), setup(spec, False)
    best = {}
    for name, (ds, net, opt, _, gen) in (("before", before), ("after", after)):
        train.fit_epoch(spec, net, opt, ds, gen)  # warm-up
        best[name] = float("inf")
    for _ in range(epochs):
        for name, (ds, net, opt, _, gen) in (("before", before), ("after", after)):
            best[name] = min(best[name], best_of(lambda: train.fit_epoch(spec, net, opt, ds, gen), 1)[0])
    return best["before"], best["after"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="timed training epochs per thread count and forward (best of)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--config", default="standard", help="a suite configuration name")
    args = p.parse_args()

    spec = suite.config(args.config, 0)
    ds = data.load(spec)
    flops = epoch_flops(spec, ds)
    print(
        f"config {args.config}: {spec.model} width {spec.width or 'default'}, batch {spec.batch_size}; "
        f"{flops / 1e9:.1f} GFLOP per training epoch; cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    eval_at, layer_at = train.eval_epochs(spec)
    n_eval, n_layer = len(eval_at), len(layer_at)
    print(
        f"schedule: {n_eval} evaluations ({spec.eval_schedule}), {n_layer} with layer taps ({spec.layer_schedule}) "
        f"over {spec.epochs} epochs"
    )

    with limit_threads(1):
        before, after = epoch_profile(spec, reference=True), epoch_profile(spec, reference=False)
    print("\nshare of one training epoch by layer type (1 thread, profiler self time)")
    print(f"{'layer type':<16}{'before':>8}{'after':>8}")
    for kind in before:
        print(f"{kind:<16}{before[kind]:>8.0%}{after[kind]:>8.0%}")
    rest = [k for k in before if k not in ("convolution", "linear", "other")]
    others = sum(before[k] for k in rest), sum(after[k] for k in rest)
    print(
        f"{'layers other than convolutions and linear':<42}{others[0]:>6.0%} -> {others[1]:.0%} "
        f"(target <= 25%: {'met' if others[1] <= 0.25 else 'not met'})"
    )

    print(
        f"\n{'threads':>7} {'before s':>9} {'after s':>8} {'speed-up':>9} {'GFLOP/s':>8} {'matmul':>8} "
        f"{'ratio':>6} {'eval s':>7} {'+layers s':>9} {'per eval':>9} {'schedule':>9}"
    )
    for threads in [int(t) for t in args.threads.split(",")]:
        with limit_threads(threads):
            old, fit = fit_seconds(spec, args.epochs)
            ds, model, *_ = train.setup(spec)
            mm = matmul_gflops()
            ev, _ = best_of(lambda: train.evaluate(spec, model, ds, layers=False))
            evl, _ = best_of(lambda: train.evaluate(spec, model, ds, layers=True), 2)
        share = ((n_eval - n_layer) * ev + n_layer * evl) / (spec.epochs * fit)
        print(
            f"{threads:>7} {old:>9.3f} {fit:>8.3f} {old / fit:>8.2f}x {flops / fit / 1e9:>8.1f} {mm:>8.1f} "
            f"{flops / fit / 1e9 / mm:>6.0%} {ev:>7.3f} {evl:>9.3f} {ev / fit:>9.0%} {share:>9.0%}"
        )
    print(
        "before / after: seconds per training epoch, layer by layer / channels-last forward (target: "
        "speed-up >= 1.3x); ratio: the after GFLOP/s over the matmul's; per eval: one evaluation "
        "(train + test forward, all metrics) over one training epoch; schedule: all evaluations of the "
        "run over all its training (target <= 15%)"
    )


if __name__ == "__main__":
    main()
