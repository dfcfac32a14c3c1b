"""OBLR-PO in symbols: optimal baselines, the bias of the self-inclusive plug-in, the descent
lemma and its SNR step, and the smoothness constant of the softmax bandit (docs/design.md §4.2).

The published algorithm box was not available to us; everything here is derived from the
framework's ingredients (an optimal-baseline estimator and an SNR-driven learning rate) and
labelled "derived (OBLR-PO framework)" in the ledger. Conventions of `theory.estimators`:
π the policy, m_a = E[R|a], v_a = E[R²|a], s(a) = e_a − π, ∇J = π ∘ (m − J).

1. Variance of a group with a constant baseline. V_G(b) = V(b)/G with
   V(b) = E[|s|²(R − b)²] − |∇J|², a parabola in b. dV/db = 0 gives the gradient-weighted mean
   b* = E[|s|²R]/E[|s|²] (`optimal_constant_baseline` of `theory.estimators`, by sympy.solve),
   and V(b) = V(b*) + E|s|²·(b − b*)², so b* = E[R] exactly when Cov(|s|², R) = 0.
   Per coordinate, ĝ_k = (1/G)Σ_i (R_i − b_k) s_k(a_i) has variance
   V_k(b_k)/G = (E[s_k²(R − b_k)²] − (∇J_k)²)/G, minimised at b*_k = E[s_k² R]/E[s_k²].

2. Plug-ins within a group. Leaving the sample out, B_i = Σ_{j≠i} w_j R_j / Σ_{j≠i} w_j with
   w = |s|² is independent of (a_i, R_i), so E[ĝ] = ∇J (score identity). Including the sample,
   B = Σ_j w_j R_j / Σ_j w_j depends on it and E[ĝ] − ∇J = −E[B·(1/G)Σ_i s_i] ≠ 0. A first-order
   (delta-method) expansion of the ratio about (E[wR], E[w]) gives

       E[ĝ] − ∇J = c/G + O(1/G²),     c = −E[|s|²(R − b*) s] / E|s|²,

   and `self_inclusive_bias` computes the exact bias for a concrete small K and G by summing over
   every ordered group.

3. Descent lemma. If J is L-smooth, θ⁺ = θ + ηĝ and E[ĝ] = ∇J, V = tr Cov(ĝ), then
   E[J(θ⁺)] ≥ J + η|∇J|² − (Lη²/2)(|∇J|² + V). The bound is a concave parabola in η; sympy
   maximises it: η* = (1/L)·SNR/(1 + SNR), SNR = |∇J|²/V, and the guaranteed ascent is
   (|∇J|²/2L)·SNR/(1 + SNR).

4. Smoothness. With u = π ∘ d, d = m − J, the Hessian is H = diag(u) − π uᵀ − u πᵀ (symmetric),
   so for a unit vector x:  xᵀHx = Σ_k u_k x_k² − 2(πᵀx)(uᵀx). For rewards in [0, 1]:
     (i)   d_k = Σ_{l≠k} π_l (m_k − m_l), hence |d_k| ≤ 1 − π_k and |u_k| ≤ π_k(1 − π_k) ≤ 1/4;
     (ii)  |u|² ≤ Σ_k π_k²(1 − π_k)² ≤ (1/4) Σ_k π_k(1 − π_k) = (1/4)(1 − |π|²);
     (iii) |πᵀx||uᵀx| ≤ |π||u| ≤ (1/2)·sqrt(|π|²(1 − |π|²)) ≤ 1/4   (t(1 − t) ≤ 1/4).
   Therefore ‖H‖₂ = max_|x|=1 |xᵀHx| ≤ 1/4 + 2·(1/4) = 3/4 =: L (`SMOOTHNESS_L`). The identities
   the argument uses are proved by sympy in `smoothness_identities`; numerically the supremum is
   about 0.19 (two arms), so the bound is valid but not tight (Mei et al. 2020 give 5/2).

5. The U-statistic. For i.i.d. terms g_i with mean ∇J, E[(1/(G(G−1)))Σ_{i≠j}⟨g_i, g_j⟩] = |∇J|²,
   since each pair factorises. For RLOO terms (dependent through the leave-one-out mean) the
   pair moment is E⟨g_i, g_j⟩ = |∇J|²·(1 + 1/(G−1)²) (`rloo_u_statistic_factor`).

References: Williams (1992); Greensmith, Bartlett & Baxter (2004) for optimal baselines;
Kool et al. (2019) RLOO; Mei et al. (2020) softmax PG smoothness; Nesterov (2004) descent lemma.
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import sympy as sp

from theory import estimators as sb

__all__ = [
    "eta", "L", "V", "SNR", "SMOOTHNESS_L",
    "group_variance", "group_optimal_baseline", "group_optimal_baseline_residual",
    "variance_excess", "variance_excess_residual", "moment_form_optimal_baseline",
    "per_coordinate_variance", "per_coordinate_optimal_baseline",
    "per_coordinate_weighted_mean", "per_coordinate_residual",
    "self_inclusive_advantages", "self_inclusive_bias", "self_inclusive_bias_leading",
    "loo_bias",
    "descent_bound", "optimal_step", "optimal_step_formula", "guaranteed_ascent_formula",
    "optimal_step_residuals",
    "hessian", "hessian_residual", "smoothness_identities",
    "rloo_pair_moment", "rloo_u_statistic_factor", "rloo_u_statistic_residual",
    "iid_u_statistic_residual", "rloo_u_statistic_enumerated_residual",
    "numeric_per_coordinate_optimal_baseline", "numeric_self_inclusive_bias_leading",
    "numeric_optimal_step", "numeric_guaranteed_ascent",
]

eta = sp.Symbol("eta", positive=True)  # step size
L = sp.Symbol("L", positive=True)  # smoothness constant
V = sp.Symbol("V", positive=True)  # tr Cov(ĝ)
SNR = sp.Symbol("SNR", nonnegative=True)
SMOOTHNESS_L = sp.Rational(3, 4)  # ‖∇²J‖₂ ≤ 3/4 for the softmax bandit with rewards in [0, 1]

b, G = sb.b, sb.G


# ---------------------------------------------------------------------------------------------
# 1. Constant and per-coordinate baselines
# ---------------------------------------------------------------------------------------------


def group_variance(K: int, kind: str = "free", group_size=G) -> sp.Expr:
    """tr Cov of ĝ = (1/G)Σ_i (R_i − b)s(a_i) over G i.i.d. members: V(b)/G (docs/design.md §4.1)."""
    _, v1 = sb.single_sample_variance(K, kind)
    return v1 / group_size


@functools.lru_cache(maxsize=None)
def group_optimal_baseline(K: int, kind: str = "free") -> sp.Expr:
    """b* solving d/db [V(b)/G] = 0 with sympy.solve (the same for every G)."""
    (root,) = sp.solve(sp.diff(group_variance(K, kind), b), b)
    return sp.cancel(root)


@functools.lru_cache(maxsize=None)
def group_optimal_baseline_residual(K: int, kind: str = "simplex") -> sp.Expr:
    """b*(group) − E[|s|²R]/E|s|² (0)."""
    return sp.cancel(group_optimal_baseline(K, kind) - sb.gradient_weighted_mean(K, kind))


def variance_excess(K: int, kind: str = "free") -> sp.Expr:
    """E|s|²·(b − b*)², the claimed excess V(b) − V(b*)."""
    pi = sb.policy(K, kind)
    gamma = sp.Add(*[pi[a] * sb.score_sq_norm(pi, a) for a in range(K)])
    return gamma * (b - sb.gradient_weighted_mean(K, kind)) ** 2


@functools.lru_cache(maxsize=None)
def variance_excess_residual(K: int, kind: str = "simplex") -> sp.Expr:
    """[V(b) − V(b*)] − E|s|²(b − b*)² (0): V is a parabola with curvature E|s|² about b*."""
    _, v1 = sb.single_sample_variance(K, kind)
    at_star = v1.subs(b, sb.gradient_weighted_mean(K, kind))
    return sp.cancel(sp.together(v1 - at_star - variance_excess(K, kind)))


@functools.lru_cache(maxsize=None)
def moment_form_optimal_baseline() -> tuple[sp.Expr, sp.Expr]:
    """(b*, residual) from the moment form V_G(b) = (E_X2 + 2(μ−b)E_Ys2 + (μ−b)²Γ − g2)/G.

    b* = μ + E[(R−μ)|s|²]/E|s|² = E[|s|²R]/E|s|²: the baseline moves off the mean by the
    covariance of R with |s|² (residual 0 against that formula)."""
    (root,) = sp.solve(sp.diff(sb.reinforce_group_variance_formula(), b), b)
    return sp.simplify(root), sp.simplify(root - (sb.mu + sb.E_Ys2 / sb.Gamma))


def _per_coordinate_parts(K: int, kind: str):
    pi, m, v = sb.policy(K, kind), sb.mean_symbols(K), sb.second_moment_symbols(K)
    grad = sb.true_gradient(pi, m)
    return pi, m, v, grad


@functools.lru_cache(maxsize=None)
def per_coordinate_variance(K: int, kind: str = "free") -> tuple:
    """(b_1..b_K, (V_1, ..., V_K)) with V_k(b_k) = E[s_k²(R − b_k)²] − (∇J_k)², the single-sample
    variance of coordinate k of (R − b_k) s(a). A group of G i.i.d. members divides it by G."""
    pi, m, v, grad = _per_coordinate_parts(K, kind)
    bs = sp.symbols(f"b_1:{K + 1}", real=True)
    out = []
    for k in range(K):
        terms = [pi[a] * sb.score(pi, a)[k] ** 2 * (v[a] - 2 * bs[k] * m[a] + bs[k] ** 2)
                 for a in range(K)]
        out.append(sp.Add(*terms) - grad[k] ** 2)
    return bs, tuple(out)


@functools.lru_cache(maxsize=None)
def per_coordinate_optimal_baseline(K: int, kind: str = "free") -> tuple:
    """b*_k solving dV_k/db_k = 0 for each k (sympy.solve)."""
    bs, vs = per_coordinate_variance(K, kind)
    return tuple(sp.cancel(sp.solve(sp.diff(vk, bk), bk)[0]) for bk, vk in zip(bs, vs))


def per_coordinate_weighted_mean(K: int, kind: str = "free") -> tuple:
    """E[s_k² R]/E[s_k²] = Σ_a π_a s_k(a)² m_a / Σ_a π_a s_k(a)² for each k."""
    pi, m, _, _ = _per_coordinate_parts(K, kind)
    out = []
    for k in range(K):
        w = [pi[a] * sb.score(pi, a)[k] ** 2 for a in range(K)]
        out.append(sp.Add(*[x * y for x, y in zip(w, m)]) / sp.Add(*w))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def per_coordinate_residual(K: int, kind: str = "simplex") -> tuple:
    """b*_k − E[s_k²R]/E[s_k²] for each k (all 0)."""
    return tuple(sp.cancel(x - y) for x, y in
                 zip(per_coordinate_optimal_baseline(K, kind), per_coordinate_weighted_mean(K, kind)))


# ---------------------------------------------------------------------------------------------
# 2. Plug-in baselines inside a group
# ---------------------------------------------------------------------------------------------


def self_inclusive_advantages(rewards: Sequence, weights: Sequence) -> list:
    """A_i = R_i − Σ_j w_j R_j / Σ_j w_j, the sample included (0 baseline if Σ w = 0)."""
    num = sp.Add(*[w * x for w, x in zip(weights, rewards)])
    den = sp.Add(*weights)
    return [r if den == 0 else r - num / den for r in rewards]


def _bias(advantage_fn, K, G_, rewards, pi):
    pi = sb.policy(K, "simplex") if pi is None else tuple(sp.sympify(p) for p in pi)
    rewards = sb.reward_symbols(K) if rewards is None else rewards
    mean, _ = sb.enumerate_group_moments(advantage_fn, K, G_, rewards, pi)
    means = [sum(sp.sympify(x) * q for x, q in sb._arm_outcomes(r)) for r in rewards]
    grad = sb.true_gradient(pi, means)
    return tuple(sp.cancel(x - y) for x, y in zip(mean, grad))


def self_inclusive_bias(K: int, G_: int, rewards: Sequence = None, pi: Sequence = None) -> tuple:
    """Exact E[ĝ] − ∇J of the self-inclusive plug-in, by summing over all ordered groups.

    `rewards[a]` is a reward (deterministic arm) or a list of (value, prob) pairs; `pi` defaults
    to the symbolic simplex policy. Meant for K ≤ 3, G ≤ 3 symbolically, any size numerically
    (with numbers for `pi` and `rewards`)."""
    return _bias(self_inclusive_advantages, K, G_, rewards, pi)


def loo_bias(K: int, G_: int, rewards: Sequence = None, pi: Sequence = None) -> tuple:
    """Exact E[ĝ] − ∇J of the leave-one-out plug-in `optimal_baseline_loo` (all 0)."""
    return _bias(sb.optimal_baseline_loo_advantages, K, G_, rewards, pi)


@functools.lru_cache(maxsize=None)
def self_inclusive_bias_leading(K: int, kind: str = "free") -> tuple:
    """c = −E[|s|²(R − b*) s]/E|s|², the coefficient of 1/G in the self-inclusive bias.

    Derivation: write N = (1/G)Σ w_j R_j, D = (1/G)Σ w_j, S = (1/G)Σ s_i (E S = 0). The bias is
    −E[(N/D)·S]. Expanding N/D = b* + (N − b*D)/E[w] + O_p(1/G) and using independence of
    different members, E[(N − b*D)S] = (1/G)E[w(R − b*) s]; the remainder contributes O(1/G²)."""
    pi, m = sb.policy(K, kind), sb.mean_symbols(K)
    norms = [sb.score_sq_norm(pi, a) for a in range(K)]
    gamma = sp.Add(*[pi[a] * norms[a] for a in range(K)])
    bstar = sb.gradient_weighted_mean(K, kind)
    return tuple(
        -sp.Add(*[pi[a] * norms[a] * (m[a] - bstar) * sb.score(pi, a)[k] for a in range(K)]) / gamma
        for k in range(K)
    )


# ---------------------------------------------------------------------------------------------
# 3. Descent lemma and the SNR step
# ---------------------------------------------------------------------------------------------


def descent_bound(J: sp.Expr = sp.Symbol("J"), grad_sq: sp.Expr = sb.g2) -> sp.Expr:
    """B(η) = J + η|∇J|² − (Lη²/2)(|∇J|² + V), a lower bound on E[J(θ + ηĝ)] when E ĝ = ∇J."""
    return J + eta * grad_sq - L * eta**2 / 2 * (grad_sq + V)


@functools.lru_cache(maxsize=None)
def optimal_step() -> tuple[sp.Expr, sp.Expr]:
    """(η*, guaranteed ascent B(η*) − J): sympy solves dB/dη = 0 (B is concave: d²B/dη² = −L(|∇J|²+V))."""
    bound = descent_bound()
    (root,) = sp.solve(sp.diff(bound, eta), eta)
    return sp.simplify(root), sp.simplify(bound.subs(eta, root) - sp.Symbol("J"))


def optimal_step_formula() -> sp.Expr:
    """η* = (1/L)·SNR/(1 + SNR), SNR = |∇J|²/V."""
    snr = sb.g2 / V
    return snr / (1 + snr) / L


def guaranteed_ascent_formula() -> sp.Expr:
    """(|∇J|²/2L)·SNR/(1 + SNR)."""
    snr = sb.g2 / V
    return sb.g2 / (2 * L) * snr / (1 + snr)


@functools.lru_cache(maxsize=None)
def optimal_step_residuals() -> dict:
    """Residuals of η*, the ascent and the concavity (second derivative + L(|∇J|² + V)): all 0."""
    step, ascent = optimal_step()
    return {
        "step": sp.simplify(step - optimal_step_formula()),
        "ascent": sp.simplify(ascent - guaranteed_ascent_formula()),
        "curvature": sp.simplify(sp.diff(descent_bound(), eta, 2) + L * (sb.g2 + V)),
    }


# ---------------------------------------------------------------------------------------------
# 4. Smoothness of the softmax bandit
# ---------------------------------------------------------------------------------------------


def hessian(pi: Sequence, m: Sequence) -> sp.Matrix:
    """∇²J_kl = π_k(δ_kl − π_l)(m_k − J) − π_k π_l (m_l − J) (docs/design.md §3)."""
    K = len(pi)
    J = sb.objective(pi, m)
    return sp.Matrix(K, K, lambda k, l: pi[k] * ((1 if k == l else 0) - pi[l]) * (m[k] - J)
                     - pi[k] * pi[l] * (m[l] - J))


@functools.lru_cache(maxsize=None)
def hessian_residual(K: int) -> sp.Matrix:
    """∂²J/∂θ_k∂θ_l − `hessian` for π = softmax(θ) with symbolic logits and means (all 0)."""
    theta, m = sb.logits(K), sb.mean_symbols(K)
    pi = sb.softmax(theta)
    J = sb.objective(pi, m)
    H = hessian(pi, m)
    return sp.Matrix(K, K, lambda k, l: sp.simplify(sp.diff(J, theta[k], theta[l]) - H[k, l]))


@functools.lru_cache(maxsize=None)
def smoothness_identities(K: int = 3) -> dict:
    """The algebraic facts behind ‖∇²J‖₂ ≤ 3/4 (module docstring, item 4), as residuals that
    sympy reduces to 0 on the simplex (π_K = 1 − Σ_{a<K} π_a):

    "quadratic_form": xᵀHx − [Σ u_k x_k² − 2(πᵀx)(uᵀx)], u = π∘(m − J);
    "symmetric":      H − Hᵀ;
    "centred_mean":   (m_k − J) − Σ_{l≠k} π_l(m_k − m_l), for each k;
    "quarter":        1/4 − t(1 − t) − (t − 1/2)², so t(1 − t) ≤ 1/4;
    "sum_pq":         Σ_k π_k(1 − π_k) − (1 − |π|²);
    "total":          1/4 + 2·(1/4) − 3/4.
    """
    pi, m = sb.policy(K, "simplex"), sb.mean_symbols(K)
    x = sp.symbols(f"x_1:{K + 1}", real=True)
    H = hessian(pi, m)
    J = sb.objective(pi, m)
    u = [p * (mk - J) for p, mk in zip(pi, m)]
    X = sp.Matrix(x)
    quad = (X.T * H * X)[0, 0]
    dot = lambda a, c: sp.Add(*[s * t for s, t in zip(a, c)])  # noqa: E731
    claimed = sp.Add(*[uk * xk**2 for uk, xk in zip(u, x)]) - 2 * dot(pi, x) * dot(u, x)
    t = sp.Symbol("t", real=True)
    return {
        "quadratic_form": sp.expand(quad - claimed),
        "symmetric": sp.simplify(H - H.T),
        "centred_mean": tuple(
            sp.expand((m[k] - J) - sp.Add(*[pi[l] * (m[k] - m[l]) for l in range(K) if l != k]))
            for k in range(K)),
        "quarter": sp.expand(sp.Rational(1, 4) - t * (1 - t) - (t - sp.Rational(1, 2)) ** 2),
        "sum_pq": sp.expand(sp.Add(*[p * (1 - p) for p in pi]) - (1 - dot(pi, pi))),
        "total": sp.Rational(1, 4) + 2 * sp.Rational(1, 4) - SMOOTHNESS_L,
    }


# ---------------------------------------------------------------------------------------------
# 5. The U-statistic
# ---------------------------------------------------------------------------------------------


def rloo_pair_moment(group_size=G) -> sp.Expr:
    """E⟨g_i, g_j⟩ (i ≠ j) for RLOO terms g_i = A_i s(a_i), from the moment algebra of
    `theory.estimators`: E|Σ_i g_i|² = G²(tr Cov ĝ + |E ĝ|²) and, for one member,
    E|g_1|² = E_X2 + σ²Γ/(G − 1) (A_1 = Y_1 − mean_{k≠1} Y_k, cross term 0 since E Y_k = 0), so

        E⟨g_i, g_j⟩ = (E|Σ g|² − G·E|g_1|²) / (G(G − 1))."""
    n = sp.sympify(group_size)
    total = n**2 * (sb.rloo_variance_formula(n) + sb.g2)
    single = sb.E_X2 + sb.sigma2 * sb.Gamma / (n - 1)
    return sp.simplify((total - n * single) / (n * (n - 1)))


def rloo_u_statistic_factor(group_size=G) -> sp.Expr:
    """E[Û]/|∇J|² for RLOO terms: 1 + 1/(G − 1)²."""
    return 1 + 1 / (sp.sympify(group_size) - 1) ** 2


@functools.lru_cache(maxsize=None)
def rloo_u_statistic_residual() -> sp.Expr:
    """`rloo_pair_moment` − |∇J|²·(1 + 1/(G−1)²) for symbolic G (0)."""
    return sp.simplify(rloo_pair_moment() - sb.g2 * rloo_u_statistic_factor())


def _u_statistic_enumerated(advantage_fn, K, G_, rewards, pi):
    """E[(1/(G(G−1)))Σ_{i≠j}⟨g_i, g_j⟩] by summing over all ordered groups (small K, G)."""
    outcomes = [(a, sp.sympify(x), pi[a] * q) for a in range(K) for x, q in sb._arm_outcomes(rewards[a])]
    scores = [sb.score(pi, a) for a in range(K)]
    norms = [sb.score_sq_norm(pi, a) for a in range(K)]
    total = sp.Integer(0)
    for group in itertools.product(outcomes, repeat=G_):
        arms = [a for a, _, _ in group]
        prob = sp.Mul(*[w for _, _, w in group])
        adv = advantage_fn([x for _, x, _ in group], [norms[a] for a in arms])
        terms = [[A * scores[a][c] for c in range(K)] for A, a in zip(adv, arms)]
        pairs = sp.Add(*[sp.Add(*[s * t for s, t in zip(terms[i], terms[j])])
                         for i in range(G_) for j in range(G_) if i != j])
        total += prob * pairs
    return total / (G_ * (G_ - 1))


def iid_u_statistic_residual(K: int = 2, G_: int = 2, baseline: sp.Expr = b) -> sp.Expr:
    """E[Û] − |∇J|² for i.i.d. terms (R_i − b)s(a_i), symbolic π, deterministic rewards and b (0)."""
    pi, r = sb.policy(K, "simplex"), sb.reward_symbols(K)
    expected = _u_statistic_enumerated(lambda rr, w: sb.reinforce_advantages(rr, w, baseline),
                                       K, G_, r, pi)
    grad = sb.true_gradient(pi, r)
    return sp.factor(sp.cancel(expected - sp.Add(*[x**2 for x in grad])))


def rloo_u_statistic_enumerated_residual(K: int = 2, G_: int = 3) -> sp.Expr:
    """E[Û_RLOO] − (1 + 1/(G−1)²)|∇J|² by enumeration for a concrete K, G (0)."""
    pi, r = sb.policy(K, "simplex"), sb.reward_symbols(K)
    expected = _u_statistic_enumerated(sb.rloo_advantages, K, G_, r, pi)
    grad = sb.true_gradient(pi, r)
    return sp.factor(sp.cancel(expected - rloo_u_statistic_factor(G_) * sp.Add(*[x**2 for x in grad])))


# ---------------------------------------------------------------------------------------------
# Numeric helpers (lambdify): arrays pi (K,), m (K,), v (K,)
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def numeric_per_coordinate_optimal_baseline(K: int):
    """(pi, m) -> (b*_1, ..., b*_K) from the sympy solution."""
    pi, m = list(sb.policy(K, "free")), list(sb.mean_symbols(K))
    f = sp.lambdify([pi, m], list(per_coordinate_optimal_baseline(K, "free")), modules="math")
    return lambda p, mm: tuple(float(x) for x in f(p, mm))


@functools.lru_cache(maxsize=None)
def numeric_self_inclusive_bias_leading(K: int):
    """(pi, m) -> c, the 1/G coefficient of the self-inclusive bias."""
    pi, m = list(sb.policy(K, "free")), list(sb.mean_symbols(K))
    f = sp.lambdify([pi, m], list(self_inclusive_bias_leading(K, "free")), modules="math")
    return lambda p, mm: tuple(float(x) for x in f(p, mm))


@functools.lru_cache(maxsize=None)
def _numeric(expr_name: str):
    step, ascent = optimal_step()
    expr = {"step": step, "ascent": ascent}[expr_name]
    return sp.lambdify([sb.g2, V, L], expr, modules="math")


def numeric_optimal_step(grad_sq: float, variance: float, smoothness: float) -> float:
    """η* = (1/L)·SNR/(1 + SNR) from the sympy solution."""
    return float(_numeric("step")(grad_sq, variance, smoothness))


def numeric_guaranteed_ascent(grad_sq: float, variance: float, smoothness: float) -> float:
    """(|∇J|²/2L)·SNR/(1 + SNR) from the sympy solution."""
    return float(_numeric("ascent")(grad_sq, variance, smoothness))
