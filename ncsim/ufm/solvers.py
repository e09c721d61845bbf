"""Minimising the UFM objective numerically: full-batch gradient descent, minibatch SGD, Adam and LBFGS,
each from a seeded random init, run until the full-batch gradient norm reaches gtol."""

from __future__ import annotations

import math

import numpy as np
import torch

from ncsim.spec import check_choice
from ncsim.threads import limit_threads
from ncsim.ufm.problem import (
    DEFAULT_GTOL,
    UFMProblem,
    UFMResult,
    _check_shapes,
    _norm,
    _Objective,
    evaluate,
    random_init,
)

SOLVERS = ("gd", "sgd", "adam", "lbfgs")
# Step sizes that converge on the suite's problems (lambdas 5e-3..5e-2, init_std 1); LBFGS line-searches.
DEFAULT_LR = {"gd": 1.0, "sgd": 0.5, "adam": 0.1, "lbfgs": 1.0}
DEFAULT_MAX_ITER = {"gd": 40_000, "sgd": 40_000, "adam": 40_000, "lbfgs": 2_000}
# Adam's lr decays by this factor per step: with a constant lr, 2 of 20 runs of the claims' problems
# stalled above gtol = 1e-8 for 20000 steps (Adam's normalised steps do not shrink with the gradient).
ADAM_DECAY = 0.9995
LBFGS_CHUNK = 25


def _stratified_batches(labels: np.ndarray, num_batches: int, rng: np.random.Generator):
    """One epoch of minibatches, each holding the same share of every class (np.array_split of each
    class's shuffled indices), so every batch's gradient vanishes at a collapsed minimiser."""
    parts = [np.array_split(rng.permutation(np.flatnonzero(labels == c)), num_batches) for c in np.unique(labels)]
    return [torch.as_tensor(np.concatenate([part[j] for part in parts])) for j in range(num_batches)]


def solve(
    problem: UFMProblem,
    solver: str = "lbfgs",
    *,
    seed: int = 0,
    gtol: float = DEFAULT_GTOL,
    max_iter: int | None = None,
    lr: float | None = None,
    batches: int = 5,
    init_std: float = 1.0,
    init=None,
) -> UFMResult:
    """Minimise f from a random init (`random_init(problem, seed, init_std)`, or `init` = (W, H, b))
    until the full-batch gradient norm ||grad f||_2 <= gtol (converged) or `max_iter` updates.

    Solvers: "gd" full-batch gradient descent with constant step `lr`; "sgd" plain SGD over `batches`
    class-stratified minibatches of samples per epoch (a step moves W, b and the batch's features; the
    gradient norm is checked once per epoch); "adam" Adam (Kingma & Ba 2015; beta = 0.9, 0.999,
    eps = 1e-8) with lr decayed by ADAM_DECAY per step; "lbfgs" torch.optim.LBFGS with strong-Wolfe line
    search, stopped early once a chunk of LBFGS_CHUNK iterations lowers neither f nor the gradient norm
    (its line search cannot resolve f below float64 precision; converged is then False). `iterations`
    counts parameter updates (SGD: minibatch steps; LBFGS: its inner iterations). Deterministic for a
    given seed.
    """
    check_choice("solver", solver, SOLVERS)
    lr = DEFAULT_LR[solver] if lr is None else lr
    max_iter = DEFAULT_MAX_ITER[solver] if max_iter is None else max_iter
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 0 or not lr > 0 or batches < 1:
        raise ValueError(f"need an int max_iter >= 0, lr > 0, batches >= 1; got {max_iter}, {lr}, {batches}")
    max_iter = int(max_iter)
    start = random_init(problem, seed, init_std) if init is None else init
    _check_shapes(problem, *start)
    params = [torch.tensor(np.asarray(a, dtype=np.float64)) for a in start]
    f = _Objective(problem)
    with limit_threads(1):  # intra-op threads only cost time on problems this small
        it, history = _SOLVERS[solver](f, params, lr=lr, gtol=gtol, max_iter=max_iter, seed=seed, batches=batches)
    return evaluate(problem, *params, gtol=gtol, solver=solver, iterations=it, seed=seed, history=history)


def _first_order(f, params, *, lr, gtol, max_iter, step, **_):
    """Shared loop of GD and Adam: `step(t, grads)` updates `params` in place."""
    history, it = [], 0
    value, grads = f.value_and_grad(*params)
    while _norm(grads) > gtol and it < max_iter and math.isfinite(value):
        it += 1
        step(it, grads)
        value, grads = f.value_and_grad(*params)
        history.append(float(value))
    return it, history


def _gd(f, params, *, lr, **kw):
    def step(_, grads):
        for prm, g in zip(params, grads):
            prm.sub_(lr * g)

    return _first_order(f, params, lr=lr, step=step, **kw)


def _adam(f, params, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, **kw):
    m = [torch.zeros_like(prm) for prm in params]
    v = [torch.zeros_like(prm) for prm in params]

    def step(t, grads):
        rate = lr * ADAM_DECAY ** (t - 1) * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        for prm, g, mi, vi in zip(params, grads, m, v):
            mi.mul_(beta1).add_(g, alpha=1 - beta1)
            vi.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            prm.addcdiv_(mi, vi.sqrt().add_(eps * math.sqrt(1 - beta2**t)), value=-rate)

    return _first_order(f, params, lr=lr, step=step, **kw)


def _sgd(f, params, *, lr, gtol, max_iter, seed, batches):
    W, H, b = params
    rng = np.random.default_rng(seed)
    labels = f.problem.labels
    batches = min(batches, min(f.problem.counts))
    history, it = [], 0
    value, grads = f.value_and_grad(W, H, b)
    while _norm(grads) > gtol and it < max_iter and math.isfinite(value):
        for batch in _stratified_batches(labels, batches, rng)[: max_iter - it]:
            _, (gW, gHb, gb) = f.value_and_grad(W, H, b, batch)
            W.sub_(lr * gW)
            H[:, batch] -= lr * gHb
            b.sub_(lr * gb)
            it += 1
        value, grads = f.value_and_grad(W, H, b)
        history.append(float(value))
    return it, history


def _lbfgs(f, params, *, lr, gtol, max_iter, **_):
    for prm in params:
        prm.grad = torch.zeros_like(prm)
    opt = torch.optim.LBFGS(
        params,
        lr=lr,
        max_iter=LBFGS_CHUNK,
        history_size=50,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure():
        value, grads = f.value_and_grad(*params)
        for prm, g in zip(params, grads):
            prm.grad.copy_(g)
        return value

    history, it = [], 0
    value, grads = f.value_and_grad(*params)
    gnorm = _norm(grads)
    while gnorm > gtol and it < max_iter and math.isfinite(value):
        opt.param_groups[0]["max_iter"] = min(LBFGS_CHUNK, max_iter - it)
        opt.step(closure)
        it = opt.state[params[0]]["n_iter"]
        previous = (float(value), gnorm)
        value, grads = f.value_and_grad(*params)
        gnorm = _norm(grads)
        history.append(float(value))
        if float(value) >= previous[0] and gnorm >= previous[1]:
            break
    for prm in params:
        prm.grad = None
    return it, history


_SOLVERS = {"gd": _gd, "sgd": _sgd, "adam": _adam, "lbfgs": _lbfgs}
