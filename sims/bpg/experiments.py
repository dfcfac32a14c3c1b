"""Bayesian policy gradients against Monte Carlo on the continuous problems (docs/design.md §4.6):
R independent data sets of M samples each, drawn in one call, their posteriors computed in one
`sims.bpg.quadrature.posterior_batch` call, and two summaries over the data sets:

* coverage: the fraction of data sets whose level-q credible ellipsoid holds the true gradient,
  (∇J − mean)ᵀ cov⁻¹ (∇J − mean) ≤ χ²_n(q) (`sims.bpg.quadrature.mahalanobis`);
* squared error: |mean − ∇J|² for the posterior mean and |ĝ_MC − ∇J|² for the Monte Carlo
  estimate ĝ_MC = (1/M) Σ R_i u_i on the same data sets (paired).

Problems: the Gaussian bandit a ~ N(μ, s²), θ = (μ, log s), at θ = (0, 0) with the quadratic
reward −(a − 1)² (`bandits.gaussian`), score u = (a, a² − 1), Fisher diag(1, 2), ∇J = (2, −2);
and scalar LQR (`bandits.lqr`, the `lqr_objective` case) with θ = K, σ fixed, score the
trajectory score u = Σ_t ε_t x_t/σ, return the discounted return, Fisher G = Σ_t E[x_t²]/σ²
(ε_t is independent of x_t), ∇J from the exact recursion; and the linear-quadratic regulator of
Ghavamzadeh & Engel (NIPS 2006, §6; JMLR 2016, §6.1), `paper_lqr_data`: x_0 ~ N(0.3, 0.001),
x_{t+1} = x_t + a_t + n_x with n_x ~ N(0, 0.01), cost x_t² + 0.1 a_t² (the lab maximises the
return −Σ_t (x_t² + 0.1 a_t²), which flips the gradient's sign and changes no error or coverage),
a_t ~ N(λ x_t, σ²) at λ = −0.2, σ = 1, trajectories of T = 20 steps, undiscounted, θ = (λ, log σ)
(at σ = 1 the gradient and the scores in (λ, log σ) equal those in the paper's (λ, σ)).

The GP noise σ² is either fixed (`NOISE` = 1) or, per data set, the maximiser of the marginal
likelihood (`noise="fitted"`, `sims.bpg.quadrature.marginal_likelihood_noise`, the quantity the lab's
gpytorch path maximises).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import chi2

from bandits import gaussian as GB
from bandits import lqr as L
from sims.bpg import quadrature as bpg

GAUSSIAN_THETA = (0.0, 0.0)
GAUSSIAN_REWARD = GB.REWARDS["quadratic"]
LQR_CASE = dict(A=1.2, B=0.8, Q=1.0, R=0.3, horizon=50, gamma=0.9, noise_cov=0.05)
LQR_SIGMA = 0.4
LQR_GAIN = -0.8  # stabilising (γ(1.2 − 0.64)² < 1), away from K* ≈ −1.114: ∇J ≈ −2.83
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclasses.dataclass(frozen=True)
class Data:
    """R data sets: scores (R, M, n), returns (R, M), the exact Fisher (n, n) and ∇J (n,)."""

    scores: np.ndarray
    returns: np.ndarray
    fisher: np.ndarray
    gradient: np.ndarray


def gaussian_data(seed: int, r: int, m: int, theta=GAUSSIAN_THETA, coeffs=GAUSSIAN_REWARD) -> Data:
    theta = jnp.asarray(theta, jnp.float64)
    a = GB.sample(jax.random.PRNGKey(seed), theta, (r, m))
    return Data(np.asarray(GB.score(theta, a)), np.asarray(GB.polyval(jnp.asarray(coeffs), a)),
                np.asarray(GB.fisher(theta)), np.asarray(GB.gradient(theta, jnp.asarray(coeffs))))


def lqr_problem():
    return L.make(**LQR_CASE)


def lqr_fisher(lqr, theta, sigma) -> np.ndarray:
    """G = E[u²] = Σ_t E[x_t²]/σ² for scalar LQR with θ = K (u = Σ_t ε_t x_t/σ)."""
    return np.array([[float(jnp.sum(L.second_moments(theta, lqr, sigma))) / sigma**2]])


def lqr_data(seed: int, r: int, m: int, gain: float = LQR_GAIN, sigma: float = LQR_SIGMA) -> Data:
    lqr = lqr_problem()
    theta = jnp.array([gain], jnp.float64)
    traj = L.sample_trajectories(jax.random.PRNGKey(seed), theta, lqr, r * m, sigma)
    u = jax.vmap(lambda t: L.trajectory_score(theta, t, sigma))(traj)
    ret = L.discounted_return(traj, lqr.gamma)
    return Data(np.asarray(u).reshape(r, m, 1), np.asarray(ret).reshape(r, m),
                lqr_fisher(lqr, theta, sigma), np.asarray(L.gradient(theta, lqr, sigma)))


PAPER_LQR = dict(A=1.0, B=1.0, Q=1.0, R=0.1, horizon=20, gamma=1.0, noise_cov=0.01)
PAPER_X0 = (0.3, 0.001)  # mean and variance of x_0
PAPER_THETA = (-0.2, 0.0)  # (λ, log σ): λ = −0.2, σ = 1


def paper_lqr_problem():
    """The paper's LQR as a `bandits.lqr` instance for its exact J, ∇J and second moments: the
    recursion runs on E[x_t x_tᵀ], so x_0 ~ N(0.3, 0.001) enters only as E[x_0²] = 0.3² + 0.001."""
    mean, var = PAPER_X0
    return L.make(**PAPER_LQR, init_cov=mean**2 + var)


def paper_lqr_data(seed: int, r: int, m: int, theta=PAPER_THETA) -> Data:
    """R data sets of M trajectories of the paper's LQR, drawn here in NumPy (the lab's sampler has
    x_0 of mean 0): scores u = Σ_t (ε_t x_t/σ, ε_t² − 1), returns −Σ_t (x_t² + 0.1 a_t²),
    G = diag(Σ_t E[x_t²]/σ², 2T) (cross terms vanish: E[ε³] = 0 and scores of different steps are
    uncorrelated), ∇J by autodiff of the exact recursion."""
    rng = np.random.default_rng(seed)
    lam, sig = float(theta[0]), float(np.exp(theta[1]))
    n = r * m
    x = PAPER_X0[0] + np.sqrt(PAPER_X0[1]) * rng.standard_normal(n)
    u = np.zeros((n, 2))
    ret = np.zeros(n)
    for _ in range(PAPER_LQR["horizon"]):
        eps = rng.standard_normal(n)
        a = lam * x + sig * eps
        ret -= x**2 + PAPER_LQR["R"] * a**2
        u += np.stack([eps * x / sig, eps**2 - 1.0], axis=1)
        x = x + a + np.sqrt(PAPER_LQR["noise_cov"]) * rng.standard_normal(n)
    lqr = paper_lqr_problem()
    th = jnp.asarray(theta, jnp.float64)
    second = float(jnp.sum(L.second_moments(th, lqr)))
    fisher = np.diag([second / sig**2, 2.0 * PAPER_LQR["horizon"]])
    return Data(u.reshape(r, m, 2), ret.reshape(r, m), fisher, np.asarray(L.gradient(th, lqr)))


def data(problem: str, seed: int, r: int, m: int) -> Data:
    return {"gaussian": gaussian_data, "lqr": lqr_data, "paper_lqr": paper_lqr_data}[problem](seed, r, m)


def posteriors(d: Data, model: int, noise, fisher: str = "known", batch_fn=bpg.posterior_batch):
    """(means (R, n), covs (R, n, n)) of every data set; fisher "known" or "plugin"; noise a σ² or
    "fitted" (each data set's marginal-likelihood σ², `fitted_noise`)."""
    g = d.fisher if fisher == "known" else None
    if isinstance(noise, str):
        noise = fitted_noise(d, model, fisher)
    post = batch_fn(d.scores, d.returns, g, model, noise)
    return np.asarray(post[0]), np.asarray(post[1])


def fitted_noise(d: Data, model: int, fisher: str = "known") -> np.ndarray:
    """Each data set's σ² by marginal likelihood (`sims.bpg.quadrature.marginal_likelihood_noise`), memoised
    for the data sets of `cached_data` (the entry keeps `d` alive, so its id stays its own)."""
    key = (id(d), model, fisher)
    hit = _NOISE_CACHE.get(key)
    if hit is not None and hit[0] is d:
        return hit[1]
    if len(_NOISE_CACHE) > 64:
        _NOISE_CACHE.clear()
    noise = bpg.marginal_likelihood_noise(d.scores, d.returns, d.fisher if fisher == "known" else None, model)
    _NOISE_CACHE[key] = (d, noise)
    return noise


_NOISE_CACHE: dict = {}


def distances(means, covs, point) -> np.ndarray:
    """(point − mean_r)ᵀ cov_r⁻¹ (point − mean_r) for every data set r."""
    return np.array([bpg.mahalanobis(m, c, point) for m, c in zip(means, covs)])


def coverage(dist, n: int, levels=LEVELS) -> dict[float, int]:
    """How many data sets hold the true gradient in their level-q ellipsoid, for each q."""
    return {q: int(np.sum(dist <= chi2.ppf(q, n))) for q in levels}


def squared_errors(d: Data, means) -> tuple[np.ndarray, np.ndarray]:
    """(|mean_r − ∇J|², |ĝ_MC,r − ∇J|²) per data set (paired)."""
    mc = np.einsum("rmi,rm->ri", d.scores, d.returns) / d.scores.shape[1]
    return np.sum((means - d.gradient) ** 2, axis=1), np.sum((mc - d.gradient) ** 2, axis=1)


def ratio_ci(bpg_se, mc_se, seed: int, resamples: int = 2000, level: float = 0.95):
    """MSE ratio mean(bpg_se)/mean(mc_se) with a paired percentile-bootstrap CI (data sets resampled)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, bpg_se.size, (resamples, bpg_se.size))
    boot = bpg_se[idx].mean(axis=1) / mc_se[idx].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(bpg_se.mean() / mc_se.mean()), float(lo), float(hi)


NOISE = 1.0  # σ² of the GP likelihood: the unit-scale prior, the same on both problems


_CACHE: dict = {}


def cached_data(problem: str, seed: int, r: int, m: int) -> Data:
    """`data`, memoised within one process (the claims and figures reuse the same draws)."""
    key = (problem, seed, r, m)
    if key not in _CACHE:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = data(problem, seed, r, m)
    return _CACHE[key]


SWEEP_M = (5, 10, 20, 40, 80)


def mse_rows(problem: str, ms, r: int, seed: int, models=(1, 2), fisher: str = "known",
             batch_fn=bpg.posterior_batch, noise=None) -> list[dict]:
    """For each M: the mean squared error of MC and of each model's posterior mean over R data sets
    (with standard errors), and each model's paired squared-error differences and MSE ratio with a
    bootstrap 95% CI. `squared` keeps the per-data-set errors for tests."""
    from scipy.stats import norm

    rows = []
    for j, m in enumerate(ms):
        d = cached_data(problem, seed + j, r, m)
        row = {"M": int(m)}
        for model in models:
            means, _ = posteriors(d, model, NOISE if noise is None else noise, fisher, batch_fn)
            b, mc = squared_errors(d, means)
            diff = b - mc
            se = float(diff.std(ddof=1) / np.sqrt(r))
            ratio, lo, hi = ratio_ci(b, mc, seed + 1000 * j + model)
            row["mc"] = {"mse": float(mc.mean()), "se": float(mc.std(ddof=1) / np.sqrt(r))}
            row[f"model{model}"] = {
                "mse": float(b.mean()), "se": float(b.std(ddof=1) / np.sqrt(r)),
                "ratio": ratio, "ratio_ci": [lo, hi], "diff": float(diff.mean()), "diff_se": se,
                # one-sided p-value of "MSE_BPG < MSE_MC" (paired z-test on the differences)
                "p_below": float(norm.cdf(diff.mean() / se)) if se > 0 else float(diff.mean() >= 0)}
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Learning curves on scalar LQR at equal sample budget
# ---------------------------------------------------------------------------------------------

LEARNERS = ("mc", "bpg_model1", "bpg_model2", "bpg_natural")
LEARN_START = -0.45
LEARN_STEP = 0.004  # K ← K + η ĝ for the gradient estimates (MC and BPG)
LEARN_NATURAL_STEP = 0.25  # K ← K + η_nat G⁻¹ ĝ (G ≈ 55 near K*, so η_nat/G ≈ η)
# the gains kept: γ(1.2 + 0.8K)² < 1 ⇔ K ∈ (−2.817, −0.333); K is clipped into [−2.5, −0.4]
LEARN_BOUNDS = (-2.5, -0.4)


def lqr_fisher_batch(lqr, gains, sigma):
    """G(K) = Σ_t E[x_t²]/σ² for each gain, shape (B, 1, 1)."""
    g = jax.vmap(lambda k: jnp.sum(L.second_moments(k[None], lqr, sigma)))(jnp.asarray(gains)) / sigma**2
    return np.asarray(g).reshape(-1, 1, 1)


def update(gains, directions, steps, bounds=LEARN_BOUNDS):
    """K ← clip(K + η·d, bounds), elementwise."""
    return np.clip(np.asarray(gains) + np.asarray(steps) * np.asarray(directions), *bounds)


def learning_curves(seeds: int, iterations: int, m: int = 10, seed: int = 0, sigma: float = LQR_SIGMA,
                    start: float = LEARN_START) -> dict:
    """Gradient ascent on scalar LQR (θ = K, σ fixed) from K_0 = `start`, every learner drawing M
    fresh trajectories per iteration (equal sample budget): "mc" steps along (1/M) Σ R u, "bpg_model1"
    and "bpg_model2" along the posterior mean (exact G, σ² = 1), "bpg_natural" along G⁻¹ × Model 2's
    mean. Returns the exact J(K_t) and K_t, arrays (learner, seed, iteration + 1)."""
    lqr = lqr_problem()
    n_learn = len(LEARNERS)
    gains = np.full(n_learn * seeds, float(start))
    steps = np.repeat([LEARN_STEP, LEARN_STEP, LEARN_STEP, LEARN_NATURAL_STEP], seeds)
    objective = jax.jit(jax.vmap(lambda k: L.objective(k[None], lqr, sigma)))
    sample = jax.jit(jax.vmap(lambda key, k: _lqr_batch(key, k, lqr, m, sigma)))
    history_j, history_k = [np.asarray(objective(jnp.asarray(gains)))], [gains.copy()]
    keys = jax.random.split(jax.random.PRNGKey(seed), iterations)
    for t in range(iterations):
        # common random numbers across learners: seed s of every learner uses the same key
        key_t = jnp.tile(jax.random.split(keys[t], seeds), (n_learn, 1))
        u, ret = sample(key_t, jnp.asarray(gains))
        u, ret = np.asarray(u)[..., None], np.asarray(ret)
        fisher = lqr_fisher_batch(lqr, gains, sigma)
        mc = np.einsum("bmi,bm->bi", u, ret)[:, 0] / m
        p1 = bpg.posterior_batch(u, ret, fisher, 1, NOISE)
        p2 = bpg.posterior_batch(u, ret, fisher, 2, NOISE)
        choice = np.stack([mc, np.asarray(p1.mean)[:, 0], np.asarray(p2.mean)[:, 0], np.asarray(p2.natural)[:, 0]])
        direction = choice[np.repeat(np.arange(n_learn), seeds), np.arange(n_learn * seeds)]
        gains = update(gains, direction, steps)
        history_j.append(np.asarray(objective(jnp.asarray(gains))))
        history_k.append(gains.copy())
    shape = (n_learn, seeds, iterations + 1)
    return {"J": np.stack(history_j, axis=1).reshape(shape), "K": np.stack(history_k, axis=1).reshape(shape),
            "J_star": float(L.objective(jnp.asarray(L.optimal_gain(lqr)[0]).reshape(1), lqr, sigma)),
            "K_star": float(L.optimal_gain(lqr)[0][0, 0])}


def _lqr_batch(key, gain, lqr, m, sigma):
    theta = jnp.reshape(gain, (1,))
    traj = L.sample_trajectories(key, theta, lqr, m, sigma)
    u = jax.vmap(lambda tr: L.trajectory_score(theta, tr, sigma))(traj)[:, 0]
    return u, L.discounted_return(traj, lqr.gamma)
