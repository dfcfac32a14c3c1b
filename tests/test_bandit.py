"""The softmax bandit's closed forms against JAX autodiff, and the reward laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandits import rewards as R
from bandits import softmax
from bandits.errors import InputError
from tests.strategies import logit

vectors = st.integers(2, 6).flatmap(
    lambda k: st.tuples(st.lists(logit, min_size=k, max_size=k),
                        st.lists(st.floats(-2, 2), min_size=k, max_size=k))
)


@given(vectors)
def test_gradient_and_hessian_match_autodiff(lm):
    logits, means = (jnp.asarray(x, dtype=jnp.float64) for x in lm)
    np.testing.assert_allclose(softmax.gradient(logits, means),
                               jax.grad(softmax.objective)(logits, means), atol=1e-12)
    np.testing.assert_allclose(softmax.hessian(logits, means),
                               jax.hessian(softmax.objective)(logits, means), atol=1e-12)


@given(vectors)
def test_score_identity_and_norms(lm):
    logits = jnp.asarray(lm[0], dtype=jnp.float64)
    k = logits.shape[0]
    pi = softmax.policy(logits)
    s = softmax.scores(logits, jnp.arange(k))
    np.testing.assert_allclose(pi @ s, np.zeros(k), atol=1e-14)  # Σ_a π_a s(a) = 0
    np.testing.assert_allclose(jnp.sum(s**2, axis=1), softmax.score_sq_norms(logits), atol=1e-14)
    jac = jax.jacobian(lambda t: jnp.log(softmax.policy(t)))(logits)
    np.testing.assert_allclose(s, jac, atol=1e-12)


def test_hessian_would_catch_a_sign_slip():
    logits, means = jnp.array([0.3, -0.2, 0.1]), jnp.array([1.0, 0.2, 0.5])
    wrong = softmax.hessian(logits, means) + jnp.outer(softmax.policy(logits), softmax.gradient(logits, means))
    assert not np.allclose(wrong, jax.hessian(softmax.objective)(logits, means), atol=1e-6)


def test_reward_moments_and_sampling_frequencies():
    model = R.parse_rewards("categorical:0/0.5;1/0.5|2/0.25;-1/0.75|0.35/1")
    np.testing.assert_allclose(model.means, [0.5, -0.25, 0.35])
    np.testing.assert_allclose(model.second_moments, [0.5, 1.75, 0.35**2])
    arms = jnp.repeat(jnp.arange(3), 200_000)
    r = np.asarray(R.sample_rewards(model.tables(), jax.random.key(0), arms)).reshape(3, -1)
    se = np.sqrt((model.second_moments - model.means**2) / r.shape[1]) + 1e-12
    assert np.all(np.abs(r.mean(axis=1) - model.means) < 6 * se)


def test_sample_arms_frequencies():
    logits = jnp.array([0.3, -0.2, 0.1, -3.0])
    a = softmax.sample_arms(jax.random.key(1), logits, (400_000,))
    freq = np.bincount(np.asarray(a), minlength=4) / a.size
    pi = np.asarray(softmax.policy(logits))
    assert np.all(np.abs(freq - pi) < 6 * np.sqrt(pi * (1 - pi) / a.size))


@pytest.mark.parametrize("spec, message", [
    ("bernoulli:0.5,1.2", "outside [0, 1]"),
    ("bernoulli:0.5,nan", "not a finite"),
    ("deterministic:", "empty list"),
    ("bernoulli:0.5,,0.2", "empty field 2"),
    ("deterministic:1,0,", "empty trailing field"),
    ("bernoulli:,0.5", "empty leading field"),
    ("categorical:0/0.5;1/0.5||1/1", "empty field 2"),
    ("categorical:0/0.5;;1/0.5", "empty field 2"),
    ("gaussian:0/1,,1/1", "empty field 2"),
    ("categorical:0/0.5;1/0.4", "sum to"),
    ("categorical:0/0.5;1", "v1/q1"),
    ("poisson:1,2", "unknown reward kind"),
    ("0.1,0.2", "KIND:VALUES"),
    ("gaussian:0/-1", "non-negative"),
])
def test_bad_reward_specs_are_input_errors(spec, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        R.parse_rewards(spec)
