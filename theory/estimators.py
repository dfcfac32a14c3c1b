"""Symbolic theory of score-function estimators on the softmax bandit.

Conventions (docs/design.md §3). K arms, logits θ, policy π = softmax(θ). Arm a pays a reward R with mean
m_a = E[R|a] and second moment v_a = E[R²|a]. Objective J = Σ_a π_a m_a, score
s(a) = ∇_θ log π_a = e_a − π with |s(a)|² = 1 − 2π_a + |π|², true gradient ∇J = π ∘ (m − J).
A group is G i.i.d. pairs (a_i, R_i) ~ π and the group estimate is ĝ = (1/G) Σ_i A_i s(a_i).

Three layers, each built on sympy alone:

* closed forms on a concrete K (score identity, single-sample variance V(b), optimal constant
  baseline) with π given either as free symbols, as the simplex coordinates
  (π_K = 1 − Σ_{a<K} π_a) or as the softmax of symbolic logits (see `policy`);
* a moment algebra for symbolic G: an estimator is a sum of index-pattern terms, and E[ĝ], E|ĝ|²
  follow by summing over the set partitions of the indices (equal vs distinct group members),
  each partition weighted by the falling factorial G(G−1)···(G−B+1) for B distinct members;
* a brute-force enumerator over all ordered groups for small K and G, used to confirm the first
  two layers exactly.

References: Williams (1992), REINFORCE; Kool, van Hoof & Welling (2019), "Buy 4 REINFORCE
samples, get a baseline for free!" (RLOO); Shao et al. (2024), DeepSeekMath (GRPO); Liu et al.
(2025), "Understanding R1-Zero-like training" (Dr. GRPO); docs/design.md §4.1 and §4.2.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.utilities.iterables import multiset_partitions

__all__ = [
    "E_X2",
    "E_Ys2",
    "G",
    "Gamma",
    "GroupSum",
    "b",
    "enumerate_group_moments",
    "g",
    "g2",
    "gradient_weighted_mean",
    "group_mean",
    "group_second_moment",
    "group_trace_cov",
    "grpo_advantages",
    "grpo_mean_advantages",
    "grpo_mean_mean_formula",
    "grpo_mean_mean_residual",
    "grpo_mean_terms",
    "grpo_mean_variance_formula",
    "grpo_mean_variance_residual",
    "logits",
    "mean_symbols",
    "moment_values",
    "mu",
    "numeric_grpo_mean_mean",
    "numeric_grpo_mean_variance",
    "numeric_optimal_constant_baseline",
    "numeric_rloo_variance",
    "numeric_single_sample_variance",
    "numeric_true_gradient",
    "objective",
    "optimal_baseline_loo_advantages",
    "optimal_baseline_residual",
    "optimal_constant_baseline",
    "policy",
    "reference_values",
    "reinforce_advantages",
    "reinforce_group_variance_formula",
    "reinforce_group_variance_residual",
    "reinforce_terms",
    "reward_symbols",
    "rloo_advantages",
    "rloo_mean_residual",
    "rloo_second_moment_pieces",
    "rloo_terms",
    "rloo_variance_formula",
    "rloo_variance_residual",
    "score",
    "score_identity",
    "score_identity_general_K",
    "score_log_derivative_residual",
    "score_sq_norm",
    "score_sq_norm_identity_general_K",
    "second_moment_symbols",
    "sigma2",
    "single_sample_covariance",
    "single_sample_variance",
    "softmax",
    "true_gradient",
    "true_gradient_residual",
]

Expr = sp.Expr
Vector = tuple  # a tuple of sympy expressions, one per arm

# ---------------------------------------------------------------------------------------------
# Symbols
# ---------------------------------------------------------------------------------------------

b = sp.Symbol("b", real=True)  # constant baseline
G = sp.Symbol("G", integer=True, positive=True)  # group size

# Single-sample moments of (a, R) ~ π, with Y = R − μ. Used by the symbolic-G moment algebra.
mu = sp.Symbol("mu", real=True)  # E[R] = J
sigma2 = sp.Symbol("sigma2", nonnegative=True)  # Var[R] = E[Y²]
Gamma = sp.Symbol("Gamma", positive=True)  # E|s|²
E_X2 = sp.Symbol("E_X2", nonnegative=True)  # E[|s|² Y²] = E|X|², X = Y s
E_Ys2 = sp.Symbol("E_Ys2", real=True)  # E[Y |s|²] = Cov(R, |s|²)
g2 = sp.Symbol("g2", nonnegative=True)  # |∇J|²
g = sp.Symbol("g")  # stands for the vector ∇J = E[Y s] in expressions linear in it


# ---------------------------------------------------------------------------------------------
# Policies and basic quantities
# ---------------------------------------------------------------------------------------------


def logits(K: int) -> Vector:
    """Symbolic logits θ_1, ..., θ_K."""
    return tuple(sp.symbols(f"theta_1:{K + 1}", real=True))


def softmax(theta: Sequence) -> Vector:
    """π_a = exp(θ_a) / Σ_c exp(θ_c)."""
    weights = [sp.exp(sp.sympify(t)) for t in theta]
    total = sp.Add(*weights)
    return tuple(w / total for w in weights)


def policy(K: int, kind: str = "simplex") -> Vector:
    """Symbolic policy over K arms.

    kind="free":    π_a = pi_a, K independent positive symbols. Every formula of this module is
                    then valid wherever the symbols are evaluated on the simplex (Σπ = 1); this
                    is the form used for lambdify.
    kind="simplex": π_a = pi_a for a < K and π_K = 1 − Σ_{a<K} pi_a. Σπ = 1 holds identically,
                    so identities reduce to polynomial (or rational) zero tests.
    kind="softmax": π = softmax(θ_1, ..., θ_K) with symbolic real logits.
    """
    if kind == "softmax":
        return softmax(logits(K))
    p = sp.symbols(f"pi_1:{K + 1}", positive=True)
    if kind == "free":
        return tuple(p)
    if kind == "simplex":
        return tuple(p[:-1]) + (1 - sp.Add(*p[:-1]),)
    raise ValueError(f"unknown policy kind {kind!r}; expected 'free', 'simplex' or 'softmax'")


def reward_symbols(K: int) -> Vector:
    """Deterministic rewards r_1, ..., r_K."""
    return tuple(sp.symbols(f"r_1:{K + 1}", real=True))


def mean_symbols(K: int) -> Vector:
    """Arm means m_a = E[R | a]."""
    return tuple(sp.symbols(f"m_1:{K + 1}", real=True))


def second_moment_symbols(K: int) -> Vector:
    """Arm second moments v_a = E[R² | a]."""
    return tuple(sp.symbols(f"v_1:{K + 1}", nonnegative=True))


def score(pi: Sequence, a: int) -> Vector:
    """s(a) = ∇_θ log π_a = e_a − π (softmax score; Williams 1992)."""
    return tuple((1 if c == a else 0) - p for c, p in enumerate(pi))


def score_sq_norm(pi: Sequence, a: int) -> Expr:
    """|s(a)|² = 1 − 2π_a + |π|² (docs/design.md §3; uses Σπ = 1 only through s(a) = e_a − π)."""
    return 1 - 2 * pi[a] + sp.Add(*[p**2 for p in pi])


def objective(pi: Sequence, m: Sequence) -> Expr:
    """J = Σ_a π_a m_a."""
    return sp.Add(*[p * x for p, x in zip(pi, m)])


def true_gradient(pi: Sequence, m: Sequence) -> Vector:
    """∇J = π ∘ (m − J) (softmax policy gradient; docs/design.md §3)."""
    J = objective(pi, m)
    return tuple(p * (x - J) for p, x in zip(pi, m))


def moment_values(pi: Sequence, m: Sequence, v: Sequence) -> dict:
    """Values of the moment symbols (mu, sigma2, Gamma, E_X2, E_Ys2, g2) for one policy.

    With Y = R − μ: μ = Σπ_a m_a, σ² = Σπ_a v_a − μ², Γ = Σπ_a|s_a|²,
    E_X2 = Σπ_a|s_a|²(v_a − 2μ m_a + μ²), E_Ys2 = Σπ_a|s_a|²(m_a − μ), g2 = |∇J|².
    """
    K = len(pi)
    J = objective(pi, m)
    norms = [score_sq_norm(pi, a) for a in range(K)]
    weighted = lambda f: sp.Add(*[pi[a] * norms[a] * f(a) for a in range(K)])
    return {
        mu: J,
        sigma2: sp.Add(*[p * x for p, x in zip(pi, v)]) - J**2,
        Gamma: weighted(lambda a: 1),
        E_X2: weighted(lambda a: v[a] - 2 * J * m[a] + J**2),
        E_Ys2: weighted(lambda a: m[a] - J),
        g2: sp.Add(*[x**2 for x in true_gradient(pi, m)]),
    }


# ---------------------------------------------------------------------------------------------
# Score identities
# ---------------------------------------------------------------------------------------------

_a = sp.Symbol("a", integer=True, positive=True)
_c = sp.Symbol("c", integer=True, positive=True)
_K = sp.Symbol("K", integer=True, positive=True)
_pi = sp.IndexedBase("pi")


def _general_K(summand: Expr) -> Expr:
    """Σ_{a=1}^K summand for a general K, with the free index c in 1..K and Σ_a π[a] = 1."""
    total = sp.expand(sp.Sum(summand, (_a, 1, _K))).doit()
    total = sp.refine(total, sp.Q.le(_c, _K))
    total = sp.factor_terms(sp.expand(total))
    return sp.simplify(total.subs(sp.Sum(_pi[_a], (_a, 1, _K)), 1))


@functools.cache
def score_identity_general_K() -> Expr:
    """Residual of Σ_a π_a s(a)_c = 0 for symbolic K (Williams 1992; docs/design.md §4.1).

    With s(a)_c = δ_ac − π_c: Σ_a π_a(δ_ac − π_c) = π_c − π_c Σ_a π_a = 0. Returns the
    simplified residual, which is 0.
    """
    return _general_K(_pi[_a] * (sp.KroneckerDelta(_a, _c) - _pi[_c]))


@functools.cache
def score_sq_norm_identity_general_K() -> Expr:
    """Residual of Σ_c (δ_ac − π_c)² = 1 − 2π_a + Σ_c π_c² for symbolic K (0).

    The sum runs over the coordinate (bound variable a); the arm is the free index c.
    """
    lhs = _general_K((sp.KroneckerDelta(_a, _c) - _pi[_a]) ** 2)
    rhs = 1 - 2 * _pi[_c] + sp.Sum(_pi[_a] ** 2, (_a, 1, _K))
    return sp.simplify(lhs - rhs)


@functools.cache
def score_identity(K: int, kind: str = "softmax") -> Vector:
    """Residual vector Σ_a π_a s(a) for a concrete K (0 for every coordinate)."""
    pi = policy(K, kind)
    return tuple(
        sp.simplify(sp.Add(*[pi[a] * score(pi, a)[c] for a in range(K)])) for c in range(K)
    )


@functools.cache
def score_log_derivative_residual(K: int) -> sp.Matrix:
    """Matrix ∂ log π_a / ∂θ_c − s(a)_c for π = softmax(θ) (all zero)."""
    theta = logits(K)
    pi = softmax(theta)
    return sp.Matrix(
        K, K, lambda a, c: sp.simplify(sp.diff(sp.log(pi[a]), theta[c]) - score(pi, a)[c])
    )


@functools.cache
def true_gradient_residual(K: int) -> Vector:
    """∂J/∂θ_c − π_c(m_c − J) for π = softmax(θ) and symbolic means (all zero)."""
    theta = logits(K)
    pi = softmax(theta)
    m = mean_symbols(K)
    J = objective(pi, m)
    grad = true_gradient(pi, m)
    return tuple(sp.simplify(sp.diff(J, theta[c]) - grad[c]) for c in range(K))


# ---------------------------------------------------------------------------------------------
# Single sample with a constant baseline
# ---------------------------------------------------------------------------------------------


@functools.cache
def single_sample_covariance(K: int, kind: str = "free") -> sp.Matrix:
    """Cov[(R − b) s(a)] = E[(R − b)² s sᵀ] − ∇J ∇Jᵀ (docs/design.md §4.1).

    E[(R − b)² | a] = v_a − 2b m_a + b²; symbols m_a, v_a from `mean_symbols`,
    `second_moment_symbols`, baseline `b`, policy from `policy(K, kind)`.
    """
    pi, m, v = policy(K, kind), mean_symbols(K), second_moment_symbols(K)
    second = sp.zeros(K, K)
    for a in range(K):
        s = sp.Matrix(score(pi, a))
        second += pi[a] * (v[a] - 2 * b * m[a] + b**2) * (s * s.T)
    grad = sp.Matrix(true_gradient(pi, m))
    return second - grad * grad.T


@functools.cache
def single_sample_variance(K: int, kind: str = "free") -> tuple[sp.Symbol, Expr]:
    """(b, V) with V(b) = tr Cov = Σ_a π_a |s_a|² (v_a − 2b m_a + b²) − |∇J|².

    Williams (1992) REINFORCE with a constant baseline b; docs/design.md §4.1. A group of G independent
    samples has tr Cov = V(b)/G. Symbols as in `single_sample_covariance`.
    """
    pi, m, v = policy(K, kind), mean_symbols(K), second_moment_symbols(K)
    V = sp.Add(
        *[pi[a] * score_sq_norm(pi, a) * (v[a] - 2 * b * m[a] + b**2) for a in range(K)]
    ) - sp.Add(*[x**2 for x in true_gradient(pi, m)])
    return b, V


@functools.cache
def optimal_constant_baseline(K: int, kind: str = "free") -> Expr:
    """b* solving dV/db = 0 (sympy.solve); V is a parabola in b (docs/design.md §4.2)."""
    _, V = single_sample_variance(K, kind)
    (root,) = sp.solve(sp.diff(V, b), b)
    return sp.cancel(root)


def gradient_weighted_mean(K: int, kind: str = "free") -> Expr:
    """E[|s|² R] / E[|s|²] = Σ_a π_a|s_a|² m_a / Σ_a π_a|s_a|² (docs/design.md §4.2)."""
    pi, m = policy(K, kind), mean_symbols(K)
    norms = [pi[a] * score_sq_norm(pi, a) for a in range(K)]
    return sp.Add(*[w * x for w, x in zip(norms, m)]) / sp.Add(*norms)


@functools.cache
def optimal_baseline_residual(K: int, kind: str = "simplex") -> Expr:
    """b* − E[|s|²R]/E[|s|²], simplified (0)."""
    return sp.cancel(optimal_constant_baseline(K, kind) - gradient_weighted_mean(K, kind))


# ---------------------------------------------------------------------------------------------
# Moment algebra for a symbolic group size G
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupSum:
    """coef · Σ_{indices} Π_{x ∈ ys} Y_x · s_{vec}, Y_x = R_x − μ, summed over group members.

    `indices` are the summation indices (each runs over 1..G), `distinct` lists the pairs that
    must differ (e.g. j ≠ i), `ys` the indices carrying a factor Y (repeats allowed) and `vec`
    the index of the score vector. A constant factor (e.g. μ − b) goes into `coef`.
    """

    coef: Expr
    indices: tuple
    ys: tuple = ()
    vec: str = ""
    distinct: tuple = ()


def _scalar_moment(n: int) -> Expr:
    """E[Y^n]."""
    return {0: sp.Integer(1), 1: sp.Integer(0), 2: sigma2}.get(n, sp.Symbol(f"E_Y{n}"))


def _sq_norm_moment(n: int) -> Expr:
    """E[Y^n |s|²]."""
    return {0: Gamma, 1: E_Ys2, 2: E_X2}.get(n, sp.Symbol(f"E_Y{n}s2"))


def _vector_moment(n: int) -> Expr:
    """E[Y^n s] as a placeholder: 0 (score identity), g = ∇J, or a named vector."""
    return {0: sp.Integer(0), 1: g}.get(n, sp.Symbol(f"E_Y{n}s"))


def _inner(n: int, k: int) -> Expr:
    """⟨E[Y^n s], E[Y^k s]⟩."""
    if n == 0 or k == 0:
        return sp.Integer(0)
    if n == k == 1:
        return g2
    n, k = sorted((n, k))
    return sp.Symbol(f"<E_Y{n}s,E_Y{k}s>")


def _patterns(indices: Sequence, distinct: Sequence):
    """Set partitions of `indices` (which members coincide) compatible with `distinct`."""
    for blocks in multiset_partitions(list(indices)):
        where = {x: k for k, block in enumerate(blocks) for x in block}
        if all(where[x] != where[y] for x, y in distinct):
            yield len(blocks), where


def _ys_per_block(ys: Sequence, where: dict, n_blocks: int) -> list:
    counts = [0] * n_blocks
    for x in ys:
        counts[where[x]] += 1
    return counts


def _term_mean(t: GroupSum) -> Expr:
    total = sp.Integer(0)
    for n_blocks, where in _patterns(t.indices, t.distinct):
        counts = _ys_per_block(t.ys, where, n_blocks)
        value = _vector_moment(counts[where[t.vec]])
        for k in range(n_blocks):
            if k != where[t.vec]:
                value *= _scalar_moment(counts[k])
        total += sp.ff(G, n_blocks) * value
    return t.coef * total


def _rename(t: GroupSum, suffix: str) -> GroupSum:
    r = lambda x: x + suffix
    return GroupSum(
        t.coef,
        tuple(map(r, t.indices)),
        tuple(map(r, t.ys)),
        r(t.vec),
        tuple((r(x), r(y)) for x, y in t.distinct),
    )


def _pair_moment(t: GroupSum, u: GroupSum) -> Expr:
    """E⟨t, u⟩ for two group sums."""
    u = _rename(u, "'")
    total = sp.Integer(0)
    for n_blocks, where in _patterns(t.indices + u.indices, t.distinct + u.distinct):
        counts = _ys_per_block(t.ys + u.ys, where, n_blocks)
        bt, bu = where[t.vec], where[u.vec]
        if bt == bu:
            value = _sq_norm_moment(counts[bt])
        else:
            value = _inner(counts[bt], counts[bu])
        for k in range(n_blocks):
            if k not in (bt, bu):
                value *= _scalar_moment(counts[k])
        total += sp.ff(G, n_blocks) * value
    return t.coef * u.coef * total


def group_mean(terms: Sequence[GroupSum]) -> Expr:
    """E[ĝ] for ĝ = Σ terms, as a multiple of the placeholder g = ∇J (plus named vectors)."""
    return sp.factor(sp.expand_func(sp.Add(*[_term_mean(t) for t in terms])))


def group_second_moment(
    terms: Sequence[GroupSum], others: Sequence[GroupSum] | None = None
) -> Expr:
    """E⟨Σ terms, Σ others⟩ (E|ĝ|² when others is None), counted over index patterns."""
    others = terms if others is None else others
    total = sp.Add(*[_pair_moment(t, u) for t in terms for u in others])
    return sp.factor(sp.expand_func(total))


def group_trace_cov(terms: Sequence[GroupSum]) -> Expr:
    """tr Cov(ĝ) = E|ĝ|² − |E ĝ|², with |g|² written g2."""
    mean = sp.expand(group_mean(terms))
    mean_sq = sp.expand(mean**2).subs(g**2, g2)
    return sp.factor(sp.expand(group_second_moment(terms) - mean_sq))


def reinforce_terms(baseline: Expr = b) -> tuple:
    """ĝ = (1/G) Σ_i (R_i − b) s_i = (1/G) Σ_i Y_i s_i + ((μ − b)/G) Σ_i s_i (Williams 1992)."""
    return (
        GroupSum(1 / G, ("i",), ("i",), "i"),
        GroupSum((mu - baseline) / G, ("i",), (), "i"),
    )


def rloo_terms() -> tuple:
    """RLOO (Kool et al. 2019): A_i = R_i − (1/(G−1)) Σ_{j≠i} R_j = Y_i − (1/(G−1)) Σ_{j≠i} Y_j.

    ĝ = (1/G) Σ_i X_i − (1/(G(G−1))) Σ_i Σ_{j≠i} Y_j s_i with X_i = Y_i s_i.
    """
    return (
        GroupSum(1 / G, ("i",), ("i",), "i"),
        GroupSum(-1 / (G * (G - 1)), ("i", "j"), ("j",), "i", (("i", "j"),)),
    )


def grpo_mean_terms() -> tuple:
    """Group mean including the sample (Dr. GRPO, Liu et al. 2025): A_i = Y_i − (1/G) Σ_j Y_j.

    ĝ = (1/G) Σ_i Y_i s_i − (1/G²) Σ_i Σ_j Y_j s_i.
    """
    return (
        GroupSum(1 / G, ("i",), ("i",), "i"),
        GroupSum(-1 / G**2, ("i", "j"), ("j",), "i"),
    )


def reinforce_group_variance_formula(baseline: Expr = b) -> Expr:
    """tr Cov = V(b)/G with V(b) = E[|s|²(R − b)²] − |∇J|²
    = E_X2 + 2(μ − b)E_Ys2 + (μ − b)²Γ − g2 (Williams 1992; docs/design.md §4.1)."""
    c = mu - baseline
    return (E_X2 + 2 * c * E_Ys2 + c**2 * Gamma - g2) / G


@functools.cache
def reinforce_group_variance_residual() -> Expr:
    """Derived tr Cov of the constant-baseline group estimator minus V(b)/G (0)."""
    derived = group_trace_cov(reinforce_terms())
    return sp.simplify(derived - reinforce_group_variance_formula())


def rloo_variance_formula(group_size: Expr = G) -> Expr:
    """tr Cov(ĝ_RLOO) = (1/G)[E(|s|²(R−μ)²) + E|s|²·Var(R)/(G−1) − |∇J|²(G−2)/(G−1)].

    Kool et al. (2019) estimator; closed form of docs/design.md §4.1 in the moment symbols
    E_X2, Gamma, sigma2, g2.
    """
    n = group_size
    return (E_X2 + Gamma * sigma2 / (n - 1) - g2 * (n - 2) / (n - 1)) / n


@functools.cache
def rloo_second_moment_pieces() -> dict:
    """The three pieces of E|ĝ_RLOO|², counted over index patterns for symbolic G.

    With S1 = Σ_i X_i and S2 = Σ_i Σ_{j≠i} Y_j s_i:
    "first" = E|S1|² = G E|X|² + G(G−1)|g|², "cross" = E⟨S1, S2⟩ = 0,
    "double" = E|S2|² = G(G−1)(σ²Γ + |g|²).
    """
    s1, s2 = rloo_terms()
    s1 = GroupSum(1, s1.indices, s1.ys, s1.vec, s1.distinct)
    s2 = GroupSum(1, s2.indices, s2.ys, s2.vec, s2.distinct)
    return {
        "first": group_second_moment([s1]),
        "cross": group_second_moment([s1], [s2]),
        "double": group_second_moment([s2]),
    }


@functools.cache
def rloo_mean_residual() -> Expr:
    """E[ĝ_RLOO] − ∇J for symbolic G (0: RLOO is unbiased)."""
    return sp.simplify(group_mean(rloo_terms()) - g)


@functools.cache
def rloo_variance_residual() -> Expr:
    """Derived tr Cov(ĝ_RLOO) minus `rloo_variance_formula`, for symbolic G (0)."""
    return sp.simplify(group_trace_cov(rloo_terms()) - rloo_variance_formula())


def grpo_mean_mean_formula(group_size: Expr = G) -> Expr:
    """E[ĝ_grpo_mean] = (1 − 1/G)∇J (docs/design.md §4.1), as a multiple of g."""
    return (1 - 1 / sp.sympify(group_size)) * g


@functools.cache
def grpo_mean_mean_residual() -> Expr:
    """Derived E[ĝ_grpo_mean] − (1 − 1/G)∇J for symbolic G (0)."""
    return sp.simplify(group_mean(grpo_mean_terms()) - grpo_mean_mean_formula())


def grpo_mean_variance_formula(group_size: Expr = G) -> Expr:
    """tr Cov(ĝ_grpo_mean) = ((G−1)/G)² · tr Cov(ĝ_RLOO)
    = ((G−1)/G³)[(G−1)E_X2 + σ²Γ − (G−2)|∇J|²].

    Y_i − Ȳ = ((G−1)/G)(Y_i − mean of the others), so the estimator is a scaled RLOO.
    """
    n = sp.sympify(group_size)
    return (n - 1) / n**3 * ((n - 1) * E_X2 + sigma2 * Gamma - (n - 2) * g2)


@functools.cache
def grpo_mean_variance_residual() -> Expr:
    """Derived tr Cov(ĝ_grpo_mean) minus `grpo_mean_variance_formula`, symbolic G (0)."""
    return sp.simplify(group_trace_cov(grpo_mean_terms()) - grpo_mean_variance_formula())


# ---------------------------------------------------------------------------------------------
# Group advantages (sympy) and the brute-force enumerator
# ---------------------------------------------------------------------------------------------


def reinforce_advantages(rewards: Sequence, weights: Sequence | None = None, b: Expr = 0) -> list:
    """A_i = R_i − b (Williams 1992)."""
    return [r - b for r in rewards]


def rloo_advantages(rewards: Sequence, weights: Sequence | None = None) -> list:
    """A_i = R_i − (1/(G−1)) Σ_{j≠i} R_j (Kool et al. 2019)."""
    n, total = len(rewards), sp.Add(*rewards)
    return [r - (total - r) / (n - 1) for r in rewards]


def grpo_mean_advantages(rewards: Sequence, weights: Sequence | None = None) -> list:
    """A_i = R_i − mean(R) (Dr. GRPO, Liu et al. 2025)."""
    mean = sp.Add(*rewards) / len(rewards)
    return [r - mean for r in rewards]


def grpo_advantages(rewards: Sequence, weights: Sequence | None = None, eps: Expr = 0) -> list:
    """A_i = (R_i − mean(R)) / (std(R, ddof=1) + eps) (Shao et al. 2024).

    A group whose centred rewards are all identically zero gets advantage 0.
    """
    centred = grpo_mean_advantages(rewards)
    if all(sp.simplify(x) == 0 for x in centred):
        return [sp.Integer(0)] * len(rewards)
    std = sp.sqrt(sp.Add(*[x**2 for x in centred]) / (len(rewards) - 1))
    return [x / (std + eps) for x in centred]


def optimal_baseline_loo_advantages(rewards: Sequence, weights: Sequence) -> list:
    """A_i = R_i − Σ_{j≠i} w_j R_j / Σ_{j≠i} w_j with w_j = |s_j|² (docs/design.md §4.2).

    The baseline is 0 when the denominator is identically 0.
    """
    out = []
    for i, r in enumerate(rewards):
        num = sp.Add(*[w * x for j, (w, x) in enumerate(zip(weights, rewards)) if j != i])
        den = sp.Add(*[w for j, w in enumerate(weights) if j != i])
        out.append(r if den == 0 else r - num / den)
    return out


def _arm_outcomes(reward) -> list:
    """A deterministic reward r gives [(r, 1)]; a sequence of (value, prob) pairs is kept."""
    if isinstance(reward, (list, tuple)):
        return [(sp.sympify(x), sp.sympify(q)) for x, q in reward]
    return [(sp.sympify(reward), sp.Integer(1))]


def enumerate_group_moments(
    advantage_fn: Callable,
    K: int,
    G: int,
    rewards: Sequence | None = None,
    pi: Sequence | None = None,
    simplify: Callable | None = sp.cancel,
) -> tuple[Vector, Expr]:
    """Exact (E[ĝ], tr Cov(ĝ)) by summing over all ordered groups (a_i, R_i), i = 1..G.

    ĝ = (1/G) Σ_i A_i s(a_i) with A = advantage_fn(rewards, weights), weights_i = |s(a_i)|².
    `rewards[a]` is a reward expression (deterministic arm) or a sequence of (value, prob)
    pairs; default `reward_symbols(K)`. `pi` defaults to `policy(K, "simplex")`.
    `simplify` is applied to every returned expression (None: returned as summed); with
    rational advantages (optimal_baseline_loo) and a symbolic policy, cancelling the trace is
    slow for K = G = 3, so pass None there and simplify only what is needed.
    Cost is (Σ_a #outcomes_a)^G terms: meant for K ≤ 3, G ≤ 3.
    """
    simplify = simplify or (lambda x: x)
    pi = policy(K, "simplex") if pi is None else tuple(sp.sympify(p) for p in pi)
    rewards = reward_symbols(K) if rewards is None else rewards
    outcomes = [(a, x, pi[a] * q) for a in range(K) for x, q in _arm_outcomes(rewards[a])]
    scores = [score(pi, a) for a in range(K)]
    norms = [score_sq_norm(pi, a) for a in range(K)]
    mean = [sp.Integer(0)] * K
    second = sp.Integer(0)
    for group in itertools.product(outcomes, repeat=G):
        arms = [a for a, _, _ in group]
        prob = sp.Mul(*[w for _, _, w in group])
        adv = advantage_fn([x for _, x, _ in group], [norms[a] for a in arms])
        ghat = [sp.Add(*[A * scores[a][c] for A, a in zip(adv, arms)]) / G for c in range(K)]
        mean = [m + prob * x for m, x in zip(mean, ghat)]
        second += prob * sp.Add(*[x**2 for x in ghat])
    mean = tuple(simplify(x) for x in mean)
    return mean, simplify(second - sp.Add(*[x**2 for x in mean]))


# ---------------------------------------------------------------------------------------------
# Reference values (docs/design.md §4.1)
# ---------------------------------------------------------------------------------------------


def _instance(theta: Sequence, r: Sequence) -> dict:
    K = len(theta)
    pi = tuple(sp.simplify(p) for p in softmax(theta))
    values = {p: x for p, x in zip(policy(K, "free"), pi)}
    values.update(zip(mean_symbols(K), r))
    values.update(zip(second_moment_symbols(K), [x**2 for x in r]))
    _, V = single_sample_variance(K)
    return {
        "logits": tuple(theta),
        "rewards": tuple(r),
        "pi": pi,
        "grad": tuple(sp.simplify(x) for x in true_gradient(pi, r)),
        "mean_reward": objective(pi, r),
        "V": sp.expand(V.subs(values)),
        "b_star": sp.simplify(optimal_constant_baseline(K).subs(values)),
    }


@functools.cache
def reference_values() -> dict:
    """Exact reference instances of docs/design.md §4.1 (K = 3, deterministic r = (1, 0, 0)).

    Computed here from the general formulas; each entry has logits, rewards, pi, grad (∇J),
    mean_reward (E[R]), V (single-sample V(b), a polynomial in `b`), b_star and V_at ({b: V(b)}).
    Expected: "uniform" θ = 0: ∇J = (2/9, −1/9, −1/9), V(b) = 2b²/3 − 4b/9 + 4/27, b* = 1/3.
    "skewed" θ = (ln 2, 0, 0): E[R] = 1/2, b* = 3/10, V(0) = 3/32, V(1/2) = 1/16, V(3/10) = 3/80.
    """
    one, zero = sp.Integer(1), sp.Integer(0)
    cases = {
        "uniform": _instance((zero, zero, zero), (one, zero, zero)),
        "skewed": _instance((sp.log(2), zero, zero), (one, zero, zero)),
    }
    for case in cases.values():
        points = {sp.Integer(0), case["mean_reward"], case["b_star"]}
        case["V_at"] = {p: case["V"].subs(b, p) for p in sorted(points)}
    return cases


# ---------------------------------------------------------------------------------------------
# Numeric helpers (lambdify, math module): arrays pi (K,), m (K,), v (K,), group size G
# ---------------------------------------------------------------------------------------------


def _free_args(K: int) -> tuple:
    return list(policy(K, "free")), list(mean_symbols(K)), list(second_moment_symbols(K))


def _moment_closed_form(K: int, formula: Expr) -> Expr:
    pi, m, v = _free_args(K)
    return formula.subs(moment_values(pi, m, v))


def _scalar(f: Callable) -> Callable:
    return functools.wraps(f)(lambda *args: float(f(*args)))


def _vector(f: Callable) -> Callable:
    return functools.wraps(f)(lambda *args: tuple(float(x) for x in f(*args)))


@functools.cache
def numeric_true_gradient(K: int) -> Callable:
    """(pi, m) -> ∇J = π ∘ (m − J) as a tuple of floats."""
    pi, m, _ = _free_args(K)
    return _vector(sp.lambdify([pi, m], list(true_gradient(pi, m)), modules="math"))


@functools.cache
def numeric_single_sample_variance(K: int) -> Callable:
    """(pi, m, v, b) -> V(b) = Σ π_a|s_a|²(v_a − 2b m_a + b²) − |∇J|²."""
    pi, m, v = _free_args(K)
    _, V = single_sample_variance(K, "free")
    return _scalar(sp.lambdify([pi, m, v, b], V, modules="math"))


@functools.cache
def numeric_optimal_constant_baseline(K: int) -> Callable:
    """(pi, m) -> b* = Σ π_a|s_a|² m_a / Σ π_a|s_a|²."""
    pi, m, _ = _free_args(K)
    return _scalar(sp.lambdify([pi, m], gradient_weighted_mean(K, "free"), modules="math"))


@functools.cache
def numeric_rloo_variance(K: int) -> Callable:
    """(pi, m, v, G) -> tr Cov(ĝ_RLOO) from `rloo_variance_formula` (G ≥ 2)."""
    pi, m, v = _free_args(K)
    expr = _moment_closed_form(K, rloo_variance_formula())
    return _scalar(sp.lambdify([pi, m, v, G], expr, modules="math"))


@functools.cache
def numeric_grpo_mean_variance(K: int) -> Callable:
    """(pi, m, v, G) -> tr Cov(ĝ_grpo_mean) from `grpo_mean_variance_formula` (G ≥ 1)."""
    pi, m, v = _free_args(K)
    expr = _moment_closed_form(K, grpo_mean_variance_formula())
    return _scalar(sp.lambdify([pi, m, v, G], expr, modules="math"))


@functools.cache
def numeric_grpo_mean_mean(K: int) -> Callable:
    """(pi, m, G) -> E[ĝ_grpo_mean] = (1 − 1/G) π ∘ (m − J) as a tuple of floats."""
    pi, m, _ = _free_args(K)
    scale = 1 - 1 / G
    expr = [scale * x for x in true_gradient(pi, m)]
    return _vector(sp.lambdify([pi, m, G], expr, modules="math"))
