"""OBLR-PO numerics: per-sample gradient terms, the SNR estimate from group statistics and the
SNR step rule (docs/design.md §4.2; derived in the OBLR-PO framework, the paper's algorithm box being
unavailable to us).

A group of G members gives per-sample terms g_i = A_i s(a_i) (A from a registry estimator, so
ĝ = (1/G) Σ_i g_i is the group estimate). From them:

    Û  = (1/(G(G−1))) Σ_{i≠j} ⟨g_i, g_j⟩ = (|Σ_i g_i|² − Σ_i |g_i|²) / (G(G−1))   (|∇J|²)
    V̂₁ = (1/(G−1)) Σ_i |g_i − ḡ|²                                             (tr Cov g_i)
    SNR̂ = Û / (V̂₁/G)  = G|ḡ|²/V̂₁ − 1                  (|∇J|² over tr Cov of the mean ĝ)
    η   = clip(η_max · SNR̂/(1 + SNR̂), η_min, η_max)

Û is exactly unbiased for |E g_i|² when the g_i are i.i.d. (a constant baseline); with a
leave-one-out baseline the members are exchangeable but dependent and Û is biased (for RLOO by
the exact factor 1 + 1/(G−1)², `theory.oblrpo.rloo_u_statistic_factor`). Independent groups are
always i.i.d., so the same statistic over group estimates ĝ_b (`between_group_u_statistic`) is
exactly unbiased for |E ĝ|² with any estimator.

The identity Û = |ḡ|² − V̂₁/G makes SNR̂/(1 + SNR̂) = 1 − V̂₁/(G|ḡ|²): the step shrinks when the
sample spread dominates the mean.

For a batch of B groups on different prompts (blocks of a separable objective) one step serves
the selected blocks together: |∇J|² of the update is Σ_b c_b² |∇J_{p_b}|² and its variance
Σ_b c_b² V_b/G (c_b the group's weight in the batch gradient), so `batch_snr` pools
SNR̂ = Σ_b c_b² Û_b / Σ_b c_b² V̂₁,b/G.

η* = (1/L)·SNR/(1+SNR) maximises the descent-lemma bound
E[J(θ + ηĝ)] ≥ J + η|∇J|² − (Lη²/2)(|∇J|² + V) (derived in `theory.oblrpo`); the rule above uses
η_max in the role of 1/L.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits import softmax
from bandits.errors import InputError
from sims import estimators
from sims.engines import exact, montecarlo


def validate_step_bounds(eta_min, eta_max) -> tuple[float, float]:
    """Check 0 ≤ η_min ≤ η_max, η_max > 0, both finite; returns them as floats."""
    for name, x in (("eta_min", eta_min), ("eta_max", eta_max)):
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
            raise InputError(f"{name} must be a finite number, got {x!r}")
    if eta_min < 0:
        raise InputError(f"eta_min must be ≥ 0, got {eta_min:g}")
    if eta_max <= 0:
        raise InputError(f"eta_max must be > 0, got {eta_max:g}")
    if eta_min > eta_max:
        raise InputError(f"step bounds are inverted: eta_min = {eta_min:g} > eta_max = {eta_max:g}")
    return float(eta_min), float(eta_max)


def group_terms(estimator, params, logits, arms, rewards):
    """Per-sample terms g_i = A_i s(a_i) of one group on a softmax bandit; (G, K).

    Uses the registry's advantage function with the same weights as
    `estimators.bandit_group_gradient` (|s|², or s_k² per coordinate), so mean_i g_i = ĝ."""
    s = softmax.scores(logits, arms)
    w = s**2 if estimator.per_coordinate else jnp.sum(s**2, axis=-1)
    a = estimator.advantages(rewards, w, **params)
    if a.ndim == s.ndim - 1:
        a = a[..., None]
    return a * s


def u_statistic(terms):
    """Û = (1/(N(N−1))) Σ_{i≠j} ⟨g_i, g_j⟩ over the leading axis of `terms` (N, D), N ≥ 2."""
    n = terms.shape[-2]
    total = jnp.sum(terms, axis=-2)
    return (jnp.sum(total**2, axis=-1) - jnp.sum(terms**2, axis=(-2, -1))) / (n * (n - 1))


def sample_trace_cov(terms):
    """V̂₁ = (1/(N−1)) Σ_i |g_i − ḡ|², the trace of the sample covariance of the terms."""
    n = terms.shape[-2]
    centred = terms - jnp.mean(terms, axis=-2, keepdims=True)
    return jnp.sum(centred**2, axis=(-2, -1)) / (n - 1)


def between_group_u_statistic(group_estimates):
    """Û over independent group estimates ĝ_b (B, D): exactly unbiased for |E ĝ|², any estimator."""
    return u_statistic(group_estimates)


def snr_estimate(terms):
    """SNR̂ = Û/(V̂₁/N): estimated |∇J|² over the trace of the covariance of the mean of the N
    terms. A degenerate group (V̂₁ = 0) gives +inf when Û > 0 and 0 otherwise."""
    n = terms.shape[-2]
    u = u_statistic(terms)
    v = sample_trace_cov(terms) / n
    safe = jnp.where(v > 0, v, 1.0)
    return jnp.where(v > 0, u / safe, jnp.where(u > 0, jnp.inf, 0.0))


def batch_snr(terms, weights=None):
    """Pooled SNR̂ of a batch: terms (B, G, K), group weights c_b (B,) or None (equal):
    Σ_b c_b² Û_b / Σ_b c_b² V̂₁,b/G; +inf if the pooled variance is 0 and Û > 0, 0 if both are 0."""
    g = terms.shape[-2]
    c2 = jnp.ones(terms.shape[:-2], terms.dtype) if weights is None else jnp.asarray(weights) ** 2
    u = jnp.sum(c2 * u_statistic(terms))
    v = jnp.sum(c2 * sample_trace_cov(terms)) / g
    safe = jnp.where(v > 0, v, 1.0)
    return jnp.where(v > 0, u / safe, jnp.where(u > 0, jnp.inf, 0.0))


def snr_step(snr, eta_min, eta_max):
    """η = clip(η_max·SNR/(1+SNR), η_min, η_max); SNR = +inf gives η_max, SNR ≤ 0 gives η_min."""
    snr = jnp.asarray(snr)
    pos = jnp.maximum(snr, 0.0)
    frac = jnp.where(jnp.isinf(pos), 1.0, pos / (1.0 + jnp.where(jnp.isinf(pos), 0.0, pos)))
    return jnp.clip(eta_max * frac, eta_min, eta_max)


# ---------------------------------------------------------------------------------------------
# The self-inclusive plug-in (studied for its bias; deliberately not in the registry)
# ---------------------------------------------------------------------------------------------


def self_inclusive_baseline(rewards, weights):
    """A_i = R_i − Σ_j w_j R_j / Σ_j w_j with the sample itself included (w_j = |s(a_j)|²).

    Unlike `optimal_baseline_loo` the baseline depends on (a_i, R_i), so E[ĝ] ≠ ∇J: the bias is
    c/G + O(1/G²) with c = −E[|s|²(R − b*)s]/E|s|² (`theory.oblrpo.self_inclusive_bias_leading`).
    Zero baseline when Σ_j w_j = 0."""
    shifted = rewards - rewards[..., :1]
    num = jnp.sum(weights * shifted, axis=-1, keepdims=True)
    den = jnp.sum(weights, axis=-1, keepdims=True)
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, shifted - num / safe, rewards)


SELF_INCLUSIVE = estimators.entry(  # a plug-in of the lab, not a registry estimator
    self_inclusive_baseline, summary="R_i − Σ_j|s_j|²R_j / Σ_j|s_j|² (member included)",
    property=estimators.BIASED, source="OBLR-PO framework (docs/design.md §4.2)",
    provenance="reconstructed")
REINFORCE = estimators.get("reinforce")
OPTIMAL_BASELINE_LOO = estimators.get("optimal_baseline_loo")


# ---------------------------------------------------------------------------------------------
# Exact expectations of group statistics (the exact engine's `expectation`)
# ---------------------------------------------------------------------------------------------

# A statistic is a function (terms (G, K), scores (G, K), rewards (G,), logits (K,), extra) ->
# array; `terms` are the per-sample g_i = A_i s(a_i) of the chosen advantage function
# (`sims.engines.exact.group_statistic`).


def stat_moments(terms, scores, rewards, logits, extra):
    """(ĝ, |ĝ|²): E gives the mean and, with |E ĝ|², the trace of the covariance."""
    gh = jnp.mean(terms, axis=0)
    return jnp.concatenate([gh, jnp.sum(gh**2)[None]])


def stat_u(terms, scores, rewards, logits, extra):
    """Û of the group's terms."""
    return u_statistic(terms)[None]


