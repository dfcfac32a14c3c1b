"""The exact engine: multiset enumeration against ordered tuples, reference values, properties."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandits import rewards as R
from bandits.errors import InputError
from sims import estimators as E
from sims.engines import binary, exact
from tests.strategies import ESTIMATORS, bandits


def numpy_group_gradients(est, params, logits, arms, rewards):
    """ĝ = (1/G) Σ_i A_i s(a_i) for groups (N, G), assembled here in numpy from s(a) = e_a − π
    and |s|² (or s_k² per coordinate): only the registry's advantage function is shared."""
    logits = np.asarray(logits, dtype=np.float64)
    e = np.exp(logits - logits.max())
    pi = e / e.sum()
    s = np.eye(len(pi))[arms] - pi  # (N, G, K)
    w = s**2 if est.per_coordinate else np.sum(s**2, axis=-1)
    a = np.asarray(jax.vmap(lambda r, x: est.advantages(r, x, **params))(jnp.asarray(rewards), jnp.asarray(w)))
    if a.ndim == 2:
        a = a[..., None]
    return np.mean(a * s, axis=1)


def brute_force(name, logits, model, group, **params):
    """E[ĝ], Cov[ĝ] by summing over all M^G ordered tuples of outcomes (small cases only)."""
    est = E.get(name)
    params = E.resolve_params(est, group, **params)
    o_arm, o_val, o_prob = model.outcomes()
    e = np.exp(np.asarray(logits) - np.max(logits))
    pi = e / e.sum()
    p = pi[o_arm] * o_prob
    tuples = np.array(list(itertools.product(range(len(o_arm)), repeat=group)))
    w = np.prod(p[tuples], axis=1)
    g = numpy_group_gradients(est, params, logits, o_arm[tuples], o_val[tuples])
    mean = w @ g
    d = g - mean
    return mean, (d * w[:, None]).T @ d


@given(bandits(k_range=(2, 3), g_range=(2, 4), kinds=("bernoulli", "deterministic")),
       st.sampled_from([*ESTIMATORS, "optimal_baseline_loo_coord"]))
def test_multisets_equal_ordered_tuples(case, name):
    logits, model, group = case
    group = min(group, 3 if model.kind == "bernoulli" else 4)
    ex = exact.moments(E.get(name), logits, model, group)
    mean, cov = brute_force(name, logits, model, group)
    np.testing.assert_allclose(ex.mean, mean, atol=1e-12)
    np.testing.assert_allclose(ex.cov, cov, atol=1e-12)


def test_reference_values_theta_zero():
    m = exact.moments(E.get("reinforce"), [0.0, 0.0, 0.0], R.deterministic([1, 0, 0]), 1)
    np.testing.assert_allclose(m.true_gradient, [2 / 9, -1 / 9, -1 / 9], atol=1e-15)
    assert m.optimal_constant_baseline == pytest.approx(1 / 3, abs=1e-14)
    for b in [0.0, 1 / 3, 0.5, 1.0, -2.0]:
        v = exact.moments(E.get("reinforce"), [0.0] * 3, R.deterministic([1, 0, 0]), 1, baseline=b).trace_var
        assert v == pytest.approx(2 * b * b / 3 - 4 * b / 9 + 4 / 27, abs=1e-14)


def test_reference_values_theta_ln2():
    logits, model = [math.log(2), 0.0, 0.0], R.deterministic([1, 0, 0])
    v = lambda b: exact.moments(E.get("reinforce"), logits, model, 1, baseline=b).trace_var  # noqa: E731
    m = exact.moments(E.get("reinforce"), logits, model, 1)
    assert m.objective == pytest.approx(0.5, abs=1e-15)
    assert m.optimal_constant_baseline == pytest.approx(3 / 10, abs=1e-14)
    assert v(0.0) == pytest.approx(3 / 32, abs=1e-14)
    assert v(0.5) == pytest.approx(1 / 16, abs=1e-14)
    assert v(0.3) == pytest.approx(3 / 80, abs=1e-14)


@given(bandits(), st.sampled_from(["reinforce", "rloo", "optimal_baseline_loo", "optimal_baseline_loo_coord"]))
def test_unbiased_estimators_have_zero_bias(case, name):
    logits, model, group = case
    m = exact.moments(E.get(name), logits, model, group)
    np.testing.assert_allclose(m.bias, 0.0, atol=1e-10)


@given(bandits())
def test_grpo_mean_is_scaled_gradient(case):
    logits, model, group = case
    m = exact.moments(E.get("grpo_mean"), logits, model, group)
    np.testing.assert_allclose(m.mean, (1 - 1 / group) * m.true_gradient, atol=1e-10)


@given(bandits(), st.floats(-2, 2))
def test_constant_baseline_variance_divides_by_group(case, b):
    logits, model, group = case
    v1 = exact.moments(E.get("reinforce"), logits, model, 1, baseline=b).trace_var
    vg = exact.moments(E.get("reinforce"), logits, model, group, baseline=b).trace_var
    assert vg == pytest.approx(v1 / group, rel=1e-9, abs=1e-13)


