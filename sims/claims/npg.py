"""Claims of docs/design.md §4.7: the algebra of N-PG-IGT and (N)-HARPG (Fatkhullin, Barakat,
Kireeva & He, ICML 2023) and the oracles of the softmax bandit they run on.

Symbolic checks come from `theory.npg`; exact checks run `sims.npg` with exact oracles (float64)
or enumerate the softmax bandit's outcomes; Monte Carlo checks compare sample means with closed
forms of `bandits.softmax` under Holm at α = 1e-6. The check functions are public and take the
piece under test as an argument (schedules, step function, quadrature, estimator, problem), so
the tests feed them planted defects.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bandits import rewards as R
from bandits import softmax
from sims.claims import _kit as kit
from sims.engines import stats
from sims.ledger import Check, Outcome, claim, symbolic_zero
from sims.npg import methods as npg
from sims.npg import problems as P
from theory import npg as T

SOURCE = "Fatkhullin, Barakat, Kireeva & He, ICML 2023"
TRACK_TOL = 1e-11  # ‖d_t − ∇J(θ_t)‖ relative to ‖∇J(θ_0)‖: rounding is ~1e-15 per step
QUAD_TOL = 1e-12

# Reference values of docs/design.md §4.7 (γ_0 = 0.1, t = 0, 1, 2, 3), with the digits given there.
REFERENCE = {
    "gamma (normalised, gamma0 = 0.1)": ([0.1, 0.066667, 0.05, 0.04], 5e-7),
    # (2/3)^{4/5} = 0.72298118..., (1/2)^{4/5} = 0.57434918...: the quoted 0.722980 and 0.574350
    # are one unit off in the sixth decimal, so η is held to 1.5 units of it
    "eta (N-PG-IGT) = (2/(t+2))^(4/5)": ([1.0, 0.722980, 0.574350, 0.480450], 1.5e-6),
    "look-ahead (1-eta)/eta": ([0.0, 0.38316, 0.74110, 1.08138], 5e-6),
}


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


def check_schedules(schedules=None, lookahead=npg.igt_lookahead) -> Outcome:
    """The schedules at t = 0..3 with γ_0 = 0.1 against the reference values of §4.7."""
    schedules = schedules or npg.SCHEDULES
    t = np.arange(4)
    measured = {}
    for m in ("n-pg-igt", "n-harpg"):
        measured[f"gamma {m}"] = [float(schedules[m](i, 0.1)[0]) for i in t]
    eta = [float(schedules["n-pg-igt"](i, 0.1)[1]) for i in t]
    measured["eta n-pg-igt"] = eta
    measured["look-ahead"] = [float(lookahead(e)) for e in eta]
    pairs = [("gamma n-pg-igt", "gamma (normalised, gamma0 = 0.1)"),
             ("gamma n-harpg", "gamma (normalised, gamma0 = 0.1)"),
             ("eta n-pg-igt", "eta (N-PG-IGT) = (2/(t+2))^(4/5)"),
             ("look-ahead", "look-ahead (1-eta)/eta")]
    worst = {m: max(abs(a - b) / REFERENCE[r][1] for a, b in zip(measured[m], REFERENCE[r][0]))
             for m, r in pairs}
    ok = all(w <= 1.0 for w in worst.values())
    return Outcome(ok, measured, {r: v for r, (v, _) in REFERENCE.items()},
                   "γ_t, η_t and (1−η_t)/η_t at t = 0..3 within the reference values' tolerance "
                   "(half a unit of the last digit; 1.5 units for η); worst error in tolerances: "
                   + ", ".join(f"{m} {w:.2f}" for m, w in worst.items()))


# ---------------------------------------------------------------------------------------------
# Exact oracles on quadratics: d_t tracks ∇J(θ_t)
# ---------------------------------------------------------------------------------------------


def random_quadratics(dims, starts: int, seed: int):
    """Random concave quadratics (one per dim; Hessian eigenvalues in [0.5, 3]) with exact
    oracles, each with `starts` random starting points: a list of (problem, θ_0)."""
    rng = np.random.default_rng(seed)
    out = []
    for d in dims:
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        a = q @ np.diag(rng.uniform(0.5, 3.0, d)) @ q.T
        prob = P.quadratic_problem((a + a.T) / 2, rng.normal(size=d), name=f"quadratic-{d}")
        out += [(prob, rng.normal(0, 2, d)) for _ in range(starts)]
    return out


def tracking_error(step, problem: npg.Problem, gamma0: float, steps: int, theta0=None) -> float:
    """max_t ‖d_t − ∇J(θ_t)‖ / ‖∇J(θ_0)‖ over a run of `step` with exact oracles."""
    thetas, ds, _ = npg.trace(step, problem, gamma0, steps, theta0=theta0)
    grads = np.asarray(jax.vmap(lambda th: problem.grad_sample(None, th))(thetas))
    scale = max(float(np.linalg.norm(grads[0])), 1e-300)
    return float(np.max(np.linalg.norm(np.asarray(ds) - grads, axis=1)) / scale)


def check_tracking(steps_by_name: dict, quick: bool) -> Outcome:
    """With exact gradient and Hessian oracles on random quadratics, d_t = ∇J(θ_t) at every t
    for each named step function (γ_0 ∈ {0.05, 0.5})."""
    problems = random_quadratics((3,) if quick else (2, 3, 4, 5), 2 if quick else 3, seed=12)
    steps = 40 if quick else 200
    worst, where = {}, None
    for name, step in steps_by_name.items():
        worst[name] = 0.0
        for prob, theta0 in problems:
            for g0 in (0.05, 0.5):
                err = tracking_error(step, prob, g0, steps, theta0)
                if err > worst[name]:
                    worst[name] = err
                if err > TRACK_TOL and where is None:
                    where = {"method": name, "dim": prob.dim, "gamma0": g0, "error": err,
                             "theta0": np.asarray(theta0).tolist()}
    ok = all(w <= TRACK_TOL for w in worst.values())
    return Outcome(ok, worst, f"≤ {TRACK_TOL:g}",
                   f"max_t ‖d_t − ∇J(θ_t)‖/‖∇J(θ_0)‖ over {len(problems)} random quadratic "
                   f"instances (dim {'3' if quick else '2..5'}), γ_0 ∈ {{0.05, 0.5}}, {steps} steps, exact oracles",
                   counterexample=where)


# ---------------------------------------------------------------------------------------------
# The defining identities on a stochastic run: every step recomputed from its oracle samples
# ---------------------------------------------------------------------------------------------

IDENTITY_TOL = 1e-10  # relative; one step's rounding is ~1e-16
IDENTITY_METHODS = ("pg", "n-pg-m", "n-pg-igt", "harpg", "n-harpg")


def paper_schedule(method: str, t, gamma0):
    """(γ_t, η_t) written here from the paper (Algorithms 1–2) and the released code (`sgd`,
    `nsgdm`), plain NumPy: ρ = 2/(t+2); pg γ_0ρ^{2/3}; n-pg-m γ_0ρ, ρ^{2/3}; n-pg-igt γ_0ρ,
    ρ^{4/5}; harpg γ_0ρ^{1/2}, ρ; n-harpg γ_0ρ, ρ."""
    r = 2.0 / (np.asarray(t, np.float64) + 2.0)
    return {"pg": (gamma0 * r ** (2 / 3), np.ones_like(r)), "n-pg-m": (gamma0 * r, r ** (2 / 3)),
            "n-pg-igt": (gamma0 * r, r**0.8), "harpg": (gamma0 * np.sqrt(r), r),
            "n-harpg": (gamma0 * r, r)}[method]


def step_keys(seed: int, steps: int):
    """The keys of steps 0..steps−1 of a run from `seed` (docs/design.md §4.7: each step splits
    its key into (next, g, B, q)): three arrays of typed keys (g, B, q)."""

    def body(key, _):
        nxt, kg, kh, kq = jax.random.split(key, 4)
        return nxt, (kg, kh, kq)

    _, (kg, kh, kq) = jax.lax.scan(body, jax.random.key(seed), None, length=steps)
    return kg, kh, kq


def identity_error(method: str, problem: npg.Problem, gamma0: float, steps: int, seed: int,
                   step=None) -> float:
    """Runs `step` (default the registered method's) with the problem's stochastic oracles and
    recomputes every step t from the recorded θ_t, θ_{t−1}, d_{t−1} (θ_{−1} = θ_0, d_{−1} = 0)
    and the oracle samples of that step's keys, following the paper's formulas:
    g_t = g(τ, p_t) at p_t = θ_t (p_t = θ_t + ((1−η_t)/η_t)(θ_t − θ_{t−1}) for N-PG-IGT);
    v_t = B(τ̂, q_tθ_t + (1−q_t)θ_{t−1})(θ_t − θ_{t−1}), q_t the uniform draw of the q key;
    d_t = g_t (pg), (1−η_t)d_{t−1} + η_t g_t (n-pg-m, n-pg-igt),
    (1−η_t)(d_{t−1} + v_t) + η_t g_t ((N)-HARPG); θ_{t+1} = θ_t + γ_t d_t (pg, harpg) or
    θ_t + γ_t d_t/‖d_t‖. Returns max_t of the relative errors of d_t and θ_{t+1}."""
    step = step or npg.METHODS[method].step
    thetas, ds, final = npg.trace(step, problem, gamma0, steps, seed=seed)
    th = np.asarray(thetas)
    nxt = np.concatenate([th[1:], np.asarray(final.theta)[None]])
    prev = np.concatenate([th[:1], th[:-1]])
    d_prev = np.concatenate([np.zeros_like(th[:1]), np.asarray(ds)[:-1]])
    t = np.arange(steps)
    gamma, eta = paper_schedule(method, t, gamma0)
    kg, kh, kq = step_keys(seed, steps)
    point = th + ((1 - eta) / eta)[:, None] * (th - prev) if method == "n-pg-igt" else th
    g = np.asarray(jax.vmap(problem.grad_sample)(kg, jnp.asarray(point)))
    if method in ("harpg", "n-harpg"):
        q = np.asarray(jax.vmap(lambda k: jax.random.uniform(k, dtype=jnp.float64))(kq))
        hat = q[:, None] * th + (1 - q[:, None]) * prev
        v = np.asarray(jax.vmap(problem.hvp_sample)(kh, jnp.asarray(hat), jnp.asarray(th - prev)))
        d = (1 - eta)[:, None] * (d_prev + v) + eta[:, None] * g
    elif method == "pg":
        d = g
    else:
        d = (1 - eta)[:, None] * d_prev + eta[:, None] * g
    if method in ("pg", "harpg"):
        want = th + gamma[:, None] * d
    else:
        n = np.linalg.norm(d, axis=1, keepdims=True)
        want = th + gamma[:, None] * np.where(n > 0, d / np.where(n > 0, n, 1.0), 0.0)
    err_d = np.linalg.norm(np.asarray(ds) - d, axis=1) / (np.linalg.norm(d, axis=1) + 1e-300)
    err_th = np.linalg.norm(nxt - want, axis=1) / (1 + np.linalg.norm(want, axis=1))
    return float(max(err_d.max(), err_th.max()))


def identity_problems(quick: bool = False):
    """Non-quadratic problems with stochastic oracles on which the identities are checked: the
    3-armed softmax bandit (one step) and, in full mode, the paper-setting MDP (trajectories of
    H steps)."""
    return [P.get("softmax")] if quick else [P.get("softmax"), P.get("mdp-logistic")]


def check_trajectory_identities(quick: bool, methods=IDENTITY_METHODS) -> Outcome:
    """`identity_error` ≤ IDENTITY_TOL for every method, problem and seed (γ_0 = 0.5 for the
    normalised steps, 0.2 otherwise)."""
    steps, seeds = (25, (0,)) if quick else (200, (0, 1, 2))
    worst, where = {}, None
    for m in methods:
        worst[m] = 0.0
        for prob in identity_problems(quick):
            g0 = 0.2 if m in ("pg", "harpg") else 0.5
            for seed in seeds:
                err = identity_error(m, prob, g0, steps, seed)
                worst[m] = max(worst[m], err) if np.isfinite(err) else np.inf
                if not err <= IDENTITY_TOL and where is None:
                    where = {"method": m, "problem": prob.name, "seed": seed, "error": err}
    ok = all(w <= IDENTITY_TOL for w in worst.values())
    return Outcome(ok, {m: (w if np.isfinite(w) else None) for m, w in worst.items()},
                   f"≤ {IDENTITY_TOL:g}",
                   f"max over steps of the relative error of d_t and θ_{{t+1}} recomputed from the "
                   f"recorded iterates and the oracle samples of each step's keys ({steps} steps, "
                   f"seeds {list(seeds)}, problems {', '.join(p.name for p in identity_problems(quick))})",
                   counterexample=where)


# ---------------------------------------------------------------------------------------------
# The interpolation identity E_q[∇²J(qx + (1−q)y)](x − y) = ∇J(x) − ∇J(y)
# ---------------------------------------------------------------------------------------------


def gauss_legendre(n: int):
    """Nodes and weights of n-point Gauss–Legendre quadrature on [0, 1] (exact for polynomials
    of degree ≤ 2n − 1)."""
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1) / 2, w / 2


def polynomial(c, mons):
    """J(θ) = Σ_m c_m θ^m (JAX); `mons` is the (n, dim) integer array of exponents."""

    return lambda th: jnp.sum(c * jnp.prod(th[None, :] ** mons, axis=1))


def monomials(dim: int, degree: int) -> np.ndarray:
    import itertools

    return np.array([m for m in itertools.product(range(degree + 1), repeat=dim)
                     if sum(m) <= degree])


def interpolation_error(J, x, y, quadrature) -> float:
    """‖Σ_i w_i ∇²J(q_i x + (1−q_i) y)(x − y) − (∇J(x) − ∇J(y))‖ / ‖∇J(x) − ∇J(y)‖, the
    Hessian-vector products by forward-over-reverse autodiff, vmapped over the nodes."""

    nodes, weights = (jnp.asarray(a, jnp.float64) for a in quadrature)
    x, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)

    @jax.jit
    def err(x, y, nodes, weights):
        hvp = lambda q: jax.jvp(jax.grad(J), (y + q * (x - y),), (x - y,))[1]  # noqa: E731
        mean = weights @ jax.vmap(hvp)(nodes)
        diff = jax.grad(J)(x) - jax.grad(J)(y)
        return jnp.linalg.norm(mean - diff) / jnp.linalg.norm(diff)

    return float(err(x, y, nodes, weights))


POLY_CASES_QUICK = ((1, 5), (3, 4))
POLY_CASES_FULL = tuple((d, k) for d in (1, 2, 3, 4) for k in (2, 3, 4, 5, 6))


def check_interpolation_exact(quick: bool, quadrature_for=gauss_legendre) -> Outcome:
    """Random polynomials J (dim 1..4, degree 2..6; `quadrature_for(n)` with n = ⌊degree/2⌋ + 1
    nodes, which Gauss–Legendre integrates exactly) and the softmax bandit's J (analytic; 40
    nodes)."""
    rng = np.random.default_rng(4)
    worst_poly, worst_soft = 0.0, 0.0
    for dim, degree in POLY_CASES_QUICK if quick else POLY_CASES_FULL:
        mons = monomials(dim, degree)
        J = polynomial(rng.normal(size=len(mons)), mons)
        x, y = rng.normal(size=dim), rng.normal(size=dim)
        worst_poly = max(worst_poly, interpolation_error(J, x, y, quadrature_for(degree // 2 + 1)))
    for k in (3,) if quick else (2, 3, 4, 5, 8):
        J = lambda th, m=rng.uniform(size=k): softmax.objective(th, m)  # noqa: E731
        x, y = rng.normal(0, 1.5, k), rng.normal(0, 1.5, k)
        worst_soft = max(worst_soft, interpolation_error(J, x, y, quadrature_for(40)))
    ok = worst_poly <= QUAD_TOL and worst_soft <= QUAD_TOL
    return Outcome(ok, {"polynomial": worst_poly, "softmax": worst_soft}, f"≤ {QUAD_TOL:g}",
                   "relative error of ∫_0^1 ∇²J(qx + (1−q)y) dq (x − y) against ∇J(x) − ∇J(y): "
                   "Gauss–Legendre in q (exact for polynomial J, 40 nodes for the softmax J)")


def uniform_q(key):

    return jax.random.uniform(key, dtype=np.float64)


def correction_mc(problem: npg.Problem, x, y, samples: int, seed: int, draw_q=uniform_q):
    """Monte Carlo mean ± se over `samples` independent (q, τ) of HARPG's correction
    B(τ, θ̂)(x − y), θ̂ = q x + (1 − q) y, τ ~ p(·|θ̂)."""

    x, y = jnp.asarray(x), jnp.asarray(y)

    def one(key):
        kq, kh = jax.random.split(key)
        q = draw_q(kq)
        return problem.hvp_sample(kh, y + q * (x - y), x - y)

    return kit.mc_mean(one, samples, seed)


SOFTMAX_MEANS = np.array([0.8, 0.5, 0.2])
CORRECTION_POINTS = (np.array([1.0, 0.0, -1.0]), np.array([-1.0, 0.5, 1.0]))
STEP_STATE = (np.array([0.3, -0.2, 0.1]), 3)  # d_{t−1} and t of the one-step check


@functools.lru_cache(maxsize=None)
def exact_softmax_problem() -> npg.Problem:
    """The softmax bandit of SOFTMAX_MEANS with exact oracles (∇J and ∇²J·v of
    `bandits.softmax`, the key ignored): J is not quadratic, so ∇²J(θ̂)(θ_t − θ_{t−1}) depends
    on where θ̂ lies on the segment."""
    means = jnp.asarray(SOFTMAX_MEANS)
    return npg.Problem("softmax-exact", np.zeros(3), lambda th: softmax.objective(th, means),
                       lambda key, th: softmax.gradient(th, means),
                       lambda key, th, v: softmax.hessian(th, means) @ v, float(SOFTMAX_MEANS.max()))


def step_correction_mc(method: str, samples: int, seed: int, step=None):
    """Mean ± se over `samples` keys of d_t from ONE step of the registered `method` (or `step`)
    at the state θ_t, θ_{t−1} = CORRECTION_POINTS, d_{t−1}, t = STEP_STATE, with exact
    oracles on the softmax J: the step's only randomness is its draw of q."""
    step = step or npg.METHODS[method].step
    prob = exact_softmax_problem()
    x, y = (jnp.asarray(a) for a in CORRECTION_POINTS)
    d_prev, t = STEP_STATE

    return kit.mc_mean(lambda k: step(prob, 0.1, npg.State(x, y, jnp.asarray(d_prev), jnp.asarray(t, jnp.int32),
                                                         k)).d, samples, seed)


