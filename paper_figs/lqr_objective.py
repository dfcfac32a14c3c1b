"""Scalar LQR: the exact J(K) with the Riccati optimum, and Monte Carlo estimates of J and ∇J.

x_{t+1} = 1.2 x_t + 0.8 u_t + w_t (Σ_w = 0.05), u_t = K x_t + 0.4 ε_t (σ fixed), Q = 1, R = 0.3,
x_0 ~ N(0, 1), H = 50, γ = 0.9 (docs/design.md §4.5). Lines: the exact J_H(K) of the second-moment
recursion and its autodiff derivative; dashed: the gain K* of the discounted Riccati equation,
where ∇J_∞ = 0. Points: Monte Carlo means of the discounted return and of GPOMDP at a few gains
(jitted `lax.scan` trajectories streamed through the one Monte Carlo engine), with 95% intervals.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bandits import lqr as L
from paper_figs import style
from sims import continuous as C

SEED = 0
CLAIMS = ["lqr.exact_objective", "lqr.gpomdp_unbiased", "lqr.riccati_stationary"]
CASE = dict(A=1.2, B=0.8, Q=1.0, R=0.3, horizon=50, gamma=0.9, noise_cov=0.05)
SIGMA = 0.4


def make(quick: bool) -> "Path":  # noqa: F821
    lqr = L.make(**CASE)
    k_star = float(L.optimal_gain(lqr)[0][0, 0])
    # gains whose closed loop is stable under the discount: γ(1.2 + 0.8K)² < 1
    lo, hi = (-1 / np.sqrt(0.9) - 1.2) / 0.8, (1 / np.sqrt(0.9) - 1.2) / 0.8
    grid = np.linspace(lo + 0.45, hi - 0.3, 41 if quick else 161)
    j_exact = [float(L.objective(jnp.array([k]), lqr, SIGMA)) for k in grid]
    g_exact = [float(L.gradient(jnp.array([k]), lqr, SIGMA)[0]) for k in grid]
    points = np.round(np.linspace(lo + 0.55, hi - 0.4, 5), 3).tolist() + [round(k_star, 6)]
    n = 20_000 if quick else 400_000
    mc = []
    for i, k in enumerate(points):
        ret = C.lqr_returns(lqr, [k], SIGMA, samples=n, seed=SEED * 100 + 2 * i)
        grad = C.lqr_moments(lqr, [k], SIGMA, samples=n, seed=SEED * 100 + 2 * i + 1)
        mc.append({"K": k, "J_mc": float(ret.mean[0]), "J_se": float(ret.mean_se[0]),
                   "grad_mc": float(grad.mean[0]), "grad_se": float(grad.mean_se[0]),
                   "J_exact": float(L.objective(jnp.array([k]), lqr, SIGMA)),
                   "grad_exact": float(L.gradient(jnp.array([k]), lqr, SIGMA)[0])})
    with style.figure(1, 2, figsize=(10.0, 3.8)) as (fig, (ax1, ax2)):
        ks = [m["K"] for m in mc]
        ax1.plot(grid, j_exact, lw=1.5, label="exact J_H(K) (recursion)")
        ax1.errorbar(ks, [m["J_mc"] for m in mc], yerr=[1.96 * m["J_se"] for m in mc], fmt="o", ms=4, color=style.PALETTE[3],
                     capsize=3, label=f"Monte Carlo, {n:,} trajectories (95% CI)")
        ax2.plot(grid, g_exact, lw=1.5, label="exact ∇J_H(K) (autodiff)")
        ax2.errorbar(ks, [m["grad_mc"] for m in mc], yerr=[1.96 * m["grad_se"] for m in mc], fmt="o", ms=4, color=style.PALETTE[3],
                     capsize=3, label="GPOMDP mean (95% CI)")
        ax2.axhline(0, color="0.5", lw=0.8)
        for ax in (ax1, ax2):
            ax.axvline(k_star, color=style.PALETTE[1], ls="--", lw=1, label=f"Riccati K* = {k_star:.4f}")
            ax.set_xlabel("gain K")
        ax1.set_ylabel("J_H(K)")
        ax2.set_ylabel("∂J_H/∂K")
        ax1.set_title("objective")
        ax2.set_title("gradient")
        ax1.legend(loc="lower center", fontsize=8)
        ax2.legend(loc="upper right", fontsize=8)
        data = style.rounded({"case": {**CASE, "sigma": SIGMA}, "k_star": k_star, "grid": grid,
                              "J_exact": j_exact, "grad_exact": g_exact, "monte_carlo": mc,
                              "samples": n, "claims": CLAIMS})
        return style.save(fig, "lqr_objective", data)
