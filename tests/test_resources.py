"""sims.runtime.resources: long runs give compiled code back before the kernel's memory-map limit."""

import jax
import jax.numpy as jnp
import pytest

from sims.runtime import resources

pytestmark = pytest.mark.skipif(resources.mapped_regions() is None, reason="no /proc/self/maps here")


def _compile_many(n):
    for i in range(n):
        jax.jit(lambda x, i=i: jnp.sin(x) * i + jnp.cos(x * i))(jnp.ones(i + 1)).block_until_ready()


def test_release_returns_the_maps_of_compiled_code():
    resources.release_compiled_code(budget=0)
    before = resources.mapped_regions()
    _compile_many(120)
    grown = resources.mapped_regions()
    assert grown > before + 120  # every compilation maps code (about three regions each)
    assert resources.release_compiled_code(budget=before) is True
    assert resources.mapped_regions() < before + 0.25 * (grown - before)


def test_nothing_is_released_under_budget():
    _compile_many(5)
    before = resources.mapped_regions()
    assert resources.release_compiled_code(budget=10**9) is False
    assert resources.mapped_regions() >= before - 5  # the compiled code is still mapped
