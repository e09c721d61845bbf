"""The unconstrained features model (UFM) of Neural Collapse, solved numerically in float64.

Notation (Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", ICLR 2021,
Sec. 2-3): C classes, n_c samples in class c, N = sum_c n_c, feature dimension p, free features
H = [h_1 .. h_N] (p x N), classifier W (C x p) with rows w_k, bias b (C). The problem is

    f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2
                 + lambda_b/2 ||b||^2                                                   (Zhu et al. eq. 5)

with L the cross-entropy ("ce") or the squared error to the one-hot target ("mse"),
L(z, y) = 1/2 ||z - e_y||^2: the (1/2N)||WH + b1^T - Y||_F^2 form of Zhou et al. (ICML 2022) and Tirer &
Bruna (ICML 2022), i.e. Han et al.'s (ICLR 2022) MSE with the factor 1/2 (ncsim.train's MSE has no 1/2;
that is the same problem with the lambdas doubled).

Balanced closed form (derived here, checked numerically by the UFM claims). Stationarity in W and H,
(1/N) G H^T + lambda_W W = 0 and (1/N) W^T G + lambda_H H = 0 (G = dL/dZ, C x N), gives
lambda_W W^T W = lambda_H H H^T; at a collapsed point with h_{k,i} = alpha w_k this forces
alpha = sqrt(lambda_W / (n lambda_H)), i.e. ||w_k|| = sqrt(n lambda_H / lambda_W) ||h_{k,i}||
(Zhu et al. Thm 3.1). With w_k a simplex ETF of norm rho_W, h_k of norm rho_H and q = rho_W rho_H, the
logits are W h_k = (C q/(C-1)) (e_k - 1/C) and the regulariser at the balanced ratio is C kappa q with

    kappa = sqrt(n lambda_W lambda_H),

so f reduces to the 1-D problem g(q) = L_etf(q) + C kappa q, whose minimiser is

    CE : q* = (C-1)/C log((1 - (C-1) kappa) / kappa)   (each wrong-class softmax probability = kappa)
    MSE: q* = (C-1)/C (1 - C kappa)                    (centred logits = (1 - C kappa)(I - 11^T/C)),

both non-trivial (q* > 0) exactly when C kappa < 1; for C kappa >= 1 the minimiser is W = H = 0.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("ce", "mse")
SOLVERS = ("gd", "sgd", "adam", "lbfgs")
# Step sizes that converge on the suite's problems (lambdas ~1e-2, init_std 1); LBFGS uses a line search.
DEFAULT_LR = {"gd": 0.5, "sgd": 0.1, "adam": 0.02, "lbfgs": 1.0}
DEFAULT_MAX_ITER = {"gd": 40_000, "sgd": 40_000, "adam": 40_000, "lbfgs": 2_000}
# Adam's lr decays by this factor per step: with a constant lr its sign-like steps keep the iterate
# oscillating at distance ~lr from the minimiser and the gradient norm never reaches gtol.
ADAM_DECAY = 0.9985
LBFGS_CHUNK = 25
DEFAULT_GTOL = 1e-10


def _choice(name: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(valid)}")


@dataclass(frozen=True)
class UFMProblem:
    """One UFM instance. `counts` is n (balanced, n per class) or the per-class counts (n_1, .., n_C)."""

    num_classes: int
    dim: int
    counts: int | tuple[int, ...]
    lambda_w: float = 1e-2
    lambda_h: float = 1e-2
    lambda_b: float = 1e-2
    loss: str = "ce"

    def __post_init__(self):
        C, p = self.num_classes, self.dim
        if isinstance(C, bool) or not isinstance(C, int) or C < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {C!r}")
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ValueError(f"dim (p) must be an int >= 1, got {p!r}")
        counts = (self.counts,) * C if isinstance(self.counts, int) else tuple(self.counts)
        if len(counts) != C or any(isinstance(k, bool) or int(k) != k or k < 1 for k in counts):
            raise ValueError(f"counts must be an int >= 1 or {C} ints >= 1, got {self.counts!r}")
        object.__setattr__(self, "counts", tuple(int(k) for k in counts))
        for lam in ("lambda_w", "lambda_h", "lambda_b"):
            if not getattr(self, lam) >= 0:
                raise ValueError(f"{lam} must be >= 0, got {getattr(self, lam)!r}")
        _choice("loss", self.loss, LOSSES)

    @classmethod
    def imbalanced(cls, num_classes: int, dim: int, n_min: int, ratio: float, **kw) -> "UFMProblem":
        """Step imbalance (Fang et al. 2021; Thrampoulidis et al. 2022): the first ceil(C/2) classes are
        majority classes with n_maj = round(R n_min) samples, the others keep n_min."""
        if not ratio >= 1:
            raise ValueError(f"imbalance ratio R must be >= 1, got {ratio!r}")
        n_maj = int(round(ratio * n_min))
        n_major = (num_classes + 1) // 2
        return cls(num_classes, dim, (n_maj,) * n_major + (n_min,) * (num_classes - n_major), **kw)

    @property
    def num_samples(self) -> int:
        return sum(self.counts)

    @property
    def balanced(self) -> bool:
        return len(set(self.counts)) == 1

    @property
    def labels(self) -> np.ndarray:
        """y_i, sorted by class."""
        return np.repeat(np.arange(self.num_classes), self.counts)

    @property
    def kappa(self) -> float:
        """kappa = sqrt(n lambda_W lambda_H) (balanced only); the solution is non-trivial iff C kappa < 1."""
        if not self.balanced:
            raise ValueError("kappa and the closed form are defined for balanced classes only")
        return math.sqrt(self.counts[0] * self.lambda_w * self.lambda_h)


@dataclass(frozen=True)
class UFMResult:
    """A point (W, H, b) of a UFMProblem with f, ||grad f||_2 there, and how the solver got there."""

    problem: UFMProblem
    W: np.ndarray              # C x p
    H: np.ndarray              # p x N
    b: np.ndarray              # C
    objective: float
    grad_norm: float
    iterations: int
    converged: bool            # grad_norm <= gtol
    gtol: float
    solver: str = "none"
    seed: int | None = None
    history: tuple[float, ...] = field(default=(), repr=False)  # objective per iteration

    @property
    def features(self) -> np.ndarray:
        """H^T (N x p), rows = samples, as ncsim.metrics expects."""
        return self.H.T

    @property
    def labels(self) -> np.ndarray:
        return self.problem.labels


class _Objective:
    """f, or its unbiased minibatch estimate, and its gradient in closed form (no autograd graph: the
    problems are tiny and per-op overhead dominates)."""

    def __init__(self, problem: UFMProblem):
        self.problem = problem
        self.y = torch.as_tensor(problem.labels)
        self.target = F.one_hot(self.y, problem.num_classes).double()

    def _batch(self, H, batch):
        if batch is None:
            return H, self.y, self.target
        return H[:, batch], self.y[batch], self.target[batch]

    def value(self, W, H, b, batch: torch.Tensor | None = None) -> torch.Tensor:
        """f; with `batch` (sample indices B) the estimate whose mean over uniform B is f:
        (1/|B|) sum_{i in B} L_i + lambda_W/2||W||^2 + lambda_b/2||b||^2 + (N/|B|) lambda_H/2 sum_{i in B}||h_i||^2."""
        pr = self.problem
        Hb, y, target = self._batch(H, batch)
        Z = Hb.T @ W.T + b
        data = F.cross_entropy(Z, y) if pr.loss == "ce" else 0.5 * ((Z - target) ** 2).sum(1).mean()
        return (data + 0.5 * pr.lambda_w * (W * W).sum() + 0.5 * pr.lambda_b * (b * b).sum()
                + 0.5 * pr.lambda_h * (pr.num_samples / Hb.shape[1]) * (Hb * Hb).sum())

    def value_and_grad(self, W, H, b, batch: torch.Tensor | None = None):
        """(f, (df/dW, df/dH_B, df/db)) with dL/dZ = (softmax(Z) - Y)/|B| (CE) or (Z - Y)/|B| (MSE):
        df/dW = G^T H_B^T + lambda_W W, df/dH_B = W^T G^T + (N/|B|) lambda_H H_B, df/db = G^T 1 + lambda_b b.
        Without `batch`, H_B = H."""
        pr = self.problem
        with torch.no_grad():
            Hb, y, target = self._batch(H, batch)
            Z = Hb.T @ W.T + b
            G = (torch.softmax(Z, 1) if pr.loss == "ce" else Z) - target
            G /= Hb.shape[1]
            grads = (G.T @ Hb.T + pr.lambda_w * W,
                     W.T @ G.T + (pr.lambda_h * pr.num_samples / Hb.shape[1]) * Hb,
                     G.sum(0) + pr.lambda_b * b)
            return self.value(W, H, b, batch), grads


def objective(problem: UFMProblem, W, H, b) -> torch.Tensor:
    """f(W, H, b) (module docstring) as a differentiable float64 torch scalar."""
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    return _Objective(problem).value(as_t(W), as_t(H), as_t(b))


def gradient(problem: UFMProblem, W, H, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(df/dW, df/dH, df/db) in closed form, as used by the solvers."""
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    return tuple(g.numpy() for g in _Objective(problem).value_and_grad(as_t(W), as_t(H), as_t(b))[1])


