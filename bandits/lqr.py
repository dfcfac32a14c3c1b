"""Discrete-time linear-quadratic control with a linear Gaussian policy (docs/design.md §4.5).

    x_{t+1} = A x_t + B u_t + w_t,     w_t ~ N(0, Σ_w),     x_0 ~ N(0, Σ_0)
    u_t = K x_t + σ ε_t,               ε_t ~ N(0, I_m)
    r_t = −(x_tᵀ Q x_t + u_tᵀ R u_t),  J_H(K, σ) = E[Σ_{t=0}^{H−1} γ^t r_t]

State dimension d, action dimension m. The policy parameters θ are vec(K) (row-major, m·d
entries) with σ fixed, or (vec(K), log σ). Exact J comes from the second-moment recursion

    S_0 = Σ_0,   S_{t+1} = M S_t Mᵀ + σ² B Bᵀ + Σ_w,   M = A + B K,
    J_H = −Σ_{t<H} γ^t [tr((Q + KᵀRK) S_t) + σ² tr R],

and ∇J, ∇²J are JAX derivatives of that recursion. For γ < 1 the infinite-horizon value solves
a discounted Lyapunov equation: S_∞ = Σ_t γ^t S_t = Σ_0 + γ M S_∞ Mᵀ + γ/(1−γ)(σ²BBᵀ + Σ_w),
J_∞ = −tr((Q + KᵀRK) S_∞) − σ² tr R/(1 − γ). Its maximiser over K (σ fixed) is the gain of the
discounted Riccati equation

    P = Q + γAᵀPA − γ²AᵀPB(R + γBᵀPB)⁻¹BᵀPA,     K* = −γ(R + γBᵀPB)⁻¹BᵀPA.

Everything below except `make`, `check_policy` and `optimal_gain` is a pure JAX function (jit,
vmap over θ or keys); those three validate and raise `InputError`. The sampler is one jitted
`lax.scan` over time, vmapped over trajectories.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError

MAX_DIM = 8
MAX_HORIZON = 100_000
SHORT_HORIZON = 20  # beyond it the closed loop must be stable under the discount (γρ² < 1)
MAX_GROWTH = 1e12  # ... and within it ρ(A + BK)^{2H} must stay below this
MAX_TRAJECTORIES = 1 << 26  # states kept in memory by `sample_trajectories`: n·H·d floats


class Trajectory(NamedTuple):
    """One trajectory (or a batch, with leading axes): states (H, d), actions (H, m), rewards (H,)."""

    states: jax.Array
    actions: jax.Array
    rewards: jax.Array


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["A", "B", "Q", "R", "init_cov", "noise_cov", "init_sqrt",
                                "noise_sqrt", "gamma"],
                   meta_fields=["horizon"])
@dataclasses.dataclass(frozen=True, eq=False)
class LQR:
    """An LQR instance (a pytree; the horizon is static). Build it with `make`."""

    A: jax.Array  # (d, d)
    B: jax.Array  # (d, m)
    Q: jax.Array  # (d, d)
    R: jax.Array  # (m, m)
    init_cov: jax.Array  # Σ_0 (d, d)
    noise_cov: jax.Array  # Σ_w (d, d)
    init_sqrt: jax.Array  # L with L Lᵀ = Σ_0
    noise_sqrt: jax.Array  # L with L Lᵀ = Σ_w
    gamma: jax.Array
    horizon: int

    @property
    def dims(self) -> tuple[int, int]:
        """(d, m)."""
        return self.B.shape

    @property
    def num_gain_params(self) -> int:
        d, m = self.dims
        return d * m


def _matrix(x, rows, cols, name):
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0 and rows is not None and rows == cols:
        a = a * np.eye(rows)
    a = np.atleast_2d(a) if a.ndim < 2 else a
    if (rows is not None and a.shape[0] != rows) or (cols is not None and a.shape[1] != cols) or a.ndim != 2:
        raise InputError(f"{name} must be a {rows or 'd'}×{cols or 'd'} matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} must hold finite numbers, got {a.tolist()}")
    return a


def _psd_sqrt(a, name, definite=False):
    if not np.allclose(a, a.T, rtol=0, atol=1e-12 * max(1.0, np.abs(a).max())):
        raise InputError(f"{name} must be symmetric")
    lam, vec = np.linalg.eigh(a)
    floor = -1e-12 * max(1.0, np.abs(lam).max())
    if np.any(lam < floor) or (definite and np.any(lam <= 0)):
        raise InputError(f"{name} must be positive {'definite' if definite else 'semi-definite'}, "
                         f"eigenvalues {lam.tolist()}")
    return vec * np.sqrt(np.clip(lam, 0, None))


def make(A, B, Q, R, horizon: int, gamma: float = 1.0, init_cov=1.0, noise_cov=0.0) -> LQR:
    """A validated instance. Scalars are accepted for the scalar problem (d = m = 1), and a scalar
    Q, R, Σ_0 or Σ_w means that multiple of the identity. Q, Σ_0, Σ_w ⪰ 0 and R ≻ 0, symmetric;
    H an integer in [1, MAX_HORIZON]; γ ∈ (0, 1]; d, m ≤ MAX_DIM."""
    a = _matrix(A, None, None, "A")
    d = a.shape[0]
    if a.shape != (d, d) or d > MAX_DIM:
        raise InputError(f"A must be square with at most {MAX_DIM} rows, got shape {a.shape}")
    b = _matrix(B, d, None, "B")
    m = b.shape[1]
    if m > MAX_DIM:
        raise InputError(f"at most {MAX_DIM} action dimensions, got {m}")
    q, r = _matrix(Q, d, d, "Q"), _matrix(R, m, m, "R")
    s0, sw = _matrix(init_cov, d, d, "Σ_0"), _matrix(noise_cov, d, d, "Σ_w")
    _psd_sqrt(q, "Q")
    _psd_sqrt(r, "R", definite=True)
    l0, lw = _psd_sqrt(s0, "Σ_0"), _psd_sqrt(sw, "Σ_w")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or not 1 <= horizon <= MAX_HORIZON:
        raise InputError(f"the horizon H must be an integer in [1, {MAX_HORIZON}], got {horizon!r}")
    if not isinstance(gamma, (int, float, np.floating)) or not math.isfinite(gamma) or not 0 < gamma <= 1:
        raise InputError(f"the discount γ must lie in (0, 1], got {gamma!r}")
    j = lambda x: jnp.asarray(x, dtype=jnp.float64)  # noqa: E731
    return LQR(j(a), j(b), j(q), j(r), j(s0), j(sw), j(l0), j(lw), j(float(gamma)), int(horizon))


def gain(theta, lqr: LQR):
    """K (m, d) from θ = (vec K[, log σ])."""
    d, m = lqr.dims
    return jnp.asarray(theta)[: d * m].reshape(m, d)


def policy_std(theta, lqr: LQR, sigma=None):
    """σ: e^{θ_last} when θ carries log σ, else the fixed `sigma`."""
    theta = jnp.asarray(theta)
    if theta.shape[-1] == lqr.num_gain_params + 1:
        return jnp.exp(theta[-1])
    if sigma is None:
        raise InputError("θ = vec(K) needs the fixed σ (sigma=...)")
    return jnp.asarray(sigma, dtype=theta.dtype)


def check_policy(lqr: LQR, theta, sigma=None):
    """Validate a policy on an instance; returns θ as a float64 array or raises InputError.

    θ has m·d (σ fixed, given as `sigma`) or m·d + 1 (last: log σ) finite entries, σ > 0. The
    closed loop M = A + BK must be stable under the discount, γ·ρ(M)² < 1, unless the horizon is
    short (H ≤ SHORT_HORIZON) and ρ(M)^{2H} ≤ MAX_GROWTH: otherwise the second moments grow
    geometrically and J_H means nothing (or overflows)."""
    t = np.asarray(theta, dtype=np.float64).reshape(-1)
    n = lqr.num_gain_params
    if t.size not in (n, n + 1):
        raise InputError(f"θ needs {n} gain entries (vec K, row-major) and optionally log σ, got {t.size}")
    if not np.all(np.isfinite(t)):
        raise InputError(f"θ must hold finite numbers, got {t.tolist()}")
    if t.size == n:
        if sigma is None or not np.isfinite(sigma) or sigma <= 0:
            raise InputError(f"σ must be a finite number > 0, got {sigma!r}")
    elif not -300 < t[-1] < 300:
        raise InputError(f"log σ must lie in (−300, 300), got {t[-1]}")
    d, m = lqr.dims
    closed = np.asarray(lqr.A) + np.asarray(lqr.B) @ t[:n].reshape(m, d)
    rho = float(np.max(np.abs(np.linalg.eigvals(closed))))
    gamma, h = float(lqr.gamma), lqr.horizon
    if gamma * rho**2 >= 1 and (h > SHORT_HORIZON or 2 * h * math.log(max(rho, 1.0)) > math.log(MAX_GROWTH)):
        raise InputError(
            f"closed loop not stable: ρ(A + BK) = {rho:.6g} and γ·ρ² = {gamma * rho**2:.6g} ≥ 1 over "
            f"H = {h} steps; use a stabilising gain, γ < 1/ρ², or a horizon ≤ {SHORT_HORIZON} "
            f"with ρ^(2H) ≤ {MAX_GROWTH:g}")
    return t


@jax.jit
def second_moments(theta, lqr: LQR, sigma=None):
    """S_t = E[x_t x_tᵀ] for t = 0..H−1, shape (H, d, d)."""
    k, s = gain(theta, lqr), policy_std(theta, lqr, sigma)
    m = lqr.A + lqr.B @ k
    w = s**2 * lqr.B @ lqr.B.T + lqr.noise_cov

    def step(cov, _):
        return m @ cov @ m.T + w, cov

    return jax.lax.scan(step, lqr.init_cov, None, length=lqr.horizon)[1]


@jax.jit
def objective(theta, lqr: LQR, sigma=None):
    """J_H(K, σ) = −Σ_{t<H} γ^t [tr((Q + KᵀRK) S_t) + σ² tr R], exactly."""
    k, s = gain(theta, lqr), policy_std(theta, lqr, sigma)
    cost = lqr.Q + k.T @ lqr.R @ k
    per_step = jnp.einsum("tij,ji->t", second_moments(theta, lqr, sigma), cost) + s**2 * jnp.trace(lqr.R)
    return -jnp.sum(lqr.gamma ** jnp.arange(lqr.horizon) * per_step)


@jax.jit
def gradient(theta, lqr: LQR, sigma=None):
    """∇_θ J_H by reverse-mode autodiff of the exact recursion."""
    return jax.grad(objective)(jnp.asarray(theta, dtype=jnp.float64), lqr, sigma)


@jax.jit
def hessian(theta, lqr: LQR, sigma=None):
    """∇²_θ J_H by autodiff (forward over reverse) of the exact recursion."""
    return jax.hessian(objective)(jnp.asarray(theta, dtype=jnp.float64), lqr, sigma)


@jax.jit
def objective_infinite(theta, lqr: LQR, sigma=None):
    """J_∞(K, σ) for γ < 1 from the discounted Lyapunov equation (needs γ·ρ(A + BK)² < 1)."""
    k, s = gain(theta, lqr), policy_std(theta, lqr, sigma)
    d = lqr.A.shape[0]
    m = lqr.A + lqr.B @ k
    g = lqr.gamma
    rhs = lqr.init_cov + g / (1 - g) * (s**2 * lqr.B @ lqr.B.T + lqr.noise_cov)
    op = jnp.eye(d * d) - g * jnp.kron(m, m)  # vec(M S Mᵀ) = (M ⊗ M) vec S, row-major
    cov = jnp.linalg.solve(op, rhs.reshape(-1)).reshape(d, d)
    return -jnp.trace((lqr.Q + k.T @ lqr.R @ k) @ cov) - s**2 * jnp.trace(lqr.R) / (1 - g)


@functools.partial(jax.jit, static_argnames=("max_iter",))
def riccati(lqr: LQR, tol: float = 1e-14, max_iter: int = 100_000):
    """Iterate the discounted Riccati recursion from P = Q to its fixed point.

    Returns (K* (m, d), P (d, d), converged) where converged says the relative change of P fell
    below `tol` within `max_iter` steps with a finite P (pure JAX; `optimal_gain` validates)."""
    a, b, q, r, g = lqr.A, lqr.B, lqr.Q, lqr.R, lqr.gamma

    def gain_of(p):
        return -g * jnp.linalg.solve(r + g * b.T @ p @ b, b.T @ p @ a)

    def update(p):
        return q + g * a.T @ p @ a + g * a.T @ p @ b @ gain_of(p)

    def cond(state):
        p, change, i = state
        return (change > tol) & (i < max_iter) & jnp.all(jnp.isfinite(p))

    def body(state):
        p, _, i = state
        new = update(p)
        return new, jnp.max(jnp.abs(new - p)) / (1.0 + jnp.max(jnp.abs(new))), i + 1

    p, change, _ = jax.lax.while_loop(cond, body, (q, jnp.inf, 0))
    return gain_of(p), p, (change <= tol) & jnp.all(jnp.isfinite(p))


def optimal_gain(lqr: LQR):
    """K* of the discounted Riccati equation, validated: raises InputError when the recursion does
    not converge or K* does not stabilise the discounted closed loop (no optimal linear gain)."""
    k, p, ok = riccati(lqr)
    k = np.asarray(k)
    rho = float(np.max(np.abs(np.linalg.eigvals(np.asarray(lqr.A) + np.asarray(lqr.B) @ k)))) if ok else math.inf
    if not ok or float(lqr.gamma) * rho**2 >= 1:
        raise InputError("the discounted Riccati recursion has no stabilising solution for this instance")
    return k, np.asarray(p)


def log_prob(theta, x, u, sigma=None):
    """log π(u | x) = −|u − Kx|²/(2σ²) − m log σ − (m/2) log 2π for one step; d = x's size,
    m = u's size, θ = (vec K[, log σ])."""
    theta, x, u = jnp.asarray(theta), jnp.asarray(x), jnp.asarray(u)
    d, m = x.shape[-1], u.shape[-1]
    k = theta[: d * m].reshape(m, d)
    s = jnp.exp(theta[-1]) if theta.shape[-1] == d * m + 1 else jnp.asarray(sigma, dtype=theta.dtype)
    z = (u - k @ x) / s
    return -0.5 * jnp.sum(z**2) - m * jnp.log(s) - 0.5 * m * math.log(2 * math.pi)


