"""Pins to values computed independently of the lab: every group estimator against a brute force
over ordered tuples written here with `fractions.Fraction` (floats where a square root, an
exponential or π enters), every batch estimator against a NumPy brute force over all pass/fail
outcomes; an entry with neither is named in `NO_PIN` with its reason, and a test fails on an entry
that has neither. Also every reward parser against hand-computed moments, the VAS diversity score
against hand-computed entropies, and one-hot limits by hand.

At θ = (ln 2, 0, 0) the policy is exactly π = (1/2, 1/4, 1/4), so the brute force is exact."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction as F

import numpy as np
import pytest
from scipy import stats as sps

from bandits import rewards as R
from bandits import softmax
from bandits import vas as B
from sims import batch
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
        blend = 1 / (1 + math.exp(-5 * (_answer_bits(weights) - 1)))  # equal |s|² = same answer
        grpo = _advantages("grpo", rewards, weights, {"eps": 1e-6})
        return [blend * a if r != 0 else 0.0 for r, a in zip(rewards, grpo)]
    if name == "opo":  # the baseline includes the member itself; 0 when Σ_j w_j + eps = 0
        den = sum(weights) + params.get("eps", 0)
        base = sum(w * r for w, r in zip(weights, rewards)) / den if den else 0
        return [r - base for r in rewards]
    if name == "grpo_passk":  # only a unique best member: (R_max − R_second)/(std(R, ddof=1) + eps)
        x = [float(r) for r in rewards]
        top, std = max(x), _std1(x) + params.get("eps", 1e-6)
        if x.count(top) != 1 or std == 0:
            return [0.0] * g
        second = max(v for v in x if v != top)
        return [(top - second) / std if v == top else 0.0 for v in x]
    if name == "bnpo":  # α = β = 3/2: f(p) = √(p(1 − p))/B(3/2, 3/2), B(3/2, 3/2) = π/8; 1/f ≤ 1e6
        assert not params, "the pin is written for the default α = β = 3/2"
        p = float(sum(rewards)) / g
        inv_f = min(math.pi / 8 / math.sqrt(p * (1 - p)), 1e6) if 0 < p < 1 else 1e6
        return [(float(r) - p) * inv_f for r in rewards]
    if name == "dgae":  # G(R_i − mean R)/(Σ_j |R_j − mean R| + eps), eps the float 1e-4 as a fraction
        m = F(sum(rewards), g)
        den = sum(abs(r - m) for r in rewards) + params.get("eps", F(1e-4))
        return [g * (r - m) / den if den else F(0) for r in rewards]
    if name == "real_product":  # (G/τ)(y⁺ k₋ − y⁻ k₊)/(1 + k₊k₋) on groups with both labels
        tau = params.get("tau", F(1, 2))
        kp, kn = sum(r == 1 for r in rewards), sum(r == 0 for r in rewards)
        if not (kp and kn):
            return [F(0)] * g
        return [g / tau * ((r == 1) * kn - (r == 0) * kp) / (1 + kp * kn) for r in rewards]
    if name == "adora":  # w·A_GRPO, w = 1 if max_{R>1/2} L > mean_{R≤1/2} L (or no failure) else λ
        pos = [w for r, w in zip(rewards, weights) if r > F(1, 2)]
        neg = [w for r, w in zip(rewards, weights) if r <= F(1, 2)]
        long_pass = not neg or (pos and max(pos) > sum(neg) / len(neg))
        scale = 1.0 if long_pass else params.get("lam", 0.1)
        return [scale * a for a in _advantages("grpo", rewards, weights, {"eps": params.get("eps", 1e-6)})]
    if name == "copo_local_soft":  # σ(H − 1/2)·A_GRPO, H in bits of the answers, no reward mask
        blend = 1 / (1 + math.exp(-(_answer_bits(weights) - 0.5)))
        return [blend * a for a in _advantages("grpo", rewards, weights, {"eps": 1e-6})]
    if name == "gtpo":  # 1[H_i ≤ 0.7](A_GRPO(eps 1e-4) − 0.1 H_i), H_i = the weight
        grpo = _advantages("grpo", rewards, weights, {"eps": 1e-4})
        return [0.0 if w > F(7, 10) else a - 0.1 * float(w) for a, w in zip(grpo, weights)]
    raise KeyError(name)


def _std1(x):
    mean = sum(x) / len(x)
    return math.sqrt(sum((v - mean) ** 2 for v in x) / (len(x) - 1))


def _answer_bits(answers):
    """Entropy in bits of the answers' empirical law (equal values = the same answer)."""
    g = len(answers)
    return -sum(math.log2(sum(x == w for x in answers) / g) for w in answers) / g


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
    ("real", {}, 3), ("copo_local", {}, 3), ("opo", {}, 3), ("opo", {"eps": 0.5}, 3), ("grpo_passk", {}, 3),
    ("bnpo", {}, 3), ("dgae", {}, 3), ("dgae", {"eps": 0.0}, 3), ("real_product", {}, 3), ("adora", {}, 3),
    ("copo_local_soft", {}, 3), ("gtpo", {}, 3),
]
FLOAT_PARAMS = ("grpo", "grpo_passk", "adora", "copo_local", "copo_local_soft", "gtpo")  # the rest: fractions


