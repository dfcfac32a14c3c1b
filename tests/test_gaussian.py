"""Gaussian-policy bandit: closed forms pinned to hand-derived values and to quadrature written here."""

from fractions import Fraction as Fr

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandits import gaussian as G
from bandits.errors import InputError

# Gauss–Hermite (probabilists') nodes: exact for polynomials of degree ≤ 2·40 − 1.
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def quad(f, mu, sigma):
    """E[f(a)] for a ~ N(μ, σ²) by quadrature; f maps (n,) nodes to (n, ...)."""
    return np.tensordot(WEIGHTS, f(mu + sigma * NODES), axes=1)


def np_score(a, mu, sigma):
    z = (a - mu) / sigma
    return np.stack([z / sigma, z**2 - 1], axis=-1)


def np_score_jac(a, mu, sigma):
    d = -2 * (a - mu) / sigma**2
    return np.stack([np.stack([np.full_like(a, -1 / sigma**2), d], -1),
                     np.stack([d, -2 * (a - mu) ** 2 / sigma**2], -1)], -2)


def cubic_reference(c, mu, s2):
    """Hand-derived J, ∇J, ∇²J for r = c0 + c1 a + c2 a² + c3 a³, θ = (μ, log σ)."""
    c0, c1, c2, c3 = c
    j = c0 + c1 * mu + c2 * (mu**2 + s2) + c3 * (mu**3 + 3 * mu * s2)
    g = [c1 + 2 * c2 * mu + 3 * c3 * (mu**2 + s2), 2 * s2 * (c2 + 3 * c3 * mu)]
    h = [[2 * c2 + 6 * c3 * mu, 6 * c3 * s2], [6 * c3 * s2, 4 * s2 * (c2 + 3 * c3 * mu)]]
    return j, g, h


def test_cubic_closed_form_against_rationals():
    c = [Fr(1, 2), Fr(-1), Fr(3, 4), Fr(1, 3)]
    mu, sigma = Fr(3, 5), Fr(1, 2)
    j, g, h = cubic_reference(c, mu, sigma**2)
    theta = jnp.array([0.6, np.log(0.5)])
    cc = jnp.array([float(x) for x in c])
    assert float(G.objective(theta, cc)) == pytest.approx(float(j), abs=1e-14)
    np.testing.assert_allclose(G.gradient(theta, cc), [float(x) for x in g], atol=1e-14)
    np.testing.assert_allclose(G.hessian(theta, cc), [[float(x) for x in r] for r in h], atol=1e-14)
    np.testing.assert_allclose(G.fisher(theta), [[4, 0], [0, 2]], atol=1e-14)


def test_mean_only_is_the_mu_block():
    c = jnp.array([0.0, 1.0, -0.5, 0.1])
    full, mean_only = jnp.array([0.4, np.log(0.7)]), jnp.array([0.4])
    np.testing.assert_allclose(G.gradient(mean_only, c, sigma=0.7), G.gradient(full, c)[:1], atol=1e-14)
    np.testing.assert_allclose(G.hessian(mean_only, c, sigma=0.7), G.hessian(full, c)[:1, :1], atol=1e-14)
    np.testing.assert_allclose(G.fisher(mean_only, sigma=0.7), [[1 / 0.49]], atol=1e-13)
    np.testing.assert_allclose(G.score(mean_only, 1.1, sigma=0.7), [0.7 / 0.49], atol=1e-13)


cubic = st.lists(st.floats(-2, 2, allow_nan=False), min_size=4, max_size=4)
mus = st.floats(-2, 2, allow_nan=False)
log_sigmas = st.floats(-1.5, 1.0, allow_nan=False)


@given(cubic, mus, log_sigmas)
def test_random_bandits_closed_forms_match_quadrature_and_hand_formulas(c, mu, w):
    sigma = float(np.exp(w))
    theta, cc = jnp.array([mu, w]), jnp.array(c)
    r = lambda a: np.polynomial.polynomial.polyval(a, c)  # noqa: E731
    j, g, h = cubic_reference(c, mu, sigma**2)
    tol = dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(G.objective(theta, cc), quad(r, mu, sigma), **tol)
    np.testing.assert_allclose(G.gradient(theta, cc), g, **tol)
    np.testing.assert_allclose(G.hessian(theta, cc), h, **tol)
    np.testing.assert_allclose(
        G.gradient(theta, cc), quad(lambda a: r(a)[:, None] * np_score(a, mu, sigma), mu, sigma), **tol)
    uu = lambda a: np_score(a, mu, sigma)[:, :, None] * np_score(a, mu, sigma)[:, None, :]  # noqa: E731
    np.testing.assert_allclose(G.fisher(theta), quad(uu, mu, sigma), **tol)
    np.testing.assert_allclose(
        G.hessian(theta, cc),
        quad(lambda a: r(a)[:, None, None] * (uu(a) + np_score_jac(a, mu, sigma)), mu, sigma), **tol)
    # the score is the derivative of the log density, through JAX
    np.testing.assert_allclose(G.score(theta, 0.37), jax.grad(G.log_prob)(theta, 0.37), **tol)


def test_jit_and_vmap_over_parameters_and_keys():
    c = jnp.array(G.REWARDS["cubic"])
    thetas = jnp.array([[0.0, 0.0], [0.5, -0.3], [-1.0, 0.2]])
    grads = jax.jit(jax.vmap(G.gradient, in_axes=(0, None)))(thetas, c)
    assert grads.shape == (3, 2)
    keys = jax.random.split(jax.random.key(0), 4)
    a = jax.vmap(lambda k: G.sample(k, thetas[1], (5,)))(keys)
    assert a.shape == (4, 5) and a.dtype == jnp.float64


def test_sampler_moments():
    theta = jnp.array([0.5, np.log(2.0)])
    a = np.asarray(G.sample(jax.random.key(3), theta, (200_000,)))
    se = 2.0 / np.sqrt(a.size)
    assert abs(a.mean() - 0.5) < 6 * se
    assert abs(a.var() - 4.0) < 6 * 4.0 * np.sqrt(2 / a.size)


@pytest.mark.parametrize("coeffs, theta, sigma, message", [
    ([0, 1], [0.0], 0.0, "σ must be"),
    ([0, 1], [0.0], -1.0, "σ must be"),
    ([0, 1], [0.0], None, "σ must be"),
    ([0, float("nan")], [0.0, 0.0], None, "finite"),
    ([0, 1], [float("nan"), 0.0], None, "finite"),
    ([0, 1], [0.0, float("inf")], None, "finite"),
    ([0, 1], [0.0, -40.0], None, "σ must lie"),
    ([], [0.0, 0.0], None, "coefficients"),
    ([0, 1], [0.0, 0.0, 1.0], None, "θ must be"),
])
def test_bad_input_is_an_input_error(coeffs, theta, sigma, message):
    with pytest.raises(InputError, match=message):
        G.validate(coeffs, theta, sigma)
