"""Prompt selection and rollout allocation: exact E[ΔJ] per rollout against the budget, for every rule.

Ensembles of 12 prompts × 3 answers with success probabilities ~ Beta(3, 1) (easy), Beta(1, 1)
(mixed) and Beta(1, 3) (hard), uniform policy; one GRPO step with η = 2 and rollout-mean
aggregation (docs/design.md §4.10). Rules: uniform; VAS (MMR1: λ = 0.5 of the groups drawn with
replacement ∝ VPS = OVS + TDS, the rest uniform); Knapsack RL as released (the reward buffer's
p̂, 2 rollouts per prompt, the rest by its programme with "no extra" scored 0 and the cost
fallback, GRPO advantages clipped at ±5) and the lab's variant (table from n_min, no fallback);
VADE (Thompson sampling, IG = p(1 − p)); SEC (terciles of the estimated pass rate, TD(0) values,
τ = 0.4); each on a history of 8 past rollouts per prompt, G = 4 per selected group; D³S
(uniformly drawn prompts, G = 4 rollouts each, GRPO on the 2 kept of largest variance); and the
oracle (the knapsack programme on the exact per-prompt gains, n_p ≤ 16). Each point is the exact
E[ΔJ] given the allocation, averaged over independent histories and draws of the rule (±1 SE,
often smaller than the marker). The JSON holds every number, with the expected fraction of
non-zero-gradient groups.
"""

from __future__ import annotations

from paper_figs import style
from sims import allocation as S

SEED = 0
CLAIMS = ["allocation.knapsack_released_optimal", "allocation.d3s_reweights_prompts"]


def make(quick: bool) -> "Path":  # noqa: F821
    budgets = (24, 36) if quick else (24, 28, 32, 36, 40, 44, 48)
    draws = 2 if quick else 24
    data = {kind: {b: S.rank_rules(kind, b, draws=draws, seed=SEED) for b in budgets}
            for kind in S.KINDS}
    with style.figure(1, 3, figsize=(15.0, 4.4)) as (fig, axes):
        for ax, (kind, by_budget) in zip(axes, data.items()):
            for i, rule in enumerate(S.RULES):
                ys = [next(d for d in by_budget[b] if d["rule"] == rule) for b in budgets]
                c = style.PALETTE[i % len(style.PALETTE)]
                ax.errorbar(budgets, [d["per_rollout"] for d in ys],
                            yerr=[d["gain_se"] / b for d, b in zip(ys, budgets)],
                            marker="o", ms=4, lw=1.2, color=c, label=rule, capsize=2)
            ax.set_xlabel("rollout budget per step")
            ax.set_ylabel("exact E[ΔJ] per rollout")
            ax.set_title(f"{kind} prompts")
        axes[0].legend(loc="best", fontsize=8)
        payload = {"seed": SEED, "claims": CLAIMS, "setup": S.STUDY, "budgets": list(budgets),
                   "draws": draws,
                   "results": {k: {str(b): [{key: (style.rounded(v) if isinstance(v, float) else v)
                                             for key, v in d.items()} for d in rows]
                                   for b, rows in by.items()} for k, by in data.items()}}
        return style.save(fig, "allocation_budget", payload)
