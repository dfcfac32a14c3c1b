"""The closed-form BPG posterior (docs/design.md §4.6): pinned to hand-derived rationals and to
formulas written out here in NumPy; jitter is reported; bad input is refused by name."""

import warnings
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits.errors import InputError
from sims.bpg import quadrature as bpg

A = [F(-1), F(1, 2), F(2)]  # the reference samples, u = a, G = 1


def _solve(m, b):
    """Gauss–Jordan elimination over Fractions: m⁻¹b for a small exact system."""
    n = len(m)
    rows = [list(m[i]) + [b[i]] for i in range(n)]
    for c in range(n):
        p = next(r for r in range(c, n) if rows[r][c] != 0)
        rows[c], rows[p] = rows[p], rows[c]
        rows[c] = [x / rows[c][c] for x in rows[c]]
        for r in range(n):
            if r != c and rows[r][c] != 0:
                rows[r] = [x - rows[r][c] * y for x, y in zip(rows[r], rows[c])]
    return [rows[i][n] for i in range(n)]


def _exact_reference(reward, noise):
    """Model 1 and 2 means/variances on the reference samples, in exact rational arithmetic."""
    y = [reward(a) for a in A]
    eye = [[F(int(i == j)) for j in range(3)] for i in range(3)]
    k1 = [[(1 + a * b) ** 2 + noise * eye[i][j] for j, b in enumerate(A)] for i, a in enumerate(A)]
    z = [1 + a * a for a in A]
    cz = _solve(k1, z)
    m1 = sum(y[i] * A[i] * cz[i] for i in range(3))
    v1 = 2 - sum(z[i] * cz[i] for i in range(3))
    k2 = [[a * b + noise * eye[i][j] for j, b in enumerate(A)] for i, a in enumerate(A)]
    cy, ca = _solve(k2, y), _solve(k2, A)
    m2 = sum(A[i] * cy[i] for i in range(3))
    v2 = 1 - sum(A[i] * ca[i] for i in range(3))
    return m1, v1, m2, v2


def test_reference_values_match_exact_rationals():
    s = np.array([[-1.0], [0.5], [2.0]])
    # at σ² = 1e-8, K + σ²I (Model 2, K of rank 1) has condition ≈ 5e8: a solve keeps ~8 digits
    for (reward, noise), tol in (((lambda a: a, F(1, 10)), 1e-12), ((lambda a: a + a * a, F(1, 10**8)), 1e-7)):
        m1, v1, m2, v2 = _exact_reference(reward, noise)
        r = np.array([float(reward(a)) for a in A])
        mean1, cov1 = bpg.posterior(s, r, [[1.0]], 1, float(noise))
        mean2, cov2 = bpg.posterior(s, r, [[1.0]], 2, float(noise))
        np.testing.assert_allclose([mean1[0], cov1[0, 0], mean2[0]], [float(m1), float(v1), float(m2)],
                                   rtol=tol)
        assert abs(cov2[0, 0] - float(v2)) <= tol
    # hand-derived: Model 2 with R = a, σ² = 1/10 is 5.25/5.35 with variance 0.1/5.35
    assert _exact_reference(lambda a: a, F(1, 10))[2:] == (F(105, 107), F(2, 107))


