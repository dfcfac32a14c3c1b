"""Variance-aware prompt sampling (VAS) for multi-prompt bandit ensembles (docs/design.md §4.3).

MMR1 (Leng et al. 2025) scores each prompt x by a Variance Promotion Score

    VPS(x) = α·OVS(x) + β·TDS(x),

with OVS(x) = P̂(x)(1 − P̂(x)) the outcome variance of the pass rate P̂ estimated from N rollouts,
and TDS(x) a trajectory-diversity score. On a bandit ensemble a "trajectory" is an arm, so TDS
is the entropy of the empirical distribution of the N sampled arms, normalised by its largest
possible value log min(N, K) (TDS ∈ [0, 1]; 0 when min(N, K) = 1). Each training batch of B
prompts takes n_v = round(λB) prompts drawn with replacement with probability ∝ VPS and the
other B − n_v uniformly with replacement; the scores are recomputed every T_update steps, which
costs P·N rollouts each time (reported to the trainer as `extra_rollouts`).

`vas_sampler` returns a `bandits.ensemble.PromptSampler`: pure, jit- and vmap-compatible
functions `init` and `select`. With λ = 0 it draws exactly what `uniform_sampler` draws (same
key, same indices) and spends no scoring rollouts.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bandits.ensemble import PromptSampler, rollouts
from bandits.errors import InputError


class VASState(NamedTuple):
    """Sampler state: the last scores and the step at which they were computed."""

    scores: jnp.ndarray  # (P,) VPS
    pass_rate: jnp.ndarray  # (P,) P̂ from N rollouts
    diversity: jnp.ndarray  # (P,) TDS
    last_refresh: jnp.ndarray  # int32 scalar


def outcome_variance_score(pass_rate):
    """OVS = P̂(1 − P̂), the variance of a Bernoulli(P̂) outcome."""
    return pass_rate * (1.0 - pass_rate)


def diversity_score(arms, num_arms: int):
    """TDS: entropy of the empirical arm distribution of each row of `arms` (..., N), divided by
    log min(N, K) so that TDS ∈ [0, 1] (0 when min(N, K) = 1)."""
    n = arms.shape[-1]
    counts = jnp.sum(jax.nn.one_hot(arms, num_arms), axis=-2)
    freq = counts / n
    entropy = -jnp.sum(jnp.where(freq > 0, freq * jnp.log(jnp.where(freq > 0, freq, 1.0)), 0.0),
                       axis=-1)
    top = math.log(min(n, num_arms))
    return entropy / top if top > 0 else jnp.zeros_like(entropy)


def variance_promotion_score(ovs, tds, alpha: float, beta: float):
    """VPS = α·OVS + β·TDS."""
    return alpha * ovs + beta * tds


def vps_probabilities(scores):
    """Probabilities ∝ VPS; uniform when every score is 0."""
    total = jnp.sum(scores)
    p = scores.shape[-1]
    return jnp.where(total > 0, scores / jnp.where(total > 0, total, 1.0), 1.0 / p)


def mixture_probabilities(scores, lam: float, batch: int):
    """Marginal probability that one batch slot picks each prompt:
    (n_v/B)·VPS/ΣVPS + (1 − n_v/B)/P, with n_v = round(λB) VPS-weighted slots."""
    n_v = vps_count(lam, batch)
    frac = n_v / batch
    return frac * vps_probabilities(scores) + (1.0 - frac) / scores.shape[-1]


def vps_count(lam: float, batch: int) -> int:
    """n_v = round(λB), the number of VPS-weighted slots of a batch."""
    return int(round(lam * batch))


def score_prompts(key, logits, success, num_rollouts: int, alpha: float, beta: float):
    """N rollouts of every prompt → (VPS, P̂, TDS), each (P,)."""
    p, k = success.shape
    arms, rewards = rollouts(key, logits, success, jnp.arange(p), num_rollouts)
    pass_rate = jnp.mean(rewards, axis=-1)
    tds = diversity_score(arms, k)
    return variance_promotion_score(outcome_variance_score(pass_rate), tds, alpha, beta), pass_rate, tds


def _check(batch, num_rollouts, alpha, beta, lam, update_every):
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch size must be an integer ≥ 1, got {batch!r}")
    if not isinstance(num_rollouts, int) or num_rollouts < 1:
        raise InputError(f"rollouts per prompt N must be an integer ≥ 1, got {num_rollouts!r}")
    if not isinstance(update_every, int) or update_every < 1:
        raise InputError(f"the refresh period T_update must be an integer ≥ 1, got {update_every!r}")
    for name, x in (("alpha", alpha), ("beta", beta)):
        if not (isinstance(x, (int, float)) and math.isfinite(x) and x >= 0):
            raise InputError(f"{name} must be a finite number ≥ 0, got {x!r}")
    if not (isinstance(lam, (int, float)) and 0.0 <= lam <= 1.0):
        raise InputError(f"the VPS fraction λ must lie in [0, 1], got {lam!r}")


def vas_sampler(batch: int, *, num_rollouts: int = 8, alpha: float = 1.0, beta: float = 1.0,
                lam: float = 0.5, update_every: int = 10, reweight: bool = False) -> PromptSampler:
    """Variance-aware sampling (module docstring).

    `reweight=False` (MMR1) lets the trainer use its default weights P/B; `reweight=True`
    returns importance weights 1/(B·q_p), q the mixture probability, which make the batch
    gradient unbiased for ∇J(Θ)."""
    _check(batch, num_rollouts, alpha, beta, lam, update_every)
    n_v = vps_count(lam, batch)

    def init(key, logits, success):
        del key, logits
        p = success.shape[0]
        zeros = jnp.zeros((p,), dtype=success.dtype)
        return VASState(zeros, zeros, zeros, jnp.int32(-update_every))

    def select(key, state, logits, success, step):
        p = success.shape[0]
        uniform_idx = jax.random.randint(key, (batch - n_v,), 0, p)
        if n_v == 0:
            return uniform_idx, None if not reweight else jnp.full((batch,), p / batch), state, jnp.int32(0)
        k_score = jax.random.fold_in(key, 1)
        k_vps = jax.random.fold_in(key, 2)
        step = jnp.asarray(step, jnp.int32)
        due = step - state.last_refresh >= update_every

        def refresh(_):
            vps, rate, tds = score_prompts(k_score, logits, success, num_rollouts, alpha, beta)
            return VASState(vps.astype(success.dtype), rate.astype(success.dtype),
                            tds.astype(success.dtype), step)

        state = jax.lax.cond(due, refresh, lambda _: state, None)
        extra = jnp.where(due, p * num_rollouts, 0).astype(jnp.int32)
        probs = vps_probabilities(state.scores)
        vps_idx = jax.random.categorical(k_vps, jnp.log(probs), shape=(n_v,))
        idx = jnp.concatenate([vps_idx.astype(uniform_idx.dtype), uniform_idx])
        weights = None
        if reweight:
            q = mixture_probabilities(state.scores, lam, batch)
            weights = 1.0 / (batch * q[idx])
        return idx, weights, state, extra

    return PromptSampler(init, select)
