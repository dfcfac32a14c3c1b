"""Bayesian policy gradient: mean squared error of the gradient against the number of samples M.

Ghavamzadeh, Engel & Valko (2016), Models 1 and 2 with the exact Fisher matrix and σ² = 1, against
the Monte Carlo estimate (1/M) Σ R u on the same data sets (docs/design.md §4.6). Left: the
Gaussian bandit a ~ N(μ, s²) at θ = (μ, log s) = (0, 0) with reward −(a − 1)² (∇J = (2, −2));
middle: scalar LQR (the `lqr_objective` case) at K = −0.8, trajectory score and discounted return;
right: the LQR of Ghavamzadeh & Engel (NIPS 2006 §6) at λ = −0.2, σ = 1, T = 20, θ = (λ, log σ).
Each point is the mean of |ĝ − ∇J|² over R independent data sets (one `posterior_batch` call per
M), with a 95% interval (±1.96 standard errors); log–log axes. The JSON also holds each model's
MSE ratio to Monte Carlo with its paired bootstrap CI. On the bandit R·u lies in the span of
Model 1's kernel (claim bpg.exact_in_span), so Model 1's error falls towards 0 as M grows.
"""

from __future__ import annotations

from matplotlib.ticker import NullFormatter

from paper_figs import style
from sims.bpg import experiments as E

SEED = 0
CLAIMS = ["bpg.mse_below_mc", "bpg.exact_in_span"]
M_GRID = (5, 10, 20, 40, 80)
TITLES = {"gaussian": "Gaussian bandit, R(a) = −(a − 1)²", "lqr": "scalar LQR, K = −0.8",
          "paper_lqr": "the paper's LQR, λ = −0.2, σ = 1"}


def make(quick: bool) -> "Path":  # noqa: F821
    r = 200 if quick else 4_000
    results = {problem: E.mse_rows(problem, M_GRID, r, SEED * 1000 + 100 * i)
               for i, problem in enumerate(("gaussian", "lqr", "paper_lqr"))}
    with style.figure(1, 3, figsize=(15.0, 3.8)) as (fig, axes):
        for ax, (problem, rows) in zip(axes, results.items()):
            ms = [row["M"] for row in rows]
            for key, label, color, shift in (("mc", "Monte Carlo", style.PALETTE[6], 1.0),
                                             ("model1", "BPG Model 1", style.PALETTE[0], 0.97),
                                             ("model2", "BPG Model 2", style.PALETTE[1], 1.03)):
                mse = [row[key]["mse"] for row in rows]
                half = [1.96 * row[key]["se"] for row in rows]
                lower = [min(h, 0.999 * m) for m, h in zip(mse, half)]  # keep the bar on the log axis
                ax.errorbar([m * shift for m in ms], mse, yerr=[lower, half], fmt="o-", ms=4, lw=1.2,
                            capsize=3, color=color, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(ms, [str(m) for m in ms])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("sample paths M")
            ax.set_ylabel("mean squared error of ∇J")
            ax.set_title(TITLES[problem])
            ax.legend(fontsize=8)
        data = style.rounded({"datasets": r, "noise": E.NOISE, "fisher": "known", "M": M_GRID,
                              "results": results, "claims": CLAIMS})
        return style.save(fig, "bpg_mse", data)
