"""Reward variance lower-bounds the policy-gradient norm: |∇J| against Var[R] on random softmax bandits.

Deterministic rewards in [0, 1] (docs/design.md §4.3). Left: √K·|∇J| against Var[R], so that every K
shares the two bounds √K·|∇J| ≥ Var[R] (dashed) and the sharp √K·|∇J| ≥ 2·Var[R] (solid); one
colour per K. Middle: |∇J|² against
π_min·Var[R]. Right: |∇J| against the Cauchy–Schwarz bound Var[R]/√(Σ_a(r_a − J)²). Every point
lies on or above its bound; the first two bounds are equalities at the uniform policy, and the
2/√K bound is attained with two arms and r = (1, 0).
"""

from __future__ import annotations

import numpy as np

from paper_figs import style
from sims import vas as V

SEED = 0
CLAIMS = ["vas.grad_norm_pimin", "vas.grad_norm_cauchy_schwarz", "vas.grad_norm_sqrt_k",
          "vas.grad_norm_sharp_sqrt_k"]
ARMS = (2, 3, 5, 8)


def make(quick: bool) -> "Path":  # noqa: F821
    data = V.bound_scatter(SEED, 150 if quick else 1500, ARMS)
    with style.figure(1, 3, figsize=(15.0, 4.4)) as (fig, axes):
        ax0, ax1, ax2 = axes
        top = max(float(d["var"].max()) for d in data.values())
        xs = np.linspace(0, top, 50)
        for i, (k, d) in enumerate(data.items()):
            c = style.PALETTE[i % len(style.PALETTE)]
            ax0.plot(d["var"], np.sqrt(k) * d["grad_norm"], ".", ms=3, alpha=0.5, color=c,
                     label=f"K = {k}")
            ax1.loglog(d["pi_min"] * d["var"], d["grad_norm"] ** 2, ".", ms=3, alpha=0.5, color=c)
            cs = d["grad_norm"] / d["ratio_cauchy_schwarz"]
            ax2.plot(cs, d["grad_norm"], ".", ms=3, alpha=0.5, color=c)
        ax0.plot(xs, xs, "k--", lw=1, label="Var[R] (√K bound)")
        ax0.plot(xs, 2 * xs, "k-", lw=1, label="2·Var[R] (sharp bound)")
        ax0.set_xlabel("Var[R]")
        ax0.set_ylabel("√K·|∇J|")
        ax0.set_title("√K·|∇J| ≥ 2·Var[R] ≥ Var[R]")
        ax0.legend(loc="upper left", markerscale=4, fontsize=8)
        lo = min(float((d["pi_min"] * d["var"]).min()) for d in data.values())
        hi = max(float((d["grad_norm"] ** 2).max()) for d in data.values())
        ax1.loglog([lo, hi], [lo, hi], "k-", lw=1)
        ax1.set_xlabel("π_min·Var[R]")
        ax1.set_ylabel("|∇J|²")
        ax1.set_title("|∇J|² ≥ π_min·Var[R]")
        m = max(float(d["grad_norm"].max()) for d in data.values())
        ax2.plot([0, m], [0, m], "k-", lw=1)
        ax2.set_xlabel("Var[R] / √(Σ_a (r_a − J)²)")
        ax2.set_ylabel("|∇J|")
        ax2.set_title("Cauchy–Schwarz bound")
        payload = {
            "seed": SEED, "claims": CLAIMS, "instances_per_K": 150 if quick else 1500,
            "min_ratio_grad_norm_over_bound": {
                str(k): {b: round(float(d[f"ratio_{b}"].min()), 10) for b in V.BOUNDS}
                for k, d in data.items()},
            "points": {str(k): {"var": style.rounded(d["var"]), "grad_norm": style.rounded(d["grad_norm"]),
                                "pi_min": style.rounded(d["pi_min"])} for k, d in data.items()},
        }
        return style.save(fig, "vas_gradient_norm_bounds", payload)