def _random_instance(seed, m=7, n=3):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(m, n)) * rng.uniform(0.5, 2.0, n)
    r = rng.normal(size=m) + s[:, 0] ** 2
    b = rng.normal(size=(n, n))
    g = b @ b.T + n * np.eye(n)
    return s, r, g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_explicit_numpy_formulas(seed):
    s, r, g, noise = *_random_instance(seed), 0.3
    m, n = s.shape
    gi = np.linalg.inv(g)  # the test may use explicit inverses: it is the independent reference
    k2 = s @ gi @ s.T
    c2 = np.linalg.inv(k2 + noise * np.eye(m))
    post2 = bpg.gradient_posterior(s, r, g, 2, noise)
    np.testing.assert_allclose(post2.mean, s.T @ c2 @ r, rtol=1e-10)
    np.testing.assert_allclose(post2.cov, g - s.T @ c2 @ s, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(post2.natural, gi @ (s.T @ c2 @ r), rtol=1e-10)
    # the push-through forms of the same posterior
    np.testing.assert_allclose(post2.mean, g @ np.linalg.solve(s.T @ s + noise * g, s.T @ r), rtol=1e-10)
    np.testing.assert_allclose(post2.cov, noise * g @ np.linalg.solve(s.T @ s + noise * g, g), rtol=1e-9)
    k1 = (1 + s @ gi @ s.T) ** 2
    c1 = np.linalg.inv(k1 + noise * np.eye(m))
    z = 1 + np.einsum("ij,jk,ik->i", s, gi, s)
    post1 = bpg.gradient_posterior(s, r, g, 1, noise)
    np.testing.assert_allclose(post1.mean, (s * r[:, None]).T @ c1 @ z, rtol=1e-10)
    np.testing.assert_allclose(post1.cov, (1 + n - z @ c1 @ z) * np.eye(n), rtol=1e-9)
    assert post1.jitter == post2.jitter == 0.0


def test_plug_in_fisher_model2_is_shrunk_monte_carlo():
    s, r, _ = _random_instance(3, m=9)
    m = s.shape[0]
    noise = 0.5
    post = bpg.gradient_posterior(s, r, None, 2, noise)
    np.testing.assert_allclose(post.fisher, s.T @ s / m, rtol=1e-12)
    np.testing.assert_allclose(post.mean, (s.T @ r / m) * m / (m + noise), rtol=1e-10)
    np.testing.assert_allclose(bpg.mc_gradient(s, r), s.T @ r / m, rtol=1e-12)
    same = bpg.gradient_posterior(s, r, "empirical", 2, noise)
    np.testing.assert_allclose(same.mean, post.mean, rtol=0)


def test_jitter_is_added_only_when_needed_and_reported():
    s, r, g = _random_instance(4, m=12, n=2)  # Model 2: K has rank 2 < M = 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bpg.posterior(s, r, g, 2, 0.1)  # well conditioned: no warning
    with pytest.warns(bpg.JitterWarning, match="added jitter"):
        mean, _ = bpg.posterior(s, r, g, 2, 0.0)
    post = bpg.gradient_posterior(s, r, g, 2, 0.0)
    assert post.jitter > 0 and post.condition <= bpg.JITTERED_COND
    # the jittered answer is the σ² → 0 limit G (UUᵀ)⁻¹ U y up to the jitter's effect
    np.testing.assert_allclose(mean, g @ np.linalg.solve(s.T @ s, s.T @ r), rtol=1e-5)


def test_mahalanobis():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    d = np.array([1.0, -2.0])
    assert bpg.mahalanobis([0, 0], cov, d) == pytest.approx(d @ np.linalg.inv(cov) @ d, rel=1e-12)
    assert bpg.mahalanobis([0, 0], np.zeros((2, 2)), d) == float("inf")


def test_credible_ellipse_lies_on_the_mahalanobis_level():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    pts = bpg.credible_ellipse([1.0, -1.0], cov, 0.95, points=7)
    q = 5.991464547107979  # χ²_2 0.95 quantile (tables): −2 log 0.05
    for p in pts:
        d = p - [1.0, -1.0]
        assert d @ np.linalg.inv(cov) @ d == pytest.approx(q, rel=1e-12)
    with pytest.raises(InputError, match="2-D posterior"):
        bpg.credible_ellipse([0.0], [[1.0]])


S3 = np.array([[-1.0], [0.5], [2.0]])
R3 = np.array([-1.0, 0.5, 2.0])


@pytest.mark.parametrize("args, msg", [
    ((S3, R3[:2], [[1.0]], 2, 0.1), "returns must have shape"),
    ((S3, R3, np.eye(2), 2, 0.1), "fisher must have shape"),
    ((S3[:, 0], R3, [[1.0]], 2, 0.1), "2-D"),
    ((S3, R3, [[-1.0]], 2, 0.1), "fisher is not positive definite"),
    ((np.ones((3, 2)), R3, np.array([[1.0, 2.0], [0.0, 1.0]]), 2, 0.1), "not symmetric"),
    ((S3, R3, [[1.0]], 2, -0.1), "noise must be ≥ 0"),
    ((S3, R3, [[1.0]], 2, float("nan")), "noise must be finite"),
    ((S3, np.array([1.0, np.nan, 0.0]), [[1.0]], 2, 0.1), "returns contains NaN"),
    ((np.array([[np.nan], [0.5], [2.0]]), R3, [[1.0]], 2, 0.1), "scores contains NaN"),
    ((S3, R3, [[np.inf]], 2, 0.1), "fisher contains NaN"),
    ((S3, R3, [[1.0]], 3, 0.1), "model must be 1 or 2"),
    ((np.ones((3, 2)), R3, None, 2, 0.1), "empirical Fisher .* not positive definite"),
    ((np.zeros((bpg.MAX_SAMPLES + 1, 1)), np.zeros(bpg.MAX_SAMPLES + 1), [[1.0]], 2, 0.1), "over the limit"),
])
def test_bad_input_is_refused_by_name(args, msg):
    with pytest.raises(InputError, match=msg):
        bpg.posterior(*args)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1))
