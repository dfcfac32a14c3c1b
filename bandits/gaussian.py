"""One-step continuous bandits with a Gaussian policy (docs/design.md §4.5).

The action is a ~ N(μ, σ²); the reward is a polynomial r(a) = Σ_k c_k a^k (coefficients
ascending, deterministic). The parameters are θ = (μ, ω) with ω = log σ, or μ alone with σ held
fixed: every function takes `theta` of shape (2,) or (1,) and, for (1,), the fixed `sigma`. The
mean-only results are the μ-coordinates of the full ones (∂/∂μ does not care how σ is set).

Closed forms (Gaussian moments E[a^k], m_0 = 1, m_1 = μ, m_k = μ m_{k−1} + (k−1)σ² m_{k−2}):

    J(θ)   = E[r(a)] = Σ_k c_k m_k
    u(a)   = ∇_θ log p(a; θ) = ((a − μ)/σ²,  (a − μ)²/σ² − 1)                        (score)
    ∇u(a)  = [[−1/σ², −2(a − μ)/σ²], [−2(a − μ)/σ², −2(a − μ)²/σ²]]
    ∇J     = E[r(a) u(a)]                ∇²J = E[r(a) (u uᵀ + ∇u)]
    F      = E[u uᵀ] = diag(1/σ², 2)                                                    (Fisher)

Every expectation above is E[p(a)] of a polynomial p, so it is a finite sum of Gaussian moments.
For a cubic r = c0 + c1 a + c2 a² + c3 a³ this gives J = c0 + c1 μ + c2(μ² + σ²) + c3(μ³ + 3μσ²),
∂J/∂μ = c1 + 2c2 μ + 3c3(μ² + σ²), ∂J/∂ω = 2σ²(c2 + 3c3 μ). All functions are pure JAX over
arrays (jittable, vmappable over θ, keys and samples); `validate` is the one place that turns bad
input into an `InputError`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError

MAX_DEGREE = 8
MAX_COEFF, MAX_MU, MIN_SIGMA, MAX_SIGMA = 1e12, 1e6, 1e-6, 1e6
# Named rewards: a linear, a concave quadratic with its optimum at a = 1, and a cubic.
REWARDS = {
    "linear": (0.0, 1.0),
    "quadratic": (-1.0, 2.0, -1.0),  # −(a − 1)²
    "cubic": (0.0, 1.0, 0.0, -1.0 / 3.0),  # a − a³/3
}


def mu_sigma(theta, sigma=None):
    """(μ, σ) from θ = (μ, log σ), or from θ = (μ,) and the fixed `sigma`."""
    theta = jnp.asarray(theta)
    if theta.shape[-1] == 2:
        return theta[..., 0], jnp.exp(theta[..., 1])
    if sigma is None:
        raise InputError("θ = (μ,) needs the fixed σ (sigma=...)")
    return theta[..., 0], jnp.asarray(sigma, dtype=theta.dtype)


def polyval(coeffs, a):
    """r(a) = Σ_k c_k a^k (Horner, coefficients ascending); `a` of any shape."""
    coeffs = jnp.asarray(coeffs)
    out = jnp.zeros_like(jnp.asarray(a, dtype=coeffs.dtype))
    for c in coeffs[::-1]:
        out = out * a + c
    return out


def raw_moments(mu, sigma, n: int):
    """E[a^k] for k = 0..n under a ~ N(μ, σ²), shape (n + 1,)."""
    m = [jnp.ones_like(mu), mu]
    for k in range(2, n + 1):
        m.append(mu * m[k - 1] + (k - 1) * sigma**2 * m[k - 2])
    return jnp.stack(m[: n + 1])


def expect(poly, mu, sigma):
    """E[p(a)] for a polynomial p (coefficients ascending) under a ~ N(μ, σ²)."""
    poly = jnp.asarray(poly)
    return poly @ raw_moments(mu, sigma, poly.shape[-1] - 1)


def _mul(p, q):
    return jnp.convolve(p, q)


def score_polys(mu, sigma):
    """The score u(a) as two polynomials in a (rows of a (2, 3) coefficient array)."""
    s2 = sigma**2
    zero = jnp.zeros_like(mu)
    return jnp.stack([
        jnp.stack([-mu / s2, 1.0 / s2 + zero, zero]),
        jnp.stack([mu**2 / s2 - 1.0, -2.0 * mu / s2, 1.0 / s2 + zero]),
    ])


def score_jacobian_polys(mu, sigma):
    """∇u(a) = ∇² log p(a; θ) as a 2×2 array of polynomials in a, shape (2, 2, 3)."""
    s2 = sigma**2
    zero = jnp.zeros_like(mu)
    d = jnp.stack([2.0 * mu / s2, -2.0 / s2 + zero, zero])  # −2(a − μ)/σ²
    return jnp.stack([
        jnp.stack([jnp.stack([-1.0 / s2 + zero, zero, zero]), d]),
        jnp.stack([d, jnp.stack([-2.0 * mu**2 / s2, 4.0 * mu / s2, -2.0 / s2 + zero])]),
    ])


def _cut(x, theta):
    """The full (μ, ω) result restricted to the coordinates θ has."""
    n = jnp.asarray(theta).shape[-1]
    return x[:n] if x.ndim == 1 else x[:n, :n]


def objective(theta, coeffs, sigma=None):
    """J(θ) = E_{a~N(μ,σ²)}[r(a)]."""
    mu, s = mu_sigma(theta, sigma)
    return expect(coeffs, mu, s)


def gradient(theta, coeffs, sigma=None):
    """∇J = E[r(a) u(a)] in closed form; shape of θ."""
    mu, s = mu_sigma(theta, sigma)
    c = jnp.asarray(coeffs)
    u = score_polys(mu, s)
    return _cut(jnp.stack([expect(_mul(c, u[i]), mu, s) for i in range(2)]), theta)


def hessian(theta, coeffs, sigma=None):
    """∇²J = E[r(a)(u uᵀ + ∇u)] in closed form; shape (n, n), n = θ's size."""
    mu, s = mu_sigma(theta, sigma)
    c = jnp.asarray(coeffs)
    u, du = score_polys(mu, s), score_jacobian_polys(mu, s)
    rows = [[expect(_mul(c, _mul(u[i], u[j]) + jnp.pad(du[i, j], (0, 2))), mu, s) for j in range(2)]
            for i in range(2)]
    return _cut(jnp.stack([jnp.stack(r) for r in rows]), theta)


