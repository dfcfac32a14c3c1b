"""Expectations of estimators on the lab's problems, exactly and through the Monte Carlo engine
(docs/design.md §4.5). The ledger, the tests, the CLI and the figure call these functions.

Exact expectations of the trajectory estimators (`sims.trajectory`), computed by integrating the
estimator function itself — never through the closed forms they are compared with:

- softmax bandit: enumeration of the (arm, reward) outcomes, Σ_o π_a q(r | a) f(τ_o);
- Gaussian bandit: Gauss–Hermite quadrature with `NODES` nodes, exact for integrands that are
  polynomials of degree < 2·NODES in a (the estimators are, for polynomial rewards).

Monte Carlo (`trajectory_check`): the engine streams the per-trajectory vectors; the mean is
compared with the exact value coordinate-wise under Holm (`sims.engines.stats`).

Group estimators of the registry on the Gaussian bandit (`pglab moments-gaussian`): a group of G
actions a_i ~ N(μ, σ²), ĝ = (1/G) Σ_i A_i u(a_i) with the registry's advantages and weights
|u(a_i)|². Closed forms, with ρ = R − E[R], F = E[u uᵀ], g = ∇J:

    reinforce (b):  E[ĝ] = g,  Cov = (E[(R − b)² u uᵀ] − g gᵀ)/G
    rloo:           E[ĝ] = g,  Cov = (E[ρ² u uᵀ] + F Var R/(G − 1) − g gᵀ (G − 2)/(G − 1))/G
    grpo_mean:      (1 − 1/G) × rloo's ĝ, so E[ĝ] = (1 − 1/G) g and Cov = (1 − 1/G)² Cov_rloo

(the matrix form of docs/design.md §4.1's variances; b* = E[|u|²R]/E[|u|²]).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from bandits import gaussian, softmax
from bandits import lqr as L
from bandits.errors import InputError
from bandits.rewards import RewardModel
from sims import estimators
from sims import trajectory as T
from sims.engines import montecarlo, stats

NODES = 40
CLOSED_FORM = ("reinforce", "rloo", "grpo_mean")


def _fn(estimator):
    return T.ESTIMATORS[estimator] if isinstance(estimator, str) else estimator


def _vector(theta, v):
    return jnp.zeros_like(theta) if v is None else jnp.asarray(v, dtype=theta.dtype)


@functools.partial(jax.jit, static_argnames=("fn", "policy"))
def _weighted_mean(fn, policy, theta, trajs, v, w):
    return w @ T.batched(fn, policy, theta, trajs, 1.0, v)


def softmax_expectation(logits, rewards: RewardModel, estimator="gpomdp", v=None):
    """E[f(τ)] over one-step trajectories of a softmax bandit with finite rewards, by enumeration."""
    theta = jnp.asarray(np.asarray(logits, dtype=np.float64))
    arms, values, probs = rewards.outcomes()
    w = np.asarray(softmax.policy(theta))[arms] * probs
    n = len(arms)
    trajs = T.Trajectory(jnp.zeros((n, 1, 0)), jnp.asarray(arms)[:, None, None], jnp.asarray(values)[:, None])
    return np.asarray(_weighted_mean(_fn(estimator), T.SoftmaxPolicy(), theta, trajs, _vector(theta, v),
                                     jnp.asarray(w)))


def gaussian_expectation(theta, coeffs, sigma=None, estimator="gpomdp", v=None):
    """E[f(τ)] over one-step trajectories of a Gaussian bandit, by Gauss–Hermite quadrature."""
    theta = jnp.asarray(np.asarray(theta, dtype=np.float64))
    z, w = np.polynomial.hermite_e.hermegauss(NODES)
    mu, s = (float(x) for x in gaussian.mu_sigma(theta, sigma))
    a = jnp.asarray(mu + s * z)
    trajs = T.Trajectory(jnp.zeros((NODES, 1, 0)), a[:, None, None], gaussian.polyval(jnp.asarray(coeffs), a)[:, None])
    return np.asarray(_weighted_mean(_fn(estimator), T.GaussianPolicy(sigma), theta, trajs,
                                     _vector(theta, v), jnp.asarray(w / w.sum())))


def exact_target(estimator: str, gradient, hessian, v=None):
    """What an unbiased estimator's mean must be: ∇J, vec(∇²J) or ∇²J v."""
    if estimator == "gpomdp":
        return np.asarray(gradient)
    if estimator == "hessian":
        return np.asarray(hessian).reshape(-1)
    return np.asarray(hessian) @ np.asarray(v)


def trajectory_check(draw, args, expected, samples: int, seed: int, label: str,
                     alpha: float = stats.ALPHA, scale=None) -> stats.ZCheck:
    """Monte Carlo mean of `draw` (via the engine) against `expected`, Holm-controlled z-tests."""
    s = montecarlo.stream(draw, args, samples, seed)
    return stats.z_check(label, s.mean, s.mean_se, expected, scale=scale, alpha=alpha)


