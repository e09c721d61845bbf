"""The unconstrained features model (UFM) of Neural Collapse, solved numerically in float64.

Notation (Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS
2021, arXiv 2105.02375): C classes, n_c samples in class c, N = sum_c n_c, feature dimension p, free features
H = [h_1 .. h_N] (p x N), classifier W (C x p) with rows w_k, bias b (C). The problem is

    f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2
                 + lambda_b/2 ||b||^2                             (Zhu et al.'s regularised UFM)

(without a bias, UFMProblem(bias=False), b = 0 and its term are dropped: the UFM of Thrampoulidis et al.
2022 and, regularised, the Layer-Peeled Model of Fang et al. 2021), with L the cross-entropy ("ce") or
the squared error to the one-hot target ("mse"),
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

both non-trivial (q* > 0) exactly when C kappa < 1; for C kappa >= 1 the minimiser is W = H = 0
(the regulariser outweighs any reduction of the loss; for MSE with lambda_b = 0 then b = 1/C).
For MSE with lambda_b > 0 the bias shrinks to b = 1/(C (1 + lambda_b)) while lambda_b is small; for
larger lambda_b the rows of W acquire a common component and W is no longer an ETF (observed at
lambda_b = 0.5 with C = 4), so the MSE closed form here is stated for lambda_b = 0.

Helpers for the suite's other UFM claims: the exact Hessian of f and critical points that are not global
minimisers (`hessian`, `frame_critical_point`: Zhu et al.'s strict saddles), the geometry of the class
means when p < C-1 (no simplex ETF fits), the Webb & Lowe least-squares classifier on given features,
and under class imbalance the SELI geometry (`seli_geometry`, Thrampoulidis et al. 2022), the
minority-collapse threshold (`minority_collapse_ratio`, Fang et al. 2021) and a sweep over the imbalance
ratio, kept in the run store (`imbalance_sweep_stored`) so that the report draws it without solving
again (`stored_imbalance_sweeps`). The statistics the claims check are defined in the claim files
(claims/test_ufm_*.py).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ncsim import metrics
from ncsim.spec import check_choice
from ncsim.store import Record, RunStore, utc_stamp
from ncsim.threads import limit_threads

LOSSES = ("ce", "mse")   # the UFM's losses: cross-entropy and MSE (the network's are ncsim.spec.LOSSES)

SOLVERS = ("gd", "sgd", "adam", "lbfgs")
# Step sizes that converge on the suite's problems (lambdas 5e-3..5e-2, init_std 1); LBFGS line-searches.
DEFAULT_LR = {"gd": 1.0, "sgd": 0.5, "adam": 0.1, "lbfgs": 1.0}
DEFAULT_MAX_ITER = {"gd": 40_000, "sgd": 40_000, "adam": 40_000, "lbfgs": 2_000}
# Adam's lr decays by this factor per step: with a constant lr, 2 of 20 runs of the claims' problems
# stalled above gtol = 1e-8 for 20000 steps (Adam's normalised steps do not shrink with the gradient).
ADAM_DECAY = 0.9995
LBFGS_CHUNK = 25
DEFAULT_GTOL = 1e-8
# Bump when a change to the solvers, to UFMProblem or to the sweep changes what a stored solve or sweep
# holds: the store's old records then stop matching. 2: UFMProblem.bias; the imbalance sweep without
# bias, its means centred at the mean of the class means, with SELI distances.
UFM_VERSION = 2


@dataclass(frozen=True)
class UFMProblem:
    """One UFM instance. `counts` is n (balanced, n per class) or the per-class counts (n_1, .., n_C).
    `bias` False: the model has no bias (the UFM of Thrampoulidis et al. 2022 and the Layer-Peeled Model
    of Fang et al. 2021): b is held at 0 (its gradient is 0, every solver leaves it there) and
    lambda_b must be 0."""

    num_classes: int
    dim: int
    counts: int | tuple[int, ...]
    lambda_w: float = 1e-2
    lambda_h: float = 1e-2
    lambda_b: float = 1e-2
    loss: str = "ce"
    bias: bool = True

    def __post_init__(self):
        C, p = self.num_classes, self.dim
        if isinstance(C, bool) or not isinstance(C, int) or C < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {C!r}")
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise ValueError(f"dim (p) must be an int >= 1, got {p!r}")
        counts = (self.counts,) * C if np.ndim(self.counts) == 0 else tuple(self.counts)
        if len(counts) != C or any(isinstance(k, bool) or int(k) != k or k < 1 for k in counts):
            raise ValueError(f"counts must be an int >= 1 or {C} ints >= 1, got {self.counts!r}")
        object.__setattr__(self, "counts", tuple(int(k) for k in counts))
        for lam in ("lambda_w", "lambda_h", "lambda_b"):
            if not getattr(self, lam) >= 0:
                raise ValueError(f"{lam} must be >= 0, got {getattr(self, lam)!r}")
        check_choice("loss", self.loss, LOSSES)
        if not isinstance(self.bias, bool) or (not self.bias and self.lambda_b != 0):
            raise ValueError(f"bias must be True or False, and lambda_b 0 without a bias; got bias={self.bias!r}, "
                             f"lambda_b={self.lambda_b!r}")

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

    @property
    def norm_ratio(self) -> float:
        """sqrt(n lambda_H / lambda_W) = ||w_k|| / ||h_{k,i}|| at every critical point with h_{k,i} = alpha w_k
        (balanced only; module docstring)."""
        if not self.balanced:
            raise ValueError("the norm ratio and the closed form are defined for balanced classes only")
        return math.sqrt(self.counts[0] * self.lambda_h / self.lambda_w)


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
        df/dW = G^T H_B^T + lambda_W W, df/dH_B = W^T G^T + (N/|B|) lambda_H H_B, df/db = G^T 1 + lambda_b b
        (0 without a bias). Without `batch`, H_B = H."""
        pr = self.problem
        with torch.no_grad():
            Hb, y, target = self._batch(H, batch)
            Z = Hb.T @ W.T + b
            G = (torch.softmax(Z, 1) if pr.loss == "ce" else Z) - target
            G /= Hb.shape[1]
            grads = (G.T @ Hb.T + pr.lambda_w * W,
                     W.T @ G.T + (pr.lambda_h * pr.num_samples / Hb.shape[1]) * Hb,
                     (G.sum(0) + pr.lambda_b * b) if pr.bias else torch.zeros_like(b))
            return self.value(W, H, b, batch), grads


