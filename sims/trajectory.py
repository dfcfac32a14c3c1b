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

Each problem of the lab is a source of trajectories (H = 1 for the bandits) through the hashable
policy and sampler pair in its own module (`bandits.softmax.SoftmaxPolicy`/`SoftmaxSampler`,
`bandits.gaussian.GaussianPolicy`/`GaussianSampler`, `bandits.lqr.LQRPolicy`/`LQRSampler`, re-exported
here); `TrajectoryDraw` is the Monte Carlo engine's `draw` (`sims.engines.montecarlo.stream`) for any
of them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from bandits.gaussian import GaussianPolicy, GaussianSampler
from bandits.lqr import LQRPolicy, LQRSampler, Trajectory
from bandits.softmax import SoftmaxPolicy, SoftmaxSampler

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
