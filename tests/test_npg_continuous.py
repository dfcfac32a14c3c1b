"""The continuous problems of `sims.npg` (docs/design.md §4.7): the Gaussian bandit and LQR.

J* and the gradient of the scalar problems are pinned to plain-Python recursions written here;
the oracles (GPOMDP and B·v on one fresh trajectory) are checked for unbiasedness by Monte Carlo
under Holm at α = 1e-6, each with planted wiring defects that the same check catches."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits import gaussian as G
from bandits import lqr as L
from bandits.errors import InputError
from sims import trajectory as T
from sims.claims import npg as C
from sims.engines import stats
from sims.npg import methods as npg
from sims.npg import problems as P


def lqr1_value(k, horizon=50, sigma=0.5, noise=0.01):
    """J_H(K) of x' = x + u + w, Q = R = 1, Σ_0 = 1, by a plain-Python second-moment recursion."""
    s, total = 1.0, 0.0
    for _ in range(horizon):
        total -= (1.0 + k * k) * s + sigma**2
        s = (1.0 + k) ** 2 * s + sigma**2 + noise
    return total


def golden_max(f, a, b, tol=1e-10):
    r = (math.sqrt(5) - 1) / 2
    c, d = b - r * (b - a), a + r * (b - a)
    while b - a > tol:
        if f(c) > f(d):
            b, d = d, c
            c = b - r * (b - a)
        else:
            a, c = c, d
            d = a + r * (b - a)
    return (a + b) / 2


def test_registered_problems_and_optima():
    g = P.get("gaussian")
    assert g.j_star == -1.0 and float(g.suboptimality(np.array([-1.0]))) == 4.0
    assert float(g.objective(np.array([0.5]))) == pytest.approx(-0.25 - 1.0, abs=1e-14)
    p = P.get("lqr1")
    k_star = golden_max(lqr1_value, -1.5, 0.0)
    assert p.j_star == pytest.approx(lqr1_value(k_star), rel=1e-12)
    assert float(p.objective(np.array([-0.2]))) == pytest.approx(lqr1_value(-0.2), rel=1e-12)
    q = P.get("lqr2")
    h = np.asarray(L.hessian(jnp.asarray([-0.555387, -0.700598]), L.make(**P.LQR2), P.LQR_SIGMA))
    assert np.all(np.linalg.eigvalsh(h) < 0)
    rng = np.random.default_rng(0)  # J* is a maximum: no nearby gain does better
    near = np.asarray([-0.555387, -0.700598]) + rng.normal(0, 0.02, (20, 2))
    assert all(float(q.objective(jnp.asarray(k))) <= q.j_star for k in near)


def _mc(problem, theta, v, n, seed=11):
    mean, se = C.oracle_mc(problem, np.asarray(theta, float), np.asarray(v, float), n, seed)
    return mean, se


def test_gaussian_oracles_unbiased_and_defect():
    p = P.get("gaussian")
    mu, v = 0.0, 1.7
    target = [-2.0 * (mu - 1.0), -2.0 * v]  # ∇J = −2(μ − 1), ∇²J·v = −2v (σ = 1 fixed)
    mean, se = _mc(p, [mu], [v], 20_000)
    assert stats.z_check("gaussian oracles", mean, se, target).passed
    # planted defect: B·v without the ∇Φ(∇log p·v) term (E = −J·v, not ∇²J·v)
    def no_outer_product(key, th, w):
        a = G.sample(key, th, (), 1.0)  # the action the oracle draws from the same key
        return p.hvp_sample(key, th, w) - p.grad_sample(key, th) * (a - th[0]) * w[0]

    bad = npg.Problem("bad", p.theta0, p.objective, p.grad_sample, no_outer_product, p.j_star)
    mean, se = _mc(bad, [mu], [v], 20_000)
    assert not stats.z_check("defect", mean, se, target).passed


@pytest.mark.parametrize("name, theta, v", [("lqr1", [-0.4], [1.0]),
                                            ("lqr2", [-0.5, -0.6], [1.0, -0.5])])
def test_lqr_oracles_unbiased_and_defects(name, theta, v):
    p = P.get(name)
    inst = L.make(**(P.LQR1 if name == "lqr1" else P.LQR2))
    th, w = jnp.asarray(theta), jnp.asarray(v)
    target = np.concatenate([np.asarray(L.gradient(th, inst, P.LQR_SIGMA)),
                             np.asarray(L.hessian(th, inst, P.LQR_SIGMA)) @ np.asarray(w)])
    mean, se = _mc(p, theta, v, 20_000)
    check = stats.z_check(name, mean, se, target)
    assert check.passed, check.summary()
    # planted defects: a discount the objective does not have; a trajectory at a stale θ
    g9, h9 = P.trajectory_oracles(lambda key, t: L.rollout(key, t, inst, P.LQR_SIGMA),
                                  T.LQRPolicy(P.LQR_SIGMA), 0.9)
    stale = lambda key, t: L.rollout(key, jnp.asarray(p.theta0), inst, P.LQR_SIGMA)  # noqa: E731
    gs, hs = P.trajectory_oracles(stale, T.LQRPolicy(P.LQR_SIGMA), 1.0)
    for g, h in [(g9, h9), (gs, hs)]:
        bad = npg.Problem("bad", p.theta0, p.objective, g, h, p.j_star)
        mean, se = _mc(bad, theta, v, 20_000)
        assert not stats.z_check("defect", mean, se, target).passed


