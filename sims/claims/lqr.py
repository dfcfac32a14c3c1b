"""Claims of docs/design.md §4.5 on discrete-time LQR with a linear Gaussian policy.

Exact checks: tensor Gauss–Hermite quadrature over a short trajectory's standard normals (exact
for the polynomial integrands), the second-moment recursion written out again here in plain NumPy
(`independent_objective`, with its gradient by a hand-derived tangent recursion and its Hessian by
central differences of that gradient), the discounted Lyapunov value J_∞. Monte Carlo checks
stream trajectories through the one engine (`sims.engines.montecarlo.stream`) and compare with the exact
recursion under Holm at α = 1e-6; the GPOMDP and B·v checks subtract zero-mean control variates
(`ControlledDraw`) so that they detect a bias of a tenth of |target| at quick sizes. Every check
function takes the thing under test as an argument, so the tests can plant a defect in it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bandits import lqr as L
from sims import continuous as C
from sims import trajectory as T
from sims.claims import _kit as kit
from sims.engines import montecarlo, stats
from sims.ledger import Check, Outcome, claim

SOURCE = "Fatkhullin et al. 2023 (ICML), g and B; docs/design.md §4.5"
TOL = 1e-9
# The Monte Carlo instance: scalar, H = 8, γ = 0.9, process noise, θ = (K, log σ).
MC_CASE = dict(A=0.9, B=0.5, Q=1.0, R=0.1, horizon=8, gamma=0.9, noise_cov=0.05)
MC_THETA = (-0.6, math.log(0.5))
MC_V = (1.0, -0.5)


def short_instances(quick: bool, seed: int = 0):
    """Stable instances for quadrature: scalar with H ≤ 3 (and process noise at H ≤ 2), and a
    2-state, 1-action instance at H = 1; θ = (vec K, log σ) or vec K with σ fixed."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4 if quick else 12):
        a, b = rng.uniform(-1.2, 1.2), rng.uniform(0.3, 1.5)
        k = (rng.uniform(-0.8, 0.8) - a) / b
        h = 1 + i % 3
        noise = 0.1 if h <= 2 and i % 2 else 0.0
        lqr = L.make(a, b, rng.uniform(0.2, 2), rng.uniform(0.1, 1), h, rng.uniform(0.7, 1.0), noise_cov=noise)
        sig = rng.uniform(0.2, 1.0)
        out.append((lqr, (k, math.log(sig)), None) if i % 2 == 0 else (lqr, (k,), sig))
    lqr2 = L.make(np.array([[0.5, 0.2], [-0.1, 0.7]]), np.array([[0.0], [1.0]]), np.diag([1.0, 0.5]), 0.3, 1, 0.95,
                  init_cov=np.array([[1.0, 0.3], [0.3, 0.5]]))
    out.append((lqr2, (0.1, -0.4, math.log(0.6)), None))
    return out


def _describe(lqr, theta, sigma):
    return {"A": np.asarray(lqr.A).round(6).tolist(), "B": np.asarray(lqr.B).round(6).tolist(),
            "H": lqr.horizon, "gamma": round(float(lqr.gamma), 6), "theta": np.round(theta, 6).tolist(),
            "sigma": sigma}


def _worst(residuals, what):
    worst, where = max(residuals, key=lambda x: x[0])
    return Outcome(worst <= TOL, worst, f"≤ {TOL:g}", f"{what}; max residual over {len(residuals)} instances",
                   counterexample=where if worst > TOL else None)


def _target(estimator, theta, lqr, sigma, v=None):
    th = jnp.asarray(theta, dtype=jnp.float64)
    return C.exact_target(estimator, L.gradient(th, lqr, sigma), L.hessian(th, lqr, sigma),
                          None if v is None else np.asarray(v))


def exact_unbiased(estimator: str, quick: bool, fn=None) -> Outcome:
    """Quadrature E[f(τ)] on short trajectories against autodiff of the exact recursion."""
    res = []
    for lqr, theta, sigma in short_instances(quick):
        got = C.lqr_expectation(lqr, theta, sigma, fn or estimator)
        res.append((float(np.max(np.abs(got - _target(estimator, theta, lqr, sigma)))),
                    _describe(lqr, theta, sigma)))
    return _worst(res, f"|E[{estimator}] − exact recursion| by quadrature")


