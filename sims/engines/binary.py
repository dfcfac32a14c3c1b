"""The pass/fail routes: c(p, G) and tr Cov[ĝ] on the two-armed bandit, and the difficulty bias of
group estimators under binary rewards.

Two-armed bandit. With deterministic rewards (1, 0) and π_1 = p, a group is fixed up to order by its
number of successes k ~ Binomial(G, p), so every moment of ĝ is a sum of G + 1 terms (any G, any
registry estimator, the weights |s(a)|² included): E[ĝ] = Σ_k P(k) ĝ(k), c(p, G) = E[ĝ]_1 / ∇p_1.

For Bernoulli rewards with pass rate J = Σ_a π_a q_a, the score conditioned on the reward is
E[s(a) | R] = (R − J)∇J / (J(1 − J))  (because Σ_a π_a q_a s(a) = ∇J and Σ_a π_a s(a) = 0).
An advantage A_i that depends on the group's rewards only therefore gives

    E[ĝ] = c(J, G) · ∇J,    c(J, G) = E[A_1 (R_1 − J)] / (J(1 − J)),

a scalar that depends on the prompt's difficulty J and on G alone: c = 1 for RLOO and REINFORCE,
1 − 1/G for the group mean (Dr. GRPO), and a non-constant curve for GRPO's std whitening. The
expectation is a finite sum over R_1 ∈ {0, 1} and the number k of successes among the others.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError
from sims import estimators


def binary_reward_scale(estimator: estimators.Estimator, pass_rate: float, group: int, **params) -> float:
    """c(J, G) for an entry whose advantages ignore the per-sample weights, by the conditional
    score E[s(a) | R] (a route independent of the two-armed enumeration below, which the ledger
    compares with the exact engine)."""
    est = estimators.as_entry(estimator)
    if est.per_coordinate or est.uses_weights:
        raise InputError(f"{est.name!r} uses score weights, so its scale is not a function of J alone")
    params = estimators.resolve_params(est, group, **params)
    j = float(pass_rate)
    if not 0.0 < j < 1.0:
        raise InputError(f"the pass rate must lie strictly inside (0, 1), got {pass_rate!r}")
    r1 = np.repeat([0.0, 1.0], group)  # own reward
    k = np.tile(np.arange(group), 2)  # successes among the other G − 1
    others = (np.arange(group - 1)[None, :] < k[:, None]).astype(np.float64)
    rows = np.concatenate([r1[:, None], others], axis=1)
    a1 = np.asarray(jax.vmap(lambda r: est.advantages(r, jnp.ones(group), **params)[0])(jnp.asarray(rows)))
    p_own = np.where(r1 == 1.0, j, 1.0 - j)
    p_k = np.array([math.comb(group - 1, int(x)) for x in k]) * j**k * (1.0 - j) ** (group - 1 - k)
    return float(np.sum(p_own * p_k * a1 * (r1 - j)) / (j * (1.0 - j)))


MAX_GROUP = 4096


@functools.partial(jax.jit, static_argnames=("estimator", "group"))
def _two_arm(estimator, group, ps, params):
    """(E[ĝ]_1, tr Cov[ĝ]) on the two-armed bandit for every p in `ps` (float64)."""
    k = jnp.arange(group + 1)
    idx = jnp.arange(group)

    def at(p):
        logits = jnp.log(jnp.stack([p, 1.0 - p]))

        def one(kk):
            arms = (idx >= kk).astype(jnp.int32)
            rewards = (idx < kk).astype(jnp.float64)
            return estimators.bandit_group_gradient(estimator.advantages, logits, arms, rewards, params,
                                                    estimator.per_coordinate)

        g = jax.vmap(one)(k)  # (G+1, 2)
        logpmf = (jax.scipy.special.gammaln(group + 1.0) - jax.scipy.special.gammaln(k + 1.0)
                  - jax.scipy.special.gammaln(group - k + 1.0) + k * jnp.log(p)
                  + (group - k) * jnp.log1p(-p))
        w = jnp.exp(logpmf)
        mean = w @ g
        return mean[0], w @ jnp.sum((g - mean) ** 2, axis=-1)

    return jax.vmap(at)(ps)


def binary_moments(estimator: estimators.Estimator, ps, group: int, **params):
    """c(p, G) and tr Cov[ĝ] of the entry `estimator` on the two-armed pass/fail bandit, for each
    pass rate in `ps`."""
    est = estimators.as_entry(estimator)
    params = estimators.resolve_params(est, group, **params)
    if not isinstance(group, int) or not 1 <= group <= MAX_GROUP:
        raise InputError(f"the two-armed route takes 1 ≤ G ≤ {MAX_GROUP}, got {group!r}")
    ps = np.atleast_1d(np.asarray(ps, dtype=np.float64))
    if np.any(~(ps > 0) | ~(ps < 1)):
        raise InputError("pass rates must lie strictly inside (0, 1)")
    mean1, trace = _two_arm(est, group, jnp.asarray(ps),
                            {k: jnp.float64(v) for k, v in params.items()})
    grad1 = ps * (1.0 - ps)
    return np.asarray(mean1) / grad1, np.asarray(trace)


def scale_curve(estimator: estimators.Estimator, ps, group: int, **params) -> np.ndarray:
    """c(p, G) for each p: E[ĝ] = c·∇p on the two-armed pass/fail bandit."""
    return binary_moments(estimator, ps, group, **params)[0]
