"""Sweeps of the imbalanced UFM over the imbalance ratio (refined to the minority-collapse threshold) and
over the regularisation, solved through the cache, and the sweeps kept in the run store for the report."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np

from ncsim.store import Record, RunStore, utc_stamp
from ncsim.ufm import cache
from ncsim.ufm.cache import solve_cached
from ncsim.ufm.imbalance import COLLAPSE_TOL, imbalance_geometry
from ncsim.ufm.problem import DEFAULT_GTOL, UFMProblem

# The sweep's parameters (R values, seeds, gtol) belong to claims/test_ufm_imbalance.py.
# A stored sweep's record: its meta's "kind", and the prefix of its key (imbalance_sweep_key).
IMBALANCE_KIND = "ufm-imbalance-sweep"
IMBALANCE_KEY_PREFIX = "ufm-imbalance-"


def _imbalanced_problem(num_classes, dim, n_min, n_maj, lam, loss, bias) -> UFMProblem:
    return UFMProblem.imbalanced(
        num_classes,
        dim,
        n_min,
        n_maj / n_min,
        lambda_w=lam,
        lambda_h=lam,
        lambda_b=lam if bias else 0.0,
        loss=loss,
        bias=bias,
    )


def imbalance_sweep(
    R_values: Sequence[float],
    *,
    num_classes: int = 4,
    dim: int = 4,
    n_min: int = 1,
    lam: float = 5e-3,
    loss: str = "ce",
    bias: bool = False,
    solver: str = "lbfgs",
    seed: int = 0,
    gtol: float = DEFAULT_GTOL,
    max_iter: int | None = None,
    refine: bool = True,
    collapse_tol: float = COLLAPSE_TOL,
    store: RunStore | None = None,
) -> dict[str, np.ndarray]:
    """Solve the imbalanced UFM (UFMProblem.imbalanced: the first ceil(C/2) classes have
    n_maj = round(R n_min) samples, lambda_W = lambda_H = lam, no bias by default as in Fang et al.'s
    Layer-Peeled Model and Thrampoulidis et al.'s UFM) for each R, and with `refine` also at the ratios
    that bisect, over integer n_maj, the bracket between the largest R before the first R whose
    minority classifiers are collapsed (minority_cos >= 1 - collapse_tol) and that R: the sweep then
    holds the minority-collapse threshold R* (the smallest collapsed ratio) and R* - 1/n_min.

    Returns arrays over the solved R, in increasing order: "R", imbalance_geometry's columns, and
    "refined" (1.0 for a ratio the bisection added). Every column is float64, as the run store keeps
    it. `store`: each solve is kept there too (solve_cached)."""
    rows: dict[int, dict] = {}

    def at(n_maj: int) -> dict:
        if n_maj not in rows:
            pr = _imbalanced_problem(num_classes, dim, n_min, n_maj, lam, loss, bias)
            rows[n_maj] = imbalance_geometry(solve_cached(pr, solver, seed, gtol=gtol, max_iter=max_iter, store=store))
        return rows[n_maj]

    def collapsed(n_maj: int) -> bool:
        return at(n_maj)["minority_cos"] >= 1 - collapse_tol

    grid = sorted({int(round(R * n_min)) for R in R_values})
    first = next((m for m in grid if collapsed(m)), None)  # (collapsed(m) solves at m)
    for m in grid:
        at(m)
    if refine and first is not None and first != grid[0]:
        lo, hi = max(m for m in grid if m < first), first
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if collapsed(mid) else (mid, hi)
    keys = ("R", *at(grid[0]), "refined")
    return {
        key: np.array(
            [
                m / n_min if key == "R" else float(m not in grid) if key == "refined" else rows[m][key]
                for m in sorted(rows)
            ],
            dtype=np.float64,
        )
        for key in keys
    }


def seli_path(
    R: float,
    lams: Sequence[float],
    *,
    num_classes: int = 4,
    dim: int = 4,
    n_min: int = 1,
    loss: str = "ce",
    solver: str = "lbfgs",
    seed: int = 0,
    gtol: float = DEFAULT_GTOL,
    store: RunStore | None = None,
) -> dict[str, np.ndarray]:
    """The regularisation path at one imbalance ratio R: the imbalanced UFM without bias
    (lambda_W = lambda_H = lam) solved for each lam (solve_cached, kept in `store`), as arrays over lam
    in the order given: "lam" and imbalance_geometry's columns (its SELI distances above all)."""
    rows = [
        imbalance_geometry(
            solve_cached(
                _imbalanced_problem(num_classes, dim, n_min, int(round(R * n_min)), lam, loss, False),
                solver,
                seed,
                gtol=gtol,
                store=store,
            )
        )
        for lam in lams
    ]
    return {
        "lam": np.asarray(lams, dtype=np.float64),
        **{key: np.array([row[key] for row in rows], dtype=np.float64) for key in rows[0]},
    }


_SWEEP_SIGNATURE = inspect.signature(imbalance_sweep)


def imbalance_sweep_params(R_values: Sequence[float], **kw) -> dict:
    """Every argument of `imbalance_sweep(R_values, **kw)`, defaults included, as a JSON-able dict
    (R_values a list of floats): what names a stored sweep. `store` (where the solves go) is no part
    of it."""
    bound = _SWEEP_SIGNATURE.bind(R_values, **kw)
    bound.apply_defaults()
    params = {k: v.item() if isinstance(v, np.generic) else v for k, v in bound.arguments.items() if k != "store"}
    return {**params, "R_values": [float(R) for R in R_values]}


def imbalance_sweep_key(params: dict) -> str:
    """The store key of a sweep: cache.stored_key of `params` (imbalance_sweep_params)."""
    return cache.stored_key(IMBALANCE_KEY_PREFIX, params)


def imbalance_sweep_stored(store: RunStore, R_values: Sequence[float], **kw) -> dict[str, np.ndarray]:
    """`imbalance_sweep(R_values, **kw)` (e.g. seed=, gtol=), solved once and kept in the run store: the
    record `imbalance_sweep_key(params)` is loaded if present, else computed and saved under the store's
    lock (one process solves, the others wait and load). Its meta is {"kind": IMBALANCE_KIND, "params",
    "ufm_version", "created" (UTC stamp)}, its arrays the sweep's float64 columns."""
    params = imbalance_sweep_params(R_values, **kw)
    key = imbalance_sweep_key(params)

    def create() -> Record:
        meta = {"kind": IMBALANCE_KIND, "params": params, "ufm_version": cache.UFM_VERSION, "created": utc_stamp()}
        return Record(key, meta, imbalance_sweep(**params))

    return dict(store.get_or_create(key, create).arrays)


def stored_imbalance_sweeps(
    store: RunStore, R_values: Sequence[float], seeds: Sequence[int], **kw
) -> dict[int, dict[str, np.ndarray]]:
    """seed -> the sweep `imbalance_sweep(R_values, seed=seed, **kw)` as imbalance_sweep_stored keeps it,
    for each of `seeds` whose sweep `store` holds (of this UFM_VERSION: the key says so); reads only,
    never solves."""
    records = {
        seed: store.load(imbalance_sweep_key(imbalance_sweep_params(R_values, seed=seed, **kw))) for seed in seeds
    }
    return {seed: dict(record.arrays) for seed, record in records.items() if record is not None}