# ------------------------------------------------------------------ control variates

# (quick, full) trajectories of the controlled checks: enough for B·v to detect a bias of
# 0.1 × |∇²J v| at quick sizes (GPOMDP's variance is far smaller)
MC_SAMPLES = {"gpomdp": (100_000, 1_000_000), "hessian_vector": (300_000, 2_000_000)}
PILOT_SAMPLES = (50_000, 200_000)  # the separate pilot run that fits the coefficients β
PILOT_SEED_OFFSET = 10_007


def _control_variates(theta, traj, gamma, v):
    """The 16·H zero-mean control variates of one scalar trajectory (`ControlledDraw` derives them)."""
    x, u = traj.states[:, 0], traj.actions[:, 0]
    k, sig = theta[0], jnp.exp(theta[1])
    eps = (u - k * x) / sig
    s1, s2 = eps * x / sig, eps**2 - 1.0
    h11, h12, h22 = s1 * s1 - x**2 / sig**2, s1 * s2 - 2 * eps * x / sig, s2 * s2 - 2 * eps**2
    sv = s1 * v[0] + s2 * v[1]
    before = jnp.cumsum(sv) - sv
    after = jnp.sum(sv) - before - sv
    disc = gamma ** jnp.arange(x.shape[0])
    parts = []
    for q in (disc, disc * x**2):
        parts += [q * s1, q * s2, q * (h11 * v[0] + h12 * v[1]), q * (h12 * v[0] + h22 * v[1]),
                  q * s1 * before, q * s2 * before, q * s1 * after, q * s2 * after]
    return jnp.concatenate(parts)


@dataclasses.dataclass(frozen=True)
class ControlledDraw:
    """Engine problem for scalar LQR with θ = (K, log σ): per trajectory the estimator's vector y
    (GPOMDP g or B·v) followed by 16·H control variates Z with E[Z] = 0 exactly.

    With ε_t = (u_t − K x_t)/σ, the step score s_t = (ε_t x_t/σ, ε_t² − 1) and the step Hessian
    ∇²log π_t = [[−x_t²/σ², −2ε_t x_t/σ], [−2ε_t x_t/σ, −2ε_t²]], conditionally on the history
    F_t up to x_t: E[s_t | F_t] = 0 and E[s_t s_tᵀ + ∇²log π_t | F_t] = 0 (ε_t ~ N(0, 1) is
    independent of F_t). So for q_t ∈ {γ^t, γ^t x_t²} (F_t-measurable) and S_<t, S_>t the sums of
    the earlier and later step scores, each of

        q_t s_t,   q_t (s_t s_tᵀ + ∇²log π_t) v,   q_t s_t (S_<tᵀ v),   q_t s_t (S_>tᵀ v)

    has mean zero (the last because E[s_t' | F_t'] = 0 for t' > t and q_t s_t is F_t'-measurable).
    They are the baseline and information-identity terms of g and B·v, step by step."""

    estimator: str | Callable
    sigma: float | None = None
    variates: Callable = _control_variates  # (theta, traj, gamma, v) -> (16·H,)

    def __call__(self, key, n, args):
        theta, problem, gamma, v = args
        trajs = T.LQRSampler(self.sigma)(key, n, theta, problem)
        fn = T.ESTIMATORS[self.estimator] if isinstance(self.estimator, str) else self.estimator
        y = T.batched(fn, T.LQRPolicy(self.sigma), theta, trajs, gamma, v)
        return jnp.concatenate([y, jax.vmap(lambda tr: self.variates(theta, tr, gamma, v))(trajs)], axis=1)


