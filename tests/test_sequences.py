"""Group estimates on the sequence testbed (docs/design.md §4.12): the type-alphabet route against a
brute force over ordered groups written here (with the aggregation coefficients written out), T = 1
against the softmax bandit for every registry entry, Monte Carlo through the one engine against
exact (Holm, with a planted defect), and the length push of the aggregations on the answer-filler
family."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits import rewards as R
from bandits import sequence as S
from bandits.errors import InputError
from sims import estimators as E
from sims import sequences as Q
from sims.engines import exact, stats

COEFFICIENTS = {  # c_i written out from the peers' definitions (lengths l (G,), padded width T)
    "token-mean": lambda l, T: np.full(len(l), 1.0 / l.sum()),
    "token-sum": lambda l, T: np.ones(len(l)),
    "seq-mean-token-sum": lambda l, T: np.full(len(l), 1.0 / len(l)),
    "seq-mean-token-mean": lambda l, T: 1.0 / (len(l) * l),
    "seq-mean-token-sum-norm": lambda l, T: np.full(len(l), 1.0 / T),
    "dr_grpo": lambda l, T: np.full(len(l), 1.0 / (len(l) * T)),
}


def _brute(est, sp, theta, rewards, group, agg, feature):
    """E[ĝ], Cov[ĝ] summed over every ordered group, ĝ = Σ_i c_i A_i ∇log π(y_i)."""
    pi = np.asarray(S.policy(sp, jnp.asarray(theta)))
    s = np.asarray(S.scores(sp, jnp.asarray(theta))).reshape(sp.num_responses, -1)
    f = Q.features(sp, theta, feature)
    coef = COEFFICIENTS[agg]
    first = np.zeros(s.shape[1])
    second = np.zeros((s.shape[1], s.shape[1]))
    for g in itertools.product(range(sp.num_responses), repeat=group):
        g = np.array(g)
        a = np.asarray(est.advantages(jnp.asarray(rewards[g]), jnp.asarray(f[g]), **est.params))
        x = coef(sp.lengths[g].astype(float), sp.max_len) * a
        gh = x @ s[g]
        w = np.prod(pi[g])
        first += w * gh
        second += w * np.outer(gh, gh)
    return first, second - np.outer(first, first)


@pytest.mark.parametrize("agg", sorted(COEFFICIENTS))
@pytest.mark.parametrize("name, feature", [("grpo", "ones"), ("rloo", "ones"), ("opo", "length"),
                                           ("gtpo", "mean_entropy")])
def test_type_route_equals_a_brute_force_over_ordered_groups(agg, name, feature):
    sp = S.space(3, 3, eos=2)  # 13 responses of lengths 1, 2, 3
    rng = np.random.default_rng(5)
    theta = rng.normal(size=(sp.num_prefixes, 3))
    rewards = S.majority_of_ones(sp) + 0.25 * (sp.lengths == 3)
    est = E.get(name)
    m = Q.moments(est, sp, theta, rewards, 3, agg=agg, feature=feature)
    mean, cov = _brute(est, sp, theta, rewards, 3, agg, feature)
    np.testing.assert_allclose(m.mean, mean, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(m.cov, cov, rtol=1e-10, atol=1e-13)


def test_the_brute_force_tells_the_aggregations_apart():
    """The comparison above can fail: token-mean against the brute force of seq-mean-token-mean."""
    sp = S.space(3, 3, eos=2)
    theta = np.random.default_rng(5).normal(size=(sp.num_prefixes, 3))
    rewards = S.majority_of_ones(sp)
    m = Q.moments(E.get("grpo"), sp, theta, rewards, 3, agg="token-mean")
    mean, _ = _brute(E.get("grpo"), sp, theta, rewards, 3, "seq-mean-token-mean", "ones")
    assert np.max(np.abs(m.mean - mean)) > 1e-3


@pytest.mark.parametrize("name", [n for n, e in E.REGISTRY.items() if not e.per_coordinate])
def test_one_token_responses_are_the_softmax_bandit_for_every_entry(name):
    """T = 1 with the bandit's weights |s|²: the testbed's exact moments are the bandit's."""
    sp = S.space(4, 1)
    theta = np.array([[0.3, -0.2, 0.1, 1.0]])
    rewards = np.array([1.0, 0.0, 0.35, 1.0])
    est = E.get(name)
    for group in (2, 4):
        a = Q.moments(est, sp, theta, rewards, group, agg="seq-mean-token-sum", feature="score_sq")
        b = exact.moments(est, theta[0], R.deterministic(rewards), group)
        scale = max(np.max(np.abs(b.cov)), np.max(np.abs(b.mean)))
        assert np.max(np.abs(a.mean - b.mean)) <= 1e-12 * scale
        assert np.max(np.abs(a.cov - b.cov)) <= 1e-12 * scale


