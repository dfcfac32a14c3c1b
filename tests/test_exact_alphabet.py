"""The exact engine's reward-alphabet route: against the multiset route, against a brute force in
exact rational arithmetic written here, and its route choice and limits."""

import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandits import rewards as R
from bandits.errors import InputError
from sims import estimators as E
from sims.engines import exact
from tests.strategies import reward_models


def _alphabet_estimators():
    return [e.name for e in E.REGISTRY.values() if not e.per_coordinate]


@st.composite
def instances(draw, k=4, g_max=16, max_multisets=5_000):
    """K = 4 arms; logits from a small set half the time, so that arms share weight classes."""
    shared = draw(st.booleans())
    logit = st.sampled_from([-1.0, 0.0, 0.5]) if shared else st.floats(-3, 3, width=64)
    logits = np.asarray(draw(st.lists(logit, min_size=k, max_size=k)))
    model = draw(reward_models(k, ("bernoulli", "deterministic", "categorical")))
    m = len(model.outcomes()[0])
    g_top = max(g for g in range(2, g_max + 1) if math.comb(m + g - 1, g) <= max_multisets or g == 2)
    return logits, model, draw(st.integers(2, g_top))


@settings(max_examples=4)
@given(instances())
def test_alphabet_route_equals_multiset_route(case):
    logits, model, group = case
    for name in _alphabet_estimators():
        if group < E.get(name).min_group:
            continue
        a = exact.moments(E.get(name), logits, model, group, route="multiset")
        b = exact.moments(E.get(name), logits, model, group, route="reward-alphabet")
        assert b.route == "reward-alphabet" and a.route == "multiset"
        # 1e-12 absolute, and relative where an estimator's scale is large (bnpo's 1/f reaches 1e6)
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(b.cov, a.cov, rtol=1e-12, atol=1e-12, err_msg=name)


def test_alphabet_route_equals_multiset_route_at_group_64():
    """Two Bernoulli arms: 47,905 multisets of G = 64, against 4·63 reward groups."""
    logits, model = [0.4, -0.3], R.bernoulli([0.15, 0.6])
    for name in ["grpo", "rloo"]:
        a = exact.moments(E.get(name), logits, model, 64, route="multiset")
        b = exact.moments(E.get(name), logits, model, 64)
        assert (a.multisets, b.multisets, b.route) == (47_905, 4 * 63, "reward-alphabet")
        np.testing.assert_allclose(b.mean, a.mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b.cov, a.cov, rtol=0, atol=1e-12)


# --- Brute force over ordered tuples in rational arithmetic (no lab code) -------------------------
# π = (1/4, 1/2, 1/4) from logits log(1, 2, 1); arm a pays 1 with probability P[a], else 0.
PI = [Fraction(1, 4), Fraction(1, 2), Fraction(1, 4)]
P = [Fraction(4, 5), Fraction(2, 5), Fraction(1, 10)]
LOGITS = [0.0, math.log(2), 0.0]


def _advantages(name, rs):
    g = len(rs)
    mean = sum(rs, Fraction(0)) / g
    if name == "reinforce":
        return [r - Fraction(1, 2) for r in rs]  # baseline 1/2
    if name == "rloo":
        return [r - (sum(rs, Fraction(0)) - r) / (g - 1) for r in rs]
    if name == "grpo_mean":
        return [r - mean for r in rs]
    if name == "grpo":  # eps = 1e-6; the square root is the one irrational step
        std = math.sqrt(sum((r - mean) ** 2 for r in rs) / (g - 1))
        return [Fraction(float(r - mean) / (std + 1e-6)) for r in rs]
    raise KeyError(name)


def _brute_force(name, group):
    k = len(PI)
    outcomes = [(a, r, PI[a] * (P[a] if r else 1 - P[a])) for a in range(k) for r in (0, 1)]
    mean = [Fraction(0)] * k
    second = [[Fraction(0)] * k for _ in range(k)]
    for tup in itertools.product(outcomes, repeat=group):
        p = math.prod((o[2] for o in tup), start=Fraction(1))
        adv = _advantages(name, [Fraction(o[1]) for o in tup])
        ghat = [sum(adv[i] * ((1 if tup[i][0] == j else 0) - PI[j]) for i in range(group)) / group
                for j in range(k)]
        for j in range(k):
            mean[j] += p * ghat[j]
            for m in range(k):
                second[j][m] += p * ghat[j] * ghat[m]
    cov = [[second[j][m] - mean[j] * mean[m] for m in range(k)] for j in range(k)]
    return np.array(mean, dtype=float), np.array(cov, dtype=float)


