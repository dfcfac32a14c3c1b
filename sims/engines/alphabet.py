"""Exact moments of a group estimate over a finite alphabet of member types (docs/design.md §4.11,
§4.12): the route for problems whose responses are too many to enumerate in groups, when every
member's coefficient depends on the group only through the members' types.

A group is G i.i.d. members y_i ~ π; each member has a type τ(y) that fixes everything the
coefficient reads (its reward, its feature, its length), and

    ĝ = Σ_i x_i s(y_i),     x_i = c_i A_i,

with A = advantages(rewards, features) and c the aggregation's coefficient. Given the multiset m of
types (counts n_τ, probability G!/Π n_τ! · Π p_τ^{n_τ}, p_τ = Σ_{τ(y)=τ} π(y)), the members are
independent draws from π restricted to their types, so with α_τ = Σ_{i: τ_i = τ} x_i and
β_τ = Σ_{i: τ_i = τ} x_i², ū_τ = E[s | τ], S̄_τ = E[s sᵀ | τ]:

    E[ĝ]    = Σ_τ E[α_τ] ū_τ,
    E[ĝĝᵀ]  = Σ_τ E[β_τ] (S̄_τ − ū_τ ū_τᵀ) + Σ_{τ,τ'} E[α_τ α_τ'] ū_τ ū_τ'ᵀ.

Only E[α] (M,), E[β] (M,) and E[ααᵀ] (M, M) are sums over multisets; the score algebra is done
once per type. Advantage functions are symmetric in the members (the registry's contract), so each
multiset is evaluated once, in sorted order. float64.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError
from sims import estimators

MAX_MULTISETS = 4_000_000  # multisets of G types evaluated (each a G-member advantage call)
CHUNK = 1 << 15  # multisets per step, fewer when a step's one-hot (chunk, G, M) would pass CHUNK_ENTRIES
CHUNK_ENTRIES = 1 << 22


def count_multisets(types: int, group: int) -> int:
    return math.comb(types + group - 1, group)


@functools.lru_cache(maxsize=16)
def multisets(types: int, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Every multiset of `group` types out of `types`, as sorted rows (n, G), with the log multinomial
    coefficients log(G!/Π n_τ!) (n,)."""
    n = count_multisets(types, group)
    if n > MAX_MULTISETS:
        raise InputError(f"the type-alphabet route needs {n:,} multisets of {group} members over {types} types, "
                         f"beyond its limit of {MAX_MULTISETS:,}; use Monte Carlo instead")
    rows = np.fromiter(itertools.chain.from_iterable(
        itertools.combinations_with_replacement(range(types), group)), dtype=np.int32, count=n * group)
    rows = rows.reshape(n, group)
    counts = np.zeros((n, types), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), group), rows.ravel()), 1)
    from scipy.special import gammaln

    return rows, gammaln(group + 1.0) - np.sum(gammaln(counts + 1.0), axis=1)


def chunk_size(types: int, group: int) -> int:
    """Multisets per step: a power of two, at most CHUNK, with chunk·G·M ≤ CHUNK_ENTRIES where possible."""
    return max(1, min(CHUNK, 1 << max(0, (CHUNK_ENTRIES // (types * group)).bit_length() - 1)))


@functools.partial(jax.jit, static_argnames=("estimator", "coefficient", "chunk"))
def _type_sums(estimator, coefficient, chunk, rows, log_coef, log_p, rewards, features, lengths, params):
    """E[α] (M,), E[β] (M,), E[ααᵀ] (M, M) over the multisets, `chunk` rows per step (padded rows
    carry log weight −∞)."""
    types = log_p.shape[0]

    def step(args):
        g, lc = args  # (C, G), (C,)
        x = jax.vmap(lambda t: coefficient(lengths[t]) * estimator.advantages(rewards[t], features[t], **params))(g)
        w = jnp.exp(lc + jnp.sum(log_p[g], axis=-1))  # (C,)
        onehot = jax.nn.one_hot(g, types, dtype=x.dtype)  # (C, G, M)
        alpha = jnp.einsum("cg,cgm->cm", x, onehot)
        beta = jnp.einsum("cg,cgm->cm", x**2, onehot)
        return w @ alpha, w @ beta, jnp.einsum("c,cm,cn->mn", w, alpha, alpha)

    out = jax.lax.map(step, (rows.reshape(-1, chunk, rows.shape[-1]), log_coef.reshape(-1, chunk)))
    return tuple(jnp.sum(o, axis=0) for o in out)


def group_moments(estimator: estimators.Estimator, coefficient, group: int, probs, scores, types,
                  rewards, features, lengths, params) -> tuple[np.ndarray, np.ndarray]:
    """(E[ĝ] (D,), Cov[ĝ] (D, D)) for ĝ = Σ_i c_i A_i s(y_i) over G i.i.d. members.

    probs (N,) π(y); scores (N, D) s(y); types (N,) τ(y) in [0, M); rewards, features, lengths (M,)
    per type; `coefficient(lengths (G,)) -> (G,)` the aggregation's c (hashable, static);
    `params` the estimator's resolved parameters."""
    est = estimators.as_entry(estimator)
    probs = np.asarray(probs, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    types = np.asarray(types)
    m = int(np.asarray(rewards).shape[0])
    p = np.bincount(types, weights=probs, minlength=m)
    if np.any(p <= 0):
        raise InputError("every type of the alphabet needs positive probability")
    ubar = np.zeros((m, scores.shape[1]))
    np.add.at(ubar, types, probs[:, None] * scores)
    ubar /= p[:, None]
    rows, log_coef = multisets(m, group)
    chunk = chunk_size(m, group)
    pad = (-len(rows)) % chunk
    rows = np.concatenate([rows, np.zeros((pad, group), np.int32)])
    log_coef = np.concatenate([log_coef, np.full(pad, -np.inf)])
    e_alpha, e_beta, e_aa = jax.device_get(_type_sums(
        est, coefficient, chunk, rows, log_coef, jnp.log(p), jnp.asarray(rewards, jnp.float64),
        jnp.asarray(features, jnp.float64), jnp.asarray(lengths, jnp.float64),
        {k: jnp.float64(v) for k, v in params.items()}))
    e_alpha, e_beta, e_aa = (np.asarray(x) for x in (e_alpha, e_beta, e_aa))
    mean = ubar.T @ e_alpha
    within = (scores * (probs * e_beta[types] / p[types])[:, None]).T @ scores  # Σ_τ E[β_τ] S̄_τ
    second = within - ubar.T @ (e_beta[:, None] * ubar) + ubar.T @ e_aa @ ubar
    return mean, second - np.outer(mean, mean)
