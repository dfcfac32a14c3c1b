"""Bayesian policy gradients: the closed-form Gaussian-process posterior of ∇J (docs/design.md §4.6).

Ghavamzadeh, Engel & Valko (2016), "Bayesian Policy Gradient and Actor-Critic Algorithms", JMLR 17.
The gradient is an integral, ∇J = ∫ R(ξ) u(ξ) p(ξ; θ) dξ, with u the score and G = E[u uᵀ] the
Fisher matrix. From M samples with scores U = [u_1 … u_M] (n × M) and returns y = (R_1 … R_M),
Bayesian quadrature with a kernel whose integrals against p are analytic gives a Gaussian
posterior N(mean, cov) of ∇J. With C = (K + σ²I)⁻¹:

* Model 1 (vector GP on R·u, quadratic Fisher kernel k(u, u') = (1 + uᵀG⁻¹u')²):
  z_i = 1 + u_iᵀG⁻¹u_i, z_0 = 1 + n; mean = Y C z with Y = [R_i u_i], cov = (z_0 − zᵀCz)·I.
* Model 2 (scalar GP on R, Fisher kernel k(u, u') = uᵀG⁻¹u', K = UᵀG⁻¹U):
  mean = U C y, cov = G − U C Uᵀ. By the push-through identity mean = G (UUᵀ + σ²G)⁻¹ U y and
  cov = σ² G (UUᵀ + σ²G)⁻¹ G.
* Natural gradient: G⁻¹·mean. Unknown G: the empirical Fisher Ĝ = UUᵀ/M is plugged in
  (`fisher=None`); with Ĝ, Model 2's mean is exactly the Monte Carlo estimate shrunk by M/(M + σ²).

Every solve is a Cholesky solve (K + σ²I and G), never an explicit inverse. If K + σ²I is
ill-conditioned (its Cholesky fails, or the condition estimate from the factor's diagonal exceeds
`COND_LIMIT` = 1e10), the smallest jitter from a ladder (10⁻¹², 10⁻¹¹, … times the mean diagonal)
that brings the estimate below `JITTERED_COND` = 1e8 is added to the diagonal and reported: `gradient_posterior` returns it in `Posterior.jitter`, and `posterior` warns with
`JitterWarning`. Bad input raises `bandits.errors.InputError` naming the problem.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from bandits.errors import InputError

MODELS = (1, 2)
COND_LIMIT = 1e10  # no jitter below this condition estimate (a solve loses ~log10(cond) digits)
JITTERED_COND = 1e8  # once jitter is needed, enough of it to bring the estimate below this
MAX_SAMPLES = 16_384  # K is M × M float64 (M padded to `bucket(M)`): 2.1 GB at the limit
JITTER_LADDER = tuple(10.0 ** k for k in range(-12, 1))  # times the mean diagonal of K
SYMMETRY_TOL = 1e-10


class JitterWarning(UserWarning):
    """K + σ²I was ill-conditioned and jitter was added to its diagonal."""


class Posterior(NamedTuple):
    """The posterior N(mean, cov) of ∇J and how it was computed."""

    mean: jax.Array  # (n,)
    cov: jax.Array  # (n, n)
    natural: jax.Array  # (n,) G⁻¹·mean
    fisher: jax.Array  # (n, n) the G used (given, or the empirical Fisher)
    jitter: float  # added to the diagonal of K + σ²I (0.0 when none was needed)
    condition: float  # condition estimate of the factored K + (σ² + jitter)I
    model: int
    noise: float


# ---------------------------------------------------------------------------------------------
# Kernels and the posterior (pure JAX)
# ---------------------------------------------------------------------------------------------


def whiten(scores, fisher_chol):
    """Rows w_i = L⁻¹u_i for G = L Lᵀ, so that u_iᵀG⁻¹u_j = w_i·w_j."""
    return jsl.solve_triangular(fisher_chol, scores.T, lower=True).T


def kernel_matrix(scores, fisher, model: int):
    """K (M × M): u_iᵀG⁻¹u_j (Model 2, Fisher kernel) or (1 + u_iᵀG⁻¹u_j)² (Model 1)."""
    scores = jnp.asarray(scores, jnp.float64)
    w = whiten(scores, jnp.linalg.cholesky(jnp.asarray(fisher, jnp.float64)))
    gram = w @ w.T
    return (1.0 + gram) ** 2 if model == 1 else gram


def bucket(m: int) -> int:
    """The padded sample count: the smallest 2^k or 3·2^(k−1) ≥ m (at least 4), so that a sweep
    over M compiles a handful of shapes, at most 4/3 times the samples."""
    size = 4
    while size < m:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


@jax.jit
def _posterior(scores, returns, mask, fisher, noise, jitter, model):
    """The posterior from padded inputs: rows with mask 0 are padding, made independent of the
    data (zero kernel row and column, unit diagonal, zero return and zero embedding z), so they
    leave the mean, the covariance and the condition estimate unchanged. `model` is traced (one
    compilation serves both models): one Cholesky of the chosen K, then each model's solves."""
    n = scores.shape[1]
    lg = jnp.linalg.cholesky(fisher)
    w = whiten(scores, lg)
    gram = w @ w.T
    one = model == 1
    k = jnp.where(one, (1.0 + gram) ** 2, gram)
    a = k * (mask[:, None] * mask[None, :]) + jnp.diag((noise + jitter) * mask + (1.0 - mask))
    la = jnp.linalg.cholesky(a)
    d = jnp.diag(la)
    # a lower bound on cond(K + σ²I) from the factor's diagonal, over the real samples only
    condition = (jnp.max(jnp.where(mask > 0, d, 0.0)) / jnp.min(jnp.where(mask > 0, d, jnp.inf))) ** 2
    # Model 1: mean Y C z, cov (z_0 − zᵀCz)·I
    z = (1.0 + jnp.sum(w * w, axis=1)) * mask
    cz = jsl.cho_solve((la, True), z)
    mean1 = (scores * (returns * mask)[:, None]).T @ cz
    cov1 = ((1.0 + n) - jnp.dot(z, cz)) * jnp.eye(n, dtype=scores.dtype)
    # Model 2: mean U C y, cov G − U C Uᵀ
    mean2 = scores.T @ jsl.cho_solve((la, True), returns * mask)
    b = jsl.solve_triangular(la, scores * mask[:, None], lower=True)  # U C Uᵀ = bᵀb
    cov2 = fisher - b.T @ b
    mean = jnp.where(one, mean1, mean2)
    cov = jnp.where(one, cov1, 0.5 * (cov2 + cov2.T))
    natural = jsl.cho_solve((lg, True), mean)
    return mean, cov, natural, condition


