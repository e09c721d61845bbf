"""The unconstrained features model (UFM) of Neural Collapse, solved numerically in float64.

Notation (Zhu et al., "A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS
2021, arXiv 2105.02375): C classes, n_c samples in class c, N = sum_c n_c, feature dimension p, free features
H = [h_1 .. h_N] (p x N), classifier W (C x p) with rows w_k, bias b (C). The problem is

    f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2
                 + lambda_b/2 ||b||^2                             (Zhu et al.'s regularised UFM)

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

both non-trivial (q* > 0) exactly when C kappa < 1; for C kappa >= 1 the minimiser is W = H = 0
(the regulariser outweighs any reduction of the loss; for MSE with lambda_b = 0 then b = 1/C).
For MSE with lambda_b > 0 the bias shrinks to b = 1/(C (1 + lambda_b)) while lambda_b is small; for
larger lambda_b the rows of W acquire a common component and W is no longer an ETF (observed at
lambda_b = 0.5 with C = 4), so the MSE closed form here is stated for lambda_b = 0.

Helpers for the suite's other UFM claims: the geometry of the class means when p < C-1 (no simplex ETF
fits), the Webb & Lowe least-squares classifier on given features, and a class-imbalance sweep
(minority collapse, Fang et al. 2021; SELI geometry, Thrampoulidis et al. 2022), kept in the run store
(`imbalance_sweep_stored`) so that the report draws it without solving again (`stored_imbalance_sweeps`).
The statistics the claims check are defined in the claim files (claims/test_ufm_*.py).
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
from ncsim.spec import LOSSES, check_choice
from ncsim.store import Record, RunStore, utc_stamp
from ncsim.threads import limit_threads

SOLVERS = ("gd", "sgd", "adam", "lbfgs")
# Step sizes that converge on the suite's problems (lambdas 5e-3..5e-2, init_std 1); LBFGS line-searches.
DEFAULT_LR = {"gd": 1.0, "sgd": 0.5, "adam": 0.1, "lbfgs": 1.0}
DEFAULT_MAX_ITER = {"gd": 40_000, "sgd": 40_000, "adam": 40_000, "lbfgs": 2_000}
# Adam's lr decays by this factor per step: with a constant lr, 2 of 20 runs of the claims' problems
# stalled above gtol = 1e-8 for 20000 steps (Adam's normalised steps do not shrink with the gradient).
ADAM_DECAY = 0.9995
LBFGS_CHUNK = 25
DEFAULT_GTOL = 1e-8
# Bump when a change to the solvers or to the sweep changes what a stored imbalance sweep holds: the
# store's old records then stop matching.
UFM_VERSION = 1


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
        counts = (self.counts,) * C if np.ndim(self.counts) == 0 else tuple(self.counts)
        if len(counts) != C or any(isinstance(k, bool) or int(k) != k or k < 1 for k in counts):
            raise ValueError(f"counts must be an int >= 1 or {C} ints >= 1, got {self.counts!r}")
        object.__setattr__(self, "counts", tuple(int(k) for k in counts))
        for lam in ("lambda_w", "lambda_h", "lambda_b"):
            if not getattr(self, lam) >= 0:
                raise ValueError(f"{lam} must be >= 0, got {getattr(self, lam)!r}")
        check_choice("loss", self.loss, LOSSES)

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
    float64 arrays come back bit for bit. The result's arrays are shared between callers: do not
    modify them."""
    key = solve_key(problem, solver, seed, gtol, max_iter)
    if key in _SOLVED:
        return _SOLVED[key]
    if store is None:
        _SOLVED[key] = solve(problem, solver, seed=seed, gtol=gtol, max_iter=max_iter)
        return _SOLVED[key]

    def create() -> Record:
        r = solve(problem, solver, seed=seed, gtol=gtol, max_iter=max_iter)
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


# ---- p < C-1: the class means cannot form a simplex ETF -------------------------------------------------

