"""Monte Carlo against exact: the statistical checks every estimator claim goes through.

Each function runs the exact engine and the Monte Carlo engine on one instance and returns a
`stats.ZCheck` (Holm-controlled z-tests, with power). The ledger, the tests and the false-alarm
study call these same functions.
"""

from __future__ import annotations

import numpy as np

from bandits import softmax
from bandits.rewards import RewardModel
from sims import estimators
from sims.engines import exact, montecarlo, stats


def mc_matches_exact(estimator, logits, rewards: RewardModel, group: int, samples: int,
                     seed: int, alpha: float = stats.ALPHA, variance_factor: float = 1.0,
                     **params) -> stats.ZCheck:
    """E[ĝ] (every coordinate) and tr Cov[ĝ] by Monte Carlo agree with the exact engine.

    `variance_factor` scales the exact trace before comparing (1.02 is the planted defect)."""
    name = estimators.as_entry(estimator).name
    ex = exact.moments(estimator, logits, rewards, group, **params)
    mc = montecarlo.moments(estimator, logits, rewards, group, samples, seed=seed, **params)
    scale = float(np.linalg.norm(ex.true_gradient))
    mean = stats.z_check("mean", mc.mean, mc.mean_se, ex.mean, scale=scale, alpha=alpha)
    trace = stats.z_check("trace_var", mc.trace_var, mc.trace_var_se,
                          variance_factor * ex.trace_var, alpha=alpha)
    return stats.combine(f"{name} G={group}: MC vs exact (mean, tr Cov)", [mean, trace], alpha)


def mc_unbiased(estimator, logits, rewards: RewardModel, group: int, samples: int, seed: int,
                alpha: float = stats.ALPHA, **params) -> stats.ZCheck:
    """E[ĝ] by Monte Carlo agrees with the true gradient ∇J = π∘(m − J)."""
    name = estimators.as_entry(estimator).name
    true_gradient = np.asarray(softmax.gradient(np.asarray(logits, np.float64), rewards.means))
    mc = montecarlo.moments(estimator, logits, rewards, group, samples, seed=seed, **params)
    return stats.z_check(f"{name} G={group}: MC mean vs ∇J", mc.mean, mc.mean_se,
                         true_gradient, alpha=alpha)


# The Monte Carlo suite: instances on which every estimator's Monte Carlo moments must agree with
# the exact engine (and, for unbiased estimators, with ∇J). The tests run it at one seed; the
# false-alarm study (`python -m sims.engines.checks --seeds 200`) runs it at many.
SUITE_SAMPLES = 400_000
SUITE = [
    # (estimator, logits, rewards, G, params[, sample multiplier])
    *[(name, (0.3, -0.2, 0.1), "bernoulli:0.8,0.4,0.1", 4, {})
      for name in ("reinforce", "rloo", "grpo_mean", "grpo", "optimal_baseline_loo")],
    ("reinforce", (1.0, 0.0, -0.5, 0.2), "categorical:0/0.3;1/0.7|0.35/1|-1/0.5;2/0.5|0/1", 3,
     {"baseline": 0.5}),
    ("rloo", (1.0, 0.0, -0.5, 0.2), "categorical:0/0.3;1/0.7|0.35/1|-1/0.5;2/0.5|0/1", 3, {}),
    ("optimal_baseline_loo", (1.0, 0.0, -0.5, 0.2),
     "categorical:0/0.3;1/0.7|0.35/1|-1/0.5;2/0.5|0/1", 3, {}),
    ("grpo", (0.5, -1.0, 0.0, 2.0, -0.3), "deterministic:1,0,0.35,0.5,0", 6, {"eps": 1e-6}),
    # 4× the samples: at 1× a 2% error in tr Cov sits only about 5 standard errors away here
    ("optimal_baseline_loo", (2.5, -1.0, 0.0), "bernoulli:0.9,0.05,0.3", 2, {}, 4),
]


def run_suite(seed: int, samples: int = SUITE_SAMPLES, variance_factor: float = 1.0,
              estimator_override: str | None = None, alpha: float = stats.ALPHA) -> list[stats.ZCheck]:
    """Every suite instance: MC vs exact (mean and tr Cov), plus MC mean vs ∇J when unbiased."""
    from bandits.rewards import parse_rewards

    out = []
    for i, (name, logits, spec, group, params, *factor) in enumerate(SUITE):
        n = samples * (factor[0] if factor else 1)
        est = estimators.get(estimator_override or name)
        params = {k: v for k, v in params.items() if k in est.params}
        model = parse_rewards(spec)
        s = seed * 1_000 + i
        out.append(mc_matches_exact(est, logits, model, group, n, s, alpha,
                                    variance_factor, **params))
        if est.unbiased:
            out.append(mc_unbiased(est, logits, model, group, n, s, alpha, **params))
    return out


def _false_alarm_study(argv=None) -> None:
    import argparse
    import time

    ap = argparse.ArgumentParser(description="Run the Monte Carlo suite at many seeds; count false alarms.")
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--samples", type=int, default=SUITE_SAMPLES)
    args = ap.parse_args(argv)
    start, alarms, total, worst = time.perf_counter(), 0, 0, 0.0
    for seed in range(args.seeds):
        for check in run_suite(seed, args.samples):
            total += 1
            worst = max(worst, check.max_abs_z)
            if not check.passed:
                alarms += 1
                print(f"false alarm at seed {seed}: {check.summary()}")
    print(f"{args.seeds} seeds, {total} checks, {alarms} false alarms, max |z| {worst:.2f}, "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    _false_alarm_study()
