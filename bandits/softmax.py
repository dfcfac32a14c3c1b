"""The softmax K-armed bandit: policy, scores, objective, gradient and Hessian.

Conventions (docs/design.md §3): logits θ ∈ R^K, π = softmax(θ), m_a = E[R | a],
J(θ) = Σ_a π_a m_a, score s(a) = ∇_θ log π(a) = e_a − π, |s(a)|² = 1 − 2π_a + |π|²,
∇J = π ∘ (m − J),  ∇²J_kl = π_k(δ_kl − π_l)(m_k − J) − π_k π_l (m_l − J).

All functions are pure JAX and keep the dtype of their inputs (float64 when x64 is on).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


def policy(logits):
    """π = softmax(θ)."""
    return jax.nn.softmax(logits, axis=-1)


def scores(logits, arms):
    """s(a) = e_a − π for each arm index in `arms` (any shape); returns arms.shape + (K,)."""
    pi = policy(logits)
    return jax.nn.one_hot(arms, pi.shape[-1], dtype=pi.dtype) - pi


def score_sq_norms(logits):
    """|s(a)|² = 1 − 2π_a + |π|² for every arm a; shape (K,)."""
    pi = policy(logits)
    return 1.0 - 2.0 * pi + jnp.sum(pi**2, axis=-1, keepdims=True)


def log_score_sq_norms(logits):
    """ln|s(a)|² for every arm, in log space: |s(a)|² = (1 − π_a)² + Σ_{b≠a} π_b² with
    1 − π_a = Σ_{b≠a} π_b, so nothing cancels and a near-one-hot policy (logits 1000, 0, 0,
    where π_b underflows to 0) keeps its relative precision; shape (K,)."""
    lp = jax.nn.log_softmax(logits, axis=-1)
    k = lp.shape[-1]
    others = jnp.where(jnp.eye(k, dtype=bool), -jnp.inf, lp[..., None, :])  # row a: ln π_b, b ≠ a
    log_rest = jax.nn.logsumexp(others, axis=-1)  # ln(1 − π_a)
    log_rest_sq = jax.nn.logsumexp(2.0 * others, axis=-1)  # ln Σ_{b≠a} π_b²
    return jnp.logaddexp(2.0 * log_rest, log_rest_sq)


def objective(logits, means):
    """J(θ) = Σ_a π_a m_a."""
    return jnp.sum(policy(logits) * means, axis=-1)


def gradient(logits, means):
    """∇J = π ∘ (m − J)."""
    pi = policy(logits)
    return pi * (means - jnp.sum(pi * means, axis=-1, keepdims=True))


def hessian(logits, means):
    """∇²J_kl = π_k(δ_kl − π_l)(m_k − J) − π_k π_l (m_l − J)."""
    pi = policy(logits)
    adv = means - jnp.sum(pi * means)
    jac = jnp.diag(pi) - jnp.outer(pi, pi)  # ∂π_k/∂θ_l
    return jac * adv[:, None] - jnp.outer(pi * 1.0, pi * adv)


def reward_variance(logits, means, second_moments):
    """Var[R] under a ~ π: Σ_a π_a v_a − J², with v_a = E[R² | a]."""
    pi = policy(logits)
    return jnp.sum(pi * second_moments) - jnp.sum(pi * means) ** 2


def optimal_constant_baseline(logits, means):
    """b* = E[|s|² R] / E[|s|²] = Σ_a π_a|s_a|² m_a / Σ_a π_a|s_a|², the minimiser of V(b) (docs/design.md §4.2).

    The weights π_a|s_a|² are normalised in log space (`log_score_sq_norms`), so a one-hot
    policy gets the limit of b* rather than 0/0: with π → e_1 the weight of arm 1 vanishes to
    second order and b* tends to the mean of the other arms weighted by their vanishing
    probabilities. Needs K ≥ 2."""
    lw = jax.nn.log_softmax(logits, axis=-1) + log_score_sq_norms(logits)
    return jnp.sum(jax.nn.softmax(lw, axis=-1) * means, axis=-1)


def sample_arms(key, logits, shape):
    """Draw arms a ~ π by inverse CDF from one 32-bit word per draw (exact to 2⁻³²; cheaper than
    Gumbel-max's K uniforms)."""
    from bandits.rewards import count_at_or_below, random_words, uniform_thresholds

    u = random_words(key, shape)
    return count_at_or_below(u, uniform_thresholds(jnp.cumsum(policy(logits))[:-1]))


JOINT_MAX_OUTCOMES = 64  # K·V up to this: one word per (arm, reward) draw, by fused compares


def sample_outcomes(key, logits, tables: dict, shape):
    """Draw (arm, reward) pairs, a ~ π and R | a, for `shape` members; `tables` is
    `RewardModel.tables()`.

    Finite laws with K·V ≤ JOINT_MAX_OUTCOMES outcomes: ONE 32-bit word per member, by inverse CDF
    over the joint outcomes o = (a, j) in arm-major order, P(o) = π_a q_j(a), with thresholds
    t_o = ⌊F(o)·2³²⌋ (exact to 2⁻³²; zero-probability outcomes have empty intervals). The arm and
    the reward are read off by select chains, so no gather breaks the fusion with the generator.
    Otherwise one word for the arm and one for the reward (`sample_arms`, `sample_rewards`)."""
    from bandits.rewards import random_words, sample_rewards, uniform_thresholds

    k = logits.shape[-1]
    if "cdf" not in tables or k * tables["values"].shape[-1] > JOINT_MAX_OUTCOMES:
        k_arm, k_rew = jax.random.split(key)
        arms = sample_arms(k_arm, logits, shape)
        return arms, sample_rewards(tables, k_rew, arms)
    cdf = tables["cdf"]
    width = cdf.shape[-1]
    q = jnp.diff(cdf, axis=-1, prepend=0.0)
    thresholds = uniform_thresholds(jnp.cumsum((policy(logits)[:, None] * q).reshape(-1))[:-1])
    values = tables["values"].reshape(-1)
    u = random_words(key, shape)
    arms = jnp.zeros(shape, jnp.int32)
    rewards = jnp.full(shape, values[0])
    for o in range(1, k * width):
        past = u >= thresholds[o - 1]  # the draw lies at or beyond outcome o
        rewards = jnp.where(past, values[o], rewards)
        if o % width == 0:
            arms = jnp.where(past, o // width, arms)
    return arms, rewards


# The problem as a source of one-step trajectories (`sims.trajectory`, docs/design.md §4.5).


@dataclasses.dataclass(frozen=True)
class SoftmaxPolicy:
    """π(a) = softmax(θ)_a; the state is ignored (H = 1); actions are (1,) integer arrays."""

    def __call__(self, theta, state, action):
        return jax.nn.log_softmax(theta)[action[0]]


@dataclasses.dataclass(frozen=True)
class SoftmaxSampler:
    """n one-step trajectories of a softmax bandit; `problem` is `RewardModel.tables()`."""

    def __call__(self, key, n, theta, problem):
        from bandits.lqr import Trajectory
        from bandits.rewards import sample_rewards

        k_arm, k_rew = jax.random.split(key)
        arms = sample_arms(k_arm, theta, (n,))
        rewards = sample_rewards(problem, k_rew, arms).astype(theta.dtype)
        return Trajectory(jnp.zeros((n, 1, 0), theta.dtype), arms[:, None, None], rewards[:, None])
