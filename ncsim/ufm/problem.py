"""The UFM problem f(W, H, b), its closed-form gradient, and a point of it (UFMResult).

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ncsim.spec import check_choice

LOSSES = ("ce", "mse")  # the UFM's losses: cross-entropy and MSE (the network's are ncsim.spec.LOSSES)
# The gradient norm ||grad f||_2 at which a point counts as converged (UFMResult.converged).
DEFAULT_GTOL = 1e-8


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
            raise ValueError(
                f"bias must be True or False, and lambda_b 0 without a bias; got bias={self.bias!r}, "
                f"lambda_b={self.lambda_b!r}"
            )

    @classmethod
    def imbalanced(cls, num_classes: int, dim: int, n_min: int, ratio: float, **kw) -> UFMProblem:
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
        (balanced only; derived in ncsim.ufm.closed_forms)."""
        if not self.balanced:
            raise ValueError("the norm ratio and the closed form are defined for balanced classes only")
        return math.sqrt(self.counts[0] * self.lambda_h / self.lambda_w)


@dataclass(frozen=True)
class UFMResult:
    """A point (W, H, b) of a UFMProblem with f, ||grad f||_2 there, and how the solver got there."""

    problem: UFMProblem
    W: np.ndarray  # C x p
    H: np.ndarray  # p x N
    b: np.ndarray  # C
    objective: float
    grad_norm: float
    iterations: int
    converged: bool  # grad_norm <= gtol
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
        return (
            data
            + 0.5 * pr.lambda_w * (W * W).sum()
            + 0.5 * pr.lambda_b * (b * b).sum()
            + 0.5 * pr.lambda_h * (pr.num_samples / Hb.shape[1]) * (Hb * Hb).sum()
        )

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
            grads = (
                G.T @ Hb.T + pr.lambda_w * W,
                W.T @ G.T + (pr.lambda_h * pr.num_samples / Hb.shape[1]) * Hb,
                (G.sum(0) + pr.lambda_b * b) if pr.bias else torch.zeros_like(b),
            )
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


def evaluate(
    problem: UFMProblem,
    W,
    H,
    b,
    *,
    gtol: float = DEFAULT_GTOL,
    solver: str = "none",
    iterations: int = 0,
    seed: int | None = None,
    history: Sequence[float] = (),
) -> UFMResult:
    """The UFMResult of a given point: f and the full-batch gradient norm ||(dW, dH, db)||_2 there."""
    _check_shapes(problem, W, H, b)
    W, H, b = (torch.tensor(np.asarray(a, dtype=np.float64)) for a in (W, H, b))
    value, grads = _Objective(problem).value_and_grad(W, H, b)
    gnorm = _norm(grads)
    return UFMResult(
        problem,
        W.numpy(),
        H.numpy(),
        b.numpy(),
        float(value),
        gnorm,
        int(iterations),
        bool(gnorm <= gtol),
        gtol,
        solver,
        seed,
        tuple(history),
    )


def random_init(problem: UFMProblem, seed: int, init_std: float = 1.0):
    """W, H, b with i.i.d. N(0, init_std^2) entries from a torch.Generator seeded with `seed` (b = 0
    without a bias)."""
    g = torch.Generator().manual_seed(int(seed))
    C, p, N = problem.num_classes, problem.dim, problem.num_samples
    W, H, b = (init_std * torch.randn(*shape, generator=g, dtype=torch.float64) for shape in ((C, p), (p, N), (C,)))
    return W, H, b if problem.bias else torch.zeros_like(b)