def stat_sample_trace_cov(terms, scores, rewards, logits, extra):
    """V̂₁ of the group's terms."""
    return sample_trace_cov(terms)[None]


def stat_objective_after_step(terms, scores, rewards, logits, extra):
    """J(θ + η ĝ) for every η in extra["etas"] (means in extra["means"])."""
    gh = jnp.mean(terms, axis=0)
    new = logits[None, :] + extra["etas"][:, None] * jnp.where(jnp.isfinite(logits), gh, 0.0)
    return softmax.objective(new, extra["means"])


def exact_expectation(stat, logits, rewards, group: int, estimator: estimators.Estimator = REINFORCE,
                      params=None, extra=None) -> np.ndarray:
    """E[stat(group)] over G i.i.d. members (a, R) ~ π, summed exactly over multisets
    (`sims.engines.exact.expectation`; `estimator` a registry entry or e.g. `SELF_INCLUSIVE`)."""
    return exact.expectation(stat, estimator, logits, rewards, group, params, extra)


def exact_mean_and_trace_var(logits, rewards, group, estimator: estimators.Estimator = REINFORCE, params=None):
    """(E[ĝ] (K,), tr Cov ĝ) exactly, for an estimator entry."""
    k = len(logits)
    out = exact_expectation(stat_moments, logits, rewards, group, estimator, params)
    mean, second = out[:k], float(out[-1])
    return mean, second - float(np.sum(mean**2))