@pytest.mark.parametrize("name, params, group", CASES, ids=lambda x: str(x))
@pytest.mark.parametrize("spec, outcomes", [("deterministic:1,0,0", DETERMINISTIC),
                                            ("bernoulli:0.75,0.25,0.5", BERNOULLI)])
def test_registry_estimators_against_a_fraction_brute_force(name, params, group, spec, outcomes):
    mean, trace = brute_force(name, outcomes, group, {k: F(v) if name not in FLOAT_PARAMS else v
                                                      for k, v in params.items()})
    m = exact.moments(E.get(name), THETA, R.parse_rewards(spec), group, **params)
    np.testing.assert_allclose(m.mean, mean, atol=1e-13)
    assert m.trace_var == pytest.approx(trace, abs=1e-13)


# ---- batch estimators: pass/fail prompts, brute force over every ordered outcome (plain NumPy) -------
# Prompt x is the two-armed bandit with rewards (1, 0) and π_1 = p_x; |s(a)|² = 2(1 − p)² for a pass,
# 2p² for a fail (the weights `batch.exact_ensemble` passes); u_x = (1/G) Σ_i A_xi (R_xi − p_x).


def _z(x, eps, axis=None):
    """(x − mean x)/(std(x, ddof=1) + eps) over `axis` (all elements when None); 0 where that is 0/0."""
    n = x.size if axis is None else x.shape[axis]
    d = x - x.mean(axis=axis, keepdims=True)
    den = np.sqrt((d**2).sum(axis=axis, keepdims=True) / (n - 1)) + eps
    return np.where(den > 0, d / np.where(den > 0, den, 1.0), 0.0)


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _bits(w):
    """Entropy in bits of each row's answers (equal weights = the same answer), shape (P, 1)."""
    counts = (w[:, :, None] == w[:, None, :]).sum(-1)
    return -np.log2(counts / w.shape[1]).mean(1, keepdims=True)


