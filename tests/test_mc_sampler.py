"""The Monte Carlo sampler: one word per (arm, reward) draw on the `rbg` generator, against the exact
joint law under a Holm-controlled z-test, with planted defects the same test catches."""

import jax
import jax.numpy as jnp
import numpy as np

from bandits import rewards as R
from bandits import softmax
from sims import estimators
from sims.engines import montecarlo, stats

LOGITS = jnp.array([0.3, -0.2, 0.1, -3.0])
# arm 3 has a zero-probability value (an empty interval); arm 2 a single value
MODEL = R.parse_rewards("categorical:0/0.3;1/0.7|2/0.25;-1/0.75|0.35/1|5/0;1/1")
DRAWS = (1000, 400)


def _joint_frequency_check(arms, rewards):
    """Frequencies of every (arm, value) outcome of MODEL against π_a q(v | a), one Holm family."""
    pi = np.asarray(softmax.policy(LOGITS))
    arms, rewards = np.asarray(arms).reshape(-1), np.asarray(rewards).reshape(-1)
    o_arm, o_val, o_prob = MODEL.outcomes()  # the positive-probability outcomes
    freq = np.array([np.mean((arms == a) & (rewards == v)) for a, v in zip(o_arm, o_val)])
    expected = pi[o_arm] * o_prob
    se = np.sqrt(expected * (1 - expected) / arms.size)
    return stats.z_check("joint (arm, reward) frequencies", freq, se, expected)


def _draw(key=None, logits=LOGITS, model=MODEL):
    key = jax.random.key(3, impl=montecarlo.RNG_IMPL) if key is None else key
    return softmax.sample_outcomes(key, logits, model.tables(), DRAWS)


def test_one_word_sampler_matches_the_joint_law():
    arms, rewards = _draw()
    check = _joint_frequency_check(arms, rewards)
    assert check.passed, check.summary()
    assert not np.any((np.asarray(arms) == 3) & (np.asarray(rewards) == 5.0))  # zero probability


def test_planted_defects_are_caught():
    """The same check rejects a sampler with two arms' reward laws swapped, and one whose logits
    are off by 0.05 in one coordinate."""
    swapped = R.parse_rewards("categorical:0/0.3;1/0.7|0.35/1|2/0.25;-1/0.75|5/0;1/1")
    arms, rewards = _draw(model=swapped)
    assert not _joint_frequency_check(arms, rewards).passed
    arms, rewards = _draw(logits=LOGITS.at[0].add(0.05))
    assert not _joint_frequency_check(arms, rewards).passed


def test_random_words_layout():
    """The words are one `bits` draw of (n/4, 4), read column after column."""
    key = jax.random.key(5, impl=montecarlo.RNG_IMPL)
    w = R.random_words(key, (6, 8))
    ref = jax.random.bits(key, (12, 4), dtype=jnp.uint32).T.reshape(6, 8)
    np.testing.assert_array_equal(np.asarray(w), np.asarray(ref))
    assert R.random_words(key, (3, 3)).shape == (3, 3)  # not a multiple of 4: plain bits


def test_engine_on_rbg_is_bit_reproducible():
    a = montecarlo.moments(estimators.get("grpo"), np.asarray(LOGITS), MODEL, 4, 20_000, seed=11, progress=False)
    b = montecarlo.moments(estimators.get("grpo"), np.asarray(LOGITS), MODEL, 4, 20_000, seed=11, progress=False)
    c = montecarlo.moments(estimators.get("grpo"), np.asarray(LOGITS), MODEL, 4, 20_000, seed=12, progress=False)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.cov, b.cov)
    assert not np.array_equal(a.mean, c.mean)


PROMPT_LOGITS = np.array([[0.5, -0.3, 0.0], [-1.0, 0.4, 2.0]])
PROMPT_SUCCESS = np.array([[0.9, 0.0, 0.5], [0.1, 1.0, 0.3]])  # zero-probability outcomes on both prompts


def _prompt_frequency_check(arms, rewards, logits=PROMPT_LOGITS, success=PROMPT_SUCCESS):
    """Frequencies of (prompt, arm, pass) against π_x[a]·q_x[a] (and the failures), one Holm family."""
    arms, rewards = np.asarray(arms), np.asarray(rewards)
    freq, expected, n = [], [], arms[..., 0, :].size
    for x in range(logits.shape[0]):
        pi = np.exp(logits[x]) / np.exp(logits[x]).sum()
        for a in range(logits.shape[1]):
            for r, p in ((1.0, success[x, a]), (0.0, 1 - success[x, a])):
                freq.append(np.mean((arms[..., x, :] == a) & (rewards[..., x, :] == r)))
                expected.append(pi[a] * p)
    expected = np.array(expected)
    se = np.sqrt(np.maximum(expected * (1 - expected), 1e-300) / n)
    return stats.z_check("(prompt, arm, reward) frequencies", freq, se, expected)


def test_prompt_sampler_matches_the_law_and_catches_swapped_prompts():
    key = jax.random.key(5, impl=montecarlo.RNG_IMPL)
    arms, rewards = montecarlo.sample_prompts(key, jnp.asarray(PROMPT_LOGITS), jnp.asarray(PROMPT_SUCCESS), (4000, 2, 16))
    check = _prompt_frequency_check(arms, rewards)
    assert check.passed, check.summary()
    assert not np.any((np.asarray(arms)[:, 0] == 1) & (np.asarray(rewards)[:, 0] == 1.0))  # q = 0
    assert not np.any((np.asarray(arms)[:, 1] == 1) & (np.asarray(rewards)[:, 1] == 0.0))  # q = 1
    assert not _prompt_frequency_check(arms[:, ::-1], rewards[:, ::-1]).passed  # planted: prompts swapped
