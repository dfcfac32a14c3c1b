"""Shared test set-up: float64 JAX, hypothesis profiles, and a header naming the JAX backend."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

import sims  # noqa: F401  (turns on float64)
from sims.runtime import resources

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config):
    devices = ", ".join(f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices())
    return [
        f"jax {jax.__version__}: default backend {jax.default_backend()}; devices [{devices}]; "
        f"x64 {jax.config.jax_enable_x64}"
    ]


# The longest files run first: under `make test` (pytest-xdist, whole files per worker) a long file
# that started last would leave the other workers idle at the end.
LONGEST_FIRST = ("test_pipeline.py", "test_verify.py", "test_notebooks.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _release_compiled_code():
    """Keep the whole suite's process inside the kernel's memory-map limit (sims.runtime.resources)."""
    yield
    resources.release_compiled_code()