def test_monte_carlo_of_the_autodiff_surrogate_matches_exact_and_a_planted_defect_is_caught():
    """The engine streams −∇L of sampled groups (autodiff of the aggregated surrogate); Holm at
    α = 1e-6 accepts the exact moments and rejects those of another aggregation."""
    sp = S.space(3, 4, eos=2)
    theta = np.random.default_rng(2).normal(size=(sp.num_prefixes, 3)) * 0.7
    rewards = S.majority_of_ones(sp)
    est = E.get("grpo")
    mc = Q.monte_carlo(est, sp, theta, rewards, 4, 40_000, seed=9, agg="token-mean")
    ex = Q.moments(est, sp, theta, rewards, 4, agg="token-mean")
    ok = stats.combine("mean, tr Cov", [
        stats.z_check("mean", mc.mean, mc.mean_se, ex.mean, scale=float(np.linalg.norm(ex.true_gradient))),
        stats.z_check("trace", mc.trace_var, mc.trace_var_se, ex.trace_var)])
    assert ok.passed, ok.summary()
    other = Q.moments(est, sp, theta, rewards, 4, agg="seq-mean-token-mean")
    bad = stats.z_check("mean", mc.mean, mc.mean_se, other.mean, scale=float(np.linalg.norm(ex.true_gradient)))
    assert not bad.passed


def _stop_gradient(fam, m):
    """E[ĝ] carried to the family's parameters (answer logits, stop logits) by the chain rule."""
    sp = fam.space
    params = jnp.zeros(2 * fam.answers)
    _, vjp = jax.vjp(fam.logits, params)
    g = np.asarray(vjp(jnp.asarray(m.mean.reshape(sp.num_prefixes, sp.vocab)))[0])
    return g[fam.answers:]


def test_length_push_of_the_aggregations_on_the_answer_filler_family():
    """Length does not enter the reward. seq-mean-token-mean (Dr. GRPO's target) pushes the stop
    logit of the right answer up (shorter) and of the wrong one down (longer); seq-mean-token-sum
    and the constant normalisers leave the stop logits alone exactly."""
    fam = S.AnswerFiller(answers=2, max_len=5)
    sp = fam.space
    theta = np.asarray(fam.logits(jnp.zeros(4)))
    rewards = S.answer_correct(sp, 0)
    for agg in ("seq-mean-token-sum", "seq-mean-token-sum-norm", "dr_grpo", "token-sum"):
        push = _stop_gradient(fam, Q.moments(E.get("grpo"), sp, theta, rewards, 4, agg=agg))
        np.testing.assert_allclose(push, 0.0, atol=1e-15)
    push = _stop_gradient(fam, Q.moments(E.get("grpo"), sp, theta, rewards, 4, agg="seq-mean-token-mean"))
    assert push[0] > 1e-4 and push[1] < -1e-4, push


# ---- the response-alphabet route ------------------------------------------------------------


def test_the_response_route_agrees_with_the_type_route():
    from sims import atlas

    sp, theta, r, _ = atlas.testbed_task(0.3)
    for name in ("grpo", "opo", "gtpo", "adora", "copo_local_soft"):
        for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
            a = Q.moments(E.get(name), sp, theta, r, 3, agg=agg)
            b = Q.moments(E.get(name), sp, theta, r, 3, agg=agg, route="responses")
            np.testing.assert_allclose(b.mean, a.mean, atol=1e-14)
            np.testing.assert_allclose(b.cov, a.cov, atol=1e-14)


def test_the_per_coordinate_entry_at_one_token_is_the_bandits():
    from bandits import rewards as R
    from sims.engines import exact

    sp = S.space(3, 1)
    theta = np.array([[0.4, -0.1, 0.2]])
    r = np.array([1.0, 0.25, 0.0])
    est = E.get("optimal_baseline_loo_coord")
    for g in (2, 3):
        a = Q.moments(est, sp, theta, r, g)
        b = exact.moments(est, theta[0], R.deterministic(r), g)
        np.testing.assert_allclose(a.mean, b.mean, atol=1e-15)
        np.testing.assert_allclose(a.cov, b.cov, atol=1e-15)
    assert a.multisets == 10  # C(3 + 3 − 1, 3)


def test_routes_refuse_what_they_cannot_do():
    sp = S.space(2, 2)
    theta = np.zeros((sp.num_prefixes, 2))
    r = S.majority_of_ones(sp)
    coord = E.get("optimal_baseline_loo_coord")
    with pytest.raises(InputError, match="per-coordinate"):
        Q.moments(coord, sp, theta, r, 2, route="types")
    with pytest.raises(InputError, match="unknown route"):
        Q.moments(E.get("grpo"), sp, theta, r, 2, route="tokens")
    with pytest.raises(InputError, match="s_k"):
        Q.moments(coord, sp, theta, r, 2, feature="length")


def test_the_mean_only_path_gives_the_full_paths_mean():
    sp = S.space(3, 4, eos=2)
    theta = np.random.default_rng(3).normal(size=(sp.num_prefixes, 3))
    r = S.majority_of_ones(sp)
    for name, agg in (("grpo", "token-mean"), ("gtpo", "seq-mean-token-mean"), ("opo", "dr_grpo")):
        a = Q.moments(E.get(name), sp, theta, r, 4, agg=agg)
        b = Q.moments(E.get(name), sp, theta, r, 4, agg=agg, covariance=False)
        np.testing.assert_allclose(b.mean, a.mean, atol=1e-14)
        assert b.cov is None and b.trace_var is None