def controlled_mean(lqr: L.LQR, theta, estimator, samples: int, pilot: int, seed: int, v):
    """(mean, standard error) of the estimator with the control variates of `ControlledDraw`
    subtracted: β = Σ_ZZ⁻¹ Σ_Zy from a pilot run (seed + PILOT_SEED_OFFSET), then the main run's
    mean of y − βᵀZ, whose expectation is exactly E[y] (β is independent of the main run), with
    standard error √(diag(Σ_yy − 2βᵀΣ_Zy + βᵀΣ_ZZ β)/n)."""
    d, m = lqr.dims
    th = jnp.asarray(L.check_policy(lqr, theta, None))
    if (d, m) != (1, 1) or th.size != 2:
        raise ValueError("the control variates are written for scalar LQR with θ = (K, log σ)")
    draw = ControlledDraw(estimator)
    args = (th, lqr, lqr.gamma, jnp.asarray(v, jnp.float64))
    first = montecarlo.stream(draw, args, pilot, seed + PILOT_SEED_OFFSET)
    beta = np.linalg.lstsq(first.cov[2:, 2:], first.cov[2:, :2], rcond=None)[0]
    main = montecarlo.stream(draw, args, samples, seed)
    cov = main.cov
    mean = main.mean[:2] - beta.T @ main.mean[2:]
    var = np.diag(cov[:2, :2] - 2 * beta.T @ cov[2:, :2] + beta.T @ cov[2:, 2:] @ beta)
    return mean, np.sqrt(np.maximum(var, 0.0) / samples), np.sqrt(np.diag(cov[:2, :2]) / samples)


def mc_unbiased(estimator: str, quick: bool, fn=None, seed: int = 31) -> Outcome:
    """Engine mean of GPOMDP (or B·v) on H = 8 trajectories, control variates subtracted, against
    the exact recursion."""
    lqr = L.make(**MC_CASE)
    v = MC_V if estimator == "hessian_vector" else None
    expected = _target(estimator, MC_THETA, lqr, None, v)
    n, pilot = MC_SAMPLES[estimator][not quick], PILOT_SAMPLES[not quick]
    mean, se, raw_se = controlled_mean(lqr, MC_THETA, fn or estimator, n, pilot, seed, MC_V)
    zc = stats.z_check(f"LQR {estimator}: MC mean (control variates) vs exact recursion", mean, se, expected)
    return kit.mc_outcome(zc, f"A = 0.9, B = 0.5, Q = 1, R = 0.1, Σ_w = 0.05, H = 8, γ = 0.9, θ = (−0.6, log 0.5), "
                           f"{n:,} trajectories, 16·H control variates (β from a {pilot:,}-trajectory pilot run; "
                           f"standard error {float(np.linalg.norm(se)):.3g} against {float(np.linalg.norm(raw_se)):.3g} "
                           f"without them)")


@claim("lqr.gpomdp_unbiased", SOURCE,
       "On LQR with a linear Gaussian policy GPOMDP is unbiased for the finite-horizon gradient: "
       "E[g(τ, θ)] = ∇J_H(θ), θ = (vec K, log σ) or vec K.",
       conditions="exact: tensor quadrature on H ≤ 3; Monte Carlo: scalar H = 8, θ = (K, log σ), 100,000 "
                  "trajectories (quick; 1M full) with control variates, which detects a bias of 0.043 × |∇J_H| "
                  "(quick; 0.014 × full) with probability 0.99 under Holm at α = 1e-6")
def _():
    return [Check("exact", lambda q: exact_unbiased("gpomdp", q)),
            Check("monte_carlo", lambda q: mc_unbiased("gpomdp", q))]


@claim("lqr.hessian_unbiased", SOURCE,
       "On LQR the Hessian estimator is unbiased: E[B(τ, θ)] = ∇²J_H(θ); its Hessian-vector "
       "product B·v (never forming B) has mean ∇²J_H v.",
       conditions="exact: tensor quadrature on H ≤ 3 (scalar, 2-state); Monte Carlo: scalar H = 8, θ = (K, log σ), "
                  "300,000 trajectories (quick; 2M full) with control variates, which detects a bias of "
                  "0.1 × |∇²J_H v| (quick; 0.036 × full) with probability 0.99 under Holm at α = 1e-6")
def _():
    return [Check("exact", lambda q: exact_unbiased("hessian", q)),
            Check("monte_carlo", lambda q: mc_unbiased("hessian_vector", q))]


def exact_objective(quick: bool, objective=L.objective) -> Outcome:
    """The recursion's J_H against quadrature of the discounted return."""
    res = []
    for lqr, theta, sigma in short_instances(quick, seed=1):
        got = float(objective(jnp.asarray(theta, dtype=jnp.float64), lqr, sigma))
        want = float(C.lqr_expectation(lqr, theta, sigma, "return")[0])
        res.append((abs(got - want), _describe(lqr, theta, sigma)))
    return _worst(res, "|J_H (recursion) − E[Σ γ^t r_t] (quadrature)|")


