"""The claims on a network and data no one here wrote: scikit-learn's bundled 8x8 digits
(sklearn.datasets.load_digits, 1797 images of 10 classes, no download) and a small MLP, trained by a
plain PyTorch loop that ncsim.Recorder watches (docs/own-network.md).

    python examples/digits.py --seeds 0-4 --cache-dir /tmp/digits-runs
    pytest claims --runs digits-mlp --compare no-wd=digits-mlp-nowd --seeds 0,1,2,3,4 --cache-dir /tmp/digits-runs
    python examples/digits.py --seeds 0-4 --cache-dir /tmp/digits-runs --claims /tmp/digits-reports

records, for every seed, the MLP trained with weight decay as "digits-mlp" and the same network
trained without it as "digits-mlp-nowd" (the suite's no-wd configuration for --compare). A seed
sets the initialisation and the minibatch order; the train/test split is fixed (stratified, 80/20,
random_state 0), the pixels standardised with the train set's mean and deviation. One run takes
seconds on one thread. With --claims DIR the example then runs the claims on the runs with weight
decay (the no-wd comparisons against those without) and on the runs without it alone, and prints the
findings side by side as a Markdown table (docs/own-network.md shows its output).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ncsim
from ncsim.recorder import AlreadyRecorded
from ncsim.suite import parse_seed_list
from ncsim.threads import set_threads

CLASSES = 10
PIXELS = 64
REPO = Path(__file__).resolve().parents[1]  # the claims are this repository's claims/


class MLP(nn.Module):
    """64 pixels -> `depth` hidden layers of `width` (Linear, BatchNorm, ReLU) -> Linear to 10 classes.
    `body` ends in the penultimate features h; `head` is the classifier W h + b."""

    def __init__(self, width: int = 128, depth: int = 3):
        super().__init__()
        layers = []
        for i in range(depth):
            layers += [nn.Linear(PIXELS if i == 0 else width, width), nn.BatchNorm1d(width), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, CLASSES)

    def hidden(self) -> list[str]:
        """The module names of the hidden layers' outputs before the last (the layer taps)."""
        return [f"body.{3 * i + 2}" for i in range(len(self.body) // 3 - 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def digits() -> tuple[TensorDataset, TensorDataset]:
    """The train and test sets: a fixed stratified 80/20 split, pixels standardised on the train set."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    mean, std = x_train.mean(0), x_train.std(0) + 1.0  # +1: constant border pixels have std 0

    def tensors(a, b):
        return TensorDataset(torch.tensor((a - mean) / std, dtype=torch.float32), torch.tensor(b, dtype=torch.long))

    return tensors(x_train, y_train), tensors(x_test, y_test)


def in_batches(dataset: TensorDataset, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The dataset as a list of (x, y) batches in order: a re-iterable loader without DataLoader's
    per-sample indexing, for the Recorder's evaluation passes."""
    x, y = dataset.tensors
    return list(zip(x.split(size), y.split(size)))


def record(
    name: str,
    seed: int,
    *,
    weight_decay: float,
    epochs: int = 60,
    lr: float = 0.05,
    batch_size: int = 64,
    width: int = 128,
    depth: int = 3,
    cache_dir=None,
    device: str = "cpu",
    overwrite: bool = False,
) -> ncsim.Trajectory:
    """Train the MLP for one seed with SGD (momentum 0.9, lr divided by 10 at 1/3 and 2/3 of the
    epochs) and record it as `name`-s`seed`: the user's loop, with two lines of ncsim in it."""
    train_set, test_set = digits()
    torch.manual_seed(seed)
    model = MLP(width, depth).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 3, 2 * epochs // 3], gamma=0.1)
    order = torch.Generator().manual_seed(seed)
    batches = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=order)
    try:
        rec = ncsim.Recorder(
            name,
            seed=seed,
            model=model,
            penultimate=model.body,
            classifier=model.head,
            train=in_batches(train_set, 512),
            test=in_batches(test_set, 512),
            epochs=epochs,
            taps=model.hidden(),
            cache_dir=cache_dir,
            overwrite=overwrite,
            optimizer="sgd",
            lr=lr,
            momentum=0.9,
            weight_decay=weight_decay,
            batch_size=batch_size,
            loss="ce",
            width=width,
            depth=depth,
            dataset="sklearn digits 8x8, stratified 80/20 split",
            fields={"classifier": "learned"},
        )
    except AlreadyRecorded as e:  # recorded before with this very description: read it back
        return ncsim.load_run(e.key, cache_dir)
    with rec:
        for epoch in range(1, epochs + 1):
            model.train()
            total, wrong, n = 0.0, 0, 0
            for x, y in batches:
                x, y = x.to(device), y.to(device)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(y)
                wrong += int((logits.argmax(1) != y).sum())
                n += len(y)
            lr_now = opt.param_groups[0]["lr"]
            sched.step()
            if not rec.after_epoch(epoch, fit_loss=total / n, fit_error=wrong / n, lr=lr_now):
                break
    return rec.trajectory


def check_claims(name: str, seeds: list[int], cache_dir, out: Path) -> dict[str, dict]:
    """Run `pytest claims` twice on the recorded runs: on `name` with `name`-nowd as the suite's no-wd
    configuration (the weight-decay comparisons), and on `name`-nowd alone; returns each session's
    verdicts.json (report folders under `out`)."""
    docs = {}
    sessions = {"wd": ["--runs", name, "--compare", f"no-wd={name}-nowd"], "nowd": ["--runs", f"{name}-nowd"]}
    for label, args in sessions.items():
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(REPO / "claims"),
            *args,
            "--seeds",
            ",".join(map(str, seeds)),
            "--report-dir",
            str(out / label),
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        if cache_dir is not None:
            command += ["--cache-dir", str(cache_dir)]
        print("$", " ".join(command[2:]), file=sys.stderr, flush=True)  # progress, not findings
        subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL)
        docs[label] = json.loads((out / label / "latest" / "verdicts.json").read_text())
    return docs