def check_step_correction_mc(quick: bool, methods=("harpg", "n-harpg")) -> stats.ZCheck:
    """E_q[d_t] of one (N)-HARPG step with exact oracles on the softmax J equals
    (1−η_t)(d_{t−1} + ∇J(θ_t) − ∇J(θ_{t−1})) + η_t∇J(θ_t), η_t = 2/(t+2) (the interpolation
    identity ∫_0^1 ∇²J(qθ_t + (1−q)θ_{t−1})dq (θ_t − θ_{t−1}) = ∇J(θ_t) − ∇J(θ_{t−1}) through
    the algorithm's own draw of q); Holm z-tests over methods and coordinates."""
    x, y = CORRECTION_POINTS
    d_prev, t = STEP_STATE
    eta = 2.0 / (t + 2)
    gx = np.asarray(softmax.gradient(x, SOFTMAX_MEANS))
    gy = np.asarray(softmax.gradient(y, SOFTMAX_MEANS))
    target = (1 - eta) * (d_prev + gx - gy) + eta * gx
    means, ses = [], []
    for i, m in enumerate(methods):
        mean, se = step_correction_mc(m, 20_000 if quick else 200_000, 17 + i)
        means.append(mean)
        ses.append(se)
    return stats.z_check(f"E_q[d_t] of one {'/'.join(methods)} step vs the interpolation identity",
                         np.concatenate(means), np.concatenate(ses),
                         np.tile(target, len(methods)))


