"""The gpytorch path of Bayesian policy gradients: the kernels against NumPy, the posterior equal to
the JAX closed form at a fixed noise (1e-8, float64), and the fitted noise at the maximum of a
marginal likelihood written out here in NumPy."""

import numpy as np
import pytest
import torch

from bandits.errors import InputError
from sims.bpg import gpytorch_path as bg
from sims.bpg import quadrature as bpg

torch.set_num_threads(1)


def _instance(seed, m=12, n=3):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(m, n)) * rng.uniform(0.5, 2.0, n)
    r = 1.0 + rng.normal(size=m) + s[:, 0] ** 2 - s[:, -1]
    b = rng.normal(size=(n, n))
    return s, r, b @ b.T + n * np.eye(n)


def test_kernels_match_numpy():
    s, _, g = _instance(0, m=5)
    gi = np.linalg.inv(g)
    t = torch.as_tensor(s, dtype=torch.float64)
    fk = bg.FisherKernel(g)
    np.testing.assert_allclose(fk(t).to_dense().numpy(), s @ gi @ s.T, rtol=1e-12)
    np.testing.assert_allclose(fk(t, diag=True).numpy(), np.einsum("ij,jk,ik->i", s, gi, s), rtol=1e-12)
    # the pseudo-inputs G e_j: k(g_j, u_i) = u_ij and k(g_j, g_l) = G_jl
    tg = torch.as_tensor(g, dtype=torch.float64)
    np.testing.assert_allclose(fk(tg, t).to_dense().numpy(), s.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fk(tg).to_dense().numpy(), g, rtol=1e-12)
    qk = bg.QuadraticFisherKernel(g)
    x = torch.cat([t, torch.zeros(5, 1, dtype=torch.float64)], 1)
    flag = torch.cat([torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)], 1)
    np.testing.assert_allclose(qk(x).to_dense().numpy(), (1 + s @ gi @ s.T) ** 2, rtol=1e-12)
    z = 1 + np.einsum("ij,jk,ik->i", s, gi, s)
    np.testing.assert_allclose(qk(x, flag).to_dense().numpy()[:, 0], z, rtol=1e-12)
    np.testing.assert_allclose(qk(flag).to_dense().numpy(), [[4.0]], rtol=0)  # z_0 = 1 + n
    both = torch.cat([x, flag])
    np.testing.assert_allclose(qk(both, diag=True).numpy(), np.diag(qk(both).to_dense().numpy()), rtol=1e-12)


CASES = [(seed, model, noise) for seed in (1, 2) for model in (1, 2) for noise in (0.05, 1.0)]


@pytest.mark.parametrize("seed, model, noise", CASES)
def test_fixed_noise_posterior_equals_jax(seed, model, noise):
    s, r, g = _instance(seed)
    gp = bg.posterior(s, r, g, model, noise)
    mean, cov = bpg.posterior(s, r, g, model, noise)
    assert gp.noise == noise and not gp.fitted and gp.jitter_warnings == ()
    np.testing.assert_allclose(gp.mean, mean, rtol=0, atol=1e-8 * max(1.0, np.abs(mean).max()))
    np.testing.assert_allclose(gp.cov, cov, rtol=0, atol=1e-8 * max(1.0, np.abs(cov).max()))


def test_fixed_noise_reference_values_equal_jax():
    s, r = np.array([[-1.0], [0.5], [2.0]]), np.array([-1.0, 0.5, 2.0])
    for model in (1, 2):
        gp = bg.posterior(s, r, [[1.0]], model, 0.1)
        mean, cov = bpg.posterior(s, r, [[1.0]], model, 0.1)
        np.testing.assert_allclose([gp.mean[0], gp.cov[0, 0]], [mean[0], cov[0, 0]], rtol=1e-10)


def _numpy_lml(s, r, g, model, noise):
    """Σ_outputs log N(y; 0, K + σ²I) / M, the quantity ExactMarginalLogLikelihood reports."""
    m = len(r)
    gram = s @ np.linalg.inv(g) @ s.T
    k = (1 + gram) ** 2 if model == 1 else gram
    ys = (s * r[:, None]).T if model == 1 else r[None, :]
    a = k + noise * np.eye(m)
    _, logdet = np.linalg.slogdet(a)
    return sum(-0.5 * (y @ np.linalg.solve(a, y) + logdet + m * np.log(2 * np.pi)) for y in ys) / m


@pytest.mark.parametrize("model", [1, 2])
def test_fitted_noise_maximises_the_marginal_likelihood(model):
    s, r, g = _instance(3, m=15, n=2)
    fit = bg.posterior(s, r, g, model, None)
    assert fit.fitted and fit.noise > 0
    assert fit.log_marginal_likelihood == pytest.approx(_numpy_lml(s, r, g, model, fit.noise), rel=1e-9)
    grid = fit.noise * np.exp(np.linspace(-0.5, 0.5, 41))
    values = [_numpy_lml(s, r, g, model, v) for v in grid]
    assert fit.log_marginal_likelihood >= max(values) - 1e-9
    # and at that noise the posterior is the closed form's
    mean, _ = bpg.posterior(s, r, g, model, fit.noise)
    np.testing.assert_allclose(fit.mean, mean, atol=1e-8)


def test_bad_input_is_refused_like_the_jax_path():
    with pytest.raises(InputError, match="noise must be ≥ 0"):
        bg.posterior(np.ones((3, 1)), np.ones(3), [[1.0]], 2, -1.0)
    with pytest.raises(InputError, match="returns must have shape"):
        bg.posterior(np.ones((3, 1)), np.ones(2), [[1.0]], 1, 0.1)