def empirical_fisher(scores):
    """Ĝ = (1/M) Σ_i u_i u_iᵀ, the plug-in Fisher matrix."""
    s = jnp.asarray(scores, jnp.float64)
    return s.T @ s / s.shape[0]


def mc_gradient(scores, returns):
    """The Monte Carlo (REINFORCE) estimate (1/M) Σ_i R_i u_i, the baseline BPG is compared with."""
    s = jnp.asarray(scores, jnp.float64)
    return s.T @ jnp.asarray(returns, jnp.float64) / s.shape[0]


def gradient_posterior(scores, returns, fisher, model: int, noise: float) -> Posterior:
    """The posterior of ∇J under Model 1 or 2 (module docstring), with the natural gradient, the
    Fisher matrix used (`fisher=None`: the empirical Fisher), and the jitter that was needed."""
    s, r, g, model, noise = check_inputs(scores, returns, fisher, model, noise)
    m, size = s.shape[0], bucket(s.shape[0])
    pad = ((0, size - m), (0, 0))
    args = (jnp.asarray(np.pad(s, pad)), jnp.asarray(np.pad(r, pad[0])),
            jnp.asarray(np.pad(np.ones(m), pad[0])), jnp.asarray(g), noise)
    scale = None
    for t in (0.0, *JITTER_LADDER):
        if t and scale is None:  # the ladder is relative to the mean diagonal of K
            scale = float(np.mean(np.diag(np.asarray(kernel_matrix(s, g, model))))) or 1.0
        jitter = t * scale if t else 0.0
        mean, cov, natural, condition = _posterior(*args, jitter, model)
        condition = float(condition)
        limit = JITTERED_COND if jitter else COND_LIMIT
        if math.isfinite(condition) and condition <= limit and bool(jnp.all(jnp.isfinite(mean))):
            return Posterior(mean, cov, natural, jnp.asarray(g), jitter, condition, model, noise)
    raise InputError(f"K + σ²I stays singular with jitter up to {scale:.3g} (M={s.shape[0]}): "
                     "the scores are degenerate")