def check_correction_mc(quick: bool, draw_q=uniform_q, problem=None) -> stats.ZCheck:
    """E_{q, τ}[B(τ, θ̂)(x − y)] = ∇J(x) − ∇J(y) on a Bernoulli softmax bandit (closed-form
    gradient of `bandits.softmax`), Holm z-tests per coordinate."""
    problem = problem or P.softmax_problem(R.bernoulli(SOFTMAX_MEANS))
    x, y = CORRECTION_POINTS
    mean, se = correction_mc(problem, x, y, 200_000 if quick else 2_000_000, 7, draw_q)
    target = np.asarray(softmax.gradient(x, SOFTMAX_MEANS) - softmax.gradient(y, SOFTMAX_MEANS))
    return stats.z_check("E[B(τ, θ̂)(x − y)] vs ∇J(x) − ∇J(y)", mean, se, target)


def _z_outcome(z: stats.ZCheck) -> Outcome:
    return Outcome(z.passed, {"max_abs_z": z.max_abs_z, "mean": z.measured.tolist()},
                   {"no Holm rejection": True, "target": z.expected.tolist()}, z.summary(),
                   interval=[(z.measured - 5 * z.se).tolist(), (z.measured + 5 * z.se).tolist()])


# ---------------------------------------------------------------------------------------------
# Softmax oracles
# ---------------------------------------------------------------------------------------------


