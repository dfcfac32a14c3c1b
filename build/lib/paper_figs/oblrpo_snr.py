"""The estimated SNR and the OBLR-PO step over training on a multi-prompt bandit ensemble.

The ensemble, batch and group of `oblrpo_learning_curves` (32 prompts × 8 answers, B = G = 8).
OBLR-PO runs with η_max ∈ {32, 128, 256}; at every step the pooled SNR̂ of the batch
(U-statistic over per-sample terms for |∇J|², sample covariance trace for V; `sims.oblrpo`) sets
η_t = η_max·SNR̂/(1+SNR̂). Panels: the median SNR̂ over seeds (interquartile band), the step
fraction η_t/η_max (mean, 95% bootstrap band), and the exact gradient norm |∇J_p(θ_p)| of the
selected prompts (mean, 95% bootstrap band).
"""

from __future__ import annotations

import numpy as np

from bandits import ensemble as ens
from paper_figs import style
from paper_figs.oblrpo_learning_curves import ARMS, BATCH, GROUP, PROMPTS
from sims import train

SEED = 0
CLAIMS = ["oblrpo.u_statistic", "oblrpo.optimal_step"]
ETA_MAX = [32.0, 128.0, 256.0]


def make(quick: bool) -> "Path":  # noqa: F821
    steps, seeds, n_boot = (150, 32, 300) if quick else (400, 64, 2000)
    e = ens.make_ensemble(SEED, PROMPTS, ARMS)
    data = {"ensemble_seed": SEED, "prompts": PROMPTS, "arms": ARMS, "batch": BATCH, "group": GROUP,
            "steps": steps, "seeds": seeds, "runs": {}, "claims": CLAIMS}
    with style.figure(1, 3, figsize=(15.0, 4.2)) as (fig, axes):
        for i, eta_max in enumerate(ETA_MAX):
            res = train.train(e, "optimal_baseline_loo", steps=steps, batch=BATCH, group=GROUP,
                              seeds=seeds, seed=SEED, lr=eta_max, step_rule="snr")
            x = res.samples[1:]
            snr = np.where(np.isinf(res.snr), np.nan, res.snr)
            q25, q50, q75 = np.nanquantile(snr, [0.25, 0.5, 0.75], axis=0)
            frac = res.step_sizes / eta_max
            f_mean, f_lo, f_hi = train.bootstrap_mean_ci(frac, n_boot=n_boot, seed=SEED)
            g_mean, g_lo, g_hi = train.bootstrap_mean_ci(res.selected_grad_norm, n_boot=n_boot, seed=SEED)
            c = style.PALETTE[i]
            label = f"η_max = {eta_max:g}"
            axes[0].plot(x, q50, color=c, lw=1, label=label)
            axes[0].fill_between(x, q25, q75, color=c, alpha=0.15, lw=0)
            axes[1].plot(x, f_mean, color=c, lw=1, label=label)
            axes[1].fill_between(x, f_lo, f_hi, color=c, alpha=0.2, lw=0)
            axes[2].plot(x, g_mean, color=c, lw=1, label=label)
            axes[2].fill_between(x, g_lo, g_hi, color=c, alpha=0.2, lw=0)
            data["runs"][f"{eta_max:g}"] = {
                "snr_median": [style.rounded(v) for v in q50[::5]],
                "snr_iqr": [[style.rounded(a), style.rounded(b)] for a, b in zip(q25[::5], q75[::5])],
                "step_fraction_mean": [style.rounded(v) for v in f_mean[::5]],
                "selected_grad_norm_mean": [style.rounded(v) for v in g_mean[::5]],
                "fraction_of_steps_with_snr_le_0": style.rounded(np.mean(res.snr <= 0)),
                "final_reward_fraction": style.rounded(np.mean(res.expected_reward[:, -1]) / res.optimum),
            }
        data["samples"] = [style.rounded(v) for v in res.samples[1:][::5]]
        axes[0].axhline(0.0, color="k", lw=0.8)
        axes[0].set_ylabel("pooled SNR̂ (median, IQR)")
        axes[1].set_ylabel("η_t / η_max = SNR̂/(1+SNR̂), clipped")
        axes[2].set_ylabel("|∇J_p(θ_p)| of selected prompts (exact)")
        for ax in axes:
            ax.set_xlabel("rollouts")
        axes[0].set_title("estimated SNR over training")
        axes[1].set_title("OBLR-PO step fraction")
        axes[2].set_title("exact gradient norm")
        axes[1].legend(fontsize=8)
        return style.save(fig, "oblrpo_snr", data)
