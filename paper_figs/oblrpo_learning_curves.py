"""Learning curves on a multi-prompt bandit ensemble: fixed-step estimators against OBLR-PO.

32 prompts × 8 answers, success probabilities ~ Beta(1, 3) (mostly hard prompts); each step
draws B = 8 prompts uniformly and G = 8 answers per prompt, so every method spends the same
B·G = 64 rollouts per step. Methods: REINFORCE (b = 0), RLOO, GRPO, Dr. GRPO (grpo_mean), the
leave-one-out optimal baseline with a fixed step, and OBLR-PO (the same baseline with the SNR
step η_t = clip(η_max·SNR̂/(1+SNR̂), 0, η_max), η_max equal to the fixed methods' step). Panels:
the exact ensemble reward J(Θ_t)/J* (mean over seeds, 95% bootstrap band) at a moderate common
step and at an aggressive one, and the samples each method needs to reach 90% of J* across a
sweep of steps (95% bootstrap CIs over seeds; open markers at the top: not reached within the
budget). The JSON holds every number.
"""

from __future__ import annotations

import numpy as np

from bandits import ensemble as ens
from paper_figs import style
from sims import estimators, train

SEED = 0
CLAIMS = ["oblrpo.optimal_step", "oblrpo.u_statistic", "oblrpo.loo_unbiased"]
PROMPTS, ARMS, BATCH, GROUP = 32, 8, 8, 8
MODERATE, AGGRESSIVE = 32.0, 256.0
METHODS = {  # label: (estimator, step rule)
    "REINFORCE": ("reinforce", "fixed"),
    "RLOO": ("rloo", "fixed"),
    "GRPO": ("grpo", "fixed"),
    "Dr. GRPO": ("grpo_mean", "fixed"),
    "optimal-baseline LOO": ("optimal_baseline_loo", "fixed"),
    "OBLR-PO": ("optimal_baseline_loo", "snr"),
}


def config(quick: bool) -> dict:
    return {"steps": 150 if quick else 400, "seeds": 32 if quick else 64,
            "sweep": [MODERATE, AGGRESSIVE] if quick else [16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            "n_boot": 300 if quick else 2000}


def run_all(quick: bool) -> tuple[dict, dict]:
    """{(label, lr): TrainResult} over the sweep, and the ensemble's summary."""
    cfg = config(quick)
    e = ens.make_ensemble(SEED, PROMPTS, ARMS)
    results = {}
    for label, (name, rule) in METHODS.items():
        for lr in cfg["sweep"]:
            results[(label, lr)] = train.train(e, estimators.get(name), steps=cfg["steps"], batch=BATCH, group=GROUP,
                                               seeds=cfg["seeds"], seed=SEED, lr=lr, step_rule=rule)
    return results, {"optimum": e.optimum, "initial": float(np.mean(e.success))}


def make(quick: bool) -> "Path":  # noqa: F821
    cfg = config(quick)
    results, info = run_all(quick)
    summary, curves = {}, {}
    for (label, lr), res in results.items():
        hit = train.samples_to_threshold(res, 0.9, n_boot=cfg["n_boot"], seed=SEED)
        mean, lo, hi = train.bootstrap_mean_ci(res.expected_reward / res.optimum,
                                               n_boot=cfg["n_boot"], seed=SEED)
        summary.setdefault(label, {})[f"{lr:g}"] = {
            "samples_to_90pct": style.rounded(hit["samples"]), "ci95": [style.rounded(x) for x in hit["ci"]],
            "reached_fraction_of_resamples": style.rounded(hit["reached"]),
            "final_reward_fraction": style.rounded(mean[-1]), "final_ci95": [style.rounded(lo[-1]), style.rounded(hi[-1])],
            "mean_step": style.rounded(float(np.mean(res.step_sizes))),
        }
        curves[(label, lr)] = (mean, lo, hi)
    samples = next(iter(results.values())).samples
    budget = float(samples[-1])

    def best(label):
        rows = [(v["samples_to_90pct"], lr) for lr, v in summary[label].items()
                if v["samples_to_90pct"] is not None]
        return None if not rows else {"lr": float(min(rows)[1]), "samples_to_90pct": min(rows)[0],
                                      "ci95": summary[label][min(rows)[1]]["ci95"]}

    headline = {
        setting: {label: summary[label][f"{lr:g}"] for label in METHODS}
        for setting, lr in (("moderate", MODERATE), ("aggressive", AGGRESSIVE))
    }
    with style.figure(1, 3, figsize=(15.0, 4.4)) as (fig, axes):
        for ax, (setting, lr) in zip(axes[:2], (("moderate", MODERATE), ("aggressive", AGGRESSIVE))):
            for i, label in enumerate(METHODS):
                mean, lo, hi = curves[(label, lr)]
                c = style.PALETTE[i]
                ax.plot(samples, mean, color=c, lw=2.0 if label == "OBLR-PO" else 1.2, label=label)
                ax.fill_between(samples, lo, hi, color=c, alpha=0.2, lw=0)
            ax.axhline(0.9, color="k", ls=":", lw=1)
            ax.set_xlabel("rollouts")
            ax.set_ylabel("J(Θ_t) / J*")
            ax.set_title(f"{setting} step η = {lr:g} (OBLR-PO: η_max)")
        axes[0].legend(fontsize=8, loc="lower right")
        ax = axes[2]
        sweep = cfg["sweep"]
        for i, label in enumerate(METHODS):
            xs = np.asarray(sweep) * 2.0 ** (0.06 * (i - 2.5))
            ys = [summary[label][f"{lr:g}"]["samples_to_90pct"] for lr in sweep]
            cis = [summary[label][f"{lr:g}"]["ci95"] for lr in sweep]
            c = style.PALETTE[i]
            for x, y, ci in zip(xs, ys, cis):
                if y is None:
                    ax.plot([x], [budget * 1.08], "o", mfc="none", color=c)
                    continue
                top = budget if ci[1] is None else ci[1]
                ax.errorbar([x], [y], yerr=[[y - ci[0]], [top - y]], fmt="o", color=c, ms=4, capsize=2)
            ax.plot([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None],
                    color=c, lw=1, label=label)
        ax.axhline(budget, color="k", ls=":", lw=1)
        ax.annotate("budget; open circles above it: not reached", (0.02, budget), xycoords=("axes fraction", "data"),
                    xytext=(0, -11), textcoords="offset points", fontsize=8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("step η (η_max for OBLR-PO)")
        ax.set_ylabel("rollouts to reach 0.9·J*")
        ax.set_title("rollouts to 90% of J* (95% CI)")
        data = {
            "ensemble": {"seed": SEED, "prompts": PROMPTS, "arms": ARMS, "beta": [1.0, 3.0],
                         "optimum": style.rounded(info["optimum"]), "mean_success": style.rounded(info["initial"])},
            "batch": BATCH, "group": GROUP, "steps": cfg["steps"], "seeds": cfg["seeds"],
            "budget_rollouts": budget, "threshold": "0.9·J*", "bootstrap_resamples": cfg["n_boot"],
            "moderate_step": MODERATE, "aggressive_step": AGGRESSIVE,
            "headline": headline,
            "best_over_sweep": {label: best(label) for label in METHODS},
            "sweep": summary,
            "curves": {f"{label} @ {lr:g}": [style.rounded(x, 6) for x in curves[(label, lr)][0][::10]]
                       for label in METHODS for lr in (MODERATE, AGGRESSIVE)},
            "curve_samples": [style.rounded(x) for x in samples[::10]],
            "claims": CLAIMS,
        }
        return style.save(fig, "oblrpo_learning_curves", data)
