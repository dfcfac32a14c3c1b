"""Training on multi-prompt bandit ensembles with any registry estimator.

The batch gradient uses the estimator registry unchanged (DESIGN §3):

    Ĝ = (1/P) Σ_b w_b · e_{p_b} ĝ_bᵀ,   ĝ_b = (1/G) Σ_i A_i s(a_{b,i}),   w_b = P/B by default,

which is unbiased for ∇J(Θ) = (1/P) Σ_p ∇J_p when prompts are drawn uniformly and ĝ is unbiased.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sims.estimators import bandit_group_gradient


def batch_gradient(estimator, params, logits, prompt_idx, arms, rewards, weights=None):
    """Ĝ for a batch of groups with a registry `Estimator`; `logits` (P, K), `prompt_idx` (B,),
    `arms`/`rewards` (B, G).

    `weights` (B,) default to P/B (uniform selection); pass importance weights otherwise."""
    p, b = logits.shape[0], prompt_idx.shape[0]
    if weights is None:
        weights = jnp.full((b,), p / b, dtype=logits.dtype)
    g = jax.vmap(lambda q, a, r: bandit_group_gradient(estimator.advantages, logits[q], a, r, params,
                                                estimator.per_coordinate))(
        prompt_idx, arms, rewards
    )
    return jnp.zeros_like(logits).at[prompt_idx].add(g * weights[:, None]) / p