def mc_objective(quick: bool, objective=L.objective, seed: int = 32) -> Outcome:
    from sims.engines import stats

    lqr = L.make(**MC_CASE)
    s = C.lqr_returns(lqr, MC_THETA, samples=100_000 if quick else 1_000_000, seed=seed)
    want = float(objective(jnp.asarray(MC_THETA), lqr, None))
    return kit.mc_outcome(stats.z_check("mean return vs J_H", s.mean, s.mean_se, [want]), "H = 8, γ = 0.9")


@claim("lqr.exact_objective", "docs/design.md §4.5 (second-moment recursion)",
       "J_H(K, σ) = −Σ_{t<H} γ^t[tr((Q + KᵀRK)S_t) + σ² tr R] with S_{t+1} = (A+BK)S_t(A+BK)ᵀ + "
       "σ²BBᵀ + Σ_w is the expected discounted return of the sampled trajectories.")
def _():
    return [Check("exact", exact_objective), Check("monte_carlo", mc_objective)]


def fd_instances(quick: bool, seed: int = 3):
    """Stable scalar and 2-state instances at longer horizons (H up to 40)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(4 if quick else 12):
        if i % 2:
            m = rng.normal(size=(2, 2))
            m *= rng.uniform(0.3, 0.9) / np.max(np.abs(np.linalg.eigvals(m)))
            b, k = rng.normal(size=(2, 1)), 0.3 * rng.normal(size=(1, 2))
            lqr = L.make(m - b @ k, b, np.eye(2), 0.5, int(rng.integers(5, 41)), rng.uniform(0.8, 1.0),
                         noise_cov=0.02)
            theta = (*k.reshape(-1), math.log(rng.uniform(0.2, 1.0)))
        else:
            a, b = rng.uniform(-1.2, 1.2), rng.uniform(0.3, 1.5)
            k = (rng.uniform(-0.9, 0.9) - a) / b
            lqr = L.make(a, b, 1.0, rng.uniform(0.1, 1), int(rng.integers(5, 41)), rng.uniform(0.8, 1.0),
                         noise_cov=0.05)
            theta = (k, math.log(rng.uniform(0.2, 1.0)))
        out.append((lqr, theta))
    return out


def independent_objective(a, b, q, r, s0, sw, gamma: float, horizon: int, k, sigma: float) -> float:
    """J_H written out from docs/design.md §4.5 in plain NumPy (no `bandits.lqr`):
    S_0 = Σ_0, S_{t+1} = (A+BK)S_t(A+BK)ᵀ + σ²BBᵀ + Σ_w, J_H = −Σ_{t<H} γ^t [tr((Q + KᵀRK)S_t) + σ² tr R]."""
    m = a + b @ k
    cost, noise = q + k.T @ r @ k, sigma**2 * (b @ b.T) + sw
    s, j = np.array(s0, dtype=np.float64), 0.0
    for t in range(horizon):
        j -= gamma**t * (np.trace(cost @ s) + sigma**2 * np.trace(r))
        s = m @ s @ m.T + noise
    return float(j)


def independent_gradient(a, b, q, r, s0, sw, gamma: float, horizon: int, k, sigma: float, log_sigma: bool):
    """∇J_H in θ = (vec K row-major[, log σ]) by the tangent recursion, derived by hand: along a
    direction (dK, dω) with d(σ²) = 2σ² dω and dM = B dK,
    dS_{t+1} = dM S_t Mᵀ + M dS_t Mᵀ + M S_t dMᵀ + d(σ²)BBᵀ (dS_0 = 0),
    dJ = −Σ_t γ^t [tr((dKᵀRK + KᵀR dK) S_t) + tr((Q + KᵀRK) dS_t) + d(σ²) tr R]."""
    mdim, ddim = k.shape
    m = a + b @ k
    cost, noise = q + k.T @ r @ k, sigma**2 * (b @ b.T) + sw
    out = []
    for i in range(mdim * ddim + int(log_sigma)):
        dk = np.zeros_like(k)
        dvar = 0.0
        if i < mdim * ddim:
            dk.reshape(-1)[i] = 1.0
        else:
            dvar = 2.0 * sigma**2
        dm, dcost = b @ dk, dk.T @ r @ k + k.T @ r @ dk
        s, ds, dj = np.array(s0, dtype=np.float64), np.zeros_like(s0, dtype=np.float64), 0.0
        for t in range(horizon):
            dj -= gamma**t * (np.trace(dcost @ s) + np.trace(cost @ ds) + dvar * np.trace(r))
            s, ds = m @ s @ m.T + noise, dm @ s @ m.T + m @ ds @ m.T + m @ s @ dm.T + dvar * (b @ b.T)
        out.append(dj)
    return np.array(out)


def _independent(lqr, theta, sigma=None):
    """(J, ∇J, ∇²J, central-difference ∇J) of the NumPy recursion at θ: the Hessian by central
    differences (step 1e-5) of the tangent gradient, the last entry the tangent's own check."""
    d, m = lqr.dims
    mats = [np.asarray(x, dtype=np.float64) for x in (lqr.A, lqr.B, lqr.Q, lqr.R, lqr.init_cov, lqr.noise_cov)]
    gamma, h = float(lqr.gamma), lqr.horizon
    th = np.asarray(theta, dtype=np.float64)
    log_sigma = th.size == d * m + 1

    def split(x):
        return x[: d * m].reshape(m, d), (math.exp(x[-1]) if log_sigma else sigma)

    def j(x):
        return independent_objective(*mats, gamma, h, *split(x))

    def grad(x):
        return independent_gradient(*mats, gamma, h, *split(x), log_sigma)

    step = 1e-5
    eye = np.eye(th.size)
    hess = np.array([(grad(th + step * e) - grad(th - step * e)) / (2 * step) for e in eye])
    fd = np.array([(j(th + 1e-6 * e) - j(th - 1e-6 * e)) / 2e-6 for e in eye])
    return j(th), grad(th), 0.5 * (hess + hess.T), fd


