"""Training throughput of the default run, against a matmul measured in the same process.

    python bench/train.py [--epochs 3] [--threads 1,2]

Prints, per thread count (torch and BLAS: ncsim.threads.limit_threads): the FLOPs of one training
epoch (counted by torch's FlopCounterMode over a forward and backward of every minibatch), the
seconds per epoch and GFLOP/s, the GFLOP/s of a 2048 x 2048 float32 matmul in the same process,
their ratio (target >= 70%), and the cost of the per-epoch evaluation (train and test forward
passes and every metric, with and without the layer taps) as a share of one training epoch (target
<= 15%). Figures are measured in one run; the machine is shared, so compare ratios, not absolute
times.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ncsim import data, models, suite, train
from ncsim.threads import limit_threads

from timing import best_of  # bench/timing.py, beside this script


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def epoch_flops(spec, ds) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = models.build(spec, ds.num_classes).train()
    counter = FlopCounterMode(display=False)
    with counter:
        for i in range(0, len(ds.x), spec.batch_size):
            train.loss_fn(spec, model(ds.x[i:i + spec.batch_size]), ds.y[i:i + spec.batch_size]).backward()
    return float(counter.get_total_flops())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3, help="timed training epochs per thread count (best of)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--config", default="standard", help="a suite configuration name")
    args = p.parse_args()

    spec = suite.config(args.config, 0)
    ds = data.load(spec)
    flops = epoch_flops(spec, ds)
    print(f"config {args.config}: {spec.model} width {spec.width or 'default'}, batch {spec.batch_size}; "
          f"{flops / 1e9:.1f} GFLOP per training epoch; cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    eval_at, layer_at = train.eval_epochs(spec)
    n_eval, n_layer = len(eval_at), len(layer_at)
    print(f"schedule: {n_eval} evaluations ({spec.eval_schedule}), {n_layer} with layer taps ({spec.layer_schedule}) "
          f"over {spec.epochs} epochs")
    print(f"{'threads':>7} {'s/epoch':>8} {'GFLOP/s':>8} {'matmul':>8} {'ratio':>6} {'eval s':>7} "
          f"{'+layers s':>9} {'per eval':>9} {'schedule':>9}")
    for threads in [int(t) for t in args.threads.split(",")]:
        with limit_threads(threads):
            ds, model, opt, _, gen = train.setup(spec)
            train.fit_epoch(spec, model, opt, ds, gen)  # warm-up
            fit, _ = best_of(lambda: train.fit_epoch(spec, model, opt, ds, gen), args.epochs)
            mm = matmul_gflops()
            ev, _ = best_of(lambda: train.evaluate(spec, model, ds, layers=False))
            evl, _ = best_of(lambda: train.evaluate(spec, model, ds, layers=True), 2)
        share = ((n_eval - n_layer) * ev + n_layer * evl) / (spec.epochs * fit)
        print(f"{threads:>7} {fit:>8.3f} {flops / fit / 1e9:>8.1f} {mm:>8.1f} {flops / fit / 1e9 / mm:>6.0%} "
              f"{ev:>7.3f} {evl:>9.3f} {ev / fit:>9.0%} {share:>9.0%}")
    print("per eval: one evaluation (train + test forward, all metrics) / one training epoch; schedule: all "
          "evaluations of the run / all its training. Targets: training >= 70% of the matmul rate; "
          "evaluation <= 15% of training time")


if __name__ == "__main__":
    main()
