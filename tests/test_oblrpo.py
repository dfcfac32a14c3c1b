"""OBLR-PO: theory residuals, the exact/Monte Carlo checks behind every `oblrpo.*` claim (each with
a planted defect it must catch), the SNR step rule and bad input."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import rewards as R
from bandits import softmax
from bandits.errors import InputError
from sims import estimators, oblrpo
from sims.claims import oblrpo as C
from theory import estimators as sb
from theory import oblrpo as T

seeds = st.integers(0, 2**32 - 1)


def instances(seed, n, k=(3,)):
    rng = np.random.default_rng(seed)
    return [C.random_instance(rng, k) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# theory
# ---------------------------------------------------------------------------------------------


def test_symbolic_baselines_and_step():
    assert T.group_optimal_baseline_residual(3) == 0
    assert T.variance_excess_residual(3) == 0
    assert T.moment_form_optimal_baseline()[1] == 0
    assert T.per_coordinate_residual(3) == (0, 0, 0)
    assert all(v == 0 for v in T.optimal_step_residuals().values())
    step, ascent = T.optimal_step()
    assert sp.simplify(step - sb.g2 / (T.L * (sb.g2 + T.V))) == 0
    # planted defect: the symbolic residual is not zero for E[R] passed off as b*
    pi, m = sb.policy(3, "simplex"), sb.mean_symbols(3)
    assert sp.cancel(T.group_optimal_baseline(3, "simplex") - sb.objective(pi, m)) != 0
    # planted defect: a step off by a factor 2 is not the maximiser
    assert sp.simplify(2 * step - T.optimal_step_formula()) != 0


def test_symbolic_smoothness_and_u_statistic():
    res = T.smoothness_identities(3)
    assert res["quadratic_form"] == 0 and res["quarter"] == 0 and res["sum_pq"] == 0
    assert all(x == 0 for x in res["centred_mean"]) and res["total"] == 0
    assert T.hessian_residual(2) == sp.zeros(2, 2)
    assert T.rloo_u_statistic_residual() == 0
    assert T.iid_u_statistic_residual(2, 2) == 0
    assert T.rloo_u_statistic_enumerated_residual(2, 3) == 0
    assert T.loo_bias(2, 2) == (0, 0)
    assert any(sp.simplify(x) != 0 for x in T.self_inclusive_bias(2, 2))


def test_reference_instance_of_design():
    """θ = (ln 2, 0, 0), r = (1, 0, 0): b* = 3/10 ≠ E[R] = 1/2, V(1/2) − V(3/10) = E|s|²·(1/5)²."""
    ref = sb.reference_values()["skewed"]
    assert ref["b_star"] == sp.Rational(3, 10) and ref["mean_reward"] == sp.Rational(1, 2)
    gap = ref["V_at"][sp.Rational(1, 2)] - ref["V_at"][sp.Rational(3, 10)]
    assert gap == sp.Rational(1, 16) - sp.Rational(3, 80)


# ---------------------------------------------------------------------------------------------
# oblrpo.optimal_baseline
# ---------------------------------------------------------------------------------------------


@settings(max_examples=6)
@given(seeds)
def test_optimal_baseline_minimises_grid(seed):
    assert C.verify_optimal_baseline(instances(seed, 1), grid=201).holds


def test_optimal_baseline_planted_mean_reward_is_caught():
    def mean_reward(logits, m):
        return float(np.asarray(softmax.policy(logits)) @ m)

    out = C.verify_optimal_baseline(instances(1, 2), grid=201, baseline_fn=mean_reward)
    assert not out.holds and out.counterexample is not None


@settings(max_examples=4)
@given(seeds)
def test_per_coordinate_baseline(seed):
    inst = instances(seed, 1)
    assert C.verify_optimal_baseline_coord(inst, grid=201).holds
    logits, model = inst[0]
    pi = np.asarray(softmax.policy(logits))
    np.testing.assert_allclose(oblrpo.optimal_constant_baseline_coord(logits, model.means),
                               T.numeric_per_coordinate_optimal_baseline(3)(pi, model.means), atol=1e-12)
    # planted: the scalar b* used for every coordinate is not the per-coordinate minimiser
    scalar = lambda th, m: np.full(len(th), float(softmax.optimal_constant_baseline(th, m)))  # noqa: E731
    assert not C.verify_optimal_baseline_coord(inst, grid=201, baseline_fn=scalar).holds


# ---------------------------------------------------------------------------------------------
# oblrpo.loo_unbiased
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def self_inclusive_registered():
    est = estimators.Estimator(name="test_self_inclusive", advantages=oblrpo.self_inclusive_baseline, summary="", property=estimators.BIASED)
    estimators.register(est)
    yield est.name
    estimators.unregister(est.name)


@settings(max_examples=5)
@given(seeds)
def test_loo_unbiased(seed):
    out = C.verify_loo_unbiased(instances(seed, 1), groups=(2, 4))
    assert out.holds
    lo, hi = out.measured["trVar(LOO)/trVar(b*) range per G"]["G=2"]
    assert lo >= 1.0 - 1e-9  # the oracle constant b* is at least as good as its plug-in


def test_loo_planted_self_inclusive_is_caught(self_inclusive_registered):
    out = C.verify_loo_unbiased(instances(2, 1), groups=(2, 4), estimator=self_inclusive_registered)
    assert not out.holds


# ---------------------------------------------------------------------------------------------
# oblrpo.self_inclusive_bias
# ---------------------------------------------------------------------------------------------


@settings(max_examples=4)
@given(seeds)
def test_self_inclusive_bias_is_order_one_over_G(seed):
    rng = np.random.default_rng(seed)
    assert C.verify_self_inclusive_bias([C._deterministic_instance(rng)], (16, 32, 64)).holds


def test_self_inclusive_bias_planted_wrong_constant_is_caught():
    rng = np.random.default_rng(5)
    inst = [C._deterministic_instance(rng)]
    double = lambda pi, m: 2 * np.asarray(T.numeric_self_inclusive_bias_leading(3)(pi, m))  # noqa: E731
    assert not C.verify_self_inclusive_bias(inst, (16, 32, 64), leading_fn=double).holds


def test_self_inclusive_bias_sympy_matches_engine():
    pi = (sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(1, 6))
    rewards = ([(0, sp.Rational(1, 2)), (1, sp.Rational(1, 2))], 0, 1)
    sym = np.array([float(x) for x in T.self_inclusive_bias(3, 2, rewards, pi)])
    model = R.categorical([[0.0, 1.0], [0.0], [1.0]], [[0.5, 0.5], [1.0], [1.0]])
    num = oblrpo.exact_self_inclusive_bias(np.log([0.5, 1 / 3, 1 / 6]), model, 2)
    np.testing.assert_allclose(num, sym, atol=1e-14)
    assert np.linalg.norm(num) > 1e-3


# ---------------------------------------------------------------------------------------------
# oblrpo.optimal_step
# ---------------------------------------------------------------------------------------------


@settings(max_examples=5)
@given(seeds)
def test_optimal_step(seed):
    assert C.verify_optimal_step(instances(seed, 1)).holds


@pytest.mark.parametrize("factor", [2.0, 0.5, 1.05])
def test_optimal_step_planted_factor_is_caught(factor):
    wrong = lambda g2, v, L: factor * T.numeric_optimal_step(g2, v, L)  # noqa: E731
    assert not C.verify_optimal_step(instances(3, 1), step_fn=wrong).holds


def test_descent_lemma_planted_too_small_L_is_caught():
    # with L far below the true smoothness the "lower bound" overshoots the exact ascent
    out = C.verify_optimal_step(instances(4, 2), smoothness=0.01)
    assert not out.holds


# ---------------------------------------------------------------------------------------------
# oblrpo.u_statistic
# ---------------------------------------------------------------------------------------------


@settings(max_examples=5)
@given(seeds)
def test_u_statistic_exact(seed):
    assert C.verify_u_statistic(instances(seed, 1), (2, 4)).holds


def test_u_statistic_planted_defects_are_caught():
    inst = instances(6, 1)
    assert not C.verify_u_statistic(inst, (2, 4), stat=C.u_with_diagonal).holds
    assert not C.verify_u_statistic(inst, (2, 4), rloo_factor=lambda g: 1.0).holds


def test_u_statistic_monte_carlo_and_planted_diagonal():
    logits, model = np.array([0.5, -0.3, 0.2]), R.bernoulli([0.9, 0.2, 0.5])
    assert C.mc_u_statistic(logits, model, 4, 50_000, seed=11).passed
    assert not C.mc_u_statistic(logits, model, 4, 50_000, seed=11, stat=C.u_with_diagonal).passed


# ---------------------------------------------------------------------------------------------
# oblrpo.smoothness
# ---------------------------------------------------------------------------------------------


@settings(max_examples=5)
@given(seeds)
def test_smoothness_bound(seed):
    out = C.verify_smoothness(100, seed)
    assert out.holds and out.measured["max spectral norm found"] <= 0.75


def test_smoothness_planted_small_bound_is_refuted():
    out = C.verify_smoothness(200, 0, bound=0.15, search=3)
    assert not out.holds and out.counterexample is not None


# ---------------------------------------------------------------------------------------------
# the SNR step rule
# ---------------------------------------------------------------------------------------------

terms_st = st.integers(2, 7).flatmap(lambda g: st.lists(
    st.lists(st.floats(-2, 2), min_size=3, max_size=3), min_size=g, max_size=g))


@given(terms_st)
def test_u_statistic_and_covariance_formulas(terms):
    x = np.asarray(terms)
    n = len(x)
    pairs = sum(x[i] @ x[j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    u = float(oblrpo.u_statistic(jnp.asarray(x)))
    v = float(oblrpo.sample_trace_cov(jnp.asarray(x)))
    assert u == pytest.approx(pairs, abs=1e-10)
    assert v == pytest.approx(np.trace(np.cov(x.T, ddof=1)) if n > 1 else 0.0, abs=1e-10)
    assert u == pytest.approx(np.sum(x.mean(0) ** 2) - v / n, abs=1e-10)
    # the batch pool of one group is that group's SNR
    assert float(oblrpo.batch_snr(jnp.asarray(x)[None])) == pytest.approx(
        float(oblrpo.snr_estimate(jnp.asarray(x))), rel=1e-9, abs=1e-12)


@given(st.floats(-5, 1e6), st.floats(0, 1), st.floats(1e-3, 10))
def test_snr_step_clip(snr, lo_frac, eta_max):
    eta_min = lo_frac * eta_max
    eta = float(oblrpo.snr_step(snr, eta_min, eta_max))
    assert eta_min - 1e-12 <= eta <= eta_max + 1e-12
    expected = np.clip(eta_max * max(snr, 0) / (1 + max(snr, 0)), eta_min, eta_max)
    assert eta == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_snr_step_edge_cases():
    assert float(oblrpo.snr_step(jnp.inf, 0.1, 2.0)) == 2.0
    assert float(oblrpo.snr_step(-3.0, 0.1, 2.0)) == 0.1
    zeros = jnp.zeros((4, 3))
    assert float(oblrpo.snr_estimate(zeros)) == 0.0  # all-equal group: no signal, no NaN
    assert float(oblrpo.snr_estimate(jnp.ones((4, 3)))) == np.inf


@pytest.mark.parametrize("lo, hi, message", [(-0.1, 1.0, "eta_min"), (2.0, 1.0, "inverted"),
                                             (0.0, 0.0, "eta_max"), (0.0, -1.0, "eta_max"),
                                             (0.0, float("nan"), "finite"), ("a", 1.0, "finite")])
def test_step_bounds_bad_input(lo, hi, message):
    with pytest.raises(InputError, match=message):
        oblrpo.validate_step_bounds(lo, hi)


def test_exact_bad_input():
    model = R.bernoulli([0.5, 0.2])
    with pytest.raises(InputError, match="at least 2"):
        oblrpo.exact_self_inclusive_bias(np.zeros(2), model, 1)
    with pytest.raises(InputError, match="logits"):
        oblrpo.exact_u_statistic(np.zeros(3), model, 2)
    with pytest.raises(InputError, match="unknown estimator"):
        oblrpo.exact_u_statistic(np.zeros(2), model, 2, estimators.get("ppo"))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        R.bernoulli([1.5, 0.2])


def test_between_group_u_statistic_is_unbiased_for_any_estimator():
    """Independent group estimates are i.i.d.: Û over ĝ_1..ĝ_B has mean |E ĝ|² even for the
    biased GRPO (Monte Carlo against the exact mean, Holm z-test); keeping the diagonal fails."""
    import jax

    from sims.engines import montecarlo, stats

    logits, model = np.array([0.4, -0.2, 0.0]), R.bernoulli([0.7, 0.1, 0.4])
    mean, _ = oblrpo.exact_mean_and_trace_var(logits, model, 3, estimators.get("grpo"))
    target = float(mean @ mean)
    g = montecarlo.sample_group_gradients(estimators.get("grpo"), jnp.asarray(logits), model.tables(),
                                          {"eps": 1e-6}, jax.random.key(5), (40_000, 4, 3))
    u = np.asarray(oblrpo.between_group_u_statistic(g))
    diag = np.asarray(jnp.sum(jnp.mean(g, axis=1) ** 2, axis=-1))
    se = lambda x: x.std(ddof=1) / np.sqrt(len(x))  # noqa: E731
    assert stats.z_check("U", u.mean(), se(u), target).passed
    assert not stats.z_check("U with diagonal", diag.mean(), se(diag), target).passed