def test_trajectory_oracles_h1_match_score_function_estimates():
    """H = 1: the trajectory oracles equal the one-step score-function estimates on the same draw."""
    inst = L.make(0.7, 1.0, 1.0, 2.0, horizon=1, init_cov=1.5)
    roll = lambda key, t: L.rollout(key, t, inst, 0.3)  # noqa: E731
    g, h = P.trajectory_oracles(roll, T.LQRPolicy(0.3), 1.0)
    key, th, v = jax.random.key(3), jnp.asarray([-0.4]), jnp.asarray([0.8])
    tr = roll(key, th)
    lp = lambda t, x: L.log_prob(t, tr.states[0], x, 0.3)  # noqa: E731
    eg, ebv = P.score_function_estimates(lp, th, tr.actions[0], tr.rewards[0], v)
    np.testing.assert_allclose(g(key, th), eg, rtol=1e-13)
    np.testing.assert_allclose(h(key, th, v), ebv, rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# The paper-setting MDP: logistic policy, bounded score and reward, γ < 1, H from the accuracy
# ---------------------------------------------------------------------------------------------


def mdp_value(theta, cfg=P.MDP, horizon=15):
    """J_H of the two-state MDP by a plain-NumPy recursion, the expectations over the logistic
    action by a 200 001-point trapezoid on [−40, 40] (independent of the lab's Gauss–Legendre)."""
    x = np.linspace(-40, 40, 200_001)
    dens = np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))) ** 2
    dens /= np.trapezoid(dens, x)
    rbar, pbar = [], []
    for s in range(2):
        a = theta[s] + cfg["scale"] * x
        rbar.append(np.trapezoid(cfg["weights"][s] * np.exp(-0.5 * (a - cfg["centres"][s]) ** 2) * dens, x))
        pbar.append(np.trapezoid(dens / (1 + np.exp(-(cfg["slope"] * a - cfg["shift"]))), x))
    rho, total = np.array(cfg["start"], float), 0.0
    trans = np.array([[1 - pbar[0], pbar[0]], [1 - pbar[1], pbar[1]]])
    for h in range(horizon):
        total += cfg["gamma"] ** h * rho @ np.array(rbar)
        rho = rho @ trans
    return total


def test_mdp_setting_horizon_score_and_value():
    p = P.get("mdp-logistic")
    # H = min{H: 0.5^H / 0.5 ≤ ε/10}: ε = 1e-3: 0.5^14 = 6.1e-5 > 5e-5 ≥ 0.5^15 = 3.05e-5;
    # ε = 1e-2: 0.5^10 = 9.8e-4 > 5e-4 ≥ 0.5^11 = 4.9e-4
    assert P.horizon_for(1e-3, 0.5) == 15 and P.horizon_for(1e-2, 0.5) == 11
    assert "H = 15" in p.description and p.dim == 2
    for bad in (lambda: P.horizon_for(1e-300, 0.999), lambda: P.horizon_for(1e-3, 1.0),
                lambda: P.mdp_problem(1e-3, discount=0.5), lambda: P.mdp_problem(1e-3, weights=(2.0, 1.0))):
        with pytest.raises(InputError):
            bad()
    # score tanh(z/2)/b, bounded by 1/b; Fisher information 1/(3b²) (b = 1)
    for a in (-30.0, -1.3, 0.0, 0.4, 25.0):
        s = np.asarray(jax.grad(P.logistic_log_prob)(jnp.array([0.2, -0.7]), jnp.array([0.0, 1.0]),
                                                     jnp.array([a])))
        assert s[0] == 0.0 and s[1] == pytest.approx(math.tanh((a + 0.7) / 2), abs=1e-14)
        assert abs(s[1]) <= 1.0
    x = np.linspace(-40, 40, 200_001)
    dens = np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))) ** 2
    assert np.trapezoid(np.tanh(x / 2) ** 2 * dens, x) == pytest.approx(1 / 3, abs=1e-9)
    # J_H against the NumPy recursion; J* a maximum
    for th in (p.theta0, np.array([1.0, -1.0]), np.array([2.5, 0.3])):
        assert float(p.objective(jnp.asarray(th))) == pytest.approx(mdp_value(th), abs=1e-9)
    star = np.array([float(v) for v in p.description.split("θ* = [")[1].split("]")[0].split(",")])
    assert p.j_star == pytest.approx(mdp_value(star), abs=1e-6)
    rng = np.random.default_rng(0)
    assert all(mdp_value(star + rng.normal(0, 0.05, 2)) < p.j_star for _ in range(5))


def test_mdp_oracles_unbiased_and_defect():
    p = P.get("mdp-logistic")
    th, v = jnp.asarray([0.3, -0.2]), jnp.asarray([1.0, -0.5])
    target = np.concatenate([np.asarray(jax.grad(p.objective)(th)),
                             np.asarray(jax.hessian(p.objective)(th)) @ np.asarray(v)])
    mean, se = _mc(p, th, v, 40_000)
    check = stats.z_check("mdp", mean, se, target)
    assert check.passed, check.summary()
    # planted defect: the oracles discount with γ = 0.6 where the objective has 0.5
    other = P.mdp_problem(1e-3, gamma=0.6)
    bad = npg.Problem("bad", p.theta0, p.objective, other.grad_sample, other.hvp_sample, p.j_star)
    mean, se = _mc(bad, th, v, 20_000)
    assert not stats.z_check("defect", mean, se, target).passed
