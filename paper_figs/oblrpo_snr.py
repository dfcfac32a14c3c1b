"""The SNR estimate against the exact SNR, and the OBLR-PO step and gradient norm over training.

Left: what the step rule measures. On random 4-armed Bernoulli bandits (success probabilities
~ Beta(1, 3), logits κ·N(0, 1) with κ ~ U(0, 3)) at fixed parameters, the pooled SNR̂ of a batch
of B = 8 groups of G = 8 (U-statistic over per-sample terms for |∇J|², sample covariance trace
for V; `sims.oblrpo.batch_snr`, the leave-one-out optimal baseline) against the exact SNR
|∇J|²/tr Cov[ĝ] of one group (exact engine): median over independent batches with a 10–90%
band; the diagonal is a perfect estimate. Middle and right: OBLR-PO on the ensemble of
`oblrpo_learning_curves` (32 prompts × 8 answers, B = G = 8) with η_max ∈ {32, 128, 256}, where
η_t = η_max·SNR̂/(1+SNR̂): the step fraction η_t/η_max (mean over seeds, moving average over
10 steps, 95% bootstrap band) and the exact gradient norm |∇J_p(θ_p)| of the selected prompts
(mean, 95% bootstrap band).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bandits import ensemble as ens
from bandits import rewards as R
from paper_figs import style
from paper_figs.oblrpo_learning_curves import ARMS, BATCH, GROUP, PROMPTS
from sims import estimators, oblrpo, train
from sims.engines import exact

SEED = 0
CLAIMS = ["oblrpo.u_statistic", "oblrpo.optimal_step"]
ETA_MAX = [32.0, 128.0, 256.0]
ESTIMATOR = "optimal_baseline_loo"
CAL_ARMS, SMOOTH = 4, 10


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _pooled_snr(logits, success, draws, batch, group, key):
    """SNR̂ of `draws` independent batches of `batch` groups on one bandit; (draws,)."""
    est = estimators.get(ESTIMATOR)
    k_arms, k_rewards = jax.random.split(key)
    arms = jax.random.categorical(k_arms, jax.nn.log_softmax(logits), shape=(draws, batch, group))
    rewards = (jax.random.uniform(k_rewards, arms.shape) < success[arms]).astype(logits.dtype)
    terms = jax.vmap(jax.vmap(lambda a, r: oblrpo.group_terms(est, {}, logits, a, r)))(arms, rewards)
    return jax.vmap(oblrpo.batch_snr)(terms)


def snr_calibration(seed: int, instances: int, draws: int) -> dict:
    """Exact SNR and the quantiles (10, 50, 90%) of the pooled SNR̂ on random bandits."""
    rng = np.random.default_rng(seed)
    exact_snr, quantiles = [], []
    for i in range(instances):
        success = rng.beta(1.0, 3.0, CAL_ARMS)
        logits = rng.uniform(0.0, 3.0) * rng.normal(size=CAL_ARMS)
        m = exact.moments(estimators.get(ESTIMATOR), logits, R.bernoulli(success), GROUP)
        grad = np.asarray(m.true_gradient)
        exact_snr.append(float(grad @ grad / m.trace_var))
        snr = np.asarray(_pooled_snr(jnp.asarray(logits), jnp.asarray(success), draws, BATCH, GROUP,
                                     jax.random.fold_in(jax.random.key(seed), i)))
        quantiles.append(np.quantile(np.where(np.isinf(snr), np.nan, snr), [0.1, 0.5, 0.9]).tolist())
    order = np.argsort(exact_snr)
    return {"exact_snr": np.asarray(exact_snr)[order], "quantiles": np.asarray(quantiles)[order]}


def _moving_average(x, window):
    kernel = np.ones(window) / window
    return np.convolve(np.pad(x, (window // 2, window - 1 - window // 2), mode="edge"), kernel, "valid")


def make(quick: bool) -> "Path":  # noqa: F821
    steps, seeds, n_boot = (150, 32, 300) if quick else (400, 64, 2000)
    instances, draws = (12, 2000) if quick else (24, 10000)
    cal = snr_calibration(SEED, instances, draws)
    e = ens.make_ensemble(SEED, PROMPTS, ARMS)
    data = {"ensemble_seed": SEED, "prompts": PROMPTS, "arms": ARMS, "batch": BATCH, "group": GROUP,
            "steps": steps, "seeds": seeds, "runs": {}, "claims": CLAIMS,
            "calibration": {"arms": CAL_ARMS, "draws": draws,
                            "exact_snr": style.rounded(cal["exact_snr"]),
                            "estimate_q10_q50_q90": style.rounded(cal["quantiles"])}}
    with style.figure(1, 3, figsize=(15.0, 4.4)) as (fig, axes):
        x, q = cal["exact_snr"], cal["quantiles"]
        top = float(x.max()) * 1.1
        axes[0].plot([0, top], [0, top], color="k", lw=0.8, ls="--", label="SNR̂ = SNR")
        axes[0].set_xlim(0, top)
        axes[0].errorbar(x, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt="o", ms=4,
                         color=style.PALETTE[0], ecolor=style.PALETTE[0], elinewidth=1, alpha=0.8,
                         capsize=2, label=f"pooled SNR̂, B = {BATCH}: median, 10–90%")
        axes[0].axhline(0.0, color="k", lw=0.5)
        axes[0].set_xlabel("exact SNR = |∇J|²/tr Cov[ĝ] (one group, G = 8)")
        axes[0].set_ylabel("estimated SNR̂ (pooled over the batch)")
        axes[0].set_title("what the step rule sees: SNR̂ vs exact SNR")
        axes[0].legend(fontsize=8, loc="upper left")
        for i, eta_max in enumerate(ETA_MAX):
            res = train.train(e, estimators.get(ESTIMATOR), steps=steps, batch=BATCH, group=GROUP,
                              seeds=seeds, seed=SEED, lr=eta_max, step_rule="snr")
            rollouts = res.samples[1:]
            frac = np.apply_along_axis(_moving_average, 1, res.step_sizes / eta_max, SMOOTH)
            f_mean, f_lo, f_hi = train.bootstrap_mean_ci(frac, n_boot=n_boot, seed=SEED)
            g_mean, g_lo, g_hi = train.bootstrap_mean_ci(res.selected_grad_norm, n_boot=n_boot, seed=SEED)
            c = style.PALETTE[i + 1]
            label = f"η_max = {eta_max:g}"
            axes[1].plot(rollouts, f_mean, color=c, lw=1.2, label=label)
            axes[1].fill_between(rollouts, f_lo, f_hi, color=c, alpha=0.2, lw=0)
            axes[2].plot(rollouts, g_mean, color=c, lw=1.2, label=label)
            axes[2].fill_between(rollouts, g_lo, g_hi, color=c, alpha=0.2, lw=0)
            snr = np.where(np.isinf(res.snr), np.nan, res.snr)
            data["runs"][f"{eta_max:g}"] = {
                "snr_median": [style.rounded(v) for v in np.nanmedian(snr, axis=0)[::5]],
                "step_fraction_mean": [style.rounded(v) for v in f_mean[::5]],
                "selected_grad_norm_mean": [style.rounded(v) for v in g_mean[::5]],
                "fraction_of_steps_with_snr_le_0": style.rounded(np.mean(res.snr <= 0)),
                "final_reward_fraction": style.rounded(np.mean(res.expected_reward[:, -1]) / res.optimum),
            }
        data["samples"] = [style.rounded(v) for v in res.samples[1:][::5]]
        axes[1].set_ylabel(f"η_t / η_max = SNR̂/(1+SNR̂), {SMOOTH}-step average")
        axes[2].set_ylabel("|∇J_p(θ_p)| of selected prompts (exact)")
        for ax in axes[1:]:
            ax.set_xlabel("rollouts")
            ax.set_ylim(bottom=0)
        axes[1].set_title("OBLR-PO step fraction over training")
        axes[2].set_title("exact gradient norm over training")
        axes[2].legend(fontsize=8)
        return style.save(fig, "oblrpo_snr", data)