def oracle_moments_exact(theta, model: R.RewardModel, v, estimates=P.score_function_estimates):
    """E[g] and E[B·v] of the one-sample softmax oracles by enumerating every (arm, reward)
    outcome with probability π_a·P(R = r | a)."""

    arms, vals, probs = model.outcomes()
    g, bv = _enumerate(estimates, jnp.asarray(theta, jnp.float64), jnp.asarray(arms),
                       jnp.asarray(vals), jnp.asarray(v, jnp.float64))
    w = np.asarray(softmax.policy(jnp.asarray(theta)))[arms] * probs
    return np.asarray(w @ np.asarray(g)), np.asarray(w @ np.asarray(bv))


@functools.partial(jax.jit, static_argnums=0)
def _enumerate(estimates, theta, arms, vals, v):
    return jax.vmap(lambda a, r: estimates(P.softmax_log_prob, theta, a, r, v))(arms, vals)


def check_oracles_exact(quick: bool, estimates=P.score_function_estimates) -> Outcome:
    """E[g] = ∇J and E[B·v] = ∇²J·v exactly on random softmax bandits (Bernoulli and
    categorical rewards), against the closed forms of `bandits.softmax`."""
    rng = np.random.default_rng(5)
    worst = {"gradient": 0.0, "hessian_vector": 0.0}
    for i in range(6 if quick else 40):
        k = 3 if quick else int(rng.integers(2, 7))
        if i % 2:
            model = R.bernoulli(rng.uniform(size=k))
        else:
            model = R.categorical([list(rng.uniform(-1, 1, 3)) for _ in range(k)],
                                  [list(p) for p in rng.dirichlet(np.ones(3), size=k)])
        theta, v = rng.normal(0, 1.5, k), rng.normal(size=k)
        eg, ebv = oracle_moments_exact(theta, model, v, estimates)
        g = np.asarray(softmax.gradient(theta, model.means))
        h = np.asarray(softmax.hessian(theta, model.means)) @ v
        worst["gradient"] = max(worst["gradient"], float(np.max(np.abs(eg - g))))
        worst["hessian_vector"] = max(worst["hessian_vector"], float(np.max(np.abs(ebv - h))))
    ok = all(w <= 1e-13 for w in worst.values())
    return Outcome(ok, worst, "≤ 1e-13",
                   "max |E[g] − ∇J| and |E[B·v] − ∇²J·v| by enumeration of (arm, reward) "
                   "outcomes, against the closed forms π∘(m − J) and ∇²J of docs/design.md §3")


