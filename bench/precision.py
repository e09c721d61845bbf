"""Seconds per training epoch of the default run by precision, and of several seeds trained in lockstep,
all timed alternately in one process on one thread; peak memory of a training process.

    python bench/precision.py [--epochs 5] [--seeds 5] [--rss-epochs 4]

Prints, per way of training one epoch of the default run (`suite.config("standard", 0)`):
- "149bcf5": the float32 trainer of commit 149bcf5, whose training code is this trainer's "fp32"
  (bit-identical trajectories) but for the C allocator, left at glibc's defaults (its dynamic mmap
  threshold) instead of ncsim.threads.keep_freed_memory;
- "fp32": this trainer, precision "fp32";
- "bf16-mixed": this trainer, precision "bf16-mixed" (bf16 convolutions, float32 elsewhere);
- "lockstep fp32" / "lockstep bf16": a prototype of S seeds trained as one grouped network (grouped
  convolutions, batch norm per channel = per seed, batched matmuls for the linear layers, each seed's
  minibatch on its own channel group), seconds per epoch divided by S: what a lockstep trainer could gain
  at best, since it times the network alone (no per-seed bookkeeping, evaluation or record);
each way in a process of its own (the C allocator's state is per process), one epoch of each in turn:
the best of `--epochs` epochs, the speed-up over 149bcf5 against the target (>= 2.5x), the minor page
faults per epoch, and GFLOP/s (FLOPs of one epoch by torch's FlopCounterMode) against a 2048 x 2048
matmul of the same process in float32 and in bf16. Last, the peak resident memory of a process that
trains the default run for `--rss-epochs` epochs with its scheduled evaluations (target < 2 GiB; the
peak is reached by the first evaluation with layer taps, epoch 1).

The CPU's bf16 support decides what bf16 can gain: the printout's first lines say whether it has AVX-512
BF16 and AMX (torch.cpu's probes; each run's record says the same in meta["precision"]). Without them
oneDNN still computes bf16 convolutions, by conversion, with the same rounding and without the speed.
Epochs are timed in CPU seconds of their process (one thread: the work, without the waits for a core
of a shared machine), and so are the matmuls. Compare the ratios, measured in one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from train import epoch_flops, matmul_gflops  # bench/train.py, beside this script

from ncsim import data, models, suite, train
from ncsim.threads import keep_freed_memory, limit_threads

TARGET = 2.5


class Lockstep:
    """S copies of the default network (cnn1d-seed) as one grouped network: channel c of seed s is
    channel s C + c of each convolution (groups = S), batch norm per channel is per seed, the linear
    layers are batched matmuls (S, N, in) @ (S, in, out). SGD with momentum and weight decay is
    per-parameter, so it is S independent SGDs. Initialisation is random, not each seed's: the timing
    does not depend on the values."""

    def __init__(self, spec, seeds: int, num_classes: int, dtype: torch.dtype):
        s, w, self.seeds, self.dtype = seeds, spec.width or 64, seeds, dtype
        self.convs = [
            (c_in, c_out, k, pool)
            for c_in, c_out, k, pool in (
                (1, w, 7, True),
                (w, 2 * w, 5, True),
                (2 * w, 4 * w, 3, False),
                (4 * w, 4 * w, 3, False),
            )
        ]
        self.weights = [
            (torch.randn(s * c_out, c_in, 1, k) / (c_in * k) ** 0.5)
            .contiguous(memory_format=torch.channels_last)
            .requires_grad_()
            for c_in, c_out, k, _ in self.convs
        ]
        self.norms = [torch.nn.BatchNorm1d(s * c) for c in (w, 2 * w, 4 * w, 4 * w, 4 * w)]  # 4 convs, hidden
        self.hidden = (torch.randn(s, 16 * w, 4 * w) / (16 * w) ** 0.5).requires_grad_()
        self.classifier = (torch.randn(s, 4 * w, num_classes) / (4 * w) ** 0.5).requires_grad_()
        self.bias = torch.zeros(s, 1, num_classes, requires_grad=True)
        self.pool = models.AdaptiveAvgPool(4)
        params = [
            *self.weights,
            *(p for n in self.norms for p in n.parameters()),
            self.hidden,
            self.classifier,
            self.bias,
        ]
        self.opt = torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L, S), seed s's minibatch in channel s; the logits (S, N, C)."""
        n, s, low = x.shape[0], self.seeds, self.dtype
        h = x
        for (_, _, k, pool), weight, norm in zip(self.convs, self.weights, self.norms):
            y = F.conv2d(h.to(low).transpose(1, 2).unsqueeze(2), weight.to(low), padding=(0, k // 2), groups=s)
            y = y.squeeze(2).transpose(1, 2).contiguous().float()
            length, c = y.shape[1:]
            y = norm(y.view(n * length, c)).view(n, length, c)
            h = models.relu_maxpool2(y) if pool else F.relu(y)
        h = self.pool(h).view(n, s, -1).transpose(0, 1)  # channel-major flattening is seed-major
        z = torch.bmm(h, self.hidden)
        z = F.relu(self.norms[-1](z.transpose(0, 1).reshape(n, -1))).view(n, s, -1).transpose(0, 1)
        return torch.baddbmm(self.bias, z, self.classifier)

    def fit_epoch(self, spec, ds: data.Dataset, gen: torch.Generator) -> None:
        """One epoch: each seed its own shuffle of the train set; the sum of the seeds' mean losses."""
        perms = torch.stack([torch.randperm(len(ds.x), generator=gen) for _ in range(self.seeds)], 1)
        signals = ds.x[:, 0]
        for i in range(0, len(perms), spec.batch_size):
            idx = perms[i : i + spec.batch_size]  # (N, S)
            self.opt.zero_grad(set_to_none=True)
            logits = self.forward(signals[idx].transpose(1, 2).contiguous())
            loss = F.cross_entropy(logits.flatten(0, 1), ds.y[idx].T.flatten(), reduction="sum") / len(idx)
            loss.backward()
            self.opt.step()


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


WAYS = ("149bcf5", "fp32", "bf16-mixed", "lockstep fp32", "lockstep bf16")


def fit_function(name: str, seeds: int):
    """(seeds per epoch, a function that trains one epoch) of a way of training (WAYS), set up in this
    process; the 149bcf5 way leaves glibc's allocator at its defaults, the others keep freed memory
    (ncsim.threads.keep_freed_memory), as the trainer does."""
    spec = suite.config("standard", 0)
    if name == "149bcf5":
        train.keep_freed_memory = lambda: False  # glibc's allocator as it comes, as 149bcf5 left it
    else:
        keep_freed_memory()
    ds = data.load(spec)
    if name.startswith("lockstep"):
        net = Lockstep(spec, seeds, ds.num_classes, torch.bfloat16 if name.endswith("bf16") else torch.float32)
        gen = torch.Generator().manual_seed(0)
        return seeds, lambda: net.fit_epoch(spec, ds, gen)
    spec = spec.replace(precision="bf16-mixed" if name == "bf16-mixed" else "fp32")
    _, model, opt, _, gen = train.setup(spec)
    return 1, lambda: train.fit_epoch(spec, model, opt, ds, gen)


def worker(name: str, seeds: int) -> None:
    """One way of training in a process of its own (glibc's heap keeps the state other ways leave):
    warm up, then one epoch per line read, answering "<seconds per seed> <page faults per seed>": CPU
    seconds of the process (one thread), which time spent waiting for a core on a shared machine does
    not inflate, unlike wall time."""
    torch.set_num_threads(1)
    per, fit = fit_function(name, seeds)
    fit()
    print("ready", flush=True)
    for _ in sys.stdin:
        f0, t0 = minor_faults(), time.process_time()
        fit()
        print((time.process_time() - t0) / per, (minor_faults() - f0) / per, flush=True)


def epoch_seconds(epochs: int, seeds: int) -> dict[str, tuple[float, float]]:
    """(best seconds per epoch per seed, mean minor page faults per epoch per seed) of each way of
    training, each in a process of its own (worker), timed alternately: one epoch of each in turn."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--seeds", str(seeds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in WAYS
    }
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"
    best, faults = dict.fromkeys(WAYS, float("inf")), dict.fromkeys(WAYS, 0.0)
    for _ in range(epochs):
        for name, p in procs.items():
            p.stdin.write("\n")
            p.stdin.flush()
            seconds, f = map(float, p.stdout.readline().split())
            best[name], faults[name] = min(best[name], seconds), faults[name] + f / epochs
    for p in procs.values():
        p.stdin.close()
        p.wait()
    return {name: (best[name], faults[name]) for name in WAYS}


RSS_SCRIPT = """
import resource, sys
from ncsim import suite, train
from ncsim.threads import set_threads
set_threads(1)
train.train(suite.config("standard", 0).replace(epochs=int(sys.argv[1]), precision=sys.argv[2]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(epochs: int, precision: str) -> float:
    """Peak resident memory (MiB) of a fresh process that trains the default run for `epochs` epochs."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(epochs), precision], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per way of training (best of)")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the lockstep prototype")
    p.add_argument("--rss-epochs", type=int, default=4, help="epochs of the process whose peak memory is measured")
    p.add_argument("--worker", choices=WAYS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.seeds)

    spec = suite.config("standard", 0)
    probes = {name: getattr(torch.cpu, f"_is_{name}_supported", lambda: None)() for name in ("avx512_bf16", "amx_tile")}
    print(
        f"config standard: {spec.model} width {spec.width}, batch {spec.batch_size}; cores {os.cpu_count()}, "
        f"load {os.getloadavg()[0]:.1f}; torch {torch.__version__}, CPU kernels "
        f"{torch.backends.cpu.get_cpu_capability()}, AVX-512 BF16 {probes['avx512_bf16']}, AMX {probes['amx_tile']}"
    )
    with limit_threads(1):
        flops = epoch_flops(spec, data.load(spec))
        rates = {
            name: matmul_gflops(dtype=dtype, clock=time.process_time)
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
        }
        times = epoch_seconds(args.epochs, args.seeds)
    print(
        f"1 thread: {flops / 1e9:.1f} GFLOP per epoch; 2048 x 2048 matmul {rates['fp32']:.0f} GFLOP/s float32, "
        f"{rates['bf16']:.0f} GFLOP/s bf16\n"
    )
    base = times["149bcf5"][0]
    print(
        f"{'training':<16}{'s/epoch':>9}{'speed-up':>10}{'faults':>8}{'GFLOP/s':>9}{'of fp32 mm':>11}{'of bf16 mm':>11}"
    )
    for name, (seconds, faults) in times.items():
        rate = flops / seconds / 1e9
        print(
            f"{name:<16}{seconds:>9.3f}{base / seconds:>9.2f}x{faults:>8.0f}{rate:>9.1f}"
            f"{rate / rates['fp32']:>11.0%}{rate / rates['bf16']:>11.0%}"
        )
    best = min(times, key=lambda k: times[k][0])
    ratio = base / times[best][0]
    print(
        f"target: an epoch >= {TARGET}x faster than 149bcf5: {'met' if ratio >= TARGET else 'not met'} "
        f"(best {ratio:.2f}x, {best}); lockstep rows are per seed, {args.seeds} seeds in one grouped network"
    )
    print(
        "faults: minor page faults per epoch (per seed); of fp32 mm / of bf16 mm: the GFLOP/s over the "
        "matmul's of the same dtype family\n"
    )
    for precision in ("fp32", "bf16-mixed"):
        rss = peak_rss_mib(args.rss_epochs, precision)
        print(
            f"peak resident memory, the default run for {args.rss_epochs} epochs at {precision}: {rss:.0f} MiB "
            f"(target < 2048 MiB: {'met' if rss < 2048 else 'not met'})"
        )


if __name__ == "__main__":
    main()
