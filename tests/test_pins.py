"""Pins to values computed independently of the lab: every registry estimator against a brute
force over ordered tuples written here with `fractions.Fraction` (floats only where a square
root enters, for `grpo`), every reward parser against hand-computed moments, the VAS diversity
score against hand-computed entropies, and one-hot limits by hand.

At θ = (ln 2, 0, 0) the policy is exactly π = (1/2, 1/4, 1/4), so the brute force is exact."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction as F

import numpy as np
import pytest

from bandits import rewards as R
from bandits import softmax
from bandits import vas as B
from sims import estimators as E
from sims.engines import exact

THETA = np.array([math.log(2.0), 0.0, 0.0])
PI = (F(1, 2), F(1, 4), F(1, 4))


def _advantages(name, rewards, weights, params):
    """The table of docs/design.md §3, from the definitions (per-coordinate: weights (G, K))."""
    g = len(rewards)
    if name == "reinforce":
        return [r - params.get("baseline", 0) for r in rewards]
    if name == "rloo":
        return [r - F(sum(rewards) - r, g - 1) for r in rewards]
    if name == "grpo_mean":
        return [r - F(sum(rewards), g) for r in rewards]
    if name == "grpo":
        x = [float(r) for r in rewards]
        mean = sum(x) / g
        std = math.sqrt(sum((v - mean) ** 2 for v in x) / (g - 1))
        eps = params.get("eps", 1e-6)
        return [0.0 if std + eps == 0 else (v - mean) / (std + eps) for v in x]
    if name == "optimal_baseline_loo":
        out = []
        for i in range(g):
            num = sum(weights[j] * rewards[j] for j in range(g) if j != i)
            den = sum(weights[j] for j in range(g) if j != i)
            out.append(rewards[i] - (num / den if den else 0))
        return out
    if name == "optimal_baseline_loo_coord":
        k = len(weights[0])
        out = []
        for i in range(g):
            row = []
            for c in range(k):
                num = sum(weights[j][c] * rewards[j] for j in range(g) if j != i)
                den = sum(weights[j][c] for j in range(g) if j != i)
                row.append(rewards[i] - (num / den if den else 0))
            out.append(row)
        return out
    if name == "real":  # the release's labels: R == 1 positive, R == 0 negative, exact in fractions
        tau = params.get("tau", F(1, 2))
        kp, kn = sum(r == 1 for r in rewards), sum(r == 0 for r in rewards)
        if not (kp and kn):
            return [F(0)] * g
        return [g / tau * ((r == 1) * F(1, 1 + kp) - (r == 0) * F(1, 1 + kn)) for r in rewards]
    if name == "copo_local":  # run_copo.sh: σ(5(H − 1))·1[R ≠ 0]·A_GRPO, H in bits of the answers
        counts = {w: sum(x == w for x in weights) for w in weights}  # equal |s|² = same answer
        h = -sum(math.log2(counts[w] / g) for w in weights) / g
        blend = 1 / (1 + math.exp(-5 * (h - 1)))
        grpo = _advantages("grpo", rewards, weights, {"eps": 1e-6})
        return [blend * a if r != 0 else 0.0 for r, a in zip(rewards, grpo)]
    raise KeyError(name)


def brute_force(name, outcomes, group, params=None):
    """E[ĝ] and tr Cov[ĝ] over all ordered G-tuples of outcomes (arm, reward, P(reward | arm)),
    ĝ = (1/G) Σ_i A_i s(a_i), s(a) = e_a − π, at π = PI."""
    params = params or {}
    k = len(PI)

    def score(a):
        return [(1 if c == a else 0) - PI[c] for c in range(k)]

    mean = [0] * k
    second = 0
    for tup in itertools.product(outcomes, repeat=group):
        prob = 1
        for a, _, q in tup:
            prob *= PI[a] * q
        scores = [score(a) for a, _, _ in tup]
        rewards = [r for _, r, _ in tup]
        if name == "optimal_baseline_loo_coord":
            weights = [[x * x for x in s] for s in scores]
            adv = _advantages(name, rewards, weights, params)
            g = [sum(adv[i][c] * scores[i][c] for i in range(group)) / group for c in range(k)]
        else:
            weights = [sum(x * x for x in s) for s in scores]
            adv = _advantages(name, rewards, weights, params)
            g = [sum(adv[i] * scores[i][c] for i in range(group)) / group for c in range(k)]
        mean = [m + prob * x for m, x in zip(mean, g)]
        second += prob * sum(x * x for x in g)
    return [float(m) for m in mean], float(second - sum(m * m for m in mean))


DETERMINISTIC = [(0, F(1), F(1)), (1, F(0), F(1)), (2, F(0), F(1))]  # r = (1, 0, 0)
BERNOULLI = [(a, F(v), q if v else 1 - q) for a, q in enumerate((F(3, 4), F(1, 4), F(1, 2)))
             for v in (0, 1)]  # bernoulli:0.75,0.25,0.5
CASES = [
    ("reinforce", {"baseline": 0.25}, 3), ("rloo", {}, 3), ("grpo_mean", {}, 3), ("grpo", {}, 3),
    ("grpo", {"eps": 0.0}, 3), ("optimal_baseline_loo", {}, 3), ("optimal_baseline_loo_coord", {}, 3),
    ("real", {}, 3), ("copo_local", {}, 3),
]


@pytest.mark.parametrize("name, params, group", CASES, ids=lambda x: str(x))
@pytest.mark.parametrize("spec, outcomes", [("deterministic:1,0,0", DETERMINISTIC),
                                            ("bernoulli:0.75,0.25,0.5", BERNOULLI)])
def test_registry_estimators_against_a_fraction_brute_force(name, params, group, spec, outcomes):
    mean, trace = brute_force(name, outcomes, group, {k: F(v) if name not in ("grpo", "copo_local") else v
                                                      for k, v in params.items()})
    m = exact.moments(E.get(name), THETA, R.parse_rewards(spec), group, **params)
    np.testing.assert_allclose(m.mean, mean, atol=1e-13)
    assert m.trace_var == pytest.approx(trace, abs=1e-13)


def test_optimal_baseline_loo_variance_pin():
    """tr Var of `optimal_baseline_loo` at θ = (ln 2, 0, 0), r = (1, 0, 0), G = 4: 0.031627."""
    mean, trace = brute_force("optimal_baseline_loo", DETERMINISTIC, 4)
    assert round(trace, 6) == 0.031627
    m = exact.moments(E.get("optimal_baseline_loo"), THETA, R.deterministic([1.0, 0.0, 0.0]), 4)
    assert round(m.trace_var, 6) == 0.031627
    np.testing.assert_allclose(m.mean, [1 / 4, -1 / 8, -1 / 8], atol=1e-13)  # unbiased: ∇J = π∘(r − J)


def test_reference_variances_of_the_design():
    """docs/design.md §4.1: θ = (ln 2, 0, 0), r = (1, 0, 0): V(0) = 3/32, V(1/2) = 1/16,
    V(3/10) = 3/80, and b* = 3/10 although E[R] = 1/2."""
    for b, v in ((0.0, 3 / 32), (0.5, 1 / 16), (0.3, 3 / 80)):
        assert exact.moments(E.get("reinforce"), THETA, R.deterministic([1.0, 0, 0]), 1,
                             baseline=b).trace_var == pytest.approx(v, abs=1e-14)
    assert float(softmax.optimal_constant_baseline(THETA, np.array([1.0, 0, 0]))) == pytest.approx(0.3, abs=1e-14)


@pytest.mark.parametrize("spec, means, second", [
    ("bernoulli:0.8,0.4,0.1", [0.8, 0.4, 0.1], [0.8, 0.4, 0.1]),
    ("deterministic:1,0,-2.5", [1.0, 0.0, -2.5], [1.0, 0.0, 6.25]),
    ("categorical:1/0.25;3/0.75|2/1|0/0.5;-1/0.5", [2.5, 2.0, -0.5], [7.0, 4.0, 0.5]),
    ("gaussian:1/2,0/0.5", [1.0, 0.0], [5.0, 0.25]),
])
def test_reward_parsers_against_hand_moments(spec, means, second):
    model = R.parse_rewards(spec)
    np.testing.assert_allclose(model.means, means, atol=1e-15)
    np.testing.assert_allclose(model.second_moments, second, atol=1e-15)


def test_bernoulli_outcomes_pay_one_with_probability_p():
    arms, values, probs = R.parse_rewards("bernoulli:0.8,0.3").outcomes()
    table = {(int(a), float(v)): float(q) for a, v, q in zip(arms, values, probs)}
    assert table == {(0, 0.0): pytest.approx(0.2), (0, 1.0): 0.8, (1, 0.0): 0.7, (1, 1.0): 0.3}


def test_bernoulli_sampler_frequency():
    """20,000 draws of Bernoulli(0.9): the frequency of 1 is within 6 standard errors of 0.9."""
    import jax
    import jax.numpy as jnp

    model = R.parse_rewards("bernoulli:0.9,0.1")
    draws = np.asarray(R.sample_rewards(model.tables(), jax.random.key(0), jnp.zeros(20_000, jnp.int32)))
    assert abs(draws.mean() - 0.9) < 6 * math.sqrt(0.09 / 20_000)


@pytest.mark.parametrize("arms, k, value", [
    ([0, 0, 1, 1, 2, 2], 3, 1.0),  # N = 6 > K = 3: normalised by ln 3, not ln 6
    ([0, 1, 2], 8, 1.0),  # N = 3 < K = 8: normalised by ln 3, not ln 8
    ([0, 0, 0, 1], 8, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(4)),
    ([5, 5, 5], 8, 0.0),
])
def test_vas_diversity_score_normalisation(arms, k, value):
    import jax.numpy as jnp

    assert float(B.diversity_score(jnp.asarray([arms]), k)[0]) == pytest.approx(value, abs=1e-12)


def test_one_hot_policy_limits_by_hand():
    """π → e_1 (logits 1000, 0, 0): ∇J = 0 and b* → the mean of the other arms weighted by
    their (equal) vanishing probabilities; logits (1000, 1, 0): weights e : 1."""
    m = np.array([0.8, 0.4, 0.1])
    assert float(softmax.optimal_constant_baseline(np.array([1000.0, 0, 0]), m)) == pytest.approx(0.25, abs=1e-14)
    want = (math.e * 0.4 + 0.1) / (math.e + 1)
    assert float(softmax.optimal_constant_baseline(np.array([1000.0, 1, 0]), m)) == pytest.approx(want, abs=1e-14)
    logs = np.asarray(softmax.log_score_sq_norms(np.array([math.log(2.0), 0, 0])))
    np.testing.assert_allclose(np.exp(logs), [3 / 8, 7 / 8, 7 / 8], atol=1e-15)  # 1 − 2π_a + |π|²


def test_released_pins_catch_the_earlier_lab_forms():
    """Planted defects: the lab's earlier COPO blend (σ(H − 1/2), no reward mask) and REAL labels by
    R > 1/2 give moments that the fraction brute force of the released formulas rejects."""
    import jax.numpy as jnp

    from sims import estimators as E

    def real_threshold(rewards, weights, tau=0.5):  # labels by R > 1/2
        g = rewards.shape[-1]
        y = (rewards > 0.5).astype(rewards.dtype)
        k = jnp.sum(y, axis=-1, keepdims=True)
        return jnp.where((k > 0) & (k < g), (g / tau) * (y / (1 + k) - (1 - y) / (1 + g - k)), 0.0)

    cat = R.parse_rewards("categorical:1/0.5;0.5/0.5|0/1|1/0.25;0/0.75")
    outcomes = [(0, F(1), F(1, 2)), (0, F(1, 2), F(1, 2)), (1, F(0), F(1)), (2, F(1), F(1, 4)), (2, F(0), F(3, 4))]
    for name, defect, model, outs in (("copo_local", E.copo_local_soft, R.parse_rewards("deterministic:1,0,0"),
                                       DETERMINISTIC),
                                      ("real", real_threshold, cat, outcomes)):
        mean, _ = brute_force(name, outs, 3)
        np.testing.assert_allclose(exact.moments(E.get(name), THETA, model, 3).mean, mean, atol=1e-13)
        E.register(E.Estimator(name="planted_pin", advantages=defect, summary="defect", property=E.BIASED))
        try:
            assert not np.allclose(exact.moments(E.get("planted_pin"), THETA, model, 3).mean, mean, atol=1e-6)
        finally:
            E.unregister("planted_pin")