def oracle_mc(problem: npg.Problem, theta, v, samples: int, seed: int):
    """Monte Carlo mean ± se of (g, B·v) from the problem's own samplers (independent draws)."""

    theta, v = jnp.asarray(theta), jnp.asarray(v)

    def one(key):
        k1, k2 = jax.random.split(key)
        return jnp.concatenate([problem.grad_sample(k1, theta), problem.hvp_sample(k2, theta, v)])

    return kit.mc_mean(one, samples, seed)


ORACLE_POINT = (np.array([0.4, -0.3, 0.1]), np.array([1.0, -2.0, 0.5]))


def check_oracles_mc(quick: bool, problem=None) -> stats.ZCheck:
    """The samplers of the softmax problem: mean of (g, B·v) against (∇J, ∇²J·v), Holm."""
    problem = problem or P.softmax_problem(R.bernoulli(SOFTMAX_MEANS))
    theta, v = ORACLE_POINT
    mean, se = oracle_mc(problem, theta, v, 100_000 if quick else 1_000_000, 3)
    target = np.concatenate([np.asarray(softmax.gradient(theta, SOFTMAX_MEANS)),
                             np.asarray(softmax.hessian(theta, SOFTMAX_MEANS)) @ v])
    return stats.z_check("E[(g, B·v)] vs (∇J, ∇²J·v)", mean, se, target)


# ---------------------------------------------------------------------------------------------
# Softmax: normalised steps put a floor under J* − J
# ---------------------------------------------------------------------------------------------


