"""Variance-aware prompt sampling: scores, selection probabilities, λ = 0, refresh period."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits import ensemble as ens
from bandits import vas as B
from bandits.errors import InputError
from sims import estimators
from sims import vas as V
from sims.engines import stats
from sims.train import train


def _frequency_check(idx, probs, label):
    """Per-prompt z-tests (Holm, α = 1e-6) of the empirical selection frequencies."""
    n = idx.size
    counts = np.bincount(idx.reshape(-1), minlength=len(probs)) / n
    se = np.sqrt(probs * (1 - probs) / n)
    return stats.z_check(label, counts, se, probs)


def _draw_many(sampler, state, success, key, reps):
    logits = jnp.zeros_like(success)
    keys = jax.random.split(key, reps)
    idx, _, _, extra = jax.jit(jax.vmap(lambda k: sampler.select(k, state, logits, success, 5)))(keys)
    return np.asarray(idx), np.asarray(extra)


def test_scores():
    assert float(B.outcome_variance_score(jnp.float64(0.25))) == pytest.approx(0.1875)
    same = jnp.zeros((1, 6), dtype=jnp.int32)
    spread = jnp.arange(4)[None, :]
    assert float(B.diversity_score(same, 4)[0]) == 0.0
    assert float(B.diversity_score(spread, 4)[0]) == pytest.approx(1.0)
    assert float(B.diversity_score(jnp.array([[0, 0, 1, 1]]), 4)[0]) == pytest.approx(0.5)
    assert float(B.diversity_score(jnp.array([[2]]), 4)[0]) == 0.0  # N = 1
    vps = B.variance_promotion_score(jnp.array([0.1, 0.2]), jnp.array([0.5, 0.0]), 2.0, 1.0)
    np.testing.assert_allclose(vps, [0.7, 0.4])
    np.testing.assert_allclose(B.vps_probabilities(jnp.zeros(4)), 0.25)


def test_selection_probabilities_proportional_to_vps():
    success = jnp.asarray(ens.make_ensemble(1, 6, 3).success)
    scores = jnp.array([0.0, 1.0, 2.0, 3.0, 0.5, 0.5])
    state = B.VASState(scores, scores, scores, jnp.int32(5))  # fresh: no refresh at step 5
    sampler = B.vas_sampler(32, num_rollouts=4, lam=1.0, update_every=10)
    idx, extra = _draw_many(sampler, state, success, jax.random.key(0), 2000)
    assert np.all(extra == 0)
    probs = np.asarray(scores / scores.sum())
    assert _frequency_check(idx, probs, "∝ VPS").passed
    # planted defect: probabilities ∝ VPS² (or uniform) must be rejected by the same check
    wrong = np.asarray(scores**2 / jnp.sum(scores**2))
    assert not _frequency_check(idx, wrong, "∝ VPS²").passed
    assert not _frequency_check(idx, np.full(6, 1 / 6), "uniform").passed


def test_mixture_probabilities():
    success = jnp.asarray(ens.make_ensemble(2, 5, 3).success)
    scores = jnp.array([4.0, 0.0, 1.0, 0.0, 5.0])
    state = B.VASState(scores, scores, scores, jnp.int32(5))
    sampler = B.vas_sampler(8, lam=0.5, update_every=10)
    idx, _ = _draw_many(sampler, state, success, jax.random.key(1), 4000)
    q = np.asarray(B.mixture_probabilities(scores, 0.5, 8))
    np.testing.assert_allclose(q, 0.5 * np.asarray(scores) / 10 + 0.5 / 5)
    assert _frequency_check(idx, q, "mixture").passed
    assert not _frequency_check(idx, np.asarray(scores) / 10, "pure VPS").passed
    # the VPS-weighted slots come first: prompts with VPS 0 never appear there
    assert not np.isin(idx[:, :4], [1, 3]).any()


def test_lambda_zero_equals_uniform():
    success = jnp.asarray(ens.make_ensemble(3, 9, 4).success)
    logits = jnp.zeros_like(success)
    vas = B.vas_sampler(7, lam=0.0)
    uni = ens.uniform_sampler(7)
    s_v, s_u = vas.init(jax.random.key(0), logits, success), uni.init(jax.random.key(0), logits, success)
    for t in range(3):
        key = jax.random.key(10 + t)
        iv, wv, s_v, ev = vas.select(key, s_v, logits, success, t)
        iu, wu, s_u, eu = uni.select(key, s_u, logits, success, t)
        np.testing.assert_array_equal(iv, iu)
        assert wv is None and wu is None and int(ev) == 0 == int(eu)


def test_refresh_period_and_extra_rollouts():
    e = ens.make_ensemble(4, 6, 3)
    success = jnp.asarray(e.success)
    logits = jnp.zeros_like(success)
    sampler = B.vas_sampler(4, num_rollouts=5, lam=1.0, update_every=10)
    state = sampler.init(jax.random.key(0), logits, success)
    select = jax.jit(sampler.select)
    extras, refreshed = [], []
    for t in range(25):
        old = state.scores
        _, _, state, extra = select(jax.random.key(100 + t), state, logits, success, jnp.int32(t))
        extras.append(int(extra))
        refreshed.append(int(state.last_refresh))
        if t % 10:
            np.testing.assert_array_equal(state.scores, old)
    assert extras == [6 * 5 if t % 10 == 0 else 0 for t in range(25)]
    assert refreshed == [10 * (t // 10) for t in range(25)]
    np.testing.assert_allclose(state.scores, 1.0 * B.outcome_variance_score(state.pass_rate)
                               + 1.0 * state.diversity)


def test_importance_weights():
    success = jnp.asarray(ens.make_ensemble(5, 4, 3).success)
    scores = jnp.array([1.0, 2.0, 3.0, 4.0])
    state = B.VASState(scores, scores, scores, jnp.int32(0))
    sampler = B.vas_sampler(6, lam=0.5, update_every=100, reweight=True)
    idx, w, _, _ = sampler.select(jax.random.key(0), state, jnp.zeros_like(success), success, 1)
    q = B.mixture_probabilities(scores, 0.5, 6)
    np.testing.assert_allclose(w, 1.0 / (6 * q[idx]))


def test_trainer_counts_scoring_rollouts():
    e = ens.make_ensemble(6, 8, 3)
    sampler = V.cached_vas_sampler(4, num_rollouts=3, lam=0.5, update_every=5)
    res = train(e, estimators.get("grpo"), steps=12, batch=4, group=4, seeds=2, seed=0, sampler=sampler)
    refreshes = 3  # steps 0, 5, 10
    assert res.samples[-1] == 12 * 4 * 4 + refreshes * 8 * 3
    assert np.all(np.isfinite(res.expected_reward))
    assert V.cached_vas_sampler(4, num_rollouts=3, lam=0.5, update_every=5) is sampler


def test_paired_gain_of_identical_runs_is_zero():
    e = ens.make_ensemble(7, 8, 3)
    res = train(e, estimators.get("rloo"), steps=10, batch=4, group=4, seeds=4, seed=0)
    g = V.paired_gain(res, res, count_scoring=True)
    assert g["final"] == [0.0, 0.0, 0.0] and g["auc"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("kwargs", [dict(num_rollouts=0), dict(lam=1.5), dict(alpha=-1.0),
                                    dict(update_every=0), dict(beta=float("nan"))])
def test_bad_input(kwargs):
    with pytest.raises(InputError):
        B.vas_sampler(4, **kwargs)
    with pytest.raises(InputError):
        B.vas_sampler(0)
