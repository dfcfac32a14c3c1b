"""Claims of docs/design.md §4.5 on discrete-time LQR with a linear Gaussian policy.

Exact checks: tensor Gauss–Hermite quadrature over a short trajectory's standard normals (exact
for the polynomial integrands), central finite differences of the exact J, the discounted
Lyapunov value J_∞. Monte Carlo checks stream trajectories through the one engine
(`sims.montecarlo.stream`) and compare with the exact recursion under Holm at α = 1e-6. Every check
function takes the thing under test as an argument, so the tests can plant a defect in it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits import lqr as L
from sims import continuous as C
from sims.claims.gaussian import _mc_outcome
from sims.ledger import Check, Outcome, claim

SOURCE = "Fatkhullin et al. 2023 (ICML), g and B; docs/design.md §4.5"
TOL = 1e-9
# The Monte Carlo instance: scalar, H = 8, γ = 0.9, process noise, θ = (K, log σ).
MC_CASE = dict(A=0.9, B=0.5, Q=1.0, R=0.1, horizon=8, gamma=0.9, noise_cov=0.05)
MC_THETA = (-0.6, math.log(0.5))
MC_V = (1.0, -0.5)


def short_instances(quick: bool, seed: int = 0):
    """Stable instances for quadrature: scalar with H ≤ 3 (and process noise at H ≤ 2), and a
    2-state, 1-action instance at H = 1; θ = (vec K, log σ) or vec K with σ fixed."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4 if quick else 12):
        a, b = rng.uniform(-1.2, 1.2), rng.uniform(0.3, 1.5)
        k = (rng.uniform(-0.8, 0.8) - a) / b
        h = 1 + i % 3
        noise = 0.1 if h <= 2 and i % 2 else 0.0
        lqr = L.make(a, b, rng.uniform(0.2, 2), rng.uniform(0.1, 1), h, rng.uniform(0.7, 1.0), noise_cov=noise)
        sig = rng.uniform(0.2, 1.0)
        out.append((lqr, (k, math.log(sig)), None) if i % 2 == 0 else (lqr, (k,), sig))
    lqr2 = L.make(np.array([[0.5, 0.2], [-0.1, 0.7]]), np.array([[0.0], [1.0]]), np.diag([1.0, 0.5]), 0.3, 1, 0.95,
                  init_cov=np.array([[1.0, 0.3], [0.3, 0.5]]))
    out.append((lqr2, (0.1, -0.4, math.log(0.6)), None))
    return out


def _describe(lqr, theta, sigma):
    return {"A": np.asarray(lqr.A).round(6).tolist(), "B": np.asarray(lqr.B).round(6).tolist(),
            "H": lqr.horizon, "gamma": round(float(lqr.gamma), 6), "theta": np.round(theta, 6).tolist(),
            "sigma": sigma}


def _worst(residuals, what):
    worst, where = max(residuals, key=lambda x: x[0])
    return Outcome(worst <= TOL, worst, f"≤ {TOL:g}", f"{what}; max residual over {len(residuals)} instances",
                   counterexample=where if worst > TOL else None)


def _target(estimator, theta, lqr, sigma, v=None):
    th = jnp.asarray(theta, dtype=jnp.float64)
    return C.exact_target(estimator, L.gradient(th, lqr, sigma), L.hessian(th, lqr, sigma),
                          None if v is None else np.asarray(v))


def exact_unbiased(estimator: str, quick: bool, fn=None) -> Outcome:
    """Quadrature E[f(τ)] on short trajectories against autodiff of the exact recursion."""
    res = []
    for lqr, theta, sigma in short_instances(quick):
        got = C.lqr_expectation(lqr, theta, sigma, fn or estimator)
        res.append((float(np.max(np.abs(got - _target(estimator, theta, lqr, sigma)))),
                    _describe(lqr, theta, sigma)))
    return _worst(res, f"|E[{estimator}] − exact recursion| by quadrature")


def mc_unbiased(estimator: str, quick: bool, fn=None, seed: int = 31) -> Outcome:
    """Engine mean of GPOMDP (or B·v) on H = 8 trajectories against the exact recursion."""
    lqr = L.make(**MC_CASE)
    v = MC_V if estimator == "hessian_vector" else None
    expected = _target(estimator, MC_THETA, lqr, None, v)
    zc = C.lqr_check(lqr, MC_THETA, None, fn or estimator, 100_000 if quick else 1_000_000, seed, v=v,
                     expected=expected)
    return _mc_outcome(zc, "A = 0.9, B = 0.5, Q = 1, R = 0.1, Σ_w = 0.05, H = 8, γ = 0.9, θ = (−0.6, log 0.5)")