def normalised_softmax_floor(theta0, means, travel):
    """A lower bound on J* − J(θ) for any θ with ‖θ − θ_0‖ ≤ `travel` (an array): with a* the
    best arm, Δ_min the smallest gap and x_b = θ_0,b − θ_0,a*, every logit difference moves by at
    most √2·travel, so 1 − π_a* ≥ ρ/(1 + ρ) with ρ = Σ_{b≠a*} exp(x_b − √2·travel), and
    J* − J = Σ_b π_b (m* − m_b) ≥ Δ_min (1 − π_a*)."""
    theta0, means = np.asarray(theta0, np.float64), np.asarray(means, np.float64)
    best = int(np.argmax(means))
    others = np.arange(means.size) != best
    gaps = means.max() - means[others]
    x = theta0[others] - theta0[best]
    rho = np.exp(x[None, :] - np.sqrt(2) * np.asarray(travel, np.float64).reshape(-1, 1)).sum(1)
    return gaps.min() * rho / (1 + rho)


FLOOR_CASES = ((np.array([0.8, 0.3]), np.zeros(2)),
               (np.array([0.8, 0.5, 0.2]), np.array([0.0, 1.0, -0.5])))


@functools.lru_cache(maxsize=None)
def _floor_problem(case: int) -> npg.Problem:
    means, theta0 = FLOOR_CASES[case]
    return P.softmax_problem(R.bernoulli(means), theta0=theta0, name=f"floor-{case}")


def check_softmax_floor(quick: bool, understate: float = 1.0) -> Outcome:
    """Every recorded gap of N-PG-IGT and N-HARPG (and, in full mode, n-pg-m) runs on softmax
    bandits is at least `normalised_softmax_floor` with travel Σ_{s<t} γ_s (γ_0 ∈ {0.2, 1});
    `understate` divides γ_0 in the floor (a planted defect when > 1)."""
    steps, seeds = (1000, 8) if quick else (5000, 32)
    methods = ("n-pg-igt", "n-harpg") if quick else ("n-pg-igt", "n-harpg", "n-pg-m")
    worst, where = np.inf, None
    for case in (1,) if quick else range(len(FLOOR_CASES)):
        means, theta0 = FLOOR_CASES[case]
        prob = _floor_problem(case)
        for method in methods:
            g0 = np.repeat([0.2, 1.0], seeds)
            r = npg.run(method, prob, np.tile(np.arange(seeds), 2), steps, g0)
            t = np.arange(steps + 1)
            partial = np.concatenate([[0.0], np.cumsum(2.0 / (t[:-1] + 2))])  # Σ_{s<t} 2/(s+2)
            for i, g in enumerate([0.2, 1.0]):
                floor = normalised_softmax_floor(theta0, means, g / understate * partial)
                ratio = r.gaps[i * seeds:(i + 1) * seeds] / floor[None, :]
                if ratio.min() < worst:
                    k = np.unravel_index(np.argmin(ratio), ratio.shape)
                    worst, where = float(ratio.min()), {
                        "method": method, "means": means.tolist(), "theta0": theta0.tolist(),
                        "gamma0": g, "seed": int(k[0]), "step": int(k[1])}
    ok = worst >= 1 - 1e-12
    return Outcome(ok, {"min_gap_over_floor": worst}, "≥ 1",
                   f"min over {1 if quick else len(FLOOR_CASES)} softmax bandits, {', '.join(methods)}, γ_0 ∈ "
                   f"{{0.2, 1}}, {seeds} seeds, {steps} steps, every step, of (J* − J)/floor",
                   counterexample=None if ok else where)


# ---------------------------------------------------------------------------------------------
# Sample-complexity exponents
# ---------------------------------------------------------------------------------------------


def check_exponent(method: str, quick: bool, data: dict | None = None) -> Outcome:
    """The fitted exponent p (trajectories to ε ∝ ε^{−p}) of `method` on every claimed problem of
    the sweep (`data["claimed"]`, default all) is resolved at or below the paper's rate: an
    exponent is fitted and the upper end of its 95% bootstrap CI is ≤ the rate (`verdict`
    "below"); an undefined, unresolved or above verdict on any claimed problem fails. Problems
    outside `claimed` are reported with their verdicts. `data` defaults to
    `sims.npg.complexity.sweep(quick)`."""
    from sims.npg import complexity as S

    data = S.sweep(quick) if data is None else data
    claimed = list(data.get("claimed") or data["problems"])
    measured, verdicts = {}, {}
    for problem, pd in data["problems"].items():
        d = pd["methods"][method]
        comp = d["complexity"]
        v = S.verdict(comp["exponent"], comp["exponent_ci"], d["paper_exponent"])
        if problem in claimed:
            verdicts[problem] = v
        measured[problem] = {"exponent": comp["exponent"], "ci": comp["exponent_ci"],
                             "gamma0": d["gamma0"], "eps": pd["eps"], "budget": pd["budget"],
                             "reached": comp["reached"], "verdict": v, "claimed": problem in claimed,
                             "setting": S.SETTINGS.get(problem),
                             "reason": comp["reason"], "warning": comp["warning"]}
    ok = bool(verdicts) and len(verdicts) == len(claimed) and all(
        v == "below" for v in verdicts.values())
    paper = METHOD_RATES[method]
    return Outcome(ok, measured, {"paper_exponent": paper,
                                  "rule": "on every claimed problem an exponent is fitted and its "
                                          "CI upper end ≤ paper exponent"},
                   f"{method}: " + ", ".join(f"{p} {m['exponent'] if m['exponent'] is None else round(m['exponent'], 3)}"
                                             f" ({m['verdict']})" for p, m in measured.items())
                   + f"; paper's rate ε^-{paper}")


