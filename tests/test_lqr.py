"""LQR: the exact recursion against rationals, a NumPy re-implementation, finite differences, the
scalar Riccati closed form and the sampler; validation of unstable and malformed instances."""

import math
import warnings
from fractions import Fraction as Fr

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import lqr as L
from bandits.errors import InputError


def np_objective(A, B, Q, R, S0, W, K, sigma, gamma, H):
    """J_H written out again in NumPy: second moments step by step."""
    S, total = S0.copy(), 0.0
    M = A + B @ K
    for t in range(H):
        total -= gamma**t * (np.trace((Q + K.T @ R @ K) @ S) + sigma**2 * np.trace(R))
        S = M @ S @ M.T + sigma**2 * B @ B.T + W
    return total


def np_from(lqr, theta, sigma):
    d, m = lqr.dims
    th = np.asarray(theta, dtype=np.float64)
    K = th[: d * m].reshape(m, d)
    s = math.exp(th[-1]) if th.size == d * m + 1 else sigma
    arrays = [np.asarray(x) for x in (lqr.A, lqr.B, lqr.Q, lqr.R, lqr.init_cov, lqr.noise_cov)]
    return np_objective(*arrays, K, s, float(lqr.gamma), lqr.horizon)


def fd_gradient(f, x, h=1e-5):
    """Central differences; for a vector-valued f the result's last axis is ∂/∂x_i."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


def test_scalar_recursion_against_rationals():
    a, b, k, q, r, s0, w, sig, g, h = (Fr(1, 2), Fr(1), Fr(-1, 4), Fr(1), Fr(1, 2), Fr(1), Fr(1, 10),
                                        Fr(1, 2), Fr(9, 10), 4)
    S, J = s0, Fr(0)
    for t in range(h):
        J -= g**t * ((q + r * k * k) * S + r * sig * sig)
        S = (a + b * k) ** 2 * S + sig * sig * b * b + w
    lqr = L.make(0.5, 1.0, 1.0, 0.5, h, 0.9, init_cov=1.0, noise_cov=0.1)
    assert float(L.objective(jnp.array([-0.25]), lqr, sigma=0.5)) == pytest.approx(float(J), abs=1e-14)
    # with θ = (K, log σ) the value is the same
    assert float(L.objective(jnp.array([-0.25, math.log(0.5)]), lqr)) == pytest.approx(float(J), abs=1e-14)


def test_scalar_riccati_closed_form_and_stationarity():
    a, b, q, r, g = 1.2, 0.8, 1.0, 0.3, 0.95
    c1 = r - g * q * b * b - g * a * a * r
    p = (-c1 + math.sqrt(c1 * c1 + 4 * g * b * b * q * r)) / (2 * g * b * b)
    k_star = -g * b * p * a / (r + g * b * b * p)
    lqr = L.make(a, b, q, r, 2000, g, noise_cov=0.05)
    k, pp = L.optimal_gain(lqr)
    assert k[0, 0] == pytest.approx(k_star, rel=1e-12) and pp[0, 0] == pytest.approx(p, rel=1e-12)
    grad_inf = jax.grad(L.objective_infinite)(jnp.array([k_star]), lqr, 0.4)
    assert abs(float(grad_inf[0])) < 1e-10
    # finite horizon: J_H → J_∞ and ∇J_H(K*) → 0 as H grows (γ < 1)
    theta = jnp.array([k_star])
    assert float(L.objective(theta, lqr, 0.4)) == pytest.approx(float(L.objective_infinite(theta, lqr, 0.4)), rel=1e-12)
    assert abs(float(L.gradient(theta, lqr, 0.4)[0])) < 1e-9


def _stable_2d(seed):
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(2, 1))
    K = 0.3 * rng.normal(size=(1, 2))
    M = rng.normal(size=(2, 2))
    M *= rng.uniform(0.2, 0.9) / np.max(np.abs(np.linalg.eigvals(M)))
    return M - B @ K, B, K


scalars = st.tuples(st.floats(-1.5, 1.5), st.floats(0.2, 2.0), st.floats(-0.9, 0.9), st.floats(0.0, 2.0),
                    st.floats(0.1, 2.0), st.floats(0.5, 1.0), st.sampled_from([1, 4, 30]), st.floats(0.1, 1.0),
                    st.floats(0.0, 0.5))


@given(scalars)
def test_random_stable_scalar_instances(p):
    a, b, closed, q, r, g, h, sig, w = p
    k = (closed - a) / b
    lqr = L.make(a, b, q, r, h, g, noise_cov=w)
    theta = np.array([k, math.log(sig)])
    L.check_policy(lqr, theta)
    f = lambda th: np_from(lqr, th, None)  # noqa: E731
    assert float(L.objective(theta, lqr)) == pytest.approx(f(theta), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(L.gradient(theta, lqr), fd_gradient(f, theta), rtol=1e-5, atol=1e-6)


@settings(max_examples=10)
@given(st.integers(0, 10_000), st.sampled_from([1, 6, 25]), st.floats(0.6, 1.0))
def test_random_stable_2d_instances(seed, h, g):
    A, B, K = _stable_2d(seed)
    lqr = L.make(A, B, np.diag([1.0, 0.5]), 0.2, h, g, init_cov=np.array([[1.0, 0.2], [0.2, 0.5]]),
                 noise_cov=0.01)
    theta = np.concatenate([K.reshape(-1), [math.log(0.3)]])
    L.check_policy(lqr, theta)
    f = lambda th: np_from(lqr, th, None)  # noqa: E731
    assert float(L.objective(theta, lqr)) == pytest.approx(f(theta), rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(L.gradient(theta, lqr), fd_gradient(f, theta), rtol=1e-5, atol=1e-6)
    hess_fd = fd_gradient(lambda th: fd_gradient(f, th, 1e-4), theta, 1e-4)
    np.testing.assert_allclose(L.hessian(theta, lqr), hess_fd, rtol=1e-4, atol=1e-5)


def test_sampler_matches_the_exact_moments():
    lqr = L.make(0.9, 0.5, 1.0, 0.1, 10, 0.95, init_cov=1.0, noise_cov=0.05)
    theta = jnp.array([-0.6, math.log(0.5)])
    n = 40_000
    tr = L.sample_trajectories(jax.random.key(0), theta, lqr, n)
    assert tr.states.shape == (n, 10, 1) and tr.actions.shape == (n, 10, 1) and tr.rewards.shape == (n, 10)
    ret = np.asarray(L.discounted_return(tr, 0.95))
    assert abs(ret.mean() - float(L.objective(theta, lqr))) < 6 * ret.std() / math.sqrt(n)
    x2 = np.asarray(tr.states[:, -1, 0]) ** 2
    s_last = float(L.second_moments(theta, lqr)[-1, 0, 0])
    assert abs(x2.mean() - s_last) < 6 * x2.std() / math.sqrt(n)


def test_trajectory_score_is_the_gaussian_score():
    lqr = L.make(np.eye(2) * 0.5, np.ones((2, 1)), 1.0, 1.0, 5, 1.0)
    theta = jnp.array([0.1, -0.2, math.log(0.7)])
    tr = jax.tree.map(lambda x: x[0], L.sample_trajectories(jax.random.key(1), theta, lqr, 1))
    K, s = np.array([[0.1, -0.2]]), 0.7
    eps = (np.asarray(tr.actions) - np.asarray(tr.states) @ K.T) / s  # (H, 1)
    want_k = np.sum(eps * np.asarray(tr.states) / s, axis=0)
    want_s = np.sum(eps**2 - 1)
    np.testing.assert_allclose(L.trajectory_score(theta, tr), [*want_k, want_s], rtol=1e-10)


@pytest.mark.parametrize("build, theta, sigma, message", [
    (dict(A=1.1, B=1.0, Q=1, R=1, horizon=200, gamma=1.0), [0.0], 0.5, "not stable"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=100, gamma=1.0), [0.0], 0.5, "not stable"),
    (dict(A=3.0, B=1.0, Q=1, R=1, horizon=20, gamma=1.0), [0.0], 0.5, "not stable"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=50, gamma=1.0), [-0.5], 0.0, "σ must be"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=50, gamma=1.0), [-0.5], -1.0, "σ must be"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=50, gamma=1.0), [float("nan")], 0.5, "finite"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=50, gamma=1.0), [-0.5, float("nan")], None, "finite"),
])
def test_bad_policies(build, theta, sigma, message):
    with pytest.raises(InputError, match=message):
        L.check_policy(L.make(**build), theta, sigma)


@pytest.mark.parametrize("build, message", [
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=0, gamma=1.0), "horizon"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=2.5, gamma=1.0), "horizon"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=5, gamma=0.0), "discount"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=5, gamma=1.5), "discount"),
    (dict(A=1.0, B=1.0, Q=1, R=1, horizon=5, gamma=float("nan")), "discount"),
    (dict(A=float("nan"), B=1.0, Q=1, R=1, horizon=5), "finite"),
    (dict(A=1.0, B=1.0, Q=1, R=0, horizon=5), "positive definite"),
    (dict(A=np.eye(2), B=np.ones((3, 1)), Q=1, R=1, horizon=5), "B must be"),
])
def test_bad_instances(build, message):
    with pytest.raises(InputError, match=message):
        L.make(**build)


def test_short_unstable_horizon_is_finite_and_silent():
    lqr = L.make(1.1, 1.0, 1.0, 1.0, 10, 1.0)
    L.check_policy(lqr, [0.0], 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(float(L.objective(jnp.array([0.0]), lqr, 0.5)))


def test_riccati_refuses_an_unstabilisable_instance():
    with pytest.raises(InputError, match="Riccati"):
        L.optimal_gain(L.make(2.0, 0.0, 1.0, 1.0, 10, 1.0))