def lqr_check(lqr: L.LQR, theta, sigma=None, estimator="gpomdp", samples: int = 100_000, seed: int = 0,
              v=None, expected=None, alpha: float = stats.ALPHA, scale=None) -> stats.ZCheck:
    """E[estimator] on LQR trajectories by Monte Carlo against the exact recursion's ∇J_H / ∇²J_H
    (or against `expected`, e.g. 0 at the Riccati gain)."""
    theta = jnp.asarray(L.check_policy(lqr, theta, sigma))
    v = _vector(theta, v)
    if expected is None:
        expected = exact_target(estimator if isinstance(estimator, str) else "gpomdp",
                                L.gradient(theta, lqr, sigma), L.hessian(theta, lqr, sigma), v)
    draw = T.TrajectoryDraw(T.LQRSampler(sigma), T.LQRPolicy(sigma), estimator)
    name = estimator if isinstance(estimator, str) else getattr(estimator, "__name__", "estimator")
    return trajectory_check(draw, (theta, lqr, lqr.gamma, v), expected, samples, seed,
                            f"LQR {name}: MC mean vs exact recursion", alpha, scale)


def lqr_moments(lqr: L.LQR, theta, sigma=None, samples: int = 100_000, seed: int = 0) -> montecarlo.Stream:
    """Mean and covariance of GPOMDP on LQR trajectories (the engine's `Stream`)."""
    theta = jnp.asarray(L.check_policy(lqr, theta, sigma))
    draw = T.TrajectoryDraw(T.LQRSampler(sigma), T.LQRPolicy(sigma), "gpomdp")
    return montecarlo.stream(draw, (theta, lqr, lqr.gamma, jnp.zeros_like(theta)), samples, seed)


@dataclasses.dataclass(frozen=True)
class _Returns:
    """Engine problem: the discounted return Σ_t γ^t r_t of LQR trajectories, as (n, 1)."""

    sigma: float | None = None

    def __call__(self, key, n, args):
        theta, problem = args
        return L.discounted_return(L.sample_trajectories(key, theta, problem, n, self.sigma), problem.gamma)[:, None]


def lqr_returns(lqr: L.LQR, theta, sigma=None, samples: int = 100_000, seed: int = 0) -> montecarlo.Stream:
    """Monte Carlo estimate of J_H (mean discounted return) with its standard error."""
    theta = jnp.asarray(L.check_policy(lqr, theta, sigma))
    return montecarlo.stream(_Returns(sigma), (theta, lqr), samples, seed)


# ------------------------------------------------------------- group estimators, Gaussian bandit


def _gaussian_group_gradient(est, theta, sigma, actions, rewards, params):
    u = gaussian.score(theta, actions, sigma)  # (G, n)
    w = u**2 if est.per_coordinate else jnp.sum(u**2, axis=-1)
    return estimators.group_gradient(est.advantages(rewards, w, **params), u)


@dataclasses.dataclass(frozen=True)
class GaussianGroups:
    """Engine problem: `draw(key, n, (theta, coeffs, params))` → n group estimates ĝ of a registry
    estimator on a Gaussian bandit, (n, n_θ); the entry is part of the hash (by identity)."""

    estimator: estimators.Estimator
    group: int
    sigma: float | None = None

    def __call__(self, key, n, args):
        theta, coeffs, params = args
        a = gaussian.sample(key, theta, (n, self.group), self.sigma)
        r = gaussian.polyval(coeffs, a)
        fn = functools.partial(_gaussian_group_gradient, self.estimator, theta, self.sigma, params=params)
        return jax.vmap(fn)(a, r)


def _moment_matrix(poly, mu, s, n):
    """E[p(a) u uᵀ] (n × n) for a polynomial p."""
    u = gaussian.score_polys(mu, s)
    return np.array([[float(gaussian.expect(jnp.convolve(poly, jnp.convolve(u[i], u[j])), mu, s))
                      for j in range(n)] for i in range(n)])


