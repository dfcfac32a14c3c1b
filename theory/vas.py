"""Reward variance and the policy-gradient norm on the softmax bandit, in symbols (docs/design.md §4.3).

Conventions (docs/design.md §3): K arms, π = softmax(θ), arm a pays R with mean m_a and second moment
v_a; J = Σ_a π_a m_a, d_a = m_a − J, score s(a) = e_a − π, ∇J = π ∘ d = u.

1. Our bounds, for deterministic rewards r (so m = r and Var[R] = Σ_a π_a d_a²):

   (i)  |∇J|² ≥ π_min·Var[R].  Identity: |∇J|² − c·Var[R] = Σ_a π_a(π_a − c)d_a², each term
        ≥ 0 for c = π_min (`pimin_identity`). Holds for any real rewards.
   (ii) |∇J| ≥ Var[R]/√(Σ_a (r_a − t)²) for every constant t, because Σ_a u_a = 0 gives
        Var[R] = Σ_a u_a (r_a − t) (`variance_shift_identity`) and Cauchy–Schwarz (the Lagrange
        identity, `lagrange_identity`). t = J gives the stated bound Var[R]/√(Σ_a(r_a − J)²).
   (iii) For r ∈ [0, 1]: |d_a| ≤ 1 − π_a ≤ 1 (`centred_reward_identity`), hence
        Σ_a (r_a − J)² ≤ K and |∇J| ≥ Var[R]/√K. Taking t = 1/2 instead,
        Σ_a (r_a − 1/2)² = K/4 − Σ_a r_a(1 − r_a) ≤ K/4 (`quarter_identity`), which gives the
        sharper |∇J| ≥ 2·Var[R]/√K; the constant 2 cannot be raised: with K = 2 and r = (1, 0)
        the ratio Var[R]/(√K|∇J|) is exactly 1/2 for every π (`two_arm_ratio`).
        Bounds (i) and (ii) are equalities at the uniform policy (`uniform_equalities`).

2. Stochastic rewards. Var[R] = E_a[Var(R|a)] + Var_a(m_a) (law of total variance,
   `total_variance_residual`). ∇J depends on the means only, so (i)-(iii) hold with the
   between-arm part Var_a(m_a) = Σ_a π_a d_a² in place of Var[R]. Identical arms with Bernoulli(p)
   rewards have Var[R] = p(1 − p) > 0 but ∇J = 0 (`identical_arms`): reward variance alone
   does not imply a gradient.

3. MMR1's Theorem 1 (Leng et al. 2025, "MMR1: Enhancing multimodal reasoning with
   variance-aware sampling and open resources"), as docs/design.md §4.3 records it: if
   |∇J|² ≥ c_min·Var[R] and J is L-smooth, one REINFORCE step θ⁺ = θ + ηĝ with the mean
   baseline gains E[J(θ⁺)] − J(θ) ≥ (η c_min/4)·Var[R]. Here Γ = E_a|s(a)|² = tr F = 1 − |π|²,
   a scalar, in the full K-logit parameterisation. Two step-size conditions are stated apart:

   "main"     η ≤ c_min/(4LΓ)                    (docs/design.md §4.3's wording of the main text);
   "appendix" η ≤ min{1/L, c_min/(2LΓ)}           (our reconstruction of the appendix's
              condition: the largest step for which the descent-lemma argument below closes;
              the published wording could not be retrieved, and the ledger says so).

   The argument: by L-smoothness E[ΔJ] ≥ η|∇J|² − (Lη²/2)E|ĝ|² (`descent_lower_bound`). With
   the main text's factorisation Cov[ĝ] = Var[R]·F (so E|ĝ|² = |∇J|² + Var[R]·Γ for one
   sample) and c_min ≤ |∇J|²/Var[R] ≤ Γ (Cauchy–Schwarz: |E[(R−J)s]|² ≤ Var[R]·E|s|²), either
   condition yields the guarantee (`factorised_margin`). The factorisation is false in general
   (item 4), so the guarantee itself must be checked exactly; the lab does so in `sims.vas`.

   A version that is proved without the factorisation (`repaired_margin`): with
   Γ_R = E[(R − J)²|s|²]/Var[R] (the score norm weighted by the reward variance), a group of
   G i.i.d. samples with the constant baseline b = J has E|ĝ|² = (1 − 1/G)|∇J|² + Γ_R Var[R]/G
   ≤ Γ_R·Var[R] (as |∇J|² ≤ Γ_R Var[R]), so η ≤ c_min/(4LΓ_R) gives E[ΔJ] ≥ (7/8)·η c_min Var[R].

4. MMR1's covariance statements for one sample ĝ = (R − J)s(a) with the mean baseline:
   the main text's factorisation Cov[ĝ] = Var[R]·F and the appendix's lower bound
   λ_min(F)·Var[R]·I ⪯ Cov[ĝ], with F = E[s sᵀ] the Fisher matrix. In the full parameterisation
   F·1 = 0, so λ_min(F) = 0 and the lower bound is vacuous; the statements are read in the
   reduced parameterisation (logits (θ_1, ..., θ_{K−1}, 0), score = the first K − 1 coordinates
   of e_a − π), where F is non-singular. There both fail: K = 3, θ = 0, r = (1, 0, 0) gives
   F = [[2, −1], [−1, 2]]/9, Var[R] = 2/9, Cov[ĝ] = [[2, −1], [−1, 2]]/81, so
   λ_min(Cov) = 1/81 < λ_min(F)·Var[R] = 2/81 (`reduced_counterexample`).

5. Smoothness of the two-armed bandit, used for the sharpest exact test of Theorem 1: with
   K = 2, J = r_2 + (r_1 − r_2)σ(θ_1 − θ_2) and ∇²J = (r_1 − r_2)σ''(x)[[1, −1], [−1, 1]],
   so ‖∇²J‖₂ = 2|r_1 − r_2||σ''(x)| ≤ 2·max|σ''| = 1/(3√3) for rewards in [0, 1]
   (`two_arm_smoothness`). For general K the lab uses `theory.oblrpo.SMOOTHNESS_L`.
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import sympy as sp

from theory import estimators as sb

__all__ = [
    "c", "t", "eta", "L", "c_min", "Gamma", "Gamma_R", "var", "g2", "rho", "tau",
    "centred", "reward_variance", "between_arm_variance", "within_arm_variance",
    "pimin_identity", "variance_shift_identity", "lagrange_identity", "centred_reward_identity",
    "sqrt_k_identity", "quarter_identity", "two_arm_ratio", "uniform_equalities",
    "total_variance_residual", "identical_arms",
    "theorem1_gain", "step_condition", "descent_lower_bound", "factorised_margin",
    "repaired_margin", "cauchy_schwarz_gamma",
    "reduced_score", "reduced_fisher", "reduced_covariance", "reduced_counterexample",
    "two_arm_smoothness", "TWO_ARM_L",
]

c = sp.Symbol("c", real=True)  # a constant in |∇J|² − c·Var[R]
t = sp.Symbol("t", real=True)  # a constant shift of the rewards
eta = sp.Symbol("eta", positive=True)  # step size
L = sp.Symbol("L", positive=True)  # smoothness constant
c_min = sp.Symbol("c_min", positive=True)  # |∇J|² ≥ c_min·Var[R]
Gamma = sp.Symbol("Gamma", positive=True)  # E|s|² (Theorem 1's scalar Γ)
Gamma_R = sp.Symbol("Gamma_R", positive=True)  # E[(R−J)²|s|²]/Var[R]
var = sp.Symbol("Var", positive=True)  # Var[R]
g2 = sp.Symbol("g2", nonnegative=True)  # |∇J|²
rho = sp.Symbol("rho", positive=True)  # c_min/Γ ∈ (0, 1]
tau = sp.Symbol("tau", nonnegative=True)  # η as a fraction of the allowed step, ∈ [0, 1]

Vector = tuple


def _dot(x: Sequence, y: Sequence) -> sp.Expr:
    return sp.Add(*[a * b for a, b in zip(x, y)])


def centred(pi: Sequence, m: Sequence) -> Vector:
    """d_a = m_a − J."""
    J = sb.objective(pi, m)
    return tuple(x - J for x in m)


def reward_variance(pi: Sequence, m: Sequence, v: Sequence) -> sp.Expr:
    """Var[R] = Σ_a π_a v_a − J² (v_a = E[R²|a])."""
    return _dot(pi, v) - sb.objective(pi, m) ** 2


def between_arm_variance(pi: Sequence, m: Sequence) -> sp.Expr:
    """Var_a(m_a) = Σ_a π_a (m_a − J)²; equals Var[R] for deterministic rewards."""
    return sp.Add(*[p * d**2 for p, d in zip(pi, centred(pi, m))])


def within_arm_variance(pi: Sequence, m: Sequence, v: Sequence) -> sp.Expr:
    """E_a[Var(R|a)] = Σ_a π_a (v_a − m_a²)."""
    return sp.Add(*[p * (x - y**2) for p, x, y in zip(pi, v, m)])


# ---------------------------------------------------------------------------------------------
# 1. The bounds
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def pimin_identity(K: int) -> sp.Expr:
    """Residual of |∇J|² − c·Var[R] = Σ_a π_a(π_a − c)(r_a − J)² (simplex policy; 0).

    With c = π_min every term of the right side is ≥ 0, so |∇J|² ≥ π_min·Var[R]."""
    pi, r = sb.policy(K, "simplex"), sb.reward_symbols(K)
    d = centred(pi, r)
    grad = sb.true_gradient(pi, r)
    lhs = _dot(grad, grad) - c * between_arm_variance(pi, r)
    rhs = sp.Add(*[p * (p - c) * x**2 for p, x in zip(pi, d)])
    return sp.expand(lhs - rhs)


@functools.lru_cache(maxsize=None)
def variance_shift_identity(K: int) -> sp.Expr:
    """Residual of Var[R] = Σ_a u_a (r_a − t), u = ∇J = π∘d, for any constant t (0).

    It holds because Σ_a u_a = Σ_a π_a d_a = 0."""
    pi, r = sb.policy(K, "simplex"), sb.reward_symbols(K)
    u = sb.true_gradient(pi, r)
    return sp.expand(between_arm_variance(pi, r) - _dot(u, [x - t for x in r]))


@functools.lru_cache(maxsize=None)
def lagrange_identity(K: int) -> sp.Expr:
    """Residual of |u|²|w|² − (u·w)² = Σ_{a<b} (u_a w_b − u_b w_a)² for free vectors (0):
    Cauchy–Schwarz with its defect written out, so (u·w)² ≤ |u|²|w|²."""
    u = sp.symbols(f"u_1:{K + 1}", real=True)
    w = sp.symbols(f"w_1:{K + 1}", real=True)
    defect = sp.Add(*[(u[a] * w[b] - u[b] * w[a]) ** 2 for a, b in itertools.combinations(range(K), 2)])
    return sp.expand(_dot(u, u) * _dot(w, w) - _dot(u, w) ** 2 - defect)


@functools.lru_cache(maxsize=None)
def centred_reward_identity(K: int) -> Vector:
    """Residuals of r_a − J = Σ_{b≠a} π_b (r_a − r_b) (simplex policy; all 0).

    For r ∈ [0, 1] each |r_a − r_b| ≤ 1, hence |r_a − J| ≤ Σ_{b≠a} π_b = 1 − π_a ≤ 1."""
    pi, r = sb.policy(K, "simplex"), sb.reward_symbols(K)
    d = centred(pi, r)
    return tuple(
        sp.expand(d[a] - sp.Add(*[pi[b] * (r[a] - r[b]) for b in range(K) if b != a]))
        for a in range(K)
    )


@functools.lru_cache(maxsize=None)
def sqrt_k_identity(K: int) -> sp.Expr:
    """Residual of K − Σ_a d_a² = Σ_a (1 − d_a)(1 + d_a) for free d (0); each factor ≥ 0
    when |d_a| ≤ 1, so Σ_a (r_a − J)² ≤ K."""
    d = sp.symbols(f"d_1:{K + 1}", real=True)
    return sp.expand(K - _dot(d, d) - sp.Add(*[(1 - x) * (1 + x) for x in d]))


@functools.lru_cache(maxsize=None)
def quarter_identity(K: int) -> sp.Expr:
    """Residual of K/4 − Σ_a (r_a − 1/2)² = Σ_a r_a(1 − r_a) (0); the right side is ≥ 0 for
    r ∈ [0, 1], so Σ_a (r_a − 1/2)² ≤ K/4 and |∇J| ≥ 2·Var[R]/√K (item 1 (iii))."""
    r = sb.reward_symbols(K)
    half = sp.Rational(1, 2)
    return sp.expand(sp.Rational(K, 4) - sp.Add(*[(x - half) ** 2 for x in r])
                     - sp.Add(*[x * (1 - x) for x in r]))


@functools.lru_cache(maxsize=None)
def two_arm_ratio() -> sp.Expr:
    """Var[R]/(√K·|∇J|) for K = 2, r = (1, 0), π = (x, y)/(x + y), x, y > 0: simplifies to 1/2
    for every policy,
    so the constant 2 of |∇J| ≥ 2Var[R]/√K is the best possible."""
    x, y = sp.symbols("x y", positive=True)
    pi, r = (x / (x + y), y / (x + y)), (sp.Integer(1), sp.Integer(0))
    grad = sb.true_gradient(pi, r)
    norm = sp.sqrt(sp.factor(_dot(grad, grad)))
    return sp.simplify(between_arm_variance(pi, r) / (sp.sqrt(2) * norm))


@functools.lru_cache(maxsize=None)
def uniform_equalities(K: int) -> dict:
    """At the uniform policy both bounds are equalities (residuals 0 for symbolic r):
    "pimin": |∇J|² − (1/K)·Var[R];  "cauchy_schwarz": |∇J|²·Σ_a (r_a − J)² − Var[R]²."""
    pi = tuple([sp.Rational(1, K)] * K)
    r = sb.reward_symbols(K)
    grad = sb.true_gradient(pi, r)
    var_r = between_arm_variance(pi, r)
    d = centred(pi, r)
    return {
        "pimin": sp.expand(_dot(grad, grad) - var_r / K),
        "cauchy_schwarz": sp.expand(_dot(grad, grad) * _dot(d, d) - var_r**2),
    }


# ---------------------------------------------------------------------------------------------
# 2. Stochastic rewards
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def total_variance_residual(K: int) -> sp.Expr:
    """Var[R] − (E_a[Var(R|a)] + Var_a(m_a)) on the simplex (0): the law of total variance."""
    pi, m, v = sb.policy(K, "simplex"), sb.mean_symbols(K), sb.second_moment_symbols(K)
    return sp.expand(reward_variance(pi, m, v) - within_arm_variance(pi, m, v)
                     - between_arm_variance(pi, m))


def identical_arms(K: int = 3, p: sp.Expr = sp.Rational(1, 2), pi: Sequence = None) -> dict:
    """K identical Bernoulli(p) arms: Var[R] = p(1 − p), Var_a(m_a) = 0 and ∇J = 0 for every π."""
    pi = sb.policy(K, "simplex") if pi is None else tuple(sp.sympify(x) for x in pi)
    m = tuple([sp.sympify(p)] * K)
    v = m  # E[R²|a] = p for a Bernoulli reward
    return {
        "var": sp.simplify(reward_variance(pi, m, v)),
        "between": sp.simplify(between_arm_variance(pi, m)),
        "grad": tuple(sp.simplify(x) for x in sb.true_gradient(pi, m)),
    }


# ---------------------------------------------------------------------------------------------
# 3. MMR1's Theorem 1
# ---------------------------------------------------------------------------------------------


def theorem1_gain() -> sp.Expr:
    """The promised one-step gain (η c_min/4)·Var[R]."""
    return eta * c_min * var / 4


def step_condition(condition: str, gamma: sp.Expr = Gamma) -> sp.Expr:
    """The largest step allowed: "main" c_min/(4LΓ); "appendix" min{1/L, c_min/(2LΓ)} (our
    reconstruction, see the module docstring); "repaired" c_min/(4LΓ_R) (pass gamma=Gamma_R)."""
    if condition == "main":
        return c_min / (4 * L * gamma)
    if condition == "appendix":
        return sp.Min(1 / L, c_min / (2 * L * gamma))
    if condition == "repaired":
        return c_min / (4 * L * gamma)
    raise ValueError(f"unknown step-size condition {condition!r}; expected main, appendix or repaired")


def descent_lower_bound(second_moment: sp.Expr) -> sp.Expr:
    """E[J(θ + ηĝ)] − J(θ) ≥ η|∇J|² − (Lη²/2)·E|ĝ|² for an L-smooth J and E[ĝ] = ∇J."""
    return eta * g2 - L * eta**2 / 2 * second_moment


@functools.lru_cache(maxsize=None)
def cauchy_schwarz_gamma(K: int) -> sp.Expr:
    """Residual of Var[R]·Γ − |∇J|² = ½ Σ_{a,b} π_a π_b |d_a s(b) − d_b s(a)|² (deterministic
    rewards, simplex policy; 0). The right side is ≥ 0, so c_min ≤ |∇J|²/Var[R] ≤ Γ = E|s|²."""
    pi, r = sb.policy(K, "simplex"), sb.reward_symbols(K)
    d = centred(pi, r)
    gam = sp.Add(*[p * sb.score_sq_norm(pi, a) for a, p in enumerate(pi)])
    grad = sb.true_gradient(pi, r)
    scores = [sb.score(pi, a) for a in range(K)]
    sos = sp.Add(*[pi[a] * pi[b] * sp.Add(*[(d[a] * scores[b][k] - d[b] * scores[a][k]) ** 2
                                            for k in range(K)])
                   for a in range(K) for b in range(K)]) / 2
    return sp.expand(between_arm_variance(pi, r) * gam - _dot(grad, grad) - sos)


@functools.lru_cache(maxsize=None)
def factorised_margin(condition: str) -> dict:
    """How the descent lemma yields Theorem 1 once E|ĝ|² = |∇J|² + Var[R]·Γ (one sample, the
    main text's factorisation). Write η = τ·η_max(condition), c_min = ρΓ with ρ ∈ (0, 1]
    (c_min ≤ |∇J|²/Var[R] ≤ Γ), g2 = |∇J|² ≥ c_min Var[R]. Returns

    "margin": (descent lower bound − promised gain)/(η Var[R]) at the worst g2 = c_min Var[R]
              (the bound increases with g2 while Lη ≤ 2), a function of τ and ρ;
    "margin_per_c_min": margin/c_min, linear in τ and in ρ;
    "minimum_per_c_min": its minimum over τ, ρ ∈ [0, 1]: 1/2 ("main") and 1/4 ("appendix"),
              both > 0, so under the factorisation either condition gives the guarantee.
    In the "appendix" condition the branch 1/L is never the smaller one, since
    c_min/(2LΓ) ≤ 1/(2L) when c_min ≤ Γ.
    """
    second = g2 + var * Gamma
    bound = descent_lower_bound(second) - theorem1_gain()
    worst = sp.expand((bound / (eta * var)).subs(g2, c_min * var))
    if condition == "main":
        step = tau * c_min / (4 * L * Gamma)
    elif condition == "appendix":
        step = tau * c_min / (2 * L * Gamma)
    else:
        raise ValueError(f"unknown step-size condition {condition!r}")
    margin = sp.expand(worst.subs(eta, step).subs(c_min, rho * Gamma))
    per_c = sp.expand(margin / (rho * Gamma))  # linear in τ and in ρ
    corners = [per_c.subs({tau: tv, rho: rv}) for tv in (0, 1) for rv in (0, 1)]
    return {"margin": margin, "margin_per_c_min": per_c, "minimum_per_c_min": sp.Min(*corners)}


@functools.lru_cache(maxsize=None)
def repaired_margin() -> dict:
    """Theorem 1 with Γ_R = E[(R − J)²|s|²]/Var[R] in place of Γ, proved without the
    factorisation: E|ĝ|² ≤ Γ_R·Var[R] for any group size with baseline J (module docstring,
    item 3). With η = τ c_min/(4LΓ_R), c_min = ρΓ_R (ρ ≤ 1 as |∇J|² ≤ Γ_R Var[R]) the margin
    (descent bound − (η c_min/4)Var[R])/(η Var[R]) at the worst g2 = c_min Var[R] is returned,
    with its value at the full step τ = 1, 5c_min/8 (it decreases in τ), so
    E[ΔJ] ≥ (η c_min/4 + 5η c_min/8)·Var[R] ≥ (η c_min/4)·Var[R]."""
    bound = descent_lower_bound(Gamma_R * var) - theorem1_gain()
    worst = sp.expand((bound / (eta * var)).subs(g2, c_min * var))
    margin = sp.expand(worst.subs(eta, tau * c_min / (4 * L * Gamma_R)).subs(c_min, rho * Gamma_R))
    at_one = sp.factor(margin.subs(tau, 1))
    return {"margin": margin, "at_full_step": at_one,
            "excess_over_five_eighths": sp.factor(at_one - sp.Rational(5, 8) * rho * Gamma_R)}


# ---------------------------------------------------------------------------------------------
# 4. The covariance statements in the reduced parameterisation
# ---------------------------------------------------------------------------------------------


def reduced_score(pi: Sequence, a: int) -> sp.Matrix:
    """s(a) for logits (θ_1, ..., θ_{K−1}, 0): the first K − 1 coordinates of e_a − π."""
    return sp.Matrix(sb.score(pi, a)[:-1])


def reduced_fisher(pi: Sequence) -> sp.Matrix:
    """F = E[s sᵀ] = diag(π') − π'π'ᵀ, π' = (π_1, ..., π_{K−1}) (non-singular inside the simplex)."""
    out = sp.zeros(len(pi) - 1, len(pi) - 1)
    for a, p in enumerate(pi):
        s = reduced_score(pi, a)
        out += p * s * s.T
    return out.applyfunc(sp.simplify)


def reduced_covariance(pi: Sequence, r: Sequence) -> sp.Matrix:
    """Cov[ĝ] for one sample ĝ = (r_a − J)s(a) (mean baseline), reduced parameterisation:
    E[(r_a − J)² s sᵀ] − ∇J∇Jᵀ."""
    d = centred(pi, r)
    second = sp.zeros(len(pi) - 1, len(pi) - 1)
    for a, p in enumerate(pi):
        s = reduced_score(pi, a)
        second += p * d[a] ** 2 * s * s.T
    grad = sp.Matrix(sb.true_gradient(pi, r)[:-1])
    return (second - grad * grad.T).applyfunc(sp.simplify)


@functools.lru_cache(maxsize=None)
def reduced_counterexample(theta: tuple = (0, 0, 0), r: tuple = (1, 0, 0)) -> dict:
    """The docs/design.md §4.3 instance (default K = 3, θ = 0, r = (1, 0, 0)) in exact arithmetic:
    F, Var[R], Cov[ĝ], their smallest eigenvalues, the claimed floor λ_min(F)·Var[R] and the
    factorisation defect Cov − Var[R]·F. Expected: λ_min(Cov) = 1/81, floor = 2/81."""
    theta = tuple(sp.sympify(x) for x in theta)
    r = tuple(sp.sympify(x) for x in r)
    pi = tuple(sp.simplify(p) for p in sb.softmax(theta))
    F = reduced_fisher(pi)
    cov = reduced_covariance(pi, r)
    v = sp.simplify(between_arm_variance(pi, r))
    lam_f = sp.Min(*F.eigenvals().keys())
    lam_c = sp.Min(*cov.eigenvals().keys())
    return {"pi": pi, "fisher": F, "var": v, "cov": cov, "lambda_min_fisher": sp.simplify(lam_f),
            "lambda_min_cov": sp.simplify(lam_c), "floor": sp.simplify(lam_f * v),
            "factorisation_defect": (cov - v * F).applyfunc(sp.simplify)}


# ---------------------------------------------------------------------------------------------
# 5. Smoothness of the two-armed bandit
# ---------------------------------------------------------------------------------------------

TWO_ARM_L = 1 / (3 * sp.sqrt(3))  # ‖∇²J‖₂ ≤ 1/(3√3) for K = 2, rewards in [0, 1]


@functools.lru_cache(maxsize=None)
def two_arm_smoothness() -> dict:
    """K = 2: ∇²J = (r_1 − r_2)σ''(x)·[[1, −1], [−1, 1]], x = θ_1 − θ_2, whose spectral norm is
    2|r_1 − r_2||σ''(x)|. Returns the Hessian residual (0), the critical points of σ'' and
    max|σ''| = √3/18, hence L_2 = 2·√3/18 = 1/(3√3) (`TWO_ARM_L`)."""
    th = sb.logits(2)
    r = sb.reward_symbols(2)
    pi = sb.softmax(th)
    J = sb.objective(pi, r)
    x = sp.Symbol("x", real=True)
    sig = 1 / (1 + sp.exp(-x))
    s2 = sp.diff(sig, x, 2)
    ones = sp.Matrix([[1, -1], [-1, 1]])
    H = sp.hessian(J, th)
    model = (r[0] - r[1]) * s2.subs(x, th[0] - th[1]) * ones
    residual = (H - model).applyfunc(lambda e: sp.simplify(sp.expand(e.rewrite(sp.exp))))
    crit = sp.solve(sp.diff(s2, x), x)
    peak = sp.Max(*[sp.simplify(sp.Abs(s2.subs(x, c0))) for c0 in crit])
    return {"hessian_residual": residual, "critical_points": crit, "max_abs_sigma2": sp.nsimplify(peak),
            "L2": sp.simplify(2 * peak), "L2_minus_claimed": sp.simplify(2 * peak - TWO_ARM_L)}
