"""Claims of docs/design.md §4.5 on one-step continuous bandits with a Gaussian policy.

Exact checks integrate the estimator functions themselves (Gauss–Hermite quadrature, exact for
the polynomial integrands here; enumeration on softmax bandits) and compare with the closed forms
of `bandits.gaussian`; the closed forms themselves are pinned to Gaussian moments computed here by
quadrature in plain NumPy with the score written out by hand (`quadrature_moments`). Monte Carlo
checks stream the same estimators through the one engine (`sims.engines.montecarlo.stream`) under Holm
at α = 1e-6. Every check function takes the thing under
test as an argument, so the tests can hand it a planted defect and watch it fail.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits import gaussian as G
from bandits import rewards as R
from bandits import softmax
from sims import continuous as C
from sims import estimators
from sims import trajectory as T
from sims.claims import _kit as kit
from sims.engines import stats
from sims.ledger import Check, Outcome, claim

SOURCE = "Fatkhullin et al. 2023 (ICML), g and B; docs/design.md §4.5"
TOL = 1e-9
MC_THETA, MC_COEFFS = (0.3, math.log(0.8)), G.REWARDS["cubic"]


def instances(quick: bool, seed: int = 0):
    """Random Gaussian bandits (θ, coeffs, σ): linear, quadratic and cubic rewards, θ = (μ, log σ)
    or μ alone with σ fixed."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(6 if quick else 24):
        coeffs = rng.uniform(-2, 2, size=2 + i % 3)
        mu, w = rng.uniform(-2, 2), rng.uniform(-1.0, 0.7)
        out.append(((mu, w), coeffs, None) if i % 2 == 0 else ((mu,), coeffs, math.exp(w)))
    return out


def target(estimator: str, theta, coeffs, sigma=None, v=None):
    th, c = jnp.asarray(theta, dtype=jnp.float64), jnp.asarray(coeffs, dtype=jnp.float64)
    return C.exact_target(estimator, G.gradient(th, c, sigma), G.hessian(th, c, sigma), v)


def _worst(residuals, what, n):
    worst, where = max(residuals, key=lambda x: x[0])
    return Outcome(worst <= TOL, worst, f"≤ {TOL:g}", f"{what}; max residual over {n} random instances",
                   counterexample=where if worst > TOL else None)


def exact_unbiased(estimator: str, quick: bool, fn=None) -> Outcome:
    """Gauss–Hermite E[f(τ)] against the closed-form ∇J (gpomdp) or ∇²J (hessian)."""
    res = []
    for theta, c, sigma in instances(quick):
        got = C.gaussian_expectation(theta, c, sigma, fn or estimator)
        res.append((float(np.max(np.abs(got - target(estimator, theta, c, sigma)))),
                    {"theta": list(theta), "coeffs": np.round(c, 6).tolist(), "sigma": sigma}))
    return _worst(res, f"|E[{estimator}] − closed form| by quadrature", len(res))


def softmax_unbiased(estimator: str, quick: bool, fn=None) -> Outcome:
    """Enumerated E[f(τ)] on one-step softmax bandits against ∇J = π∘(m − J) or the Hessian."""
    rng = np.random.default_rng(1)
    res = []
    for _ in range(6 if quick else 24):
        k = int(rng.integers(2, 6))
        logits, model = rng.uniform(-3, 3, size=k), R.bernoulli(rng.uniform(size=k))
        want = (softmax.gradient(logits, model.means) if estimator == "gpomdp"
                else np.asarray(softmax.hessian(logits, model.means)).reshape(-1))
        got = C.softmax_expectation(logits, model, fn or estimator)
        res.append((float(np.max(np.abs(got - want))), {"logits": np.round(logits, 6).tolist(),
                                                        "p": np.round(model.means, 6).tolist()}))
    return _worst(res, f"|E[{estimator}] − closed form| by enumeration (softmax bandits)", len(res))


# (quick, full) samples: B's variance is about 20 times g's relative to the target, so the Hessian
# check draws 2.5M one-step samples to detect a bias of 0.1 × |∇²J| at quick sizes
MC_SAMPLES = {"gpomdp": (400_000, 4_000_000), "hessian": (2_500_000, 10_000_000)}


