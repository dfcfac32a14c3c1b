"""Batch-level advantage estimators (docs/design.md §4.9): statistics across the prompts of a batch.

The unit is `batch_advantages(rewards, weights, **params) -> A`, rewards and weights (P, G) (P
prompts, G members each; `gdpo` also takes rewards (P, G, C) with C reward components). Weights
are per-sample features: response lengths for token-weighted statistics, answer identities for
COPO, or |s(a)|² on bandits.

Moments on prompt ensembles of pass/fail prompts. Prompt x is the two-armed bandit with
deterministic rewards (1, 0) and π_1 = p_x, so s(a_i) = (R_i − p_x)(1, −1) and the per-prompt
gradient is ĝ_x = u_x (1, −1), u_x = (1/G) Σ_i A_xi (R_xi − p_x). For an estimator that reads the
rewards only, E[ĝ_x] = c_x ∇p_x with c_x = E[u_x]/(p_x(1 − p_x)), which depends on every prompt's
pass rate. `exact_ensemble` enumerates the (G + 1)^P success counts; `sims.engines.montecarlo.ensemble`
samples.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from types import MappingProxyType
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from bandits.errors import InputError
from sims import estimators as E

MAX_ROWS = 300_000


def _centre(rewards):
    """R − group mean, about the group's first member (exact zeros on all-equal groups)."""
    return E._shifted_centre(rewards)


def _std1_all(x):
    """ddof = 1 std over every element, about the first element."""
    flat = x.reshape(-1)
    d = flat - flat[0]
    d = d - jnp.mean(d)
    return jnp.sqrt(jnp.sum(d**2) / max(flat.size - 1, 1)), d.reshape(x.shape)


@dataclasses.dataclass(frozen=True, eq=False)
class BatchEstimator:
    """A batch registry entry (hashed by identity, like `estimators.Estimator`); `params` are the
    defaults read from the function's signature, read-only."""

    name: str
    advantages: Callable
    params: Mapping[str, float]
    summary: str
    source: str
    property: str
    peers: tuple = ()
    uses_weights: bool = False
    feature_substitute: str = ""  # as `estimators.Estimator.feature_substitute`

    def __post_init__(self):
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


PER_PROMPT = "per-prompt direction (binary rewards), prompts reweighted by the batch"
REGISTRY: dict[str, BatchEstimator] = {}


def batch_estimator(**meta):
    """Register the decorated batch function `fn(rewards (P, G), weights (P, G), **params)` under its
    own name, with `meta` as its entry's fields and its defaults read from the signature."""

    def decorate(fn):
        items = list(inspect.signature(fn).parameters.items())[2:]
        params = {key: p.default for key, p in items}
        if fn.__name__ in REGISTRY:
            raise InputError(f"a batch estimator named {fn.__name__!r} is already registered")
        REGISTRY[fn.__name__] = BatchEstimator(fn.__name__, fn, params, **meta)
        return fn

    return decorate