@pytest.mark.parametrize("name,group", [("reinforce", 3), ("rloo", 4), ("grpo_mean", 3), ("grpo", 4)])
def test_alphabet_route_pinned_to_rational_brute_force(name, group):
    params = {"baseline": 0.5} if name == "reinforce" else {}
    m = exact.moments(E.get(name), LOGITS, R.bernoulli([float(p) for p in P]), group, **params)
    assert m.route == "reward-alphabet"
    mean, cov = _brute_force(name, group)
    np.testing.assert_allclose(m.mean, mean, rtol=0, atol=1e-14)
    np.testing.assert_allclose(m.cov, cov, rtol=0, atol=1e-14)


def test_group_64_pinned_to_rational_values():
    """G = 64: RLOO is unbiased, Dr. GRPO's mean is (1 − 1/G)∇J and REINFORCE's covariance is the
    single-sample one over G, all in rational arithmetic from ∇J = π∘(m − J)."""
    g = 64
    j = sum(pi * p for pi, p in zip(PI, P))
    grad = [pi * (p - j) for pi, p in zip(PI, P)]
    b = Fraction(1, 2)
    # single sample: E[(R − b)² s sᵀ] − ∇J∇Jᵀ, with E[(R − b)² | a] = p(1 − b)² + (1 − p)b²
    e2 = [p * (1 - b) ** 2 + (1 - p) * b**2 for p in P]
    s = lambda a, i: (1 if a == i else 0) - PI[i]  # noqa: E731
    cov1 = [[sum(PI[a] * e2[a] * s(a, i) * s(a, l) for a in range(3)) - grad[i] * grad[l]
             for l in range(3)] for i in range(3)]
    model = R.bernoulli([float(p) for p in P])
    rloo = exact.moments(E.get("rloo"), LOGITS, model, g)
    dr = exact.moments(E.get("grpo_mean"), LOGITS, model, g)
    rf = exact.moments(E.get("reinforce"), LOGITS, model, g, baseline=0.5)
    assert {rloo.route, dr.route, rf.route} == {"reward-alphabet"}
    np.testing.assert_allclose(rloo.mean, np.array(grad, dtype=float), rtol=0, atol=1e-14)
    np.testing.assert_allclose(dr.mean, np.array([x * Fraction(g - 1, g) for x in grad], dtype=float),
                               rtol=0, atol=1e-14)
    np.testing.assert_allclose(rf.cov, np.array(cov1, dtype=float) / g, rtol=0, atol=1e-14)


def test_route_choice_and_limits():
    k16 = np.linspace(-1, 1, 16), R.bernoulli(np.linspace(0.05, 0.95, 16))
    assert exact.plan(E.get("grpo"), *k16, 64) == ("reward-alphabet", 4 * 63)
    m = exact.moments(E.get("grpo"), *k16, 64)
    assert m.route == "reward-alphabet" and np.all(np.isfinite(m.cov))
    # optimal_baseline_loo sees |s|²: with 16 distinct logits it has 32 types, and both routes refuse
    with pytest.raises(InputError, match="limit of 3,000,000.*limit of 48,000,000 entries"):
        exact.moments(E.get("optimal_baseline_loo"), *k16, 64)
    # ... but with every logit equal there is one weight class and the alphabet route is cheap
    assert exact.plan(E.get("optimal_baseline_loo"), np.zeros(16), k16[1], 64)[0] == "reward-alphabet"
    with pytest.raises(InputError, match="per-coordinate"):
        exact.moments(E.get("optimal_baseline_loo_coord"), *k16, 32)
    with pytest.raises(InputError, match="unknown exact route"):
        exact.moments(E.get("grpo"), *k16, 4, route="tuples")


def test_cli_reports_route_at_group_64(capsys):
    from sims.cli.app import main

    logits = ",".join(f"{x:g}" for x in np.linspace(-1, 1, 16))
    probs = ",".join(f"{x:g}" for x in np.linspace(0.05, 0.95, 16))
    try:
        main(["moments", "--logits", logits, "--rewards", f"bernoulli:{probs}",
              "--estimator", "grpo", "--group", "64", "--json"])
    except SystemExit as e:
        assert e.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exact"]["route"] == "reward-alphabet"
    assert len(report["exact"]["cov"]) == 16


def test_group_64_on_16_arms_matches_the_difficulty_scale():
    """Binary rewards: E[ĝ] = c(J, G)·∇J with c from `sims.engines.binary` (a sum over the number of
    successes among the others, derived separately), at K = 16 arms and G = 64."""
    from sims.engines import binary

    logits, p = np.linspace(-1, 1, 16), np.linspace(0.05, 0.95, 16)
    for name in ["grpo", "grpo_mean"]:
        m = exact.moments(E.get(name), logits, R.bernoulli(p), 64)
        c = binary.binary_reward_scale(E.get(name), float(m.pi @ p), 64)
        np.testing.assert_allclose(m.mean, c * m.true_gradient, rtol=0, atol=1e-13)


# --- The type-alphabet engine (sims.engines.alphabet) against brute forces written here ------------


