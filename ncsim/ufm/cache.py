"""UFM solves kept once per process and, with a run store, once per store (records of kind SOLVE_KIND), under
keys that hash their arguments and UFM_VERSION."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np

from ncsim.store import Record, RunStore, utc_stamp
from ncsim.ufm.problem import DEFAULT_GTOL, UFMProblem, UFMResult
from ncsim.ufm.solvers import solve

# Part of every stored solve's and sweep's key: bump it when a change to the solvers, to UFMProblem or to
# the sweeps changes what a stored solve or sweep holds, so that the store's old records stop matching.
UFM_VERSION = 2

# A stored solve's record: its meta's "kind", and the prefix of its key (solve_key).
SOLVE_KIND = "ufm-solve"
SOLVE_KEY_PREFIX = "ufm-solve-"
_SOLVED: dict[str, UFMResult] = {}  # this process's solves, by solve_key


def stored_key(prefix: str, params: dict) -> str:
    """`prefix` + the first 20 hex digits of the SHA-256 of the canonical JSON (sorted keys, no spaces)
    of `params` and UFM_VERSION: the store key of a stored UFM result."""
    text = json.dumps({"params": params, "ufm_version": UFM_VERSION}, sort_keys=True, separators=(",", ":"))
    return prefix + hashlib.sha256(text.encode()).hexdigest()[:20]


def solve_key(problem: UFMProblem, solver: str, seed: int, gtol: float, max_iter: int | None) -> str:
    """The store key of `solve(problem, solver, seed=seed, gtol=gtol, max_iter=max_iter)` with the
    default step sizes (stored_key of those arguments)."""
    return stored_key(
        SOLVE_KEY_PREFIX,
        {"problem": asdict(problem), "solver": solver, "seed": seed, "gtol": gtol, "max_iter": max_iter},
    )


def solve_cached(
    problem: UFMProblem,
    solver: str = "lbfgs",
    seed: int = 0,
    *,
    gtol: float = DEFAULT_GTOL,
    max_iter: int | None = None,
    store: RunStore | None = None,
) -> UFMResult:
    """`solve` with its default step sizes, solved once per process (claims sharing a problem share its
    runs) and, with a run `store`, once per store: the record `solve_key(...)` is loaded if present,
    else solved and saved under the store's lock (one process solves, the others wait and load); the
    float64 arrays come back bit for bit. A solve this process made without a store is saved to the
    store when one is given later. The result's arrays are shared between callers: do not modify them."""
    key = solve_key(problem, solver, seed, gtol, max_iter)
    if key in _SOLVED and (store is None or key in store):
        return _SOLVED[key]
    if store is None:
        _SOLVED[key] = solve(problem, solver, seed=seed, gtol=gtol, max_iter=max_iter)
        return _SOLVED[key]

    def create() -> Record:
        r = _SOLVED.get(key) or solve(problem, solver, seed=seed, gtol=gtol, max_iter=max_iter)
        meta = {
            "kind": SOLVE_KIND,
            "solver": solver,
            "seed": seed,
            "gtol": gtol,
            "max_iter": max_iter,
            "problem": asdict(problem),
            "ufm_version": UFM_VERSION,
            "created": utc_stamp(),
        }
        return Record(
            key,
            meta,
            {
                "W": r.W,
                "H": r.H,
                "b": r.b,
                "history": np.asarray(r.history),
                "objective": np.float64(r.objective),
                "grad_norm": np.float64(r.grad_norm),
                "iterations": np.int64(r.iterations),
                "converged": np.bool_(r.converged),
            },
        )

    a = store.get_or_create(key, create).arrays
    _SOLVED[key] = UFMResult(
        problem,
        a["W"],
        a["H"],
        a["b"],
        float(a["objective"]),
        float(a["grad_norm"]),
        int(a["iterations"]),
        bool(a["converged"]),
        gtol,
        solver,
        seed,
        tuple(a["history"].tolist()),
    )
    return _SOLVED[key]