def posterior(scores, returns, fisher, model: int, noise: float):
    """(mean (n,), cov (n, n)) of the posterior of ∇J from scores (M, n), returns (M,) and the
    Fisher matrix (n, n) (or None: the empirical Fisher), under `model` 1 or 2 with noise σ² ≥ 0.
    Warns `JitterWarning` when K + σ²I needed jitter (see `gradient_posterior` for its size)."""
    post = gradient_posterior(scores, returns, fisher, model, noise)
    if post.jitter > 0:
        warnings.warn(f"K + σ²I is ill-conditioned (M={np.shape(scores)[0]}, "
                      f"σ²={post.noise:g}); added jitter {post.jitter:.3g} to its diagonal "
                      f"(condition estimate now {post.condition:.3g})", JitterWarning, stacklevel=2)
    return post.mean, post.cov


_posterior_many = jax.jit(jax.vmap(_posterior, in_axes=(0, 0, None, 0, 0, 0, None)))


def posterior_batch(scores, returns, fisher, model: int, noise) -> Posterior:
    """`gradient_posterior` for B independent data sets at once (one compiled, vmapped call):
    scores (B, M, n), returns (B, M), one Fisher matrix (n, n) for all, one per data set
    (B, n, n), or None for each data set's own empirical Fisher; one noise σ² for all or one per
    data set (B,) (e.g. `marginal_likelihood_noise`). The fields of the result carry a leading
    B axis (`jitter`, `condition` and `noise` are (B,) arrays); jitter is added only to the data
    sets that need it."""
    s = _array(scores, "scores")
    r = _array(returns, "returns")
    if s.ndim != 3 or r.ndim != 2 or r.shape != s.shape[:2]:
        raise InputError(f"scores must be (B, M, n) and returns (B, M), got {s.shape} and {r.shape}")
    b, m, n = s.shape
    if b < 1:
        raise InputError("posterior_batch needs at least one data set")
    noises = _noise_vector(noise, b)
    noise = float(noises[0])
    if b * bucket(m) ** 2 > MAX_SAMPLES**2:
        raise InputError(f"B={b} data sets of M={m} samples need {8 * b * bucket(m) ** 2 / 1e9:.1f} GB "
                         f"of kernels, over the limit of {8 * MAX_SAMPLES**2 / 1e9:.1f} GB")
    if fisher is None or (isinstance(fisher, str) and fisher == "empirical"):
        for i in range(b):
            check_inputs(s[i], r[i], None, model, noise)
        g = np.einsum("bmi,bmj->bij", s, s) / m
    elif np.ndim(fisher) == 3:
        if np.shape(fisher)[0] != b:
            raise InputError(f"fisher must be (n, n) or ({b}, n, n) to match {b} data sets, got {np.shape(fisher)}")
        g = np.stack([check_inputs(s[i], r[i], fisher[i], model, noise)[2] for i in range(b)])
    else:
        _, _, g, _, _ = check_inputs(s[0], r[0], fisher, model, noise)
        g = np.broadcast_to(g, (b, n, n))
    _, _, _, model, noise = check_inputs(s[0], r[0], g[0], model, noise)
    size = bucket(m)
    pad = ((0, 0), (0, size - m))
    args = (jnp.asarray(np.pad(s, (*pad, (0, 0)))), jnp.asarray(np.pad(r, pad)),
            jnp.asarray(np.pad(np.ones(m), pad[1])), jnp.asarray(g), jnp.asarray(noises))
    jitter = np.zeros(b)
    for step in (0.0, *JITTER_LADDER):
        mean, cov, natural, condition = _posterior_many(*args, jnp.asarray(jitter), model)
        cond = np.asarray(condition)
        limit = np.where(jitter > 0, JITTERED_COND, COND_LIMIT)
        bad = ~(np.isfinite(cond) & (cond <= limit) & np.all(np.isfinite(np.asarray(mean)), axis=1))
        if not bad.any():
            return Posterior(mean, cov, natural, jnp.asarray(g), jitter, cond, model, noises)
        if step:
            scale = np.array([np.mean(np.diag(np.asarray(kernel_matrix(s[i], g[i], model)))) or 1.0
                              for i in np.flatnonzero(bad)])
            jitter[bad] = step * scale
    raise InputError(f"K + σ²I stays singular with the largest jitter for data sets "
                     f"{np.flatnonzero(bad)[:5].tolist()}: their scores are degenerate")


