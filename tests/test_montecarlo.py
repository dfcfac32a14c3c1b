"""Monte Carlo against exact under Holm-controlled z-tests, with planted defects that must be caught."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from bandits import rewards as R
from bandits.errors import InputError
from sims import estimators
from sims.engines import checks, montecarlo, stats

SEED = int(os.environ.get("PGLAB_MC_SEED", "0"))


@pytest.fixture(scope="module")
def suite():
    return checks.run_suite(SEED)


def test_suite_passes(suite):
    failed = [c.summary() for c in suite if not c.passed]
    assert not failed, failed


def test_suite_has_power(suite):
    """Every mean check would catch a bias of 10% of |∇J|, in any direction, with probability 0.99."""
    for c in suite:
        assert c.detectable_fraction < 0.10, c.summary()


def _leaky_rloo(rewards, weights):
    """Planted defect: a 'leave-one-out' baseline that still contains the sample's own reward."""
    return rewards - jnp.sum(rewards, axis=-1, keepdims=True) / (rewards.shape[-1] - 1)


@pytest.fixture
def leaky():
    est = estimators.register(estimators.Estimator(name="leaky_rloo", advantages=_leaky_rloo, summary="defect", property=estimators.UNBIASED))
    yield est.name
    estimators.unregister(est.name)


def test_planted_defect_own_reward_in_baseline_is_caught(leaky):
    model = R.parse_rewards("bernoulli:0.8,0.4,0.1")
    check = checks.mc_unbiased(estimators.get(leaky), (0.3, -0.2, 0.1), model, 4, checks.SUITE_SAMPLES, SEED)
    assert not check.passed, check.summary()
    for c in checks.run_suite(SEED, estimator_override=leaky):
        if "vs ∇J" in c.label:
            assert not c.passed, c.summary()


def test_planted_defect_variance_off_by_two_percent_is_caught():
    for c in checks.run_suite(SEED, variance_factor=1.02):
        if "MC vs exact" in c.label:
            assert not c.passed, c.summary()


def test_same_seed_same_numbers_other_seed_other_numbers():
    model = R.bernoulli([0.8, 0.4, 0.1])
    a = montecarlo.moments(estimators.get("grpo"), [0.3, -0.2, 0.1], model, 4, 50_000, seed=7)
    b = montecarlo.moments(estimators.get("grpo"), [0.3, -0.2, 0.1], model, 4, 50_000, seed=7)
    c = montecarlo.moments(estimators.get("grpo"), [0.3, -0.2, 0.1], model, 4, 50_000, seed=8)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.cov, b.cov)
    assert not np.array_equal(a.mean, c.mean)


def test_chunked_merge_equals_one_pass():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3)) @ rng.normal(size=(3, 3))
    acc = (0.0, np.zeros(3), np.zeros((3, 3)))
    for part in np.array_split(x, 7):
        d = part - part.mean(0)
        acc = montecarlo._merge(acc, len(part), part.mean(0), d.T @ d)
    np.testing.assert_allclose(acc[1], x.mean(0), atol=1e-12)
    np.testing.assert_allclose(acc[2] / (len(x) - 1), np.cov(x.T), atol=1e-12)


def test_partial_last_chunk_and_batch_count():
    model = R.bernoulli([0.8, 0.4, 0.1])
    m = montecarlo.moments(estimators.get("rloo"), [0.3, -0.2, 0.1], model, 4, 10_007, seed=1)
    assert m.samples == 10_007 and m.batches >= 32 and np.isfinite(m.trace_var_se)


def test_gaussian_rewards_unbiased():
    model = R.parse_rewards("gaussian:1/1,0/0.5,0.3/2")
    c = checks.mc_unbiased(estimators.get("rloo"), (0.3, -0.2, 0.1), model, 4, 200_000, SEED)
    assert c.passed, c.summary()


def test_bad_monte_carlo_input():
    model = R.bernoulli([0.5, 0.5])
    with pytest.raises(InputError):
        montecarlo.moments(estimators.get("rloo"), [0.0, 0.0], model, 4, 1)
    with pytest.raises(InputError):
        montecarlo.moments(estimators.get("rloo"), [0.0, 0.0], model, 4, 100, seed=-3)
    with pytest.raises(InputError):
        montecarlo.moments(estimators.get("rloo"), [0.0, 0.0, 0.0], model, 4, 100)