def test_multiset_count_for_the_large_case():
    assert exact.count_multisets(8, 16) == 245_157
    rows, log_coef = exact.multisets(8, 16)
    assert rows.shape == (245_157, 16)
    assert np.exp(log_coef).sum() == pytest.approx(8**16, rel=1e-10)


def test_hypothesis_sized_instances_reuse_compiled_kernels():
    """Similar-size instances hit the same compiled kernel (padded arms and multisets)."""
    rng = np.random.default_rng(0)
    exact.moments(E.get("rloo"), [0.1, 0.2], R.bernoulli([0.5, 0.5]), 3)
    exact.moments(E.get("rloo"), [0.1, 0.2], R.bernoulli([0.5, 0.5]), 3, route="multiset")
    sizes = lambda: sum(k._cache_size() for k in (exact._moments_kernel, exact._alphabet_kernel,  # noqa: E731
                                                      exact._alphabet_kernel_small))
    before = sizes()
    for _ in range(20):
        k = int(rng.integers(2, 5))
        for route in exact.ROUTES:
            exact.moments(E.get("rloo"), rng.normal(size=k), R.bernoulli(rng.uniform(size=k)), 3, route=route)
    assert sizes() - before <= 3


def test_too_large_enumeration_is_refused():
    with pytest.raises(InputError, match="use Monte Carlo"):
        exact.moments(E.get("optimal_baseline_loo"), np.linspace(0, 1, 8), R.bernoulli(np.full(8, 0.5)), 40)


def test_logit_count_must_match_arms():
    with pytest.raises(InputError, match="one per arm"):
        exact.moments(E.get("rloo"), [0.0, 0.0], R.bernoulli([0.5, 0.5, 0.5]), 2)


def _centred(rewards, weights):
    return rewards - jnp.mean(rewards, axis=-1, keepdims=True)


def _twice_centred(rewards, weights):
    return 2.0 * _centred(rewards, weights)


def test_a_name_registered_again_computes_the_new_function():
    """Compiled kernels must follow the registered function, not its name: register f, compute
    exactly (both routes) and by Monte Carlo, unregister, register a different g under the same
    name and compute again: the numbers are g's (here g = 2f, so E[ĝ] doubles)."""
    from sims.engines import montecarlo

    logits, model, group = [0.3, -0.2, 0.1], R.bernoulli([0.8, 0.4, 0.1]), 3

    results = []
    for fn in (_centred, _twice_centred):
        E.register(E.Estimator(name="reused_name", advantages=fn, summary="reused", property=E.BIASED, uses_weights=False))
        try:
            results.append([exact.moments(E.get("reused_name"), logits, model, group, route=r).mean
                            for r in exact.ROUTES]
                           + [montecarlo.moments(E.get("reused_name"), logits, model, group, 4096, seed=3).mean])
        finally:
            E.unregister("reused_name")
    for first, second in zip(*results):
        np.testing.assert_allclose(second, 2.0 * first, rtol=1e-12, atol=1e-15)
        assert np.max(np.abs(first)) > 1e-3


def test_a_batch_name_registered_again_computes_the_new_function():
    """The batch engine and the two-armed route key their kernels on the function as well."""
    from sims import batch
    from sims.engines import montecarlo

    results = []
    for fn in (_centred, _twice_centred):
        batch.REGISTRY["reused_name"] = batch.BatchEstimator("reused_name", fn, {}, "reused", "test", "test")
        E.register(E.Estimator(name="reused_name", advantages=fn, summary="reused", property=E.BIASED, uses_weights=False))
        try:
            results.append([batch.exact_ensemble(batch.get("reused_name"), [0.3, 0.6], 3)["c"],
                            montecarlo.ensemble(batch.get("reused_name"), [0.3, 0.6], 3, 4096, seed=3)["c"],
                            binary.scale_curve(E.get("reused_name"), [0.3, 0.6], 3)])
        finally:
            batch.REGISTRY.pop("reused_name")
            E.unregister("reused_name")
    for first, second in zip(*results):
        np.testing.assert_allclose(second, 2.0 * first, rtol=1e-12)


def test_moments_to_json_is_the_exact_block():
    """Moments.to_json: plain floats and lists, bias = mean − ∇J, tr Cov, the route; strict JSON."""
    import json

    m = exact.moments(E.get("rloo"), [0.3, -0.2, 0.1], R.bernoulli([0.8, 0.4, 0.1]), 4)
    block = m.to_json()
    assert list(block) == ["mean", "bias", "cov", "trace_var", "optimal_constant_baseline", "route"]
    assert block["bias"] == [float(x) for x in m.mean - m.true_gradient]
    assert block["trace_var"] == float(np.trace(m.cov)) and block["route"] == m.route
    assert json.loads(json.dumps(block, allow_nan=False)) == block
