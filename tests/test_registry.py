"""Registry entries (docs/design.md §1): hashable by identity, defaults read from the signature,
read-only parameters, one `property` field; engines take entries, not names."""

import numpy as np
import pytest

from bandits import rewards as R
from bandits.errors import InputError
from sims import batch
from sims import estimators as E
from sims.engines import exact


def test_entries_hash_by_identity_and_keep_their_defaults_read_only():
    rloo, grpo = E.get("rloo"), E.get("grpo")
    assert hash(rloo) != hash(grpo) and rloo == rloo and rloo != E.entry(E.rloo)  # a new entry is another key
    assert dict(grpo.params) == {"eps": 1e-6}
    with pytest.raises(TypeError):
        grpo.params["eps"] = 0.0  # read-only
    assert {E.get(n) for n in E.REGISTRY} == set(E.REGISTRY.values())
    assert all(isinstance(b, batch.BatchEstimator) and hash(b) for b in batch.REGISTRY.values())


def test_the_decorator_reads_defaults_from_the_signature_and_returns_the_function():
    def mine(rewards, weights, scale=2.0, shift=-1.0):
        return scale * rewards + shift

    try:
        assert E.estimator(summary="2R − 1", property=E.BIASED)(mine) is mine
        entry = E.get("mine")
        assert dict(entry.params) == {"scale": 2.0, "shift": -1.0} and entry.advantages is mine
        assert entry.property == E.BIASED and not entry.unbiased
        with pytest.raises(InputError, match="already registered"):
            E.estimator(summary="again", property=E.BIASED)(mine)
    finally:
        E.unregister("mine")


def test_bad_entries_are_refused():
    with pytest.raises(InputError, match="needs a default"):
        E.entry(lambda rewards, weights, eps: rewards)
    with pytest.raises(ValueError, match="property"):
        E.entry(E.rloo, property="mostly unbiased")
    with pytest.raises(TypeError):
        E.register("rloo")


def test_engines_take_entries_not_names():
    model = R.bernoulli([0.8, 0.4, 0.1])
    with pytest.raises(TypeError, match="estimator entry"):
        exact.moments("rloo", [0.3, -0.2, 0.1], model, 3)
    with pytest.raises(TypeError, match="batch estimator entry"):
        batch.exact_ensemble("gpg", [0.3, 0.6], 3)
    m = exact.moments(E.get("rloo"), [0.3, -0.2, 0.1], model, 3)
    np.testing.assert_allclose(m.mean, m.true_gradient, atol=1e-15)
    # an unregistered entry runs on the engines just as a registered one does
    twice = E.entry(lambda r, w: 2.0 * E.rloo(r, w), name="twice_rloo", property=E.DIRECTION)
    np.testing.assert_allclose(exact.moments(twice, [0.3, -0.2, 0.1], model, 3).mean, 2 * m.mean, rtol=1e-12)
    assert "twice_rloo" not in E.REGISTRY