def decided(doc: dict) -> dict[tuple[str, str], dict]:
    """(tolerance, configuration) -> the decided check of a session's verdicts.json."""
    return {
        (c["tolerance"], c["config"]): c for claim in doc["claims"] for t in claim["tests"] for c in t.get("checks", [])
    }


def findings(docs: dict[str, dict]) -> str:
    """A Markdown table of every check decided on the runs with weight decay (as "standard"), beside the
    same check on the runs without it, and the weight-decay comparisons (configuration no-wd)."""

    def cell(c):
        if c is None:
            return "not decided"
        bound = c.get("bound")
        value = "-" if c["measured"] is None else f"{c['measured']:.3g}"
        return f"{value}{'' if bound is None else f' (bound {bound:.3g})'}: {c['verdict']}"

    wd, nowd = decided(docs["wd"]), decided(docs["nowd"])
    lines = ["| check | needs | with weight decay | without weight decay |", "|---|---|---|---|"]
    for (tol, config), c in sorted(wd.items(), key=lambda kv: (kv[0][1] != "standard", kv[0])):
        other = nowd.get((tol, config)) if config == "standard" else None
        right = cell(other) if config == "standard" else f"(comparison, {config} against standard)"
        lines.append(f"| `{tol}` | {c['op']} {c['threshold']:g} | {cell(c)} | {right} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-4", help="seeds and ranges, e.g. 0-4 or 0,1,5 (default 0-4)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument(
        "--weight-decay", type=float, default=5e-3, help="of the digits-mlp runs (default 5e-3, the suite's)"
    )
    p.add_argument("--name", default="digits-mlp", help="configuration name; without weight decay NAME-nowd")
    p.add_argument("--cache-dir", default=None, help="the run store (default: $NCSIM_CACHE or ~/.cache/ncsim)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--overwrite", action="store_true", help="replace runs recorded before")
    p.add_argument(
        "--claims",
        default=None,
        metavar="DIR",
        help="then run the claims on the recorded runs (report folders under DIR) and print the findings",
    )
    args = p.parse_args(argv)
    set_threads(args.threads)
    for seed in parse_seed_list(args.seeds):
        for name, wd in ((args.name, args.weight_decay), (f"{args.name}-nowd", 0.0)):
            t = record(
                name,
                seed,
                weight_decay=wd,
                epochs=args.epochs,
                cache_dir=args.cache_dir,
                device=args.device,
                overwrite=args.overwrite,
            )
            print(
                f"{t.label}: {t.status}, recorded in {t.meta['timings']['total_s']:.1f} s, "
                f"train error {t.final('train_error'):.4f}, "
                f"test error {t.final('test_error'):.4f}, NC1 {t.final('train.nc1'):.3g}, "
                f"NC3 {t.final('train.nc3'):.3g}, stable TPT epoch {t.tpt_epoch}"
            )
    if args.claims:
        print(findings(check_claims(args.name, parse_seed_list(args.seeds), args.cache_dir, Path(args.claims))))


if __name__ == "__main__":
    main()
