"""Wall time of the main job, `pytest claims -n auto`, cold (empty run store) and warm, and the peak
resident memory of its processes.

    python bench/suite.py [--cache-dir DIR] [--keep] [-- extra pytest args]

Cold: a new, empty store, so every run of the claims is trained in this invocation. Warm: the same
command again on the store the cold pass filled. Both write the report (into the store's folder).
Peak memory is the largest maximum resident set size among pytest and its xdist workers (getrusage
of reaped children). Targets on the 2-core
machine: cold under 10 minutes, warm under 15 s, peak worker memory under 2 GiB.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_claims(cache_dir: str, extra: list[str]) -> tuple[float, int]:
    """One `pytest claims -n auto` on the store, writing its report (as a user's run does) beside it."""
    cmd = [sys.executable, "-m", "pytest", "claims", "-n", "auto", "-q", "-p", "no:cacheprovider",
           f"--cache-dir={cache_dir}", f"--report-dir={Path(cache_dir) / 'reports'}", *extra]
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t, rc


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
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{'pass':<6}{'wall s':>9}{'target s':>10}{'met':>5}{'pytest rc':>11}")
    print(f"{'cold':<6}{cold:>9.1f}{600:>10}{'yes' if cold < 600 else 'no':>5}{rc_cold:>11}")
    print(f"{'warm':<6}{warm:>9.1f}{15:>10}{'yes' if warm < 15 else 'no':>5}{rc_warm:>11}")
    print(f"peak resident memory of one process: {peak_mib:.0f} MiB (target < 2048 MiB: "
          f"{'met' if peak_mib < 2048 else 'not met'})")
    if not args.cache_dir and not args.keep:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