def test_posterior_is_covariant_under_linear_reparameterisation(seed):
    """θ' = Aθ gives u' = A⁻ᵀu and G' = A⁻ᵀGA⁻¹; the kernels uᵀG⁻¹u' do not change, so the
    means transform as gradients (A⁻ᵀ·), the natural gradient as a direction (A·), and Model 2's
    covariance as A⁻ᵀ cov A⁻¹. Model 1's (z_0 − zᵀCz)·I does not (it is not a tensor)."""
    s, r, g = _random_instance(seed % 1000, m=6, n=2)
    a = np.random.default_rng(seed).normal(size=(2, 2)) + 2 * np.eye(2)
    ait = np.linalg.inv(a).T
    s2, g2 = s @ ait.T, ait @ g @ ait.T
    for model in (1, 2):
        p, q = bpg.gradient_posterior(s, r, g, model, 0.4), bpg.gradient_posterior(s2, r, g2, model, 0.4)
        np.testing.assert_allclose(q.mean, ait @ p.mean, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(q.natural, a @ p.natural, rtol=1e-8, atol=1e-10)
        if model == 2:
            np.testing.assert_allclose(q.cov, ait @ p.cov @ ait.T, rtol=1e-8, atol=1e-10)
        else:  # the same scalar variance times I in both parameterisations
            np.testing.assert_allclose(q.cov, p.cov, rtol=1e-8)


def test_posterior_batch_equals_one_by_one():
    rng = np.random.default_rng(7)
    s = rng.normal(size=(5, 9, 2))
    r = rng.normal(size=(5, 9)) + s[..., 0] ** 2
    g = np.array([[1.0, 0.3], [0.3, 2.0]])
    for fisher, model in ((g, 1), (g, 2), (None, 2)):
        batch = bpg.posterior_batch(s, r, fisher, model, 0.0 if model == 2 else 0.2)
        for i in range(5):
            one = bpg.gradient_posterior(s[i], r[i], fisher, model, 0.0 if model == 2 else 0.2)
            # a jittered system has condition up to JITTERED_COND = 1e8
            tol = 1e-9 if one.jitter == 0 else 1e-6
            np.testing.assert_allclose(batch.mean[i], one.mean, rtol=0, atol=tol * np.abs(one.mean).max())
            np.testing.assert_allclose(batch.cov[i], one.cov, rtol=tol, atol=tol * np.abs(one.cov).max())
            assert batch.jitter[i] == pytest.approx(one.jitter, rel=1e-12)
    assert np.all(bpg.posterior_batch(s, r, g, 2, 0.0).jitter > 0)  # σ² = 0, rank K = 2 < M = 9
    assert np.all(bpg.posterior_batch(s, r, g, 2, 0.1).jitter == 0)
    # one Fisher per data set: the same as one call per data set with its own G
    gs = np.stack([g * (1 + i) for i in range(s.shape[0])])
    per = bpg.posterior_batch(s, r, gs, 2, 0.1)
    for i in range(s.shape[0]):
        np.testing.assert_allclose(per.mean[i], bpg.posterior(s[i], r[i], gs[i], 2, 0.1)[0], rtol=1e-10)
    with pytest.raises(InputError, match="data sets"):
        bpg.posterior_batch(s, r, gs[:1], 2, 0.1)
    with pytest.raises(InputError, match="scores must be"):
        bpg.posterior_batch(s[0], r, g, 2, 0.1)
    with pytest.raises(InputError, match="noise must be ≥ 0"):
        bpg.posterior_batch(s, r, g, 2, -1.0)


def test_posterior_batch_takes_one_noise_per_data_set():
    rng = np.random.default_rng(8)
    s = rng.normal(size=(4, 7, 2))
    r = rng.normal(size=(4, 7)) + s[..., 1]
    g = np.array([[1.0, 0.2], [0.2, 1.5]])
    noises = np.array([0.05, 0.5, 2.0, 9.0])
    for model in (1, 2):
        batch = bpg.posterior_batch(s, r, g, model, noises)
        np.testing.assert_array_equal(batch.noise, noises)
        for i in range(4):
            mean, cov = bpg.posterior(s[i], r[i], g, model, noises[i])
            np.testing.assert_allclose(batch.mean[i], mean, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(batch.cov[i], cov, rtol=1e-10, atol=1e-12)
    with pytest.raises(InputError, match="one number or 4 numbers"):
        bpg.posterior_batch(s, r, g, 2, noises[:3])
    with pytest.raises(InputError, match="noise must be ≥ 0"):
        bpg.posterior_batch(s, r, g, 2, -noises)


def _brute_lml(s, r, g, model, noise):
    """Σ_outputs log N(y; 0, K + σ²I), K written out with an explicit inverse of G."""
    gram = s @ np.linalg.inv(g) @ s.T
    k = (1 + gram) ** 2 if model == 1 else gram
    ys = (s * r[:, None]).T if model == 1 else r[None, :]
    a = k + noise * np.eye(len(r))
    return sum(-0.5 * (y @ np.linalg.solve(a, y) + np.linalg.slogdet(a)[1]) for y in ys)


@pytest.mark.parametrize("model, m", [(1, 4), (1, 12), (2, 3), (2, 12)])
def test_marginal_likelihood_noise_is_the_brute_force_maximiser(model, m):
    """The batched σ² against a fine grid of the likelihood written out with dense matrices (M = 4
    < p = 1 + n + n² = 7 takes the dense eigen path, M = 12 the feature SVD)."""
    rng = np.random.default_rng(9 + m)
    s = rng.normal(size=(3, m, 2)) * [1.0, 1.7]
    r = 2.0 + rng.normal(size=(3, m)) + s[..., 0] ** 2
    g = np.array([[1.0, 0.3], [0.3, 2.0]])
    for fisher in (g, None):
        got = bpg.marginal_likelihood_noise(s, r, fisher, model)
        for i in range(3):
            gi = g if fisher is not None else s[i].T @ s[i] / m
            grid = np.maximum(got[i] * np.exp(np.linspace(-1.0, 1.0, 201)), bpg.NOISE_FLOOR)  # σ² ≥ the floor
            values = np.array([_brute_lml(s[i], r[i], gi, model, v) for v in grid])
            assert _brute_lml(s[i], r[i], gi, model, got[i]) >= values.max() - 1e-9
            assert abs(np.log(grid[np.argmax(values)] / got[i])) <= 0.011  # within one grid step
            assert got[i] >= bpg.NOISE_FLOOR
