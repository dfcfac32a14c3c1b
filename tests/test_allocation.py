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


def test_dp_check_catches_planted_defect():
    assert C.check_dp_optimal(True).holds

    def short_dp(values, budget, exact=False):  # planted: never uses the largest choice
        v = np.asarray(values)
        return A.knapsack_dp(v[:, :-1], budget, exact) if v.shape[1] > 1 else A.knapsack_dp(v, budget, exact)

    assert not C.check_dp_optimal(True, dp=short_dp).holds


def test_knapsack_rule_by_hand():
    # p̂ = 0, 1/2, 1/4, 1 and one prompt without history; n_min = 2, default 8, budget 22
    succ, trials = [0, 2, 1, 4, 0], [4, 4, 4, 4, 0]
    n = A.knapsack_rule(succ, trials, 22, n_min=2, n_max=6, default_n=8)
    assert n[4] == 8 and n[0] == 2 and n[3] == 2
    table = [[_value(2 + c, p) for c in range(5)] for p in (Fraction(1, 2), Fraction(1, 4))]
    best = _brute(table, 22 - 16, False)
    assert _value(n[1], Fraction(1, 2)) + _value(n[2], Fraction(1, 4)) == best
    assert n.sum() == 22
    with pytest.raises(InputError):
        A.knapsack_rule(succ, trials, 10)


def test_selection_rules():
    rng = np.random.default_rng(0)
    n = A.uniform_rule(rng, 8, 16, 4)
    assert n.sum() == 16 and set(n) <= {0, 4}
    n = A.vas_rule(rng, [0, 1, 2, 4, 4, 0], [4] * 6, 8, 4, lam=1.0)
    assert n.sum() == 8 and set(np.flatnonzero(n)) == {1, 2}  # only P̂ ∈ (0, 1) have VPS > 0
    n = A.vade_rule(rng, [1, 50, 1e3], [1, 50, 1.0], 4, 4)
    assert n.tolist() == [0, 4, 0]  # Beta(50, 50) draws near 1/2: the largest p(1 − p)
    n = A.sec_rule(rng, [0.0, 50.0], [0, 0, 1, 1], 8, 4, tau=1.0)
    assert n.tolist() == [0, 0, 4, 4]
    q = A.sec_update([1.0, 1.0], [[1.0, -1.0], None], lr=0.5)
    np.testing.assert_allclose(q, [1.0, 0.5])
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
        per = S.expected_improvement(logits, q, counts, 1.5, est, per_prompt=True)
        for p in range(2):
            want = _brute_gain(logits[p].tolist(), q[p].tolist(), counts[p], 1.5 * counts[p] / 5, est) / 3
            assert per[p] == pytest.approx(want, rel=1e-10, abs=1e-15)
        assert per[2] == 0.0
    with pytest.raises(InputError):
        S.expected_improvement(logits, q, np.array([1, 2, 0]), 1.0)


def test_exact_matches_mc_and_catches_planted_defect():
    assert C.check_exact_vs_mc(True).holds
    assert not C.check_exact_vs_mc(True, eta_factor=1.25).holds


def test_oracle_check_and_planted_defect():
    assert C.check_oracle_is_best(True).holds

    def stale(lg, q, budget, eta, n_max):  # planted: optimises the gains of another step size
        return S.oracle_allocation(lg, q, budget, 0.2 * eta, n_max=n_max)

    assert not C.check_oracle_is_best(True, oracle=stale).holds


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
    r = S.reweighting(np.zeros((1, 2)), np.array([[0.75, 0.25]]), np.array([3]), "grpo_mean", "prompt")
    assert r["scale"][0] == pytest.approx(2 / 3, rel=1e-12)


def test_fraction_ranking_refuted_and_planted_monotone_score():
    out = C.check_fraction_ranks_gain(True)
    assert not out.holds and out.counterexample is not None
    ce = out.counterexample
    assert ce["a"]["nonzero_fraction"] > ce["b"]["nonzero_fraction"] and ce["a"]["gain"] < ce["b"]["gain"]
    assert C.check_fraction_ranks_gain(True, score=lambda f: f).holds


def test_d3s_bias_and_planted_random_subset():
    assert C.check_d3s_bias(True).holds
    assert not C.check_d3s_bias(True, selection="random").holds


def test_rule_improvement_runs():
    lg, q = C.random_instance(0, 4)
    out = S.rule_improvement("knapsack", lg, q, 16, 4, 2.0, draws=2)
    assert np.isfinite(out["gain"]) and 0 <= out["nonzero_fraction"] <= 1


def test_claims_registered():
    from sims import ledger

    claims = ledger.load_all()
    want = {"allocation.knapsack_dp_optimal": "holds", "allocation.oracle_is_best": "holds",
            "allocation.knapsack_no_additional_bias": "refuted",
            "allocation.reweighting_conditions": "holds",
            "allocation.nonzero_fraction_ranks_gain": "refuted",
            "allocation.d3s_selection_bias": "holds", "allocation.exact_matches_mc": "holds"}
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


def test_d3s_gain_keeps_all_equals_group_and_first_order_matches_mean():
    from bandits import rewards as R
    from bandits import softmax
    from sims import vas as V

    lg, q = np.array([0.3, -0.2]), np.array([0.7, 0.2])
    assert S.d3s_prompt_gain(lg, q, 4, 4, 1.5) == pytest.approx(
        V.expected_step_gain("grpo", lg, R.bernoulli(q), 4, 1.5), rel=1e-12)
    h = 1e-5
    grad = np.asarray(softmax.gradient(lg, q))
    first = S.d3s_expected_gradient(lg, q, 4, 2) @ grad
    assert S.d3s_prompt_gain(lg, q, 4, 2, h) / h == pytest.approx(first, rel=1e-4)