@claim("lqr.gpomdp_unbiased", SOURCE,
       "On LQR with a linear Gaussian policy GPOMDP is unbiased for the finite-horizon gradient: "
       "E[g(τ, θ)] = ∇J_H(θ), θ = (vec K, log σ) or vec K.")
def _():
    return [Check("exact", lambda q: exact_unbiased("gpomdp", q)),
            Check("monte_carlo", lambda q: mc_unbiased("gpomdp", q))]


@claim("lqr.hessian_unbiased", SOURCE,
       "On LQR the Hessian estimator is unbiased: E[B(τ, θ)] = ∇²J_H(θ); its Hessian-vector "
       "product B·v (never forming B) has mean ∇²J_H v.")
def _():
    return [Check("exact", lambda q: exact_unbiased("hessian", q)),
            Check("monte_carlo", lambda q: mc_unbiased("hessian_vector", q))]


def exact_objective(quick: bool, objective=L.objective) -> Outcome:
    """The recursion's J_H against quadrature of the discounted return."""
    res = []
    for lqr, theta, sigma in short_instances(quick, seed=1):
        got = float(objective(jnp.asarray(theta, dtype=jnp.float64), lqr, sigma))
        want = float(C.lqr_expectation(lqr, theta, sigma, "return")[0])
        res.append((abs(got - want), _describe(lqr, theta, sigma)))
    return _worst(res, "|J_H (recursion) − E[Σ γ^t r_t] (quadrature)|")


def mc_objective(quick: bool, objective=L.objective, seed: int = 32) -> Outcome:
    from sims import stats

    lqr = L.make(**MC_CASE)
    s = C.lqr_returns(lqr, MC_THETA, samples=100_000 if quick else 1_000_000, seed=seed)
    want = float(objective(jnp.asarray(MC_THETA), lqr, None))
    return _mc_outcome(stats.z_check("mean return vs J_H", s.mean, s.mean_se, [want]), "H = 8, γ = 0.9")


@claim("lqr.exact_objective", "docs/design.md §4.5 (second-moment recursion)",
       "J_H(K, σ) = −Σ_{t<H} γ^t[tr((Q + KᵀRK)S_t) + σ² tr R] with S_{t+1} = (A+BK)S_t(A+BK)ᵀ + "
       "σ²BBᵀ + Σ_w is the expected discounted return of the sampled trajectories.")
def _():
    return [Check("exact", exact_objective), Check("monte_carlo", mc_objective)]


def fd_instances(quick: bool, seed: int = 3):
    """Stable scalar and 2-state instances at longer horizons (H up to 40)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4 if quick else 12):
        if i % 2:
            m = rng.normal(size=(2, 2))
            m *= rng.uniform(0.3, 0.9) / np.max(np.abs(np.linalg.eigvals(m)))
            b, k = rng.normal(size=(2, 1)), 0.3 * rng.normal(size=(1, 2))
            lqr = L.make(m - b @ k, b, np.eye(2), 0.5, int(rng.integers(5, 41)), rng.uniform(0.8, 1.0),
                         noise_cov=0.02)
            theta = (*k.reshape(-1), math.log(rng.uniform(0.2, 1.0)))
        else:
            a, b = rng.uniform(-1.2, 1.2), rng.uniform(0.3, 1.5)
            k = (rng.uniform(-0.9, 0.9) - a) / b
            lqr = L.make(a, b, 1.0, rng.uniform(0.1, 1), int(rng.integers(5, 41)), rng.uniform(0.8, 1.0),
                         noise_cov=0.05)
            theta = (k, math.log(rng.uniform(0.2, 1.0)))
        out.append((lqr, theta))
    return out


def exact_finite_difference(quick: bool, gradient=L.gradient, h: float = 1e-5) -> Outcome:
    """Autodiff ∇J_H against central differences (J(θ + h e_i) − J(θ − h e_i))/2h of the exact J."""
    res = []
    for lqr, theta in fd_instances(quick):
        th = np.asarray(theta, dtype=np.float64)
        fd = np.array([(float(L.objective(jnp.asarray(th + h * e), lqr)) - float(L.objective(jnp.asarray(th - h * e), lqr)))
                       / (2 * h) for e in np.eye(th.size)])
        got = np.asarray(gradient(jnp.asarray(th), lqr))
        res.append((float(np.max(np.abs(got - fd) / (1 + np.abs(fd)))), _describe(lqr, th, None)))
    worst, where = max(res, key=lambda x: x[0])
    tol = 1e-6
    return Outcome(worst <= tol, worst, f"≤ {tol:g} (relative)",
                   f"max |∇J − central difference|/(1 + |FD|), h = {h:g}, over {len(res)} instances",
                   counterexample=where if worst > tol else None)


def mc_finite_difference(quick: bool, h: float = 1e-2, seed: int = 33, fn=None) -> Outcome:
    """GPOMDP's Monte Carlo mean against a central difference of the exact J (h = 1e-2: the
    difference's O(h²) error is far below the Monte Carlo standard error)."""
    lqr = L.make(**MC_CASE)
    th = np.asarray(MC_THETA)
    fd = np.array([(float(L.objective(jnp.asarray(th + h * e), lqr)) - float(L.objective(jnp.asarray(th - h * e), lqr)))
                   / (2 * h) for e in np.eye(th.size)])
    zc = C.lqr_check(lqr, MC_THETA, None, fn or "gpomdp", 100_000 if quick else 1_000_000, seed, expected=fd)
    return _mc_outcome(zc, "GPOMDP mean vs central difference of J_H, h = 1e-2")