@pytest.mark.parametrize("types,group", [(1, 1), (1, 6), (3, 1), (4, 3), (5, 4), (2, 64), (9, 3)])
def test_multiset_table_is_every_sorted_row_with_its_multinomial(types, group):
    from sims.engines import alphabet

    rows, log_coef = alphabet.multisets(types, group)
    expected = list(itertools.combinations_with_replacement(range(types), group))
    assert [tuple(r) for r in rows.tolist()] == expected
    exact_log = [math.log(math.factorial(group) // math.prod(math.factorial(r.count(t)) for t in set(r)))
                 for r in expected]
    np.testing.assert_allclose(log_coef, exact_log, rtol=1e-13, atol=1e-13)


class _TokenMean:
    """c_i = 1/Σ_j |y_j| (hashable: a static argument of the engine)."""

    def __call__(self, lengths):
        return 1.0 / lengths.sum() * (lengths * 0 + 1)


def _tiny_testbed():
    """V = 3, end token 2, T = 2 (7 responses), majority-of-ones reward, fixed logits; π and the
    scores by hand from the space's tables."""
    from bandits import sequence as S

    sp = S.space(3, 2, eos=2)
    theta = np.array([[0.3, -0.5, 0.1], [1.0, 0.2, -0.4], [-0.7, 0.6, 0.0]])[: sp.num_prefixes]
    soft = np.exp(theta) / np.exp(theta).sum(-1, keepdims=True)
    pi = np.array([np.prod([soft[sp.rows[i, t], sp.tokens[i, t]] for t in range(sp.lengths[i])])
                   for i in range(sp.num_responses)])
    scores = np.zeros((sp.num_responses,) + theta.shape)
    for i in range(sp.num_responses):
        for t in range(sp.lengths[i]):
            scores[i, sp.rows[i, t]] += np.eye(3)[sp.tokens[i, t]] - soft[sp.rows[i, t]]
    return sp, theta, pi, scores.reshape(sp.num_responses, -1), S.majority_of_ones(sp)


def _brute_sequence(pi, scores, rewards, lengths, group, divide=True):
    """E[ĝ], Cov[ĝ] over every ordered G-tuple of responses: ĝ = Σ_i c_i A_i s(y_i), GRPO, token-mean."""
    mean, second = np.zeros(scores.shape[1]), np.zeros((scores.shape[1],) * 2)
    for tup in itertools.product(range(len(pi)), repeat=group):
        r = rewards[list(tup)]
        adv = (r - r.mean()) / (r.std(ddof=1) + 1e-6)
        g = sum(adv[i] / lengths[list(tup)].sum() * scores[y] for i, y in enumerate(tup))
        p = np.prod(pi[list(tup)])
        mean += p * g
        second += p * np.outer(g, g)
    return mean, second - np.outer(mean, mean)


def test_type_route_mean_only_and_mean_weights_pinned_to_tuple_brute_force():
    """Full moments, covariance=False and the score-free mean (∇_θ Σ π_θ(y) w(y)) against a sum over
    all 7³ ordered groups; types = (reward, length) as the token-mean coefficient reads lengths."""
    import jax
    import jax.numpy as jnp

    from bandits import sequence as S
    from sims.engines import alphabet

    sp, theta, pi, scores, r = _tiny_testbed()
    lengths = sp.lengths.astype(float)
    rows, types = np.unique(np.stack([r, lengths], -1), axis=0, return_inverse=True)
    types = types.ravel()
    est, coef, g = E.get("grpo"), _TokenMean(), 3
    params = E.resolve_params(est, g)
    args = (rows[:, 0], np.ones(len(rows)), rows[:, 1], params)
    mean, cov = _brute_sequence(pi, scores, r, lengths, g)
    m_full, c_full = alphabet.group_moments(est, coef, g, pi, scores, types, *args)
    np.testing.assert_allclose(m_full, mean, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c_full, cov, rtol=1e-12, atol=1e-13)
    m_only, none = alphabet.group_moments(est, coef, g, pi, scores, types, *args, covariance=False)
    assert none is None
    np.testing.assert_allclose(m_only, mean, rtol=1e-12, atol=1e-13)
    w = alphabet.mean_weights(est, coef, g, pi, types, *args)
    np.testing.assert_allclose(scores.T @ (pi * w), mean, rtol=1e-12, atol=1e-13)
    th = jnp.asarray(theta)
    grad = np.asarray(jax.grad(lambda t: S.policy(sp, t) @ jnp.asarray(w))(th)).ravel()
    np.testing.assert_allclose(grad, mean, rtol=1e-12, atol=1e-13)
    # planted defect: weights E[α_τ] without the division by p_τ miss the brute force
    wrong = w * np.bincount(types, weights=pi)[types]
    assert np.max(np.abs(scores.T @ (pi * wrong) - mean)) > 1e-3
