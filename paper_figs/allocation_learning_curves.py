"""Prompt selection and rollout allocation: learning curves at equal rollout budget, every rollout counted.

The study ensembles of `allocation_budget` (12 prompts × 3 answers; easy, mixed, hard), uniform
initial policy, GRPO with η = 2 and rollout-mean aggregation, 32 training rollouts per step
(G = 4 per selected prompt for the selection rules). Knapsack RL as released: a reward buffer of
each prompt's latest 16 rewards (valid from 8), 2 rollouts per prompt and the rest by its
programme with the cost fallback, GRPO advantages clipped at ±5; beside it the lab's variant
(n_p ∈ [2, 32], p̂ from the latest group). VAS: λ = 0.5 of the groups drawn with replacement
∝ VPS = OVS + TDS, the rest uniform. SEC: categories = terciles of the warm-up estimate, TD(0)
on mean |A|. The x-axis counts every rollout: the rules that need estimates (all but uniform)
first spend 2 rollouts per prompt (the released Knapsack rule 8, to fill its buffer), and VAS
re-scores every prompt with 2 rollouts every 10 steps (MMR1's refresh); later estimates come
from the training groups themselves. Lines: the exact ensemble objective J(Θ) averaged over
seeds; bands: normal 95% intervals over seeds.
"""

from __future__ import annotations

from paper_figs import style
from sims import allocation as S

SEED = 0
CLAIMS = ["allocation.knapsack_released_optimal", "allocation.knapsack_no_additional_bias"]


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
