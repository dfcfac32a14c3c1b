"""Claims of docs/design.md §4.10: prompt selection and rollout allocation.

Exact checks use `sims.allocation` (per-prompt exact expectations over multisets of outcomes) on
small random ensembles from fixed seeds; the Monte Carlo check compares the exact E[ΔJ] with
independent simulated groups under Holm at α = 1e-6. Every check takes the piece it tests as an
argument, so the tests can plant a defect and see the same check catch it.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from bandits import allocation as A
from sims import allocation as S
from sims import stats
from sims.ledger import Check, Outcome, claim

KNAPSACK = "Li et al. 2025, Knapsack RL (arXiv:2509.25849) and its code liziniu/KnapsackRL"
D3S = "D³S: Dynamic Dual-Level Down-Sampling (arXiv:2509.22115), abstract"
OURS = "derived here (docs/design.md §4.10)"
TOL = 1e-12


def random_instance(seed: int, prompts: int, arms: int = 2, scale: float = 1.5):
    """Logits (P, K) ~ N(0, scale²), success probabilities ~ U(0, 1)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(prompts, arms)) * scale, rng.uniform(size=(prompts, arms))


# ---------------------------------------------------------------------------------------------
# Knapsack RL's dynamic programme
# ---------------------------------------------------------------------------------------------


def brute_force_knapsack(values, budget: int, exact: bool = False) -> float:
    """max Σ_i values[i, c_i] over every c with Σ c_i ≤ budget (= budget when `exact`)."""
    v = np.asarray(values, dtype=np.float64)
    best = -math.inf
    for c in itertools.product(range(v.shape[1]), repeat=v.shape[0]):
        s = sum(c)
        if s > budget or (exact and s != budget):
            continue
        best = max(best, float(sum(v[i, ci] for i, ci in enumerate(c))))
    return best


def check_dp_optimal(quick: bool, dp=A.knapsack_dp, seed: int = 0) -> Outcome:
    """`dp` against brute force on random tables (Knapsack RL's Value(n, p) tables and arbitrary
    ones, exact and at-most budgets): the largest gap of the objective and of the claimed value."""
    rng = np.random.default_rng(seed)
    worst, where = 0.0, None
    for i in range(60 if quick else 400):
        items, choices = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        budget = int(rng.integers(0, items * (choices - 1) + 2))
        if i % 2:
            p = rng.uniform(0.02, 0.98, size=items)
            table = A.knapsack_value(2 + np.arange(choices)[None, :], p[:, None])
        else:
            table = rng.normal(size=(items, choices))
        exact = bool(i % 3 == 0)
        counts, value = dp(table, budget, exact=exact)
        truth = brute_force_knapsack(table, budget, exact)
        got = float(table[np.arange(items), counts].sum()) if np.isfinite(value) else -math.inf
        feasible = (counts.sum() == budget) if exact else (counts.sum() <= budget)
        if not np.isfinite(truth):
            gap = 0.0 if not np.isfinite(value) else math.inf
        else:
            gap = max(abs(got - truth), abs(value - truth)) if feasible else math.inf
        if gap > worst:
            worst, where = gap, {"table": table.tolist(), "budget": budget, "exact": exact,
                                 "counts": counts.tolist(), "brute_force": truth}
    n = 60 if quick else 400
    return Outcome(worst <= TOL, worst, f"≤ {TOL:g}",
                   f"knapsack DP against brute force on {n} random tables (1–4 items, 1–5 choices)",
                   counterexample=where if worst > TOL else None)


def check_oracle_is_best(quick: bool, oracle=S.oracle_allocation, seed: int = 1) -> Outcome:
    """The knapsack programme on the exact per-prompt gains equals the exhaustive search over
    allocations (the yardstick) on small ensembles."""
    worst = 0.0
    cases = 2 if quick else 6
    for i in range(cases):
        lg, q = random_instance(seed + i, 3)
        budget = 8 + 2 * i
        _, best = S.best_allocation(lg, q, budget, 2.0, n_max=6)
        counts, value = oracle(lg, q, budget, 2.0, n_max=6)
        got = S.expected_improvement(lg, q, counts, 2.0)
        worst = max(worst, abs(got - best) / abs(best), abs(value - best) / abs(best))
    return Outcome(worst <= 1e-9, worst, "≤ 1e-9",
                   f"exact E[ΔJ] of the oracle's allocation against exhaustive search, {cases} "
                   "ensembles of 3 prompts, GRPO, η = 2, budgets 8–18, n_p ∈ {0, 2..6}")


