"""The exact engine against the sympy closed forms (lambdified), on random bandits:
K 2..6, logits in [−3, 3], Bernoulli / deterministic / categorical rewards, G 2..8."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sims import estimators
from sims.engines import exact
from tests.strategies import bandits
from theory import estimators as T

TOL = 1e-10


def _pi(m):
    return np.asarray(m.pi)


@given(bandits(), st.floats(-2, 2))
def test_reinforce_variance_is_V_of_b_over_G(case, b):
    logits, model, group = case
    m = exact.moments(estimators.get("reinforce"), logits, model, group, baseline=b)
    v = T.numeric_single_sample_variance(len(logits))(_pi(m), model.means, model.second_moments, b)
    assert m.trace_var == pytest.approx(v / group, abs=TOL)
    np.testing.assert_allclose(m.true_gradient, T.numeric_true_gradient(len(logits))(_pi(m), model.means), atol=TOL)


@given(bandits())
def test_rloo_variance_closed_form(case):
    logits, model, group = case
    m = exact.moments(estimators.get("rloo"), logits, model, group)
    v = T.numeric_rloo_variance(len(logits))(_pi(m), model.means, model.second_moments, group)
    assert m.trace_var == pytest.approx(v, abs=TOL)
    np.testing.assert_allclose(m.bias, 0.0, atol=TOL)


@given(bandits())
def test_grpo_mean_mean_and_variance(case):
    logits, model, group = case
    m = exact.moments(estimators.get("grpo_mean"), logits, model, group)
    k = len(logits)
    np.testing.assert_allclose(m.mean, T.numeric_grpo_mean_mean(k)(_pi(m), model.means, group), atol=TOL)
    v = T.numeric_grpo_mean_variance(k)(_pi(m), model.means, model.second_moments, group)
    assert m.trace_var == pytest.approx(v, abs=TOL)


@given(bandits())
def test_optimal_constant_baseline_matches_sympy_solution(case):
    logits, model, _ = case
    m = exact.moments(estimators.get("reinforce"), logits, model, 1)
    b = T.numeric_optimal_constant_baseline(len(logits))(_pi(m), model.means)
    assert m.optimal_constant_baseline == pytest.approx(b, abs=TOL)


@given(bandits())
def test_planted_defect_variance_off_by_two_percent_is_caught(case):
    """The same comparison rejects a closed form scaled by 1.02 (whenever the variance is not ~0)."""
    logits, model, group = case
    m = exact.moments(estimators.get("rloo"), logits, model, group)
    v = 1.02 * T.numeric_rloo_variance(len(logits))(_pi(m), model.means, model.second_moments, group)
    assume(m.trace_var > 1e-6)  # a zero variance has no 2% to miss; hypothesis draws others
    assert m.trace_var != pytest.approx(v, abs=TOL)
