"""Exact moments of a group estimator ĝ on a softmax bandit with finite reward laws.

The outcome of one member is a pair o = (arm, reward value) with probability p_o = π_a q(r | a).
Every registry estimator is symmetric in the group's members, so E[f(ĝ)] is a sum over the
multisets of G outcomes, each weighted by its multinomial probability

    P(c) = G! / Π_o c_o!  ·  Π_o p_o^{c_o}

(C(M+G−1, G) multisets of M outcome types instead of M^G ordered tuples: K=4 Bernoulli arms and
G=16 give 245,157 multisets). Means and covariances are accumulated in float64, two-pass.

Shapes are padded to buckets (arms to 8, 16, ...; multisets to powers of two, with zero weight)
so that the compiled kernel is reused across instances of similar size.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from bandits import softmax
from bandits.errors import InputError
from bandits.rewards import RewardModel
from sims import estimators

MAX_MULTISETS = 3_000_000
MAX_ENTRIES = 1 << 26  # multisets × (G + K): the enumeration tables and per-multiset gradients


@dataclasses.dataclass(frozen=True)
class Moments:
    """Exact first and second moments of ĝ (one group), with the bandit's reference quantities."""

    estimator: str
    group: int
    params: dict
    pi: np.ndarray
    objective: float
    true_gradient: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    optimal_constant_baseline: float
    multisets: int

    @property
    def bias(self) -> np.ndarray:
        return self.mean - self.true_gradient

    @property
    def trace_var(self) -> float:
        return float(np.trace(self.cov))


@functools.lru_cache(maxsize=32)
def multisets(num_types: int, group: int):
    """All multisets of `group` items from `num_types` types, as sorted rows (N, G) of type indices,
    with log multinomial coefficients log(G!/Π c_o!) (N,)."""
    rows = np.array(
        list(itertools.combinations_with_replacement(range(num_types), group)), dtype=np.int32
    ).reshape(-1, group)
    counts = np.zeros((rows.shape[0], num_types), dtype=np.int64)
    np.add.at(counts, (np.arange(rows.shape[0])[:, None], rows), 1)
    log_coef = gammaln(group + 1) - np.sum(gammaln(counts + 1), axis=1)
    return rows, log_coef


def count_multisets(num_types: int, group: int) -> int:
    return math.comb(num_types + group - 1, group)


def _bucket(n: int, smallest: int) -> int:
    return max(smallest, 1 << (n - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class Enumeration:
    """Every multiset of G outcomes, padded for kernel reuse: `logits` (K_pad,) with −inf for the
    padded arms, `arms`/`values` (N_pad, G), `log_cq` (N_pad,) = log(G!/Π c_o!) + Σ log q(r | a)
    (−inf on padded rows). The probability of row c is exp(log_cq + Σ_i log π_{a_i})."""

    logits: jax.Array
    arms: jax.Array
    values: jax.Array
    log_cq: jax.Array
    num_arms: int
    multisets: int

    def pad_arms(self, x, fill: float = 0.0):
        """Extend a per-arm array (K,) to the padded arm count."""
        x = jnp.asarray(x, dtype=jnp.float64)
        return jnp.concatenate([x, jnp.full(self.logits.shape[0] - self.num_arms, fill)])


def check_size(outcomes: int, group: int, arms: int) -> None:
    """Refuse, naming the limit, an enumeration of `outcomes` (arm, reward) types at group size
    G beyond MAX_MULTISETS multisets or MAX_ENTRIES table entries (multisets × (G + K))."""
    n = count_multisets(outcomes, group)
    if n > MAX_MULTISETS:
        raise InputError(f"{n:,} multisets of {outcomes} outcomes at G={group} exceed the exact "
                         f"engine's limit of {MAX_MULTISETS:,}; use Monte Carlo instead")
    if n * (group + arms) > MAX_ENTRIES:
        raise InputError(f"{n:,} multisets × (G + K) = {n * (group + arms):,} table entries exceed the "
                         f"exact engine's limit of {MAX_ENTRIES:,}; use a smaller group or Monte Carlo")


def enumerate_groups(logits, rewards: RewardModel, group: int) -> Enumeration:
    """The multisets of a group of G on this bandit (validated; refused beyond MAX_MULTISETS)."""
    logits = np.asarray(logits, dtype=np.float64)
    k = logits.shape[0]
    if rewards.num_arms != k:
        raise InputError(f"{k} logits but {rewards.num_arms} reward distributions; give one per arm")
    o_arm, o_val, o_prob = rewards.outcomes()
    check_size(len(o_arm), group, k)
    rows, log_coef = multisets(len(o_arm), group)
    n = rows.shape[0]
    n_pad, k_pad = _bucket(n, 16), _bucket(k, 8)
    with np.errstate(divide="ignore"):
        log_cq = log_coef + np.sum(np.log(o_prob)[rows], axis=1)
    pad = n_pad - n
    rows = np.concatenate([rows, np.repeat(rows[:1], pad, axis=0)])
    return Enumeration(
        logits=jnp.asarray(np.concatenate([logits, np.full(k_pad - k, -np.inf)])),
        arms=jnp.asarray(o_arm[rows]),
        values=jnp.asarray(o_val[rows]),
        log_cq=jnp.asarray(np.concatenate([log_cq, np.full(pad, -np.inf)])),
        num_arms=k,
        multisets=n,
    )


def multiset_weights(logits, arms, log_cq):
    """P(c) = exp(log_cq + Σ_i log π_{a_i}) for every enumerated multiset (jit-friendly)."""
    return jnp.exp(log_cq + jnp.sum(jax.nn.log_softmax(logits)[arms], axis=-1))


@functools.partial(jax.jit, static_argnames=("name",))
def _moments_kernel(name, logits, arms, rewards, log_cq, params):
    """Weighted mean and covariance of ĝ over multisets."""
    est = estimators.get(name)
    w = multiset_weights(logits, arms, log_cq)
    g = jax.vmap(lambda a, r: estimators.bandit_group_gradient(
        est.advantages, logits, a, r, params, est.per_coordinate))(arms, rewards)
    mean = w @ g
    d = g - mean
    return mean, (d * w[:, None]).T @ d


def moments(name: str, logits, rewards: RewardModel, group: int, **params) -> Moments:
    """Exact E[ĝ] and Cov[ĝ] for estimator `name` with G = `group` (float64)."""
    est = estimators.get(name)
    params = estimators.resolve_params(est, group, **params)
    e = enumerate_groups(logits, rewards, group)
    mean, cov = _moments_kernel(name, e.logits, e.arms, e.values, e.log_cq,
                                {key: jnp.float64(v) for key, v in params.items()})
    logits, k, m = np.asarray(logits, dtype=np.float64), e.num_arms, rewards.means
    return Moments(
        estimator=name,
        group=group,
        params=params,
        pi=np.asarray(softmax.policy(logits)),
        objective=float(softmax.objective(logits, m)),
        true_gradient=np.asarray(softmax.gradient(logits, m)),
        mean=np.asarray(mean)[:k],
        cov=np.asarray(cov)[:k, :k],
        optimal_constant_baseline=float(softmax.optimal_constant_baseline(logits, m)),
        multisets=e.multisets,
    )
