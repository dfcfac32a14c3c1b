"""The difficulty bias of group estimators under binary (pass/fail) rewards.

For Bernoulli rewards with pass rate J = Σ_a π_a q_a, the score conditioned on the reward is
E[s(a) | R] = (R − J)∇J / (J(1 − J))  (because Σ_a π_a q_a s(a) = ∇J and Σ_a π_a s(a) = 0).
An advantage A_i that depends on the group's rewards only therefore gives

    E[ĝ] = c(J, G) · ∇J,    c(J, G) = E[A_1 (R_1 − J)] / (J(1 − J)),

a scalar that depends on the prompt's difficulty J and on G alone: c = 1 for RLOO and REINFORCE,
1 − 1/G for the group mean (Dr. GRPO), and a non-constant curve for GRPO's std whitening. The
expectation is a finite sum over R_1 ∈ {0, 1} and the number k of successes among the others.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError
from sims import estimators


def binary_reward_scale(name: str, pass_rate: float, group: int, **params) -> float:
    """c(J, G) for a registry estimator whose advantages ignore the per-sample weights."""
    est = estimators.get(name)
    if est.per_coordinate or est.uses_weights:
        raise InputError(f"{name!r} uses score weights, so its scale is not a function of J alone")
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
