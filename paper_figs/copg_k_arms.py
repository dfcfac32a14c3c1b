"""CoPG on K-armed bandits: final regret against the distance of the logging laws from π*.

K = 8 arms with rewards R ~ U(0, 3)^K (drawn once), β = 0.5, uniform π_ref; each problem has its
own logging laws μ1, μ2, each a random mixture (1 − t)π* + t·Dirichlet(1) floored at 1e-3
(`bandits.copg.random_problems`). The x-axis is ½(TV(μ1, π*) + TV(μ2, π*)).
Panel (a): the population limit — the regret where each method's exact expected update comes to
rest (`bandits.copg.fixed_points`). Panel (b): the paper's finite budget — 10⁴ logged pairs, Adam
lr 1e-3, batch 512, 100 epochs from π_ref — mean final regret over seeds with a 95% t-interval.
Off-policy PG appears with its three baselines: b = 0, the paper's value baseline E_π[R], and the
lab's soft value J_β(π). Series that coincide (CoPG, DPO and the soft-value PG all sit at π* in
the population limit) are drawn as hollow markers of different sizes, dodged slightly along x,
and named in a note on the panel; the legend sits below the panels. The JSON holds every number.
"""

from __future__ import annotations

import numpy as np

import sims  # noqa: F401  (float64)
from bandits import copg as C
from paper_figs import style

SEED = 0
CLAIMS = ["copg.population_stationary", "copg.pg_no_baseline_optimum", "copg.pg_value_baseline_optimum",
          "copg.pg_soft_value_baseline_stationary", "copg.ipo_optimum", "copg.dpo_consistent"]
K, BETA, REWARD_SCALE = 8, 0.5, 3.0
LABELS = {"copg": "CoPG", "pg": "off-policy PG (b = 0)", "pg_value": "off-policy PG, b = E_π[R] (paper)",
          "pg_soft_value": "off-policy PG, b = J_β(π) (lab)", "ipo": "IPO", "dpo": "DPO"}
MARKERS = {"copg": "o", "pg": "s", "pg_value": "^", "pg_soft_value": "P", "ipo": "D", "dpo": "v"}
# Series that coincide are drawn as hollow markers of decreasing size (concentric where equal),
# slightly dodged along x, and named in a note on the panel.
SIZES = {"copg": 9, "pg": 5, "pg_value": 5, "pg_soft_value": 6.5, "ipo": 5, "dpo": 4}
COINCIDE_TOL = 1e-3  # relative to the panel's range


def config(quick: bool) -> dict:
    return {"problems": 16 if quick else 40, "seeds": 8 if quick else 16,
            "epochs": 100, "pairs": C.DEFAULTS["pairs"], "batch": C.DEFAULTS["batch"],
            "lr": C.DEFAULTS["lr"]}


def compute(quick: bool) -> dict:
    cfg = config(quick)
    problems = C.random_problems(SEED, K, cfg["problems"], beta=BETA, reward_scale=REWARD_SCALE)
    distance = np.asarray(C.distance_from_optimum(problems))
    order = np.argsort(distance, kind="stable")
    seeds = SEED * 10_000 + np.arange(cfg["seeds"])
    out = {"config": {**cfg, "K": K, "beta": BETA, "reward_scale": REWARD_SCALE, "seed": SEED},
           "rewards": style.rounded(problems.rewards[0]), "pi_star": style.rounded(C.optimal_policy(problems)[0]),
           "distance": style.rounded(distance[order]),
           "start_regret": style.rounded(C.regret(problems.log_ref[0], problems)[0]), "methods": {}}
    for m in C.METHODS:
        fp = C.fixed_points(m, problems)
        run = C.train_problems(m, problems, seeds, pairs=cfg["pairs"], epochs=cfg["epochs"],
                               batch=cfg["batch"], lr=cfg["lr"])
        mean, lo, hi = C.mean_ci(run.regret[:, :, -1], axis=1)
        out["methods"][m] = {
            "label": LABELS[m],
            "population_regret": style.rounded(np.asarray(fp.regret)[order]),
            "population_residual_max": style.rounded(np.max(fp.grad_norm), 3),
            "final_regret_mean": style.rounded(mean[order]), "final_regret_ci95_lo": style.rounded(lo[order]),
            "final_regret_ci95_hi": style.rounded(hi[order]),
        }
    return out