@jax.jit
def trajectory_score(theta, traj: Trajectory, sigma=None):
    """∇_θ log p(τ; θ) = Σ_t ∇_θ log π(u_t | x_t) (the dynamics do not depend on θ)."""
    total = lambda th: jnp.sum(jax.vmap(lambda x, u: log_prob(th, x, u, sigma))(traj.states, traj.actions))  # noqa: E731
    return jax.grad(total)(jnp.asarray(theta))


def rollout_from_noise(theta, lqr: LQR, z0, eps, noise, sigma=None) -> Trajectory:
    """The trajectory driven by given standard normals: x_0 = L_0 z0 (z0 (d,)), ε_t = eps[t]
    (eps (H, m)), w_t = L_w noise[t] (noise (H, d)). A deterministic `lax.scan` over time."""
    k, s = gain(theta, lqr), policy_std(theta, lqr, sigma)

    def step(x, e):
        e_act, e_w = e
        u = k @ x + s * e_act
        r = -(x @ lqr.Q @ x + u @ lqr.R @ u)
        return lqr.A @ x + lqr.B @ u + lqr.noise_sqrt @ e_w, (x, u, r)

    _, (xs, us, rs) = jax.lax.scan(step, lqr.init_sqrt @ z0, (eps, noise))
    return Trajectory(xs, us, rs)