METHOD_RATES = {m: npg.METHODS[m].paper_exponent for m in ("pg", "n-pg-igt", "harpg", "n-harpg")}
EXPONENT_CONDITIONS = (
    "Claimed problems: (1) the paper's setting, `mdp-logistic`: a two-state MDP, θ ∈ ℝ², logistic "
    "policy (bounded score, Fisher-non-degenerate), rewards in [0, 1], γ = 0.5, H = 15 from the "
    "accuracy (γ^H/(1 − γ) ≤ 1e-4), ε 0.03–0.001 (0.03–0.003 quick); (2) the 1-D Gaussian bandit "
    "(θ = μ, σ = 1, reward −(a − 1)², outside the paper's assumptions: unbounded score and "
    "reward, a normalised step is a sign step), ε 0.1–0.01 (0.3–0.03 quick). Both have a smooth "
    "interior optimum where J is locally strongly concave; there the error analysis predicts "
    "about ε^-1.25 (N-PG-IGT) and ε^-1 (N-HARPG), so the measurement tests that the paper's "
    "upper bounds are not exceeded and cannot show their ε^-2.5 vs ε^-2 separation. LQR (γ = 1, "
    "H = 50 fixed, unbounded score) is in the full sweep's figure only. One-trajectory GPOMDP / "
    "B·v oracles; γ_0 tuned on a 7-point grid (4 quick) with 4 seeds per value and the same "
    "trajectory budget for every method (4000; 1000 quick; a γ_0 under which a tuning run "
    "diverged ranks last); 28 evaluation seeds (16 quick); J* − J recorded every 4 steps (5 "
    "quick); trajectories until J* − J stays ≤ ε to the end of the run, median over seeds, "
    "exponent by least squares in log-log, 95% bootstrap CI over seeds; a problem where no "
    "exponent can be fitted (fewer than 3 ε with a finite median and upper bound) fails the "
    "claim (sims/npg/complexity.py)")


def _exponent_claim(method: str, expected: str):
    rate = METHOD_RATES[method]

    @claim(f"npg.exponent_{method.replace('-', '_')}",
           source=f"{SOURCE}, the sample-complexity rate of {method} (O(ε^-{rate}))",
           statement=f"The measured exponent p of trajectories-to-ε ∝ ε^{{−p}} of {method} is "
                     f"resolved at or below the paper's upper bound {rate}: on every claimed "
                     "problem an exponent is fitted and the upper end of its 95% bootstrap CI "
                     "is ≤ the rate",
           expected=expected, conditions=EXPONENT_CONDITIONS)
    def _fn():
        return [Check("monte_carlo", lambda quick: check_exponent(method, quick))]

    return _fn


for _m, _expected in {"pg": "holds", "n-pg-igt": "holds", "harpg": "holds", "n-harpg": "holds"}.items():
    _exponent_claim(_m, _expected)


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------


@claim("npg.schedules", source=f"{SOURCE}, the step-size and momentum schedules; docs/design.md §4.7",
       statement="γ_t = γ_0·2/(t+2) (N-PG-IGT, N-HARPG), η_t = (2/(t+2))^{4/5} (N-PG-IGT) and its "
                 "look-ahead (1−η_t)/η_t take the reference values at t = 0..3 for γ_0 = 0.1",
       conditions="γ_0 = 0.1; values given to 5–6 significant digits")
def _schedules():
    return [Check("exact", lambda quick: check_schedules())]


@claim("npg.igt_transport", source=f"{SOURCE}, Algorithm 1 (N-PG-IGT)",
       statement="With exact gradients on a quadratic J, implicit gradient transport keeps "
                 "d_t = ∇J(θ_t) at every iteration: the look-ahead (1−η_t)/η_t is exactly the "
                 "extrapolation that turns the momentum average into the current gradient",
       conditions="J quadratic, exact gradient oracle, d_{−1} = 0, θ_{−1} = θ_0, any γ_0 and any "
                  "η_t ∈ (0, 1] with η_0 = 1")
def _igt():
    return [
        Check("symbolic", lambda quick: symbolic_zero(
            {f"dim {d}": T.igt_transport_residual(d) for d in (1, 2, 3)},
            "(1−η)∇J(θ_{t−1}) + η∇J(θ_t + ((1−η)/η)(θ_t − θ_{t−1})) − ∇J(θ_t), general quadratic")),
        Check("exact", lambda quick: check_tracking({"n-pg-igt": npg.METHODS["n-pg-igt"].step},
                                                    quick)),
    ]


@claim("npg.harpg_correction", source=f"{SOURCE}, Algorithm 2 ((N)-HARPG)",
       statement="With exact gradient and Hessian oracles on a quadratic J, HARPG's recursion "
                 "d_t = (1−η_t)(d_{t−1} + ∇²J(θ̂_t)(θ_t − θ_{t−1})) + η_t∇J(θ_t) keeps d_t = ∇J(θ_t) "
                 "at every iteration, normalised or not",
       conditions="J quadratic, exact oracles, d_{−1} = 0, θ_{−1} = θ_0, any q_t, γ_0 and η_0 = 1")
