"""Symbolic algebra of N-PG-IGT and (N)-HARPG (docs/design.md §4.7).

Fatkhullin, Barakat, Kireeva & He (ICML 2023), "Stochastic Policy Gradient Methods: Improved
Sample Complexity for Fisher-non-degenerate Policies", Algorithms 1 (N-PG-IGT) and 2 ((N)-HARPG).

* Implicit gradient transport. With η ∈ (0, 1], the look-ahead point
  θ̃_t = θ_t + ((1−η)/η)(θ_t − θ_{t−1}) and d_t = (1−η) d_{t−1} + η ∇J(θ̃_t): if J is quadratic and
  d_{t−1} = ∇J(θ_{t−1}), then d_t = ∇J(θ_t) exactly (the gradient is affine, so the weighted
  average of ∇J at θ_{t−1} and θ̃_t is ∇J at the weighted average of the points, which is θ_t).
* Hessian correction. d_t = (1−η)(d_{t−1} + H (θ_t − θ_{t−1})) + η ∇J(θ_t): if J is quadratic
  (H = ∇²J constant) and d_{t−1} = ∇J(θ_{t−1}), then d_t = ∇J(θ_t).
* The interpolation identity behind HARPG's unbiased correction, for any twice continuously
  differentiable J (here: any polynomial), with θ̂(q) = qx + (1−q)y:
      ∫_0^1 ∇²J(θ̂(q)) dq · (x − y) = ∇J(x) − ∇J(y),
  so E_{q~U[0,1]}[∇²J(θ̂(q))](x − y) = ∇J(x) − ∇J(y) (fundamental theorem of calculus along the
  segment).

Each residual function returns a sympy Matrix that simplifies to 0; the transport and correction
rules are parameters, so a wrong rule (the planted defects of the tests) gives a non-zero residual.
"""

from __future__ import annotations

import itertools
from typing import Callable

import sympy as sp

__all__ = [
    "eta", "q", "igt_lookahead", "quadratic", "general_polynomial", "gradient", "hessian",
    "igt_transport_residual", "harpg_correction_residual", "interpolation_residual",
]

eta = sp.Symbol("eta", positive=True)
q = sp.Symbol("q", real=True)


def igt_lookahead(e):
    """The look-ahead coefficient (1 − η)/η of N-PG-IGT."""
    return (1 - e) / e


def _vars(name: str, dim: int) -> sp.Matrix:
    return sp.Matrix(sp.symbols(f"{name}1:{dim + 1}", real=True))


def quadratic(dim: int):
    """A general quadratic J(θ) = ½ θᵀAθ + bᵀθ + c with symbolic symmetric A, b, c; returns
    (J as a function of a vector, the variable vector θ)."""
    a = sp.Matrix(dim, dim, lambda i, j: sp.Symbol(f"a{min(i, j) + 1}{max(i, j) + 1}", real=True))
    b = _vars("b", dim)
    c = sp.Symbol("c", real=True)
    return lambda x: (x.T * a * x)[0] / 2 + (b.T * x)[0] + c


def general_polynomial(dim: int, degree: int):
    """A general polynomial of the given degree in `dim` variables, every coefficient a symbol;
    returns J as a function of a vector."""
    monomials = [m for m in itertools.product(range(degree + 1), repeat=dim) if sum(m) <= degree]
    coeffs = {m: sp.Symbol("c_" + "_".join(map(str, m)), real=True) for m in monomials}

    def J(x):
        return sum(c * sp.Mul(*[xi**k for xi, k in zip(x, m)]) for m, c in coeffs.items())

    return J


def gradient(J, x: sp.Matrix) -> sp.Matrix:
    """∇J at the point x (a Matrix of expressions), by substitution into symbolic derivatives."""
    z = _vars("z", len(x))
    g = sp.Matrix([sp.diff(J(z), zi) for zi in z])
    return g.subs(dict(zip(z, x)), simultaneous=True)


def hessian(J, x: sp.Matrix) -> sp.Matrix:
    """∇²J at the point x."""
    z = _vars("z", len(x))
    h = sp.hessian(J(z), list(z))
    return h.subs(dict(zip(z, x)), simultaneous=True)


def igt_transport_residual(dim: int = 2, lookahead: Callable = igt_lookahead,
                           weight: Callable = lambda e: e) -> sp.Matrix:
    """d_t − ∇J(θ_t) for d_t = (1 − w) ∇J(θ_{t−1}) + w ∇J(θ_t + λ(θ_t − θ_{t−1})), with
    λ = lookahead(η), w = weight(η), on a general quadratic J: zero for N-PG-IGT's λ = (1−η)/η,
    w = η."""
    J = quadratic(dim)
    x, y = _vars("x", dim), _vars("y", dim)  # θ_t, θ_{t−1}
    w = weight(eta)
    d = (1 - w) * gradient(J, y) + w * gradient(J, x + lookahead(eta) * (x - y))
    return sp.simplify(d - gradient(J, x))


def harpg_correction_residual(dim: int = 2,
                              rule: Callable | None = None) -> sp.Matrix:
    """d_t − ∇J(θ_t) for HARPG's d_t = (1−η)(d_{t−1} + H(θ_t − θ_{t−1})) + η ∇J(θ_t) with
    d_{t−1} = ∇J(θ_{t−1}) on a general quadratic J. `rule(d_prev, v, g, η)` replaces the
    update (a planted defect)."""
    rule = rule or (lambda d_prev, v, g, e: (1 - e) * (d_prev + v) + e * g)
    J = quadratic(dim)
    x, y = _vars("x", dim), _vars("y", dim)
    v = hessian(J, x) * (x - y)  # constant Hessian: any point of evaluation
    d = rule(gradient(J, y), v, gradient(J, x), eta)
    return sp.simplify(d - gradient(J, x))


def interpolation_residual(dim: int = 2, degree: int = 4,
                           weight: Callable = lambda s: sp.Integer(1)) -> sp.Matrix:
    """∫_0^1 w(q) ∇²J(qx + (1−q)y) dq (x − y) − (∇J(x) − ∇J(y)) on a general polynomial J of the
    given degree: zero for the uniform law (w = 1); a different density w is a planted defect."""
    J = general_polynomial(dim, degree)
    x, y = _vars("x", dim), _vars("y", dim)
    h = hessian(J, q * x + (1 - q) * y)
    mean = (h * (x - y)).applyfunc(lambda e: sp.integrate(sp.expand(weight(q) * e), (q, 0, 1)))
    return sp.expand(mean - (gradient(J, x) - gradient(J, y)))
