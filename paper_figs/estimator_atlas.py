"""The estimator atlas: what each registry estimator ascends under pass/fail rewards, c(p, G) against the pass rate p.

For binary rewards E[ĝ_x] = c(p_x, G)·∇p_x per prompt (docs/design.md §4.9), so an estimator ascends the reweighted objective whose slope in p is c. Curves: every registry estimator at G = 8 on the two-armed pass/fail bandit with π_1 = p (exact, G + 1 terms; weight-reading estimators receive |s|² of that bandit, so their curve is that bandit's). Panel (a): c(p, 8) on a log scale (RLOO = 1: unbiased; group mean = 7/8; GRPO ≈ 1/√(p(1−p)); DGAE ≈ 1/(2p(1−p))). Panel (b): the shape c(p, 8)/c(1/2, 8). The small multiples: c(p, G)/c(1/2, G) for G = 2, 4, 8, 16, 32, 64 (2, 8, 32 in quick mode), one panel per estimator. Estimators that read a per-token feature (ADORA, COPO, GTPO, OPO: lengths, final answers, token entropies) receive |s(a)|² as a stand-in (`feature_substitute`); their curves, titled "given the stand-in", describe the substitute, not the method. At p = 1/2 both arms have the same |s|², so the ADORA and COPO curves jump there: this bandit's artefact. In those panels the dashed black curve is the same entry on the sequence testbed with its paper's feature (the answer-filler pass/fail task of `sims.atlas.testbed_task`, real lengths, token entropies and answers; c = E[ĝ]·∇J/|∇J|², G = 8): the method's own curve, beside the stand-in's. Entries that read the rewards only have the bandit's curve on the testbed exactly (`sequences.atlas.reward_only_scale`).
"""

from __future__ import annotations

import numpy as np

from paper_figs import style
from sims import atlas, estimators
from sims.engines import binary

SEED = 0
CLAIMS = ["atlas.registry.*", "atlas.large_group_limits", "atlas.bnpo_grpo", "estimators.binary_reward_scale",
          "sequences.atlas.*"]
GROUPS = [2, 4, 8, 16, 32, 64]
GROUPS_QUICK = [2, 8, 32]


def curves(quick: bool) -> dict:
    ps = np.linspace(0.02, 0.98, 13 if quick else 97)
    names = list(estimators.REGISTRY)
    out = {"p": ps, "G8": {}, "by_G": {}}
    out["testbed"] = {}
    for name in names:
        out["G8"][name] = binary.scale_curve(estimators.get(name), ps, 8)
        if estimators.get(name).feature_substitute:
            out["testbed"][name] = atlas.testbed_scale(estimators.get(name), ps, 8)["c"]
        out["by_G"][name] = {g: binary.scale_curve(estimators.get(name), ps, g) for g in (GROUPS_QUICK if quick else GROUPS)
                             if g >= estimators.get(name).min_group}
    return out


def _at_least_a_decade(ax) -> None:
    """Flat curves (c ≡ const up to rounding) would otherwise zoom into float64 noise."""
    lo, hi = ax.get_ylim()
    if hi / lo < 10:
        mid = np.sqrt(lo * hi)
        ax.set_ylim(mid / np.sqrt(10), mid * np.sqrt(10))


def make(quick: bool) -> "Path":  # noqa: F821
    data = curves(quick)
    ps, names = data["p"], list(data["G8"])
    ncol = 4
    nrow = 1 + -(-len(names) // ncol)
    with style.figure(nrow, ncol, figsize=(16.0, 3.2 * nrow)) as (fig, axes):
        top = axes[0]
        gs = top[0].get_gridspec()
        for ax in top:
            ax.remove()
        ax_a, ax_b = fig.add_subplot(gs[0, :2]), fig.add_subplot(gs[0, 2:])
        for i, name in enumerate(names):
            c = data["G8"][name]
            color, ls = style.PALETTE[i % len(style.PALETTE)], ["-", "--", ":"][i // len(style.PALETTE) % 3]
            ax_a.plot(ps, np.where(c > 0, c, np.nan), color=color, ls=ls, lw=1.4, label=name)
            mid = c[np.argmin(np.abs(ps - 0.5))]
            ax_b.plot(ps, c / mid if mid > 0 else np.nan * c, color=color, ls=ls, lw=1.4, label=name)
        ax_a.set_yscale("log")
        ax_a.set_xlabel("pass rate p")
        ax_a.set_ylabel("c(p, 8)")
        ax_a.set_title("(a) E[ĝ] = c(p, G)·∇p at G = 8")
        ax_a.legend(fontsize=6, ncol=2)
        ax_b.set_yscale("log")
        ax_b.set_ylim(1e-3, 1e3)
        ax_b.set_xlabel("pass rate p")
        ax_b.set_ylabel("c(p, 8) / c(1/2, 8)")
        ax_b.set_title("(b) shape: which prompts each estimator favours")
        for j, name in enumerate(names):
            ax = axes[1 + j // ncol][j % ncol]
            for k, (g, c) in enumerate(data["by_G"][name].items()):
                mid = c[np.argmin(np.abs(ps - 0.5))]
                ax.plot(ps, c / mid if mid > 0 else np.nan * c, color=style.PALETTE[k], lw=1.2, label=f"G={g}")
            if name in data["testbed"]:
                c = data["testbed"][name]
                mid = c[np.argmin(np.abs(ps - 0.5))]
                ax.plot(ps, np.where(c > 0, c / mid, np.nan) if mid > 0 else np.nan * c, color="black", ls="--",
                        lw=1.4, label="testbed, G=8,\npaper's feature")
                ax.legend(fontsize=6)
            ax.set_yscale("log")
            _at_least_a_decade(ax)
            stand_in = estimators.get(name).feature_substitute
            ax.set_title(name + (" (given the stand-in)" if stand_in else ""), fontsize=9)
            ax.set_xlabel("p", fontsize=8)
            if j == 0:
                ax.legend(fontsize=6)
        for j in range(len(names), (nrow - 1) * ncol):
            axes[1 + j // ncol][j % ncol].remove()
        payload = {"seed": SEED, "claims": CLAIMS, "p": style.rounded(ps),
                   "c_G8": {n: style.rounded(c) for n, c in data["G8"].items()},
                   "c_by_G": {n: {str(g): style.rounded(c) for g, c in d.items()} for n, d in data["by_G"].items()},
                   "stand_ins": {n: estimators.get(n).feature_substitute for n in names
                                 if estimators.get(n).feature_substitute},
                   "c_testbed_G8": {n: style.rounded(c) for n, c in data["testbed"].items()},
                   "testbed": atlas.TESTBED_NOTE,
                   "note": "two-armed pass/fail bandit, exact; c = E[ĝ]_1/∇p_1"}
        return style.save(fig, "estimator_atlas", payload)
