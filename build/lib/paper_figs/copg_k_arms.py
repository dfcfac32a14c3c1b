"""CoPG on K-armed bandits: final regret against the distance of the logging laws from π*.

K = 8 arms with rewards R ~ U(0, 3)^K (drawn once), β = 0.5, uniform π_ref; each problem has its
own logging laws μ1, μ2, each a random mixture (1 − t)π* + t·Dirichlet(1) floored at 1e-3
(`bandits.copg.random_problems`). The x-axis is ½(TV(μ1, π*) + TV(μ2, π*)).
Panel (a): the population limit — the regret where each method's exact expected update comes to
rest (`bandits.copg.fixed_points`). Panel (b): the paper's finite budget — 10⁴ logged pairs, Adam
lr 1e-3, batch 512, 100 epochs from π_ref — mean final regret over seeds with a 95% t-interval.
The JSON holds every number.
"""

from __future__ import annotations

import numpy as np

import sims  # noqa: F401  (float64)
from bandits import copg as C
from paper_figs import style

SEED = 0
CLAIMS = ["copg.population_stationary", "copg.pg_offpolicy_optimum", "copg.pg_value_stationary",
          "copg.ipo_optimum", "copg.dpo_consistent"]
K, BETA, REWARD_SCALE = 8, 0.5, 3.0
LABELS = {"copg": "CoPG", "pg": "off-policy PG", "pg_value": "off-policy PG + value baseline",
          "ipo": "IPO", "dpo": "DPO"}
MARKERS = {"copg": "o", "pg": "s", "pg_value": "^", "ipo": "D", "dpo": "v"}


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


def make(quick: bool) -> "Path":  # noqa: F821
    data = compute(quick)
    x = np.asarray(data["distance"])
    with style.figure(1, 2, figsize=(12.0, 4.4)) as (fig, axes):
        for i, (m, d) in enumerate(data["methods"].items()):
            c = style.PALETTE[i]
            axes[0].plot(x, d["population_regret"], MARKERS[m] + "-", color=c, ms=4, lw=1,
                         label=d["label"])
            mean = np.asarray(d["final_regret_mean"])
            err = [mean - np.asarray(d["final_regret_ci95_lo"]),
                   np.asarray(d["final_regret_ci95_hi"]) - mean]
            axes[1].errorbar(x, mean, yerr=err, fmt=MARKERS[m] + "-", color=c, ms=4, lw=1, capsize=2,
                             label=d["label"])
        axes[0].set_title(f"(a) population limit (fixed points), K = {K}, β = {BETA:g}", fontsize=9)
        axes[0].set_ylabel("regret  J_β(π*) − J_β(π)")
        axes[1].set_title(f"(b) 10⁴ pairs, 100 epochs, {data['config']['seeds']} seeds: mean, 95% CI",
                          fontsize=9)
        axes[1].set_yscale("log")
        for ax in axes:
            ax.axhline(data["start_regret"], color="k", ls=":", lw=0.8)
            ax.set_xlabel("½ (TV(μ1, π*) + TV(μ2, π*))")
        axes[0].legend(fontsize=8, loc="center left")
        axes[0].annotate("regret of π_ref", (x[0], data["start_regret"]), fontsize=7,
                         xytext=(0, 3), textcoords="offset points")
        return style.save(fig, "copg_k_arms", data)


if __name__ == "__main__":
    print(make(quick=True))