def mc_unbiased(estimator: str, quick: bool, fn=None, policy=None, seed: int = 21) -> Outcome:
    """Engine mean of the estimator on the cubic-reward bandit against the closed form."""
    th, c = jnp.asarray(MC_THETA), jnp.asarray(MC_COEFFS)
    draw = T.TrajectoryDraw(T.GaussianSampler(), policy or T.GaussianPolicy(), fn or estimator)
    n = MC_SAMPLES[estimator][not quick]
    zc = C.trajectory_check(draw, (th, c, 1.0, jnp.zeros(2)), target(estimator, th, c),
                            n, seed, f"{estimator} on N(μ, σ²), cubic r")
    return kit.mc_outcome(zc, f"θ = (0.3, log 0.8), r = a − a³/3, {n:,} samples")


@claim("gaussian.gpomdp_unbiased", SOURCE,
       "On one-step bandits the GPOMDP estimate g = r(a)∇log π(a) is unbiased: E[g] = ∇J "
       "(Gaussian policy, θ = (μ, log σ) or μ alone, polynomial rewards; also the softmax policy).")
def _():
    return [Check("exact", lambda q: exact_unbiased("gpomdp", q)),
            Check("exact", lambda q: softmax_unbiased("gpomdp", q)),
            Check("monte_carlo", lambda q: mc_unbiased("gpomdp", q))]


@claim("gaussian.hessian_unbiased", SOURCE,
       "On one-step bandits the Hessian estimator B = ∇Φ∇log πᵀ + ∇²Φ, Φ = r(a) log π(a), is "
       "unbiased: E[B] = ∇²J (Gaussian policy with polynomial rewards; also the softmax policy).",
       conditions="exact: Gauss–Hermite quadrature and enumeration; Monte Carlo: θ = (0.3, log 0.8), r = a − a³/3, "
                  "2.5M samples (quick; 10M full), which detects a bias of 0.09 × |∇²J| (quick; 0.043 × full) "
                  "with probability 0.99 under Holm at α = 1e-6")
def _():
    return [Check("exact", lambda q: exact_unbiased("hessian", q)),
            Check("exact", lambda q: softmax_unbiased("hessian", q)),
            Check("monte_carlo", lambda q: mc_unbiased("hessian", q))]


QUADRATURE_NODES = 30  # Gauss–Hermite: exact for polynomials of degree < 60 (here ≤ 3 + 4)


def quadrature_moments(theta, coeffs, sigma=None):
    """(J, ∇J, ∇²J, F, ∇J by central differences of J) of a Gaussian bandit by probabilists'
    Gauss–Hermite quadrature in NumPy, independent of `bandits.gaussian`: a = μ + σz,
    J = E[r(a)], ∇J = E[r u], ∇²J = E[r(u uᵀ + ∇u)], F = E[u uᵀ] with, for θ = (μ, ω = log σ),
    u = ((a − μ)/σ², (a − μ)²/σ² − 1) and ∇u = [[−1/σ², −2(a − μ)/σ²], [−2(a − μ)/σ², −2(a − μ)²/σ²]],
    and for θ = μ (σ fixed) u = (a − μ)/σ², ∇u = −1/σ²."""
    z, w = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    w = w / w.sum()
    c = np.asarray(coeffs, dtype=np.float64)
    th = np.asarray(theta, dtype=np.float64)

    def parts(t):
        mu, s = (t[0], math.exp(t[1])) if t.size == 2 else (t[0], float(sigma))
        a = mu + s * z
        return mu, s, a, np.polynomial.polynomial.polyval(a, c)

    mu, s, a, r = parts(th)
    d = a - mu
    if th.size == 2:
        u = np.stack([d / s**2, d**2 / s**2 - 1.0], axis=1)
        du = np.stack([np.stack([-np.ones_like(d) / s**2, -2 * d / s**2], 1),
                       np.stack([-2 * d / s**2, -2 * d**2 / s**2], 1)], 1)
    else:
        u, du = (d / s**2)[:, None], (-np.ones_like(d) / s**2)[:, None, None]
    j = float(w @ r)
    grad = np.einsum("i,i,ik->k", w, r, u)
    hess = np.einsum("i,i,ikl->kl", w, r, u[:, :, None] * u[:, None, :] + du)
    fis = np.einsum("i,ik,il->kl", w, u, u)
    h = 1e-6
    fd = np.array([(w @ parts(th + h * e)[3] - w @ parts(th - h * e)[3]) / (2 * h) for e in np.eye(th.size)])
    return j, grad, hess, fis, fd


