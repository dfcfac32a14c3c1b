"""Prompt selection and rollout allocation: learning curves at equal rollout budget, every rollout counted.

The study ensembles of `allocation_budget` (12 prompts × 3 answers; easy, mixed, hard), uniform
initial policy, GRPO with η = 2 and rollout-mean aggregation, 32 training rollouts per step
(G = 4 per selected prompt for the selection rules; Knapsack RL allocates n_p ∈ [2, 32]). The
x-axis counts every rollout: the rules that need estimates (all but uniform) first spend 2
rollouts per prompt, and VAS re-scores every prompt with 2 rollouts every 10 steps (MMR1's
refresh); later estimates come from the training groups themselves. Lines: the exact ensemble
objective J(Θ) averaged over seeds; bands: normal 95% intervals over seeds.
"""

from __future__ import annotations

from paper_figs import style
from sims import allocation as S

SEED = 0
CLAIMS = ["allocation.nonzero_fraction_ranks_gain", "allocation.knapsack_no_additional_bias"]


def make(quick: bool) -> "Path":  # noqa: F821
    kinds = ("mixed",) if quick else tuple(S.KINDS)
    seeds, steps = (3, 6) if quick else (16, 60)
    data = {k: S.learning_curves(k, seeds=seeds, steps=steps, seed=SEED) for k in kinds}
    with style.figure(1, len(kinds), figsize=(5.0 * len(kinds), 4.2), squeeze=False) as (fig, axes):
        for ax, (kind, out) in zip(axes[0], data.items()):
            for i, (rule, d) in enumerate(out["rules"].items()):
                c = style.PALETTE[i % len(style.PALETTE)]
                ax.plot(out["grid"], d["mean"], color=c, lw=1.4, label=rule)
                ax.fill_between(out["grid"], d["lo"], d["hi"], color=c, alpha=0.2, lw=0)
            ax.set_xlabel("rollouts spent (scoring included)")
            ax.set_ylabel("J(Θ)")
            ax.set_title(f"{kind} prompts")
        axes[0][0].legend(loc="upper left", fontsize=8)
        payload = {"seed": SEED, "claims": CLAIMS, "setup": S.STUDY, "seeds": seeds, "steps": steps,
                   "budget": 32, "results": style.rounded(data)}
        return style.save(fig, "allocation_learning_curves", payload)
