"""The estimator registry: group advantage functions, and the shared gradient assembly.

A group is G i.i.d. pairs (a_i, R_i) ~ π. Every estimator here is a pure function

    advantages(rewards, weights, **params) -> A          rewards, weights: (G,);  A: (G,)

where `weights` are per-sample features (|s(a_i)|² for bandits, sequence statistics for a
neural policy, or ones). The gradient estimate is assembled separately (docs/design.md §3):

    ĝ = (1/G) Σ_i A_i s(a_i)                              (`group_gradient`)

so the exact engine, the Monte Carlo engine, the bandit trainers and the scale-up trainer all
call the one definition below. Every function is symmetric in the group's members, which the
exact engine relies on (it enumerates multisets).
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
from types import MappingProxyType
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, xlogy

from bandits import softmax
from bandits.errors import InputError

UNBIASED = "unbiased"  # E[ĝ] = ∇J for every finite reward law
DIRECTION = "direction-unbiased"  # E[ĝ] = c(G)·∇J for every finite reward law
BINARY_DIRECTION = "direction-unbiased (binary rewards)"  # E[ĝ] = c(p, G)·∇p for Bernoulli rewards
BIASED = "biased"  # E[ĝ] is not a multiple of ∇J in general, even for binary rewards
PROPERTIES = (UNBIASED, DIRECTION, BINARY_DIRECTION, BIASED)


@dataclasses.dataclass(frozen=True, eq=False)
class Estimator:
    """A registry entry: the advantage function and what is known about it.

    Entries are hashed and compared by identity, so the engines can key their compiled kernels on
    the entry itself: two entries are the same only if they are the same object, and a function
    registered again under an old name gets new kernels. `params` (the defaults, read from the
    function's signature) is a read-only mapping."""

    name: str
    advantages: Callable
    summary: str
    property: str  # what the lab declares (and the ledger checks) about E[ĝ]: one of PROPERTIES
    min_group: int = 2
    params: Mapping[str, float] = dataclasses.field(default_factory=dict)
    per_coordinate: bool = False  # weights (G, K) = s_k(a_i)², advantages (G, K)
    source: str = ""  # paper and/or code the formula is taken from
    provenance: str = "paper"  # "paper", "code", or "reconstructed" (a derivation of the lab)
    peers: tuple = ()  # library functions sharing the formula, e.g. ("verl grpo",)
    tested_peers: str = ""  # the peers tests/test_atlas_peers.py pins this entry to (1e-9)
    param_help: tuple = ()  # (name, meaning) per parameter, for the CLI and the docs
    check: Callable | None = None  # params -> None, raising InputError on undefined values
    # False declares that A reads the rewards only, never the per-sample weights; the exact engine
    # may then sum over the reward alphabet alone (docs/design.md §4.11). The default, True, is
    # exact for any function (weights enter through arm classes), so an undeclared user function
    # is never summed over the wrong law.
    uses_weights: bool = True
    # The per-sample feature the method reads on sequences (response length, token entropy, final
    # answer) and what stands in for it on bandits ("|s(a)|² for response length"): the atlas
    # verdict and c(p, G) of such an entry describe the stand-in, not the method.
    feature_substitute: str = ""

    def __post_init__(self):
        if self.property not in PROPERTIES:
            raise ValueError(f"property must be one of {PROPERTIES}, got {self.property!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @builtins.property
    def unbiased(self) -> bool:
        return self.property == UNBIASED


def entry(fn: Callable, name: str | None = None, **meta) -> Estimator:
    """An (unregistered) entry for an advantage function `fn(rewards, weights, **params)`: its
    parameters and their defaults are read from the signature (every argument after the first two
    must have a default). `meta` sets the other fields (summary, property, min_group, ...)."""
    params = {}
    for i, (key, p) in enumerate(inspect.signature(fn).parameters.items()):
        if i < 2 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise InputError(f"parameter {key!r} of {getattr(fn, '__name__', fn)!r} needs a default value")
        params[key] = p.default
    meta.setdefault("summary", getattr(fn, "__name__", "advantage function"))
    meta.setdefault("property", BIASED)
    return Estimator(name=name or fn.__name__, advantages=fn, params=params, **meta)


REGISTRY: dict[str, Estimator] = {}


def register(estimator: Estimator) -> Estimator:
    """Add an entry (e.g. a new estimator to be checked for bias); a taken name is an error."""
    if not isinstance(estimator, Estimator):
        raise TypeError(f"register takes an Estimator entry, got {type(estimator).__name__}")
    if estimator.name in REGISTRY:
        raise InputError(f"an estimator named {estimator.name!r} is already registered")
    REGISTRY[estimator.name] = estimator
    return estimator


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def estimator(**meta):
    """Register the decorated advantage function under its own name, with `meta` as its entry's
    fields (summary, property, min_group, source, peers, ...) and its defaults read from the
    signature; the function itself is returned unchanged."""

    def decorate(fn):
        register(entry(fn, **meta))
        return fn

    return decorate


def get(name: str) -> Estimator:
    """The entry registered as `name`; an unknown name is an InputError listing the known ones.
    Names are resolved here once, by the command line and the claims; the engines take entries."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown estimator {name!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def as_entry(estimator) -> Estimator:
    """`estimator` if it is an entry; anything else (a name included) is a TypeError, so that a
    name resolved twice, or a stale one, cannot reach a compiled kernel."""
    if isinstance(estimator, Estimator):
        return estimator
    raise TypeError(f"expected an estimator entry (sims.estimators.get(name)), got {estimator!r}")


def _shifted_centre(rewards):
    """R − mean(R), computed about R_0 so an all-equal group gives exact zeros in any dtype.

    With non-dyadic rewards (0.35 in float32) the plain mean can differ from the members by one
    ulp, and GRPO's whitening would blow that residue up; (R − R_0) − mean(R − R_0) cannot.
    """
    shifted = rewards - rewards[..., :1]
    return shifted - jnp.mean(shifted, axis=-1, keepdims=True)


@estimator(summary="R_i − b", property=UNBIASED, min_group=1, uses_weights=False,
           source="Williams 1992", param_help=(("baseline", "constant baseline b"),))
def reinforce(rewards, weights, baseline=0.0):
    """REINFORCE with a constant baseline: A_i = R_i − b (Williams, 1992)."""
    del weights
    return rewards - baseline


@estimator(summary="R_i − mean_{j≠i} R_j", property=UNBIASED, uses_weights=False,
           source="Kool et al. 2019; Ahmadian et al. 2024",
           peers=("verl rloo", "verl rloo_vectorized"), tested_peers="verl rloo")
def rloo(rewards, weights):
    """REINFORCE leave-one-out: A_i = R_i − (1/(G−1)) Σ_{j≠i} R_j (Kool et al., 2019).

    Equivalently A_i = G/(G−1) · (R_i − mean(R)). Unbiased for ∇J.
    """
    del weights
    g = rewards.shape[-1]
    return _shifted_centre(rewards) * (g / (g - 1))


@estimator(summary="R_i − mean(R)  (E = (1−1/G)∇J)", property=DIRECTION, uses_weights=False,
           source="Liu et al. 2025 (Dr. GRPO)",
           peers=("verl grpo, norm_adv_by_std_in_grpo=False", "TRL scale_rewards='none'"),
           tested_peers="verl grpo (no std); TRL none")
def grpo_mean(rewards, weights):
    """Group-mean advantage without whitening (Dr. GRPO; Liu et al., 2025): A_i = R_i − mean(R).

    The mean includes R_i itself, so E[ĝ] = (1 − 1/G) ∇J: biased in scale, not in direction.
    """
    del weights
    return _shifted_centre(rewards)


@estimator(summary="(R_i − mean R)/(std R + eps)", property=BINARY_DIRECTION, uses_weights=False,
           source="Shao et al. 2024 (DeepSeekMath)",
           peers=("verl grpo (eps 1e-6)", "TRL scale_rewards='group' (eps=1e-4)"),
           tested_peers="verl grpo; TRL group",
           param_help=(("eps", "added to the ddof=1 std, outside the root"),))
def grpo(rewards, weights, eps=1e-6):
    """GRPO advantage (Shao et al., 2024): A_i = (R_i − mean(R)) / (std(R, ddof=1) + eps).

    Biased, and not a multiple of ∇J in general. An all-equal group gives A = 0 exactly, also
    with eps = 0 (the limit of A as the group's spread vanishes, not 0/0).
    """
    del weights
    g = rewards.shape[-1]
    centred = _shifted_centre(rewards)
    std = jnp.sqrt(jnp.sum(centred**2, axis=-1, keepdims=True) / (g - 1))
    denom = std + eps
    return jnp.where(denom > 0, centred / jnp.where(denom > 0, denom, 1.0), 0.0)


@estimator(summary="R_i − Σ_{j≠i}|s_j|²R_j / Σ_{j≠i}|s_j|²", property=UNBIASED,
           source="OBLR-PO framework (docs/design.md §4.2)", provenance="reconstructed")
def optimal_baseline_loo(rewards, weights):
    """Leave-one-out gradient-weighted baseline (OBLR-PO; docs/design.md §4.2):

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


@estimator(summary="R_i − Σ_{j≠i}s_jk²R_j / Σ_{j≠i}s_jk²  (per coordinate k)", property=UNBIASED,
           per_coordinate=True, source="OBLR-PO framework (docs/design.md §4.2)",
           provenance="reconstructed")
def optimal_baseline_loo_coord(rewards, weights):
    """Per-coordinate leave-one-out gradient-weighted baseline (OBLR-PO; docs/design.md §4.2):

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


# ---- the seeds' and the practitioners' group estimators (docs/design.md §4.9) ----------------


def _std1(centred):
    g = centred.shape[-1]
    return jnp.sqrt(jnp.sum(centred**2, axis=-1, keepdims=True) / (g - 1))


@estimator(summary="R_i − Σ_j w_j R_j/(Σ_j w_j + eps)  (w = length)", property=BIASED,
           source="Hao et al. 2025 (OPO, arXiv 2505.23585)", provenance="code",
           peers=("verl opo (w = lengths)", "verl optimal_token_baseline, one-token (w = |s|², eps=1e-8)"),
           tested_peers="verl opo; verl OTB (one token)",
           feature_substitute="|s(a)|² for response length",
           param_help=(("eps", "added to Σ_j w_j"),))
def opo(rewards, weights, eps=0.0):
    """Length-weighted baseline including the member itself (OPO; Hao et al. 2025, verl `opo`):

        A_i = R_i − Σ_j w_j R_j / (Σ_j w_j + eps),      w_j = response length L_j.

    With w_j = |s(a_j)|² and eps = 1e-8 it is verl's optimal token baseline for one-token
    responses. The baseline is 0 when Σ_j w_j + eps = 0. Computed about R_0, so an all-equal group
    gives exact zeros at eps = 0.
    """
    shifted = rewards - rewards[..., :1]
    num = jnp.sum(weights * shifted, axis=-1, keepdims=True)
    den = jnp.sum(weights, axis=-1, keepdims=True) + eps
    safe = jnp.where(den > 0, den, 1.0)
    return jnp.where(den > 0, shifted - num / safe + rewards[..., :1] * eps / safe, rewards)


@estimator(summary="best member only: (R_max − R_2nd)/(std R + eps)", property=BINARY_DIRECTION,
           uses_weights=False, source="Tang, Zheng, Synnaeve, Munos 2025 (ICML; arXiv 2503.19595)",
           provenance="code", peers=("verl grpo_passk",), tested_peers="verl grpo_passk",
           param_help=(("eps", "added to the ddof=1 std"),))
def grpo_passk(rewards, weights, eps=1e-6):
    """Pass@k advantage (Tang, Zheng, Synnaeve and Munos, "Optimizing Language Models for Inference
    Time Objectives using Reinforcement Learning", ICML 2025, arXiv 2503.19595, the paper verl's
    `grpo_passk` cites): only the best member gets a signal,

        A_i = 1[R_i is the unique maximum] · (R_max − R_second) / (std(R, ddof=1) + eps),

    and every other member gets 0 (a tie at the top gives R_max − R_second = 0).
    """
    del weights
    top = jnp.max(rewards, axis=-1, keepdims=True)
    is_top = rewards == top
    unique = jnp.sum(is_top, axis=-1, keepdims=True) == 1
    second = jnp.max(jnp.where(is_top, -jnp.inf, rewards), axis=-1, keepdims=True)
    gap = jnp.where(unique, top - jnp.where(unique, second, top), 0.0)
    std = _std1(_shifted_centre(rewards)) + eps
    return jnp.where(is_top & unique & (std > 0), gap / jnp.where(std > 0, std, 1.0), 0.0)


_STIRLING_SMALL = 10.0  # below it log B is a difference of log-gammas of arguments < 20
_HALF_LOG_2PI = 0.9189385332046727


def _stirling_remainder(x):
    """Δ(x) = log Γ(x) − [(x − ½) log x − x + ½ log 2π] by its asymptotic series, float64-exact
    (first omitted term below 1e-16) for x ≥ 10."""
    r = 1.0 / (x * x)
    series = (1 / 12 + r * (-1 / 360 + r * (1 / 1260 + r * (-1 / 1680 + r * (1 / 1188 + r * (
        -691 / 360360 + r / 156))))))
    return series / x


def log_beta(a, b):
    """log B(a, b) for a, b ≥ 1 in float64, accurate to ~1e-14 relative in B wherever |log B| is
    moderate (`jax.scipy.special.betaln` loses about 1e-6 relative for a or b ≳ 8):

        max(a, b) < 10:      log Γ(a) + log Γ(b) − log Γ(a + b);
        a < 10 ≤ b (a ≤ b):  log Γ(a) − (b − ½) log1p(a/b) − a log(a + b) + a + Δ(b) − Δ(a + b);
        both ≥ 10:           ½ log 2π − a log1p(b/a) − b log1p(a/b) + ½ log((a + b)/(ab))
                             + Δ(a) + Δ(b) − Δ(a + b),

    Δ the Stirling remainder: the large log-gammas never cancel each other in floating point."""
    a, b = jnp.minimum(a, b), jnp.maximum(a, b)
    safe_b = jnp.maximum(b, _STIRLING_SMALL)  # keeps the unused branches finite
    safe_a = jnp.maximum(a, _STIRLING_SMALL)
    direct = gammaln(a) + gammaln(b) - gammaln(a + b)
    one_large = (gammaln(a) - (safe_b - 0.5) * jnp.log1p(a / safe_b) - a * jnp.log(a + safe_b) + a
                 + _stirling_remainder(safe_b) - _stirling_remainder(a + safe_b))
    both_large = (_HALF_LOG_2PI - safe_a * jnp.log1p(safe_b / safe_a) - safe_b * jnp.log1p(safe_a / safe_b)
                  + 0.5 * jnp.log((safe_a + safe_b) / (safe_a * safe_b)) + _stirling_remainder(safe_a)
                  + _stirling_remainder(safe_b) - _stirling_remainder(safe_a + safe_b))
    return jnp.where(b < _STIRLING_SMALL, direct, jnp.where(a < _STIRLING_SMALL, one_large, both_large))


def log_beta_pdf(p, alpha, beta):
    """log f(p; α, β) = (α − 1) log p + (β − 1) log(1 − p) − log B(α, β), 0·log 0 = 0 (`log_beta`)."""
    return xlogy(alpha - 1.0, p) + xlogy(beta - 1.0, 1.0 - p) - log_beta(alpha, beta)


def _check_bnpo(params):
    if params["alpha"] < 1 or params["beta"] < 1:
        raise InputError("bnpo needs alpha >= 1 and beta >= 1 (the Beta density is unbounded below 1)")
    if params["max_weight"] <= 0:
        raise InputError("bnpo's max_weight must be positive")


@estimator(summary="(R_i − p̂)/BetaPDF(p̂; α, β)", property=BINARY_DIRECTION, uses_weights=False,
           source="Xiao et al. 2025 (BNPO, arXiv 2506.02864)", provenance="code",
           param_help=(("alpha", "Beta α ≥ 1"), ("beta", "Beta β ≥ 1"), ("max_weight", "clamp of 1/f")),
           check=_check_bnpo)
def bnpo(rewards, weights, alpha=1.5, beta=1.5, max_weight=1e6):
    """BNPO at fixed Beta parameters (Xiao et al. 2025, arXiv 2506.02864; code changyi7231/BNPO):

        A_i = (R_i − p̂) / f(p̂; α, β),   p̂ = mean(R),  f the Beta(α, β) density,

    with 1/f clamped to [0, max_weight] as in the official code; f in log space by `log_beta_pdf`
    (float64-accurate for large α, β). Rewards are pass/fail in [0, 1]
    (p̂ is clipped to [0, 1] for the density). α = β = 1 is the group mean (Dr. GRPO); α = β = 3/2
    is (π/8)·(R_i − p̂)/std(R, ddof=0). α < 1 or β < 1 is rejected (the density is unbounded).
    """
    del weights
    centred = _shifted_centre(rewards)
    p = jnp.clip(jnp.mean(rewards, axis=-1, keepdims=True), 0.0, 1.0)
    inv_f = jnp.minimum(jnp.exp(-log_beta_pdf(p, alpha, beta)), max_weight)
    return centred * inv_f


@estimator(summary="G(R_i − mean R)/(Σ_j|R_j − mean R| + eps)", property=BINARY_DIRECTION,
           uses_weights=False, source="DGPO / MathForge (arXiv 2601.20614)", provenance="code",
           param_help=(("eps", "added to Σ_j|R_j − mean R|"),))
def dgae(rewards, weights, eps=1e-4):
    """DGPO's difficulty-balanced group advantage (MathForge, arXiv 2601.20614; AMAP-ML/MathForge):

        A_i = G·(R_i − mean R) / (Σ_j |R_j − mean R| + eps) = (R_i − mean R)/(MAD + eps/G).

    Σ_i |A_i| ≈ G on every non-degenerate group; an all-equal group gives 0 (also at eps = 0).
    """
    del weights
    g = rewards.shape[-1]
    centred = _shifted_centre(rewards)
    den = jnp.sum(jnp.abs(centred), axis=-1, keepdims=True) + eps
    return jnp.where(den > 0, g * centred / jnp.where(den > 0, den, 1.0), 0.0)


def _labels(rewards):
    """REAL's labels as released (`compute_policy_loss_real`): positives R == 1, negatives R == 0,
    with their counts. A member with any other reward is in neither set: it gets no gradient and
    does not count in k₊ or k₋ (the release applies the labels to raw rewards; non-binary rewards
    are outside its design, and the lab follows the code rather than inventing a threshold)."""
    pos = (rewards == 1.0).astype(rewards.dtype)
    neg = (rewards == 0.0).astype(rewards.dtype)
    return pos, neg, jnp.sum(pos, axis=-1, keepdims=True), jnp.sum(neg, axis=-1, keepdims=True)


def _check_tau(params):
    if not params["tau"] > 0:
        raise InputError("tau must be positive")


@estimator(summary="(G/τ)[y⁺_i/(1+k₊) − y⁻_i/(1+k₋)], y⁺ = 1[R=1], y⁻ = 1[R=0]",
           property=BINARY_DIRECTION, uses_weights=False,
           source="REAL (Rewards as Labels, arXiv 2602.05630); Red-RL/REAL loss, τ=0.5",
           provenance="reconstructed", param_help=(("tau", "temperature τ"),), check=_check_tau)
def real(rewards, weights, tau=0.5):
    """REAL's on-policy effective advantage (Rewards as Labels, arXiv 2602.05630; Red-RL/REAL),
    reconstructed from its loss L = log(1 + Σ_neg e^{s/τ}) + log(1 + Σ_pos e^{−s/τ}) at s = 0:

        A_i = (G/τ)·[y⁺_i/(1 + k₊) − y⁻_i/(1 + k₋)],   y⁺ = 1[R = 1], y⁻ = 1[R = 0],

    k₊, k₋ the counts, on groups with both (k₊ > 0 < k₋), 0 otherwise. A reward other than 0 and 1
    labels its member neither way (advantage 0, as in the release). Not zero-sum over the group.
    """
    del weights
    g = rewards.shape[-1]
    pos, neg, kp, kn = _labels(rewards)
    a = (g / tau) * (pos / (1.0 + kp) - neg / (1.0 + kn))
    return jnp.where((kp > 0) & (kn > 0), a, 0.0)


@estimator(summary="(G/τ)[y⁺_i k₋ − y⁻_i k₊]/(1 + k₊k₋)", property=BINARY_DIRECTION,
           uses_weights=False, source="REAL, product-style variant (arXiv 2602.05630)",
           provenance="reconstructed", param_help=(("tau", "temperature τ"),), check=_check_tau)
def real_product(rewards, weights, tau=0.5):
    """REAL's product-style (circle-loss) variant, L = softplus(LSE_neg(s/τ) + LSE_pos(−s/τ)),
    on-policy effective advantage, reconstructed:

        A_i = (G/τ)·[y⁺_i k₋ − y⁻_i k₊] / (1 + k₊k₋),   labels as in `real`.

    Zero-sum over the labelled members; 0 on groups without both labels. (The release's
    `compute_policy_loss_real_product_style` names its negative log-sum-exp `lse_1neg` and then
    reads `lse_neg`, so as published it does not run; this is the formula its comment states.)
    """
    del weights
    g = rewards.shape[-1]
    pos, neg, kp, kn = _labels(rewards)
    a = (g / tau) * (pos * kn - neg * kp) / (1.0 + kp * kn)
    return jnp.where((kp > 0) & (kn > 0), a, 0.0)


@estimator(summary="w·A_GRPO, w = 1 if max L_pos > mean L_neg else λ", property=BIASED,
           source="ADORA (arXiv 2602.10019)", provenance="code",
           feature_substitute="|s(a)|² for response length",
           param_help=(("lam", "attenuation λ"), ("eps", "GRPO's eps")))
def adora(rewards, weights, lam=0.1, eps=1e-6):
    """ADORA's length-conditioned reweighting of GRPO (arXiv 2602.10019; ShadeCloak/ADORA):

        A_i = w·(R_i − mean R)/(std(R, ddof=1) + eps),
        w = 1 if max_{R_j > 1/2} L_j > mean_{R_j ≤ 1/2} L_j else λ,

    L_j = weights (response length; |s|² on bandits). No correct member: w = λ; no wrong member:
    w = 1 (the official LLM code). One w per group.
    """
    pos = rewards > 0.5
    n_neg = jnp.sum(~pos, axis=-1, keepdims=True)
    max_pos = jnp.max(jnp.where(pos, weights, -jnp.inf), axis=-1, keepdims=True)
    mean_neg = jnp.sum(jnp.where(pos, 0.0, weights), axis=-1, keepdims=True) / jnp.maximum(n_neg, 1)
    length_adv = (n_neg == 0) | (max_pos > mean_neg)
    return jnp.where(length_adv, 1.0, lam) * grpo(rewards, None, eps)


def answer_entropy_bits(answers):
    """Entropy in bits of the empirical distribution of a group's answers (equal values = same
    answer): H = −(1/G) Σ_i log2(c_i/G), c_i = #{j : answer_j = answer_i}."""
    g = answers.shape[-1]
    same = answers[..., :, None] == answers[..., None, :]
    counts = jnp.sum(same, axis=-1).astype(jnp.result_type(answers, jnp.float32))
    return -jnp.mean(jnp.log2(counts / g), axis=-1, keepdims=True)


@estimator(summary="σ(5(H_ans − 1))·1[R_i ≠ 0]·A_GRPO", property=BIASED,
           source="COPO (arXiv 2508.04138); hijih/copo-code run_copo.sh: soft-with-zero, k=5, b=1",
           provenance="code",
           feature_substitute="|s(a)|² for the final answer (equal values = same answer)",
           param_help=(("eps", "GRPO's eps"), ("k_b", "blend slope"), ("b", "blend centre, bits")))
def copo_local(rewards, weights, eps=1e-6, k_b=5.0, b=1.0):
    """COPO's local (group) term as released (arXiv 2508.04138; hijih/copo-code, `run_copo.sh`:
    global_flg="soft-with-zero", k = 5, b = 1):

        A_i = σ(k_b·(H − b))·1[R_i ≠ 0]·(R_i − mean R)/(std(R, ddof=1) + eps),

    H the entropy in bits of the group's final answers. The weight of the local term is masked by
    the member's own reward (`compute_policy_loss_with_global`: w_i = σ(k(H − b))·1[R_i ≠ 0]), so
    a member with R_i = 0 gets only the batch term (`sims.batch.copo`). The answer of member i is
    read from `weights` (equal weights = same answer; on bandits |s(a)|² identifies the arm).
    The release adds 1e-8 inside its float32 log2, a no-op at float32 resolution; not reproduced.
    """
    w = jax.nn.sigmoid(k_b * (answer_entropy_bits(weights) - b))
    return jnp.where(rewards != 0, w, 0.0) * grpo(rewards, None, eps)


@estimator(summary="σ(k_b(H_ans − b))·A_GRPO", property=BIASED,
           source="COPO (arXiv 2508.04138); hijih/copo-code mode only-soft, loss defaults k=1, b=0.5",
           provenance="code",
           feature_substitute="|s(a)|² for the final answer (equal values = same answer)",
           param_help=(("eps", "GRPO's eps"), ("k_b", "blend slope"), ("b", "blend centre, bits")))
def copo_local_soft(rewards, weights, eps=1e-6, k_b=1.0, b=0.5):
    """COPO's local term in the release's "only-soft" mode, at the defaults of its loss function
    (`compute_policy_loss_with_global`: k = 1, b = 0.5; hijih/copo-code):

        A_i = σ(k_b·(H − b))·(R_i − mean R)/(std(R, ddof=1) + eps),

    one weight per group, not masked by the member's reward. H and the answers as in `copo_local`.
    """
    w = jax.nn.sigmoid(k_b * (answer_entropy_bits(weights) - b))
    return w * grpo(rewards, None, eps)


@estimator(summary="1[H_i ≤ 0.7]·(A_GRPO − 0.1·H_i), H = entropy feature", property=BIASED,
           source="GTPO (arXiv 2508.03772)", provenance="code",
           feature_substitute="|s(a)|² for mean token entropy",
           param_help=(("threshold", "entropy gate"), ("shift", "entropy penalty"), ("eps", "GRPO's eps")))
def gtpo(rewards, weights, threshold=0.7, shift=0.1, eps=1e-4):
    """GTPO's one-step reduction (arXiv 2508.03772; winstonsmith1897/GTPO): TRL's GRPO advantage,
    zeroed for a high-entropy completion and shifted by its entropy otherwise,

        A_i = 1[H_i ≤ threshold]·((R_i − mean R)/(std(R, ddof=1) + eps) − shift·H_i),

    H_i = weights (mean token entropy of completion i). The conflict-token masks need several
    tokens and vanish on a one-step bandit.
    """
    return jnp.where(weights > threshold, 0.0, grpo(rewards, None, eps) - shift * weights)


MAX_ABS_PARAM = 1e100  # baselines and eps: (R − b)² must stay finite in float64


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
        if not jnp.isfinite(value) or abs(value) > MAX_ABS_PARAM:
            raise InputError(f"parameter {key!r} must be a finite number of magnitude at most "
                             f"{MAX_ABS_PARAM:g}, got {value!r}")
        params[key] = float(value)
    if "eps" in params and params["eps"] < 0:
        raise InputError("eps must be non-negative")
    if estimator.check is not None:
        estimator.check(params)
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
    onehot = (arms[..., None] == jnp.arange(pi.shape[-1])).astype(pi.dtype)
    weights = 1.0 - 2.0 * jnp.sum(onehot * pi, axis=-1) + jnp.sum(pi**2)
    a = advantage_fn(rewards, weights, **params)
    return (jnp.sum(a[..., None] * onehot, axis=-2) - jnp.sum(a) * pi) / arms.shape[-1]
