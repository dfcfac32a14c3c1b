"""Variance of REINFORCE against its constant baseline: the minimiser is b* = E[|s|²R]/E[|s|²], not E[R].

Three-arm softmax bandit, θ = (ln 2, 0, 0), r = (1, 0, 0) (docs/design.md §4.1): E[R] = 1/2 but b* = 3/10,
V(0) = 3/32, V(1/2) = 1/16, V(3/10) = 3/80. Points: the exact engine; line: the sympy closed form.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from bandits import rewards as R
from paper_figs import style
from sims import estimators
from sims.engines import exact
from theory import estimators as T

SEED = 0
CLAIMS = ["estimators.optimal_constant_baseline", "estimators.constant_baseline_variance",
          "estimators.reference_values"]
LOGITS = [math.log(2), 0.0, 0.0]


def make(quick: bool) -> "Path":  # noqa: F821
    model = R.deterministic([1, 0, 0])
    grid = np.linspace(-0.25, 1.0, 26 if quick else 101)
    v_exact = [exact.moments(estimators.get("reinforce"), LOGITS, model, 1, baseline=float(b)).trace_var for b in grid]
    ref = T.reference_values()["skewed"]
    v_sym = sp.lambdify(T.b, ref["V"], "numpy")
    m = exact.moments(estimators.get("reinforce"), LOGITS, model, 1)
    b_star, mean_r = m.optimal_constant_baseline, m.objective
    fine = np.linspace(grid[0], grid[-1], 400)
    with style.figure() as (fig, ax):
        ax.plot(fine, v_sym(fine), lw=1.5, label="V(b), sympy closed form")
        ax.plot(grid, v_exact, "o", ms=3, label="exact engine (float64)")
        for b, name, c in ((b_star, "b* = E[|s|²R]/E[|s|²]", style.PALETTE[1]), (mean_r, "E[R]", style.PALETTE[2])):
            v = exact.moments(estimators.get("reinforce"), LOGITS, model, 1, baseline=b).trace_var
            ax.axvline(b, color=c, ls="--", lw=1)
            ax.plot([b], [v], "s", color=c, label=f"{name} = {b:.3f}: V = {v:.4f}")
        ax.set_xlabel("constant baseline b")
        ax.set_ylabel("tr Cov[ĝ] (one sample)")
        ax.set_title("REINFORCE variance vs baseline, θ = (ln 2, 0, 0), r = (1, 0, 0)")
        ax.legend(loc="upper center")
        data = {
            "logits": LOGITS, "rewards": [1, 0, 0], "b": np.round(grid, 12).tolist(),
            "trace_var_exact": np.round(v_exact, 14).tolist(),
            "b_star": round(b_star, 14), "mean_reward": round(mean_r, 14),
            "b_star_symbolic": str(ref["b_star"]), "V_symbolic": str(ref["V"]),
            "claims": CLAIMS,
        }
        return style.save(fig, "baseline_variance", data)