def _batch_advantages(name, r, w):
    """The batch formulas of docs/design.md §4.9 at their defaults, rewards and weights (P, G)."""
    p_, g = r.shape
    m = r.mean(1, keepdims=True)
    d = r - m
    valid = r.min(1) != r.max(1)
    if name == "grpo_batch_std":
        return d / (np.sqrt(((r - r.mean()) ** 2).sum() / (r.size - 1)) + 1e-4)
    if name == "reinforce_pp_baseline":  # whitened over tokens, each response counted L = w times
        n = w.sum()
        mu = (w * d).sum() / n
        var = (w * (d - mu) ** 2).sum() / (n - 1)
        return (d - mu) / np.sqrt(var + 1e-8)
    if name == "gpg":  # α = P/N_v, N_v the prompts whose group is not all-equal
        return p_ / max(valid.sum(), 1) * d
    if name == "gpg_verl":  # α = PG/#(non-zero rewards)
        return r.size / max((r != 0).sum(), 1) * d
    if name == "gdpo_verl":  # verl GRPO (eps 1e-6), whitened over tokens (L = w times), 1e-8 in the root
        z = _z(r, 1e-6, axis=1)
        n = w.sum()
        mu = (w * z).sum() / n
        return (z - mu) / np.sqrt((w * (z - mu) ** 2).sum() / (n - 1) + 1e-8)
    if name == "gdpo":  # one component: the group z-score, whitened over the batch
        return _z(_z(r, 1e-4, axis=1), 1e-4)
    if name == "bnpo_batch":  # α, β by moments of the pass rates; 0 when they all agree
        q = r.mean(1)
        mm, v = q.mean(), q.var(ddof=1)
        if v == 0:
            return np.zeros_like(r)
        c = mm * (1 - mm) / v - 1
        a, b = max(1, 1 + c * mm / 3), max(1, 1 + c * (1 - mm) / 3)
        with np.errstate(divide="ignore"):
            inv_f = np.minimum(1 / sps.beta(a, b).pdf(q), 1e6)
        return inv_f[:, None] * d
    if name == "dgpo":  # (P/N_v)·λ_q·DGAE, λ = N_v softmax over the valid prompts of −p̂/2
        lam, ratio = np.ones(p_), 1.0
        if valid.any():
            e = np.exp(-m[valid, 0] / 2.0)
            lam[valid], ratio = valid.sum() * e / e.sum(), p_ / valid.sum()
        return ratio * lam[:, None] * g * d / (np.abs(d).sum(1, keepdims=True) + 1e-4)
    if name in ("copo", "copo_soft"):  # w·A_GRPO + (1 − w)·z_batch(global reward)
        h = _bits(w)
        if name == "copo":  # σ(5(H − 1))·1[R ≠ 0]; global reward p̂
            blend, glob = _sig(5 * (h - 1)) * (r != 0), m
        else:  # σ(H − 1/2); global reward p̂(1 − λ_G H), λ_G = (1 − 1/G)/log2 G
            blend, glob = _sig(h - 0.5) * np.ones_like(r), m * (1 - (1 - 1 / g) / np.log2(g) * h)
        return blend * _z(r, 1e-6, axis=1) + (1 - blend) * _z(glob, 1e-6)
    raise KeyError(name)


def batch_brute_force(name, ps, group):
    """c_x = E[u_x]/(p_x(1 − p_x)) and Var(u_x) over all 2^(PG) ordered pass/fail outcomes."""
    ps = np.asarray(ps, dtype=np.float64)[:, None]
    mean, second = np.zeros(len(ps)), np.zeros(len(ps))
    for bits in itertools.product((0.0, 1.0), repeat=ps.size * group):
        r = np.reshape(bits, (len(ps), group))
        prob = np.prod(np.where(r == 1, ps, 1 - ps))
        u = (_batch_advantages(name, r, np.where(r == 1, 2 * (1 - ps) ** 2, 2 * ps**2)) * (r - ps)).mean(1)
        mean, second = mean + prob * u, second + prob * u**2
    return mean / (ps[:, 0] * (1 - ps[:, 0])), second - mean**2


BATCH_CASES = [(name, 3) for name in ("grpo_batch_std", "reinforce_pp_baseline", "gpg", "gpg_verl", "gdpo",
                                      "bnpo_batch", "dgpo", "copo", "copo_soft", "gdpo_verl")]


@pytest.mark.parametrize("name, group", BATCH_CASES, ids=lambda x: str(x))
def test_batch_estimators_against_a_numpy_brute_force(name, group):
    ps = (0.3, 0.6)
    c, var_u = batch_brute_force(name, ps, group)
    got = batch.exact_ensemble(batch.get(name), ps, group)
    np.testing.assert_allclose(got["c"], c, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got["var_u"], var_u, rtol=1e-12, atol=1e-13)


# ---- the pin table: every registry entry is pinned above or waived here with its reason ----------
NO_PIN: dict[str, str] = {}


def unpinned(names) -> list[str]:
    """The registry names with neither a brute-force pin (CASES, BATCH_CASES) nor a NO_PIN reason."""
    pinned = {case[0] for case in CASES} | {case[0] for case in BATCH_CASES}
    return sorted(n for n in names if n not in pinned and n not in NO_PIN)


def test_every_registry_entry_is_pinned_or_waived():
    names = set(E.REGISTRY) | set(batch.REGISTRY)
    assert unpinned(names) == [], "pin these estimators above, or give NO_PIN a reason"
    assert set(NO_PIN) <= names and not set(NO_PIN) & {c[0] for c in CASES + BATCH_CASES}, "stale waiver"
    assert all(reason.strip() for reason in NO_PIN.values())
    # planted: an estimator added without a pin or a waiver is named
    assert unpinned(names | {"planted_new_estimator"}) == ["planted_new_estimator"]


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