def gaussian_group_exact(estimator, theta, coeffs, group: int, sigma=None, **params) -> dict:
    """Closed-form E[ĝ], Cov[ĝ] of `reinforce`, `rloo` or `grpo_mean` on a Gaussian bandit, with
    ∇J and b* = E[|u|²R]/E[|u|²]; other estimators have no closed form here (InputError)."""
    est = estimators.as_entry(estimator)
    name = est.name
    params = estimators.resolve_params(est, group, **params)
    if name not in CLOSED_FORM:
        raise InputError(f"estimator {name!r} has no closed form on a Gaussian bandit; "
                         f"exact moments exist for {', '.join(CLOSED_FORM)}; use --mc N")
    c, th = gaussian.validate(coeffs, theta, sigma)
    c, th = jnp.asarray(c), jnp.asarray(th)
    mu, s = gaussian.mu_sigma(th, sigma)
    n = th.shape[0]
    g = np.asarray(gaussian.gradient(th, c, sigma))
    fis = np.asarray(gaussian.fisher(th, sigma))
    mean_r = float(gaussian.expect(c, mu, s))
    var_r = float(gaussian.expect(jnp.convolve(c, c), mu, s)) - mean_r**2
    m_uu = _moment_matrix(jnp.array([1.0]), mu, s, n)
    m_ruu = _moment_matrix(c, mu, s, n)
    m_rruu = _moment_matrix(jnp.convolve(c, c), mu, s, n)
    b_star = float(np.trace(m_ruu) / np.trace(m_uu))
    if name == "reinforce":
        b = params["baseline"]
        second = m_rruu - 2 * b * m_ruu + b * b * m_uu
        mean, cov = g, (second - np.outer(g, g)) / group
    else:
        rho2 = m_rruu - 2 * mean_r * m_ruu + mean_r**2 * m_uu
        cov = (rho2 + fis * var_r / (group - 1) - np.outer(g, g) * (group - 2) / (group - 1)) / group
        mean = g
        if name == "grpo_mean":
            f = 1 - 1 / group
            mean, cov = f * g, f * f * cov
    return {"params": params, "objective": mean_r, "true_gradient": g, "mean": np.asarray(mean),
            "cov": cov, "optimal_constant_baseline": b_star}


def gaussian_group_mc(estimator, theta, coeffs, group: int, samples: int, seed: int = 0, sigma=None,
                      progress=None, **params) -> montecarlo.MCMoments:
    """Monte Carlo E[ĝ], Cov[ĝ] of any registry estimator on a Gaussian bandit (the engine)."""
    est = estimators.as_entry(estimator)
    name = est.name
    params = estimators.resolve_params(est, group, **params)
    c, th = gaussian.validate(coeffs, theta, sigma)
    jparams = {k: jnp.float64(v) for k, v in params.items()}
    s = montecarlo.stream(GaussianGroups(est, group, None if sigma is None else float(sigma)),
                          (jnp.asarray(th), jnp.asarray(c), jparams), samples, seed, progress)
    return montecarlo.MCMoments(estimator=name, group=group, params=params, samples=samples, seed=seed,
                                mean=s.mean, cov=s.cov, trace_var_se=s.trace_var_se, batches=s.batches)


# ------------------------------------------------------------- LQR expectations by quadrature

MAX_QUADRATURE_POINTS = 250_000


def _return_vector(log_prob, theta, traj, gamma, v):
    """The discounted return Σ_t γ^t r_t as a 1-vector (for `lqr_expectation`)."""
    return jnp.atleast_1d(traj.rewards @ (gamma ** jnp.arange(traj.rewards.shape[-1])))


def lqr_expectation(lqr: L.LQR, theta, sigma=None, estimator="gpomdp", v=None, nodes: int = 8):
    """E[f(τ)] on a short-horizon LQR instance, exactly, by tensor Gauss–Hermite quadrature over the
    trajectory's standard normals (x_0, ε_t and, when Σ_w ≠ 0, w_t). For polynomial integrands of
    degree < 2·nodes per variable (g, B and the return are) the result is exact to rounding.
    `estimator` may also be "return" (Σ_t γ^t r_t). Refused beyond MAX_QUADRATURE_POINTS points."""
    theta = jnp.asarray(L.check_policy(lqr, theta, sigma))
    d, m = lqr.dims
    h = lqr.horizon
    with_noise = bool(np.any(np.asarray(lqr.noise_cov) != 0))
    dims = d + h * m + (h * d if with_noise else 0)
    if nodes**dims > MAX_QUADRATURE_POINTS:
        raise InputError(f"{nodes}^{dims} quadrature points exceed {MAX_QUADRATURE_POINTS:,}; "
                         "use a shorter horizon or fewer dimensions")
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    idx = np.stack(np.meshgrid(*[np.arange(nodes)] * dims, indexing="ij"), -1).reshape(-1, dims)
    pts, wts = jnp.asarray(z[idx]), jnp.asarray(np.prod(w[idx], axis=1))
    z0, eps = pts[:, :d], pts[:, d:d + h * m].reshape(-1, h, m)
    noise = pts[:, d + h * m:].reshape(-1, h, d) if with_noise else jnp.zeros((pts.shape[0], h, d))
    trajs = jax.vmap(lambda a, b, c: L.rollout_from_noise(theta, lqr, a, b, c, sigma))(z0, eps, noise)
    fn = _return_vector if estimator == "return" else _fn(estimator)
    vec = _vector(theta, v)
    return np.asarray(jax.jit(lambda tr: wts @ T.batched(fn, T.LQRPolicy(sigma), theta, tr, lqr.gamma, vec))(trajs))
