"""The BPG experiments (sims/bpg/experiments.py) and the calibration and MSE checks built on them:
the problems pinned to hand-derived values, each check passing on a posterior that is correct by
construction and catching a planted defect."""

import math

import numpy as np
import pytest

from sims.bpg import experiments as E
from sims.claims import bpg as C

GAUSSIAN_CASES = (("gaussian", 10), ("gaussian", 40))


def test_gaussian_problem_is_the_hand_derived_one():
    d = E.gaussian_data(0, 3, 5)
    # R(a) = −(a − 1)² at μ = 0, s = 1: ∇J = (c1 + 2c2μ, 2s²c2) = (2, −2); u = (a, a² − 1); G = diag(1, 2)
    np.testing.assert_allclose(d.gradient, [2.0, -2.0], atol=1e-14)
    np.testing.assert_allclose(d.fisher, np.diag([1.0, 2.0]), atol=1e-14)
    a = d.scores[..., 0]
    np.testing.assert_allclose(d.scores[..., 1], a**2 - 1, atol=1e-12)
    np.testing.assert_allclose(d.returns, -(a - 1) ** 2, atol=1e-12)


def test_lqr_fisher_is_the_mean_squared_score():
    """G = Σ_t E[x_t²]/σ² against the sample mean of u² over many trajectories (5 standard errors)."""
    d = E.lqr_data(1, 1, 20_000)
    u2 = d.scores[0, :, 0] ** 2
    assert abs(u2.mean() - d.fisher[0, 0]) < 5 * u2.std() / math.sqrt(u2.size)
    g = d.scores[0, :, 0] * d.returns[0]  # REINFORCE is unbiased for the exact ∇J
    assert abs(g.mean() - d.gradient[0]) < 5 * g.std() / math.sqrt(g.size)


def test_squared_errors_and_ratio_by_hand():
    d = E.Data(np.array([[[1.0], [3.0]]]), np.array([[2.0, 1.0]]), np.eye(1), np.array([1.0]))
    b, mc = E.squared_errors(d, np.array([[1.5]]))
    assert b.tolist() == [0.25] and mc.tolist() == [1.5**2]  # MC = (2 + 3)/2 = 2.5
    ratio, lo, hi = E.ratio_ci(np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0]), 0)
    assert ratio == lo == hi == 0.5


def test_coverage_counts_by_hand():
    # χ²_1 quantiles: 0.5 → 0.4549, 0.95 → 3.8415
    assert E.coverage(np.array([0.1, 1.0, 3.0, 5.0]), 1, (0.5, 0.95)) == {0.5: 1, 0.95: 3}


def oracle(scale=1.0):
    """A posterior that is calibrated by construction on the Gaussian bandit at θ = (0, 0):
    mean = ∇J + (a_1, a_2) with a_i ~ N(0, 1) the data set's first two actions, cov = I;
    `scale` multiplies the covariance (0.25: a planted over-confident posterior)."""

    def batch(s, y, g, model, noise):
        return np.array([2.0, -2.0]) + s[:, :2, 0], np.broadcast_to(scale * np.eye(2), (s.shape[0], 2, 2))

    return batch


def test_calibration_check_passes_on_a_calibrated_posterior():
    out = C.verify_calibration(True, 2, "known", oracle(), cases=GAUSSIAN_CASES, r=600)
    assert out.holds, out.measured


@pytest.mark.parametrize("scale", [0.25, 4.0])
def test_calibration_check_catches_a_scaled_covariance(scale):
    out = C.verify_calibration(True, 2, "known", oracle(scale), cases=GAUSSIAN_CASES, r=600)
    assert not out.holds
    # with cov = scale·I the distance is D/scale, D ~ χ²_2: coverage P(D ≤ 5.9915·scale) =
    # 1 − exp(−5.9915·scale/2): 0.527 (scale 0.25), 0.999994 (scale 4)
    want = 1 - math.exp(-5.9915 * scale / 2)
    assert abs(out.counterexample["coverage_95"] - want) < 0.1


def test_detectable_deviation_by_hand():
    # Holm's first threshold for 4 tests at 1e-6: Φ⁻¹(1 − 1.25e-7) = 5.1577; z_0.99 = 2.3263
    assert C.detectable_deviation(2000, 4) == pytest.approx((5.1577 + 2.3263) * math.sqrt(0.95 * 0.05 / 2000), rel=1e-4)


def fixed_mean(kind):
    """A planted posterior whose mean is ∇J itself ("truth": MSE 0), the Monte Carlo estimate
    ("mc": no advantage) or 1.5 × it ("inflated")."""

    def batch(s, y, g, model, noise):
        mc = np.einsum("rmi,rm->ri", s, y) / s.shape[1]
        mean = {"truth": np.broadcast_to([2.0, -2.0], mc.shape), "mc": mc, "inflated": 1.5 * mc}[kind]
        return mean, np.broadcast_to(np.eye(2), (s.shape[0], 2, 2))

    return batch