INDEPENDENT_TOL = {"J": 1e-10, "gradient": 1e-9, "hessian": 1e-6, "tangent_vs_fd": 1e-6}


def exact_finite_difference(quick: bool, objective=L.objective, gradient=L.gradient, hessian=L.hessian) -> Outcome:
    """The lab's J_H, ∇J_H and ∇²J_H against `_independent` (relative error |x − y|/(1 + |y|),
    max over entries), and the independent tangent gradient against central differences of the
    independent J."""
    worst = dict.fromkeys(INDEPENDENT_TOL, 0.0)
    where = None
    for lqr, theta in fd_instances(quick):
        th = np.asarray(theta, dtype=np.float64)
        j, g, hs, fd = _independent(lqr, th)
        got = {"J": float(objective(jnp.asarray(th), lqr)), "gradient": np.asarray(gradient(jnp.asarray(th), lqr)),
               "hessian": np.asarray(hessian(jnp.asarray(th), lqr))}
        errs = {"J": abs(got["J"] - j) / (1 + abs(j)),
                "gradient": float(np.max(np.abs(got["gradient"] - g) / (1 + np.abs(g)))),
                "hessian": float(np.max(np.abs(got["hessian"] - hs) / (1 + np.abs(hs)))),
                "tangent_vs_fd": float(np.max(np.abs(g - fd) / (1 + np.abs(fd))))}
        for key, err in errs.items():
            err = err if np.isfinite(err) else math.inf
            if err > worst[key]:
                worst[key] = err
                if err > INDEPENDENT_TOL[key]:
                    where = {**_describe(lqr, th, None), "quantity": key, "lab": np.asarray(got.get(key, g)).tolist(),
                             "independent": np.asarray({"J": j, "gradient": g, "hessian": hs}.get(key, fd)).tolist()}
    holds = all(worst[k] <= tol for k, tol in INDEPENDENT_TOL.items())
    return Outcome(holds, worst, {k: f"≤ {t:g}" for k, t in INDEPENDENT_TOL.items()},
                   "lab's J_H, ∇J_H (autodiff) and ∇²J_H against the NumPy recursion with a hand-derived tangent "
                   f"gradient and central-difference Hessian; relative errors over {len(fd_instances(quick))} instances",
                   counterexample=None if holds else where)


def mc_finite_difference(quick: bool, seed: int = 33, fn=None) -> Outcome:
    """GPOMDP's Monte Carlo mean (control variates subtracted) against the independent tangent
    gradient of the NumPy recursion."""
    lqr = L.make(**MC_CASE)
    _, want, _, _ = _independent(lqr, MC_THETA)
    n, pilot = MC_SAMPLES["gpomdp"][not quick], PILOT_SAMPLES[not quick]
    mean, se, _ = controlled_mean(lqr, MC_THETA, fn or "gpomdp", n, pilot, seed, MC_V)
    zc = stats.z_check("LQR gpomdp: MC mean (control variates) vs NumPy tangent gradient", mean, se, want)
    return kit.mc_outcome(zc, f"H = 8, {n:,} trajectories, control variates as in lqr.gpomdp_unbiased")


