"""Trajectory estimators: GPOMDP and the Hessian estimator (Fatkhullin et al. 2023; docs/design.md §4.5).

A trajectory τ = (s_t, a_t, r_t)_{t<H} is a `Trajectory(states (H, ·), actions (H, ·), rewards (H,))`
and a policy is a function `log_prob(theta, state, action) -> scalar` (θ a flat vector (n,)).
With the discounted rewards-to-go c_t = Σ_{h≥t} γ^h r_h,

    Φ(τ, θ)  = Σ_t c_t log π(a_t | s_t; θ)                      (rewards held fixed)
    g(τ, θ)  = ∇Φ = Σ_t c_t ∇log π(a_t | s_t)                    (GPOMDP)
    B(τ, θ)  = ∇Φ ∇log p(τ; θ)ᵀ + ∇²Φ,  ∇log p(τ) = Σ_t ∇log π(a_t | s_t)   (Hessian estimator)

so that E[g] = ∇J_H and E[B] = ∇²J_H for J_H = E[Σ_{t<H} γ^t r_t] (Fatkhullin, Barakat, Kireeva,
He, ICML 2023, eq. for g and B; Shen et al. 2019). B·v is computed as
∇Φ·(∇log p(τ)ᵀv) + ∇²Φ v with one forward-over-reverse product (`jax.jvp` of `jax.grad`) and one
`jax.jvp` of log p: B is never formed. Every function takes ONE trajectory and is pure JAX; map
over a batch with `batched` (a vmap over the trajectories' leading axis).

The problems of the lab as sources of trajectories (H = 1 for the bandits), each a hashable policy
and sampler so that the Monte Carlo engine (`sims.engines.montecarlo.stream`) can compile them:
`SoftmaxPolicy`/`SoftmaxSampler`, `GaussianPolicy`/`GaussianSampler`, `LQRPolicy`/`LQRSampler`, and
`TrajectoryDraw`, the engine's `draw` for any of them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from bandits import gaussian, lqr, softmax
from bandits.lqr import Trajectory
from bandits.rewards import sample_rewards

__all__ = ["Trajectory", "reward_to_go", "log_likelihood", "surrogate", "gpomdp", "hessian_estimate",
           "hessian_vector", "batched", "TrajectoryDraw", "SoftmaxPolicy", "SoftmaxSampler",
           "GaussianPolicy", "GaussianSampler", "LQRPolicy", "LQRSampler", "ESTIMATORS"]


def reward_to_go(rewards, gamma):
    """c_t = Σ_{h≥t} γ^h r_h (discounted from the start of the trajectory), shape (H,)."""
    h = rewards.shape[-1]
    discounted = rewards * gamma ** jnp.arange(h, dtype=rewards.dtype)
    return jnp.flip(jnp.cumsum(jnp.flip(discounted, -1), -1), -1)


def _per_step(log_prob, theta, traj):
    return jax.vmap(lambda s, a: log_prob(theta, s, a))(traj.states, traj.actions)


def log_likelihood(log_prob, theta, traj: Trajectory):
    """log p(τ; θ) up to the θ-free dynamics: Σ_t log π(a_t | s_t; θ)."""
    return jnp.sum(_per_step(log_prob, theta, traj))


def surrogate(log_prob, theta, traj: Trajectory, gamma):
    """Φ(τ, θ) = Σ_t c_t log π(a_t | s_t; θ)."""
    return reward_to_go(traj.rewards, gamma) @ _per_step(log_prob, theta, traj)


def gpomdp(log_prob, theta, traj: Trajectory, gamma):
    """GPOMDP g(τ, θ) = Σ_t (Σ_{h≥t} γ^h r_h) ∇_θ log π(a_t | s_t), shape (n,)."""
    return jax.grad(surrogate, argnums=1)(log_prob, theta, traj, gamma)


def hessian_estimate(log_prob, theta, traj: Trajectory, gamma):
    """B(τ, θ) = ∇Φ ∇log p(τ)ᵀ + ∇²Φ, shape (n, n) (not symmetric; E[B] = ∇²J_H is)."""
    g = gpomdp(log_prob, theta, traj, gamma)
    score = jax.grad(log_likelihood, argnums=1)(log_prob, theta, traj)
    return jnp.outer(g, score) + jax.hessian(surrogate, argnums=1)(log_prob, theta, traj, gamma)


def hessian_vector(log_prob, theta, traj: Trajectory, gamma, v):
    """B(τ, θ)·v = ∇Φ (∇log p(τ)ᵀ v) + ∇²Φ v without forming B, shape (n,)."""
    grad_phi = lambda th: gpomdp(log_prob, th, traj, gamma)  # noqa: E731
    g, hv = jax.jvp(grad_phi, (theta,), (v,))
    _, score_v = jax.jvp(lambda th: log_likelihood(log_prob, th, traj), (theta,), (v,))
    return g * score_v + hv


def batched(fn, log_prob, theta, trajs: Trajectory, gamma, *rest):
    """`fn(log_prob, theta, τ, gamma, *rest)` for every trajectory of a batch (leading axis)."""
    return jax.vmap(lambda tr: fn(log_prob, theta, tr, gamma, *rest))(trajs)


# ----------------------------------------------------------------------------- the lab's problems


@dataclasses.dataclass(frozen=True)
class SoftmaxPolicy:
    """π(a) = softmax(θ)_a; the state is ignored (H = 1); actions are (1,) integer arrays."""

    def __call__(self, theta, state, action):
        return jax.nn.log_softmax(theta)[action[0]]


@dataclasses.dataclass(frozen=True)
class SoftmaxSampler:
    """n one-step trajectories of a softmax bandit; `problem` is `RewardModel.tables()`."""

    def __call__(self, key, n, theta, problem):
        k_arm, k_rew = jax.random.split(key)
        arms = softmax.sample_arms(k_arm, theta, (n,))
        rewards = sample_rewards(problem, k_rew, arms).astype(theta.dtype)
        return Trajectory(jnp.zeros((n, 1, 0), theta.dtype), arms[:, None, None], rewards[:, None])


@dataclasses.dataclass(frozen=True)
class GaussianPolicy:
    """a ~ N(μ, σ²) with θ = (μ, log σ), or θ = (μ,) and this fixed `sigma`; the state is ignored."""

    sigma: float | None = None

    def __call__(self, theta, state, action):
        return gaussian.log_prob(theta, action[0], self.sigma)


@dataclasses.dataclass(frozen=True)
class GaussianSampler:
    """n one-step trajectories of a Gaussian bandit; `problem` is the reward polynomial's coefficients."""

    sigma: float | None = None

    def __call__(self, key, n, theta, problem):
        a = gaussian.sample(key, theta, (n,), self.sigma)
        return Trajectory(jnp.zeros((n, 1, 0), a.dtype), a[:, None, None], gaussian.polyval(problem, a)[:, None])


