"""Symbolic checks of theory.estimators (docs/design.md §4.1): identities, closed forms, enumeration."""

import functools
import math

import pytest
import sympy as sp

from theory import estimators as T

R = sp.Rational


def _is_zero(x) -> bool:
    return sp.cancel(sp.sympify(x)) == 0


def _all_zero(xs) -> bool:
    return all(_is_zero(x) for x in xs)


# --- score identities -------------------------------------------------------------------------


def test_score_identity_general_K():
    assert T.score_identity_general_K() == 0


def test_score_sq_norm_identity_general_K():
    assert T.score_sq_norm_identity_general_K() == 0


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("kind", ["softmax", "simplex"])
def test_score_identity_concrete_K(K, kind):
    assert T.score_identity(K, kind) == (0,) * K


@pytest.mark.parametrize("K", [2, 3])
def test_score_is_log_derivative_and_gradient_formula(K):
    assert T.score_log_derivative_residual(K) == sp.zeros(K, K)
    assert T.true_gradient_residual(K) == (0,) * K


@pytest.mark.parametrize("K", [2, 3, 4])
def test_score_sq_norm_formula_matches_score(K):
    pi = T.policy(K, "simplex")
    for a in range(K):
        direct = sp.Add(*[x**2 for x in T.score(pi, a)])
        assert _is_zero(direct - T.score_sq_norm(pi, a))


# --- single sample ----------------------------------------------------------------------------


@pytest.mark.parametrize("K", [2, 3])
def test_single_sample_variance_is_trace_of_covariance(K):
    _, V = T.single_sample_variance(K, "simplex")
    assert _is_zero(T.single_sample_covariance(K, "simplex").trace() - V)


@pytest.mark.parametrize("K", [2, 3])
def test_optimal_constant_baseline_is_gradient_weighted_mean(K):
    assert T.optimal_baseline_residual(K) == 0
    _, V = T.single_sample_variance(K, "simplex")
    curvature = sp.diff(V, T.b, 2)
    pi = T.policy(K, "simplex")
    expected = 2 * sp.Add(*[pi[a] * T.score_sq_norm(pi, a) for a in range(K)])
    assert _is_zero(curvature - expected)  # > 0: a parabola with a minimum


def test_optimal_baseline_differs_from_mean_reward_in_general():
    pi = (R(1, 2), R(1, 4), R(1, 4))
    values = dict(zip(T.policy(3, "free"), pi))
    values.update(zip(T.mean_symbols(3), (1, 0, 0)))
    assert T.optimal_constant_baseline(3).subs(values) == R(3, 10)
    assert T.objective(pi, (1, 0, 0)) == R(1, 2)


# --- moment algebra, symbolic G ---------------------------------------------------------------


def test_rloo_pattern_counts():
    G, g2 = T.G, T.g2
    pieces = T.rloo_second_moment_pieces()
    assert _is_zero(pieces["first"] - (G * T.E_X2 + G * (G - 1) * g2))
    assert pieces["cross"] == 0
    assert _is_zero(pieces["double"] - G * (G - 1) * (T.sigma2 * T.Gamma + g2))


def test_rloo_unbiased_and_variance_symbolic_G():
    assert T.rloo_mean_residual() == 0
    assert T.rloo_variance_residual() == 0


def test_grpo_mean_scaled_mean_and_variance_symbolic_G():
    assert T.grpo_mean_mean_residual() == 0
    assert T.grpo_mean_variance_residual() == 0
    ratio = T.grpo_mean_variance_formula() / T.rloo_variance_formula()
    assert _is_zero(ratio - ((T.G - 1) / T.G) ** 2)


def test_reinforce_group_variance_symbolic_G():
    assert T.reinforce_group_variance_residual() == 0
    assert _is_zero(T.group_mean(T.reinforce_terms()) - T.g)


@pytest.mark.parametrize("K", [2, 3])
def test_reinforce_formula_in_moments_is_V_over_G(K):
    pi, m, v = T.policy(K, "simplex"), T.mean_symbols(K), T.second_moment_symbols(K)
    _, V = T.single_sample_variance(K, "simplex")
    formula = T.reinforce_group_variance_formula().subs(T.moment_values(pi, m, v))
    assert _is_zero(formula - V / T.G)


# --- brute-force enumeration ------------------------------------------------------------------


def _closed(formula, K, G, rewards=None, pi=None):
    """A moment-symbol formula evaluated for deterministic rewards (v = r²) at group size G."""
    pi = T.policy(K, "simplex") if pi is None else pi
    r = T.reward_symbols(K) if rewards is None else rewards
    return formula.subs(T.moment_values(pi, r, [x**2 for x in r])).subs(T.G, G)


def _grad(K, pi=None, rewards=None):
    pi = T.policy(K, "simplex") if pi is None else pi
    return T.true_gradient(pi, T.reward_symbols(K) if rewards is None else rewards)


CASES = [(2, 2), (2, 3), (3, 2), (3, 3)]


@pytest.mark.parametrize("K,G", CASES)
def test_enumerated_rloo(K, G):
    mean, trace = T.enumerate_group_moments(T.rloo_advantages, K, G)
    assert _all_zero(x - y for x, y in zip(mean, _grad(K)))
    assert _is_zero(trace - _closed(T.rloo_variance_formula(), K, G))