@claim("allocation.knapsack_dp_optimal", source=KNAPSACK + ", sampling_budget_by_knapsack",
       statement="The dynamic programme returns an allocation maximising Σ_i Value(n_i, p̂_i) under "
                 "the budget (the optimum of its own objective)",
       conditions="unit costs, per-item choices 0..C, budget Σ c_i ≤ B (or = B)")
def _dp_optimal():
    return [Check("exact", check_dp_optimal)]


@claim("allocation.oracle_is_best", source=OURS,
       statement="With rollout-mean aggregation (w_p = n_p/N, N fixed) E[ΔJ] is separable over "
                 "prompts, so the knapsack programme on the exact per-prompt gains finds the "
                 "best allocation of the budget",
       conditions="Bernoulli prompt ensembles, GRPO, one group per prompt, Σ n_p = N")
def _oracle():
    return [Check("exact", check_oracle_is_best)]


# ---------------------------------------------------------------------------------------------
# "No additional bias"
# ---------------------------------------------------------------------------------------------

BIAS_CASE = {"seed": 3, "counts": [2, 6, 4]}


def check_reweighting(quick: bool, counts=None) -> Outcome:
    """Refutation check: E[Ĝ]_p = c_p·∇J_p on each prompt (Bernoulli prompts); the additional
    reweighting of unequal counts n is r_p = c_p(n)/c_p(equal), equal = the same N spread evenly
    over the same prompts. The statement holds only if max r / min r = 1, under rollout-mean
    aggregation (RLOO, GRPO) and prompt-mean aggregation (GRPO)."""
    counts = np.asarray(BIAS_CASE["counts"] if counts is None else counts)
    lg, q = random_instance(BIAS_CASE["seed"], len(counts))
    sel = counts > 0
    equal = np.where(sel, counts.sum() // sel.sum(), 0)
    if equal.sum() != counts.sum():
        raise ValueError("the counts must split evenly over the selected prompts")
    spreads = {}
    for est, agg in (("rloo", "rollout"), ("grpo", "rollout"), ("grpo", "prompt")):
        r = S.reweighting(lg, q, counts, est, agg)["scale"] / S.reweighting(lg, q, equal, est, agg)["scale"]
        r = r[np.isfinite(r)]
        spreads[f"{est}/{agg}"] = float(r.max() / r.min())
    holds = all(abs(s - 1) <= 1e-9 for s in spreads.values())
    return Outcome(holds, spreads, "every spread = 1 (no reweighting beyond equal counts)",
                   "max/min over prompts of c_p(counts)/c_p(equal counts), E[Ĝ]_p = c_p·∇J_p",
                   counterexample=None if holds else {"logits": lg.tolist(), "success": q.tolist(),
                                                      "counts": counts.tolist(), "spreads": spreads})


@claim("allocation.knapsack_no_additional_bias", source=KNAPSACK + ", README",
       statement="Allocating different rollout counts to prompts introduces no additional bias "
                 "into the batch gradient",
       expected="refuted",
       conditions="refuted for rollout-mean aggregation (weights n_p/N) with any estimator and for "
                  "GRPO under any aggregation (its per-prompt scale depends on n_p and the pass "
                  "rate); it holds for an unbiased per-prompt estimator (RLOO) with prompt-mean "
                  "aggregation, see allocation.reweighting_conditions")
def _no_bias():
    return [Check("exact", check_reweighting)]


def check_reweighting_conditions(quick: bool, grpo_mean_scale=lambda n: 1.0 - 1.0 / n,
                                 seed: int = 5) -> Outcome:
    """E[Ĝ]_p = w_p·c(n_p)·∇J_p with c = 1 for RLOO and c = 1 − 1/n_p for grpo_mean (Dr. GRPO),
    under both aggregations: the largest deviation relative to |E[Ĝ]|."""
    worst = 0.0
    for i in range(2 if quick else 6):
        rng = np.random.default_rng(seed + i)
        prompts = 3
        lg, q = random_instance(seed + i, prompts, arms=3)
        counts = rng.choice([0, 2, 3, 4, 5], size=prompts)
        counts[0] = max(counts[0], 2)
        for est, scale in (("rloo", lambda n: 1.0), ("grpo_mean", grpo_mean_scale)):
            for agg in S.AGGREGATIONS:
                r = S.reweighting(lg, q, counts, est, agg)
                w = S.batch_weights(counts, agg)
                want = np.array([w[p] * (scale(counts[p]) if counts[p] else 0.0) for p in range(prompts)])
                pred = want[:, None] * r["grad"]
                dev = float(np.max(np.abs(r["mean"] - pred))) / max(float(np.max(np.abs(r["mean"]))), 1e-300)
                worst = max(worst, dev)
    return Outcome(worst <= 1e-10, worst, "≤ 1e-10",
                   "max |E[Ĝ]_p − w_p c(n_p) ∇J_p| / max|E[Ĝ]|, RLOO (c = 1) and grpo_mean "
                   "(c = 1 − 1/n_p), rollout and prompt aggregation, random 3-armed ensembles")


@claim("allocation.reweighting_conditions", source=OURS,
       statement="With counts n_p the expected batch gradient is E[Ĝ]_p = w_p·c_p·∇J_p: "
                 "w_p = n_p/N (rollout-mean) or 1/|S| (prompt-mean); c_p = 1 for RLOO, "
                 "1 − 1/n_p for grpo_mean; so unequal counts leave the prompts' weights unchanged "
                 "exactly when w_p·c_p is constant over the selected prompts (RLOO with "
                 "prompt-mean aggregation, or equal counts)",
       conditions="Bernoulli prompt ensembles, one group per prompt")
def _conditions():
    return [Check("exact", check_reweighting_conditions)]


# ---------------------------------------------------------------------------------------------
# Non-zero-gradient fraction against the exact improvement
# ---------------------------------------------------------------------------------------------


def check_fraction_ranks_gain(quick: bool, score=None, seed: int = 11) -> Outcome:
    """Refutation check: among all allocations of a small budget, look for two with
    frac(a) > frac(b) + 0.05 and E[ΔJ](a) < E[ΔJ](b)·(1 − 0.1) (`score` replaces E[ΔJ]: a
    planted monotone function of the fraction must find none)."""
    for i in range(3 if quick else 10):
        lg, q = random_instance(seed + i, 3)
        rates = S.ensemble_pass_rates(lg, q)
        table = S.gain_table(lg, q, 12, 2.0, n_max=8)
        allocs = list(S.all_allocations(3, 12, 2, 8))
        frac = np.array([S.nonzero_fraction(rates, c) for c in allocs])
        gain = np.array([float(table[np.arange(3), c].sum()) for c in allocs])
        if score is not None:
            gain = np.array([score(f) for f in frac])
        for a, b in itertools.combinations(range(len(allocs)), 2):
            for x, y in ((a, b), (b, a)):
                if frac[x] > frac[y] + 0.05 and gain[x] < gain[y] * 0.9 and gain[y] > 0:
                    ce = {"logits": lg.tolist(), "success": q.tolist(), "pass_rates": rates.tolist(),
                          "eta": 2.0, "estimator": "grpo", "budget": 12,
                          "a": {"counts": allocs[x].tolist(), "nonzero_fraction": frac[x], "gain": gain[x]},
                          "b": {"counts": allocs[y].tolist(), "nonzero_fraction": frac[y], "gain": gain[y]}}
                    return Outcome(False, {"nonzero_fraction": [frac[x], frac[y]], "gain": [gain[x], gain[y]]},
                                   "no pair ranked differently",
                                   "an allocation with more non-zero-gradient groups but a smaller "
                                   "exact E[ΔJ]", counterexample=ce)
    return Outcome(True, "no discordant pair", "no pair ranked differently",
                   "all allocations of 12 rollouts over 3 prompts, n_p ∈ {0, 2..8}")


@claim("allocation.nonzero_fraction_ranks_gain", source=KNAPSACK + " (headline metric: the ratio of "
       "non-zero gradients)",
       statement="An allocation with a larger expected fraction of groups with a non-zero gradient "
                 "gives a larger expected one-step improvement",
       expected="refuted",
       conditions="refuted by a 3-prompt ensemble (exact E[ΔJ], GRPO, rollout-mean aggregation)")
def _fraction():
    return [Check("exact", check_fraction_ranks_gain)]


# ---------------------------------------------------------------------------------------------
# D³S
# ---------------------------------------------------------------------------------------------


def check_d3s_bias(quick: bool, selection: str = "max_var") -> Outcome:
    """E[ĝ] of the max-Var(A) subset (m of G, GRPO on the kept rollouts) against a uniformly
    random subset of the same size (= a fresh group of m): relative bias and the cosine with ∇J."""
    cases = [([0.3, -0.4, 0.1], [0.7, 0.2, 0.5], 4, 2), ([0.0, 0.5], [0.9, 0.3], 5, 3)]
    if not quick:
        cases.append(([1.0, -1.0, 0.0], [0.1, 0.6, 0.3], 6, 4))
    rel, cos = [], []
    for lg, q, g, m in cases:
        sel = S.d3s_expected_gradient(lg, q, g, m, selection=selection)
        ref = S.d3s_expected_gradient(lg, q, g, m, selection="random")
        rel.append(float(np.linalg.norm(sel - ref) / np.linalg.norm(ref)))
        cos.append(float(sel @ ref / (np.linalg.norm(sel) * np.linalg.norm(ref))))
    holds = min(rel) > 1e-6
    return Outcome(holds, {"relative_bias": rel, "cosine": cos}, "relative bias > 1e-6",
                   "|E[ĝ_D³S] − E[ĝ_m]| / |E[ĝ_m]| with GRPO recomputed on the kept rollouts; "
                   "cosine ≈ 1: on a Bernoulli prompt the bias is a pass-rate-dependent scale")


@claim("allocation.d3s_selection_bias", source=D3S + "; the bias is derived here",
       statement="Keeping the rollout subset of largest Var(A) biases the expected gradient: "
                 "E[ĝ_D³S] differs from the gradient of a random subset of the same size; with "
                 "binary rewards it is a scale that depends on the pass rate, so across prompts "
                 "it reweights the batch",
       conditions="one prompt, binary rewards, GRPO advantages recomputed on the kept rollouts")
def _d3s():
    return [Check("exact", check_d3s_bias)]


# ---------------------------------------------------------------------------------------------
# Exact against Monte Carlo
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def mc_cases(quick: bool, seed: int = 21) -> tuple:
    """The random cases of `check_exact_vs_mc` with their Monte Carlo estimates (memoised: a
    pure function of its arguments): tuples (logits, success, counts, eta, estimator, mean, se)."""
    samples = 1 << (15 if quick else 18)
    out = []
    for i in range(3 if quick else 8):
        rng = np.random.default_rng(seed + i)
        prompts = int(rng.integers(2, 5))
        lg, q = random_instance(seed + i, prompts, arms=int(rng.integers(2, 4)))
        counts = rng.choice([0, 2, 3, 5, 8], size=prompts)
        counts[0] = max(counts[0], 2)
        eta = float(rng.uniform(0.5, 4.0))
        est = ("grpo", "rloo", "grpo_mean")[i % 3]
        mc = S.mc_improvement(lg, q, counts, eta, samples, seed=seed + i, estimator=est)
        out.append((lg, q, counts, eta, est, mc["mean"], mc["se"]))
    return tuple(out)


def check_exact_vs_mc(quick: bool, eta_factor: float = 1.0, seed: int = 21) -> Outcome:
    """Exact E[ΔJ] (× `eta_factor` in the step: a planted defect when ≠ 1) against Monte Carlo
    on random ensembles and allocations, one Holm family at α = 1e-6."""
    measured, se, expected = [], [], []
    for lg, q, counts, eta, est, mean, err in mc_cases(quick, seed):
        expected.append(S.expected_improvement(lg, q, counts, eta * eta_factor, est))
        measured.append(mean)
        se.append(err)
    z = stats.z_check("E[ΔJ]", measured, se, expected, scale=float(np.max(np.abs(expected))))
    return Outcome(z.passed, {"max_abs_z": z.max_abs_z, "exact": expected, "mc": measured},
                   "Holm α = 1e-6 accepts", z.summary(), interval=[float(np.min(se)), float(np.max(se))])


@claim("allocation.exact_matches_mc", source=OURS,
       statement="The exact E[ΔJ] of a batch under an allocation (sum of per-prompt exact "
                 "expectations) agrees with Monte Carlo",
       conditions="random Bernoulli ensembles (2–4 prompts, 2–3 arms), random counts in "
                  "{0, 2, 3, 5, 8}, GRPO / RLOO / grpo_mean, rollout-mean aggregation")
def _exact_mc():
    return [Check("monte_carlo", check_exact_vs_mc)]

