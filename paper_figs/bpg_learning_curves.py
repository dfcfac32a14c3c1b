"""Bayesian policy gradient: learning curves on scalar LQR at equal sample budget.

Gradient ascent on the gain K of scalar LQR (the `lqr_objective` case, σ = 0.4 fixed) from
K_0 = −0.45, every learner drawing M = 10 fresh trajectories per iteration with common random
numbers: Monte Carlo (1/M) Σ R u and BPG Models 1 and 2 (exact Fisher, σ² = 1; Ghavamzadeh, Engel &
Valko 2016) with the step K ← K + 0.004·ĝ, and natural-gradient BPG (G⁻¹ × Model 2's mean) with
K ← K + 0.25·G⁻¹ĝ; K is kept in [−2.5, −0.4], inside the discounted-stable range (docs/design.md
§4.6). The y-axis is the exact suboptimality J(K*) − J(K_t) from the second-moment recursion; lines
are means over seeds with 95% t-intervals (bands), the x-axis counts trajectories used.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import t as student

from paper_figs import style
from sims.bpg import experiments as E

SEED = 0
CLAIMS = ["bpg.mse_below_mc"]
M = 10
LABELS = {"mc": "Monte Carlo", "bpg_model1": "BPG Model 1", "bpg_model2": "BPG Model 2",
          "bpg_natural": "natural-gradient BPG (Model 2)"}


def make(quick: bool) -> "Path":  # noqa: F821
    seeds, iterations = (12, 40) if quick else (64, 150)
    out = E.learning_curves(seeds, iterations, M, seed=SEED)
    gap = np.maximum(out["J_star"] - out["J"], 0.0)  # J* is the maximum over K; ≥ 0 up to rounding
    budget = M * np.arange(iterations + 1)
    summary = {}
    with style.figure(1, 1, figsize=(6.4, 4.0)) as (fig, ax):
        for i, (name, color) in enumerate(zip(E.LEARNERS, (style.PALETTE[6], style.PALETTE[0],
                                                          style.PALETTE[1], style.PALETTE[3]))):
            mean = gap[i].mean(axis=0)
            half = student.ppf(0.975, seeds - 1) * gap[i].std(axis=0, ddof=1) / np.sqrt(seeds)
            ax.plot(budget, mean, color=color, lw=1.4, label=LABELS[name])
            ax.fill_between(budget, np.maximum(mean - half, 0.0), mean + half, color=color, alpha=0.15)
            summary[name] = {"mean_gap": mean, "ci_half_width": half,
                             "final_gap_mean": float(mean[-1]), "final_K_mean": float(out["K"][i, :, -1].mean())}
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("trajectories used")
        ax.set_ylabel("J(K*) − J(K_t) (exact)")
        ax.set_title(f"scalar LQR, M = {M} per step, {seeds} seeds")
        ax.legend(fontsize=8)
        data = style.rounded({"seeds": seeds, "iterations": iterations, "M": M, "start": E.LEARN_START,
                              "step": E.LEARN_STEP, "natural_step": E.LEARN_NATURAL_STEP,
                              "bounds": E.LEARN_BOUNDS, "noise": E.NOISE, "K_star": out["K_star"],
                              "J_star": out["J_star"], "budget": budget, "learners": summary,
                              "claims": CLAIMS})
        return style.save(fig, "bpg_learning_curves", data)