def exact_u_statistic(logits, rewards, group, estimator: estimators.Estimator = REINFORCE, params=None) -> float:
    """E[Û] for the group terms of `estimator`."""
    return float(exact_expectation(stat_u, logits, rewards, group, estimator, params)[0])


def exact_sample_trace_cov(logits, rewards, group, estimator: estimators.Estimator = REINFORCE, params=None) -> float:
    """E[V̂₁] for the group terms of `estimator`."""
    return float(exact_expectation(stat_sample_trace_cov, logits, rewards, group, estimator, params)[0])


def exact_self_inclusive_bias(logits, rewards, group) -> np.ndarray:
    """E[ĝ] − ∇J of the self-inclusive plug-in, exactly."""
    mean, _ = exact_mean_and_trace_var(logits, rewards, group, SELF_INCLUSIVE)
    return mean - np.asarray(softmax.gradient(jnp.asarray(logits, jnp.float64), rewards.means))


def exact_objective_after_step(logits, rewards, group, etas, estimator: estimators.Estimator = OPTIMAL_BASELINE_LOO,
                               params=None) -> np.ndarray:
    """E[J(θ + η ĝ)] for each η in `etas`, exactly."""
    etas = np.atleast_1d(np.asarray(etas, dtype=np.float64))
    return exact_expectation(stat_objective_after_step, logits, rewards, group, estimator, params,
                             {"etas": etas})


@jax.jit
def _hessian_norm(logits, means):
    return jnp.max(jnp.abs(jnp.linalg.eigvalsh(softmax.hessian(logits, means))))


def hessian_spectral_norm(logits, means) -> float:
    """‖∇²J(θ)‖₂ of the softmax bandit (largest absolute eigenvalue of the symmetric Hessian)."""
    return float(_hessian_norm(jnp.asarray(logits, jnp.float64), jnp.asarray(means, jnp.float64)))


def optimal_constant_baseline_coord(logits, means) -> np.ndarray:
    """b*_k = E[s_k² R]/E[s_k²] = Σ_a π_a s_k(a)² m_a / Σ_a π_a s_k(a)² for every coordinate k."""
    pi = np.asarray(softmax.policy(jnp.asarray(logits, jnp.float64)))
    s2 = (np.eye(len(pi)) - pi[None, :]) ** 2  # row a: s(a)²
    w = pi[:, None] * s2
    return (w * np.asarray(means)[:, None]).sum(0) / w.sum(0)


def stat_baseline_grid(terms, scores, rewards, logits, extra):
    """(ĝ_b, ĝ_b²) per coordinate for the registry's `reinforce` at every b in extra["baselines"]."""
    adv = jax.vmap(lambda bv: REINFORCE.advantages(rewards, None, baseline=bv))(
        extra["baselines"])
    gh = jnp.mean(adv[:, :, None] * scores[None], axis=1)
    return jnp.concatenate([gh, gh**2], axis=-1)


def exact_coordinate_variances_over_baselines(logits, rewards, group, baselines) -> np.ndarray:
    """Var[ĝ_k] for ĝ = (1/G)Σ_i (R_i − b) s(a_i), every b in `baselines`; (len(baselines), K).

    Their sum over k is V(b)/G, the trace of the covariance. One exact enumeration for the grid."""
    k = len(logits)
    out = exact_expectation(stat_baseline_grid, logits, rewards, group, REINFORCE,
                            extra={"baselines": np.asarray(baselines, dtype=np.float64)})
    half = out.shape[-1] // 2
    return (out[:, half:] - out[:, :half] ** 2)[:, :k]


# ---------------------------------------------------------------------------------------------
# Monte Carlo expectations of group statistics
# ---------------------------------------------------------------------------------------------

def monte_carlo_expectation(stat, logits, rewards, group: int, samples: int, seed: int = 0,
                            estimator: estimators.Estimator = REINFORCE, params=None, extra=None):
    """(mean, standard error) of stat(group) over `samples` independent groups, by the Monte Carlo
    engine (`sims.engines.montecarlo.expectation`): one integer seed reproduces the run."""
    s = montecarlo.expectation(stat, estimator, logits, rewards, group, samples, seed, params, extra)
    return s.mean, s.mean_se
