"""Measurements of the estimators on the transformer policy at fixed parameters.

For a one-token task at one prompt x the policy is a softmax over the action tokens, so the pass
rate and its gradient are exact: J(θ) = π_θ(y* | x) and ∇J = ∇_θ π_θ(y* | x) (`exact_pass_rate`).
Many independent groups of G completions give group estimates

    ĝ_e = (1/G) Σ_i A^e_i s_i,   s_i = ∇_θ log π_θ(y_i | x),   A^e from the registry,

assembled by `sims.estimators.group_gradient` from exact per-sequence scores (vmap of grad), with
every estimator evaluated on the same groups (common random numbers). From them: tr Cov[ĝ_e]
(`trace_variance`) and the scale of the mean along the true gradient,
ĉ_e = ⟨mean ĝ_e, ∇J⟩ / |∇J|², which the bandit theory predicts to be c(J, G)
(`sims.engines.binary.binary_reward_scale`) for estimators whose advantages depend on rewards only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sims import estimators
from sims.scaleup import model as M
from sims.scaleup import rollout, tasks


def _flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def exact_pass_rate(graphdef, params, prompt, answer_token):
    """J = π(y* | x) and ∇_θ J (flattened) for a one-token task."""
    def j(prm):
        logits = nnx.merge(graphdef, prm).prefix(prompt[None])[0][0]
        return jax.nn.softmax(M.action_logits(logits))[answer_token]

    value, grad = jax.value_and_grad(j)(params)
    return value, _flat(grad)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _groups(graphdef, params, prompt, target, group, groups, names, key):
    length = target.shape[-1]

    def scores(y):
        def logp(prm):
            return jnp.sum(M.token_logprobs(nnx.merge(graphdef, prm), prompt[None], y[None, None])[0, 0])
        return _flat(jax.grad(logp)(params))

    def one(k):
        comp, mask = rollout.sample(nnx.merge(graphdef, params), prompt[None], k, group, length)
        y = comp[0]
        r = tasks.rewards(y, target[None, :]).astype(params_dtype(params))
        s = jax.vmap(scores)(y)  # (G, K); one-token completions: every mask entry is 1
        w = jnp.sum(s**2, axis=-1)
        g = jnp.stack([estimators.group_gradient(
            estimators.get(n).advantages(r, w, **estimators.get(n).params), s) for n in names])
        return g, r

    return jax.lax.map(one, jax.random.split(key, groups))


def params_dtype(params):
    return jax.tree_util.tree_leaves(params)[0].dtype


def group_gradients(graphdef, params, prompt, target, group: int, groups: int, names, seed: int):
    """ĝ_e for `groups` independent groups → (len(names), groups, K) and rewards (groups, G)."""
    g, r = _groups(graphdef, params, jnp.asarray(prompt), jnp.asarray(target), group, groups,
                   tuple(names), jax.random.key(seed))
    return np.asarray(jnp.swapaxes(g, 0, 1), np.float64), np.asarray(r)


def trace_variance(g):
    """tr Cov of the rows of g (n, K) with a standard error from the spread of |g_i − ḡ|²."""
    n = g.shape[0]
    d2 = np.sum((g - g.mean(0)) ** 2, axis=1) * n / (n - 1)
    return float(d2.mean()), float(d2.std(ddof=1) / np.sqrt(n))


def scale_along(g, true_grad):
    """ĉ = ⟨mean g, ∇J⟩/|∇J|² with its standard error over groups."""
    proj = g @ true_grad / float(true_grad @ true_grad)
    return float(proj.mean()), float(proj.std(ddof=1) / np.sqrt(len(proj)))