CLOSED_FORM_TOL = 1e-9
FD_TOL = 1e-6  # central differences of the quadrature J (step 1e-6): the score formula's own check


def exact_closed_forms(quick: bool, objective=G.objective, gradient=G.gradient, hessian=G.hessian,
                       fisher=G.fisher) -> Outcome:
    """The closed forms J, ∇J, ∇²J, F of `bandits.gaussian` against `quadrature_moments`, and the
    quadrature ∇J against central differences of the quadrature J."""
    res, fd_worst = [], 0.0
    for theta, c, sigma in instances(quick, seed=2):
        th, cc = jnp.asarray(theta, dtype=jnp.float64), jnp.asarray(c)
        j, g, h, f, fd = quadrature_moments(theta, c, sigma)
        got = [float(objective(th, cc, sigma)), np.asarray(gradient(th, cc, sigma)),
               np.asarray(hessian(th, cc, sigma)), np.asarray(fisher(th, sigma))]
        r = [float(np.max(np.abs(np.asarray(x) - y) / (1 + np.abs(y)))) for x, y in zip(got, (j, g, h, f))]
        fd_worst = max(fd_worst, float(np.max(np.abs(fd - g) / (1 + np.abs(g)))))
        res.append((max(r), {"theta": list(theta), "coeffs": np.round(c, 6).tolist(), "sigma": sigma,
                             "errors (J, ∇J, ∇²J, F)": r}))
    worst, where = max(res, key=lambda x: x[0])
    holds = worst <= CLOSED_FORM_TOL and fd_worst <= FD_TOL
    return Outcome(holds, {"closed_forms_vs_quadrature": worst, "quadrature_gradient_vs_fd": fd_worst},
                   {"closed_forms_vs_quadrature": f"≤ {CLOSED_FORM_TOL:g}", "quadrature_gradient_vs_fd": f"≤ {FD_TOL:g}"},
                   f"J, ∇J, ∇²J, F against {QUADRATURE_NODES}-node Gauss–Hermite moments with the score written out "
                   f"(relative errors), and that ∇J against central differences of the quadrature J; "
                   f"{len(res)} random instances", counterexample=where if not holds else None)


@dataclasses.dataclass(frozen=True)
class _RewardAndFisher:
    """Engine problem: per sample (r(a), vec(u(a)u(a)ᵀ)); its mean is (J, vec F)."""

    def __call__(self, key, n, args):
        theta, coeffs = args
        a = G.sample(key, theta, (n,))
        u = G.score(theta, a)
        return jnp.concatenate([G.polyval(coeffs, a)[:, None], (u[:, :, None] * u[:, None, :]).reshape(n, -1)], 1)


def mc_closed_forms(quick: bool, objective=G.objective, fisher=G.fisher, seed: int = 22) -> Outcome:
    th, c = jnp.asarray(MC_THETA), jnp.asarray(MC_COEFFS)
    want = np.concatenate([[float(objective(th, c))], np.asarray(fisher(th)).reshape(-1)])
    zc = C.trajectory_check(_RewardAndFisher(), (th, c), want, 100_000 if quick else 1_000_000, seed,
                            "sample mean of (r, u uᵀ) vs (J, F)")
    return kit.mc_outcome(zc, "θ = (0.3, log 0.8), r = a − a³/3")


