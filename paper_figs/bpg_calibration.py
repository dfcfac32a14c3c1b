"""Bayesian policy gradient: coverage of the credible ellipsoid against its nominal level.

For each nominal level q (0.5 … 0.99), the fraction of R independent data sets whose level-q
credible ellipsoid (∇J − mean)ᵀ cov⁻¹ (∇J − mean) ≤ χ²_n(q) holds the true gradient, for Models 1
and 2 with the exact Fisher matrix (solid) and the plug-in Fisher (dashed) (Ghavamzadeh, Engel &
Valko 2016; docs/design.md §4.6). A calibrated posterior lies on the diagonal; bars are 95% Wilson
intervals. Left: the Gaussian bandit at θ = (0, 0) with reward −(a − 1)²; right: scalar LQR at
K = −0.8. Top row: fixed GP noise σ² = 1, M = 10 — the posterior covariance does not depend on the
returns, so with a fixed prior scale the coverage follows the reward's scale, not the level.
Bottom row: σ² fitted by marginal likelihood on each data set, M = 40 — Model 2 is calibrated on
LQR; on the bandit Model 1's σ² goes to its floor (R·u lies in its kernel's span).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from paper_figs import style
from sims.bpg import experiments as E

SEED = 0
CLAIMS = [f"bpg.calibration_model{m}_{f}_fisher" for m in (1, 2) for f in ("known", "plugin")] + [
    f"bpg.calibration_model{m}_{f}_fisher_fitted_noise_{p}_m40" for m in (1, 2) for f in ("known", "plugin")
    for p in ("gaussian", "lqr")]
ROWS = (("fixed", E.NOISE, 10), ("fitted", "fitted", 40))  # (name, noise, M)
NAMES = {"gaussian": "Gaussian bandit, R(a) = −(a − 1)²", "lqr": "scalar LQR, K = −0.8"}


def make(quick: bool) -> "Path":  # noqa: F821
    r = 500 if quick else 10_000
    results = {}
    for row, (name, noise, m) in enumerate(ROWS):
        for i, problem in enumerate(("gaussian", "lqr")):
            d = E.cached_data(problem, SEED * 1000 + 500 + 10 * row + i, r, m)
            for model in (1, 2):
                for fisher in ("known", "plugin"):
                    means, covs = E.posteriors(d, model, noise, fisher)
                    counts = E.coverage(E.distances(means, covs, d.gradient), d.gradient.size)
                    cis = [binomtest(c, r).proportion_ci(0.95, method="wilson") for c in counts.values()]
                    results[f"{name}/{problem}/model{model}/{fisher}"] = {
                        "M": m, "levels": list(counts), "coverage": [c / r for c in counts.values()],
                        "ci": [[ci.low, ci.high] for ci in cis]}
    with style.figure(2, 2, figsize=(10.0, 8.2)) as (fig, axes):
        for row, (name, _, m) in enumerate(ROWS):
            for ax, problem in zip(axes[row], ("gaussian", "lqr")):
                ax.plot([0.45, 1.0], [0.45, 1.0], color="0.5", lw=0.8, ls=":", label="calibrated")
                for model, color in ((1, style.PALETTE[0]), (2, style.PALETTE[1])):
                    for fisher, ls in (("known", "-"), ("plugin", "--")):
                        res = results[f"{name}/{problem}/model{model}/{fisher}"]
                        cov, ci = np.array(res["coverage"]), np.array(res["ci"])
                        ax.errorbar(res["levels"], cov, yerr=[cov - ci[:, 0], ci[:, 1] - cov], fmt="o", ls=ls,
                                    ms=3, lw=1.2, capsize=2, color=color,
                                    label=f"Model {model}, {'exact' if fisher == 'known' else 'plug-in'} G")
                ax.set_xlim(0.45, 1.0)
                ax.set_ylim(0.0, 1.02)
                ax.set_xlabel("nominal level q")
                ax.set_ylabel("fraction of data sets covering ∇J")
                noise_text = "σ² = 1" if name == "fixed" else "σ² fitted"
                ax.set_title(f"{NAMES[problem]}, M = {m}, {noise_text}", fontsize=9)
                ax.legend(fontsize=7, loc="best")
        fig.subplots_adjust(hspace=0.32)
        data = style.rounded({"datasets": r, "rows": [{"noise": str(n), "M": m} for _, n, m in ROWS],
                              "results": results, "claims": CLAIMS})
        return style.save(fig, "bpg_calibration", data)
