"""Group estimates on the sequence testbed (docs/design.md §4.12): token-level surrogates with
every aggregation mode the peers ship, and their exact and Monte Carlo moments.

A group is G i.i.d. responses y_i ~ π (`bandits.sequence`), with rewards R_i, advantages
A = advantages(R, features) of a registry entry, and the surrogate the trainers minimise,

    L(θ) = agg_{i,t}( −A_i · log π(y_{i,t} | y_{i,<t}) ),     ĝ = −∇L = Σ_i c_i A_i ∇log π(y_i),

where the aggregation sets c_i (lengths |y_i|, padded width T):

    token-mean               c_i = 1/Σ_j |y_j|          (verl; TRL bnpo, dapo within one group)
    token-sum                c_i = 1                    (verl)
    seq-mean-token-sum       c_i = 1/G                  (verl; TRL luspo)
    seq-mean-token-mean      c_i = 1/(G·|y_i|)          (verl; TRL grpo)
    seq-mean-token-sum-norm  c_i = 1/T                  (verl: the token sum over the padded width)
    dr_grpo                  c_i = 1/(G·T)              (TRL: the sum over B·max_completion_length)

At T = 1 every mode but token-sum and seq-mean-token-sum-norm is the bandit's (1/G)Σ_i A_i s(a_i).
The features the weight-reading estimators receive are the real ones (`FEATURES`): the response
length, the mean token entropy, the final answer; `score_sq` (|∇log π(y)|²) is what the bandits
feed them, and what reproduces the bandit at T = 1.

Exact moments run on the type-alphabet route (`sims.engines.alphabet`): a member's type is what its
coefficient reads (reward; feature if the entry reads weights; length if the mode reads lengths).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from bandits import sequence as S
from bandits.errors import InputError
from sims import estimators
from sims.engines import alphabet, montecarlo

RULES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "token-sum-over-width",
         "seq-mean-token-sum-over-width")


@dataclasses.dataclass(frozen=True)
class Aggregation:
    """A loss-aggregation mode: its rule for c_i and the peers that ship it under this name."""

    name: str
    rule: str
    peers: tuple = ()

    def reads_lengths(self) -> bool:
        return self.rule in ("token-mean", "seq-mean-token-mean")


AGGREGATIONS = {a.name: a for a in [
    Aggregation("token-mean", "token-mean", ("verl token-mean",)),
    Aggregation("token-sum", "token-sum", ("verl token-sum",)),
    Aggregation("seq-mean-token-sum", "seq-mean-token-sum", ("verl seq-mean-token-sum",)),
    Aggregation("seq-mean-token-mean", "seq-mean-token-mean", ("verl seq-mean-token-mean",)),
    Aggregation("seq-mean-token-sum-norm", "token-sum-over-width", ("verl seq-mean-token-sum-norm",)),
    Aggregation("grpo", "seq-mean-token-mean", ("TRL loss_type='grpo'",)),
    Aggregation("bnpo", "token-mean", ("TRL loss_type='bnpo' (local batch)",)),
    Aggregation("dapo", "token-mean", ("TRL loss_type='dapo' (global batch; one group here)",)),
    Aggregation("dr_grpo", "seq-mean-token-sum-over-width", ("TRL loss_type='dr_grpo'",)),
    Aggregation("luspo", "seq-mean-token-sum", ("TRL loss_type='luspo'",)),
]}


def aggregation(name: str) -> Aggregation:
    try:
        return AGGREGATIONS[name]
    except KeyError:
        raise InputError(f"unknown aggregation {name!r}; known: {', '.join(AGGREGATIONS)}") from None


@dataclasses.dataclass(frozen=True)
class Coefficient:
    """c(lengths (G,)) -> (G,) for one rule at padded width `width` (hashable: a static argument)."""

    rule: str
    width: int

    def __call__(self, lengths):
        g = lengths.shape[-1]
        ones = jnp.ones_like(lengths)
        if self.rule == "token-mean":
            return ones / jnp.sum(lengths, axis=-1, keepdims=True)
        if self.rule == "token-sum":
            return ones
        if self.rule == "seq-mean-token-sum":
            return ones / g
        if self.rule == "seq-mean-token-mean":
            return 1.0 / (g * lengths)
        if self.rule == "token-sum-over-width":
            return ones / self.width
        if self.rule == "seq-mean-token-sum-over-width":
            return ones / (g * self.width)
        raise ValueError(self.rule)


FEATURES = ("length", "mean_entropy", "answer", "score_sq", "ones")
# The feature each weight-reading entry reads in its paper (what the bandits replace by |s|²).
PAPER_FEATURE = {"opo": "length", "adora": "length", "gtpo": "mean_entropy", "copo_local": "answer",
                 "copo_local_soft": "answer"}


def features(sp: S.Space, theta, name: str) -> np.ndarray:
    """A per-response feature (N,): `length` |y|, `mean_entropy` (1/|y|)Σ_t H_t, `answer` the first
    token, `score_sq` |∇_θ log π(y)|², `ones`."""
    if name == "length":
        return sp.lengths.astype(np.float64)
    if name == "mean_entropy":
        return np.asarray(S.mean_token_entropy(sp, jnp.asarray(theta)))
    if name == "answer":
        return sp.tokens[:, 0].astype(np.float64)
    if name == "score_sq":
        s = np.asarray(S.scores(sp, jnp.asarray(theta)))
        return np.sum(s.reshape(s.shape[0], -1) ** 2, axis=-1)
    if name == "ones":
        return np.ones(sp.num_responses)
    raise InputError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}")


def default_feature(est: estimators.Estimator) -> str:
    return PAPER_FEATURE.get(est.name, "score_sq") if est.uses_weights else "ones"


@dataclasses.dataclass(frozen=True)
class SequenceMoments:
    """Exact E[ĝ] and Cov[ĝ] of one group estimate on the testbed (θ flattened row-major)."""

    estimator: str
    aggregation: str
    feature: str
    group: int
    params: dict
    mean: np.ndarray  # (P·V,)
    cov: np.ndarray  # (P·V, P·V)
    true_gradient: np.ndarray  # (P·V,)
    objective: float
    types: int
    multisets: int

    @property
    def bias(self) -> np.ndarray:
        return self.mean - self.true_gradient

    @property
    def trace_var(self) -> float:
        return float(np.trace(self.cov))

    @property
    def cosine(self) -> float | None:
        """cos(E[ĝ], ∇J); None when either vanishes."""
        a, b = np.linalg.norm(self.mean), np.linalg.norm(self.true_gradient)
        return None if a == 0 or b == 0 else float(self.mean @ self.true_gradient / (a * b))


def _types(columns) -> tuple[np.ndarray, np.ndarray]:
    """(type index per response (N,), the distinct rows (M, k)) of the given per-response columns."""
    table = np.stack(columns, axis=-1)
    rows, index = np.unique(table, axis=0, return_inverse=True)
    return index.ravel(), rows


def moments(estimator: estimators.Estimator, sp: S.Space, theta, rewards, group: int,
            agg: str = "seq-mean-token-sum", feature: str | None = None, **params) -> SequenceMoments:
    """Exact E[ĝ], Cov[ĝ] for G = `group` responses of the policy θ (P, V) with reward table
    `rewards` (N,), the entry `estimator` and the aggregation `agg`."""
    est = estimators.as_entry(estimator)
    if est.per_coordinate:
        raise InputError(f"{est.name!r} reads per-coordinate weights; the testbed's type route takes one weight "
                         "per response")
    mode = aggregation(agg)
    params = estimators.resolve_params(est, group, **params)
    theta = S.check_logits(sp, theta)
    r = np.asarray(rewards, dtype=np.float64)
    if r.shape != (sp.num_responses,) or not np.all(np.isfinite(r)):
        raise InputError(f"rewards must be {sp.num_responses} finite numbers, one per response")
    feature = default_feature(est) if feature is None else feature
    f = features(sp, theta, feature) if est.uses_weights else np.ones(sp.num_responses)
    lengths = sp.lengths.astype(np.float64)
    used = [r, f if est.uses_weights else np.zeros_like(r), lengths if mode.reads_lengths() else np.ones_like(r)]
    types, rows = _types(used)
    th = jnp.asarray(theta)
    pi = np.asarray(S.policy(sp, th))
    scores = np.asarray(S.scores(sp, th)).reshape(sp.num_responses, -1)
    mean, cov = alphabet.group_moments(est, Coefficient(mode.rule, sp.max_len), group, pi, scores, types,
                                       rows[:, 0], rows[:, 1] if est.uses_weights else np.ones(len(rows)),
                                       rows[:, 2], params)
    grad = np.asarray(S.gradient(sp, th, jnp.asarray(r))).ravel()
    return SequenceMoments(est.name, agg, feature if est.uses_weights else "ones", group, params, mean, cov, grad,
                           float(pi @ r), len(rows), alphabet.count_multisets(len(rows), group))


# ---------------------------------------------------------------------------------------------
# The surrogate itself, and Monte Carlo through the one engine
# ---------------------------------------------------------------------------------------------


def surrogate(sp: S.Space, theta, ids, advantages, coefficient: Coefficient):
    """L(θ) = Σ_i c_i A_i · (−Σ_t log π(y_{i,t} | y_{i,<t})) for one group of response ids (G,):
    the aggregated token loss, with A and c held fixed (the peers detach the advantages)."""
    logp = S.token_logprobs(sp, theta)[ids]  # (G, T)
    c = coefficient(jnp.asarray(sp.lengths, theta.dtype)[ids])
    return -jnp.sum(c * jax.lax.stop_gradient(advantages) * jnp.sum(logp, axis=-1))


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceGroups:
    """Engine problem: `draw(key, n, (theta, rewards, features, params))` → n group estimates
    ĝ = −∇L (n, P·V), each the autodiff of the aggregated surrogate of G sampled responses."""

    space: S.Space
    estimator: estimators.Estimator
    coefficient: Coefficient
    group: int

    def __call__(self, key, n, args):
        theta, rewards, feats, params = args
        ids = S.sample_responses(key, self.space, theta, (n, self.group))

        def one(g):
            a = self.estimator.advantages(rewards[g], feats[g], **params)
            return -jax.grad(surrogate, argnums=1)(self.space, theta, g, a, self.coefficient).ravel()

        return jax.vmap(one)(ids)


def monte_carlo(estimator: estimators.Estimator, sp: S.Space, theta, rewards, group: int, samples: int,
                seed: int = 0, agg: str = "seq-mean-token-sum", feature: str | None = None,
                **params) -> montecarlo.Stream:
    """E[ĝ] and Cov[ĝ] by the Monte Carlo engine, with standard errors."""
    est = estimators.as_entry(estimator)
    mode = aggregation(agg)
    params = estimators.resolve_params(est, group, **params)
    theta = S.check_logits(sp, theta)
    feature = default_feature(est) if feature is None else feature
    f = features(sp, theta, feature)
    draw = SequenceGroups(sp, est, Coefficient(mode.rule, sp.max_len), group)
    return montecarlo.stream(draw, (jnp.asarray(theta), jnp.asarray(rewards, jnp.float64), jnp.asarray(f),
                                    {k: jnp.float64(v) for k, v in params.items()}), samples, seed)
