"""CoPG on bandits: theory residuals, exact population identities, Monte Carlo checks with their
planted-defect twins, data, trainers and input validation (docs/design.md §4.4)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import copg as C
from bandits.errors import InputError
from sims.claims import copg as CC
from sims.engines import stats
from theory import copg as T

# ---------------------------------------------------------------------------------------------
# Planted defects: the CoPG objective with β where the paper has β/2, and a PG loss whose
# baseline is off by a constant.
# ---------------------------------------------------------------------------------------------


def sym_objective_full_beta(log_pi, r, ref, y, y2, b=T.beta):
    d_r = r[y] - r[y2]
    d_h = (log_pi[y] - sp.log(ref[y])) - (log_pi[y2] - sp.log(ref[y2]))
    return d_r * d_h - b * d_h**2


def objective_full_beta(logits, problem, y, y2):
    h = C.log_ratio(logits, problem)
    d_h = h[y] - h[y2]
    return (problem.rewards[y] - problem.rewards[y2]) * d_h - problem.beta * d_h**2


def loss_full_beta(logits, problem, y, y2, label):
    return -objective_full_beta(logits, problem, y, y2)


def ascent_full_beta(logits, problem, y, y2, label):
    return objective_full_beta(logits, problem, y, y2)


# ---------------------------------------------------------------------------------------------
# Random instances
# ---------------------------------------------------------------------------------------------


def _law(draw, k, floor=0.02):
    w = np.asarray(draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))) + floor
    return w / w.sum()


@st.composite
def problems(draw, k_range=(2, 5)):
    k = draw(st.integers(*k_range))
    r = np.asarray(draw(st.lists(st.floats(-3, 3), min_size=k, max_size=k)))
    spread = st.floats(0.2, 3.0)
    r[0] = r[1] + draw(st.sampled_from([-1, 1])) * draw(spread)  # rewards not all equal
    beta = draw(st.floats(0.05, 3.0))
    problem = C.make_problem(r, beta, _law(draw, k), _law(draw, k), _law(draw, k))
    theta = jnp.asarray(draw(st.lists(st.floats(-2, 2), min_size=k, max_size=k)))
    return problem, theta


# ---------------------------------------------------------------------------------------------
# Theory
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [2, 3])
def test_symbolic_identities(K):
    assert set(T.loss_forms_residual(K)) == {0}
    assert set(T.pair_gradient_residual(K)) == {0}
    assert set(T.stationarity_residual(K)) == {0}
    assert T.population_hessian_residual(K) == sp.zeros(K, K)
    assert set(T.onpolicy_residual(K)) == {0}
    assert set(T.rloo_reduction_residual(K)) == {0}
    assert set(T.rloo_reduction_beta0(K)) == {0}
    res = T.optimum_residuals(K)
    assert set(res["gradient"]) == {0} and res["value"] == 0 and res["regret_is_kl"] == 0
    pg = T.pg_field_at_optimum_residuals(K)
    assert all(set(v) == {0} for v in pg.values()) and len(pg) == 3
    assert T.ipo_reduction_residual() == 0
    assert T.dpo_pair_stationarity_residual() == 0


def test_symbolic_residuals_catch_full_beta():
    """The planted defect (β instead of β/2) is caught by every residual it touches."""
    bad = sym_objective_full_beta
    assert any(x != 0 for x in T.loss_forms_residual(2, objective=bad))
    assert any(x != 0 for x in T.pair_gradient_residual(2, objective=bad))
    assert any(x != 0 for x in T.stationarity_residual(2, objective=bad))
    assert any(x != 0 for x in T.onpolicy_residual(2, objective=bad))


def test_is_zero_is_not_vacuous():
    x = sp.Symbol("x", positive=True)
    assert T.is_zero(sp.log(2 * x) - sp.log(2) - sp.log(x))
    assert not T.is_zero(sp.log(2 * x) - sp.log(x))
    assert not T.is_zero(sp.exp(x) - 1 - x)


def test_through_sampling_is_not_the_onpolicy_identity():
    diff = T.through_sampling_difference(2)
    x, r, q = sp.symbols("x_1:3", positive=True), sp.symbols("r_1:3", real=True), sp.symbols(
        "rho_1:3", positive=True)
    subs = {x[0]: 1, x[1]: 2, r[0]: 1, r[1]: 0, q[0]: sp.Rational(1, 2), q[1]: sp.Rational(1, 2),
            T.beta: 1}
    assert abs(float(diff[0].subs(subs))) > 0.1


@given(problems(k_range=(3, 3)))
@settings(max_examples=10)
def test_theory_pg_field_matches_numerics(case):
    """bandits' closed-form off-policy PG update agrees with the definition in theory."""
    p, theta = case
    for vb in ("none", "value", "soft_value"):
        field, th = T.pg_field(3, vb)
        m = sp.symbols("m_1:4", positive=True)
        r, q = sp.symbols("r_1:4", real=True), sp.symbols("rho_1:4", positive=True)
        mu = 0.5 * np.asarray(p.mu1 + p.mu2)
        subs = {**dict(zip(th, np.asarray(theta))), **dict(zip(m, mu)),
                **dict(zip(r, np.asarray(p.rewards))), **dict(zip(q, np.exp(np.asarray(p.log_ref)))),
                T.beta: float(p.beta)}
        sym = np.array([float(f.subs(subs)) for f in field])
        num = np.asarray(C.pg_expected_ascent(theta, p, vb))
        np.testing.assert_allclose(num, sym, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Exact population identities (property tests)
# ---------------------------------------------------------------------------------------------


@given(problems())
def test_optimum_and_regret(case):
    p, theta = case
    star = C.optimal_logits(p)
    assert float(jnp.abs(jax.grad(C.objective)(star, p)).max()) < 1e-9
    np.testing.assert_allclose(float(C.objective(star, p)), float(C.optimal_value(p)), atol=1e-10)
    gap = float(C.optimal_value(p) - C.objective(theta, p))
    np.testing.assert_allclose(float(C.regret(theta, p)), gap, atol=1e-10)
    # β KL(π‖π*) by hand in numpy, π* = softmax(ln π_ref + R/β)
    lp = np.asarray(theta) - np.log(np.sum(np.exp(np.asarray(theta))))
    ls = np.asarray(p.log_ref) + np.asarray(p.rewards) / float(p.beta)
    ls = ls - np.log(np.sum(np.exp(ls)))
    np.testing.assert_allclose(float(C.regret(theta, p)), float(p.beta) * np.sum(np.exp(lp) * (lp - ls)),
                               atol=1e-10)


@given(problems())
def test_copg_population_stationary_at_optimum(case):
    p, theta = case
    star = C.optimal_logits(p)
    assert float(jnp.abs(C.copg_expected_ascent(star, p)).max()) < 1e-9
    assert float(jnp.abs(C.expected_gradient("copg", star, p)).max()) < 1e-9
    np.testing.assert_allclose(np.exp(np.asarray(C.copg_argmax(p))), np.asarray(C.optimal_policy(p)),
                               atol=1e-8)
    # the planted defect (β instead of β/2) is not stationary at π*
    bad = C.expected_gradient(loss_full_beta, star, p)
    assert float(jnp.abs(bad).max()) > 1e-4


@given(problems())
def test_expected_gradients_match_closed_forms(case):
    p, theta = case
    for m in ("copg", *C.PG_BASELINES):
        np.testing.assert_allclose(np.asarray(C.expected_gradient(m, theta, p)),
                                   -np.asarray(C.ascent_field(m)(theta, p)), atol=1e-10)
    # CoPG's expected ascent is Σ μ1 μ2 (D_y − D_y')(e_y − e_y')
    k = p.rewards.shape[0]
    d = np.asarray(C.regularised_reward(theta, p))
    eye = np.eye(k)
    brute = sum(float(p.mu1[a] * p.mu2[b]) * (d[a] - d[b]) * (eye[a] - eye[b])
                for a, b in itertools.product(range(k), repeat=2))
    np.testing.assert_allclose(np.asarray(C.copg_expected_ascent(theta, p)), brute, atol=1e-10)


@given(problems())
def test_onpolicy_expected_gradient_is_twice_grad_j(case):
    p, theta = case
    pi = jax.nn.softmax(theta)
    on = p._replace(mu1=pi, mu2=pi)
    target = 2 * jax.grad(C.objective)(theta, p)
    np.testing.assert_allclose(np.asarray(C.copg_expected_ascent(theta, on)), np.asarray(target),
                               atol=1e-10)
    # with the pg update on policy: exactly ∇J_β (both baselines)
    for vb in ("none", "value", "soft_value"):
        np.testing.assert_allclose(np.asarray(C.pg_expected_ascent(theta, on, vb)),
                                   np.asarray(target) / 2, atol=1e-10)


@given(problems())
def test_fixed_points_of_pg_dpo_ipo(case):
    p, theta = case
    star = C.optimal_logits(p)
    mu_bar = 0.5 * np.asarray(p.mu1 + p.mu2)
    expected = float(C.optimal_value(p)) * (mu_bar - np.asarray(C.optimal_policy(p)))
    np.testing.assert_allclose(np.asarray(C.pg_expected_ascent(star, p, "none")), expected, atol=1e-9)
    # the paper's value baseline E_π[R]: −β KL(π*‖π_ref)(μ̄ − π*), by hand from the definitions
    pstar, ref = np.asarray(C.optimal_policy(p)), np.exp(np.asarray(p.log_ref))
    kl = float(np.sum(pstar * np.log(pstar / ref)))
    np.testing.assert_allclose(np.asarray(C.pg_expected_ascent(star, p, "value")),
                               -float(p.beta) * kl * (mu_bar - pstar), atol=1e-9)
    assert float(jnp.abs(C.pg_expected_ascent(star, p, "soft_value")).max()) < 1e-9
    assert float(jnp.abs(C.expected_gradient("dpo", star, p)).max()) < 1e-9
    assert float(jnp.abs(C.expected_gradient("ipo", C.ipo_argmax(p), p)).max()) < 1e-8


def test_toy_fixed_points():
    p = C.toy_problem()
    want = {"copg": np.asarray(C.optimal_policy(p)), "pg_soft_value": np.asarray(C.optimal_policy(p)),
            "pg_value": np.array([0.8116, 0.1675, 0.0209]),  # the paper's biased limit
            "dpo": np.asarray(C.optimal_policy(p)), "ipo": np.exp(np.asarray(C.ipo_argmax(p)))}
    for m in C.METHODS:
        fp = C.fixed_point(m, p)
        assert float(fp.grad_norm) < 1e-10, m
        if m in want:
            np.testing.assert_allclose(fp.pi, want[m], atol=1e-8 if m != "pg_value" else 1e-4)
    np.testing.assert_allclose(float(C.fixed_point("pg_value", p).regret), 0.0148, atol=1e-4)
    pg = C.fixed_point("pg", p)
    assert float(pg.regret) > 0.5  # off-policy PG without baseline ends worse than π_ref
    assert float(pg.regret) > float(C.regret(p.log_ref, p))


# ---------------------------------------------------------------------------------------------
# Monte Carlo checks and their planted-defect twins
# ---------------------------------------------------------------------------------------------


def test_onpolicy_mc_check_and_defect():
    rng = np.random.default_rng(3)
    p, theta = CC.random_instance(rng, 4)
    good = CC.onpolicy_check(CC.copg_ascent_loss, theta, p, 100_000, seed=7)
    assert good.passed, good.summary()
    bad = CC.onpolicy_check(ascent_full_beta, theta, p, 100_000, seed=7)
    assert not bad.passed, bad.summary()


def test_minibatch_mc_check_and_defects():
    rng = np.random.default_rng(4)
    p, theta = CC.random_instance(rng, 4)
    res = CC.pair_gradients_mc(tuple(C.LOSSES[m] for m in C.METHODS) + (loss_full_beta,), theta, p,
                               100_000, seed=8)
    for m, (mean, se) in zip(C.METHODS, res):
        z = CC._minibatch_z(m, mean, se, theta, p)
        assert z.passed, z.summary()
    bad = CC._minibatch_z("copg", *res[-1], theta, p)
    assert not bad.passed, bad.summary()
    # a PG loss used with another baseline's expected update is caught too
    for loss, field in (("pg_soft_value", "pg"), ("pg_value", "pg_soft_value")):
        wrong = CC._minibatch_z(field, *res[C.METHODS.index(loss)], theta, p)
        assert not wrong.passed, (loss, field, wrong.summary())


def test_mc_false_alarm_rate_is_controlled():
    """The Holm threshold at α = 1e-6 is far above what a correct estimator produces."""
    rng = np.random.default_rng(5)
    p, theta = CC.random_instance(rng, 3)
    zs = [CC.onpolicy_check(CC.copg_ascent_loss, theta, p, 20_000, seed=s).max_abs_z for s in range(5)]
    assert max(zs) < stats.critical_z(3)


# ---------------------------------------------------------------------------------------------
# Data and trainers
# ---------------------------------------------------------------------------------------------


def test_sample_pairs_reproducible_and_shaped():
    p = C.toy_problem()
    a = C.sample_pairs(jax.random.key(3), p, 5000)
    b = C.sample_pairs(jax.random.key(3), p, 5000)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    freq = np.bincount(np.asarray(a.y), minlength=3) / 5000
    np.testing.assert_allclose(freq, np.asarray(p.mu1), atol=0.03)
    assert set(np.unique(np.asarray(a.label))) <= {0.0, 1.0}


def test_shuffle_is_a_permutation():
    perm = np.asarray(C.shuffle(jax.random.key(1), 10_000))
    np.testing.assert_array_equal(np.sort(perm), np.arange(10_000))
    assert not np.array_equal(perm, np.arange(10_000))


@given(problems(k_range=(2, 4)), st.integers(0, 10_000))
@settings(max_examples=15)
def test_cell_counts_equal_per_pair_average(case, seed):
    p, theta = case
    n = 37  # a fixed size: one compilation of the sampler per K
    k = p.rewards.shape[0]
    pairs = C.sample_pairs(jax.random.key(seed), p, n)
    counts = jnp.bincount(C.cell_index(pairs, k), length=2 * k * k).astype(float)
    for m in C.METHODS:
        per = C.LOSSES[m](theta, p, pairs.y, pairs.y2, pairs.label)
        np.testing.assert_allclose(float(C.cell_loss(m, theta, p, counts)), float(per.mean()),
                                   rtol=1e-10, atol=1e-12)


def test_train_matches_a_manual_full_batch_adam():
    """With batch = pairs every epoch is one Adam step on the empirical loss."""
    p = C.toy_problem()
    n, epochs, seed = 300, 5, 11
    run = C.train("copg", p, [seed], pairs=n, epochs=epochs, batch=n, lr=0.05)
    kd, _ = jax.random.split(jax.random.key(seed))
    data = C.sample_pairs(kd, p, n)
    opt = optax.adam(0.05)
    theta = p.log_ref
    state = opt.init(theta)
    for _ in range(epochs):
        g = jax.grad(lambda t: C.copg_loss(t, p, data.y, data.y2, data.label).mean())(theta)
        upd, state = opt.update(g, state, theta)
        theta = optax.apply_updates(theta, upd)
    np.testing.assert_allclose(run.logits[0, -1], np.asarray(theta), atol=1e-10)


def test_train_exact_matches_a_manual_adam():
    p = C.toy_problem()
    run = C.train_exact("pg_value", p, epochs=3, steps_per_epoch=4, lr=0.01)
    opt = optax.adam(0.01)
    theta = p.log_ref
    state = opt.init(theta)
    for _ in range(12):
        upd, state = opt.update(C.expected_gradient("pg_value", theta, p), state, theta)
        theta = optax.apply_updates(theta, upd)
    np.testing.assert_allclose(run.logits[-1], np.asarray(theta), atol=1e-12)
    assert run.regret.shape == (4,)


def test_train_seeds_reproducible_and_distinct():
    p = C.toy_problem()
    a = C.train("dpo", p, [0, 1, 2], pairs=2000, epochs=5)
    b = C.train("dpo", p, [2, 0], pairs=2000, epochs=5)
    np.testing.assert_array_equal(a.regret[0], b.regret[1])
    np.testing.assert_array_equal(a.regret[2], b.regret[0])
    assert not np.array_equal(a.regret[0], a.regret[1])
    assert a.logits.shape == (3, 6, 3) and a.regret.shape == (3, 6)


def test_population_limit_on_toy():
    """CoPG's population run reaches regret < 1e-3; the biased methods stop at
    their own fixed points."""
    p = C.toy_problem()
    assert C.train_exact("copg", p, epochs=100, lr=1e-2).regret[-1] < 1e-3
    pg = C.train_exact("pg", p, epochs=100, lr=1e-2).regret[-1]
    ipo = C.train_exact("ipo", p, epochs=100, lr=1e-2).regret[-1]
    np.testing.assert_allclose([pg, ipo], [float(C.fixed_point("pg", p).regret),
                                           float(C.fixed_point("ipo", p).regret)], atol=1e-6)


def test_train_problems_matches_train():
    probs = C.random_problems(0, 4, 3)
    multi = C.train_problems("copg", probs, [5], pairs=1000, epochs=3)
    one = C.train("copg", jax.tree.map(lambda x: x[1], probs), [5], pairs=1000, epochs=3)
    np.testing.assert_allclose(multi.regret[1], one.regret, atol=1e-12)
    fps = C.fixed_points("copg", probs)
    assert np.all(fps.regret < 1e-10)


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def test_parse_vector_accepts_fractions():
    np.testing.assert_allclose(C.parse_vector("1/3, 1/3,1/3", "ref"), [1 / 3] * 3)
    np.testing.assert_allclose(C.parse_vector("2.5,2,1e-1", "r"), [2.5, 2, 0.1])
    for bad in ["", "1,,2", "a,1", "1/0", "nan", "inf"]:
        with pytest.raises(InputError):
            C.parse_vector(bad, "x")


@pytest.mark.parametrize("kwargs, msg", [
    (dict(mu1=(0.5, 0.5)), "entries"),
    (dict(mu1=(0.0, 0.3, 0.7)), "full support"),
    (dict(mu2=(0.2, 0.2, 0.2)), "sum"),
    (dict(beta=0.0), "beta"),
    (dict(beta=-1.0), "beta"),
    (dict(beta=float("nan")), "beta"),
    (dict(rewards=(1.0,), mu1=(1.0,), mu2=(1.0,)), "2 arms"),
    (dict(rewards=(1.0, float("inf"), 0.0)), "finite"),
    (dict(ref=(0.5, 0.5, 0.0)), "full support"),
    (dict(mu1=(1.2, -0.1, -0.1)), "[0, 1]"),
])
def test_make_problem_rejects(kwargs, msg):
    args = dict(rewards=(2.5, 2.0, 1.0), beta=0.5, mu1=(0.1, 0.2, 0.7), mu2=(0.05, 0.05, 0.9))
    args.update(kwargs)
    with pytest.raises(InputError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        C.make_problem(**args)


def test_trainer_rejects_bad_budgets_and_methods():
    p = C.toy_problem()
    with pytest.raises(InputError):
        C.train("sgd", p, [0])
    with pytest.raises(InputError):
        C.train("copg", p, [0], pairs=0)
    with pytest.raises(InputError):
        C.train_exact("copg", p, lr=-1.0)
    with pytest.raises(InputError):
        C.fixed_point("foo", p)
