"""N-PG-IGT and (N)-HARPG against vanilla PG: trajectories to ε and learning curves.

Top row, per problem (Gaussian bandit, scalar LQR, 2-D LQR; docs/design.md §4.7): the median over
seeds of the trajectories until J* − J(θ_t) stays ≤ ε for the rest of the run against ε on log-log axes, with 95% bootstrap
bars, and the fitted exponent p (n ∝ ε^{−p}) with its 95% bootstrap CI in the legend beside the
paper's rate (Fatkhullin et al. 2023: 3 for vanilla PG, 2.5 for N-PG-IGT, 2 for (N)-HARPG).
Bottom row: the median J* − J against trajectories with 95% bootstrap bands. γ_0 was tuned per
method with the same budget (`sims/npg/complexity.py`); the JSON holds the sweep's data and
`draw(data)` redraws the figure from it without re-running.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

from paper_figs import style
from sims.npg import complexity as S

SEED = 0
CLAIMS = ["npg.exponent_pg", "npg.exponent_n_pg_igt", "npg.exponent_harpg", "npg.exponent_n_harpg"]
NAME = "npg_complexity"


def draw(data: dict):
    """The figure of sweep `data` (as written to npg_complexity.json): returns the matplotlib
    figure context's (fig, axes) after drawing."""
    problems = list(data["problems"])
    ctx = style.figure(2, len(problems), figsize=(4.2 * len(problems), 7.0), squeeze=False)
    fig, axes = ctx.__enter__()
    for j, name in enumerate(problems):
        pd = data["problems"][name]
        top, bottom = axes[0, j], axes[1, j]
        for i, (method, md) in enumerate(pd["methods"].items()):
            color = style.PALETTE[i % len(style.PALETTE)]
            comp = md["complexity"]
            eps = np.asarray(comp["eps"])
            med = np.asarray([np.nan if v is None else v for v in comp["median"]])
            lo = np.asarray([np.nan if c[0] is None else c[0] for c in comp["ci"]])
            hi = np.asarray([np.nan if c[1] is None else c[1] for c in comp["ci"]])
            ok = np.isfinite(med)
            if comp["exponent"] is None:
                label = f"{method}: no fit ({comp['reason']})"[:60]
            else:
                a, b = comp["exponent_ci"]
                label = f"{method}: p = {comp['exponent']:.2f} [{a:.2f}, {b:.2f}] (paper {md['paper_exponent']:g})"
            top.errorbar(eps[ok], med[ok], yerr=[med[ok] - np.where(np.isfinite(lo[ok]), lo[ok], med[ok]),
                                                  np.where(np.isfinite(hi[ok]), hi[ok], med[ok]) - med[ok]],
                         fmt="o-", ms=3, capsize=2, color=color, label=label)
            curve = md["curve"]
            x = np.asarray(curve["trajectories"], dtype=float)
            y = np.asarray([np.nan if v is None else v for v in curve["median"]])
            keep = x > 0
            bottom.plot(x[keep], y[keep], color=color, lw=1.2, label=f"{method} (γ_0 = {md['gamma0']:.3g})")
            bottom.fill_between(x[keep], np.asarray([np.nan if v is None else v for v in curve["lo"]])[keep],
                                np.asarray([np.nan if v is None else v for v in curve["hi"]])[keep],
                                color=color, alpha=0.2, lw=0)
        claimed = data.get("claimed")
        tag = "" if claimed is None else (" (claimed)" if name in claimed else " (not claimed)")
        top.set(xscale="log", yscale="log", xlabel="ε", ylabel="trajectories to J* − J ≤ ε (median)",
                title=name + tag)
        top.invert_xaxis()
        top.xaxis.set_minor_formatter(NullFormatter())
        top.legend(fontsize=6.5, loc="upper left")
        gap0 = max(md["curve"]["median"][0] or 1.0 for md in pd["methods"].values())
        bottom.set(xscale="log", yscale="log", xlabel="trajectories", ylabel="J* − J (median, 95% band)")
        bottom.set_ylim(top=30 * gap0)
        bottom.legend(fontsize=7, loc="lower left")
    return ctx, fig


def make(quick: bool) -> Path:
    data = S.sweep(quick)
    ctx, fig = draw(data)
    try:
        path = style.save(fig, NAME, style.rounded({**data, "claims": CLAIMS, "seed": SEED}))
    finally:
        ctx.__exit__(None, None, None)
    return path


def redraw(json_path: Path, out_dir: Path) -> Path:
    """Redraw from a saved npg_complexity.json into `out_dir` (no sweep is run)."""
    data = json.loads(Path(json_path).read_text())
    ctx, fig = draw(data)
    try:
        return style.save(fig, NAME, data, out_dir)
    finally:
        ctx.__exit__(None, None, None)
