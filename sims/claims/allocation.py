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
from fractions import Fraction

import numpy as np

from bandits import allocation as A
from sims import allocation as S
from sims import estimators
from sims.engines import stats
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


def released_value(n: int, p: Fraction) -> Fraction:
    """Value(n, p) = (1 − pⁿ − (1 − p)ⁿ)·p(1 − p)², in exact rationals (written here from the
    release's `solve_by_dp`, not through `bandits.allocation`)."""
    return (1 - p**n - (1 - p) ** n) * p * (1 - p) ** 2


def released_brute_force(p_hat, budget: int, min_n: int, max_n: int, alpha: float = 0.9):
    """The release's objective by exhaustive search, for prompts that all have a valid buffer:
    initial 2 each; the DP budget after the cost fallback; the best Σ_i V_i(k_i) over extras
    k_i ∈ {0..max_n − min_n} of the effective prompts (V(0) = 0, V(k) = Value(min_n + k))
    using exactly min(DP budget, cap) rollouts. Returns (best value, DP budget used, rollouts
    the other prompts get in all)."""
    eff = [p for p in p_hat if 0 < p < 1]
    rest = budget - min_n * len(p_hat)
    others = min_n * (len(p_hat) - len(eff))
    if not eff:
        return Fraction(0), 0, others + (rest if any(p == 0 for p in p_hat) else 0)
    cost = sum(int(min(max_n, math.log(1 - alpha) / math.log(max(float(p), 1 - float(p))))) for p in eff)
    zero = [p for p in p_hat if p == 0] or [p for p in p_hat if not 0 < p < 1]
    if cost < rest and zero:
        others += rest - cost
        rest = cost
    use = min(rest, len(eff) * (max_n - min_n))
    best = None
    for ks in itertools.product(range(max_n - min_n + 1), repeat=len(eff)):
        if sum(ks) != use:
            continue
        v = sum((released_value(min_n + k, p) if k else Fraction(0)) for k, p in zip(ks, eff))
        best = v if best is None or v > best else best
    return best, use, others


def check_released_optimal(quick: bool, rule=A.knapsack_released_rule, seed: int = 0) -> Outcome:
    """The released rule's extras on the effective prompts against `released_brute_force` on
    random buffers (p̂ ∈ {0, 1/8, …, 1}, 3–4 prompts, MAX_N = 6, budgets 6–31): the largest gap
    of the objective (exact rationals; 10⁹ when the programme spent another budget than the
    fallback leaves it, or the surplus went to other prompts) and any budget mismatch."""
    rng = np.random.default_rng(seed)
    worst, where = Fraction(0), None
    cases = 40 if quick else 200
    for _ in range(cases):
        prompts = int(rng.integers(3, 5))
        p_hat = [Fraction(int(x), 8) for x in rng.integers(0, 9, size=prompts)]
        budget = int(rng.integers(2 * prompts, 2 * prompts + 6 * prompts))
        counts = rule(np.ones(prompts, bool), np.array([float(p) for p in p_hat]), budget, min_n=2, max_n=6)
        if int(np.sum(counts)) != budget:
            return Outcome(False, {"budget": budget, "spent": int(np.sum(counts))}, "Σ n = budget",
                           "the allocation spends the whole budget",
                           counterexample={"p_hat": [str(p) for p in p_hat], "counts": counts.tolist()})
        best, use, others = released_brute_force(p_hat, budget, 2, 6)
        eff = [i for i, p in enumerate(p_hat) if 0 < p < 1]
        if int(np.sum(counts)) - int(np.sum(counts[eff])) != others:
            best = Fraction(10**9)  # the surplus went elsewhere than the fallback sends it
        extras = [min(int(counts[i]) - 2, 4) for i in eff]
        got = sum((released_value(2 + k, p_hat[i]) if k > 0 else Fraction(0)) for k, i in zip(extras, eff))
        gap = best - got if sum(extras) == use else Fraction(10**9)  # the DP spent another budget
        if gap > worst:
            worst, where = gap, {"p_hat": [str(p) for p in p_hat], "budget": budget, "counts": counts.tolist(),
                                 "dp_budget": use, "best": str(best), "got": str(got)}
    return Outcome(worst == 0, float(worst), "= 0 (exact rationals)",
                   f"released objective of the rule's allocation against exhaustive search, {cases} "
                   "random buffers, all valid, MIN_N = 2, MAX_N = 6, α = 0.9", counterexample=where)


