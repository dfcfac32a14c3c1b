"""GPOMDP and the Hessian estimator: exact expectations on bandits, Monte Carlo on LQR through the
one engine, the Hessian-vector product, and planted defects the same checks catch."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import gaussian as G
from bandits import lqr as L
from bandits import rewards as R
from bandits import softmax
from sims import continuous as C
from sims import estimators
from sims import trajectory as T
from sims.engines import montecarlo, stats


def hessian_without_outer(log_prob, theta, traj, gamma, v):
    """Planted defect: B without the ∇Φ ∇log pᵀ term (only ∇²Φ)."""
    return jax.hessian(T.surrogate, argnums=1)(log_prob, theta, traj, gamma).reshape(-1)


def test_reward_to_go_by_hand():
    np.testing.assert_allclose(T.reward_to_go(jnp.array([1.0, 2.0, 4.0]), 0.5), [1 + 1 + 1, 1 + 1, 1])


@settings(max_examples=8)
@given(st.lists(st.floats(-3, 3), min_size=3, max_size=3), st.integers(0, 1000))
def test_softmax_exact_expectations(logits, seed):
    rng = np.random.default_rng(seed)
    model = R.bernoulli(rng.uniform(size=len(logits)))
    th = np.asarray(logits)
    np.testing.assert_allclose(C.softmax_expectation(th, model, "gpomdp"),
                               softmax.gradient(th, model.means), atol=1e-13)
    np.testing.assert_allclose(C.softmax_expectation(th, model, "hessian"),
                               np.asarray(softmax.hessian(th, model.means)).reshape(-1), atol=1e-13)
    v = rng.normal(size=len(logits))
    np.testing.assert_allclose(C.softmax_expectation(th, model, "hessian_vector", v),
                               np.asarray(softmax.hessian(th, model.means)) @ v, atol=1e-13)


@settings(max_examples=8)
@given(st.lists(st.floats(-2, 2), min_size=4, max_size=4), st.floats(-2, 2), st.floats(-1, 0.7))
def test_gaussian_exact_expectations(c, mu, w):
    for theta, sigma in (([mu, w], None), ([mu], math.exp(w))):
        th = jnp.asarray(theta)
        np.testing.assert_allclose(C.gaussian_expectation(th, c, sigma, "gpomdp"), G.gradient(th, jnp.asarray(c), sigma),
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(C.gaussian_expectation(th, c, sigma, "hessian"),
                                   np.asarray(G.hessian(th, jnp.asarray(c), sigma)).reshape(-1), rtol=1e-9, atol=1e-9)


def test_exact_checks_catch_the_planted_defects():
    model = R.bernoulli([0.8, 0.4, 0.1])
    th = np.array([0.3, -0.2, 0.1])
    bad = C.softmax_expectation(th, model, hessian_without_outer)
    assert np.max(np.abs(bad - np.asarray(softmax.hessian(th, model.means)).reshape(-1))) > 1e-2
    c = G.REWARDS["cubic"]
    bad = C.gaussian_expectation(jnp.array([0.3, -0.2]), c, None, hessian_without_outer)
    assert np.max(np.abs(bad - np.asarray(G.hessian(jnp.array([0.3, -0.2]), jnp.asarray(c))).reshape(-1))) > 1e-2


LQR_CASE = dict(A=0.9, B=0.5, Q=1.0, R=0.1, horizon=8, gamma=0.9, noise_cov=0.05)
THETA = [-0.6, math.log(0.5)]


def test_hessian_vector_product_equals_dense_b_times_v():
    lqr = L.make(np.array([[0.9, 0.1], [0.0, 0.7]]), np.array([[0.0], [1.0]]), 1.0, 0.2, 6, 0.95)
    theta = jnp.array([-0.1, -0.3, math.log(0.6)])
    trajs = L.sample_trajectories(jax.random.key(2), theta, lqr, 5)
    v = jnp.array([0.3, -1.0, 0.5])
    pol = T.LQRPolicy()
    run = jax.jit(T.batched, static_argnums=(0, 1))
    dense = run(T.hessian_estimate, pol, theta, trajs, 0.95)
    hvp = run(T.hessian_vector, pol, theta, trajs, 0.95, v)
    np.testing.assert_allclose(hvp, dense @ v, rtol=1e-10, atol=1e-10)
    # and GPOMDP is the score weighted by the rewards-to-go
    tr = jax.tree.map(lambda x: x[0], trajs)
    c = T.reward_to_go(tr.rewards, 0.95)
    per_step = jax.vmap(lambda x, u: jax.grad(L.log_prob)(theta, x, u))(tr.states, tr.actions)
    np.testing.assert_allclose(T.gpomdp(pol, theta, tr, 0.95), c @ per_step, rtol=1e-10)


def test_engine_streams_any_problem_reproducibly():
    lqr = L.make(**LQR_CASE)
    a = C.lqr_moments(lqr, THETA, samples=5_000, seed=4)
    b = C.lqr_moments(lqr, THETA, samples=5_000, seed=4)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert a.cov.shape == (2, 2) and a.batches >= 2 and np.isfinite(a.trace_var_se)
    # the returns stream estimates J_H
    r = C.lqr_returns(lqr, THETA, samples=8_192, seed=5)
    j = float(L.objective(jnp.asarray(THETA), lqr))
    assert stats.z_check("J", r.mean, r.mean_se, [j]).passed


def test_gaussian_group_estimators_exact_vs_engine():
    c, theta = G.REWARDS["quadratic"], [0.2, math.log(0.8)]
    for name, params in (("reinforce", {"baseline": 0.3}), ("rloo", {}), ("grpo_mean", {})):
        ex = C.gaussian_group_exact(estimators.get(name), theta, c, 4, **params)
        mc = C.gaussian_group_mc(estimators.get(name), theta, c, 4, 100_000, seed=3, **params)
        mean = stats.z_check("mean", mc.mean, mc.mean_se, ex["mean"])
        tr = stats.z_check("tr", mc.trace_var, mc.trace_var_se, np.trace(ex["cov"]))
        assert stats.combine(name, [mean, tr]).passed
        # planted defect: a covariance 25% too large is caught
        assert not stats.z_check("tr", mc.trace_var, mc.trace_var_se, 1.25 * np.trace(ex["cov"])).passed
    # the engine is the same one that serves the softmax bandit
    assert montecarlo.stream is C.montecarlo.stream