def test_holm_and_power_arithmetic():
    assert list(stats.holm_reject([1e-9, 0.5, 2e-7], alpha=1e-6)) == [True, False, True]
    assert list(stats.holm_reject([6e-7, 6e-7], alpha=1e-6)) == [False, False]
    assert list(stats.holm_reject([4e-7, 4e-7], alpha=1e-6)) == [True, True]
    c = stats.z_check("x", [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], scale=1.0)
    assert c.passed and c.detectable_fraction == pytest.approx(
        (stats.critical_z(2) + 2.3263478740408408) * np.sqrt(2))
    assert not stats.z_check("x", [8.0], [1.0], [0.0]).passed


def test_expectation_of_a_statistic_agrees_with_the_exact_engine_and_catches_a_defect():
    """montecarlo.expectation and exact.expectation of one statistic (ĝ, |ĝ|²) on one instance:
    the z-check accepts, and rejects the exact mean moved by 5% of |∇J| along ∇J."""
    from sims import oblrpo
    from sims.engines import exact

    logits, model = np.array([0.4, -0.3, 0.0]), R.bernoulli([0.8, 0.3, 0.5])
    est = estimators.get("rloo")
    padded = exact.expectation(oblrpo.stat_moments, est, logits, model, 3)  # arms padded to 8
    want = np.concatenate([padded[:3], padded[-1:]])
    s = montecarlo.expectation(oblrpo.stat_moments, est, logits, model, 3, 200_000, seed=SEED)
    assert s.mean.shape == want.shape == (4,) and s.samples == 200_000
    assert stats.z_check("E[stat]", s.mean, s.mean_se, want).passed
    g = exact.moments(est, logits, model, 3).true_gradient
    moved = want.copy()
    moved[:3] += 0.05 * g
    assert not stats.z_check("E[stat] (defect)", s.mean, s.mean_se, moved).passed


def test_ensemble_is_the_stream_of_the_batch_problem():
    """montecarlo.ensemble: c_x within Holm of the exact enumeration, a 5% scale defect caught,
    and the same seed gives the same numbers."""
    from sims import batch

    ps, est = [0.2, 0.5, 0.8], batch.get("gpg")
    ex = batch.exact_ensemble(est, ps, 4)["c"]
    mc = montecarlo.ensemble(est, ps, 4, 200_000, seed=SEED)
    assert set(mc) == {"c", "c_se", "mean_u", "var_u", "samples"}
    assert stats.z_check("c_x", mc["c"], mc["c_se"], ex).passed
    assert not stats.z_check("c_x (defect)", mc["c"], mc["c_se"], 1.05 * ex).passed
    np.testing.assert_array_equal(montecarlo.ensemble(est, ps, 4, 200_000, seed=SEED)["c"], mc["c"])


def test_stream_to_json_is_strict_and_names_a_missing_standard_error():
    import json

    draw = montecarlo.SoftmaxGroups(estimators.get("rloo"), 2)
    args = (jnp.array([0.2, -0.1]), R.bernoulli([0.7, 0.2]).tables(), {})
    block = montecarlo.stream(draw, args, 200, seed=1).to_json()  # one chunk: no batch-means SE
    assert list(block) == ["samples", "seed", "mean", "mean_se", "trace_var", "trace_var_se",
                           "trace_var_se_reason"]
    assert block["trace_var_se"] is None and "2 batches" in block["trace_var_se_reason"]
    json.dumps(block, allow_nan=False)
    s = montecarlo.stream(draw, args, 4096, seed=1)
    assert "trace_var_se_reason" not in s.to_json() and s.to_json()["trace_var_se"] == s.trace_var_se
    inf = montecarlo.Stream(samples=4, seed=0, mean=np.zeros(1), cov=np.ones((1, 1)),
                            trace_var_se=float("inf"), batches=2).to_json()
    assert inf["trace_var_se"] is None and "not finite" in inf["trace_var_se_reason"]
