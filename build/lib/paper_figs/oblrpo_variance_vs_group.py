"""Exact gradient variance against group size: constant, mean, leave-one-out and optimal baselines.

A three-arm softmax bandit with θ = (1.5, 0, −1) and Bernoulli rewards (0.9, 0.3, 0.1), where the
gradient-weighted optimal baseline b* = E[|s|²R]/E[|s|²] ≈ 0.357 is far from E[R] ≈ 0.747.
tr Cov[ĝ] from the exact engine (multiset enumeration, float64) for REINFORCE (b = 0), RLOO,
Dr. GRPO (grpo_mean), GRPO, the leave-one-out optimal baseline and the oracle constant b*
(REINFORCE with b = b*); the dashed line is the oracle's closed form V(b*)/G (sympy).
"""

from __future__ import annotations

import numpy as np

from bandits import rewards as R
from bandits import softmax
from paper_figs import style
from sims import exact
from theory import softmax_bandit as T

SEED = 0  # exact computation: no randomness
CLAIMS = ["oblrpo.optimal_baseline", "oblrpo.loo_unbiased"]
LOGITS = [1.5, 0.0, -1.0]
SUCCESS = [0.9, 0.3, 0.1]
ESTIMATORS = ["reinforce", "rloo", "grpo_mean", "grpo", "optimal_baseline_loo"]
LABELS = {"reinforce": "REINFORCE (b = 0)", "rloo": "RLOO", "grpo_mean": "Dr. GRPO (grpo_mean)",
          "grpo": "GRPO", "optimal_baseline_loo": "optimal baseline, leave-one-out",
          "oracle": "oracle constant b*"}


def make(quick: bool) -> "Path":  # noqa: F821
    model = R.bernoulli(SUCCESS)
    groups = [2, 3, 4, 6, 8] if quick else [2, 3, 4, 6, 8, 12, 16]
    logits = np.asarray(LOGITS)
    b_star = float(softmax.optimal_constant_baseline(logits, model.means))
    pi = np.asarray(softmax.policy(logits))
    mean_r = float(pi @ model.means)
    trace = {name: [exact.moments(name, logits, model, g).trace_var for g in groups]
             for name in ESTIMATORS}
    trace["oracle"] = [exact.moments("reinforce", logits, model, g, baseline=b_star).trace_var
                       for g in groups]
    v_star = T.numeric_single_sample_variance(3)(pi, model.means, model.second_moments, b_star)
    fine = np.linspace(groups[0], groups[-1], 200)
    with style.figure(figsize=(6.4, 4.2)) as (fig, ax):
        for i, name in enumerate(ESTIMATORS + ["oracle"]):
            ax.plot(groups, trace[name], "o-" if name != "oracle" else "s", ms=4,
                    color=style.PALETTE[i], label=LABELS[name])
        ax.plot(fine, v_star / fine, "--", color=style.PALETTE[5], lw=1, label="V(b*)/G (sympy)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(groups, [str(g) for g in groups])
        ax.set_xlabel("group size G")
        ax.set_ylabel("tr Cov[ĝ] (exact)")
        ax.set_title(f"b* = {b_star:.3f} vs E[R] = {mean_r:.3f}: exact variance per estimator")
        ax.legend(fontsize=8, loc="lower left")
        data = {
            "logits": LOGITS, "success": SUCCESS, "groups": groups,
            "b_star": style.rounded(b_star), "mean_reward": style.rounded(mean_r),
            "trace_var": {k: [style.rounded(x) for x in v] for k, v in trace.items()},
            "ratio_to_oracle": {k: [style.rounded(x / o, 8) for x, o in zip(v, trace["oracle"])]
                                for k, v in trace.items()},
            "oracle_closed_form": [style.rounded(v_star / g) for g in groups],
            "claims": CLAIMS,
        }
        return style.save(fig, "oblrpo_variance_vs_group", data)
