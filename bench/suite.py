"""Wall time of the main job, `pytest claims -n auto`, cold (empty run store) and warm, where it goes,
and the peak resident memory of its processes.

    python bench/suite.py [--cache-dir DIR] [--keep] [-- extra pytest args]

Passes, one after the other in this process's run:
  cold        a new, empty store: every run of the claims is trained in this invocation
  warm        the same command again on the store the cold pass filled
  no report   the warm command with --no-report
  start-up    the warm command selecting no test (-k with no match) and --no-report: interpreter,
              imports, xdist workers, collection
Phases, from those walls: start-up; checks = no report - start-up; figures = warm - no report;
training and evaluation = cold - warm, split by the seconds the trainer spent in each (the records'
meta["timings"]). Per configuration: the mean training time of its runs (one thread each: the thread
counts they recorded are printed, since a worker whose process setting a test changed once trained every
later run oversubscribed, at twice the time) relative
to a default ("standard") run, against its stated budget, the `cost` of ncsim/suite.toml (judged
where it states more than a default run: LBFGS).

Targets on the 2-core machine: cold under 15 minutes (5 seeds per configuration), warm under 15 s,
peak memory of one process under 2 GiB, evaluation at most 15% of training time, every configuration
within its stated cost. Peak memory is the largest maximum resident set size among pytest and its
xdist workers (getrusage of reaped children).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ncsim import suite  # noqa: E402
from ncsim.spec import RunSpec  # noqa: E402
from ncsim.store import RunStore  # noqa: E402

COLD_TARGET_S, WARM_TARGET_S, MEMORY_TARGET_MIB, EVAL_TARGET = 900, 15, 2048, 0.15


def run_claims(cache_dir: str, extra: list[str]) -> tuple[float, int]:
    """One `pytest claims -n auto` on the store, writing its report (as a user's run does) beside it
    unless `extra` says --no-report."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "claims",
        "-n",
        "auto",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--cache-dir={cache_dir}",
        f"--report-dir={Path(cache_dir) / 'reports'}",
        *extra,
    ]
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t, rc


def trainer_seconds(cache_dir: str) -> dict[str, dict[str, list[float]]]:
    """Per configuration of the suite: the stored runs' training and evaluation seconds."""
    names = {suite.config(c, 0).key(): c for c in suite.CONFIGS}  # a run's configuration, by its seed-0 key
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    store = RunStore(cache_dir)
    for key in store.keys():
        record = store.load(key)
        meta = {} if record is None else record.meta
        if "spec" not in meta or "timings" not in meta:
            continue
        name = names.get(RunSpec.from_dict(meta["spec"]).replace(seed=0).key())
        if name is None:
            continue
        timings = meta["timings"]
        for phase, value in (("fit", "fit_s"), ("eval", "eval_s"), ("total", "total_s"), ("threads", "threads")):
            out[name][phase].append(timings[value])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", default=None, help="store to fill (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the temporary store")
    p.add_argument("extra", nargs="*", help="extra pytest arguments (after --)")
    args = p.parse_args()
    cache = args.cache_dir or tempfile.mkdtemp(prefix="ncsim-bench-")
    if any(Path(cache).glob("*.npz")):
        sys.exit(f"{cache} is not empty: a cold pass needs an empty store")
    print(f"store {cache}; cores {os.cpu_count()}; load {os.getloadavg()[0]:.1f}", flush=True)
    cold, rc_cold = run_claims(cache, args.extra)
    warm, rc_warm = run_claims(cache, args.extra)
    quiet, _ = run_claims(cache, [*args.extra, "--no-report"])
    start, _ = run_claims(cache, [*args.extra, "--no-report", "-k", "no_test_has_this_name"])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    def met(ok: bool) -> str:
        return "yes" if ok else "no"

    print(f"\n{'pass':<6}{'wall s':>9}{'target s':>10}{'met':>5}{'pytest rc':>11}")
    print(f"{'cold':<6}{cold:>9.1f}{COLD_TARGET_S:>10}{met(cold < COLD_TARGET_S):>5}{rc_cold:>11}")
    print(f"{'warm':<6}{warm:>9.1f}{WARM_TARGET_S:>10}{met(warm < WARM_TARGET_S):>5}{rc_warm:>11}")

    seconds = trainer_seconds(cache)
    fit = sum(sum(s["fit"]) for s in seconds.values())
    ev = sum(sum(s["eval"]) for s in seconds.values())
    trained = max(0.0, cold - warm)
    phases = {
        "start-up": start,
        "training": trained * fit / (fit + ev),
        "evaluation": trained * ev / (fit + ev),
        "checks": max(0.0, quiet - start),
        "figures": max(0.0, warm - quiet),
    }
    print(f"\n{'phase':<12}{'cold s':>8}{'share':>7}{'warm s':>8}{'share':>7}")
    for name, s in phases.items():
        in_warm = 0.0 if name in ("training", "evaluation") else s
        print(f"{name:<12}{s:>8.1f}{s / cold:>7.0%}{in_warm:>8.1f}{in_warm / warm:>7.0%}")
    print(
        f"evaluation / training time of the trainer, all runs: {ev / fit:.1%} "
        f"(target <= {EVAL_TARGET:.0%}: {'met' if ev / fit <= EVAL_TARGET else 'not met'})"
    )

    base = sum(seconds["standard"]["total"]) / max(1, len(seconds["standard"]["total"]))
    print(
        f"\n{'configuration':<16}{'runs':>5}{'mean s':>8}{'relative':>9}{'stated':>8}{'within':>8}"
        f"{'eval/train':>11}{'threads':>9}"
    )
    for name in suite.CONFIGS:
        s = seconds.get(name)
        if not s:
            continue
        mean = sum(s["total"]) / len(s["total"])
        stated = suite.cost(name)
        print(
            f"{name:<16}{len(s['total']):>5}{mean:>8.1f}{mean / base:>8.2f}x{stated:>7.1f}x"
            f"{met(mean / base <= stated) if stated != 1.0 else '-':>8}{sum(s['eval']) / sum(s['fit']):>11.1%}"
            f"{','.join(map(str, sorted(set(s['threads'])))):>9}"
        )
    other = sorted({t for s in seconds.values() for t in s["threads"]} - {1})
    print(
        f"runs trained on more than one thread (`-n auto` runs one worker per core, one thread each): "
        f"{'none' if not other else other}"
    )
    print(
        f"\npeak resident memory of one process: {peak_mib:.0f} MiB (target < {MEMORY_TARGET_MIB} MiB: "
        f"{'met' if peak_mib < MEMORY_TARGET_MIB else 'not met'})"
    )
    if not args.cache_dir and not args.keep:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