@pytest.mark.parametrize("kind, holds", [("truth", True), ("mc", False), ("inflated", False)])
def test_mse_check_passes_and_catches_planted_means(kind, holds):
    out = C.verify_mse_below_mc(True, fixed_mean(kind), problems=("gaussian",), r=300, sweep=(5, 10), sweep_r=100)
    assert out.holds == holds, out.measured
    if kind == "mc":
        assert out.measured["cases"]["gaussian, Model 1"]["ratio_at_M10"] == 1.0
        assert out.measured["cases"]["gaussian, Model 1"]["advantage_ends_at_M"] == 5


def test_learning_update_and_fisher_batch():
    np.testing.assert_allclose(E.update([-1.0, -0.5, -2.4], [10.0, 100.0, -100.0], [0.01, 0.01, 0.01]),
                               [-0.9, -0.4, -2.5])  # the last two clipped into [−2.5, −0.4]
    lqr = E.lqr_problem()
    import jax.numpy as jnp

    batch = E.lqr_fisher_batch(lqr, np.array([-0.8, -1.2]), E.LQR_SIGMA)
    for i, k in enumerate((-0.8, -1.2)):
        np.testing.assert_allclose(batch[i], E.lqr_fisher(lqr, jnp.array([k]), E.LQR_SIGMA), rtol=1e-12)


def test_learning_curves_are_reproducible_and_start_together():
    a = E.learning_curves(2, 3, m=4, seed=5)
    b = E.learning_curves(2, 3, m=4, seed=5)
    assert a["J"].shape == (len(E.LEARNERS), 2, 4)
    np.testing.assert_array_equal(a["J"], b["J"])
    assert np.all(a["J"][:, :, 0] == a["J"][0, 0, 0])
    assert np.all((a["K"] >= E.LEARN_BOUNDS[0]) & (a["K"] <= E.LEARN_BOUNDS[1]))
    assert np.all(a["J"] <= a["J_star"] + 1e-9)  # J_H(K*): K* (Riccati, H = ∞) is not beaten at these gains


def test_paper_lqr_is_the_stated_problem():
    """Ghavamzadeh & Engel's LQR at λ = −0.2, σ = 1: E[x_t²] by the recursion written out here
    (S_0 = 0.3² + 0.001, S_{t+1} = 0.8² S_t + 1 + 0.01), G = diag(Σ_t S_t, 2T), ∇J equal to the
    NumPy recursion of the lqr claims, and the sampled returns and R·u unbiased for J and ∇J."""
    from sims.claims import lqr as CL

    d = E.paper_lqr_data(3, 1, 100_000)
    moments, x2 = [], 0.3**2 + 0.001
    for _ in range(20):
        moments.append(x2)
        x2 = 0.64 * x2 + 1.0 + 0.01
    np.testing.assert_allclose(d.fisher, np.diag([sum(moments), 40.0]), rtol=1e-12)
    one = lambda x: np.array([[float(x)]])  # noqa: E731
    grad = CL.independent_gradient(one(1), one(1), one(1), one(0.1), one(0.091), one(0.01), 1.0, 20, one(-0.2), 1.0,
                                   True)
    np.testing.assert_allclose(d.gradient, grad, rtol=1e-12)
    j = -sum(m * (1 + 0.1 * 0.04) + 0.1 for m in moments)  # E[x²] + 0.1 E[a²], a = −0.2x + ε
    ret = d.returns[0]
    assert abs(ret.mean() - j) < 5 * ret.std() / math.sqrt(ret.size)
    g = d.scores[0] * ret[:, None]
    assert np.all(np.abs(g.mean(axis=0) - d.gradient) < 5 * g.std(axis=0) / math.sqrt(ret.size))


def planted(kind):
    """The lab's posterior with one planted defect: its covariance times 0.25, or its mean moved
    by two posterior standard deviations in every coordinate."""

    def batch(s, y, g, model, noise):
        from sims.bpg import quadrature as bpg

        post = bpg.posterior_batch(s, y, g, model, noise)
        mean, cov = np.asarray(post.mean), np.asarray(post.cov)
        if kind == "cov_quarter":
            return mean, 0.25 * cov
        if kind == "mean_shifted":
            return mean + 2.0 * np.sqrt(np.diagonal(cov, axis1=1, axis2=2)), cov
        return mean, cov

    return batch


@pytest.mark.parametrize("kind, holds", [("none", True), ("cov_quarter", False), ("mean_shifted", False)])
def test_fitted_noise_calibration_claim_fails_on_a_planted_defect(kind, holds):
    """The verified fitted-noise case (Model 2, exact G, scalar LQR, M = 40) on fewer data sets:
    the lab's posterior passes; a quartered covariance (coverage ≈ 0.53) or a mean moved by two
    standard deviations fails."""
    out = C.verify_calibration(True, 2, "known", planted(kind), cases=(("lqr", 40),), r=1_000, noise=C.FITTED)
    assert out.holds == holds, out.measured
    assert out.measured["cases"]["lqr, M=40"]["fitted_noise_quartiles"][1] > 1.0


def test_gpytorch_match_check_catches_a_wrong_noise():
    from sims.bpg import quadrature as bpg

    def doubled(*args):
        return 2.0 * bpg.marginal_likelihood_noise(*args)

    assert not C.verify_fitted_noise_matches_gpytorch(True, noise_fn=doubled).holds