def _harpg():
    return [
        Check("symbolic", lambda quick: symbolic_zero(
            {f"dim {d}": T.harpg_correction_residual(d) for d in (1, 2, 3)},
            "(1−η)(∇J(θ_{t−1}) + H(θ_t − θ_{t−1})) + η∇J(θ_t) − ∇J(θ_t), general quadratic")),
        Check("exact", lambda quick: check_tracking(
            {"harpg": npg.METHODS["harpg"].step, "n-harpg": npg.METHODS["n-harpg"].step}, quick)),
    ]


@claim("npg.trajectory_identities", source=f"{SOURCE}, Algorithms 1 and 2; the released code's "
       "`sgd` and `nsgdm` schedules",
       statement="On every step of a stochastic run, d_t and θ_{t+1} of pg, n-pg-m, N-PG-IGT, HARPG "
                 "and N-HARPG equal the paper's formulas recomputed from the recorded θ_t, θ_{t−1}, "
                 "d_{t−1} and that step's oracle samples: the gradient at the look-ahead point "
                 "θ_t + ((1−η_t)/η_t)(θ_t − θ_{t−1}) (N-PG-IGT), the Hessian correction at "
                 "q_tθ_t + (1−q_t)θ_{t−1} with q_t the step's uniform draw ((N)-HARPG), the "
                 "momentum and step schedules",
       conditions="3-armed Bernoulli softmax bandit (non-quadratic J), one-trajectory oracles, 25 "
                  "steps, 1 seed; full mode adds the paper-setting MDP `mdp-logistic` (H-step "
                  "trajectories), 200 steps, 3 seeds")
def _identities():
    return [Check("exact", lambda quick: check_trajectory_identities(quick))]


@claim("npg.hessian_interpolation", source=f"{SOURCE}, Algorithm 2 (the unbiased Hessian correction)",
       statement="E_{q~U[0,1]}[∇²J(qθ_t + (1−q)θ_{t−1})](θ_t − θ_{t−1}) = ∇J(θ_t) − ∇J(θ_{t−1}); "
                 "with one sampled q and one trajectory at the interpolated point, "
                 "E[B(τ̂, θ̂)(θ_t − θ_{t−1})] = ∇J(θ_t) − ∇J(θ_{t−1})",
       conditions="J twice continuously differentiable (symbolic: general polynomials; exact: "
                  "random polynomials and softmax bandits; Monte Carlo: a 3-armed Bernoulli "
                  "softmax bandit with the score-function Hessian estimator, and one step of "
                  "HARPG and N-HARPG with exact oracles on its J, averaged over the step's own "
                  "draw of q, 20 000 keys each (200 000 in full mode))")
def _interpolation():
    return [
        Check("symbolic", lambda quick: symbolic_zero(
            {"dim 1, degree 5": T.interpolation_residual(1, 5),
             "dim 2, degree 4": T.interpolation_residual(2, 4)},
            "∫_0^1 ∇²J(qx + (1−q)y) dq (x − y) − (∇J(x) − ∇J(y)), general polynomial J")),
        Check("exact", lambda quick: check_interpolation_exact(quick)),
        Check("monte_carlo", lambda quick: _z_outcome(check_correction_mc(quick))),
        Check("monte_carlo", lambda quick: _z_outcome(check_step_correction_mc(quick))),
    ]


@claim("npg.softmax_oracles", source="REINFORCE (Williams 1992) and the score-function Hessian "
       f"estimator B = ∇Φ∇log pᵀ + ∇²Φ of {SOURCE}, one-step case",
       statement="On a softmax bandit the one-sample oracles are unbiased: E[R∇log π(a)] = ∇J and "
                 "E[R(∇log π(a)∇log π(a)ᵀ + ∇²log π(a))v] = ∇²J·v",
       conditions="softmax bandit, finite reward laws (exact), Bernoulli rewards (Monte Carlo)")
def _oracles():
    return [
        Check("exact", lambda quick: check_oracles_exact(quick)),
        Check("monte_carlo", lambda quick: _z_outcome(check_oracles_mc(quick))),
    ]


@claim("npg.softmax_normalised_floor", source="derived here (docs/design.md §4.7), for "
       f"the normalised methods of {SOURCE} on a softmax bandit",
       statement="With normalised steps γ_t = γ_0·2/(t+2) the softmax logits travel at most "
                 "Σ_{s<t} γ_s ≤ 2γ_0 ln(t+1), so J* − J(θ_t) ≥ Δ_min·ρ_t/(1 + ρ_t) with "
                 "ρ_t = Σ_{b≠a*} exp(θ_0,b − θ_0,a* − √2 Σ_{s<t} γ_s) on every sample path: the "
                 "sub-optimality cannot fall faster than t^{−2√2γ_0}, so the exponent of "
                 "trajectories to ε is at least 1/(2√2γ_0) whatever the estimator",
       conditions="softmax bandit (not Fisher-non-degenerate), normalised methods (N-PG-IGT, "
                  "N-HARPG, normalised momentum), any noise")
def _softmax_floor():
    return [Check("exact", lambda quick: check_softmax_floor(quick))]
