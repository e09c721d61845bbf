"""The landscape of f beyond its minimisers: its exact Hessian, the gradient with respect to the logits,
and critical points that are not global minimisers (Zhu et al. 2021, Thm 3.2: strict saddles)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ncsim.threads import limit_threads
from ncsim.ufm.problem import UFMProblem, UFMResult, _check_shapes, _double, _Objective, evaluate


def _parameters(problem: UFMProblem, W, H, b) -> torch.Tensor:
    """The variables of f as one float64 vector: vec(W), vec(H) and, with a bias, b."""
    parts = [torch.as_tensor(np.asarray(a, dtype=np.float64)).reshape(-1) for a in (W, H, b)]
    return torch.cat(parts if problem.bias else parts[:2])


def _unpack(problem: UFMProblem, x: torch.Tensor):
    C, p, N = problem.num_classes, problem.dim, problem.num_samples
    W, H = x[: C * p].reshape(C, p), x[C * p : C * p + p * N].reshape(p, N)
    return W, H, x[C * p + p * N :] if problem.bias else torch.zeros(C, dtype=x.dtype)


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
        b = theta[2 if scaled else 0 :] if problem.bias else torch.zeros(C, dtype=torch.float64)
        return f.value(alpha * E_t, gamma * E_t[labels].T, b)

    theta = torch.tensor([1.0, 1.0] * scaled + [0.0] * (C if problem.bias else 0), dtype=torch.float64)
    if len(theta):
        with limit_threads(1):
            theta = _newton(family, theta)
    alpha, gamma = (float(theta[0]), float(theta[1])) if scaled else (0.0, 0.0)
    b = theta[2 if scaled else 0 :].numpy() if problem.bias else np.zeros(C)
    return evaluate(problem, *frame_point(problem, E, alpha, gamma, b), solver="frame")


def _newton(fun, theta: torch.Tensor, max_iter: int = 200) -> torch.Tensor:
    """Damped Newton's method on a small smooth function (autograd gradient and Hessian; the Hessian
    shifted to positive definite where it is not, and each step halved until f decreases), run until
    the gradient stops shrinking: a minimiser to float64 precision."""
    best = math.inf
    for _ in range(max_iter):
        x = theta.detach().requires_grad_()
        value = fun(x)
        (grad,) = torch.autograd.grad(value, x)
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