@claim("lqr.gradient_finite_difference", "docs/design.md §4.5 (second-moment recursion)",
       "The lab's exact J_H, ∇J_H and ∇²J_H (autodiff of bandits.lqr's recursion) equal the second-moment "
       "recursion written out independently in NumPy, its gradient by a hand-derived tangent recursion "
       "(itself equal to central differences of that J) and its Hessian by central differences of that "
       "gradient; GPOMDP's Monte Carlo mean equals that independent gradient.")
def _():
    return [Check("exact", exact_finite_difference), Check("monte_carlo", mc_finite_difference)]


RICCATI_CASE = dict(A=1.2, B=0.8, Q=1.0, R=0.3, gamma=0.9, noise_cov=0.05)
RICCATI_SIGMA = 0.4


def exact_riccati(quick: bool, gain_offset: float = 0.0) -> Outcome:
    """∇J_∞(K*) = 0 (discounted Lyapunov value) and |∇J_H(K*)| → 0 as H grows, σ fixed."""
    out = {}
    for name, case in (("scalar", RICCATI_CASE),
                       ("2-state", dict(A=np.array([[1.0, 0.3], [0.0, 0.9]]), B=np.array([[0.0], [1.0]]),
                                        Q=np.eye(2), R=0.5, gamma=0.95, noise_cov=0.01))):
        lqr = L.make(**case, horizon=600)
        k, _ = L.optimal_gain(lqr)
        theta = jnp.asarray(k.reshape(-1) + gain_offset)
        g_inf = np.asarray(jax.grad(L.objective_infinite)(theta, lqr, RICCATI_SIGMA))
        g_h = np.asarray(L.gradient(theta, lqr, RICCATI_SIGMA))
        out[name] = {"K*": k.reshape(-1).round(8).tolist(), "|∇J_∞(K*)|": float(np.linalg.norm(g_inf)),
                     "|∇J_600(K*)|": float(np.linalg.norm(g_h))}
    worst = max(max(v["|∇J_∞(K*)|"], v["|∇J_600(K*)|"]) for v in out.values())
    return Outcome(worst <= TOL, out, f"≤ {TOL:g}", "discounted Riccati gain; σ = 0.4 fixed",
                   counterexample=out if worst > TOL else None)


def mc_riccati(quick: bool, gain_offset: float = 0.0, seed: int = 34) -> Outcome:
    """GPOMDP at K* on H = 150 trajectories (γ = 0.9: |∇J_H(K*)| ~ γ^H, far below the standard error)
    has mean 0."""
    lqr = L.make(**RICCATI_CASE, horizon=150)
    k, _ = L.optimal_gain(lqr)
    theta = k.reshape(-1) + gain_offset
    zc = C.lqr_check(lqr, theta, RICCATI_SIGMA, "gpomdp", 50_000 if quick else 400_000, seed,
                     expected=np.zeros(1), scale=1.0)
    return kit.mc_outcome(zc, f"K* = {k[0, 0]:.6f}, σ = 0.4 fixed, H = 150, γ = 0.9")


@claim("lqr.riccati_stationary", "Riccati (discounted LQR); docs/design.md §4.5",
       "The gain K* of the discounted Riccati equation is a stationary point of J for σ fixed: "
       "∇J_∞(K*) = 0, and ∇J_H(K*) → 0 as the horizon grows (γ < 1).",
       conditions="γ < 1 and K* stabilises the discounted closed loop (γ·ρ(A + BK*)² < 1); the Monte Carlo check "
                  "(GPOMDP at K*, H = 150, 50,000 trajectories quick, 400,000 full, no control variates) detects "
                  "|E[g]| ≥ 0.74 (quick; 0.26 full) with probability 0.99; |∇J_H| is 0.66 at K* + 0.1 and 2.6 at "
                  "K* + 0.3")
def _():
    return [Check("exact", exact_riccati), Check("monte_carlo", mc_riccati)]