def coincident(series: dict, tol: float = COINCIDE_TOL) -> dict:
    """For each series that equals an earlier one to `tol` (relative to the range of all of
    them), the label of that earlier series: {method: method it coincides with}."""
    values = {m: np.asarray(v, dtype=np.float64) for m, v in series.items()}
    span = max(float(np.ptp(np.concatenate(list(values.values())))), 1e-300)
    out, names = {}, list(values)
    for i, m in enumerate(names):
        for other in names[:i]:
            if other not in out and np.max(np.abs(values[m] - values[other])) <= tol * span:
                out[m] = other
                break
    return out


def _note(ax, pairs: dict, labels: dict) -> None:
    if not pairs:
        return
    groups: dict = {}
    for m, other in pairs.items():
        groups.setdefault(other, [other]).append(m)
    text = "\n".join("coincide: " + ", ".join(labels[m] for m in g) for g in groups.values())
    ax.text(0.02, 0.97, text, transform=ax.transAxes, fontsize=7, va="top",
            bbox={"facecolor": "white", "edgecolor": "0.8", "alpha": 0.9})


def make(quick: bool) -> "Path":  # noqa: F821
    data = compute(quick)
    x = np.asarray(data["distance"])
    methods = data["methods"]
    labels = {m: d["label"] for m, d in methods.items()}
    dodge = 0.006 * float(np.ptp(x) or 1.0)
    with style.figure(1, 2, figsize=(12.0, 5.2)) as (fig, axes):
        same = [coincident({m: d["population_regret"] for m, d in methods.items()}),
                coincident({m: d["final_regret_mean"] for m, d in methods.items()})]
        for i, (m, d) in enumerate(methods.items()):
            c = style.PALETTE[i]
            off = (i - (len(methods) - 1) / 2) * dodge
            common = dict(color=c, ms=SIZES[m], lw=1, mfc="none", mew=1.2)
            axes[0].plot(x + off, d["population_regret"], MARKERS[m] + "-", label=d["label"], **common)
            mean = np.asarray(d["final_regret_mean"])
            err = [mean - np.asarray(d["final_regret_ci95_lo"]),
                   np.asarray(d["final_regret_ci95_hi"]) - mean]
            axes[1].errorbar(x + off, mean, yerr=err, fmt=MARKERS[m] + "-", capsize=2, **common)
        axes[0].set_title(f"(a) population limit (fixed points), K = {K}, β = {BETA:g}", fontsize=9)
        axes[0].set_ylabel("regret  J_β(π*) − J_β(π)")
        axes[1].set_title(f"(b) 10⁴ pairs, 100 epochs, {data['config']['seeds']} seeds: mean, 95% CI",
                          fontsize=9)
        axes[1].set_yscale("log")
        for ax, pairs in zip(axes, same):
            ax.axhline(data["start_regret"], color="k", ls=":", lw=0.8)
            ax.set_xlabel("½ (TV(μ1, π*) + TV(μ2, π*))  (series dodged slightly along x)")
            _note(ax, pairs, labels)
        axes[0].annotate("regret of π_ref", (x[-1], data["start_regret"]), fontsize=7, ha="right",
                         xytext=(0, 3), textcoords="offset points")
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8,
                   bbox_to_anchor=(0.5, -0.02))
        fig.subplots_adjust(bottom=0.2)
        data["coincident"] = {"population": same[0], "sampled": same[1]}
        return style.save(fig, "copg_k_arms", data)


if __name__ == "__main__":
    print(make(quick=True))
