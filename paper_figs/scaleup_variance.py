"""Transformer policy: gradient variance per estimator and the difficulty bias, beside the bandit theory.

A one-layer transformer (width 32) on the `copy` task, one prompt, G = 8. Parameters are fixed at
snapshots of a supervised warm start, so the prompt's pass rate J = π(y* | x) (exact: one answer
token) sweeps from the random initialisation's ≈ 1/14 upwards. At each snapshot, many independent
groups give every registry estimator's group gradient ĝ_e = (1/G) Σ A_i s_i on the same
completions, with exact per-sequence scores. Left: tr Cov[ĝ_e] relative to RLOO (± 1 s.e.) at
the snapshot whose J is nearest 0.3, beside the exact engine's values for a two-armed bandit of
the same pass rate (logits log J, log(1 − J); reward 1 on the first arm). Right: the scale of the
mean gradient along the exact ∇J, ĉ_e = ⟨mean ĝ_e, ∇J⟩/|∇J|² (± 1 s.e.), against J, beside the
exact bandit curve c(J, G) of each estimator (docs/design.md §4.1): 1 for RLOO, 1 − 1/G for the
group mean (Dr. GRPO), the std-whitened curve for GRPO.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bandits import rewards as R
from paper_figs import style
from sims import estimators
from sims.engines import binary, exact
from sims.scaleup import measure, tasks
from sims.scaleup import trainer as T

SEED = 0
CLAIMS = []
NAMES = ("reinforce", "rloo", "grpo_mean", "grpo", "optimal_baseline_loo")
LABELS = {"reinforce": "REINFORCE", "rloo": "RLOO", "grpo_mean": "Dr. GRPO", "grpo": "GRPO",
          "optimal_baseline_loo": "opt. baseline LOO"}
GROUP = 8
PROMPT = 3


def snapshots(steps):
    """Parameters after each number of warm-start steps in `steps` (increasing)."""
    cfg = T.TrainConfig(task="copy", width=32, layers=1, heads=2, warmstart_batch=64, warmstart_lr=1e-2,
                        seed=SEED)
    graphdef, params, _, _ = T.init(cfg)
    import jax
    import optax

    opt = optax.adam(1.0)
    state = opt.init(params)
    step = T.make_warmstart_step(cfg, graphdef, opt)
    task = tasks.get("copy")
    pool_p, pool_t = jnp.asarray(task.prompts), jnp.asarray(task.targets)
    out, done = [], 0
    for target in steps:
        for t in range(done, target):
            params, state, _ = step(params, state, t, jax.random.key(SEED + 1), pool_p, pool_t)
        done = target
        out.append(jax.tree_util.tree_map(jnp.copy, params))
    return graphdef, out


def make(quick: bool) -> "Path":  # noqa: F821
    steps = [0, 10, 20, 30, 45] if quick else [0, 4, 8, 12, 16, 20, 24, 28, 34, 40]
    groups = 64 if quick else 256
    task = tasks.get("copy")
    prompt, target = task.prompts[PROMPT], task.targets[PROMPT]
    graphdef, snaps = snapshots(steps)
    rows = []
    for k, params in enumerate(snaps):
        j, dj = measure.exact_pass_rate(graphdef, params, jnp.asarray(prompt), int(target[0]))
        g, r = measure.group_gradients(graphdef, params, prompt, target, GROUP, groups, NAMES, SEED + k)
        dj = np.asarray(dj, np.float64)
        rows.append({"warmstart_steps": steps[k], "pass_rate": float(j), "sampled_pass_rate": float(r.mean()),
                     "trace_var": {n: measure.trace_variance(gi) for n, gi in zip(NAMES, g)},
                     "scale": {n: measure.scale_along(gi, dj) for n, gi in zip(NAMES, g)}})
    pick = min(range(len(rows)), key=lambda i: abs(rows[i]["pass_rate"] - 0.3))
    jp = rows[pick]["pass_rate"]
    bandit = R.deterministic([1.0, 0.0])
    logits = np.log([jp, 1.0 - jp])
    exact_tv = {n: exact.moments(estimators.get(n), logits, bandit, GROUP).trace_var for n in NAMES}
    measured = rows[pick]["trace_var"]
    rel_m = {n: measured[n][0] / measured["rloo"][0] for n in NAMES}
    rel_se = {n: measured[n][1] / measured["rloo"][0] for n in NAMES}
    rel_e = {n: exact_tv[n] / exact_tv["rloo"] for n in NAMES}
    rank_m = sorted(NAMES, key=lambda n: rel_m[n])
    rank_e = sorted(NAMES, key=lambda n: rel_e[n])
    fine = np.linspace(0.02, 0.98, 97)
    theory = {n: [binary.binary_reward_scale(estimators.get(n), float(x), GROUP) for x in fine]
              for n in ("rloo", "grpo_mean", "grpo")}
    with style.figure(1, 2, figsize=(11, 4.2)) as (fig, axes):
        ax = axes[0]
        x = np.arange(len(NAMES))
        ax.bar(x - 0.2, [rel_m[n] for n in NAMES], 0.4, yerr=[rel_se[n] for n in NAMES],
               color=style.PALETTE[0], label=f"transformer, {groups} groups")
        ax.bar(x + 0.2, [rel_e[n] for n in NAMES], 0.4, color=style.PALETTE[2],
               label="two-armed bandit, exact")
        ax.set_xticks(x, [LABELS[n] for n in NAMES], rotation=20, fontsize=8)
        ax.set_ylabel("tr Cov[ĝ] / tr Cov[ĝ_RLOO]")
        ax.set_title(f"J = {jp:.3f}, G = {GROUP}")
        ax.legend(fontsize=8)
        ax = axes[1]
        for i, n in enumerate(("rloo", "grpo_mean", "grpo")):
            ax.plot(fine, theory[n], color=style.PALETTE[i], lw=1, label=f"c(J, G) {LABELS[n]}")
            ax.errorbar([r["pass_rate"] for r in rows], [r["scale"][n][0] for r in rows],
                        yerr=[r["scale"][n][1] for r in rows], fmt="o", ms=4, color=style.PALETTE[i],
                        label=f"transformer {LABELS[n]}")
        ax.set_xlabel("pass rate J (exact)")
        ax.set_ylabel("⟨E ĝ, ∇J⟩ / |∇J|²")
        ax.set_title("difficulty bias on the transformer policy")
        ax.legend(fontsize=7)
        data = {"task": "copy", "prompt": PROMPT, "group": GROUP, "groups": groups, "model": "width 32, 1 layer",
                "snapshots": style.rounded(rows), "picked_pass_rate": style.rounded(jp),
                "relative_trace_var_measured": style.rounded(rel_m), "relative_trace_var_se": style.rounded(rel_se),
                "relative_trace_var_bandit_exact": style.rounded(rel_e),
                "ranking_measured": rank_m, "ranking_bandit_exact": rank_e,
                "theory_pass_rates": style.rounded(fine), "theory_scale": style.rounded(theory),
                "claims": CLAIMS}
        return style.save(fig, "scaleup_variance", data)