@claim("allocation.knapsack_released_optimal", source=KNAPSACK + ", exploration_utils.sampling_budget_by_knapsack "
       "and solve_by_dp",
       statement="The released rule spends the whole budget and its extra rollouts maximise the "
                 "released objective Σ_i V_i(k_i), V(0) = 0 and V(k) = Value(MIN_N + k, p̂_i) "
                 "(a prompt left at MIN_N scores nothing), over the budget left after its cost "
                 "fallback",
       conditions="every prompt with a valid buffer, p̂ ∈ {0, 1/8, …, 1}, 3–4 prompts, MIN_N = 2, "
                  "MAX_N = 6, α = 0.9, probability cost")
def _released_optimal():
    return [Check("exact", check_released_optimal)]


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
        r = S.reweighting(lg, q, counts, estimators.get(est), agg)["scale"] / S.reweighting(lg, q, equal, estimators.get(est), agg)["scale"]
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
                r = S.reweighting(lg, q, counts, estimators.get(est), agg)
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
# D³S
# ---------------------------------------------------------------------------------------------


D3S_CASES = [([0.0, 0.0], [0.9, 0.3], 5, 3), ([0.0, 0.0], [0.6, 0.4], 5, 3), ([0.0, 0.0], [0.3, 0.1], 5, 3),
             ([0.3, -0.4, 0.1], [0.7, 0.2, 0.5], 4, 2)]


def check_d3s_reweights(quick: bool, selection: str = "max_var") -> Outcome:
    """E[ĝ] of the max-Var(A) subset (m of G, GRPO recomputed on the kept rollouts) against a
    uniformly random subset of the same size (a fresh group of m) on prompts of different pass
    rates: c_p = ⟨E[ĝ_D³S], E[ĝ_m]⟩/|E[ĝ_m]|², the direction defect |E[ĝ_D³S] − c_p E[ĝ_m]|/|E[ĝ_D³S]|,
    and the spread max c/min c (1 would be a global scale, harmless to the batch)."""
    cases = D3S_CASES[:3] if quick else D3S_CASES
    scale, defect = [], 0.0
    for lg, q, g, m in cases:
        sel = S.d3s_expected_gradient(lg, q, g, m, selection=selection)
        ref = S.d3s_expected_gradient(lg, q, g, m, selection="random")
        c = float(sel @ ref / (ref @ ref))
        scale.append(c)
        defect = max(defect, float(np.linalg.norm(sel - c * ref) / np.linalg.norm(sel)))
    spread = max(scale) / min(scale)
    holds = defect <= 1e-9 and spread > 1.01
    return Outcome(holds, {"scale": scale, "spread": spread, "direction_defect": defect},
                   "direction defect ≤ 1e-9 and spread > 1.01",
                   "per-prompt scale of E[ĝ_D³S] relative to a random subset of the same size, "
                   f"{len(cases)} prompts (pass rates from 0.2 to 0.6), G = 4–5, m = 2–3")


@claim("allocation.d3s_reweights_prompts", source=D3S + "; the reweighting is derived here",
       statement="On a Bernoulli prompt, keeping the rollout subset of largest Var(A) multiplies "
                 "the expected gradient of a random subset of the same size by a scale c(p) "
                 "that depends on the pass rate, so across prompts D³S reweights the batch "
                 "gradient (not a global scale)",
       conditions="prompts with binary rewards, GRPO advantages recomputed on the kept rollouts, "
                  "max-variance split j = min(k, m/2) with ties to the smaller j")
def _d3s():
    return [Check("exact", check_d3s_reweights)]


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
        mc = S.mc_improvement(lg, q, counts, eta, samples, seed=seed + i, estimator=estimators.get(est))
        out.append((lg, q, counts, eta, est, mc["mean"], mc["se"]))
    return tuple(out)


def check_exact_vs_mc(quick: bool, eta_factor: float = 1.0, seed: int = 21) -> Outcome:
    """Exact E[ΔJ] (× `eta_factor` in the step: a planted defect when ≠ 1) against Monte Carlo
    on random ensembles and allocations, one Holm family at α = 1e-6."""
    measured, se, expected = [], [], []
    for lg, q, counts, eta, est, mean, err in mc_cases(quick, seed):
        expected.append(S.expected_improvement(lg, q, counts, eta * eta_factor, estimators.get(est)))
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