@pytest.mark.parametrize("K,G", CASES)
def test_enumerated_grpo_mean(K, G):
    mean, trace = T.enumerate_group_moments(T.grpo_mean_advantages, K, G)
    assert _all_zero(x - (1 - R(1, G)) * y for x, y in zip(mean, _grad(K)))
    assert _is_zero(trace - _closed(T.grpo_mean_variance_formula(), K, G))


@pytest.mark.parametrize("K,G", [(2, 1), *CASES])
def test_enumerated_reinforce_constant_baseline(K, G):
    fn = functools.partial(T.reinforce_advantages, b=T.b)
    mean, trace = T.enumerate_group_moments(fn, K, G)
    assert _all_zero(x - y for x, y in zip(mean, _grad(K)))
    _, V = T.single_sample_variance(K, "simplex")
    r = T.reward_symbols(K)
    V = V.subs(dict(zip(T.mean_symbols(K), r))).subs(
        dict(zip(T.second_moment_symbols(K), [x**2 for x in r]))
    )
    assert _is_zero(trace - V / G)


@pytest.mark.parametrize("K,G", CASES)
def test_enumerated_optimal_baseline_loo_unbiased(K, G):
    mean, _ = T.enumerate_group_moments(T.optimal_baseline_loo_advantages, K, G, simplify=None)
    assert _all_zero(x - y for x, y in zip(mean, _grad(K)))


@pytest.mark.parametrize("G", [2, 3])
def test_enumerated_rloo_bernoulli_rewards(G):
    """Stochastic rewards: the Var(R) term includes the within-arm noise."""
    p = sp.symbols("p_1:3", positive=True)
    rewards = [[(1, q), (0, 1 - q)] for q in p]
    pi = T.policy(2, "simplex")
    mean, trace = T.enumerate_group_moments(T.rloo_advantages, 2, G, rewards=rewards)
    assert _all_zero(x - y for x, y in zip(mean, T.true_gradient(pi, p)))
    closed = T.rloo_variance_formula().subs(T.moment_values(pi, p, p)).subs(T.G, G)
    assert _is_zero(trace - closed)


def test_enumerated_grpo_is_not_a_multiple_of_the_gradient():
    pi, r = (R(1, 2), R(1, 3), R(1, 6)), (1, R(1, 2), 0)
    mean, _ = T.enumerate_group_moments(T.grpo_advantages, 3, 3, rewards=r, pi=pi)
    grad = T.true_gradient(pi, r)
    assert sp.simplify(mean[0] * grad[1] - mean[1] * grad[0]) != 0


def test_grpo_all_equal_group_has_zero_advantage():
    assert T.grpo_advantages([R(7, 20)] * 3) == [0, 0, 0]


# --- reference values (docs/design.md §4.1) -----------------------------------------------------------


def test_reference_values_uniform():
    ref = T.reference_values()["uniform"]
    b = T.b
    assert ref["pi"] == (R(1, 3),) * 3
    assert ref["grad"] == (R(2, 9), R(-1, 9), R(-1, 9))
    assert sp.expand(ref["V"] - (R(2, 3) * b**2 - R(4, 9) * b + R(4, 27))) == 0
    assert ref["b_star"] == R(1, 3)


def test_reference_values_skewed():
    ref = T.reference_values()["skewed"]
    assert ref["pi"] == (R(1, 2), R(1, 4), R(1, 4))
    assert ref["mean_reward"] == R(1, 2)
    assert ref["b_star"] == R(3, 10)
    assert ref["V_at"] == {0: R(3, 32), R(3, 10): R(3, 80), R(1, 2): R(1, 16)}


# --- numeric helpers --------------------------------------------------------------------------


def test_numeric_helpers_match_reference():
    ref = T.reference_values()["skewed"]
    pi, m = [float(x) for x in ref["pi"]], [1.0, 0.0, 0.0]
    V = T.numeric_single_sample_variance(3)
    for point, value in ref["V_at"].items():
        assert math.isclose(V(pi, m, m, float(point)), float(value), rel_tol=1e-12)
    assert math.isclose(T.numeric_optimal_constant_baseline(3)(pi, m), 0.3, rel_tol=1e-12)
    grad = T.numeric_true_gradient(3)(pi, m)
    assert all(math.isclose(x, y) for x, y in zip(grad, (0.25, -0.125, -0.125)))


@pytest.mark.parametrize("G", [2, 3])
def test_numeric_helpers_match_enumeration(G):
    pi, r = (R(1, 2), R(1, 3), R(1, 6)), (R(9, 10), R(2, 5), R(1, 10))
    fpi, fr = [float(x) for x in pi], [float(x) for x in r]
    fv = [x * x for x in fr]

    _, trace = T.enumerate_group_moments(T.rloo_advantages, 3, G, rewards=r, pi=pi)
    assert math.isclose(T.numeric_rloo_variance(3)(fpi, fr, fv, G), float(trace), rel_tol=1e-12)

    mean, trace = T.enumerate_group_moments(T.grpo_mean_advantages, 3, G, rewards=r, pi=pi)
    numeric_mean = T.numeric_grpo_mean_mean(3)(fpi, fr, G)
    assert all(math.isclose(x, float(y), rel_tol=1e-12) for x, y in zip(numeric_mean, mean))
    numeric_trace = T.numeric_grpo_mean_variance(3)(fpi, fr, fv, G)
    assert math.isclose(numeric_trace, float(trace), rel_tol=1e-12)
