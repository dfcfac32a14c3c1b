"""Variance at equal budget and equal step length relative to RLOO, for every registry estimator and for the batch estimators on a prompt ensemble.

Panel (a): on the two-armed pass/fail bandit at G = 8 (equal budget: the same G samples), tr Cov[ĝ]/c(p, G)² divided by RLOO's tr Cov at the same p — the variance of each estimator once its mean is rescaled to the true gradient's length (exact). Below 1: less noise than RLOO per unit of progress along its own reweighted objective. Panel (b): the batch estimators (`sims.batch`) on a 3-prompt ensemble with pass rates (p, 1/2, 0.8), G = 4: the per-prompt scale c_x of the first prompt against its pass rate p, exact by enumeration of the 125 batch outcomes.
"""

from __future__ import annotations

import numpy as np

from paper_figs import style
from sims import atlas, batch, estimators

SEED = 0
CLAIMS = ["atlas.registry.*", "atlas.batch.*"]


def make(quick: bool) -> "Path":  # noqa: F821
    ps = np.linspace(0.05, 0.95, 19 if quick else 73)
    rel = {n: atlas.relative_variance(estimators.get(n), ps, 8) for n in estimators.REGISTRY}
    pb = np.linspace(0.05, 0.95, 7 if quick else 19)
    bc = {n: np.array([batch.exact_ensemble(batch.get(n), [p, 0.5, 0.8], 4)["c"][0] for p in pb]) for n in batch.REGISTRY}
    with style.figure(1, 2, figsize=(13.0, 4.6)) as (fig, (ax_a, ax_b)):
        for i, (n, r) in enumerate(rel.items()):
            ax_a.plot(ps, r, color=style.PALETTE[i % len(style.PALETTE)],
                      ls=["-", "--", ":"][i // len(style.PALETTE) % 3], lw=1.4, label=n)
        ax_a.axhline(1.0, color="k", lw=0.8)
        ax_a.set_yscale("log")
        ax_a.set_xlabel("pass rate p")
        ax_a.set_ylabel("(tr Cov / c²) ÷ tr Cov_RLOO")
        ax_a.set_title("(a) variance at equal budget and step length, G = 8")
        ax_a.legend(fontsize=6, ncol=2)
        for i, (n, c) in enumerate(bc.items()):
            ax_b.plot(pb, c, marker="o", ms=3, color=style.PALETTE[i % len(style.PALETTE)],
                      ls=["-", "--", ":"][i // len(style.PALETTE) % 3], lw=1.4, label=n)
        ax_b.set_xlabel("pass rate p of prompt 1 (others 0.5, 0.8)")
        ax_b.set_ylabel("c_1")
        ax_b.set_title("(b) batch estimators: per-prompt scale, G = 4")
        ax_b.legend(fontsize=7)
        payload = {"seed": SEED, "claims": CLAIMS, "p": style.rounded(ps),
                   "relative_variance_G8": {n: style.rounded(r) for n, r in rel.items()},
                   "batch": {"p1": style.rounded(pb), "others": [0.5, 0.8], "G": 4,
                             "c1": {n: style.rounded(c) for n, c in bc.items()}}}
        return style.save(fig, "estimator_variance", payload)