def _noise_vector(noise, b: int) -> np.ndarray:
    """σ² for each of b data sets from one number or a (b,) array, validated as `check_inputs` does."""
    try:
        v = np.asarray(noise, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"noise must be a number or one number per data set, got {noise!r}") from None
    if v.ndim == 0:
        v = np.full(b, float(v))
    if v.shape != (b,):
        raise InputError(f"noise must be one number or {b} numbers (one per data set), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("noise must be finite")
    if np.any(v < 0):
        raise InputError(f"noise must be ≥ 0 (it is the variance σ²), got {float(v.min())}")
    return v


# ---------------------------------------------------------------------------------------------
# The noise σ² by marginal likelihood, for many data sets at once
# ---------------------------------------------------------------------------------------------

NOISE_FLOOR = 1e-8  # the smallest fitted σ² (sims.bpg.gpytorch_path.FIT_FLOOR)
NOISE_GRID = np.logspace(-8.0, 10.0, 361)  # 0.05 decades, then golden-section refinement
GOLDEN_STEPS = 80


def marginal_likelihood_noise(scores, returns, fisher, model: int) -> np.ndarray:
    """The σ² that maximises the GP's log marginal likelihood, for each of B data sets: scores
    (B, M, n), returns (B, M), fisher (n, n), (B, n, n) or None (each data set's empirical Fisher).

    The outputs are y = R (Model 2, one output) or the n outputs y_j = R·u_j (Model 1, one σ²
    shared by the outputs, as `sims.bpg.gpytorch_path` fits it), with K the model's kernel matrix,
    K = ΦΦᵀ for the features Φ = [w_i] (Model 2) or [1, √2 w_i, vec(w_i w_iᵀ)] (Model 1),
    w_i = L⁻¹u_i, G = L Lᵀ. With K = V diag(λ) Vᵀ (from the thin SVD of Φ: p eigenvalues, the
    other M − p exactly 0) and C_i = Σ_j (Vᵀy_j)_i² over the outputs,

        log p(y | σ²) = −½ Σ_i [C_i/(λ_i + σ²) + n_out log(λ_i + σ²)] − (n_out M/2) log 2π,

    evaluated on a log grid of σ² ∈ [1e-8, 1e10] (0.05 decades) and refined by golden-section
    search in log σ² between the best grid point's neighbours (the global maximum to the grid's
    resolution, then to ~1e-12 relative). σ² is at least NOISE_FLOOR."""
    s = _array(scores, "scores")
    r = _array(returns, "returns")
    if s.ndim != 3 or r.shape != s.shape[:2]:
        raise InputError(f"scores must be (B, M, n) and returns (B, M), got {s.shape} and {r.shape}")
    b, m, n = s.shape
    if model not in MODELS:
        raise InputError(f"model must be 1 or 2, got {model!r}")
    if fisher is None or (isinstance(fisher, str) and fisher == "empirical"):
        g = np.einsum("bmi,bmj->bij", s, s) / m
    else:
        g = np.broadcast_to(_array(fisher, "fisher"), (b, n, n))
    w = np.swapaxes(np.linalg.solve(np.linalg.cholesky(g), np.swapaxes(s, 1, 2)), 1, 2)  # rows L⁻¹u_i
    # K = Φ Φᵀ with the kernel's features: Φ = W (Model 2), Φ = [1, √2 w, vec(w wᵀ)] (Model 1)
    phi = w if model == 2 else np.concatenate(
        [np.ones((b, m, 1)), math.sqrt(2.0) * w, np.einsum("bmi,bmj->bmij", w, w).reshape(b, m, n * n)], axis=2)
    y = s * r[:, :, None] if model == 1 else r[:, :, None]  # (B, M, outputs)
    outputs = y.shape[2]
    if m > phi.shape[2]:  # thin SVD: p non-zero-or-zero eigenvalues S², and M − p exact zeros
        left, sv, _ = np.linalg.svd(phi, full_matrices=False)
        lam = sv**2
        proj = np.einsum("bmi,bmo->bio", left, y)
        c = np.sum(proj**2, axis=2)
        null = np.maximum(np.sum(y**2, axis=(1, 2)) - np.sum(c, axis=1), 0.0)
        null_count = m - phi.shape[2]
    else:
        k = np.einsum("bmi,bli->bml", phi, phi)
        lam, vec = np.linalg.eigh(0.5 * (k + np.swapaxes(k, 1, 2)))
        c = np.sum(np.einsum("bmi,bmo->bio", vec, y) ** 2, axis=2)
        null, null_count = np.zeros(b), 0
    lam = np.maximum(lam, 0.0)

    def loglik(noise):  # noise (B, P) -> (B, P)
        d = lam[:, None, :] + noise[:, :, None]
        return -0.5 * (np.sum(c[:, None, :] / d + outputs * np.log(d), axis=2)
                       + null[:, None] / noise + outputs * null_count * np.log(noise))

    grid = np.broadcast_to(NOISE_GRID, (b, NOISE_GRID.size))
    best = np.argmax(loglik(grid), axis=1)
    lo = np.log(NOISE_GRID[np.maximum(best - 1, 0)])
    hi = np.log(NOISE_GRID[np.minimum(best + 1, NOISE_GRID.size - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = loglik(np.exp(x1)[:, None])[:, 0], loglik(np.exp(x2)[:, None])[:, 0]
    for _ in range(GOLDEN_STEPS):
        left = f1 > f2  # the maximum lies in [lo, x2], else in [x1, hi]
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
        x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        f1, f2 = loglik(np.exp(x1)[:, None])[:, 0], loglik(np.exp(x2)[:, None])[:, 0]
    return np.maximum(np.exp(0.5 * (lo + hi)), NOISE_FLOOR)


def natural_gradient(mean, fisher):
    """G⁻¹·mean by a Cholesky solve."""
    g = jnp.asarray(fisher, jnp.float64)
    return jsl.cho_solve((jnp.linalg.cholesky(g), True), jnp.asarray(mean, jnp.float64))


def mahalanobis(mean, cov, point) -> float:
    """(x − mean)ᵀ cov⁻¹ (x − mean): x lies in the level-q credible ellipsoid iff this is at most
    the χ²_n quantile q. Cholesky solve; inf when cov is singular in the direction of x − mean."""
    cov = np.asarray(cov, np.float64)
    d = np.asarray(point, np.float64) - np.asarray(mean, np.float64)
    try:
        lc = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return math.inf
    v = np.linalg.solve(lc, d)  # triangular system; numpy has no triangular solver of its own
    return float(v @ v)


def credible_ellipse(mean, cov, level: float = 0.95, points: int = 200):
    """Boundary (points, 2) of the level-q credible ellipse of a 2-D Gaussian N(mean, cov):
    mean + √(χ²_2 quantile) · L (cos t, sin t) with cov = L Lᵀ; χ²_2's quantile is −2 log(1 − q)."""
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    if mean.shape != (2,) or cov.shape != (2, 2):
        raise InputError(f"credible_ellipse needs a 2-D posterior, got mean {mean.shape}, cov {cov.shape}")
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    t = np.linspace(0.0, 2.0 * np.pi, points)
    radius = math.sqrt(-2.0 * math.log1p(-level))
    return mean + radius * (np.linalg.cholesky(cov) @ np.stack([np.cos(t), np.sin(t)])).T


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def check_inputs(scores, returns, fisher, model, noise):
    """Validated float64 (scores, returns, fisher, model, noise), `fisher=None` or "empirical"
    replaced by the empirical Fisher; raises `InputError` naming the first problem found."""
    if model not in MODELS:
        raise InputError(f"model must be 1 or 2, got {model!r}")
    s = _array(scores, "scores")
    r = _array(returns, "returns")
    if s.ndim != 2:
        raise InputError(f"scores must be a 2-D array (M, n), got shape {s.shape}")
    m, n = s.shape
    if m < 1 or n < 1:
        raise InputError(f"scores must have at least one sample and one parameter, got shape {s.shape}")
    if m > MAX_SAMPLES:
        size = bucket(m)
        raise InputError(f"M={m} samples is over the limit of {MAX_SAMPLES}: K would be a "
                         f"{size} × {size} float64 matrix ({8 * size * size / 1e9:.1f} GB)")
    if r.shape != (m,):
        raise InputError(f"returns must have shape ({m},) to match scores {s.shape}, got {r.shape}")
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise InputError(f"noise must be a number, got {noise!r}") from None
    if not math.isfinite(noise):
        raise InputError(f"noise must be finite, got {noise}")
    if noise < 0:
        raise InputError(f"noise must be ≥ 0 (it is the variance σ²), got {noise}")
    if fisher is None or (isinstance(fisher, str) and fisher == "empirical"):
        g = s.T @ s / m
        what = f"the empirical Fisher (1/M)Σ u uᵀ of M={m} scores"
    else:
        g = _array(fisher, "fisher")
        if g.shape != (n, n):
            raise InputError(f"fisher must have shape ({n}, {n}) to match scores {s.shape}, got {g.shape}")
        what = "fisher"
        if np.max(np.abs(g - g.T)) > SYMMETRY_TOL * max(1.0, np.max(np.abs(g))):
            raise InputError("fisher is not symmetric")
        g = 0.5 * (g + g.T)
    try:
        np.linalg.cholesky(g)
    except np.linalg.LinAlgError:
        hint = " (need M ≥ n linearly independent scores)" if fisher is None or isinstance(fisher, str) else ""
        raise InputError(f"{what} is not positive definite{hint}") from None
    return s, r, g, int(model), noise


def _array(x, name):
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numeric") from None
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains NaN or infinity")
    return a
