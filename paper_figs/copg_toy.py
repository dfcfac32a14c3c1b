"""CoPG toy bandit: regret against epoch for CoPG, off-policy PG (no baseline, the paper's value baseline E_π[R], the soft value J_β(π)), IPO and DPO.

The paper's 3-armed experiment (Flet-Berliac et al. 2024; docs/design.md §4.4): R = (2.5, 2, 1), β = 0.5,
uniform π_ref, logged pairs y ~ μ1 = (0.1, 0.2, 0.7), y' ~ μ2 = (0.05, 0.05, 0.9) with
Bradley–Terry labels, 10⁴ pairs, Adam lr 1e-3, batch 512, 100 epochs, start at π_ref.
Panel (a): regret J_β(π*) − J_β(π) after every epoch — mean over seeds with a 95% t-interval
(solid, band), the same Adam budget on exact expected gradients (dashed), and where the method
comes to rest in the population limit (dotted, only where that regret is > 0). The JSON also
records the exact-gradient run at Adam lr 1e-2 (2000 steps), which converges.
Panel (b): the final policies (mean over seeds) against π*. The JSON holds every number.
"""

from __future__ import annotations

import numpy as np

import sims  # noqa: F401  (float64)
from bandits import copg as C
from paper_figs import style

SEED = 0
CLAIMS = ["copg.population_stationary", "copg.toy_population_limit", "copg.pg_no_baseline_optimum",
          "copg.pg_value_baseline_optimum", "copg.pg_soft_value_baseline_stationary", "copg.ipo_optimum",
          "copg.dpo_consistent"]
POPULATION_LR = 1e-2  # exact-gradient runs to convergence: Adam lr 1e-2, same number of steps
LABELS = {"copg": "CoPG", "pg": "off-policy PG (b = 0)", "pg_value": "off-policy PG, b = E_π[R] (paper)",
          "pg_soft_value": "off-policy PG, b = J_β(π) (lab)", "ipo": "IPO", "dpo": "DPO"}


def config(quick: bool) -> dict:
    return {"seeds": 16 if quick else 64, **C.DEFAULTS}


def compute(quick: bool) -> dict:
    """Every curve and summary of the figure, rounded for a byte-stable JSON."""
    cfg = config(quick)
    problem = C.toy_problem()
    seeds = SEED * 10_000 + np.arange(cfg["seeds"])
    spe = -(-cfg["pairs"] // cfg["batch"])
    out = {"config": {**cfg, "seed_base": SEED, "steps_per_epoch": spe, **{k: list(v) if isinstance(
        v, tuple) else v for k, v in C.TOY.items()}},
           "pi_star": style.rounded(C.optimal_policy(problem)), "J_star": style.rounded(C.optimal_value(problem)),
           "start_regret": style.rounded(C.regret(problem.log_ref, problem)), "methods": {}}
    for m in C.METHODS:
        run = C.train(m, problem, seeds, pairs=cfg["pairs"], epochs=cfg["epochs"], batch=cfg["batch"],
                      lr=cfg["lr"])
        mean, lo, hi = C.mean_ci(run.regret, axis=0)
        exact = C.train_exact(m, problem, epochs=cfg["epochs"], steps_per_epoch=spe, lr=cfg["lr"])
        fp = C.fixed_point(m, problem)
        fast = C.train_exact(m, problem, epochs=cfg["epochs"], steps_per_epoch=spe, lr=POPULATION_LR)
        final_pi = np.exp(run.logits[:, -1]) / np.exp(run.logits[:, -1]).sum(-1, keepdims=True)
        out["methods"][m] = {
            "label": LABELS[m],
            "regret_mean": style.rounded(mean), "regret_ci95_lo": style.rounded(lo), "regret_ci95_hi": style.rounded(hi),
            "final_regret": {"mean": style.rounded(mean[-1]), "ci95": [style.rounded(lo[-1]), style.rounded(hi[-1])]},
            "final_pi_mean": style.rounded(final_pi.mean(0)),
            "exact_regret": style.rounded(exact.regret),
            "fixed_point": {"pi": style.rounded(fp.pi), "regret": style.rounded(fp.regret), "residual": style.rounded(fp.grad_norm, 3)},
            "population_run": {"lr": POPULATION_LR, "steps": cfg["epochs"] * spe,
                               "final_regret": style.rounded(fast.regret[-1])},
        }
    return out


def make(quick: bool) -> "Path":  # noqa: F821
    data = compute(quick)
    epochs = np.arange(data["config"]["epochs"] + 1)
    with style.figure(1, 2, figsize=(12.0, 4.4), gridspec_kw={"width_ratios": [1.6, 1.0]}) as (fig, axes):
        ax = axes[0]
        for i, (_m, d) in enumerate(data["methods"].items()):
            c = style.PALETTE[i]
            ax.plot(epochs, d["regret_mean"], color=c, lw=1.6, label=d["label"])
            ax.fill_between(epochs, d["regret_ci95_lo"], d["regret_ci95_hi"], color=c, alpha=0.25, lw=0)
            ax.plot(epochs, d["exact_regret"], color=c, lw=1.0, ls="--")
            if d["fixed_point"]["regret"] > 1e-9:
                ax.axhline(d["fixed_point"]["regret"], color=c, lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("epoch (20 Adam steps each)")
        ax.set_ylabel("regret  J_β(π*) − J_β(π)")
        ax.set_title(f"(a) toy bandit, {data['config']['seeds']} seeds: mean, 95% CI; "
                     "dashed: exact gradients; dotted: limit", fontsize=9)
        ax.legend(fontsize=8, loc="lower left")
        ax = axes[1]
        arms = np.arange(3)
        n = len(data["methods"])
        width = 0.8 / (n + 1)
        for i, (_m, d) in enumerate(data["methods"].items()):
            ax.bar(arms + (i - n / 2) * width, d["final_pi_mean"], width, color=style.PALETTE[i],
                   label=d["label"])
        ax.bar(arms + (n / 2) * width, data["pi_star"], width, color="k", alpha=0.6, label="π*")
        ax.set_xticks(arms, [f"arm {a + 1}\nR={r:g}" for a, r in enumerate(data["config"]["rewards"])])
        ax.set_ylabel("final π (mean over seeds)")
        ax.set_title("(b) final policies after 100 epochs", fontsize=9)
        ax.legend(fontsize=7)
        return style.save(fig, "copg_toy", data)


if __name__ == "__main__":
    print(make(quick=True))
