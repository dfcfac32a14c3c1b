"""Symbolic theory of contrastive policy gradient (CoPG) on the softmax bandit.

Reference: Flet-Berliac, Grinsztajn, Strub, Choi, Cremer, Ahmadian, Chandak, Azar, Pietquin and
Geist (2024), "Contrastive Policy Gradient: Aligning LLMs on sequence-level scores in a
supervised-friendly fashion"; Azar et al. (2023) for IPO; docs/design.md §4.4.

Notation. K arms, deterministic rewards R_a, temperature β > 0, reference policy π_ref > 0,
policy π = softmax(θ) with ln π_a = θ_a − ln Σ_c e^{θ_c} and score ∇ ln π_a = e_a − π.

* Regularised objective   J_β(π) = E_π[R] − β KL(π‖π_ref) = Σ_a π_a R_β^π(a),
  regularised reward      R_β^π(a) = R_a − β ln(π_a/π_ref,a).
* Optimum  π* ∝ π_ref·e^{R/β},  J_β(π*) = β ln Σ_a π_ref,a e^{R_a/β}  (= β ln E_ref e^{R/β}),
  and for every π:  J_β(π*) − J_β(π) = β KL(π‖π*)  (so the regret is a scaled KL).
* CoPG pair objective (maximised) for y ~ μ1, y' ~ μ2, with ΔR = R_y − R_y' and
  Δh = ln(π_y/π_ref,y) − ln(π_y'/π_ref,y'):
      ℓ = ΔR·Δh − (β/2)·Δh²
        = −(1/(2β))·(R_β^π(y) − R_β^π(y'))²  +  ΔR²/(2β)            (exact; ΔR²/(2β) is free of π)
  so maximising ℓ is minimising (R_β^π(y) − R_β^π(y'))². Its gradient is
      ∇ℓ = (R_β^π(y) − R_β^π(y'))·(∇ln π_y − ∇ln π_y') = (R_β^π(y) − R_β^π(y'))·(e_y − e_y').
  Δh is affine in θ (the log-normaliser cancels), so the population objective
  L(θ) = Σ_{y,y'} μ1_y μ2_y' ℓ(y, y') is a concave quadratic in θ with constant Hessian
  −β Σ μ1_y μ2_y' (e_y − e_y')(e_y − e_y')ᵀ; it is stationary at θ* = ln π_ref + R/β.
* On policy (y, y' drawn independently from the current π, the gradient taken with the samples
  held fixed, i.e. not through the sampling law): E_{π×π}[∇ℓ] = 2∇J_β. Differentiating the
  expectation E_{π×π}[ℓ] itself (through the sampling law) gives something else.
* β = 0, on policy: ∇ℓ = 2·ĝ_RLOO for a group of G = 2; for β > 0 the same identity holds with the
  rewards replaced by R_β^π (RLOO on regularised rewards).
* R_y = −R_y' = 1/4 for the preferred y (ΔR = 1/2):  ℓ = −(β/2)·(Δh − 1/(2β))² + 1/(8β), i.e.
  −(β/2) times the IPO loss with τ = β, plus a constant.

Everything here is sympy; residual functions return expressions that simplify to 0.
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import sympy as sp

from theory import estimators as sb

__all__ = [
    "beta", "dh", "reference_symbols", "sampling_symbols", "log_softmax", "regularised_reward",
    "regularised_objective", "optimal_policy", "optimal_value", "pair_objective",
    "pair_objective_squared", "pair_gradient", "is_zero",
    "loss_forms_residual", "pair_gradient_residual", "optimum_residuals",
    "population_objective", "population_gradient", "stationarity_residual",
    "population_hessian_residual", "onpolicy_residual", "through_sampling_difference",
    "rloo_reduction_residual", "ipo_reduction_residual", "ipo_loss",
]

Expr = sp.Expr
beta = sp.Symbol("beta", positive=True)
dh = sp.Symbol("Delta_h", real=True)  # the log-ratio difference Δh as a free symbol


def reference_symbols(K: int) -> tuple:
    """π_ref,1..K as positive symbols (no normalisation is needed by any identity here)."""
    return tuple(sp.symbols(f"rho_1:{K + 1}", positive=True))


def sampling_symbols(name: str, K: int) -> tuple:
    """A sampling law μ over K arms as positive symbols name_1..name_K."""
    return tuple(sp.symbols(f"{name}_1:{K + 1}", positive=True))


def log_softmax(theta: Sequence) -> tuple:
    """ln π_a = θ_a − ln Σ_c e^{θ_c} for π = softmax(θ)."""
    lse = sp.log(sp.Add(*[sp.exp(t) for t in theta]))
    return tuple(t - lse for t in theta)


def regularised_reward(log_pi: Sequence, r: Sequence, ref: Sequence, b: Expr = beta) -> tuple:
    """R_β^π(a) = R_a − β ln(π_a/π_ref,a), from the log-policy."""
    return tuple(x - b * (lp - sp.log(q)) for lp, x, q in zip(log_pi, r, ref))


def regularised_objective(log_pi: Sequence, r: Sequence, ref: Sequence, b: Expr = beta) -> Expr:
    """J_β(π) = Σ_a π_a (R_a − β ln(π_a/π_ref,a)) = E_π[R] − β KL(π‖π_ref)."""
    return sp.Add(*[sp.exp(lp) * x for lp, x in zip(log_pi, regularised_reward(log_pi, r, ref, b))])


def optimal_policy(r: Sequence, ref: Sequence, b: Expr = beta) -> tuple:
    """π*_a = π_ref,a e^{R_a/β} / Σ_c π_ref,c e^{R_c/β}."""
    w = [q * sp.exp(x / b) for x, q in zip(r, ref)]
    z = sp.Add(*w)
    return tuple(x / z for x in w)


def optimal_value(r: Sequence, ref: Sequence, b: Expr = beta) -> Expr:
    """J_β(π*) = β ln Σ_a π_ref,a e^{R_a/β} (= β ln E_ref e^{R/β} for a normalised π_ref)."""
    return b * sp.log(sp.Add(*[q * sp.exp(x / b) for x, q in zip(r, ref)]))


def pair_objective(log_pi, r, ref, y: int, y2: int, b: Expr = beta) -> Expr:
    """CoPG pair objective (maximised): ℓ = ΔR·Δh − (β/2)Δh² (Flet-Berliac et al. 2024)."""
    d_r = r[y] - r[y2]
    d_h = (log_pi[y] - sp.log(ref[y])) - (log_pi[y2] - sp.log(ref[y2]))
    return d_r * d_h - b / 2 * d_h**2


def pair_objective_squared(log_pi, r, ref, y: int, y2: int, b: Expr = beta) -> Expr:
    """The squared form: −(1/(2β))·(R_β^π(y) − R_β^π(y'))²."""
    rb = regularised_reward(log_pi, r, ref, b)
    return -((rb[y] - rb[y2]) ** 2) / (2 * b)


def pair_gradient(log_pi, r, ref, y: int, y2: int, b: Expr = beta) -> tuple:
    """The paper's gradient (R_β^π(y) − R_β^π(y'))·(s(y) − s(y')), with s(a) = e_a − π."""
    rb = regularised_reward(log_pi, r, ref, b)
    pi = [sp.exp(lp) for lp in log_pi]
    sy, sy2 = sb.score(pi, y), sb.score(pi, y2)
    return tuple((rb[y] - rb[y2]) * (u - v) for u, v in zip(sy, sy2))


def ipo_loss(d_h: Expr = dh, tau: Expr = beta) -> Expr:
    """IPO loss of a preferred/dispreferred pair (Azar et al. 2023): (Δh − 1/(2τ))²."""
    return (d_h - 1 / (2 * tau)) ** 2


# ---------------------------------------------------------------------------------------------
# Exact zero tests
# ---------------------------------------------------------------------------------------------


def is_zero(expr: Expr) -> bool:
    """Decide expr ≡ 0 for expressions rational in exponentials and logarithms of positives.

    Logarithms are expanded (all arguments here are positive), every remaining log atom is
    replaced by a fresh symbol, and the result is cancelled as a rational function. A zero
    found this way is an identity; a non-zero result is confirmed with `sp.simplify`.
    """
    e = sp.expand_log(sp.expand(sp.sympify(expr)), force=True)
    logs = sorted(e.atoms(sp.log), key=sp.default_sort_key)
    e = e.subs({lg: sp.Dummy(f"L{i}") for i, lg in enumerate(logs)})
    e = sp.cancel(sp.together(e))
    return e == 0 or sp.simplify(e) == 0


def _reduce(expr: Expr) -> Expr:
    """0 when `is_zero(expr)`, otherwise the simplified expression (kept for inspection)."""
    return sp.Integer(0) if is_zero(expr) else sp.simplify(expr)


def _theta_to_x(K: int):
    """Softmax logits θ and the substitution θ_a → ln x_a (x_a = e^{θ_a} > 0)."""
    theta = sb.logits(K)
    x = sp.symbols(f"x_1:{K + 1}", positive=True)
    return theta, x, {t: sp.log(v) for t, v in zip(theta, x)}


def _instance(K: int):
    r = sb.reward_symbols(K)
    ref = reference_symbols(K)
    theta, x, to_x = _theta_to_x(K)
    return r, ref, theta, x, to_x, log_softmax(theta)


@functools.lru_cache(maxsize=None)
def loss_forms_residual(K: int, objective=None) -> tuple:
    """ℓ − [−(1/(2β))(R_β^π(y) − R_β^π(y'))² + ΔR²/(2β)] for every ordered pair (y, y'): all 0."""
    objective = pair_objective if objective is None else objective
    r, ref, _, _, _, lp = _instance(K)
    out = []
    for y, y2 in itertools.product(range(K), repeat=2):
        lhs = objective(lp, r, ref, y, y2)
        rhs = pair_objective_squared(lp, r, ref, y, y2) + (r[y] - r[y2]) ** 2 / (2 * beta)
        out.append(_reduce(lhs - rhs))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def pair_gradient_residual(K: int, objective=None) -> tuple:
    """∂ℓ/∂θ_c − (R_β^π(y) − R_β^π(y'))(s(y) − s(y'))_c for softmax logits, every pair and c."""
    objective = pair_objective if objective is None else objective
    r, ref, theta, _, to_x, lp = _instance(K)
    out = []
    for y, y2 in itertools.product(range(K), repeat=2):
        ell = objective(lp, r, ref, y, y2)
        formula = pair_gradient(lp, r, ref, y, y2)
        for c in range(K):
            out.append(sp.diff(ell, theta[c]) - formula[c])
    return tuple(_reduce(e.subs(to_x)) for e in out)


@functools.lru_cache(maxsize=None)
def optimum_residuals(K: int) -> dict:
    """Residuals (all 0) of the optimum's three identities with softmax logits:

    "gradient": ∂J_β/∂θ_c at θ* = ln π_ref + R/β;  "value": J_β(π*) − β ln Σ π_ref e^{R/β};
    "regret_is_kl": J_β(π*) − J_β(π) − β KL(π‖π*) at a generic θ.
    """
    r, ref, theta, x, to_x, lp = _instance(K)
    J = regularised_objective(lp, r, ref)
    star = {t: sp.log(q) + v / beta for t, q, v in zip(theta, ref, r)}
    grad = [sp.diff(J, t).subs(star) for t in theta]
    pstar = optimal_policy(r, ref)
    value = regularised_objective([sp.log(p) for p in pstar], r, ref) - optimal_value(r, ref)
    kl = sp.Add(*[sp.exp(a) * (a - sp.log(p)) for a, p in zip(lp, pstar)])
    regret = optimal_value(r, ref) - J - beta * kl
    return {
        "gradient": tuple(_reduce(g) for g in grad),
        "value": _reduce(value),
        "regret_is_kl": _reduce(regret.subs(to_x)),
    }


def population_objective(K: int, mu1=None, mu2=None, objective=None) -> tuple[Expr, tuple]:
    """L(θ) = Σ_{y,y'} μ1_y μ2_y' ℓ(y, y') with symbolic μ1, μ2; returns (L, θ).

    `objective` (default `pair_objective`) has the signature of `pair_objective`; the tests pass
    deliberately wrong variants to show that the residuals catch them."""
    objective = pair_objective if objective is None else objective
    r, ref, theta, _, _, lp = _instance(K)
    mu1 = sampling_symbols("mu", K) if mu1 is None else mu1
    mu2 = sampling_symbols("nu", K) if mu2 is None else mu2
    total = sp.Add(*[mu1[y] * mu2[y2] * objective(lp, r, ref, y, y2)
                     for y, y2 in itertools.product(range(K), repeat=2)])
    return total, theta


def population_gradient(K: int, mu1=None, mu2=None, objective=None) -> tuple:
    """∇_θ L(θ) by differentiation (μ1, μ2 symbolic, any positive weights)."""
    L, theta = population_objective(K, mu1, mu2, objective)
    return tuple(sp.diff(L, t) for t in theta)


@functools.lru_cache(maxsize=None)
def stationarity_residual(K: int, objective=None) -> tuple:
    """∇_θ L at θ* = ln π_ref + R/β for symbolic μ1, μ2 > 0: every coordinate is 0.

    At π* the regularised reward R_β^{π*}(a) = β ln Σ_c π_ref,c e^{R_c/β} is the same for every
    arm, so each pair's factor R_β(y) − R_β(y') vanishes, whatever the sampling laws."""
    r, ref, theta, _, _, _ = _instance(K)
    star = {t: sp.log(q) + v / beta for t, q, v in zip(theta, ref, r)}
    return tuple(_reduce(g.subs(star)) for g in population_gradient(K, objective=objective))


@functools.lru_cache(maxsize=None)
def population_hessian_residual(K: int) -> sp.Matrix:
    """∇²_θ L − (−β Σ μ1_y μ2_y' (e_y − e_y')(e_y − e_y')ᵀ): the zero matrix.

    The Hessian is constant and negative semi-definite with kernel span(1) when μ1 ⊗ μ2 charges
    a connected set of pairs (full support suffices), so θ* is the unique maximiser up to the
    softmax shift."""
    L, theta = population_objective(K)
    mu1, mu2 = sampling_symbols("mu", K), sampling_symbols("nu", K)
    H = sp.hessian(L, theta)
    target = sp.zeros(K, K)
    for y, y2 in itertools.product(range(K), repeat=2):
        e = sp.Matrix([(1 if c == y else 0) - (1 if c == y2 else 0) for c in range(K)])
        target -= beta * mu1[y] * mu2[y2] * (e * e.T)
    return (H - target).applyfunc(lambda e: _reduce(e))


@functools.lru_cache(maxsize=None)
def onpolicy_residual(K: int, objective=None) -> tuple:
    """Σ_{y,y'} π_y π_y' ∇ℓ(y, y') − 2∇J_β, samples held fixed: every coordinate is 0.

    Conditions: y and y' independent, both from the current π; ∇ acts on ℓ only."""
    objective = pair_objective if objective is None else objective
    r, ref, theta, _, to_x, lp = _instance(K)
    pi = [sp.exp(a) for a in lp]
    J = regularised_objective(lp, r, ref)
    out = []
    for c in range(K):
        mean = sp.Add(*[pi[y] * pi[y2] * sp.diff(objective(lp, r, ref, y, y2), theta[c])
                        for y, y2 in itertools.product(range(K), repeat=2)])
        e = (mean - 2 * sp.diff(J, theta[c])).subs(to_x)
        out.append(_reduce(e))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def through_sampling_difference(K: int) -> tuple:
    """∇_θ [Σ_{y,y'} π_y π_y' ℓ(y, y')] − 2∇J_β: differentiating through the sampling law.

    Not zero in general (the extra term is Σ π_y π_y' ℓ(y,y')(s(y) + s(y'))); returned as
    expressions in x_a = e^{θ_a}, R, π_ref, β for numeric evaluation."""
    r, ref, theta, _, to_x, lp = _instance(K)
    pi = [sp.exp(a) for a in lp]
    L = sp.Add(*[pi[y] * pi[y2] * pair_objective(lp, r, ref, y, y2)
                 for y, y2 in itertools.product(range(K), repeat=2)])
    J = regularised_objective(lp, r, ref)
    return tuple(sp.diff(L - 2 * J, t).subs(to_x) for t in theta)


@functools.lru_cache(maxsize=None)
def rloo_reduction_residual(K: int) -> tuple:
    """For every pair (y1, y2) and coordinate: ∇ℓ − 2·(1/2)Σ_i A_i s(y_i), A = RLOO advantages
    (G = 2) of the regularised rewards R_β^π(y_i). With β = 0 the rewards are R itself, so
    on-policy CoPG is twice the RLOO group estimate with G = 2. All 0."""
    r, ref, theta, _, to_x, lp = _instance(K)
    pi = [sp.exp(a) for a in lp]
    rb = regularised_reward(lp, r, ref)
    out = []
    for y1, y2 in itertools.product(range(K), repeat=2):
        adv = sb.rloo_advantages([rb[y1], rb[y2]])
        s1, s2 = sb.score(pi, y1), sb.score(pi, y2)
        for c in range(K):
            g = sp.diff(pair_objective(lp, r, ref, y1, y2), theta[c])
            rloo = 2 * (adv[0] * s1[c] + adv[1] * s2[c]) / 2
            out.append(_reduce((g - rloo).subs(to_x)))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def rloo_reduction_beta0(K: int) -> tuple:
    """The β = 0 case with the raw rewards: ∇ℓ|_{β=0} − 2·ĝ_RLOO(G=2, rewards R). All 0."""
    r, ref, theta, _, to_x, lp = _instance(K)
    pi = [sp.exp(a) for a in lp]
    out = []
    for y1, y2 in itertools.product(range(K), repeat=2):
        adv = sb.rloo_advantages([r[y1], r[y2]])
        s1, s2 = sb.score(pi, y1), sb.score(pi, y2)
        for c in range(K):
            g = sp.diff(pair_objective(lp, r, ref, y1, y2, b=0), theta[c])
            e = g - (adv[0] * s1[c] + adv[1] * s2[c])
            out.append(_reduce(e.subs(to_x)))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def ipo_reduction_residual() -> Expr:
    """ℓ(ΔR = 1/2, Δh) − [−(β/2)·IPO(Δh; τ = β) + 1/(8β)]: 0.

    With R(y) = −R(y') = 1/4 for the preferred y, CoPG maximisation is IPO minimisation with
    τ = β (scaled by β/2 and shifted by a constant)."""
    ell = sp.Rational(1, 2) * dh - beta / 2 * dh**2
    return sp.simplify(ell - (-beta / 2 * ipo_loss() + 1 / (8 * beta)))


PG_BASELINES = ("none", "value", "soft_value")


def pg_field(K: int, baseline: str, mu=None) -> tuple[tuple, tuple]:
    """Off-policy PG update E_μ̄[(R_β^π(a) − b) ∇_θ ln π_a] from the definition (∇ ln π by
    differentiating the log-softmax); μ̄ symbolic (positive weights). The baseline b is 0
    (`"none"`), the paper's value baseline E_π[R] = Σ_a π_a R_a (`"value"`, Flet-Berliac et al.
    2024, §5, eq. 23–24) or the soft value J_β(π) (`"soft_value"`). Returns (field, θ)."""
    if baseline not in PG_BASELINES:
        raise ValueError(f"baseline must be one of {PG_BASELINES}, got {baseline!r}")
    r, ref, theta, _, _, lp = _instance(K)
    mu = sampling_symbols("m", K) if mu is None else mu
    rb = regularised_reward(lp, r, ref)
    base = {"none": 0, "value": sp.Add(*[sp.exp(lp[a]) * r[a] for a in range(K)]),
            "soft_value": regularised_objective(lp, r, ref)}[baseline]
    field = tuple(sp.Add(*[mu[a] * (rb[a] - base) * sp.diff(lp[a], t) for a in range(K)])
                  for t in theta)
    return field, theta


@functools.lru_cache(maxsize=None)
def pg_field_at_optimum_residuals(K: int) -> dict:
    """The off-policy PG update at θ* = ln π_ref + R/β, for a symbolic sampling law μ̄ on the
    simplex (μ̄_K = 1 − Σ_{a<K} μ̄_a). Since R_β^{π*}(a) = J_β(π*) for every arm, the update with
    a baseline b is (J_β(π*) − b)(μ̄ − π*). Residuals (all 0):

    "soft_value_baseline": the update with b = J_β(π) itself — it vanishes;
    "value_baseline": the update with the paper's b = E_π[R] plus β KL(π*‖π_ref)·(μ̄ − π*) — so
        the update at π* is −β KL(π*‖π_ref)(μ̄ − π*), zero only when μ̄ = π* or π* = π_ref;
    "no_baseline": the update with b = 0 minus J_β(π*)·(μ̄ − π*) — so without a baseline the
        update at π* is J_β(π*)(μ̄ − π*), zero only when μ̄ = π* or J_β(π*) = 0."""
    r, ref, theta, _, _, _ = _instance(K)
    free = sampling_symbols("m", K)
    mu = tuple(free[:-1]) + (1 - sp.Add(*free[:-1]),)
    star = {t: sp.log(q) + v / beta for t, q, v in zip(theta, ref, r)}
    soft, _ = pg_field(K, "soft_value", mu)
    value, _ = pg_field(K, "value", mu)
    without, _ = pg_field(K, "none", mu)
    pstar, jstar = optimal_policy(r, ref), optimal_value(r, ref)
    kl = sp.Add(*[p * sp.log(p / q) for p, q in zip(pstar, ref)])
    return {
        "soft_value_baseline": tuple(_reduce(f.subs(star)) for f in soft),
        "value_baseline": tuple(_reduce(f.subs(star) + beta * kl * (m - p))
                                for f, m, p in zip(value, mu, pstar)),
        "no_baseline": tuple(_reduce(f.subs(star) - jstar * (m - p))
                             for f, m, p in zip(without, mu, pstar)),
    }


@functools.lru_cache(maxsize=None)
def dpo_pair_stationarity_residual() -> Expr:
    """Label-averaged DPO loss of one pair, d/dΔh[−p ln σ(βΔh) − (1 − p) ln σ(−βΔh)] with
    p = σ(ΔR) (Bradley–Terry labels), at Δh = ΔR/β: 0. Every pair is then at its own optimum,
    and Δh(y,y') = ΔR/β for all pairs is exactly θ* = ln π_ref + R/β: DPO's population optimum
    is π* for any full-support μ1, μ2."""
    d_r = sp.Symbol("Delta_R", real=True)
    sig = lambda u: 1 / (1 + sp.exp(-u))  # noqa: E731
    p = sig(d_r)
    loss = -p * sp.log(sig(beta * dh)) - (1 - p) * sp.log(sig(-beta * dh))
    return sp.simplify(sp.diff(loss, dh).subs(dh, d_r / beta))


__all__ += ["rloo_reduction_beta0", "pg_field", "pg_field_at_optimum_residuals",
            "dpo_pair_stationarity_residual"]
