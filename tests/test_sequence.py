"""The sequence testbed (docs/design.md §4.12), against a brute force written here in plain Python:
the response space, π(y), token entropies, J and ∇J (score-function identity), the families, the
token-by-token sampler (chi-square test with a planted defect), T = 1 against the softmax bandit,
and the input limits."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from bandits import sequence as S
from bandits import softmax
from bandits.errors import InputError


def _softmax(row):
    m = max(row)
    e = [math.exp(x - m) for x in row]
    return [x / sum(e) for x in e]


def _brute_responses(vocab, max_len, eos):
    """Every terminal response, by walking all token strings (not the lab's tables)."""
    out = []
    for length in range(1, max_len + 1):
        for y in itertools.product(range(vocab), repeat=length):
            early = [t for t in range(length - 1) if y[t] == eos]
            if early:
                continue
            if y[-1] == eos or length == max_len:
                out.append(y)
    return out


def _brute_pi(y, theta_of_prefix):
    p = 1.0
    for t in range(len(y)):
        p *= _softmax(theta_of_prefix(y[:t]))[y[t]]
    return p


@pytest.mark.parametrize("vocab, max_len, eos", [(2, 3, None), (3, 4, 2), (3, 3, 0), (2, 1, None), (4, 2, 3)])
def test_space_policy_and_gradient_against_a_brute_force(vocab, max_len, eos):
    sp = S.space(vocab, max_len, eos)
    assert sorted(sp.response(i) for i in range(sp.num_responses)) == sorted(_brute_responses(vocab, max_len, eos))
    assert (sp.num_responses, sp.num_prefixes) == S.count_responses(vocab, max_len, eos)
    assert sp.prefixes == tuple(sorted(sp.prefixes, key=lambda p: (len(p), p)))  # breadth-first, lexicographic
    rng = np.random.default_rng(vocab * 100 + max_len)
    theta = rng.normal(size=(sp.num_prefixes, vocab))
    row = {p: i for i, p in enumerate(sp.prefixes)}
    rewards = rng.uniform(-1, 2, size=sp.num_responses)
    pi = np.asarray(S.policy(sp, jnp.asarray(theta)))
    want = np.array([_brute_pi(sp.response(i), lambda h: theta[row[h]]) for i in range(sp.num_responses)])
    np.testing.assert_allclose(pi, want, rtol=1e-13)
    assert abs(pi.sum() - 1) < 1e-13
    # ∇J = Σ_y π(y) R(y) Σ_t e_{y<t} ⊗ (e_{y_t} − softmax(θ_{y<t})), written out here
    grad = np.zeros_like(theta)
    for i in range(sp.num_responses):
        y = sp.response(i)
        for t in range(len(y)):
            local = -np.array(_softmax(theta[row[y[:t]]]))
            local[y[t]] += 1
            grad[row[y[:t]]] += want[i] * rewards[i] * local
    np.testing.assert_allclose(S.gradient(sp, jnp.asarray(theta), jnp.asarray(rewards)), grad, atol=1e-13)
    np.testing.assert_allclose(np.einsum("n,n,npv->pv", pi, rewards, S.scores(sp, jnp.asarray(theta))), grad,
                               atol=1e-13)
    # token entropies, written out
    ent = np.asarray(S.token_entropies(sp, jnp.asarray(theta)))
    for i in range(sp.num_responses):
        y = sp.response(i)
        for t in range(len(y)):
            q = _softmax(theta[row[y[:t]]])
            assert ent[i, t] == pytest.approx(-sum(x * math.log(x) for x in q), rel=1e-12)
        assert np.all(ent[i, len(y):] == 0)


def test_one_token_responses_are_the_softmax_bandit():
    """T = 1: π, J, ∇J and ∇²J equal the softmax bandit's (the same policy, two ways)."""
    sp = S.space(5, 1)
    theta = np.array([[0.3, -0.2, 0.1, 1.5, -2.0]])
    means = np.array([0.8, 0.4, 0.1, 0.35, 1.0])
    np.testing.assert_allclose(S.policy(sp, jnp.asarray(theta)), softmax.policy(theta[0]), rtol=1e-14)
    assert float(S.objective(sp, theta, means)) == pytest.approx(float(softmax.objective(theta[0], means)), rel=1e-14)
    np.testing.assert_allclose(S.gradient(sp, theta, means)[0], softmax.gradient(theta[0], means), atol=1e-15)
    np.testing.assert_allclose(S.hessian(sp, theta, means), softmax.hessian(theta[0], means), atol=1e-14)


def test_answer_filler_stop_logits_get_no_gradient_from_a_length_neutral_reward():
    fam = S.AnswerFiller(answers=3, max_len=5)
    sp = fam.space
    assert all(sp.response(i)[0] < 3 and set(sp.response(i)[1:]) <= {3, 4} for i in range(sp.num_responses))
    params = jnp.array([0.3, -0.1, 0.2, 0.5, -0.5, 1.0])
    rewards = S.answer_correct(sp, 1)
    g = jax.grad(lambda p: S.objective(sp, fam.logits(p), rewards))(params)
    np.testing.assert_allclose(g[3:], 0.0, atol=1e-15)  # length does not enter the reward
    pi = softmax.policy(params[:3])
    np.testing.assert_allclose(g[:3], pi * (np.eye(3)[1] - pi[1]), atol=1e-15)  # ∇ of π_1
    # a reward that pays for length pushes every stop logit down
    longer = S.length_correlated(sp, rewards, 0.5)
    g2 = jax.grad(lambda p: S.objective(sp, fam.logits(p), longer))(params)
    assert np.all(np.asarray(g2[3:]) < 0)


def test_rewards_as_tables():
    sp = S.space(3, 3, eos=2)
    r = S.majority_of_ones(sp)
    for i in range(sp.num_responses):
        y = [v for v in sp.response(i) if v != 2]
        assert r[i] == float(2 * y.count(1) > len(y))
    assert S.exact_match(sp, (1, 0, 1)).sum() == 1 and S.exact_match(sp, (0, 2)).sum() == 1
    np.testing.assert_array_equal(S.answer_correct(sp, 0), [float(sp.response(i)[0] == 0) for i in range(sp.num_responses)])


def _chi2_pvalue(sp, theta, ids):
    pi = np.asarray(S.policy(sp, jnp.asarray(theta)))
    counts = np.bincount(np.asarray(ids).ravel(), minlength=sp.num_responses)
    return sps.chisquare(counts, pi * counts.sum()).pvalue


def test_the_token_by_token_sampler_draws_pi_and_a_planted_defect_is_caught():
    """Chi-square over the 15 responses of V = 3, T = 3 with an end token at α = 1e-6 (false alarm
    ≤ 1e-6 per run, fixed seed): the sampler passes; the same draws under logits that ignore the
    prefix (the root's logits everywhere) are rejected."""
    sp = S.space(3, 3, eos=2)
    rng = np.random.default_rng(7)
    theta = rng.normal(size=(sp.num_prefixes, 3)) * 1.5
    ids = S.sample_responses(jax.random.key(11), sp, jnp.asarray(theta), (50_000,))
    assert _chi2_pvalue(sp, theta, ids) > 1e-6
    flat = np.broadcast_to(theta[0], theta.shape)
    bad = S.sample_responses(jax.random.key(11), sp, jnp.asarray(flat), (50_000,))
    assert _chi2_pvalue(sp, theta, bad) < 1e-6


@pytest.mark.parametrize("args, match", [
    ((0, 3, None), "vocab"), ((3, 0, None), "max_len"), ((3, 17, None), "max_len"),
    ((3, 3, 3), "eos"), ((1, 3, 0), "end token"), ((64, 16, None), "over the limits"), ((True, 3, None), "vocab"),
])
def test_bad_spaces_are_refused(args, match):
    with pytest.raises(InputError, match=match):
        S.space(*args)


def test_bad_logits_are_refused():
    sp = S.space(2, 2)
    with pytest.raises(InputError, match="shape"):
        S.check_logits(sp, np.zeros((2, 2)))
    with pytest.raises(InputError, match="finite"):
        S.check_logits(sp, np.full((3, 2), np.nan))
    with pytest.raises(InputError, match="finite"):
        S.check_logits(sp, np.full((3, 2), np.inf))
    with pytest.raises(InputError, match="at least one finite"):
        S.check_logits(sp, np.array([[0.0, 0.0], [-np.inf, -np.inf], [1.0, -np.inf]]))
    S.check_logits(sp, np.array([[0.0, 0.0], [0.0, -np.inf], [1.0, -np.inf]]))


def _policy(reward):
    return {"vocab": 3, "max_len": 2, "eos": 2,
            "logits": {"": [0.1, -0.2, 0.0], "0": [0.3, 0.0, -0.5], "1": [0.0, 0.0, 0.0]}, "reward": reward}


def test_multi_component_rewards_are_summed_with_unit_weights():
    spec = {"components": [{"checker": "answer_correct", "answer": 1}, {"checker": "stops"},
                           {"checker": "length", "slope": -0.5}]}
    sp, theta, r, comps = S.policy_from_dict(_policy(spec))
    # responses written out: (2), (0,0), (0,1), (0,2), (1,0), (1,1), (1,2)
    by = {sp.response(i): i for i in range(sp.num_responses)}
    want = {(2,): (0, 1, -0.25), (0, 0): (0, 0, -0.5), (0, 2): (0, 1, -0.5), (1, 2): (1, 1, -0.5),
            (1, 1): (1, 0, -0.5)}
    for y, w in want.items():
        assert tuple(comps[by[y]]) == w and r[by[y]] == sum(w)
    assert np.array_equal(S.from_dict(_policy(spec))[2], r)
    plain = S.policy_from_dict(_policy({"checker": "majority_of_ones"}))
    assert plain[3] is None and np.array_equal(plain[2], S.majority_of_ones(sp))


@pytest.mark.parametrize("reward, match", [
    ({"components": []}, "1 to 8"), ({"components": {"checker": "stops"}}, "list"),
    ({"components": [{"checker": "stops"}] * 9}, "1 to 8"),
    ({"components": [{"checker": "stops"}, {"checker": "vibes"}]}, "component 1: unknown reward checker"),
    ({"components": [{"components": [{"checker": "stops"}]}]}, "do not nest"),
    ({"components": [{"checker": "stops"}], "weights": [1]}, "nothing else"),
    ({"components": [{"table": {"2": 1.0}}]}, "component 0: reward table misses"),
    ({"components": [{"checker": "length", "slope": "x"}]}, "component 0: length's"),
])
def test_bad_components_are_refused(reward, match):
    with pytest.raises(InputError, match=match):
        S.policy_from_dict(_policy(reward))
