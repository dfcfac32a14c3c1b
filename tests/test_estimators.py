"""The registry's advantage functions: formulas and edge cases of docs/design.md §4.1 (symmetry,
all-equal groups and finiteness are `sims.audit.contract`'s, tests/test_registry_contract.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandits.errors import InputError
from sims import estimators as E

groups = st.integers(2, 8).flatmap(
    lambda g: st.tuples(st.lists(st.sampled_from([0.0, 1.0, 0.35, 0.5, -2.0]) | st.floats(-3, 3),
                                 min_size=g, max_size=g),
                        st.lists(st.just(0.0) | st.floats(1e-6, 2.0), min_size=g, max_size=g)))


def advantages(name, r, w, **p):
    return np.asarray(E.get(name).advantages(jnp.asarray(r), jnp.asarray(w), **(E.get(name).params | p)))


@given(groups)
def test_formulas_match_definitions(rw):
    r, w = np.asarray(rw[0]), np.asarray(rw[1])
    g = len(r)
    loo_mean = (r.sum() - r) / (g - 1)
    np.testing.assert_allclose(advantages("reinforce", r, w, baseline=0.3), r - 0.3, atol=1e-12)
    np.testing.assert_allclose(advantages("rloo", r, w), r - loo_mean, atol=1e-12)
    np.testing.assert_allclose(advantages("grpo_mean", r, w), r - r.mean(), atol=1e-12)
    np.testing.assert_allclose(advantages("grpo", r, w),
                               (r - r.mean()) / (r.std(ddof=1) + 1e-6), atol=1e-9, rtol=1e-9)
    others = ~np.eye(g, dtype=bool)
    base = np.array([w[m] @ r[m] / w[m].sum() if w[m].sum() > 0 else 0.0 for m in others])
    np.testing.assert_allclose(advantages("optimal_baseline_loo", r, w), r - base, atol=1e-12)


def test_float32_near_ties_are_not_inflated():
    r = jnp.array([0.35, 0.35, 0.35, 0.35, 0.35, 0.35, 0.35, 1.0], dtype=jnp.float32)
    a = np.asarray(E.grpo(r, jnp.ones(8, jnp.float32)))
    assert np.all(a[:7] == a[0]) and np.all(np.isfinite(a))
    np.testing.assert_allclose(a, advantages("grpo", np.asarray(r, np.float64), np.ones(8)), rtol=1e-5)


def test_optimal_baseline_loo_falls_back_to_a_zero_baseline():
    """When the others' weights vanish the baseline is 0 (finiteness is `audit.contract`'s)."""
    np.testing.assert_array_equal(advantages("optimal_baseline_loo", np.array([1.0, 0.5]), np.array([0.0, 0.0])), [1.0, 0.5])


def test_jit_and_grad_through_advantages():
    """jax.grad through the registry: RLOO against its hand derivative, GRPO against central
    finite differences (d/dr Σ c_i A_i; for RLOO G/(G−1)(c − mean c))."""
    r = jnp.array([0.0, 1.0, 0.5, 2.0])
    c = jnp.array([0.3, -1.0, 2.0, 0.7])
    g = jax.jit(jax.grad(lambda x: jnp.sum(c * E.rloo(x, jnp.ones_like(x)))))(r)
    np.testing.assert_allclose(np.asarray(g), 4 / 3 * (np.asarray(c) - np.mean(np.asarray(c))), atol=1e-12)
    f = lambda x: jnp.sum(c * E.grpo(x, jnp.ones_like(x), eps=0.1))  # noqa: E731
    auto = np.asarray(jax.jit(jax.grad(f))(r))
    h = 1e-6
    fd = np.array([(float(f(r.at[i].add(h))) - float(f(r.at[i].add(-h)))) / (2 * h) for i in range(4)])
    np.testing.assert_allclose(auto, fd, atol=1e-7)
    assert np.abs(auto).max() > 0.1


def test_unknown_estimator_lists_known_ones():
    with pytest.raises(InputError, match="known: " + ", ".join(sorted(E.REGISTRY))):
        E.get("ppo")


@pytest.mark.parametrize("name", ["rloo", "grpo", "grpo_mean", "optimal_baseline_loo"])
def test_singleton_groups_rejected(name):
    with pytest.raises(InputError, match="at least 2"):
        E.resolve_params(E.get(name), 1)
    E.resolve_params(E.get("reinforce"), 1)


def test_parameter_validation():
    with pytest.raises(InputError, match="no parameter"):
        E.resolve_params(E.get("rloo"), 4, eps=0.1)
    with pytest.raises(InputError, match="finite"):
        E.resolve_params(E.get("reinforce"), 4, baseline=float("nan"))
    with pytest.raises(InputError, match="non-negative"):
        E.resolve_params(E.get("grpo"), 4, eps=-1.0)
    with pytest.raises(InputError, match="already registered"):
        E.register(E.get("rloo"))


@given(groups)
def test_per_coordinate_baseline_matches_definition(rw):
    r = np.asarray(rw[0])
    w = np.outer(np.asarray(rw[1]), [1.0, 0.5, 0.0])  # coordinate 3 has no weight: baseline 0
    a = np.asarray(E.optimal_baseline_loo_coord(jnp.asarray(r), jnp.asarray(w)))
    for k in range(3):
        np.testing.assert_allclose(a[:, k], advantages("optimal_baseline_loo", r, w[:, k]), atol=1e-12)