def _double(*arrays) -> list[torch.Tensor]:
    return [torch.as_tensor(a, dtype=torch.float64) for a in arrays]


def objective(problem: UFMProblem, W, H, b) -> torch.Tensor:
    """f(W, H, b) (module docstring) as a differentiable float64 torch scalar."""
    return _Objective(problem).value(*_double(W, H, b))


def gradient(problem: UFMProblem, W, H, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(df/dW, df/dH, df/db) in closed form, as used by the solvers."""
    return tuple(g.numpy() for g in _Objective(problem).value_and_grad(*_double(W, H, b))[1])


def _norm(tensors: Sequence[torch.Tensor]) -> float:
    return math.sqrt(float(sum((t * t).sum() for t in tensors)))


def _check_shapes(problem: UFMProblem, W, H, b):
    C, p, N = problem.num_classes, problem.dim, problem.num_samples
    for name, arr, shape in (("W", W, (C, p)), ("H", H, (p, N)), ("b", b, (C,))):
        if tuple(np.shape(arr)) != shape:
            raise ValueError(f"{name} has shape {tuple(np.shape(arr))}, expected {shape}")
    if not problem.bias and np.any(np.asarray(b) != 0):
        raise ValueError("a problem without bias takes b = 0")


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
    """W, H, b with i.i.d. N(0, init_std^2) entries from a torch.Generator seeded with `seed` (b = 0
    without a bias)."""
    g = torch.Generator().manual_seed(int(seed))
    C, p, N = problem.num_classes, problem.dim, problem.num_samples
    W, H, b = (init_std * torch.randn(*shape, generator=g, dtype=torch.float64) for shape in ((C, p), (p, N), (C,)))
    return W, H, b if problem.bias else torch.zeros_like(b)


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
    search, stopped early once a chunk of LBFGS_CHUNK iterations lowers neither f nor the gradient norm
    (its line search cannot resolve f below float64 precision; converged is then False). `iterations` counts parameter updates (SGD:
    minibatch steps; LBFGS: its inner iterations). Deterministic for a given seed.
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


# ---- the balanced closed form ----------------------------------------------------------------------------

def reduced_objective(problem: UFMProblem, q) -> np.ndarray:
    """g(q) = L_etf(q) + C kappa q: f at the balanced simplex-ETF point with ||w_k|| ||h_{k,i}|| = q
    (module docstring). CE: L_etf = log(1 + (C-1) exp(-C q/(C-1))); MSE (lambda_b = 0, b = 1/C):
    L_etf = (C-1)/(2C) (C q/(C-1) - 1)^2."""
    C, kappa = problem.num_classes, problem.kappa
    margin = C * np.asarray(q, dtype=np.float64) / (C - 1)
    if problem.loss == "ce":
        data = np.log1p((C - 1) * np.exp(-margin))
    else:
        _mse_closed_form_applies(problem)
        data = (C - 1) / (2 * C) * (margin - 1) ** 2
    return data + C * kappa * np.asarray(q)


def _mse_closed_form_applies(problem: UFMProblem) -> None:
    if problem.loss == "mse" and problem.lambda_b != 0:
        raise ValueError("the MSE closed form is derived for an unregularised bias (lambda_b = 0)")


def optimal_product(problem: UFMProblem) -> float:
    """q* = argmin_q g(q) >= 0, the product ||w_k|| ||h_{k,i}|| at every global minimiser (balanced,
    p >= C-1): CE q* = (C-1)/C log((1 - (C-1) kappa)/kappa), MSE q* = (C-1)/C (1 - C kappa), and q* = 0
    when C kappa >= 1 (module docstring; derived from g'(q) = 0, g being convex)."""
    C, kappa = problem.num_classes, problem.kappa
    _mse_closed_form_applies(problem)
    if C * kappa >= 1:
        return 0.0
    if problem.loss == "ce":
        return (C - 1) / C * math.log((1 - (C - 1) * kappa) / kappa)
    return (C - 1) / C * (1 - C * kappa)


def optimal_objective(problem: UFMProblem) -> float:
    """g(q*), the global minimum value of f (balanced, p >= C-1; CE, or MSE with lambda_b = 0)."""
    return float(reduced_objective(problem, optimal_product(problem)))


def trivial_objective(problem: UFMProblem) -> float:
    """f(0) = f at W = H = 0 with the best bias, the global minimum value when C kappa >= 1: log C (CE,
    b = 0) or (C-1)/(2C) (MSE with lambda_b = 0, b = 1/C)."""
    C = problem.num_classes
    _mse_closed_form_applies(problem)
    return math.log(C) if problem.loss == "ce" else (C - 1) / (2 * C)


def simplex_etf(num_classes: int, dim: int, rng: np.random.Generator | int = 0) -> np.ndarray:
    """C unit vectors in R^p (rows, C x p) with pairwise cosines -1/(C-1), in a random orientation:
    sqrt(C/(C-1)) V Q^T with V V^T = I - 11^T/C (V: C x (C-1)) and Q (p x (C-1)) random orthonormal."""
    C, p = num_classes, dim
    if p < C - 1:
        raise ValueError(f"a simplex ETF of {C} vectors needs dim >= C-1 = {C - 1}, got {p}")
    rng = np.random.default_rng(rng)
    eigval, eigvec = np.linalg.eigh(np.eye(C) - 1 / C)
    V = eigvec[:, eigval > 0.5]
    Q, _ = np.linalg.qr(rng.standard_normal((p, C - 1)))
    return math.sqrt(C / (C - 1)) * V @ Q.T


def closed_form_minimizer(problem: UFMProblem, rng: np.random.Generator | int = 0):
    """A global minimiser (W, H, b) of a balanced problem with p >= C-1 (one of the rotations
    W -> W Q, H -> Q^T H): rows w_k = rho_W e_k of a simplex ETF, h_{k,i} = (rho_H/rho_W) w_k with
    rho_W^2 = q* sqrt(n lambda_H/lambda_W), rho_H^2 = q* sqrt(lambda_W/(n lambda_H)); b = 0 (CE) or
    b = 1/C (MSE, lambda_b = 0)."""
    pr = problem
    q = optimal_product(pr)
    ratio = pr.norm_ratio                                            # ||w_k|| / ||h_{k,i}||
    W = math.sqrt(q * ratio) * simplex_etf(pr.num_classes, pr.dim, rng)
    H = (W / ratio)[pr.labels].T
    b = np.full(pr.num_classes, 0.0 if pr.loss == "ce" else 1 / pr.num_classes)
    return W, H, b


# A stored solve's record: its meta's "kind", and the prefix of its key (solve_key).
SOLVE_KIND = "ufm-solve"
SOLVE_KEY_PREFIX = "ufm-solve-"
_SOLVED: dict[str, UFMResult] = {}   # this process's solves, by solve_key


def _stored_key(prefix: str, params: dict) -> str:
    """`prefix` + the first 20 hex digits of the SHA-256 of the canonical JSON (sorted keys, no spaces)
    of `params` and UFM_VERSION: the store key of a stored UFM result."""
    text = json.dumps({"params": params, "ufm_version": UFM_VERSION}, sort_keys=True, separators=(",", ":"))
    return prefix + hashlib.sha256(text.encode()).hexdigest()[:20]


def solve_key(problem: UFMProblem, solver: str, seed: int, gtol: float, max_iter: int | None) -> str:
    """The store key of `solve(problem, solver, seed=seed, gtol=gtol, max_iter=max_iter)` with the
    default step sizes (_stored_key of those arguments)."""
    return _stored_key(SOLVE_KEY_PREFIX, {"problem": asdict(problem), "solver": solver, "seed": seed,
                                          "gtol": gtol, "max_iter": max_iter})


def solve_cached(problem: UFMProblem, solver: str = "lbfgs", seed: int = 0, *, gtol: float = DEFAULT_GTOL,
                 max_iter: int | None = None, store: RunStore | None = None) -> UFMResult:
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
        meta = {"kind": SOLVE_KIND, "solver": solver, "seed": seed, "gtol": gtol, "max_iter": max_iter,
                "problem": asdict(problem), "ufm_version": UFM_VERSION, "created": utc_stamp()}
        return Record(key, meta, {"W": r.W, "H": r.H, "b": r.b, "history": np.asarray(r.history),
                                  "objective": np.float64(r.objective), "grad_norm": np.float64(r.grad_norm),
                                  "iterations": np.int64(r.iterations), "converged": np.bool_(r.converged)})
    a = store.get_or_create(key, create).arrays
    _SOLVED[key] = UFMResult(problem, a["W"], a["H"], a["b"], float(a["objective"]), float(a["grad_norm"]),
                             int(a["iterations"]), bool(a["converged"]), gtol, solver, seed,
                             tuple(a["history"].tolist()))
    return _SOLVED[key]


# ---- critical points that are not global minimisers (Zhu et al. 2021, Thm 3.2) ----------------------------

def _parameters(problem: UFMProblem, W, H, b) -> torch.Tensor:
    """The variables of f as one float64 vector: vec(W), vec(H) and, with a bias, b."""
    parts = [torch.as_tensor(np.asarray(a, dtype=np.float64)).reshape(-1) for a in (W, H, b)]
    return torch.cat(parts if problem.bias else parts[:2])


def _unpack(problem: UFMProblem, x: torch.Tensor):
    C, p, N = problem.num_classes, problem.dim, problem.num_samples
    W, H = x[:C * p].reshape(C, p), x[C * p:C * p + p * N].reshape(p, N)
    return W, H, x[C * p + p * N:] if problem.bias else torch.zeros(C, dtype=x.dtype)


def hessian(problem: UFMProblem, W, H, b) -> np.ndarray:
    """The exact Hessian of f at (W, H, b) with respect to its variables (vec W, vec H and, with a bias,
    b; D = Cp + pN (+ C)), a symmetric D x D float64 array: torch.autograd.functional.hessian of
    `objective`, i.e. second derivatives by automatic differentiation, not finite differences."""
    _check_shapes(problem, W, H, b)
    f = _Objective(problem)
    with limit_threads(1):  # as in solve: more threads only cost time on problems this small
        hess = torch.autograd.functional.hessian(lambda x: f.value(*_unpack(problem, x)), _parameters(problem, W, H, b))
    return hess.numpy()


def logit_gradient(problem: UFMProblem, W, H, b) -> np.ndarray:
    """G = dL/dZ (C x N) at Z = W H + b 1^T, L the data term (1/N) sum_i L(z_i, y_i): (softmax(Z) - Y)/N
    (CE) or (Z - Y)/N (MSE), so that df/dW = G H^T + lambda_W W and df/dH = W^T G + lambda_H H."""
    W, H, b = _double(W, H, b)
    pr = problem
    Z = W @ H + b[:, None]
    target = F.one_hot(torch.as_tensor(pr.labels), pr.num_classes).double().T
    return (((torch.softmax(Z, 0) if pr.loss == "ce" else Z) - target) / pr.num_samples).numpy()


def frame_point(problem: UFMProblem, frame, alpha: float, gamma: float, b) -> tuple[np.ndarray, ...]:
    """(W, H, b) with rows w_k = alpha e_k and features h_i = gamma e_{y_i}, e_k the rows of `frame`
    (C x r, r <= p) written into the first r coordinates of R^p."""
    E = _padded_frame(problem, frame)
    return alpha * E, gamma * E[problem.labels].T, np.asarray(b, dtype=np.float64)


def _padded_frame(problem: UFMProblem, frame) -> np.ndarray:
    """The frame (C x r, r <= p) padded with zero columns to C x p."""
    E = np.asarray(frame, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] != problem.num_classes or E.shape[1] > problem.dim:
        raise ValueError(f"a frame of {problem.num_classes} rows and at most {problem.dim} columns, got {E.shape}")
    return np.pad(E, ((0, 0), (0, problem.dim - E.shape[1])))


def frame_critical_point(problem: UFMProblem, frame=None) -> UFMResult:
    """A critical point of f built from a frame (C x r rows e_k, or None for W = H = 0): the point
    frame_point(problem, frame, alpha, gamma, b) whose scales alpha, gamma and bias b minimise f
    over that family (a problem in 2 + C variables, solved by Newton's method with the exact Hessian
    to float64 precision; with frame None only b, and without a bias nothing, is solved).

    Why such a point is critical for f itself (principle of symmetric criticality): when the frame is
    the set of points fixed by a group of symmetries of f (permutations of classes with their samples,
    combined with orthogonal maps of R^p), the gradient of f at a fixed point is itself fixed, so it
    lies in the family's tangent space and vanishes when the family's own gradient does. Examples:
    W = H = 0; classes merged in pairs (rows e, e, -e, -e: rank 1); some classes on a smaller simplex
    ETF and the others at w_k = h_k = 0. Whether a given frame qualifies is not assumed here: the
    returned UFMResult carries the full gradient norm ||grad f|| of the point."""
    C = problem.num_classes
    E = _padded_frame(problem, np.zeros((C, 1)) if frame is None else frame)
    scaled = frame is not None and bool(np.any(E))
    if not scaled and frame is not None:
        raise ValueError("a frame with a nonzero row, or None for W = H = 0")
    f = _Objective(problem)
    E_t, labels = torch.as_tensor(E), torch.as_tensor(problem.labels)

    def family(theta: torch.Tensor) -> torch.Tensor:
        alpha, gamma = (theta[0], theta[1]) if scaled else (0.0, 0.0)
        b = theta[2 if scaled else 0:] if problem.bias else torch.zeros(C, dtype=torch.float64)
        return f.value(alpha * E_t, gamma * E_t[labels].T, b)

    theta = torch.tensor([1.0, 1.0] * scaled + [0.0] * (C if problem.bias else 0), dtype=torch.float64)
    if len(theta):
        with limit_threads(1):
            theta = _newton(family, theta)
    alpha, gamma = (float(theta[0]), float(theta[1])) if scaled else (0.0, 0.0)
    b = theta[2 if scaled else 0:].numpy() if problem.bias else np.zeros(C)
    return evaluate(problem, *frame_point(problem, E, alpha, gamma, b), solver="frame")


def _newton(fun, theta: torch.Tensor, max_iter: int = 200) -> torch.Tensor:
    """Damped Newton's method on a small smooth function (autograd gradient and Hessian; the Hessian
    shifted to positive definite where it is not, and each step halved until f decreases), run until
    the gradient stops shrinking: a minimiser to float64 precision."""
    best = math.inf
    for _ in range(max_iter):
        x = theta.detach().requires_grad_()
        value = fun(x)
        grad, = torch.autograd.grad(value, x)
        value = float(value.detach())
        gnorm = float(grad.norm())
        if gnorm == 0 or gnorm >= best and gnorm < 1e-12:
            break
        best = min(best, gnorm)
        hess = torch.autograd.functional.hessian(fun, theta)
        eig_min = float(torch.linalg.eigvalsh(hess)[0])
        shift = max(0.0, 1e-8 - eig_min)
        step = torch.linalg.solve(hess + shift * torch.eye(len(theta), dtype=theta.dtype), grad)
        t = 1.0
        while t > 1e-12 and float(fun(theta - t * step)) > value + 1e-15 * abs(value):
            t /= 2
        theta = (theta - t * step).detach()
    return theta.detach()


# ---- p < C-1: the class means cannot form a simplex ETF -------------------------------------------------

def centered_mean_gram(features, labels, num_classes: int, center: str = "sample") -> np.ndarray:
    """A A^T (C x C) with rows of A the centered class means mu_c - m (ncsim.metrics.centered_means: m
    the sample mean mu_G over all N, or with center="classes" the unweighted mean of the class means);
    valid for any p, including p < C-1."""
    A = metrics.centered_means(features, labels, num_classes, center=center)
    return A @ A.T


def etf_gram_distance(gram: np.ndarray) -> float:
    """|| G/||G||_F - (I - 11^T/C)/sqrt(C-1) ||_F (Zhu et al. 2021, Sec. 4), via ncsim.metrics."""
    return float(metrics.etf_distance(gram, "centered class means' Gram matrix"))


def etf_distance_lower_bound(num_classes: int, dim: int) -> float:
    """min over centered configurations of C means in R^p of the ETF Gram distance:
    sqrt(2 - 2 sqrt(min(p, C-1)/(C-1))).

    Derivation: with E = (I - 11^T/C)/sqrt(C-1) (unit Frobenius norm, C-1 eigenvalues 1/sqrt(C-1)) and
    G = A A^T/||A A^T||_F, ||G - E||_F^2 = 2 - 2 <G, E>. Centered means give G 1 = 0, so
    <G, E> = Tr(G)/sqrt(C-1) = sum_j s_j / sqrt(C-1) over the <= p nonzero eigenvalues s_j of G with
    sum_j s_j^2 = 1, at most sqrt(p)/sqrt(C-1) (Cauchy-Schwarz), with equality iff the s_j are equal:
    the means form a tight frame of R^p (for p = 2, a regular C-gon)."""
    return math.sqrt(max(0.0, 2 - 2 * math.sqrt(min(dim, num_classes - 1) / (num_classes - 1))))


def embedded_features(features, num_classes: int) -> np.ndarray:
    """Features padded with zero coordinates up to C-1 dimensions: an isometric embedding, so every
    statistic of ncsim.metrics is unchanged and collapse_metrics accepts p < C-1."""
    h = np.asarray(features, dtype=np.float64)
    return np.pad(h, ((0, 0), (0, max(0, num_classes - 1 - h.shape[1]))))


# ---- Webb & Lowe: the least-squares classifier on fixed features ------------------------------------------

def webb_lowe_classifier(features, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The minimiser (W, b) of the unregularised least squares (1/N) sum_i ||W h_i + b - e_{y_i}||^2
    (Papyan, Han & Donoho, PNAS 2020, Proposition 1, after Webb & Lowe 1990):

        W = diag(pi) M^T Sigma_T^+,   b = pi - W mu_G,     pi_c = N_c / N,

    M = [mu_c - mu_G] (p x C), Sigma_T = (1/N) sum_i (h_i - mu_G)(h_i - mu_G)^T, mu_G the sample mean.
    For balanced classes (pi = 1/C) this is the proposition's W = (1/C) M^T Sigma_T^+,
    b = (1/C) 1 - (1/C) M^T Sigma_T^+ mu_G. Derivation: the normal equation in b gives b = pi - W mu_G;
    substituting, the one in W is W Sigma_T = (1/N) sum_i (e_{y_i} - pi)(h_i - mu_G)^T, whose row c is
    pi_c (mu_c - mu_G). With Sigma_T singular, Sigma_T^+ picks the solution whose rows lie in the span
    of the centered features (the minimum-norm W). Computed by ncsim.metrics.ridge_classifier at
    lambda = 0 (the one implementation of the least-squares classifier), whose Sigma_T^+ keeps the
    eigenvalues above max(N, p) * eps * lambda_max (eps = float64 machine epsilon: the rounding of a sum
    of N outer products; for float32 features the larger cut of their own resolution); with collapsed
    features Sigma_T has rank C-1 and the rest is rounding noise.
    """
    return metrics.ridge_classifier(features, labels, num_classes, 0.0)


def lstsq_deviation(features, labels, num_classes: int, W, b) -> float:
    """max |[W b] - [W b]_lstsq| / max |[W b]_lstsq|, [W b]_lstsq from np.linalg.lstsq of
    [H^T 1] [W b]^T = Y (one-hot rows). Unique when [H^T 1] has full column rank."""
    h, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    design = np.hstack([h, np.ones((len(h), 1))])
    solution = np.linalg.lstsq(design, np.eye(num_classes)[y], rcond=None)[0].T
    return float(np.abs(np.hstack([W, np.asarray(b)[:, None]]) - solution).max() / np.abs(solution).max())


# ---- class imbalance: SELI and minority collapse -------------------------------------------------------

def _psd_power(A: np.ndarray, power: float) -> np.ndarray:
    """A^power of a symmetric PSD matrix on its range (eigenvalues <= C eps max are taken as 0, so
    power -1/2 is the pseudo-inverse square root)."""
    eigval, eigvec = np.linalg.eigh(A)
    kept = eigval > len(A) * np.finfo(np.float64).eps * eigval.max()
    return (eigvec[:, kept] * eigval[kept] ** power) @ eigvec[:, kept].T


def seli_geometry(counts: Sequence[int]) -> dict[str, np.ndarray]:
    """The SELI geometry (simplex-encoded-labels interpolation; Thrampoulidis, Kini, Vakilian & Behnia,
    "Imbalance Trouble: Revisiting Neural-Collapse Geometry", NeurIPS 2022, arXiv 2208.05512,
    Definition 2) of classes with `counts` n_1..n_k, as three k x k targets, each up to a positive scale.

    In the paper's notation (k classes, n samples, classifier W (k x d), embeddings H (d x n)): the SEL
    matrix is Zhat = [e_{y_i} - 1/k 1]_i (k x n), with SVD Zhat = V Lambda U^T, and (W, H) follow SELI
    when, for some alpha > 0, W W^T = alpha V Lambda V^T, H^T H = alpha U Lambda U^T and W H = alpha Zhat.
    With P = I - 11^T/k and D = diag(n_c), Zhat = P Y (Y the one-hot k x n labels), so
    V Lambda V^T = (Zhat Zhat^T)^(1/2) = (P D P)^(1/2). Every column of a class is the same, so the
    embeddings collapse to class means mu_c = H Y^T D^{-1} e_c, with Gram
    M^T M = P V Lambda^{-1} V^T P = (P D P)^(+1/2) (pseudo-inverse square root; V^T 1 = 0, so the
    means already sum to zero: centred at the unweighted mean of the class means, not at the
    count-weighted sample mean), and the class-mean logits are W mu_c = P e_c. Returned:

      "W"       (P D P)^(1/2)      the classifier Gram W W^T
      "means"   (P D P)^(+1/2)     the Gram of the class means centred at their unweighted mean
      "logits"  P                  [W mu_1 .. W mu_k] (the SEL matrix's distinct columns)

    For balanced classes all three are the simplex ETF's P. The paper proves that the CE UFM without
    bias converges to SELI as the ridge regularisation vanishes, and cautions that convergence worsens
    as the imbalance grows (abstract)."""
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or len(n) < 2 or (n <= 0).any():
        raise ValueError(f"need >= 2 positive class counts, got {counts!r}")
    P = np.eye(len(n)) - 1 / len(n)
    PDP = P @ np.diag(n) @ P
    return {"W": _psd_power(PDP, 0.5), "means": _psd_power(PDP, -0.5), "logits": P}


def class_means(result: UFMResult) -> np.ndarray:
    """mu_c = mean of the features of class c, rows of a C x p array (not centred)."""
    return np.stack([result.H[:, result.labels == c].mean(1) for c in range(result.problem.num_classes)])


def imbalance_geometry(result: UFMResult) -> dict[str, float]:
    """The statistics of one imbalanced UFM point (majority classes first, UFMProblem.imbalanced):

      minority_cos / majority_cos   mean pairwise cosine of the classifier rows of the minority (last
                                    floor(C/2)) / majority classes: -1/(C-1) at an ETF, 1 when the
                                    minority classifiers coincide (minority collapse, Fang et al. 2021)
      minority_norm_ratio           mean ||w_minority|| / mean ||w_majority||
      means_etf_distance            ETF Gram distance of the class means centred at their UNWEIGHTED
                                    mean (metrics.centered_means center="classes": an exact simplex ETF
                                    gives 0 whatever the counts; the count-weighted sample mean would
                                    not, see there)
      w_etf_distance                ETF Gram distance of the rows of W (at a CE critical point without
                                    bias they sum to 0: 1^T df/dW = lambda_W 1^T W)
      seli_w_distance, seli_means_distance, seli_logits_distance
                                    metrics.direction_distance of W W^T, of the centred means' Gram and of
                                    the class-mean logits [W mu_c] from seli_geometry(counts)
      objective, grad_norm, converged, iterations"""
    r, C = result, result.problem.num_classes
    major = (C + 1) // 2
    norms = np.linalg.norm(r.W, axis=1)
    A = metrics.centered_means(r.features, r.labels, C, center="classes")
    seli = seli_geometry(r.problem.counts)
    return {"minority_cos": _mean_pairwise_cosine(r.W[major:]), "majority_cos": _mean_pairwise_cosine(r.W[:major]),
            "minority_norm_ratio": norms[major:].mean() / norms[:major].mean(),
            "means_etf_distance": etf_gram_distance(A @ A.T), "w_etf_distance": etf_gram_distance(r.W @ r.W.T),
            "seli_w_distance": metrics.direction_distance(r.W @ r.W.T, seli["W"]),
            "seli_means_distance": metrics.direction_distance(A @ A.T, seli["means"]),
            "seli_logits_distance": metrics.direction_distance(r.W @ class_means(r).T, seli["logits"]),
            "objective": r.objective, "grad_norm": r.grad_norm, "converged": float(r.converged),
            "iterations": float(r.iterations)}


def _mean_pairwise_cosine(rows: np.ndarray) -> float:
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = unit @ unit.T
    return float(cos[~np.eye(len(rows), dtype=bool)].mean())


# The minority classifiers count as collapsed when their mean pairwise cosine is >= 1 - COLLAPSE_TOL. At
# the threshold the objective is flat to fourth order in their angle theta (a pitchfork: theta^2 grows
# linearly below it), so a solve to ||grad f|| <= 1e-8 resolves theta only to ~(1e-8)^(1/3), and 1 - cos
# to ~1e-5, there (measured at R = R_c, lambda = 1e-2, 5e-3, 2.5e-3, seeds 0-5: 2e-6..5e-5); one step
# below it 1 - cos is 1.6e-3..1.8e-2, and one step above <= 1e-12. A ratio at the threshold itself may
# fall on either side of 1e-4; the claim's statistics allow for that (one step).
COLLAPSE_TOL = 1e-4

# The sweep's parameters (R values, seeds, gtol) belong to claims/test_ufm_imbalance.py.
# A stored sweep's record: its meta's "kind", and the prefix of its key (imbalance_sweep_key).
IMBALANCE_KIND = "ufm-imbalance-sweep"
IMBALANCE_KEY_PREFIX = "ufm-imbalance-"


def _imbalanced_problem(num_classes, dim, n_min, n_maj, lam, loss, bias) -> UFMProblem:
    return UFMProblem.imbalanced(num_classes, dim, n_min, n_maj / n_min, lambda_w=lam, lambda_h=lam,
                                 lambda_b=lam if bias else 0.0, loss=loss, bias=bias)


def imbalance_sweep(R_values: Sequence[float], *, num_classes: int = 4, dim: int = 4, n_min: int = 1,
                    lam: float = 5e-3, loss: str = "ce", bias: bool = False, solver: str = "lbfgs",
                    seed: int = 0, gtol: float = DEFAULT_GTOL, max_iter: int | None = None,
                    refine: bool = True, collapse_tol: float = COLLAPSE_TOL, store: RunStore | None = None
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
    first = next((m for m in grid if collapsed(m)), None)      # (collapsed(m) solves at m)
    for m in grid:
        at(m)
    if refine and first is not None and first != grid[0]:
        lo, hi = max(m for m in grid if m < first), first
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if collapsed(mid) else (mid, hi)
    keys = ("R", *at(grid[0]), "refined")
    return {key: np.array([m / n_min if key == "R" else float(m not in grid) if key == "refined" else rows[m][key]
                           for m in sorted(rows)], dtype=np.float64) for key in keys}


def collapse_threshold(sweep: dict[str, np.ndarray], collapse_tol: float = COLLAPSE_TOL) -> float:
    """R* = the smallest R of a sweep whose minority classifiers are collapsed (minority_cos >=
    1 - collapse_tol); inf when none is."""
    collapsed = sweep["R"][sweep["minority_cos"] >= 1 - collapse_tol]
    return float(collapsed.min()) if len(collapsed) else math.inf


def minority_collapse_ratio(num_classes: int, n_min: int, lambda_w: float, lambda_h: float) -> float:
    """R_c: the imbalance ratio above which the collapsed configuration of the minority classifiers is
    stable, for the CE UFM without bias (derived here; checked against the solved sweeps by
    claims/test_ufm_imbalance.py):

        R_c = (sqrt(n_min / (lambda_W lambda_H)) - K_B n_min) / (K_A n_min),

    K_A = ceil(C/2) majority classes of n_maj = R n_min samples, K_B = floor(C/2) minority classes of
    n_min (UFMProblem.imbalanced); for C = 4, n_min = 1, lambda_W = lambda_H = lambda: 1/(2 lambda) - 1.

    Derivation. Take a critical point at which the minority rows w_a and the minority features coincide
    (they do at any point fixed by the permutations of the minority classes, which are symmetries of f
    since those classes have equal counts). Split them along a unit contrast u over the minority classes
    (u^T 1 = 0, 0 on the majority) and a unit vector d of R^p orthogonal to every row and feature (one
    exists when p > rank W): W + x u d^T, H + y d v^T with v a unit vector over the samples. The logits
    W H move only at second order, by x y u v^T, so the curvature along (x, y) is
    lambda_W x^2 + lambda_H y^2 + 2 x y u^T G v with G = (softmax(Z) - Y)/N (logit_gradient). The minority
    logits are equal there, so (u^T G)_i = -u_{y_i}/N on the minority samples and 0 on the others:
    ||u^T G|| = sqrt(n_min)/N. The curvature is negative for some (x, y) and v, i.e. the collapsed point
    is a strict saddle and the minority classifiers split, iff sqrt(n_min)/N > sqrt(lambda_W lambda_H),
    i.e. iff N = K_A n_maj + K_B n_min < sqrt(n_min / (lambda_W lambda_H)). (The same test as for W = H = 0
    of a balanced problem, where sigma_1(G) = 1/(C sqrt(n)): there it gives C kappa < 1.)"""
    K_A, K_B = (num_classes + 1) // 2, num_classes // 2
    return (math.sqrt(n_min / (lambda_w * lambda_h)) - K_B * n_min) / (K_A * n_min)


def seli_path(R: float, lams: Sequence[float], *, num_classes: int = 4, dim: int = 4, n_min: int = 1,
              loss: str = "ce", solver: str = "lbfgs", seed: int = 0, gtol: float = DEFAULT_GTOL,
              store: RunStore | None = None) -> dict[str, np.ndarray]:
    """The regularisation path at one imbalance ratio R: the imbalanced UFM without bias
    (lambda_W = lambda_H = lam) solved for each lam (solve_cached, kept in `store`), as arrays over lam
    in the order given: "lam" and imbalance_geometry's columns (its SELI distances above all)."""
    rows = [imbalance_geometry(solve_cached(_imbalanced_problem(num_classes, dim, n_min, int(round(R * n_min)),
                                                                lam, loss, False), solver, seed, gtol=gtol,
                                            store=store)) for lam in lams]
    return {"lam": np.asarray(lams, dtype=np.float64),
            **{key: np.array([row[key] for row in rows], dtype=np.float64) for key in rows[0]}}


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
    """The store key of a sweep: _stored_key of `params` (imbalance_sweep_params)."""
    return _stored_key(IMBALANCE_KEY_PREFIX, params)


def imbalance_sweep_stored(store: RunStore, R_values: Sequence[float], **kw) -> dict[str, np.ndarray]:
    """`imbalance_sweep(R_values, **kw)` (e.g. seed=, gtol=), solved once and kept in the run store: the
    record `imbalance_sweep_key(params)` is loaded if present, else computed and saved under the store's
    lock (one process solves, the others wait and load). Its meta is {"kind": IMBALANCE_KIND, "params",
    "ufm_version", "created" (UTC stamp)}, its arrays the sweep's float64 columns."""
    params = imbalance_sweep_params(R_values, **kw)
    key = imbalance_sweep_key(params)

    def create() -> Record:
        meta = {"kind": IMBALANCE_KIND, "params": params, "ufm_version": UFM_VERSION, "created": utc_stamp()}
        return Record(key, meta, imbalance_sweep(**params))
    return dict(store.get_or_create(key, create).arrays)


def stored_imbalance_sweeps(store: RunStore) -> dict[int, dict[str, np.ndarray]]:
    """The imbalance sweeps in `store` (written by imbalance_sweep_stored), seed -> sweep, in seed order;
    reads only, never solves. Records of another UFM_VERSION are passed over; of several sweeps with one
    seed (other R values, other parameters), the most recently created one is returned."""
    newest: dict[int, Record] = {}
    for key in store.keys():
        record = store.load(key) if key.startswith(IMBALANCE_KEY_PREFIX) else None
        meta = {} if record is None else record.meta
        if meta.get("kind") != IMBALANCE_KIND or meta.get("ufm_version") != UFM_VERSION:
            continue
        seed = int(record.meta["params"]["seed"])
        if seed not in newest or record.meta["created"] > newest[seed].meta["created"]:
            newest[seed] = record
    return {seed: dict(newest[seed].arrays) for seed in sorted(newest)}