def centered_mean_gram(features, labels, num_classes: int) -> np.ndarray:
    """A A^T (C x C) with rows of A the centered class means mu_c - mu_G, mu_G the sample mean over all
    N (ncsim.metrics.centered_means); valid for any p, including p < C-1."""
    A = metrics.centered_means(features, labels, num_classes)
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
    of the centered features (the minimum-norm W). Sigma_T^+ keeps the eigenvalues above
    max(N, p) * eps * lambda_max (eps = float64 machine epsilon: the rounding of a sum of N outer
    products); with collapsed features Sigma_T has rank C-1 and the rest is rounding noise.
    """
    h, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    counts = np.bincount(y, minlength=num_classes)
    if h.ndim != 2 or len(y) != len(h) or (counts == 0).any() or len(counts) != num_classes:
        raise ValueError("need features N x p and labels in [0, C) with every class present")
    pi = counts / len(y)
    mu_g = h.mean(0)
    M = metrics.centered_means(h, y, num_classes).T
    centered = h - mu_g
    eigval, eigvec = np.linalg.eigh(centered.T @ centered / len(y))                # Sigma_T
    kept = eigval > max(h.shape) * np.finfo(np.float64).eps * eigval.max()
    sigma_t_pinv = (eigvec[:, kept] / eigval[kept]) @ eigvec[:, kept].T
    W = pi[:, None] * (M.T @ sigma_t_pinv)
    return W, pi - W @ mu_g


def lstsq_deviation(features, labels, num_classes: int, W, b) -> float:
    """max |[W b] - [W b]_lstsq| / max |[W b]_lstsq|, [W b]_lstsq from np.linalg.lstsq of
    [H^T 1] [W b]^T = Y (one-hot rows). Unique when [H^T 1] has full column rank."""
    h, y = np.asarray(features, dtype=np.float64), np.asarray(labels)
    design = np.hstack([h, np.ones((len(h), 1))])
    solution = np.linalg.lstsq(design, np.eye(num_classes)[y], rcond=None)[0].T
    return float(np.abs(np.hstack([W, np.asarray(b)[:, None]]) - solution).max() / np.abs(solution).max())


# ---- class imbalance ---------------------------------------------------------------------------------------

def _mean_pairwise_cosine(rows: np.ndarray) -> float:
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = unit @ unit.T
    return float(cos[~np.eye(len(rows), dtype=bool)].mean())


# The sweep's parameters (R values, seeds, gtol) belong to claims/test_ufm_imbalance.py.
# A stored sweep's record: its meta's "kind", and the prefix of its key (imbalance_sweep_key).
IMBALANCE_KIND = "ufm-imbalance-sweep"
IMBALANCE_KEY_PREFIX = "ufm-imbalance-"


def imbalance_sweep(R_values: Sequence[float], *, num_classes: int = 4, dim: int = 4, n_min: int = 1,
                    lam: float = 5e-3, loss: str = "ce", solver: str = "lbfgs", seed: int = 0,
                    gtol: float = DEFAULT_GTOL, max_iter: int | None = None) -> dict[str, np.ndarray]:
    """Solve UFMProblem.imbalanced(C, p, n_min, R, lambda_W = lambda_H = lambda_b = lam) for each R and
    return arrays over R (for a figure):

      R, minority_cos / majority_cos   mean pairwise cosine of the classifier rows of the minority
                                       (last floor(C/2)) / majority classes; -1/(C-1) at an ETF, 1 when
                                       the minority classifiers coincide (minority collapse, Fang et al.
                                       PNAS 2021, Sec. 3)
      minority_norm_ratio              mean ||w_minority|| / mean ||w_majority||
      means_etf_distance, w_etf_distance   ETF Gram distance of the centered class means and of W's rows
                                       (0 for an ETF; SELI geometry for R > 1, Thrampoulidis et al. 2022)
      objective, grad_norm, converged, iterations

    Every column is a float64 array (converged: 1.0 or 0.0), as the run store keeps it.
    """
    keys = ("R", "minority_cos", "majority_cos", "minority_norm_ratio", "means_etf_distance",
            "w_etf_distance", "objective", "grad_norm", "converged", "iterations")
    out = {key: [] for key in keys}
    major = (num_classes + 1) // 2
    for R in R_values:
        pr = UFMProblem.imbalanced(num_classes, dim, n_min, R, lambda_w=lam, lambda_h=lam, lambda_b=lam,
                                   loss=loss)
        r = solve_cached(pr, solver, seed, gtol=gtol, max_iter=max_iter)
        norms = np.linalg.norm(r.W, axis=1)
        row = {"R": R, "minority_cos": _mean_pairwise_cosine(r.W[major:]),
               "majority_cos": _mean_pairwise_cosine(r.W[:major]),
               "minority_norm_ratio": norms[major:].mean() / norms[:major].mean(),
               "means_etf_distance": etf_gram_distance(centered_mean_gram(r.features, r.labels,
                                                                          num_classes)),
               "w_etf_distance": etf_gram_distance(r.W @ r.W.T), "objective": r.objective,
               "grad_norm": r.grad_norm, "converged": r.converged, "iterations": r.iterations}
        for key in keys:
            out[key].append(row[key])
    return {key: np.asarray(value, dtype=np.float64) for key, value in out.items()}


_SWEEP_SIGNATURE = inspect.signature(imbalance_sweep)


def imbalance_sweep_params(R_values: Sequence[float], **kw) -> dict:
    """Every argument of `imbalance_sweep(R_values, **kw)`, defaults included, as a JSON-able dict
    (R_values a list of floats): what names a stored sweep."""
    bound = _SWEEP_SIGNATURE.bind(R_values, **kw)
    bound.apply_defaults()
    params = {k: v.item() if isinstance(v, np.generic) else v for k, v in bound.arguments.items()}
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
