"""Transformer policy: mean reward against samples for five estimators, with 95% CIs over seeds.

`pglab train`'s trainer on the `parity` task (4 bits, one answer token; the random
initialisation answers correctly ≈ 1/14 of the time), P = 8 prompts × G = 8 completions per
step, Adam, the `seq-mean-token-sum` aggregation, for REINFORCE (b = 0), RLOO, GRPO, Dr. GRPO
(the group-mean advantage with the `seq-mean-token-sum-norm` aggregation) and the leave-one-out
optimal baseline (exact |s|² per sequence). Lines: the mean over seeds of each step's sampled
mean reward (smoothed over 5 steps); bands: percentile bootstrap over seeds.
"""

from __future__ import annotations

import numpy as np

from paper_figs import style
from sims.scaleup import trainer as T
from sims.train import bootstrap_mean_ci

SEED = 0
CLAIMS = []
RUNS = [("reinforce", "reinforce", "seq-mean-token-sum"), ("rloo", "rloo", "seq-mean-token-sum"),
        ("grpo", "grpo", "seq-mean-token-sum"), ("Dr. GRPO", "grpo_mean", "seq-mean-token-sum-norm"),
        ("opt. baseline LOO", "optimal_baseline_loo", "seq-mean-token-sum")]


def _smooth(x, k=5):
    c = np.cumsum(np.pad(x, ((0, 0), (k - 1, 0)), mode="edge"), axis=1)
    return (c[:, k - 1:] - np.concatenate([np.zeros((x.shape[0], 1)), c[:, : -k]], axis=1)) / k


def make(quick: bool) -> "Path":  # noqa: F821
    steps, seeds = (16, 2) if quick else (120, 5)
    width, layers = (32, 1) if quick else (64, 2)
    curves = {}
    for label, est, agg in RUNS:
        runs = [T.train(T.TrainConfig(task="parity", estimator=est, loss_agg=agg, steps=steps, seed=SEED + s,
                                      width=width, layers=layers, heads=2 if quick else 4, lr=1e-2),
                        evaluate=False).rewards for s in range(seeds)]
        curves[label] = np.asarray(runs)
    samples = 64 * np.arange(1, steps + 1)
    with style.figure(figsize=(6.4, 4.2)) as (fig, ax):
        summary = {}
        for i, (label, x) in enumerate(curves.items()):
            mean, lo, hi = bootstrap_mean_ci(_smooth(x), seed=SEED)
            ax.plot(samples, mean, color=style.PALETTE[i], label=label)
            ax.fill_between(samples, lo, hi, color=style.PALETTE[i], alpha=0.15)
            summary[label] = {"mean": style.rounded(mean), "lo": style.rounded(lo), "hi": style.rounded(hi)}
        ax.set_xlabel("completions sampled")
        ax.set_ylabel("mean reward (sampled)")
        ax.set_title(f"parity, P = 8, G = 8, {seeds} seeds")
        ax.legend(fontsize=8)
        data = {"task": "parity", "steps": steps, "seeds": seeds, "width": width, "layers": layers,
                "samples": samples.tolist(), "rewards": {k: style.rounded(v) for k, v in curves.items()},
                "smoothed_ci": summary, "claims": CLAIMS}
        return style.save(fig, "scaleup_curves", data)
