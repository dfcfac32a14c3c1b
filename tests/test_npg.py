"""N-PG-IGT, (N)-HARPG and baselines (docs/design.md §4.7): schedules pinned to literal values,
every step against a hand-written NumPy recursion, reproducibility, the sample-complexity
machinery, and the claims' planted defects."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from bandits import rewards as R
from bandits.errors import InputError
from sims.claims import npg as C
from sims.npg import methods as npg
from sims.npg import problems as P
from theory import npg as T

# ---------------------------------------------------------------------------------------------
# Schedules: literal values (γ_0 = 0.1, t = 0..3), computed by hand / with Python floats
# ---------------------------------------------------------------------------------------------

GAMMA_NORMALISED = [0.1, 0.1 * 2 / 3, 0.05, 0.04]
ETA_IGT = [1.0, 0.7229811807984657, 0.5743491774985174, 0.4804497735925725]
LOOKAHEAD = [0.0, 0.38316186722259166, 0.7411011265922485, 1.0813830185046827]
GAMMA_HARPG = [0.1, 0.08164965809277261, 0.07071067811865477, 0.06324555320336760]
ETA_HARPG = [Fraction(1), Fraction(2, 3), Fraction(1, 2), Fraction(2, 5)]
# the released code's `sgd` step γ_0(2/(t+2))^{2/3} and `nsgdm` momentum (2/(t+2))^{2/3}
GAMMA_PG = [0.1, 0.1 * (2 / 3) ** (2 / 3), 0.1 * 0.5 ** (2 / 3), 0.1 * 0.4 ** (2 / 3)]
ETA_NSGDM = [1.0, 0.7631428283688879, 0.6299605249474366, 0.5428835233189814]


def test_schedule_reference_values():
    for t in range(4):
        g, e = npg.schedule("n-pg-igt", t, 0.1)
        assert float(g) == pytest.approx(GAMMA_NORMALISED[t], abs=1e-16)
        assert float(e) == pytest.approx(ETA_IGT[t], abs=1e-15)
        assert float(npg.igt_lookahead(e)) == pytest.approx(LOOKAHEAD[t], abs=1e-14)
        g_m, e_m = npg.schedule("n-pg-m", t, 0.1)
        assert float(g_m) == float(g) and float(e_m) == pytest.approx(ETA_NSGDM[t], abs=1e-15)
        g, e = npg.schedule("n-harpg", t, 0.1)
        assert float(g) == pytest.approx(GAMMA_NORMALISED[t], abs=1e-16)
        assert float(e) == pytest.approx(float(ETA_HARPG[t]), abs=1e-16)
        g, e = npg.schedule("harpg", t, 0.1)
        assert float(g) == pytest.approx(GAMMA_HARPG[t], abs=1e-16)
        assert float(e) == pytest.approx(float(ETA_HARPG[t]), abs=1e-16)
        assert float(npg.schedule("pg", t, 0.1)[0]) == pytest.approx(GAMMA_PG[t], abs=1e-16)
        assert float(npg.schedule("pg-const", t, 0.1)[0]) == 0.1
    # the design's rounded values, as the ledger checks them
    assert C.check_schedules().holds
    assert C.REFERENCE["gamma (normalised, gamma0 = 0.1)"][0] == [0.1, 0.066667, 0.05, 0.04]
    assert C.REFERENCE["eta (N-PG-IGT) = (2/(t+2))^(4/5)"][0] == [1.0, 0.722980, 0.574350, 0.480450]
    assert C.REFERENCE["look-ahead (1-eta)/eta"][0] == [0.0, 0.38316, 0.74110, 1.08138]


@pytest.mark.parametrize("defect", ["t+1", "exponent 5/4", "inverted look-ahead", "gamma sqrt"])
def test_schedule_check_catches_defects(defect):
    s = dict(npg.SCHEDULES)
    look = npg.igt_lookahead
    if defect == "t+1":
        s["n-pg-igt"] = lambda t, g0: (g0 * 2 / (t + 1), (2 / (t + 1)) ** 0.8)
    elif defect == "exponent 5/4":
        s["n-pg-igt"] = lambda t, g0: (g0 * 2 / (t + 2), (2 / (t + 2)) ** 1.25)
    elif defect == "inverted look-ahead":
        look = lambda e: e / (1 - e) if e < 1 else 0.0  # noqa: E731
    else:
        s["n-harpg"] = lambda t, g0: (g0 * math.sqrt(2 / (t + 2)), 2 / (t + 2))
    assert not C.check_schedules(s, look).holds


# ---------------------------------------------------------------------------------------------
# Steps against a NumPy recursion written here (exact oracles on a quadratic)
# ---------------------------------------------------------------------------------------------


def numpy_reference(method, a, b, theta0, gamma0, steps):
    """θ_t of each method with exact oracles ∇J = b − Aθ, ∇²J = −A, written from the paper."""
    theta, prev, d = theta0.copy(), theta0.copy(), np.zeros_like(theta0)
    out = [theta.copy()]
    for t in range(steps):
        r = 2 / (t + 2)
        grad = lambda x: b - a @ x  # noqa: E731
        if method == "pg":
            step = gamma0 * r ** (2 / 3) * grad(theta)
        elif method == "pg-const":
            step = gamma0 * grad(theta)
        elif method in ("n-pg-m", "n-pg-igt"):
            eta = r**0.8 if method == "n-pg-igt" else r ** (2 / 3)
            point = theta + (1 - eta) / eta * (theta - prev) if method == "n-pg-igt" else theta
            d = (1 - eta) * d + eta * grad(point)
            step = gamma0 * r * d / np.linalg.norm(d)
        else:
            eta = r
            d = (1 - eta) * (d - a @ (theta - prev)) + eta * grad(theta)
            step = gamma0 * r * d / np.linalg.norm(d) if method == "n-harpg" else \
                gamma0 * math.sqrt(r) * d
        prev, theta = theta, theta + step
        out.append(theta.copy())
    return np.array(out)


@pytest.mark.parametrize("method", list(npg.METHODS))
def test_steps_match_numpy_recursion(method):
    a = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.7]])
    b = np.array([1.0, -0.5, 0.25])
    theta0 = np.array([0.5, 1.5, -1.0])
    prob = P.quadratic_problem(a, b, theta0=theta0)
    thetas, _, final = npg.trace(npg.METHODS[method].step, prob, 0.3, 12)
    ref = numpy_reference(method, a, b, theta0, 0.3, 12)
    np.testing.assert_allclose(np.asarray(thetas), ref[:-1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.asarray(final.theta), ref[-1], rtol=0, atol=1e-13)
    assert int(final.t) == 12


def test_normalise_zero_direction():
    assert np.all(np.asarray(npg.normalise(jnp.zeros(3))) == 0)
    np.testing.assert_allclose(np.asarray(npg.normalise(jnp.array([3.0, 4.0]))), [0.6, 0.8])


def test_runs_are_reproducible_per_seed_and_blocking_is_exact():
    """A seed's run does not depend on its batch; γ_0 per seed makes a sweep one batch; the
    blocked run behind the progress bar equals the single scan."""
    prob = P.get("softmax")
    ab = npg.run("n-harpg", prob, [3, 5], 60, [0.7, 1.3], record_every=3)
    ba = npg.run("n-harpg", prob, [5, 3], 60, [1.3, 0.7], record_every=3)
    np.testing.assert_array_equal(ab.gaps, ba.gaps[::-1])
    np.testing.assert_array_equal(ab.theta, ba.theta[::-1])
    assert not np.array_equal(ab.gaps[0], ab.gaps[1])
    calls = []
    blocked = npg.run("n-harpg", prob, [3, 5], 60, [0.7, 1.3], record_every=3,
                      progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_array_equal(blocked.gaps, ab.gaps)
    assert calls[-1] == (20, 20) and len(calls) == 20
    np.testing.assert_array_equal(ab.trajectories, 2 * 3 * np.arange(21))
    assert ab.gaps[0, 0] == pytest.approx(0.8 - 0.5)  # uniform policy: J = 0.5


def test_a_run_without_progress_writes_nothing(capfd):
    """No progress asked, no display (a hidden one printed a blank line per run into logs)."""
    npg.run("n-harpg", P.get("softmax"), [3], 60, 0.7, record_every=3)
    assert capfd.readouterr() == ("", "")


def test_softmax_floor_claim_and_understated_gamma():
    assert C.check_softmax_floor(quick=True).holds
    bad = C.check_softmax_floor(quick=True, understate=4.0)
    assert not bad.holds and bad.counterexample is not None
    # the floor by hand on two arms from θ_0 = 0: Δ·e^{−√2 s}/(1 + e^{−√2 s})
    s = np.array([0.0, 1.0, 3.0])
    np.testing.assert_allclose(C.normalised_softmax_floor([0, 0], [0.8, 0.3], s),
                               0.5 * np.exp(-math.sqrt(2) * s) / (1 + np.exp(-math.sqrt(2) * s)),
                               rtol=1e-15)


def test_run_rejects_bad_input():
    prob = P.get("softmax")
    with pytest.raises(InputError, match="unknown method"):
        npg.run("nope", prob, [0], 10, 1.0)
    with pytest.raises(InputError, match="gamma0"):
        npg.run("pg", prob, [0], 10, -1.0)
    with pytest.raises(InputError, match="multiple"):
        npg.run("pg", prob, [0], 10, 1.0, record_every=3)
    with pytest.raises(InputError, match="limit"):
        npg.run("pg", prob, np.arange(1000), 10**5, 1.0)
    with pytest.raises(InputError, match="unknown problem"):
        P.get("lqr99")
    with pytest.raises(InputError):
        P.quadratic_problem(-np.eye(2), np.ones(2))
    with pytest.raises(InputError):
        P.softmax_problem(R.bernoulli([0.5, 0.2]), theta0=[0.0, 0.0, 0.0])
    assert P.get("softmax") is P.get("softmax")


# ---------------------------------------------------------------------------------------------
# Sample-complexity machinery
# ---------------------------------------------------------------------------------------------


def test_hitting_trajectories_first_and_stay():
    gaps = np.array([[1.0, 0.5, 0.05, 0.2, 0.01], [1.0, 1.0, 1.0, 1.0, 1.0]])
    traj = np.array([0, 10, 20, 30, 40])
    first = npg.hitting_trajectories(gaps, traj, [0.6, 0.1, 0.001])
    np.testing.assert_array_equal(first, [[10, 20, np.inf], [np.inf, np.inf, np.inf]])
    stay = npg.hitting_trajectories(gaps, traj, [0.6, 0.1, 0.001], rule="stay")
    np.testing.assert_array_equal(stay, [[10, 40, np.inf], [np.inf, np.inf, np.inf]])


def test_median_ci_and_infinite_entries():
    x = np.array([[1.0, np.inf], [2.0, np.inf], [3.0, 5.0], [4.0, np.inf], [5.0, np.inf]])
    med, lo, hi = npg.median_ci(x, seed=0)
    assert med[0] == 3.0 and lo[0] <= 3.0 <= hi[0] and 1 <= lo[0] and hi[0] <= 5
    assert med[1] == np.inf


@pytest.mark.parametrize("p", [2.0, 2.5, 3.0])
def test_complexity_recovers_a_planted_exponent(p):
    """Gap curves c_i·N^{−1/p} (c_i log-normal across seeds): trajectories to ε scale as ε^{−p}.
    The fit is p to within the first-hit discretisation and its CI excludes p ± 0.5 (a wrong
    exponent is caught)."""
    rng = np.random.default_rng(1)
    traj = np.arange(0, 200_001, 2.0)
    c = np.exp(rng.normal(0, 0.3, 32))
    gaps = c[:, None] * np.maximum(traj, 1.0)[None, :] ** (-1 / p)
    eps = np.geomspace(0.1, 0.1 * 200_000 ** (-1 / p) * 20, 8)
    out = npg.complexity(gaps, traj, eps, seed=0)
    lo, hi = out["exponent_ci"]
    assert p - 0.01 <= lo <= hi <= p + 0.01
    assert out["exponent"] == pytest.approx(p, abs=0.01)
    assert not (lo <= p + 0.5 <= hi) and not (lo <= p - 0.5 <= hi)
    assert out["reason"] is None and out["fit_points"] == 8 and out["warning"] is None
    coarse = npg.complexity(gaps[:, ::500], traj[::500], eps, seed=0)  # records every 1000
    assert coarse["resolution"] == 1000 and "quantised" in coarse["warning"]


def test_complexity_reports_null_when_not_reached():
    gaps = np.ones((4, 10))
    out = npg.complexity(gaps, np.arange(10), [0.5, 0.1, 0.01])
    assert out["exponent"] is None and "fit needs 3" in out["reason"]
    assert out["median"] == [None, None, None] and out["reached"] == [0.0, 0.0, 0.0]
    with pytest.raises(InputError):
        npg.complexity(gaps, np.arange(10), [0.1, -1.0])


def test_fit_exponent_exact():
    eps = np.array([0.1, 0.01, 0.001])
    p, a = npg.fit_exponent(eps, 7.0 * eps**-2.5)
    assert p == pytest.approx(2.5, abs=1e-12) and a == pytest.approx(math.log(7.0), abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Claims and their planted defects
# ---------------------------------------------------------------------------------------------


def bad_lookahead_step(problem, gamma0, state):
    """Planted defect: the look-ahead η/(1−η) instead of (1−η)/η."""
    return npg.momentum_step(problem, gamma0, state, npg.SCHEDULES["n-pg-igt"],
                             lambda e: e / jnp.maximum(1 - e, 1e-12) * (e < 1))


def bad_harpg_step(problem, gamma0, state):
    """Planted defect: d_t = (1−η)d_{t−1} + v_t + η g (the correction without its (1−η))."""
    key, kg, kh, kq = jax.random.split(state.key, 4)
    gamma, eta = npg.SCHEDULES["harpg"](state.t, gamma0)
    delta = state.theta - state.theta_prev
    v = problem.hvp_sample(kh, state.theta_prev + 0.5 * delta, delta)
    d = (1 - eta) * state.d + v + eta * problem.grad_sample(kg, state.theta)
    return npg.State(state.theta + gamma * d, state.theta, d, state.t + 1, key)


def test_tracking_holds_and_catches_defects():
    good = C.check_tracking({"n-pg-igt": npg.igt_step, "harpg": npg.METHODS["harpg"].step,
                             "n-harpg": npg.METHODS["n-harpg"].step}, quick=True)
    assert good.holds, good.measured
    for name, step in [("momentum without transport", npg.METHODS["n-pg-m"].step),
                       ("inverted look-ahead", bad_lookahead_step),
                       ("correction without (1−η)", bad_harpg_step)]:
        out = C.check_tracking({name: step}, quick=True)
        assert not out.holds and out.measured[name] > 1e-3 and out.counterexample


def test_symbolic_residuals_and_defects():
    zero = lambda m: all(sp.simplify(x) == 0 for x in m)  # noqa: E731
    assert zero(T.igt_transport_residual(2))
    assert not zero(T.igt_transport_residual(2, lookahead=lambda e: e / (1 - e)))
    assert not zero(T.igt_transport_residual(2, lookahead=lambda e: 0 * e))
    assert zero(T.harpg_correction_residual(2))
    assert not zero(T.harpg_correction_residual(2, rule=lambda d, v, g, e: (1 - e) * d + v + e * g))
    assert zero(T.interpolation_residual(2, 3))
    assert not zero(T.interpolation_residual(2, 3, weight=lambda s: 2 * s))  # q ~ Beta(2, 1)


def test_interpolation_exact_and_defects():
    assert C.check_interpolation_exact(quick=True).holds
    point_mass = lambda n: (np.array([1.0]), np.array([1.0]))  # noqa: E731  (q ≡ 1)
    assert not C.check_interpolation_exact(quick=True, quadrature_for=point_mass).holds
    midpoint = lambda n: (np.array([0.5]), np.array([1.0]))  # noqa: E731  exact only to degree 3
    assert not C.check_interpolation_exact(quick=True, quadrature_for=midpoint).holds


def test_correction_mc_holds_and_catches_fixed_q():
    assert C.check_correction_mc(quick=True).passed
    for q in (1.0, 0.0):
        bad = C.check_correction_mc(quick=True, draw_q=lambda key, q=q: jnp.float64(q))
        assert not bad.passed, bad.summary()


def test_oracles_exact_and_defect():
    assert C.check_oracles_exact(quick=True).holds

    def no_outer_product(log_prob, theta, x, reward, v):  # ∇²Φ·v only
        g, bv = P.score_function_estimates(log_prob, theta, x, reward, v)
        s = g / jnp.where(reward == 0, 1.0, reward)
        return g, bv - reward * s * jnp.dot(s, v)

    assert not C.check_oracles_exact(quick=True, estimates=no_outer_product).holds


def test_oracles_mc_and_defective_sampler():
    assert C.check_oracles_mc(quick=True).passed
    model = R.bernoulli(C.SOFTMAX_MEANS)
    tables = model.tables()

    def uniform_arms(key, theta):  # planted defect: arms drawn uniformly, not from π
        ka, kr = jax.random.split(key)
        arm = jax.random.randint(ka, (), 0, 3)
        return arm, R.sample_rewards(tables, kr, arm)

    g, h = P.score_function_oracles(uniform_arms, P.softmax_log_prob)
    bad = npg.Problem("bad", np.zeros(3), lambda th: 0.0, g, h, 0.8)
    assert not C.check_oracles_mc(quick=True, problem=bad).passed


# ---------------------------------------------------------------------------------------------
# Tuning and sweeps
# ---------------------------------------------------------------------------------------------


def test_tune_and_sweep_on_the_quadratic():
    """Exact oracles on J = −½|θ − θ*|²_A: N-HARPG's d_t = ∇J(θ_t), so its run is deterministic
    and the tuned γ_0 must be the grid value that reaches ε first, found independently here."""
    prob = P.get("quadratic")
    grid = [0.05, 0.5, 5.0]
    tuned = npg.tune_gamma0("n-harpg", prob, grid, budget=400, seeds=2, eps=1e-3)
    by_hand = []
    for g in grid:
        r = npg.run("n-harpg", prob, [0], 200, g)
        by_hand.append(npg.hitting_trajectories(r.gaps, r.trajectories, [1e-3])[0, 0])
    assert tuned["best"] == grid[int(np.argmin(by_hand))]
    assert tuned["median_trajectories"] == [None if np.isinf(h) else h for h in by_hand]
    out = npg.sweep(prob, ["n-harpg", "pg"], budget=400, seeds=3, eps=[0.1, 0.01, 0.001],
                    gamma_grid=grid, tune_seeds=2)
    import json

    json.dumps(out, allow_nan=False)
    assert set(out["methods"]) == {"n-harpg", "pg"}
    assert out["methods"]["n-harpg"]["steps"] == 200 and out["methods"]["pg"]["steps"] == 400
    assert out["methods"]["n-harpg"]["gamma0"] == tuned["best"]