@claim("lqr.gradient_finite_difference", "docs/design.md §4.5",
       "The exact LQR gradient (autodiff of the second-moment recursion) equals a central finite "
       "difference of the exact J_H.")
def _():
    return [Check("exact", exact_finite_difference), Check("monte_carlo", mc_finite_difference)]


RICCATI_CASE = dict(A=1.2, B=0.8, Q=1.0, R=0.3, gamma=0.9, noise_cov=0.05)
RICCATI_SIGMA = 0.4


def exact_riccati(quick: bool, gain_offset: float = 0.0) -> Outcome:
    """∇J_∞(K*) = 0 (discounted Lyapunov value) and |∇J_H(K*)| → 0 as H grows, σ fixed."""
    out = {}
    for name, case in (("scalar", RICCATI_CASE),
                       ("2-state", dict(A=np.array([[1.0, 0.3], [0.0, 0.9]]), B=np.array([[0.0], [1.0]]),
                                        Q=np.eye(2), R=0.5, gamma=0.95, noise_cov=0.01))):
        lqr = L.make(**case, horizon=600)
        k, _ = L.optimal_gain(lqr)
        theta = jnp.asarray(k.reshape(-1) + gain_offset)
        g_inf = np.asarray(jax.grad(L.objective_infinite)(theta, lqr, RICCATI_SIGMA))
        g_h = np.asarray(L.gradient(theta, lqr, RICCATI_SIGMA))
        out[name] = {"K*": k.reshape(-1).round(8).tolist(), "|∇J_∞(K*)|": float(np.linalg.norm(g_inf)),
                     "|∇J_600(K*)|": float(np.linalg.norm(g_h))}
    worst = max(max(v["|∇J_∞(K*)|"], v["|∇J_600(K*)|"]) for v in out.values())
    return Outcome(worst <= TOL, out, f"≤ {TOL:g}", "discounted Riccati gain; σ = 0.4 fixed",
                   counterexample=out if worst > TOL else None)


def mc_riccati(quick: bool, gain_offset: float = 0.0, seed: int = 34) -> Outcome:
    """GPOMDP at K* on H = 150 trajectories (γ = 0.9: |∇J_H(K*)| ~ γ^H, far below the standard error)
    has mean 0."""
    lqr = L.make(**RICCATI_CASE, horizon=150)
    k, _ = L.optimal_gain(lqr)
    theta = k.reshape(-1) + gain_offset
    zc = C.lqr_check(lqr, theta, RICCATI_SIGMA, "gpomdp", 50_000 if quick else 400_000, seed,
                     expected=np.zeros(1), scale=1.0)
    return _mc_outcome(zc, f"K* = {k[0, 0]:.6f}, σ = 0.4 fixed, H = 150, γ = 0.9")


@claim("lqr.riccati_stationary", "Riccati (discounted LQR); docs/design.md §4.5",
       "The gain K* of the discounted Riccati equation is a stationary point of J for σ fixed: "
       "∇J_∞(K*) = 0, and ∇J_H(K*) → 0 as the horizon grows (γ < 1).",
       conditions="γ < 1 and K* stabilises the discounted closed loop (γ·ρ(A + BK*)² < 1)")
def _():
    return [Check("exact", exact_riccati), Check("monte_carlo", mc_riccati)]
