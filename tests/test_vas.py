"""Reward variance and the gradient norm (docs/design.md §4.3): bounds, MMR1's Theorem 1, the refuted
covariance statements, each with the planted defects its check must catch."""

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import rewards as R
from bandits import softmax
from bandits.errors import InputError
from sims import claims, ledger
from sims import estimators as E
from sims import vas as V
from sims.claims import vas as C
from theory import vas as TV

# ---------------------------------------------------------------------------------------------
# Symbolic
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 4])
def test_bound_identities_vanish(k):
    for expr in (TV.pimin_identity(k), TV.variance_shift_identity(k), TV.lagrange_identity(k),
                 TV.sqrt_k_identity(k), TV.quarter_identity(k), TV.total_variance_residual(k),
                 TV.cauchy_schwarz_gamma(k), *TV.centred_reward_identity(k),
                 *TV.uniform_equalities(k).values()):
        assert sp.simplify(expr) == 0


def test_sharp_constant_and_theorem_margins():
    assert TV.two_arm_ratio() == sp.Rational(1, 2)
    assert TV.factorised_margin("main")["minimum_per_c_min"] == sp.Rational(1, 2)
    assert TV.factorised_margin("appendix")["minimum_per_c_min"] == sp.Rational(1, 4)
    assert sp.simplify(TV.repaired_margin()["excess_over_five_eighths"]) == 0
    res = TV.two_arm_smoothness()
    assert sp.simplify(res["L2"] - TV.TWO_ARM_L) == 0


def test_design_counterexample_exact_rationals():
    res = TV.reduced_counterexample()
    assert res["lambda_min_cov"] == sp.Rational(1, 81)
    assert res["floor"] == sp.Rational(2, 81)
    assert res["var"] == sp.Rational(2, 9)
    assert res["lambda_min_fisher"] == sp.Rational(1, 9)
    assert res["factorisation_defect"] != sp.zeros(2, 2)


def test_identical_arms_symbolic():
    res = TV.identical_arms(3, sp.Rational(1, 3))
    assert res["var"] == sp.Rational(2, 9) and res["between"] == 0
    assert all(g == 0 for g in res["grad"])


# ---------------------------------------------------------------------------------------------
# The bounds, exact and searched; planted defects
# ---------------------------------------------------------------------------------------------

logit = st.floats(-4, 4, allow_nan=False, width=64)
reward01 = st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0, 1, allow_nan=False, width=64)


@settings(max_examples=25)
@given(st.integers(2, 6).flatmap(lambda k: st.tuples(st.lists(logit, min_size=k, max_size=k),
                                                     st.lists(reward01, min_size=k, max_size=k))))
def test_bounds_hold_property(case):
    logits, r = map(np.asarray, case)
    t = V.bound_terms(logits, r)
    for b in V.BOUNDS:
        assert float(V.bound_slack(t, b)) >= -1e-12, b
    # closed forms agree with the lab's softmax module
    assert float(t["grad_norm"]) == pytest.approx(
        float(np.linalg.norm(softmax.gradient(jnp.asarray(logits), jnp.asarray(r)))), abs=1e-15)


@pytest.mark.parametrize("bound", ["pimin", "cauchy_schwarz", "sharp_sqrt_k"])
def test_doubled_constant_is_caught(bound):
    assert C.check_bound_random(bound, quick=True).holds
    assert not C.check_bound_random(bound, factor=2.0, quick=True).holds
    assert C.search_bound(bound, quick=True).holds
    found = C.search_bound(bound, factor=2.0, quick=True)
    assert not found.holds and found.counterexample is not None


def test_sqrt_k_bound_is_loose_by_exactly_two():
    """Doubling the √K bound gives the sharp 2/√K bound, which is true, so the check must pass
    it; any constant above 2 is caught."""
    assert C.check_bound_random("sqrt_k", factor=2.0, quick=True).holds
    assert C.search_bound("sqrt_k", factor=2.0, quick=True).holds
    assert not C.check_bound_random("sqrt_k", factor=2.02, quick=True).holds
    assert not C.search_bound("sqrt_k", factor=2.02, quick=True).holds
    t = V.bound_terms(np.array([0.7, -0.2]), np.array([1.0, 0.0]))
    assert float(t["grad_norm"]) == pytest.approx(float(t["sharp_sqrt_k"]), rel=1e-13)


def test_stochastic_bounds_use_between_arm_variance():
    p = np.array([0.5, 0.5, 0.5])
    t = V.bound_terms(np.array([0.4, -0.3, 0.0]), p, p)
    assert float(t["grad_norm"]) == 0.0 and float(t["var"]) == pytest.approx(0.25)
    assert float(t["var_between"]) == 0.0
    out = V.search(C.bound_violation("pimin", stochastic=True), "bernoulli", max_examples=100)
    assert not out["found"]


def test_bad_input():
    with pytest.raises(InputError):
        V.bound_slack(V.bound_terms([0.0, 0.0], [1.0, 0.0]), "nope")
    with pytest.raises(InputError):
        V.random_bandits(0, 3, 2, reward_kind="nope")
    with pytest.raises(InputError):
        V.step_size("nope", 0.1, 1.0, 0.5)
    with pytest.raises(InputError):
        V.search(lambda *a: False, "nope")
    with pytest.raises(InputError):
        V.expected_step_gain(E.get("reinforce"), [0.0, 0.0], R.deterministic([1, 0, 0]), 1, 0.1)


