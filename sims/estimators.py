"""The estimator registry: group advantage functions, and the shared gradient assembly.

A group is G i.i.d. pairs (a_i, R_i) ~ π. Every estimator here is a pure function

    advantages(rewards, weights, **params) -> A          rewards, weights: (G,);  A: (G,)

where `weights` are per-sample features (|s(a_i)|² for bandits, sequence statistics for a
neural policy, or ones). The gradient estimate is assembled separately (DESIGN §3):

    ĝ = (1/G) Σ_i A_i s(a_i)                              (`group_gradient`)

so the exact engine, the Monte Carlo engine, the bandit trainers and the scale-up trainer all
call the one definition below. Every function is symmetric in the group's members, which the
exact engine relies on (it enumerates multisets).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from bandits import softmax
from bandits.errors import InputError


def _shifted_centre(rewards):
    """R − mean(R), computed about R_0 so an all-equal group gives exact zeros in any dtype.

    With non-dyadic rewards (0.35 in float32) the plain mean can differ from the members by one
    ulp, and GRPO's whitening would blow that residue up; (R − R_0) − mean(R − R_0) cannot.
    """
    shifted = rewards - rewards[..., :1]
    return shifted - jnp.mean(shifted, axis=-1, keepdims=True)


def reinforce(rewards, weights, baseline=0.0):
    """REINFORCE with a constant baseline: A_i = R_i − b (Williams, 1992)."""
    del weights
    return rewards - baseline


def rloo(rewards, weights):
    """REINFORCE leave-one-out: A_i = R_i − (1/(G−1)) Σ_{j≠i} R_j (Kool et al., 2019).

    Equivalently A_i = G/(G−1) · (R_i − mean(R)). Unbiased for ∇J.
    """
    del weights
    g = rewards.shape[-1]
    return _shifted_centre(rewards) * (g / (g - 1))


def grpo_mean(rewards, weights):
    """Group-mean advantage without whitening (Dr. GRPO; Liu et al., 2025): A_i = R_i − mean(R).

    The mean includes R_i itself, so E[ĝ] = (1 − 1/G) ∇J: biased in scale, not in direction.
    """
    del weights
    return _shifted_centre(rewards)


def grpo(rewards, weights, eps=1e-6):
    """GRPO advantage (Shao et al., 2024): A_i = (R_i − mean(R)) / (std(R, ddof=1) + eps).

    Biased, and not a multiple of ∇J in general. An all-equal group gives A = 0 exactly.
    """
    del weights
    g = rewards.shape[-1]
    centred = _shifted_centre(rewards)
    std = jnp.sqrt(jnp.sum(centred**2, axis=-1, keepdims=True) / (g - 1))
    return centred / (std + eps)


def optimal_baseline_loo(rewards, weights):
    """Leave-one-out gradient-weighted baseline (OBLR-PO; DESIGN §4.2):

        A_i = R_i − Σ_{j≠i} w_j R_j / Σ_{j≠i} w_j,     w_j = |s(a_j)|²,

    the plug-in of b* = E[|s|²R]/E[|s|²] built from the other members, hence unbiased.
    The baseline is 0 when Σ_{j≠i} w_j = 0.
    """
    shifted = rewards - rewards[..., :1]  # about R_0, so an all-equal group gives exact zeros
    wc = weights * shifted
    num = jnp.sum(wc, axis=-1, keepdims=True) - wc
    den = jnp.sum(weights, axis=-1, keepdims=True) - weights
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, shifted - num / safe, rewards)


def optimal_baseline_loo_coord(rewards, weights):
    """Per-coordinate leave-one-out gradient-weighted baseline (OBLR-PO; DESIGN §4.2):

        A_ik = R_i − Σ_{j≠i} w_jk R_j / Σ_{j≠i} w_jk,     w_jk = s_k(a_j)²,

    the plug-in of b*_k = E[s_k² R]/E[s_k²], which minimises each coordinate's variance.
    `weights` is (G, K) and so is the result; a coordinate with Σ_{j≠i} w_jk = 0 gets baseline 0.
    """
    shifted = (rewards - rewards[..., :1])[..., None]
    wc = weights * shifted
    num = jnp.sum(wc, axis=-2, keepdims=True) - wc
    den = jnp.sum(weights, axis=-2, keepdims=True) - weights
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, shifted - num / safe, rewards[..., None])


@dataclasses.dataclass(frozen=True)
class Estimator:
    """A registry entry: the advantage function and what is known about it."""

    name: str
    advantages: Callable
    min_group: int
    params: dict
    unbiased: bool
    summary: str
    per_coordinate: bool = False  # weights (G, K) = s_k(a_i)², advantages (G, K)
    # True when A depends on the per-sample weights; False lets the exact engine sum over the
    # reward alphabet instead of (arm, reward) multisets (docs/design.md §4.11).
    uses_weights: bool = False


REGISTRY: dict[str, Estimator] = {
    e.name: e
    for e in [
        Estimator("reinforce", reinforce, 1, {"baseline": 0.0}, True, "R_i − b"),
        Estimator("rloo", rloo, 2, {}, True, "R_i − mean_{j≠i} R_j"),
        Estimator("grpo_mean", grpo_mean, 2, {}, False, "R_i − mean(R)  (E = (1−1/G)∇J)"),
        Estimator("grpo", grpo, 2, {"eps": 1e-6}, False, "(R_i − mean R)/(std R + eps)"),
        Estimator(
            "optimal_baseline_loo",
            optimal_baseline_loo,
            2,
            {},
            True,
            "R_i − Σ_{j≠i}|s_j|²R_j / Σ_{j≠i}|s_j|²",
            uses_weights=True,
        ),
        Estimator(
            "optimal_baseline_loo_coord",
            optimal_baseline_loo_coord,
            2,
            {},
            True,
            "R_i − Σ_{j≠i}s_jk²R_j / Σ_{j≠i}s_jk²  (per coordinate k)",
            per_coordinate=True,
            uses_weights=True,
        ),
    ]
}


def register(estimator: Estimator) -> Estimator:
    """Add an estimator (e.g. a new one to be checked for bias); a taken name is an error."""
    if estimator.name in REGISTRY:
        raise InputError(f"an estimator named {estimator.name!r} is already registered")
    REGISTRY[estimator.name] = estimator
    return estimator


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def get(name: str) -> Estimator:
    """Look up an estimator; an unknown name is an InputError listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(
            f"unknown estimator {name!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def resolve_params(estimator: Estimator, group: int, **given) -> dict:
    """Validate the group size and merge user parameters over the defaults (None = default)."""
    if not isinstance(group, int) or group < estimator.min_group:
        need = "at least 2 members" if estimator.min_group == 2 else "at least 1 member"
        raise InputError(f"estimator {estimator.name!r} needs a group of {need}, got G={group}")
    params = dict(estimator.params)
    for key, value in given.items():
        if value is None:
            continue
        if key not in params:
            raise InputError(f"estimator {estimator.name!r} takes no parameter {key!r}")
        if not jnp.isfinite(value):
            raise InputError(f"parameter {key!r} must be a finite number, got {value!r}")
        params[key] = float(value)
    if "eps" in params and params["eps"] < 0:
        raise InputError("eps must be non-negative")
    return params


def group_gradient(advantages, scores):
    """ĝ = (1/G) Σ_i A_i s(a_i). `scores` is (G, K); A is (G,) or per-coordinate (G, K)."""
    if advantages.ndim == scores.ndim - 1:
        advantages = advantages[..., None]
    return jnp.mean(advantages * scores, axis=-2)


def bandit_group_gradient(advantage_fn, logits, arms, rewards, params, per_coordinate=False):
    """ĝ = (1/G) Σ_i A_i s(a_i) for one group on a softmax bandit, s(a) = e_a − π, with weights
    |s(a_i)|² = 1 − 2π_{a_i} + |π|² (or s_k(a_i)² per coordinate).

    Computed as ĝ = (1/G)(Σ_i A_i e_{a_i} − (Σ_i A_i) π), which never forms the (G, K) scores."""
    if per_coordinate:
        s = softmax.scores(logits, arms)
        return group_gradient(advantage_fn(rewards, s**2, **params), s)
    pi = softmax.policy(logits)
    weights = 1.0 - 2.0 * pi[arms] + jnp.sum(pi**2)
    a = advantage_fn(rewards, weights, **params)
    onehot = (arms[..., None] == jnp.arange(pi.shape[-1])).astype(pi.dtype)
    return (a @ onehot - jnp.sum(a) * pi) / arms.shape[-1]
