"""Gradient variance at equal expected step against group size: constant, mean, leave-one-out and optimal baselines.

A three-arm softmax bandit with θ = (1.5, 0, −1) and Bernoulli rewards (0.9, 0.3, 0.1), where the
gradient-weighted optimal baseline b* = E[|s|²R]/E[|s|²] ≈ 0.357 is far from E[R] ≈ 0.747.
With binary rewards every estimator here has E[ĝ] = c·∇J (docs/design.md §4.1): c = 1 for
REINFORCE, RLOO and the leave-one-out optimal baseline, 1 − 1/G for Dr. GRPO (grpo_mean), a
G-dependent constant for GRPO. Raw variances of estimators with different c compare steps of
different expected length, so the figure plots tr Cov[ĝ/c] = tr Cov[ĝ]/c², the variance at equal
expected step (exact engine, multiset enumeration, float64). Left: tr Cov[ĝ/c] against G, with
the oracle constant b* (REINFORCE with b = b*) and its closed form V(b*)/G (sympy, dashed).
Right: the same divided by the oracle's V(b*)/G. Dr. GRPO scaled by 1/c is RLOO exactly (its
advantages are RLOO's times (G − 1)/G), so the two curves coincide.
"""

from __future__ import annotations

import numpy as np

from bandits import rewards as R
from bandits import softmax
from paper_figs import style
from sims import estimators
from sims.engines import exact
from theory import estimators as T

SEED = 0  # exact computation: no randomness
CLAIMS = ["oblrpo.optimal_baseline", "oblrpo.loo_unbiased", "estimators.binary_reward_scale"]
LOGITS = [1.5, 0.0, -1.0]
SUCCESS = [0.9, 0.3, 0.1]
ESTIMATORS = ["reinforce", "rloo", "grpo_mean", "grpo", "optimal_baseline_loo"]
LABELS = {"reinforce": "REINFORCE (b = 0)", "rloo": "RLOO", "grpo_mean": "Dr. GRPO (= RLOO after ÷c)",
          "grpo": "GRPO", "optimal_baseline_loo": "optimal baseline, leave-one-out",
          "oracle": "oracle constant b*"}
STYLE = {"reinforce": dict(marker="o"), "rloo": dict(marker="o"),
         "grpo_mean": dict(marker="o", ms=9, mfc="none", ls="none", mew=1.4),
         "grpo": dict(marker="D"), "optimal_baseline_loo": dict(marker="^"),
         "oracle": dict(marker="s", ls="none")}


def scale_and_variance(name, logits, model, group, **params):
    """(c, tr Cov[ĝ]/c², max |E ĝ − c∇J|) with c = ⟨E ĝ, ∇J⟩/|∇J|², exactly."""
    m = exact.moments(estimators.get(name), logits, model, group, **params)
    grad, mean = np.asarray(m.true_gradient), np.asarray(m.mean)
    c = float(mean @ grad / (grad @ grad))
    return c, m.trace_var / c**2, float(np.max(np.abs(mean - c * grad)))


def make(quick: bool) -> "Path":  # noqa: F821
    model = R.bernoulli(SUCCESS)
    groups = [2, 3, 4, 6, 8] if quick else [2, 3, 4, 6, 8, 12, 16]
    logits = np.asarray(LOGITS)
    b_star = float(softmax.optimal_constant_baseline(logits, model.means))
    pi = np.asarray(softmax.policy(logits))
    mean_r = float(pi @ model.means)
    rows = {name: [scale_and_variance(name, logits, model, g) for g in groups] for name in ESTIMATORS}
    rows["oracle"] = [scale_and_variance("reinforce", logits, model, g, baseline=b_star) for g in groups]
    scale = {k: [r[0] for r in v] for k, v in rows.items()}
    var = {k: [r[1] for r in v] for k, v in rows.items()}
    off_axis = max(r[2] for v in rows.values() for r in v)
    v_star = T.numeric_single_sample_variance(3)(pi, model.means, model.second_moments, b_star)
    fine = np.linspace(groups[0], groups[-1], 200)
    with style.figure(1, 2, figsize=(11.0, 4.2)) as (fig, (ax, bx)):
        for i, name in enumerate(ESTIMATORS + ["oracle"]):
            kw = {"ms": 5, "lw": 1.4, "ls": "-", **STYLE[name]}
            ax.plot(groups, var[name], color=style.PALETTE[i], label=LABELS[name], **kw)
            ratio = [v * g / v_star for v, g in zip(var[name], groups)]
            bx.plot(groups, ratio, color=style.PALETTE[i], **kw)
        ax.plot(fine, v_star / fine, "--", color=style.PALETTE[5], lw=1, label="V(b*)/G (sympy)")
        bx.axhline(1.0, ls="--", color=style.PALETTE[5], lw=1)
        for a in (ax, bx):
            a.set_xscale("log", base=2)
            a.set_xticks(groups, [str(g) for g in groups])
            a.set_xlabel("group size G")
        ax.set_yscale("log")
        ax.set_ylabel("tr Cov[ĝ/c]  (variance at equal expected step)")
        bx.set_ylabel("tr Cov[ĝ/c] ÷ oracle V(b*)/G")
        ax.set_title(f"b* = {b_star:.3f} vs E[R] = {mean_r:.3f}")
        bx.set_title("relative to the oracle constant baseline")
        ax.legend(fontsize=8, loc="lower left")
        data = {
            "logits": LOGITS, "success": SUCCESS, "groups": groups,
            "b_star": style.rounded(b_star), "mean_reward": style.rounded(mean_r),
            "scale_c": {k: [style.rounded(x) for x in v] for k, v in scale.items()},
            "trace_var_over_c2": {k: [style.rounded(x) for x in v] for k, v in var.items()},
            "ratio_to_oracle": {k: [style.rounded(x / o, 8) for x, o in zip(v, var["oracle"])]
                                for k, v in var.items()},
            "oracle_closed_form": [style.rounded(v_star / g) for g in groups],
            "max_off_axis_mean": style.rounded(off_axis, 3),
            "claims": CLAIMS,
        }
        return style.save(fig, "oblrpo_variance_vs_group", data)