@claim("gaussian.closed_forms", "docs/design.md §4.5 (Gaussian moments)",
       "J = Σ_k c_k E[a^k], ∇J = E[r u], ∇²J = E[r(u uᵀ + ∇u)] and F = diag(1/σ², 2) of bandits.gaussian "
       "equal Gaussian moments computed independently by quadrature (with ∇J also equal to central "
       "differences of the quadrature J), and the sample means of (r, u uᵀ).")
def _():
    return [Check("exact", exact_closed_forms), Check("monte_carlo", mc_closed_forms)]


# ------------------------------------------------------------------ group estimators (calculator)

GROUP_CASES = (("reinforce", {"baseline": 0.3}), ("rloo", {}), ("grpo_mean", {}))
GROUP_THETA, GROUP_COEFFS = (0.2, math.log(0.8)), G.REWARDS["quadratic"]


def group_quadrature(name, theta, coeffs, group, nodes=12, **params):
    """E[ĝ] and Cov[ĝ] of a registry estimator by tensor quadrature over the G actions."""
    est = estimators.get(name)
    p = estimators.resolve_params(est, group, **params)
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    idx = np.array(list(itertools.product(range(nodes), repeat=group)))
    th = jnp.asarray(theta, dtype=jnp.float64)
    mu, s = (float(x) for x in G.mu_sigma(th))
    a = jnp.asarray(mu + s * z[idx])
    r = G.polyval(jnp.asarray(coeffs), a)
    g = np.asarray(jax.vmap(lambda aa, rr: C._gaussian_group_gradient(estimators.get(name), th, None, aa, rr, p))(a, r))
    wt = np.prod(w[idx], axis=1)
    mean = wt @ g
    d = g - mean
    return mean, (d * wt[:, None]).T @ d


def exact_group_moments(quick: bool, closed_form=C.gaussian_group_exact) -> Outcome:
    res = []
    for (name, params), group in itertools.product(GROUP_CASES, (2,) if quick else (2, 3)):
        mean, cov = group_quadrature(name, GROUP_THETA, GROUP_COEFFS, group, **params)
        ex = closed_form(estimators.get(name), GROUP_THETA, GROUP_COEFFS, group, **params)
        err = max(np.max(np.abs(mean - ex["mean"])), np.max(np.abs(cov - ex["cov"])))
        res.append((float(err), {"estimator": name, "G": group, **params}))
    worst, where = max(res, key=lambda x: x[0])
    return Outcome(worst <= TOL, worst, f"≤ {TOL:g}",
                   f"closed-form E[ĝ], Cov[ĝ] vs quadrature over the group; max over {len(res)} cases",
                   counterexample=where if worst > TOL else None)


def mc_group_moments(quick: bool, closed_form=C.gaussian_group_exact, seed: int = 23) -> Outcome:
    checks, n = [], 100_000 if quick else 1_000_000
    for i, (name, params) in enumerate(GROUP_CASES):
        ex = closed_form(estimators.get(name), GROUP_THETA, GROUP_COEFFS, 4, **params)
        mc = C.gaussian_group_mc(estimators.get(name), GROUP_THETA, GROUP_COEFFS, 4, n, seed=seed + i, **params)
        checks.append(stats.z_check(f"{name} mean", mc.mean, mc.mean_se, ex["mean"]))
        checks.append(stats.z_check(f"{name} tr Cov", mc.trace_var, mc.trace_var_se, np.trace(ex["cov"])))
    return kit.mc_outcome(stats.combine("reinforce (b = 0.3), rloo, grpo_mean at G = 4", checks),
                       "θ = (0.2, log 0.8), r = −(a − 1)²")


@claim("gaussian.group_moments", "docs/design.md §4.1 (matrix form) and §4.5",
       "On a Gaussian bandit a group of G gives E[ĝ] = ∇J and Cov = (E[(R−b)²uuᵀ] − ∇J∇Jᵀ)/G for "
       "REINFORCE, Cov = (E[ρ²uuᵀ] + F·Var R/(G−1) − ∇J∇Jᵀ(G−2)/(G−1))/G for RLOO, and "
       "(1 − 1/G) times RLOO's ĝ for the group mean.")
def _():
    return [Check("exact", exact_group_moments), Check("monte_carlo", mc_group_moments)]
