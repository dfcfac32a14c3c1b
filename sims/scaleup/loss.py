"""The policy-gradient surrogate, its token aggregation modes, and |s|² per sequence.

Per token ℓ_it = −stop_gradient(A_i) · log π(y_it | x, y_<it), with mask m_it (1 up to EOS).
The aggregation modes carry the TRL/verl names; each is Σ_it c_it ℓ_it / Z:

| mode                      | c_it          | Z                                   |
|---------------------------|---------------|-------------------------------------|
| `token-mean`              | m_it          | Σ_it m_it (tokens in the whole batch)|
| `seq-mean-token-sum`      | m_it          | N (sequences in the batch)          |
| `seq-mean-token-mean`     | m_it / |y_i|  | N                                   |
| `seq-mean-token-sum-norm` | m_it          | N · T_max (Dr. GRPO's constant)     |

`seq-mean-token-sum` is exactly the surrogate (1/N) Σ_i stop_gradient(A_i)·log π(y_i) whose
gradient is the registry's ĝ = (1/G) Σ_i A_i s(y_i) averaged over the batch's prompts.
(verl's `seq-mean-token-sum-norm` divides the token sum by T_max only; here the sequence mean is
taken as well, so the loss does not grow with the batch.)

Invariance to micro-batching: Z is computed once from the whole batch (`normaliser`) and every
micro-batch contributes Σ_{its rows} c_it ℓ_it / Z, so the accumulated gradient equals the
full-batch gradient. Normalising each micro-batch by its own token count (`token-mean` done
naively) would not: it weights a token by 1/(tokens in its micro-batch).

|s|² per sequence: s_i = ∇_θ log π(y_i | x) = Σ_t ∇_θ log π(y_it | …) over the masked tokens,
computed exactly as per-example gradients (`jax.vmap` of `jax.grad`), not a proxy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from bandits.errors import InputError
from sims.scaleup.model import token_logprobs

MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"unknown loss aggregation {mode!r}; known: {', '.join(MODES)}")
    return mode


def normaliser(mask, mode: str):
    """Z of the whole batch; mask (..., T)."""
    n = mask[..., 0].size
    if mode == "token-mean":
        return jnp.sum(mask)
    if mode == "seq-mean-token-sum-norm":
        return jnp.asarray(n * mask.shape[-1], mask.dtype)
    return jnp.asarray(n, mask.dtype)


def coefficients(mask, mode: str):
    """c_it of the table above."""
    if mode == "seq-mean-token-mean":
        return mask / jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1.0)
    return mask


def surrogate(logp, advantages, mask, mode: str, z):
    """Σ_it c_it ℓ_it / Z with ℓ_it = −stop_gradient(A_i)·logp_it; logp, mask (P, G, T), A (P, G)."""
    a = jax.lax.stop_gradient(advantages)[..., None]
    return -jnp.sum(coefficients(mask, mode) * a * logp) / z


def _per_sequence(graphdef, params, prompts, completions, mask, reduce):
    """reduce(leaves of ∇_θ Σ_t m_it log π(y_it | …)) for each of the P·G sequences (vmap of
    grad: exact per-example gradients) → (P, G, …)."""
    p, g, t = completions.shape

    def one(prompt, completion, m):
        def logp(prm):
            model = nnx.merge(graphdef, prm)
            return jnp.sum(m * token_logprobs(model, prompt[None], completion[None, None])[0, 0])

        return reduce(jax.tree_util.tree_leaves(jax.grad(logp)(params)))

    out = jax.vmap(one)(jnp.repeat(prompts, g, axis=0), completions.reshape(p * g, t), mask.reshape(p * g, t))
    return out.reshape(p, g, *out.shape[1:])


def sequence_scores(graphdef, params, prompts, completions, mask):
    """s_i = ∇_θ Σ_t m_it log π(y_it | …) flattened → (P, G, K), K the number of parameters."""
    return _per_sequence(graphdef, params, prompts, completions, mask,
                         lambda leaves: jnp.concatenate([jnp.ravel(x) for x in leaves]))


def sequence_sq_norms(graphdef, params, prompts, completions, mask):
    """|s_i|² = |∇_θ Σ_t m_it log π(y_it | …)|² for every sequence → (P, G), without forming the
    flattened scores."""
    return _per_sequence(graphdef, params, prompts, completions, mask,
                         lambda leaves: sum(jnp.sum(x**2) for x in leaves))
