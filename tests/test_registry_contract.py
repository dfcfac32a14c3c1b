"""Every entry of the two registries meets `sims.audit.contract`, the one list of checks of an
advantage function (docs/design.md §3), and each planted defect is caught by the check meant for it."""

import jax.numpy as jnp
import pytest

from sims import audit, batch
from sims import estimators as E

GROUP = list(E.REGISTRY.values())
BATCH = list(batch.REGISTRY.values())
WITH_EPS = [e for e in GROUP if "eps" in e.params]
# all-equal groups, in float64 and float32: non-dyadic (0.35, 0.1, 1e-3, 7.3) and exact values
VALUES = (0.0, 0.35, 1.0, 0.1, 1e-3, 7.3)


def unmet(results):
    return [(r.name, r.detail) for r in audit.failures(results)]


def _name(entry):
    return entry.name


@pytest.mark.parametrize("group", [2, 3, 6])
@pytest.mark.parametrize("entry", GROUP, ids=_name)
def test_group_entries_meet_the_contract(entry, group):
    results = audit.contract(entry, group, values=VALUES, float32_values=VALUES, zero_weights=True)
    assert {r.name for r in results} == {"permutation", "shift", "scale", "all_equal", "singleton", "float32",
                                         "float32_dtype", "uses_weights", "finite"}
    assert unmet(results) == []


@pytest.mark.parametrize("entry", WITH_EPS, ids=_name)
def test_group_entries_meet_the_contract_at_eps_zero(entry):
    """eps = 0 is allowed (`estimators.resolve_params`): all-equal groups must still give zeros, not 0/0."""
    assert unmet(audit.contract(entry, 5, params={"eps": 0.0})) == []


@pytest.mark.parametrize("group", [2, 4])
@pytest.mark.parametrize("entry", BATCH, ids=_name)
def test_batch_entries_meet_the_contract(entry, group):
    """(PROMPTS, G) batches: prompts and each prompt's members permuted; the whole batch all-equal."""
    results = audit.contract(entry, group, values=VALUES, float32_values=VALUES, zero_weights=True)
    assert unmet(results) == []


def _first_member(rewards, weights):
    """The first member as the baseline: zero on all-equal groups, but not symmetric."""
    return rewards - rewards[..., :1]


def _plain_grpo(rewards, weights):
    """GRPO about the plain mean: exact in float64 at G = 12, a float32 residue blown up by 1/std."""
    return (rewards - jnp.mean(rewards)) / (jnp.std(rewards, ddof=1) + 1e-6)


def _nan_on_ties(rewards, weights):
    return (rewards - jnp.mean(rewards)) / jnp.std(rewards)


def _prompt_position(rewards, weights):
    """A batch function that weighs each prompt by its position in the batch."""
    return batch.grpo_batch_std(rewards, weights) * (1.0 + jnp.arange(rewards.shape[0]))[:, None]


def _batch_entry(fn):
    return batch.BatchEstimator(name="planted", advantages=fn, params={}, summary="defect", source="",
                                property=batch.PER_PROMPT)


@pytest.mark.parametrize("planted, clean, group, caught", [
    (E.entry(_first_member, property=E.UNBIASED), E.get("grpo_mean"), 4, {"permutation"}),
    (E.entry(_plain_grpo), E.get("grpo"), 12, {"float32"}),
    (E.entry(E.opo, name="opo_declared_weight_free", uses_weights=False), E.get("opo"), 4, {"uses_weights"}),
    (E.entry(_nan_on_ties), E.get("grpo"), 4, {"all_equal", "finite"}),
    (E.entry(E.rloo, name="rloo_declared_at_g1", min_group=1), E.get("rloo"), 4, {"singleton"}),
    (_batch_entry(_prompt_position), batch.get("grpo_batch_std"), 3, {"permutation"}),
], ids=["not-equivariant", "float32-residue", "reads-weights", "nan-on-ties", "undefined-at-g1", "batch-order"])
def test_planted_defects_are_caught_by_their_check(planted, clean, group, caught):
    assert {r.name for r in audit.failures(audit.contract(planted, group))} == caught
    assert unmet(audit.contract(clean, group)) == []


def test_reported_checks_are_not_required_of_a_plain_function():
    """Shift and scale are reported, never required; a plain function declares nothing about G = 1
    or the weights, so `bnpo`'s shape (neither invariant nor homogeneous) and an undefined singleton
    are facts, not failures."""
    res = {r.name: r for r in audit.contract(E.get("bnpo"), 4)}
    assert not res["shift"].passed and not res["scale"].passed and res["shift"].ok and res["scale"].ok
    plain = {r.name: r for r in audit.contract(E.rloo, 4)}
    assert plain["singleton"].value == "raises ZeroDivisionError" and plain["singleton"].ok
    assert plain["uses_weights"].ok and not plain["uses_weights"].required