def fisher(theta, sigma=None):
    """F = E[u uᵀ] = diag(1/σ², 2) for θ = (μ, log σ); (1/σ²) for θ = (μ,)."""
    mu, s = mu_sigma(theta, sigma)
    return _cut(jnp.diag(jnp.stack([1.0 / s**2, 2.0 + 0.0 * mu])), theta)


def log_prob(theta, a, sigma=None):
    """log p(a; θ) = −(a − μ)²/(2σ²) − log σ − ½ log 2π."""
    mu, s = mu_sigma(theta, sigma)
    return -0.5 * ((a - mu) / s) ** 2 - jnp.log(s) - 0.5 * math.log(2 * math.pi)


def score(theta, a, sigma=None):
    """u(a) = ∇_θ log p(a; θ) for every action in `a` (any shape): a.shape + θ's shape."""
    mu, s = mu_sigma(theta, sigma)
    z = (jnp.asarray(a) - mu) / s
    full = jnp.stack([z / s, z**2 - 1.0], axis=-1)
    return full[..., : jnp.asarray(theta).shape[-1]]


def sample(key, theta, shape, sigma=None):
    """Actions a ~ N(μ, σ²) of the given shape."""
    mu, s = mu_sigma(theta, sigma)
    return mu + s * jax.random.normal(key, shape, dtype=jnp.result_type(mu, float))


def validate(coeffs, theta, sigma=None):
    """Check a Gaussian bandit and return float64 arrays (coeffs, theta), or raise InputError.

    Coefficients: 1 to MAX_DEGREE + 1 finite numbers, |c_k| ≤ MAX_COEFF. θ: (μ, log σ) or (μ,) of
    finite numbers with |μ| ≤ MAX_MU; σ (e^{log σ}, or the fixed `sigma` for θ = (μ,)) in
    [MIN_SIGMA, MAX_SIGMA]: beyond these the degree-10 moments that the variances need leave float64."""
    c = np.asarray(coeffs, dtype=np.float64).reshape(-1)
    t = np.asarray(theta, dtype=np.float64).reshape(-1)
    if c.size < 1 or c.size > MAX_DEGREE + 1:
        raise InputError(f"the reward polynomial needs 1 to {MAX_DEGREE + 1} coefficients, got {c.size}")
    if not np.all(np.isfinite(c)) or np.any(np.abs(c) > MAX_COEFF):
        raise InputError(f"reward coefficients must be finite numbers of size ≤ {MAX_COEFF:g}, got {c.tolist()}")
    if t.size not in (1, 2) or not np.all(np.isfinite(t)):
        raise InputError(f"θ must be (μ, log σ) or (μ,) of finite numbers, got {t.tolist()}")
    if abs(t[0]) > MAX_MU:
        raise InputError(f"|μ| must be at most {MAX_MU:g}, got {t[0]}")
    if t.size == 1:
        if sigma is None or not np.isfinite(sigma) or sigma <= 0:
            raise InputError(f"σ must be a finite number > 0, got {sigma!r}")
        s = float(sigma)
    else:
        s = math.exp(float(np.clip(t[1], -700.0, 700.0)))
    if not MIN_SIGMA <= s <= MAX_SIGMA:
        raise InputError(f"σ must lie in [{MIN_SIGMA:g}, {MAX_SIGMA:g}], got {s:g}")
    return c, t


# The problem as a source of one-step trajectories (`sims.trajectory`, docs/design.md §4.5).


@dataclasses.dataclass(frozen=True)
class GaussianPolicy:
    """a ~ N(μ, σ²) with θ = (μ, log σ), or θ = (μ,) and this fixed `sigma`; the state is ignored."""

    sigma: float | None = None

    def __call__(self, theta, state, action):
        return log_prob(theta, action[0], self.sigma)


@dataclasses.dataclass(frozen=True)
class GaussianSampler:
    """n one-step trajectories of a Gaussian bandit; `problem` is the reward polynomial's coefficients."""

    sigma: float | None = None

    def __call__(self, key, n, theta, problem):
        from bandits.lqr import Trajectory

        a = sample(key, theta, (n,), self.sigma)
        return Trajectory(jnp.zeros((n, 1, 0), a.dtype), a[:, None, None], polyval(problem, a)[:, None])