def rollout(key, theta, lqr: LQR, sigma=None) -> Trajectory:
    """One trajectory of H steps (a `lax.scan` over time, `rollout_from_noise` of fresh normals)."""
    d, m = lqr.dims
    k0, ka, kw = jax.random.split(key, 3)
    dt = lqr.A.dtype
    return rollout_from_noise(theta, lqr, jax.random.normal(k0, (d,), dt),
                              jax.random.normal(ka, (lqr.horizon, m), dt),
                              jax.random.normal(kw, (lqr.horizon, d), dt), sigma)


@functools.partial(jax.jit, static_argnames=("n",))
def sample_trajectories(key, theta, lqr: LQR, n: int, sigma=None) -> Trajectory:
    """n independent trajectories: states (n, H, d), actions (n, H, m), rewards (n, H).

    The normals of all n trajectories are drawn in three bulk calls; `rollout_from_noise` is
    vmapped over the trajectories (one `lax.scan` over time)."""
    d, m = lqr.dims
    k0, ka, kw = jax.random.split(key, 3)
    dt = lqr.A.dtype
    z0 = jax.random.normal(k0, (n, d), dt)
    eps = jax.random.normal(ka, (n, lqr.horizon, m), dt)
    noise = jax.random.normal(kw, (n, lqr.horizon, d), dt)
    return jax.vmap(lambda a, b, c: rollout_from_noise(theta, lqr, a, b, c, sigma))(z0, eps, noise)


def discounted_return(traj: Trajectory, gamma):
    """Σ_t γ^t r_t of each trajectory (leading axes kept)."""
    h = traj.rewards.shape[-1]
    return traj.rewards @ (gamma ** jnp.arange(h))


# The problem as a source of trajectories (`sims.trajectory`, docs/design.md §4.5).


@dataclasses.dataclass(frozen=True)
class LQRPolicy:
    """u ~ N(Kx, σ²I) with θ = (vec K[, log σ]); `sigma` is the fixed σ when θ = vec K."""

    sigma: float | None = None

    def __call__(self, theta, state, action):
        return log_prob(theta, state, action, self.sigma)


@dataclasses.dataclass(frozen=True)
class LQRSampler:
    """n trajectories of an LQR instance (`problem`: a `bandits.lqr.LQR`)."""

    sigma: float | None = None

    def __call__(self, key, n, theta, problem):
        return sample_trajectories(key, theta, problem, n, self.sigma)
