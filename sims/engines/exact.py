"""Exact moments of a group estimator ĝ on a softmax bandit with finite reward laws.

The outcome of one member is a pair o = (arm, reward value) with probability p_o = π_a q(r | a).
Every registry estimator is symmetric in the group's members, so E[f(ĝ)] is a sum over the
multisets of G outcomes, each weighted by its multinomial probability

    P(c) = G! / Π_o c_o!  ·  Π_o p_o^{c_o}

(C(M+G−1, G) multisets of M outcome types instead of M^G ordered tuples: K=4 Bernoulli arms and
G=16 give 245,157 multisets). Means and covariances are accumulated in float64, two-pass.

The reward-alphabet route (docs/design.md §4.11). When the advantages see a member only through
its *type* τ — its reward value, or (weight class, reward) for an estimator that uses the weights
|s(a)|², where arms with equal logits form one class — the members' types are i.i.d. with law
ρ_τ = Σ_a π_a q(τ | a), and given its type a member's arm is independent of the rest of the group.
With u_τ = Σ_a π_a q(τ|a) s(a) and S_τ = Σ_a π_a q(τ|a) s(a)s(a)ᵀ, symmetry gives

    E[ĝ]     = Σ_τ h_τ u_τ,                              h_τ  = E[A_1 | τ_1 = τ]
    E[ĝĝᵀ]  = (1/G) Σ_τ h²_τ S_τ + ((G−1)/G) Σ_{τ,τ'} H_ττ' u_τ u_τ'ᵀ,
              h²_τ = E[A_1² | τ_1 = τ],  H_ττ' = E[A_1 A_2 | τ_1 = τ, τ_2 = τ'],

where the conditional expectations are sums over the multisets of the other members' types.
All three come from the T²·C(T+G−3, G−2) groups (τ, τ', multiset of G − 2 others), since
h_τ = Σ_τ' ρ_τ' E[A_1 | τ_1 = τ, τ_2 = τ'] (likewise h²): 4(G − 1) groups for binary rewards
at any K (O(G) terms for the mean, O(G²) member evaluations in all). Cov[ĝ] = E[ĝĝᵀ] − E[ĝ]E[ĝ]ᵀ.
`moments` takes the route that enumerates fewer groups and reports it (`Moments.route`); each
route has its own size limit (MAX_MULTISETS, MAX_ALPHABET_ENTRIES), named when refused.

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

MAX_MULTISETS = 3_000_000  # multiset route: multisets of G (arm, reward) outcomes
MAX_ENTRIES = 1 << 26  # multiset route: multisets × (G + K), the enumeration tables and gradients
MAX_ALPHABET_ENTRIES = 48_000_000  # reward-alphabet route: groups × G members (same memory)
ROUTES = ("multiset", "reward-alphabet")


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
    multisets: int  # groups enumerated by the route taken
    route: str = "multiset"

    @property
    def bias(self) -> np.ndarray:
        return self.mean - self.true_gradient

    @property
    def trace_var(self) -> float:
        return float(np.trace(self.cov))

    def to_json(self) -> dict:
        """The "exact" block of `pglab moments` (`moments_json`, with the route taken)."""
        return {**moments_json(self.mean, self.true_gradient, self.cov, self.optimal_constant_baseline),
                "route": self.route}


def _floats(x) -> list:
    return [float(v) for v in np.asarray(x).reshape(-1)]


def moments_json(mean, true_gradient, cov, optimal_constant_baseline) -> dict:
    """{"mean", "bias" = mean − ∇J, "cov", "trace_var" = tr cov, "optimal_constant_baseline"}: the
    JSON block of exact moments of ĝ (docs/design.md §3), plain floats and lists."""
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    return {"mean": _floats(mean), "bias": _floats(mean - np.asarray(true_gradient)), "cov": cov.tolist(),
            "trace_var": float(np.trace(cov)), "optimal_constant_baseline": float(optimal_constant_baseline)}


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


@functools.partial(jax.jit, static_argnames=("advantages", "per_coordinate"))
def _moments_kernel(advantages, per_coordinate, logits, arms, rewards, log_cq, params, means):
    """Weighted mean and covariance of ĝ over multisets, and the bandit's `_reference` values.

    The compiled kernel is keyed on the advantage function itself, not on a registry name, so a
    name registered again with another function is compiled afresh."""
    w = multiset_weights(logits, arms, log_cq)
    g = jax.vmap(lambda a, r: estimators.bandit_group_gradient(
        advantages, logits, a, r, params, per_coordinate))(arms, rewards)
    mean = w @ g
    d = g - mean
    return mean, (d * w[:, None]).T @ d, _reference(logits, means)


@dataclasses.dataclass(frozen=True)
class Alphabet:
    """The types a member's advantage can see: `values` (T,) reward of each type, `rep` (T,) an
    arm of its weight class, `q` (K, T) with q[a, τ] = P(type τ | arm a)."""

    values: np.ndarray
    rep: np.ndarray
    q: np.ndarray

    @property
    def size(self) -> int:
        return len(self.values)


def type_alphabet(logits, rewards: RewardModel, uses_weights: bool) -> Alphabet:
    """Types (reward value), or (weight class, reward value) when the advantages use the weights
    |s(a)|² (arms with equal logits share |s(a)|², hence a class)."""
    o_arm, o_val, o_prob = rewards.outcomes()
    k = rewards.num_arms
    cls = np.unique(np.asarray(logits), return_inverse=True)[1].reshape(-1) if uses_weights \
        else np.zeros(k, dtype=np.int64)
    index: dict = {}
    for a, v in zip(o_arm, o_val):
        index.setdefault((int(cls[a]), float(v)), (len(index), int(a)))
    q = np.zeros((k, len(index)))
    for a, v, p in zip(o_arm, o_val, o_prob):
        q[a, index[(int(cls[a]), float(v))][0]] += p
    values = np.array([key[1] for key in index], dtype=np.float64)
    rep = np.array([r for _, r in index.values()], dtype=np.int32)
    return Alphabet(values=values, rep=rep, q=q)


def alphabet_groups(types: int, group: int) -> int:
    """Groups the reward-alphabet route enumerates: T²·C(T+G−3, G−2) (T when G = 1)."""
    return types**2 * count_multisets(types, group - 2) if group >= 2 else types


def _padded_multisets(types: int, size: int):
    if size == 0:  # one empty multiset
        rows, log_coef = np.zeros((1, 0), dtype=np.int32), np.zeros(1)
    else:
        rows, log_coef = multisets(types, size)
    pad = _bucket(rows.shape[0], 16) - rows.shape[0]
    rows = np.concatenate([rows, np.repeat(rows[:1], pad, axis=0)])
    return rows, np.concatenate([log_coef, np.full(pad, -np.inf)])


@functools.lru_cache(maxsize=16)
def type_groups(types: int, group: int):
    """Every group the reward-alphabet route evaluates, as type indices (T, T, N, G): members 1 and
    2 of types (τ, τ'), then a multiset of G − 2 types, with the multisets' log multinomial
    coefficients (N,) (padded rows have −inf). For G = 1: (T, 1, 1, 1), member 1 alone."""
    t = np.arange(types, dtype=np.int32)
    if group < 2:
        return t.reshape(types, 1, 1, 1), np.zeros(1)
    rows, log_coef = _padded_multisets(types, group - 2)
    n = len(rows)
    groups = np.concatenate([np.broadcast_to(t[:, None, None, None], (types, types, n, 1)),
                             np.broadcast_to(t[None, :, None, None], (types, types, n, 1)),
                             np.broadcast_to(rows, (types, types, *rows.shape))], axis=-1)
    return groups, log_coef


def _alphabet_moments(advantages, logits, q, values, rep, groups, log_coef, params, means):
    """E[ĝ] and Cov[ĝ] from the conditional advantage moments h, h², H over type multisets:
    every group (τ_1, τ_2, rest) is evaluated once; h_τ = Σ_τ' ρ_τ' E[A_1 | τ, τ'], likewise h².
    Also returns the bandit's `_reference` values (one compilation per call, not two). Keyed on
    the advantage function `advantages` (static), not on a registry name."""
    group = groups.shape[-1]
    pi = softmax.policy(logits)
    pq = pi[:, None] * q  # P(arm a, type τ)
    rho = jnp.sum(pq, axis=0)
    weights = softmax.score_sq_norms(logits)[rep]
    flat = groups.reshape(-1, group)
    a = jax.vmap(lambda t: advantages(values[t], weights[t], **params))(flat)
    a = a.reshape(groups.shape)
    fixed = min(group, 2)
    p = jnp.exp(log_coef + jnp.sum(jnp.log(rho)[groups[..., fixed:]], axis=-1))  # P(rest)
    a1 = a[..., 0]
    if group >= 2:
        h, h2 = jnp.sum(p * a1, axis=-1) @ rho, jnp.sum(p * a1**2, axis=-1) @ rho
    else:
        h, h2 = a1[:, 0, 0], a1[:, 0, 0] ** 2
    u = pq - pi[:, None] * rho[None, :]  # column τ: Σ_a π_a q(τ|a) s(a)
    mean = u @ h
    y = pq @ h2
    second = (jnp.diag(y) - jnp.outer(y, pi) - jnp.outer(pi, y) + (rho @ h2) * jnp.outer(pi, pi)) / group
    if group >= 2:
        big_h = jnp.sum(p * a1 * a[..., 1], axis=-1)
        second = second + (group - 1) / group * (u @ big_h @ u.T)
    return mean, second - jnp.outer(mean, mean), _reference(logits, means)


# The reward-alphabet tables are small (4(G − 1) groups for binary rewards), so a call is almost
# all compilation: below SMALL_ALPHABET_ENTRIES the kernel is compiled without LLVM's optimisation
# passes (about half the compile time; the run itself stays in milliseconds).
SMALL_ALPHABET_ENTRIES = 1 << 20
_alphabet_kernel = jax.jit(_alphabet_moments, static_argnames=("advantages",))
_alphabet_kernel_small = jax.jit(_alphabet_moments, static_argnames=("advantages",),
                                 compiler_options={"xla_backend_optimization_level": 0})


def plan(estimator: estimators.Estimator, logits, rewards: RewardModel, group: int) -> tuple[str, int]:
    """The cheapest exact route for this instance and the number of groups it enumerates, or an
    InputError naming the limit when every applicable route is too large."""
    est = estimators.as_entry(estimator)
    name = est.name
    m = len(rewards.outcomes()[0])
    n_multiset = count_multisets(m, group)
    options = []
    if n_multiset <= MAX_MULTISETS and n_multiset * (group + len(logits)) <= MAX_ENTRIES:
        options.append((n_multiset, "multiset"))
    why = ""
    if est.per_coordinate:
        why = f"; the reward-alphabet route does not apply ({name!r} has per-coordinate weights)"
        n_alpha = None
    else:
        types = type_alphabet(logits, rewards, est.uses_weights).size
        n_alpha = alphabet_groups(types, group)
        if n_alpha * group <= MAX_ALPHABET_ENTRIES:
            options.append((n_alpha, "reward-alphabet"))
        else:
            why = (f"; the reward-alphabet route needs {n_alpha:,} groups × {group} members "
                   f"over {types} types, beyond its limit of {MAX_ALPHABET_ENTRIES:,} entries")
    if not options:
        raise InputError(
            f"exact moments of {name!r} at G={group}: the multiset route needs {n_multiset:,} "
            f"multisets of {m} outcomes, beyond its limit of {MAX_MULTISETS:,} multisets "
            f"(or {MAX_ENTRIES:,} table entries){why}; "
            f"use Monte Carlo instead"
        )
    n, route = min(options)
    return route, n


def moments(estimator: estimators.Estimator, logits, rewards: RewardModel, group: int, *,
            route: str | None = None, **params) -> Moments:
    """Exact E[ĝ] and Cov[ĝ] for the entry `estimator` with G = `group` (float64), by the cheapest
    exact route, or by `route` ("multiset" or "reward-alphabet") when given."""
    est = estimators.as_entry(estimator)
    name = est.name
    params = estimators.resolve_params(est, group, **params)
    logits = np.asarray(logits, dtype=np.float64)
    k = logits.shape[0]
    if rewards.num_arms != k:
        raise InputError(f"{k} logits but {rewards.num_arms} reward distributions; give one per arm")
    # NumPy inputs go straight into the compiled kernels: an eager jnp conversion would compile
    # a small program of its own on a fresh cache.
    jparams = {key: np.float64(v) for key, v in params.items()}
    k_pad = _bucket(k, 8)
    means = np.concatenate([np.asarray(rewards.means, dtype=np.float64), np.zeros(k_pad - k)])
    if route is None:
        route, _ = plan(est, logits, rewards, group)
    elif route not in ROUTES:
        raise InputError(f"unknown exact route {route!r}; known: {', '.join(ROUTES)}")
    if route == "multiset":
        e = enumerate_groups(logits, rewards, group)
        mean, cov, ref = _moments_kernel(est.advantages, est.per_coordinate, e.logits, e.arms, e.values,
                                         e.log_cq, jparams, means[: e.logits.shape[0]])
        count = e.multisets
    else:
        if est.per_coordinate:
            raise InputError(f"the reward-alphabet route does not apply to {name!r} (per-coordinate weights)")
        alpha = type_alphabet(logits, rewards, est.uses_weights)
        count = alphabet_groups(alpha.size, group)
        if count * group > MAX_ALPHABET_ENTRIES:
            raise InputError(
                f"the reward-alphabet route needs {count:,} groups × {group} members, beyond its "
                f"limit of {MAX_ALPHABET_ENTRIES:,} entries; use Monte Carlo instead")
        groups, log_coef = type_groups(alpha.size, group)
        kernel = _alphabet_kernel_small if groups.size <= SMALL_ALPHABET_ENTRIES else _alphabet_kernel
        mean, cov, ref = kernel(
            est.advantages, np.concatenate([logits, np.full(k_pad - k, -np.inf)]),
            np.concatenate([alpha.q, np.zeros((k_pad - k, alpha.size))]),
            alpha.values, alpha.rep, groups, log_coef, jparams, means)
    mean, cov, (pi, objective, true_gradient, b_star) = jax.device_get((mean, cov, ref))
    return Moments(
        estimator=name,
        group=group,
        params=params,
        pi=pi[:k],
        objective=float(objective),
        true_gradient=true_gradient[:k],
        mean=np.asarray(mean)[:k],
        cov=np.asarray(cov)[:k, :k],
        optimal_constant_baseline=float(b_star),
        multisets=count,
        route=route,
    )


# ---------------------------------------------------------------------------------------------
# E[stat(group)] for any statistic of the group (docs/design.md §3)
# ---------------------------------------------------------------------------------------------

# A statistic is a hashable function stat(terms (G, K), scores (G, K), rewards (G,), logits (K,),
# extra) -> array, with terms_i = A_i s(a_i) the per-member terms of the entry's advantages (so
# mean_i terms_i = ĝ) and `extra` a dict of arrays (always holding "means", the arms' m_a).


def group_statistic(stat, est, logits, params, extra, arms, rewards):
    """stat(terms, scores, rewards, logits, extra) of one group, terms_i = A_i s(a_i), s = e_a − π,
    weights |s(a_i)|² (s_k(a_i)² per coordinate)."""
    s = softmax.scores(logits, arms)
    adv = est.advantages(rewards, s**2 if est.per_coordinate else jnp.sum(s**2, axis=-1), **params)
    if adv.ndim == 1:
        adv = adv[:, None]
    return stat(adv * s, s, rewards, logits, extra)


@functools.partial(jax.jit, static_argnames=("stat", "est"))
def _expect_kernel(stat, est, logits, arms, rewards, log_cq, params, extra):
    """Σ_c P(c)·stat(c) over the enumerated multisets (padded rows have P(c) = 0)."""
    w = multiset_weights(logits, arms, log_cq)
    one = functools.partial(group_statistic, stat, est, logits, params, extra)
    return jnp.tensordot(w, jax.vmap(one)(arms, rewards), axes=1)


def statistic_extra(extra, means) -> dict:
    """`extra` as arrays, with "means" (the arms' m_a unless given) for the statistic."""
    out = {} if extra is None else {key: jnp.asarray(v) for key, v in extra.items()}
    out.setdefault("means", jnp.asarray(np.asarray(means, dtype=np.float64)))
    return out


def expectation(stat, estimator: estimators.Estimator, logits, rewards: RewardModel, group: int,
                params=None, extra=None) -> np.ndarray:
    """E[stat(group)] = Σ_c P(c)·stat(c) over the multisets c of G i.i.d. members (a, R) ~ π.

    `stat` as `group_statistic` takes it (hashable, pure JAX); `estimator` an entry (registered or
    not); `params` the estimator's parameters (defaults resolved at G); `extra` arrays handed to
    the statistic, with "means" (the arms' m_a, padded with 0 like the arms) added when absent.
    The statistic sees the bandit with its arms padded to 8, 16, … (padded arms have π = 0 and
    logit −inf), so per-arm outputs come back padded. Refused beyond MAX_MULTISETS. float64."""
    est = estimators.as_entry(estimator)
    params = estimators.resolve_params(est, group, **(params or {}))
    e = enumerate_groups(logits, rewards, group)
    extra = statistic_extra(extra, rewards.means)
    extra["means"] = e.pad_arms(extra["means"])
    out = _expect_kernel(stat, est, e.logits, e.arms, e.values, e.log_cq,
                         {key: jnp.float64(v) for key, v in params.items()}, extra)
    return np.asarray(out)


def _reference(logits, means):
    """π, J, ∇J and b*, traced into each route's kernel (padded arms have π = 0 and add nothing)."""
    return (softmax.policy(logits), softmax.objective(logits, means),
            softmax.gradient(logits, means), softmax.optimal_constant_baseline(logits, means))