# ---------------------------------------------------------------------------------------------
# The exact one-step gain
# ---------------------------------------------------------------------------------------------


def _brute_gain(name, logits, model, group, eta, **params):
    est = E.get(name)
    params = E.resolve_params(est, group, **params)
    from tests.test_exact import numpy_group_gradients

    o_arm, o_val, o_prob = model.outcomes()

    def policy(x):  # numpy softmax: independent of the lab's assembly
        e = np.exp(x - np.max(x))
        return e / e.sum()

    pi = policy(np.asarray(logits, dtype=np.float64))
    J0 = float(pi @ model.means)
    tuples = np.array(list(itertools.product(range(len(o_arm)), repeat=group)))
    g = numpy_group_gradients(est, params, logits, o_arm[tuples], o_val[tuples])
    total = 0.0
    for tup, gi in zip(tuples, g):
        w = np.prod([pi[o_arm[i]] * o_prob[i] for i in tup])
        total += w * (float(policy(np.asarray(logits) + eta * gi) @ model.means) - J0)
    return total


@pytest.mark.parametrize("name,group,params", [("reinforce", 1, {"baseline": 0.3}),
                                               ("reinforce", 3, {"baseline": 0.5}),
                                               ("rloo", 2, {}), ("grpo", 3, {})])
def test_expected_step_gain_matches_ordered_tuples(name, group, params):
    logits, model = np.array([0.3, -0.5, 0.1]), R.bernoulli([0.9, 0.2, 0.4])
    got = V.expected_step_gain(E.get(name), logits, model, group, 0.7, **params)
    assert got == pytest.approx(_brute_gain(name, logits, model, group, 0.7, **params), abs=1e-13)


def test_objective_change_is_cancellation_free():
    logits, m = jnp.array([9.0, -9.0]), jnp.array([1.0, 0.0])
    delta = jnp.array([1e-9, -1e-9])
    exact = float(V.objective_change(logits, m, delta))
    p = 1 / (1 + math.exp(-18.0))
    p2 = 1 / (1 + math.exp(-(18.0 + 2e-9)))
    assert exact == pytest.approx(p2 - p, rel=1e-6)
    assert exact > 0


# ---------------------------------------------------------------------------------------------
# Theorem 1 and its planted defects
# ---------------------------------------------------------------------------------------------


def test_theorem1_main_holds_and_defects_are_caught():
    assert C.verify_theorem1("main", quick=True).holds
    assert not C.verify_theorem1("main", quick=True, step_fraction=4.0).holds  # step too large
    assert not C.verify_theorem1("main", quick=True, gain_factor=1.0).holds  # constant 1/4 → 1
    assert not C.search_theorem1("main", True)["found"]
    assert C.search_theorem1("main", True, step_fraction=4.0)["found"]


def test_theorem1_appendix_condition_fails_with_exact_two_arm_constant():
    th = V.theorem1([0.0, 5.0], R.deterministic([0.0, 1.0]), condition="appendix",
                    smoothness=C.L_TWO, c_min="best")
    assert th.premise and not th.holds and th.ratio < 0.9
    # the main-text condition (half the step) holds on the same instance
    assert V.theorem1([0.0, 5.0], R.deterministic([0.0, 1.0]), condition="main",
                      smoothness=C.L_TWO, c_min="best").holds
    out = C.search_theorem1("appendix", True)
    assert out["found"]


def test_theorem1_repaired_holds():
    assert C.verify_theorem1("repaired", quick=True).holds
    assert not C.verify_theorem1("repaired", quick=True, gain_factor=1.0).holds


# ---------------------------------------------------------------------------------------------
# The covariance statements
# ---------------------------------------------------------------------------------------------


def test_design_instance_exact_engine():
    red = V.reduced_statistics([0.0, 0.0], R.deterministic([1.0, 0.0, 0.0]))
    assert red.lambda_min_cov == pytest.approx(1 / 81, abs=1e-15)
    assert red.floor == pytest.approx(2 / 81, abs=1e-15)
    assert C.sandwich_violation([0.0, 0.0], [1.0, 0.0, 0.0])
    assert C.factorisation_violation([0.0, 0.0], [1.0, 0.0, 0.0])
    # a group of G divides Cov by G; the claimed floor scales the same way: still violated
    red4 = V.reduced_statistics([0.0, 0.0], R.deterministic([1.0, 0.0, 0.0]), group=4)
    assert red4.lambda_min_cov == pytest.approx(1 / 324, abs=1e-15) and red4.sandwich_gap < 0


def test_refutation_search_finds_counterexamples():
    for violates in (C.sandwich_violation, C.factorisation_violation):
        out = V.search(violates, "reduced", max_examples=100)
        assert out["found"]
        lg, r = out["example"]
        assert violates(lg, r)


def test_ledger_vas_claims_pass_quick():
    report = ledger.run(claims.load_all(), quick=True, only="vas.*")
    assert report["summary"]["claims"] >= 12
    bad = [(c["id"], c["status"]) for c in report["claims"] if not c["passed"]]
    assert not bad, bad
    refuted = {c["id"]: c for c in report["claims"] if c["expected"] == "refuted"}
    assert set(refuted) == {"vas.cov_lower_bound", "vas.cov_factorisation",
                            "vas.variance_implies_gradient", "vas.theorem1_appendix"}
    assert all(c.get("counterexample") is not None for c in refuted.values())