def get(name: str) -> BatchEstimator:
    """The batch entry registered as `name` (names are resolved once, by the command line and the
    claims)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown batch estimator {name!r}; known: {', '.join(REGISTRY)}") from None


def as_entry(estimator) -> BatchEstimator:
    if isinstance(estimator, BatchEstimator):
        return estimator
    raise TypeError(f"expected a batch estimator entry (sims.batch.get(name)), got {estimator!r}")


@batch_estimator(summary="(R − mean_group R)/(std_batch R + eps)", source="TRL GRPOTrainer",
                 property=PER_PROMPT, peers=("TRL scale_rewards='batch'",))
def grpo_batch_std(rewards, weights, eps=1e-4):
    """TRL GRPO with `scale_rewards="batch"`: A = (R − mean_group R)/(std_batch(R, ddof=1) + eps)."""
    del weights
    std, _ = _std1_all(rewards)
    den = std + eps
    return jnp.where(den > 0, _centre(rewards) / jnp.where(den > 0, den, 1.0), 0.0)


@batch_estimator(summary="whiten_tokens(R − mean_group R)",
                 source="Hu 2025 (REINFORCE++, arXiv 2501.03262)",
                 property=E.BIASED + " (token weights); " + PER_PROMPT + " with equal lengths",
                 peers=("verl reinforce_plus_plus_baseline",), uses_weights=True,
                 feature_substitute="|s(a)|² for response length")
def reinforce_pp_baseline(rewards, weights, eps=1e-8, token_weighted=1.0):
    """REINFORCE++ with a group baseline (Hu 2025, arXiv 2501.03262; verl
    `reinforce_plus_plus_baseline`): D = R − mean_group R, then whitened over the batch,

        A = (D − μ)/sqrt(σ² + eps),   μ, σ² the mean and ddof = 1 variance of D over tokens,

    each response counted L_i = weights times (token_weighted = 1) or once (token_weighted = 0).
    """
    L = jnp.where(token_weighted > 0, weights, jnp.ones_like(weights))
    return _token_whiten(_centre(rewards), L, eps)


def _token_whiten(d, lengths, eps):
    """verl's `masked_whiten` of a per-response value d (P, G) repeated on each of a response's
    L = lengths tokens: (d − μ)/sqrt(σ² + eps), μ and σ² the token mean and the Bessel-corrected
    token variance; 0 where the batch has fewer than two tokens."""
    n = jnp.sum(lengths)
    mu = jnp.sum(lengths * d) / jnp.where(n > 0, n, 1.0)
    var = jnp.sum(lengths * (d - mu) ** 2) / jnp.where(n > 1, n - 1, 1.0)
    den = jnp.sqrt(var + eps)
    return jnp.where((n > 1) & (den > 0), (d - mu) / jnp.where(den > 0, den, 1.0), 0.0)


@batch_estimator(summary="(P/N_v)·(R − mean_group R)/f_norm",
                 source="Chu et al. 2025 (GPG, arXiv 2504.02546); AMAP-ML/GPG adjust_gd",
                 property=PER_PROMPT)
def gpg(rewards, weights, f_norm=1.0):
    """GPG as its authors released it (Chu et al. 2025, arXiv 2504.02546; AMAP-ML/GPG
    `gpg_trainer.py` with `--scale_rewards False --adjust_gd`, the paper's α = B/(B − M)):

        A = α·(R − mean_group R)/f_norm,   α = P/N_v,

    N_v the prompts whose group is not all-equal (the loss is divided by inverse_alpha =
    N_v/P). No non-degenerate group: A = 0 (the release would divide 0 by 0). The release's
    resampling until N_v ≥ 0.5·P (`min_inverse_alpha`) is a sampling rule, not modelled here."""
    del weights
    valid = jnp.any(_centre(rewards) != 0, axis=-1)
    alpha = rewards.shape[0] / jnp.maximum(jnp.sum(valid), 1)
    return (alpha * _centre(rewards) / f_norm).astype(rewards.dtype)  # the count ratio is float64 under x64


@batch_estimator(summary="(PG/#nonzero R)·(R − mean_group R)/f_norm",
                 source="verl gpg (compute_gpg_outcome_advantage)", property=PER_PROMPT,
                 peers=("verl gpg",))
def gpg_verl(rewards, weights, f_norm=1.0):
    """verl's `gpg` advantage (`compute_gpg_outcome_advantage`): A = α (R − mean_group R)/f_norm with
    α = (P·G)/max(1, #{non-zero rewards in the batch}), responses over non-zero rewards rather
    than the paper's prompts over non-degenerate groups (`gpg`). This is what verl runs."""
    del weights
    nonzero = jnp.sum(rewards != 0)
    alpha = rewards.size / jnp.maximum(nonzero, 1)
    return (alpha * _centre(rewards) / f_norm).astype(rewards.dtype)


@batch_estimator(summary="whiten_batch(Σ_k z_group(r_k))", source="GDPO (arXiv 2601.05242)",
                 property=PER_PROMPT, peers=("TRL normalize_then_sum",))
def gdpo(rewards, weights, eps=1e-4):
    """GDPO (arXiv 2601.05242; NVlabs/GDPO; TRL `multi_objective_aggregation="normalize_then_sum"`):
    per-component group z-scores z_k = (r_k − mean r_k)/(std(r_k, ddof=1) + eps), summed with unit
    weights, S = Σ_k z_k, then whitened over the batch: A = (S − mean S)/(std(S, ddof=1) + eps).
    rewards (P, G) is one component; (P, G, C) gives C components."""
    del weights
    r = rewards if rewards.ndim == 3 else rewards[..., None]
    r = jnp.moveaxis(r, -1, 0)  # (C, P, G)
    z = jax.vmap(lambda x: E.grpo(x, None, eps))(r)
    s = jnp.sum(z, axis=0)
    std, centred = _std1_all(s)
    den = std + eps
    return jnp.where(den > 0, centred / jnp.where(den > 0, den, 1.0), 0.0)


@batch_estimator(summary="whiten_tokens(Σ_k A_GRPO(r_k))",
                 source="GDPO (arXiv 2601.05242); NVlabs/GDPO verl-GDPO, adv_estimator='gdpo'",
                 property=E.BIASED + " (token weights); " + PER_PROMPT + " with equal lengths",
                 peers=("verl-GDPO gdpo (masked_whiten)",), uses_weights=True,
                 feature_substitute="|s(a)|² for response length")
def gdpo_verl(rewards, weights, eps=1e-6, whiten_eps=1e-8):
    """GDPO as its verl release computes it (NVlabs/GDPO `verl-GDPO`, `adv_estimator == 'gdpo'`):
    verl's GRPO advantage per reward component, z_k = (r_k − mean r_k)/(std(r_k, ddof = 1) + eps),
    summed with unit weights, S = Σ_k z_k, then `masked_whiten` over the batch's tokens,

        A = (S − μ_tok)/sqrt(σ²_tok + whiten_eps),

    each response counted L_i = weights times. Unlike TRL's batch scaling (`gdpo`) the token mean
    μ_tok ≠ 0 in general: a length-weighted constant is taken off every response. rewards (P, G)
    is one component; (P, G, C) gives C components."""
    r = rewards if rewards.ndim == 3 else rewards[..., None]
    z = jax.vmap(lambda x: E.grpo(x, None, eps))(jnp.moveaxis(r, -1, 0))
    return _token_whiten(jnp.sum(z, axis=0), weights, whiten_eps)


def bnpo_moments(rewards):
    """BNPO's method of moments over the batch's pass rates p̂_q (ddof = 1): (α, β, defined).

    c = m(1 − m)/v − 1, a = c·m, b = c·(1 − m), α = max(1, 1 + a/3), β = max(1, 1 + b/3).
    P = 1 uses m = 0, v = 1 (the official code); v = 0 is undefined (the code gives inf/NaN)."""
    p = jnp.mean(rewards, axis=-1)
    q = p.shape[0]
    m = jnp.mean(p) if q > 1 else jnp.float64(0.0)
    v = jnp.sum((p - jnp.mean(p)) ** 2) / (q - 1) if q > 1 else jnp.float64(1.0)
    safe_v = jnp.where(v > 0, v, 1.0)
    c = m * (1.0 - m) / safe_v - 1.0
    alpha = jnp.maximum(1.0, 1.0 + c * m / 3.0)
    beta = jnp.maximum(1.0, 1.0 + c * (1.0 - m) / 3.0)
    return alpha, beta, v > 0


@batch_estimator(summary="(R − p̂)/BetaPDF(p̂; α̂, β̂), α̂, β̂ by moments",
                 source="Xiao et al. 2025 (BNPO)", property=PER_PROMPT)
def bnpo_batch(rewards, weights, max_weight=1e6):
    """BNPO with α, β from the batch (Xiao et al. 2025; changyi7231/BNPO):
    A_qi = min(1/f(p̂_q; α, β), max_weight)·(R_qi − p̂_q), (α, β) = `bnpo_moments`.
    When every prompt has the same p̂ (v = 0) the limit v → 0⁺ sends α, β → ∞ and every weight
    1/f(p̂) → 0: the lab returns A = 0 there (documented limit, never NaN)."""
    del weights
    alpha, beta, ok = bnpo_moments(rewards)
    p = jnp.clip(jnp.mean(rewards, axis=-1, keepdims=True), 0.0, 1.0)
    inv_f = jnp.minimum(jnp.exp(-E.log_beta_pdf(p, alpha, beta)), max_weight)
    return jnp.where(ok, inv_f * _centre(rewards), 0.0)


def _copo(rewards, weights, eps, k_b, b, zero_mask: bool, consistency: bool):
    """A_qi = w_qi·A_GRPO,qi + (1 − w_qi)·(g_q − mean_Q g)/(std_Q(g, ddof=1) + eps), with
    w_qi = σ(k_b(H_q − b)), times 1[R_qi ≠ 0] if `zero_mask`, and g_q = p̂_q·(1 − λ_G H_q) if
    `consistency` else p̂_q. One prompt: the global term is 0 (the release's torch.std gives NaN)."""
    g = rewards.shape[-1]
    h = E.answer_entropy_bits(weights)  # (P, 1)
    w = jax.nn.sigmoid(k_b * (h - b))
    if zero_mask:
        w = jnp.where(rewards != 0, w, 0.0)
    gq = jnp.mean(rewards, axis=-1, keepdims=True)
    if consistency:
        lam = (1.0 - 1.0 / g) / np.log2(g) if g > 1 else 0.0
        gq = gq * (1.0 - lam * h)
    if rewards.shape[0] > 1:
        std, centred = _std1_all(gq)
        den = std + eps
        glob = jnp.where(den > 0, centred / jnp.where(den > 0, den, 1.0), 0.0)
    else:
        glob = jnp.zeros_like(gq)
    return w * E.grpo(rewards, None, eps) + (1.0 - w) * glob


@batch_estimator(summary="(P/N_v)·N_v·softmax(−p̂/T)·A_DGAE",
                 source="DGPO / MathForge (arXiv 2601.20614); AMAP-ML/MathForge enable_dgpo, dqw, T=2",
                 property=PER_PROMPT)
def dgpo(rewards, weights, eps=1e-4, temperature=2.0):
    """DGPO as released: DGAE times difficulty-aware question weighting times the valid-token
    ratio (MathForge, arXiv 2601.20614; AMAP-ML/MathForge TRL 0.20 `grpo_trainer.py`, enable_dgpo
    and enable_dgpo_dqw, T = 2):

        A_qi = (P/N_v)·λ_q·G(R_qi − mean R_q)/(Σ_j |R_qj − mean R_q| + eps),
        λ_q = N_v·softmax_{q ∈ V}(−mean R_q / T),

    V the prompts whose group is not all-equal (N_v of them); λ = 1 elsewhere (where DGAE is 0).
    P/N_v is the release's zero_mask_ratio, the batch's completion tokens over those of the
    groups in V, at equal lengths (1 when N_v = 0): it rescales every prompt by a factor that
    depends on how many prompts of the batch are degenerate. The release's global_balancing_ratio
    is 1 on one process. Unequal lengths would make the ratio Σ L / Σ_{V} L; not modelled.
    The release sets an all-fail group's accuracy to 1 before the softmax; that matters only when
    another reward makes such a group non-degenerate, never with one pass/fail reward."""
    del weights
    centred = _centre(rewards)
    valid = jnp.any(centred != 0, axis=-1, keepdims=True)
    logits = jnp.where(valid, -jnp.mean(rewards, axis=-1, keepdims=True) / temperature, -jnp.inf)
    n_valid = jnp.sum(valid)
    shifted = logits - jnp.max(jnp.where(valid, logits, -1e300))
    w = jnp.where(valid, jnp.exp(shifted), 0.0)
    lam = jnp.where(valid, n_valid * w / jnp.maximum(jnp.sum(w), 1e-300), 1.0)
    zero_mask_ratio = jnp.where(n_valid > 0, rewards.shape[0] / jnp.maximum(n_valid, 1), 1.0)
    return (zero_mask_ratio * lam * E.dgae(rewards, None, eps)).astype(rewards.dtype)


@batch_estimator(summary="w·A_GRPO + (1 − w)·z_batch(p̂), w = σ(5(H − 1))·1[R ≠ 0]",
                 source="COPO (arXiv 2508.04138); hijih/copo-code run_copo.sh: soft-with-zero, k=5, b=1",
                 property=E.BIASED, uses_weights=True,
                 feature_substitute="|s(a)|² for the final answer (equal values = same answer)")
def copo(rewards, weights, eps=1e-6, k_b=5.0, b=1.0):
    """COPO as released (arXiv 2508.04138; hijih/copo-code `run_copo.sh`: global_flg =
    "soft-with-zero", k = 5, b = 1, reward_coef_flg = false, entropy_coeff = 0):

        A_qi = w_qi·A_GRPO,qi + (1 − w_qi)·(p̂_q − mean_Q p̂)/(std_Q(p̂, ddof=1) + eps),
        w_qi = σ(k_b(H_q − b))·1[R_qi ≠ 0],

    H_q the entropy in bits of prompt q's answers, read from `weights` (equal = same answer); a
    member with R = 0 gets the global term alone. The global reward is the pass rate (no
    consistency coefficient). On-policy, the PPO clip of both terms has no effect."""
    return _copo(rewards, weights, eps, k_b, b, zero_mask=True, consistency=False)


@batch_estimator(summary="w·A_GRPO + (1 − w)·z_batch(p̂(1 − λH)), w = σ(k_b(H − b))",
                 source="COPO (arXiv 2508.04138); hijih/copo-code mode only-soft, reward_coef_flg, k=1, b=0.5",
                 property=E.BIASED, uses_weights=True,
                 feature_substitute="|s(a)|² for the final answer (equal values = same answer)")
def copo_soft(rewards, weights, eps=1e-6, k_b=1.0, b=0.5):
    """COPO in the release's "only-soft" mode with the consistency-weighted global reward
    (hijih/copo-code: reward_coef_flg = true; k = 1, b = 0.5, the loss function's defaults):

        A_qi = w_q·A_GRPO,qi + (1 − w_q)·(g_q − mean_Q g)/(std_Q(g, ddof=1) + eps),
        g_q = p̂_q·(1 − λ_G H_q),  λ_G = (1 − 1/G)/log2 G,  w_q = σ(k_b(H_q − b))."""
    return _copo(rewards, weights, eps, k_b, b, zero_mask=False, consistency=True).astype(rewards.dtype)


POSITIVE = ("f_norm", "temperature", "max_weight")


def resolve_params(est: BatchEstimator, **given) -> dict:
    """Defaults merged with `given`; unknown, non-finite or out-of-range values are InputErrors."""
    params = dict(est.params)
    for key, value in given.items():
        if key not in params:
            raise InputError(f"batch estimator {est.name!r} takes no parameter {key!r}")
        if not np.isfinite(value):
            raise InputError(f"parameter {key!r} must be a finite number, got {value!r}")
        params[key] = float(value)
    if params.get("eps", 0.0) < 0:
        raise InputError("eps must be non-negative")
    for key in POSITIVE:
        if key in params and not params[key] > 0:
            raise InputError(f"{key} must be positive")
    return params


def _weights_for(rewards, ps):
    """|s(a)|² on the two-armed bandit: 2(1 − p)² for a success, 2p² for a failure."""
    p = ps[:, None]
    return jnp.where(rewards > 0.5, 2.0 * (1.0 - p) ** 2, 2.0 * p**2)


def prompt_terms(fn, rewards, ps, params):
    """u_x = (1/G) Σ_i A_xi (R_xi − p_x) for a batch of reward matrices (N, P, G) on two-armed
    pass/fail prompts (π_1 = p_x, weights |s(a)|²), A = fn(rewards, weights, **params); (N, P)."""
    def one(r):
        a = fn(r, _weights_for(r, ps), **params)
        return jnp.mean(a * (r - ps[:, None]), axis=-1)

    return jax.vmap(one)(rewards)


_u = jax.jit(prompt_terms, static_argnames=("fn",))


def bandit_prompt_gradients(fn, logits, arms, rewards, params):
    """ĝ_x = (1/G) Σ_i A_xi s(a_xi) for batches (N, P, G) of arms and rewards on K-armed prompts
    with logits (P, K), A = fn(rewards (P, G), ones, **params) per batch; (N, P, K)."""
    a = jax.vmap(lambda r: fn(r, jnp.ones_like(r), **params))(rewards)
    pi = jax.nn.softmax(logits, axis=-1)
    onehot = jax.nn.one_hot(arms, logits.shape[-1], dtype=jnp.float64)
    return jnp.mean(a[..., None] * (onehot - pi[None, :, None, :]), axis=2)


def exact_ensemble(estimator: BatchEstimator, ps, group: int, **params) -> dict:
    """Exact per-prompt c_x and Var(u_x) for a batch entry on pass/fail prompts (enumeration)."""
    est = as_entry(estimator)
    ps = np.asarray(ps, dtype=np.float64)
    P = ps.size
    if not np.all((ps > 0) & (ps < 1)):
        raise InputError("pass rates must lie strictly inside (0, 1)")
    rows = (group + 1) ** P
    if rows > MAX_ROWS:
        raise InputError(f"{rows:,} batch outcomes exceed the exact limit of {MAX_ROWS:,}; use sims.engines.montecarlo.ensemble")
    ks = np.array(list(itertools.product(range(group + 1), repeat=P)), dtype=np.int64)  # (N, P)
    rewards = (np.arange(group)[None, None, :] < ks[:, :, None]).astype(np.float64)
    logw = np.sum(gammaln(group + 1) - gammaln(ks + 1) - gammaln(group - ks + 1)
                  + ks * np.log(ps) + (group - ks) * np.log1p(-ps), axis=1)
    w = np.exp(logw)
    p = {k: jnp.float64(v) for k, v in resolve_params(est, **params).items()}
    u = np.asarray(_u(est.advantages, jnp.asarray(rewards), jnp.asarray(ps), p))
    mean = w @ u
    var = w @ (u - mean) ** 2
    return {"c": mean / (ps * (1 - ps)), "mean_u": mean, "var_u": var, "trace_var": float(2 * var.sum()),
            "rows": int(rows)}