@dataclasses.dataclass(frozen=True)
class LQRPolicy:
    """u ~ N(Kx, σ²I) with θ = (vec K[, log σ]); `sigma` is the fixed σ when θ = vec K."""

    sigma: float | None = None

    def __call__(self, theta, state, action):
        return lqr.log_prob(theta, state, action, self.sigma)


@dataclasses.dataclass(frozen=True)
class LQRSampler:
    """n trajectories of an LQR instance (`problem`: a `bandits.lqr.LQR`)."""

    sigma: float | None = None

    def __call__(self, key, n, theta, problem):
        return lqr.sample_trajectories(key, theta, problem, n, self.sigma)


def _gpomdp(log_prob, theta, traj, gamma, v):
    return gpomdp(log_prob, theta, traj, gamma)


def _hessian(log_prob, theta, traj, gamma, v):
    return hessian_estimate(log_prob, theta, traj, gamma).reshape(-1)


def _hessian_vector(log_prob, theta, traj, gamma, v):
    return hessian_vector(log_prob, theta, traj, gamma, v)


# name → per-trajectory vector fn(log_prob, theta, traj, gamma, v) drawn by the engine
ESTIMATORS = {"gpomdp": _gpomdp, "hessian": _hessian, "hessian_vector": _hessian_vector}


@dataclasses.dataclass(frozen=True)
class TrajectoryDraw:
    """The Monte Carlo engine's `draw` for a trajectory estimator on any problem:

        draw(key, n, (theta, problem, gamma, v)) -> (n, d)

    with d = n_θ for "gpomdp" and "hessian_vector" (B·v; v ignored otherwise) and n_θ² for
    "hessian" (B flattened row-major). `estimator` is a name of ESTIMATORS or any hashable
    fn(log_prob, theta, traj, gamma, v) -> vector of the same form."""

    sampler: Callable
    policy: Callable
    estimator: str | Callable = "gpomdp"

    def __post_init__(self):
        if isinstance(self.estimator, str) and self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {sorted(ESTIMATORS)}, got {self.estimator!r}")

    def __call__(self, key, n, args):
        theta, problem, gamma, v = args
        fn = ESTIMATORS[self.estimator] if isinstance(self.estimator, str) else self.estimator
        trajs = self.sampler(key, n, theta, problem)
        return batched(fn, self.policy, theta, trajs, gamma, v)
