"""Prompt selection and rollout allocation (docs/design.md §4.10): the rules, the exact E[ΔJ]
against brute force written here, and every allocation claim's check with a planted defect."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from bandits import allocation as A
from bandits.errors import InputError
from sims import allocation as S
from sims import estimators as E
from sims.claims import allocation as C

# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


def _value(n, p):
    p = Fraction(p)
    return (1 - p**n - (1 - p) ** n) * p * (1 - p) ** 2


def _brute(table, budget, exact):
    best = None
    for c in itertools.product(range(len(table[0])), repeat=len(table)):
        if sum(c) > budget or (exact and sum(c) != budget):
            continue
        v = sum(table[i][ci] for i, ci in enumerate(c))
        best = v if best is None or v > best else best
    return best


def test_knapsack_value_hand_values():
    assert A.knapsack_value(2, 0.5) == pytest.approx(float(Fraction(1, 16)))
    assert A.knapsack_value(3, 1 / 3) == pytest.approx(float(_value(3, Fraction(1, 3))))
    assert A.knapsack_value(5, 0.0) == 0.0 and A.knapsack_value(5, 1.0) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_dp_against_fraction_brute_force(seed):
    rng = np.random.default_rng(seed)
    p = [Fraction(int(x), 20) for x in rng.integers(1, 20, size=3)]
    table = [[_value(2 + c, pi) for c in range(5)] for pi in p]
    for budget in (0, 3, 7, 12):
        for exact in (False, True):
            counts, value = A.knapsack_dp(np.array(table, dtype=float), budget, exact=exact)
            want = _brute(table, budget, exact)
            assert value == pytest.approx(float(want), rel=1e-12)
            assert sum(table[i][c] for i, c in enumerate(counts)) == want


def test_knapsack_lab_rule_by_hand():
    # p̂ = 0, 1/2, 1/4, 1 and one prompt without history; n_min = 2, default 8, budget 22
    succ, trials = [0, 2, 1, 4, 0], [4, 4, 4, 4, 0]
    n = A.knapsack_lab_rule(succ, trials, 22, n_min=2, n_max=6, default_n=8)
    assert n[4] == 8 and n[0] == 2 and n[3] == 2
    table = [[_value(2 + c, p) for c in range(5)] for p in (Fraction(1, 2), Fraction(1, 4))]
    best = _brute(table, 22 - 16, False)
    assert _value(n[1], Fraction(1, 2)) + _value(n[2], Fraction(1, 4)) == best
    assert n.sum() == 22
    with pytest.raises(InputError):
        A.knapsack_lab_rule(succ, trials, 10)


def _released(p, budget, valid=None, **kw):
    v = np.ones(len(p), bool) if valid is None else np.asarray(valid)
    return A.knapsack_released_rule(v, np.array([float(x) for x in p]), budget, **kw).tolist()


def test_knapsack_released_rule_by_hand():
    h = Fraction(1, 2)
    e = Fraction(1, 8)
    # p̂ = 1/2, 1/8, budget 6 (2 extra): the release scores "no extra" as 0, so (1, 1) extra:
    # V(3, 1/2) + V(3, 1/8) = 3/32 + 8232/262144 > V(4, 1/2) + 0 = 7/64; the lab's table adds
    # V(2, 1/8) = 10976/524288 to "no extra" and picks (2, 0)
    assert _value(3, h) + _value(3, e) > _value(4, h) and _value(4, h) + _value(2, e) > _value(3, h) + _value(3, e)
    assert _released([h, e], 6, min_n=2, max_n=6) == [3, 3]
    assert A.knapsack_lab_rule([4, 1], [8, 8], 6, n_min=2, n_max=6).tolist() == [4, 2]
    # fallback: p̂ = 0, 1/2, 1, budget 30: cost ⌊log 0.1/log 0.5⌋ = 3 < 24 left, so the p̂ = 0
    # prompt gets the surplus 21 and the programme 3
    assert _released([0, h, 1], 30, min_n=2, max_n=6) == [23, 5, 2]
    # a prompt without a valid buffer starts at N = 8 and counts as p̂ = 0 for the surplus
    assert _released([0, h, 1], 30, valid=[False, True, True], min_n=2, max_n=6) == [23, 5, 2]
    # p̂ = 0, 1/2, 1/4, 1 and an invalid prompt, budget 22: cost 3 + ⌊min(6, 8.0039)⌋ = 9 ≥ 6 left,
    # no fallback; the programme spends 6 extra over the two effective prompts (k ≤ 4)
    n = _released([0, h, Fraction(1, 4), 1, 0], 22, valid=[True] * 4 + [False], min_n=2, max_n=6)
    assert n[0] == n[3] == 2 and n[4] == 8 and sum(n) == 22
    best = max(((k, 6 - k) for k in range(2, 5)),
               key=lambda c: _value(2 + c[0], h) + _value(2 + c[1], Fraction(1, 4)))
    assert (n[1] - 2, n[2] - 2) == best
    # every prompt effective with a surplus: the release divides by zero; here the programme keeps it
    assert sum(_released([h, h], 30, min_n=2, max_n=6)) == 30
    with pytest.raises(InputError):
        _released([h, h, h], 5)


def test_knapsack_reward_state_by_hand():
    valid, p = A.knapsack_reward_state([[[1, 0, 1, 1, 0, 0, 0, 1]], [[1, 1]], [[0] * 8, [1] * 16],
                                        [[1] * 10, [0] * 8]])
    assert valid.tolist() == [True, False, True, True]
    assert p.tolist() == [0.5, 0.0, 1.0, 0.5]  # last: the latest 16 rewards = 8 zeros + 8 ones
    with pytest.raises(InputError):
        A.knapsack_reward_state([[[0.5] * 8]])


def test_released_check_and_planted_defects(monkeypatch):
    assert C.check_released_optimal(True).holds

    def no_fallback(valid, p, budget, **kw):
        return A.knapsack_released_rule(valid, p, budget, allow_fallback=False, **kw)

    assert not C.check_released_optimal(True, rule=no_fallback).holds
    # the lab's table (V(0) = Value(MIN_N) instead of 0) inside the released rule
    monkeypatch.setattr(A, "knapsack_released_table", lambda p, lo, hi: A.knapsack_value(
        lo + np.arange(hi - lo + 1)[None, :], np.asarray(p)[:, None]))
    out = C.check_released_optimal(True)
    assert not out.holds and 0 < out.measured < 1  # a worse objective, not a budget mismatch


def test_selection_rules():
    rng = np.random.default_rng(0)
    n = A.uniform_rule(rng, 8, 16, 4)
    assert n.sum() == 16 and set(n) <= {0, 4}
    vps = A.vas_scores([0, 1, 2, 4, 4, 0], [4] * 6)
    np.testing.assert_allclose(vps, [0, 3 / 16, 1 / 4, 0, 0, 0])
    np.testing.assert_allclose(A.vas_scores([2], [4], [0.5], beta=2.0), [1.25])  # α·1/4 + β·1/2
    c = A.vas_groups(rng, vps, 16, 4, lam=1.0)  # all 4 groups ∝ VPS, with replacement
    assert c.sum() == 4 and set(np.flatnonzero(c)) <= {1, 2}
    c = A.vas_groups(rng, [0, 0, 1.0, 0], 12, 4, lam=1.0)
    assert c.tolist() == [0, 0, 3, 0]  # one prompt drawn three times: three groups
    c = A.vas_groups(rng, [0, 0, 1.0, 0], 16, 4, lam=0.5)  # ⌊λm⌋ = 2 weighted, 2 distinct uniform
    assert c.sum() == 4 and c[2] >= 2 and np.sum(c[[0, 1, 3]] > 0) <= 2
    c = A.vas_groups(rng, [1.0, 0, 0, 0], 16, 4, lam=0.0)
    assert c.tolist() == [1, 1, 1, 1]
    for lam in (1.5, -0.1, math.nan):
        with pytest.raises(InputError):
            A.vas_groups(rng, vps, 8, 4, lam=lam)
    n = A.vade_rule(rng, [1, 50, 1e3], [1, 50, 1.0], 4, 4)
    assert n.tolist() == [0, 4, 0]  # Beta(50, 50) draws near 1/2: the largest p(1 − p)
    n = A.sec_rule(rng, [0.0, 50.0], [0, 0, 1, 1], 8, 4, tau=1.0)
    assert n.tolist() == [0, 0, 4, 4]
    q = A.sec_update([1.0, 1.0], [[1.0, -1.0], None], lr=0.5)
    np.testing.assert_allclose(q, [1.0, 0.5])
    assert A.sec_categories([0, 3, 5, 8, 0], [8, 8, 8, 8, 0]).tolist() == [0, 1, 1, 2, 1]
    # GRPO mean |A| of a group of 4 with 1 success: 2·1·3/16 / std, std = 1/2 → 3/4
    np.testing.assert_allclose(A.grpo_mean_abs_advantage([0, 1, 4], 4), [0, 0.75, 0], rtol=1e-5)
    a, b = A.vade_update([1, 1], [1, 1], [4, 0], [3, 0], decay=0.5)
    np.testing.assert_allclose([a, b], [[2.5, 1.0], [1.5, 1.0]])  # α: (1+3+1)/2, β: (1+1+1)/2
    with pytest.raises(InputError):
        A.uniform_rule(rng, 2, 16, 4)


def test_d3s_subset_by_hand():
    assert A.d3s_split(3, 4, 2) == 1 and A.d3s_split(4, 4, 2) == 2 and A.d3s_split(0, 5, 3) == 0
    assert A.d3s_subset([0.1, 0.9, 0.5, 0.2], 2).tolist() == [0, 1]
    assert A.d3s_subset([1, 1, 1, 0, 0], 4).tolist() in ([0, 1, 3, 4], [1, 2, 3, 4], [0, 2, 3, 4])


# ---------------------------------------------------------------------------------------------
# Exact E[ΔJ] against an ordered-tuple brute force written here
# ---------------------------------------------------------------------------------------------


def _brute_gain(logits, q, n, step, estimator):
    """Σ over ordered tuples of (arm, reward): P·[J(θ + step·ĝ) − J(θ)], plain Python floats."""
    z = [math.exp(x) for x in logits]
    pi = [x / sum(z) for x in z]
    J = sum(p * m for p, m in zip(pi, q))
    k = len(pi)
    total = 0.0
    for tup in itertools.product(range(k), repeat=n):
        for rew in itertools.product((0, 1), repeat=n):
            prob = 1.0
            for a, r in zip(tup, rew):
                prob *= pi[a] * (q[a] if r else 1 - q[a])
            mean = sum(rew) / n
            if estimator == "grpo":
                sd = math.sqrt(sum((r - mean) ** 2 for r in rew) / (n - 1))
                adv = [(r - mean) / (sd + 1e-6) for r in rew]
            else:  # rloo
                adv = [(r - mean) * n / (n - 1) for r in rew]
            g = [sum(adv[i] * ((1.0 if tup[i] == j else 0.0) - pi[j]) for i in range(n)) / n
                 for j in range(k)]
            new = [lg + step * gj for lg, gj in zip(logits, g)]
            z2 = [math.exp(x) for x in new]
            J2 = sum(x / sum(z2) * m for x, m in zip(z2, q))
            total += prob * (J2 - J)
    return total


def test_exact_improvement_against_brute_force():
    logits = np.array([[0.3, -0.5], [1.0, 0.2], [0.0, 0.0]])
    q = np.array([[0.8, 0.3], [0.1, 0.6], [0.5, 0.5]])
    counts = np.array([2, 3, 0])
    for est in ("grpo", "rloo"):
        per = S.expected_improvement(logits, q, counts, 1.5, E.get(est), per_prompt=True)
        for p in range(2):
            want = _brute_gain(logits[p].tolist(), q[p].tolist(), counts[p], 1.5 * counts[p] / 5, est) / 3
            assert per[p] == pytest.approx(want, rel=1e-10, abs=1e-15)
        assert per[2] == 0.0
    with pytest.raises(InputError):
        S.expected_improvement(logits, q, np.array([1, 2, 0]), 1.0)


def test_exact_matches_mc_and_catches_planted_defect():
    assert C.check_exact_vs_mc(True).holds
    assert not C.check_exact_vs_mc(True, eta_factor=1.25).holds


def test_oracle_allocation_is_the_exhaustive_best():
    """The yardstick: the knapsack over the exact gains against exhaustive search."""
    for i in range(2):
        lg, q = C.random_instance(1 + i, 3)
        _, best = S.best_allocation(lg, q, 8 + 2 * i, 2.0, n_max=6)
        counts, value = S.oracle_allocation(lg, q, 8 + 2 * i, 2.0, n_max=6)
        assert S.expected_improvement(lg, q, counts, 2.0) == pytest.approx(best, rel=1e-9)
        assert value == pytest.approx(best, rel=1e-9)


def _grpo_np(r, eps=1e-6):
    c = r - r.mean()
    std = math.sqrt(float(np.sum(c**2)) / (len(r) - 1))
    return np.zeros_like(r) if std + eps == 0 else c / (std + eps)


def _j(lg, q):
    pi = np.exp(lg - lg.max())
    pi /= pi.sum()
    return float(pi @ q)


@pytest.mark.parametrize("copies", [2, 3])
def test_repeated_groups_against_plain_enumeration(copies):
    """c independent groups of G = 2 on one prompt (VAS with replacement), brute force over
    every ordered tuple of outcomes in plain NumPy, GRPO written here."""
    lg, q, step = np.array([0.3, -0.2]), np.array([0.7, 0.2]), 0.8
    pi = np.exp(lg) / np.exp(lg).sum()
    outcomes = [(a, r) for a in range(2) for r in (0.0, 1.0)]
    prob = {(a, r): pi[a] * (q[a] if r else 1 - q[a]) for a, r in outcomes}
    want = 0.0
    for tup in itertools.product(outcomes, repeat=2 * copies):
        w = math.prod(prob[o] for o in tup)
        g = np.zeros(2)
        for j in range(copies):
            grp = tup[2 * j: 2 * j + 2]
            adv = _grpo_np(np.array([r for _, r in grp]))
            for (a, _), ai in zip(grp, adv):
                g += ai * (np.eye(2)[a] - pi) / 2
        want += w * (_j(lg + step * g, q) - _j(lg, q))
    got, exact = S.repeated_group_gain(lg, q, 2, copies, step)
    assert exact and got == pytest.approx(want, rel=1e-9, abs=1e-15)
    if copies == 3:  # the Monte Carlo fallback on the same case (seeded): within 5% of the brute force
        old = S.MAX_ROWS
        try:
            S.MAX_ROWS = 1
            mc, exact = S.repeated_group_gain(lg, q, 2, copies, step, seed=3)
        finally:
            S.MAX_ROWS = old
        assert not exact and abs(mc - want) < 0.05 * abs(want)


def test_groups_improvement_reduces_to_one_group_per_prompt():
    lg, q = C.random_instance(4, 3, arms=3)
    c = np.array([1, 0, 1])
    assert S.groups_improvement(lg, q, c, 4, 2.0) == pytest.approx(
        S.expected_improvement(lg, q, 4 * c, 2.0), rel=1e-12)
    assert S.groups_improvement(lg, q, np.array([2, 0, 0]), 4, 2.0) != pytest.approx(
        S.expected_improvement(lg, q, np.array([8, 0, 0]), 2.0), rel=1e-6)  # two groups ≠ one of 8


def test_advantage_clip_binds_only_on_large_groups():
    lg, q = np.zeros((1, 2)), np.array([[0.05, 0.02]])
    free = S.prompt_gains(lg, q, 30, 1.0)
    assert S.prompt_gains(lg, q, 30, 1.0, adv_clip=100.0) == pytest.approx(free, rel=1e-12)
    assert abs(S.prompt_gains(lg, q, 30, 1.0, adv_clip=5.0)[0] - free[0]) > 1e-6 * abs(free[0])
    small = S.prompt_gains(lg, q, 8, 1.0)  # max A = (1 − 1/8)/std < 5 at G = 8
    assert S.prompt_gains(lg, q, 8, 1.0, adv_clip=5.0) == pytest.approx(small, rel=1e-12)


def test_sec_values_by_hand():
    # prompt 0 (category 0): step 1 k = 1 of 4 (mean |A| = 3/4), step 2 k = 2 of 4 (√3/2);
    # the others never vary: Q₀ = ½·√3/2 + ½·(½·3/4), Q₁ = Q₂ = 0
    rewards = np.zeros((3, 8))
    rewards[0, [0, 4, 5]] = 1.0
    got = S.sec_values(rewards, np.array([0, 1, 2]), 4)
    np.testing.assert_allclose(got, [0.5 * math.sqrt(3) / 2 + 0.25 * 0.75, 0, 0], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Bias, ranking, D³S
# ---------------------------------------------------------------------------------------------


def test_no_additional_bias_refuted_and_equal_counts_not():
    out = C.check_reweighting(True)
    assert not out.holds and out.measured["rloo/rollout"] == pytest.approx(3.0)
    assert C.check_reweighting(True, counts=[4, 4, 4]).holds  # planted: equal counts


def test_reweighting_conditions_and_planted_defect():
    assert C.check_reweighting_conditions(True).holds
    assert not C.check_reweighting_conditions(True, grpo_mean_scale=lambda n: 1.0).holds


def test_grpo_mean_scale_by_fractions():
    """E[ĝ] of grpo_mean = (1 − 1/n)∇J, from a Fraction enumeration at π = (1/2, 1/2)."""
    q = [Fraction(3, 4), Fraction(1, 4)]
    pi = [Fraction(1, 2)] * 2
    n = 3
    mean = [Fraction(0)] * 2
    for tup in itertools.product(range(2), repeat=n):
        for rew in itertools.product((0, 1), repeat=n):
            prob = Fraction(1)
            for a, r in zip(tup, rew):
                prob *= pi[a] * (q[a] if r else 1 - q[a])
            m = Fraction(sum(rew), n)
            for j in range(2):
                mean[j] += prob * sum((rew[i] - m) * ((1 if tup[i] == j else 0) - pi[j]) for i in range(n)) / n
    grad = [Fraction(1, 8), Fraction(-1, 8)]  # π∘(q − J), J = 1/2
    assert mean == [Fraction(2, 3) * g for g in grad]
    r = S.reweighting(np.zeros((1, 2)), np.array([[0.75, 0.25]]), np.array([3]), E.get("grpo_mean"), "prompt")
    assert r["scale"][0] == pytest.approx(2 / 3, rel=1e-12)


def test_d3s_reweighting_and_planted_random_subset():
    out = C.check_d3s_reweights(True)
    assert out.holds and out.measured["direction_defect"] < 1e-12
    assert not C.check_d3s_reweights(True, selection="random").holds  # a random subset: c = 1


def test_rule_improvement_runs():
    lg, q = C.random_instance(0, 4)
    for rule in ("knapsack", "knapsack_lab", "vas", "sec"):
        out = S.rule_improvement(rule, lg, q, 16, 4, 2.0, draws=2)
        assert np.isfinite(out["gain"]) and 0 <= out["nonzero_fraction"] <= 1


def test_claims_registered():
    from sims import claims as C

    claims = C.load_all()
    want = {"allocation.knapsack_released_optimal": "holds",
            "allocation.knapsack_no_additional_bias": "refuted",
            "allocation.reweighting_conditions": "holds",
            "allocation.d3s_reweights_prompts": "holds", "allocation.exact_matches_mc": "holds"}
    got = {k: c.expected for k, c in claims.items() if k.startswith("allocation.")}
    assert got == want


def test_train_rule_counts_every_rollout_and_is_reproducible():
    lg, q = S.study_ensemble("mixed")
    a = S.train_rule("vas", lg, q, budget=32, group=4, eta=2.0, steps=3, seed=7, refresh=2)
    b = S.train_rule("vas", lg, q, budget=32, group=4, eta=2.0, steps=3, seed=7, refresh=2)
    np.testing.assert_array_equal(a["objective"], b["objective"])
    # warm-up 12·2, three steps of 32, one re-scoring of 12·2 at step 2
    assert a["rollouts"].tolist() == [0, 24, 56, 88, 144]
    u = S.train_rule("uniform", lg, q, budget=32, group=4, eta=2.0, steps=2, seed=7)
    assert u["rollouts"].tolist() == [0, 32, 64]
    k = S.train_rule("knapsack", lg, q, budget=32, group=4, eta=2.0, steps=2, seed=7)
    assert k["rollouts"].tolist() == [0, 96, 128, 160]  # the released rule's buffer: 8 per prompt


def test_d3s_gain_keeps_all_equals_group_and_first_order_matches_mean():
    from bandits import rewards as R
    from bandits import softmax
    from sims import vas as V

    lg, q = np.array([0.3, -0.2]), np.array([0.7, 0.2])
    assert S.d3s_prompt_gain(lg, q, 4, 4, 1.5) == pytest.approx(
        V.expected_step_gain(E.get("grpo"), lg, R.bernoulli(q), 4, 1.5), rel=1e-12)
    h = 1e-5
    grad = np.asarray(softmax.gradient(lg, q))
    first = S.d3s_expected_gradient(lg, q, 4, 2) @ grad
    assert S.d3s_prompt_gain(lg, q, 4, 2, h) / h == pytest.approx(first, rel=1e-4)


def test_a_name_registered_again_gives_the_new_functions_gains():
    """The allocation kernels follow the registered advantage function, not its name: register f,
    compute the exact gain, the Monte Carlo gain, a repeated-group gain (exact and Monte Carlo),
    a D³S gain and one training step; unregister, register g = 2f under the same name and compute
    again: every number is g's (a step twice as long)."""
    import jax.numpy as jnp

    from sims import estimators as E

    lg = np.array([[0.2, -0.1, 0.0], [0.0, 0.3, -0.2]])
    q = np.array([[0.7, 0.3, 0.1], [0.5, 0.2, 0.9]])

    def f(rewards, weights):
        return rewards - jnp.mean(rewards, axis=-1, keepdims=True)

    def g(rewards, weights):
        return 2.0 * f(rewards, weights)

    def gains(fn, step):
        E.register(E.Estimator(name="reused_name", advantages=fn, summary="reused", property=E.BIASED, uses_weights=False))
        try:
            return [
                S.prompt_gains(lg, q, 3, step, E.get("reused_name")),
                S.mc_improvement(lg, q, [3, 3], step, 64, seed=1, estimator=E.get("reused_name"))["mean"],
                S.repeated_group_gain(lg[0], q[0], 3, 2, step, E.get("reused_name"))[0],
                S.d3s_prompt_gain(lg[0], q[0], 4, 2, step, E.get("reused_name")),
            ]
        finally:
            E.unregister("reused_name")

    first, second = gains(f, 0.5), gains(g, 0.5)
    doubled = gains(f, 1.0)  # g's gradient is twice f's: f's numbers at twice the step
    for a, b, want in zip(first, second, doubled):
        np.testing.assert_allclose(b, want, rtol=1e-10, atol=1e-15)
        assert np.max(np.abs(np.asarray(b) - np.asarray(a))) > 1e-6