def _norm(tensors: Sequence[torch.Tensor]) -> float:
    return math.sqrt(float(sum((t * t).sum() for t in tensors)))


@contextmanager
def _one_thread():
    """Intra-op threads only cost time on problems this small (and the suite shares 2 cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_shapes(problem: UFMProblem, W, H, b):
    C, p, N = problem.num_classes, problem.dim, problem.num_samples
    for name, arr, shape in (("W", W, (C, p)), ("H", H, (p, N)), ("b", b, (C,))):
        if tuple(np.shape(arr)) != shape:
            raise ValueError(f"{name} has shape {tuple(np.shape(arr))}, expected {shape}")


def evaluate(problem: UFMProblem, W, H, b, *, gtol: float = DEFAULT_GTOL, solver: str = "none",
             iterations: int = 0, seed: int | None = None, history: Sequence[float] = ()) -> UFMResult:
    """The UFMResult of a given point: f and the full-batch gradient norm ||(dW, dH, db)||_2 there."""
    _check_shapes(problem, W, H, b)
    W, H, b = (torch.tensor(np.asarray(a, dtype=np.float64)) for a in (W, H, b))
    value, grads = _Objective(problem).value_and_grad(W, H, b)
    gnorm = _norm(grads)
    return UFMResult(problem, W.numpy(), H.numpy(), b.numpy(), float(value), gnorm, int(iterations),
                     bool(gnorm <= gtol), gtol, solver, seed, tuple(history))


def random_init(problem: UFMProblem, seed: int, init_std: float = 1.0):
    """W, H, b with i.i.d. N(0, init_std^2) entries from a torch.Generator seeded with `seed`."""
    g = torch.Generator().manual_seed(int(seed))
    C, p, N = problem.num_classes, problem.dim, problem.num_samples
    return tuple(init_std * torch.randn(*shape, generator=g, dtype=torch.float64)
                 for shape in ((C, p), (p, N), (C,)))


def _stratified_batches(labels: np.ndarray, num_batches: int, rng: np.random.Generator):
    """One epoch of minibatches, each holding the same share of every class (np.array_split of each
    class's shuffled indices), so every batch's gradient vanishes at a collapsed minimiser."""
    parts = [np.array_split(rng.permutation(np.flatnonzero(labels == c)), num_batches)
             for c in np.unique(labels)]
    return [torch.as_tensor(np.concatenate([part[j] for part in parts])) for j in range(num_batches)]


def solve(problem: UFMProblem, solver: str = "lbfgs", *, seed: int = 0, gtol: float = DEFAULT_GTOL,
          max_iter: int | None = None, lr: float | None = None, batches: int = 5,
          init_std: float = 1.0, init=None) -> UFMResult:
    """Minimise f from a random init (`random_init(problem, seed, init_std)`, or `init` = (W, H, b))
    until the full-batch gradient norm ||grad f||_2 <= gtol (converged) or `max_iter` updates.

    Solvers: "gd" full-batch gradient descent with constant step `lr`; "sgd" plain SGD over `batches`
    class-stratified minibatches of samples per epoch (a step moves W, b and the batch's features; the
    gradient norm is checked once per epoch); "adam" Adam (Kingma & Ba 2015; beta = 0.9, 0.999,
    eps = 1e-8) with lr decayed by ADAM_DECAY per step; "lbfgs" torch.optim.LBFGS with strong-Wolfe line
    search, stopped early if a chunk of LBFGS_CHUNK iterations changes neither f nor the gradient (its
    line search cannot resolve f below float64 precision). `iterations` counts parameter updates (SGD:
    minibatch steps; LBFGS: its inner iterations). Deterministic for a given seed.
    """
    _choice("solver", solver, SOLVERS)
    lr = DEFAULT_LR[solver] if lr is None else lr
    max_iter = DEFAULT_MAX_ITER[solver] if max_iter is None else max_iter
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 0 or not lr > 0 or batches < 1:
        raise ValueError(f"need an int max_iter >= 0, lr > 0, batches >= 1; got {max_iter}, {lr}, {batches}")
    max_iter = int(max_iter)
    start = random_init(problem, seed, init_std) if init is None else init
    _check_shapes(problem, *start)
    params = [torch.tensor(np.asarray(a, dtype=np.float64)) for a in start]
    f = _Objective(problem)
    with _one_thread():
        it, history = _SOLVERS[solver](f, params, lr=lr, gtol=gtol, max_iter=max_iter, seed=seed,
                                       batches=batches)
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
        rate = lr * ADAM_DECAY ** (t - 1) * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        for prm, g, mi, vi in zip(params, grads, m, v):
            mi.mul_(beta1).add_(g, alpha=1 - beta1)
            vi.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            prm.addcdiv_(mi, vi.sqrt().add_(eps * math.sqrt(1 - beta2 ** t)), value=-rate)
    return _first_order(f, params, lr=lr, step=step, **kw)


def _sgd(f, params, *, lr, gtol, max_iter, seed, batches):
    W, H, b = params
    rng = np.random.default_rng(seed)
    labels = f.problem.labels
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
    opt = torch.optim.LBFGS(params, lr=lr, max_iter=LBFGS_CHUNK, history_size=50, tolerance_grad=0.0,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")

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
