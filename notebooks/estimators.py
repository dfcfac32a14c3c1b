# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Unbiasedness and variance of group estimators
#
# A walk through DESIGN §4.1 on the softmax bandit: π = softmax(θ), score s(a) = e_a − π,
# ∇J = π∘(m − J). A group of G samples gives ĝ = (1/G) Σ_i A_i s(a_i); the estimators differ
# only in the advantage A_i. We look at each one three ways: symbolically (sympy), exactly
# (enumeration of multisets, float64) and by Monte Carlo (JAX, with Holm-controlled z-tests).

# %%
import os

import numpy as np

from bandits import rewards as R
from sims import checks, exact, montecarlo
from sims.cli import moments_report
from theory import softmax_bandit as T

QUICK = os.environ.get("PGLAB_QUICK") == "1"
SAMPLES = 100_000 if QUICK else 2_000_000

# %% [markdown]
# ## The calculator
# `pglab moments` is a thin wrapper over `moments_report`: exact mean, bias, covariance, and
# the optimal constant baseline.

# %%
report = moments_report("reinforce", [0.0, 0.0, 0.0], R.deterministic([1, 0, 0]), 1, {"baseline": 0.0})
print("tr Cov =", report["exact"]["trace_var"], "(4/27 =", 4 / 27, ")")
print("b*     =", report["exact"]["optimal_constant_baseline"])

# %% [markdown]
# ## Symbolic: V(b) and its minimiser
# sympy builds V(b) = Σ_a π_a|s_a|²(v_a − 2b m_a + b²) − |∇J|² and solves dV/db = 0.

# %%
ref = T.reference_values()["skewed"]
print("V(b) =", ref["V"], "   b* =", ref["b_star"], "   E[R] =", ref["mean_reward"])
print("b* − E[|s|²R]/E[|s|²] =", T.optimal_baseline_residual(3))

# %% [markdown]
# ## Exact: every estimator on one bandit
# Bernoulli arms, G = 4. RLOO and the leave-one-out optimal baseline are unbiased; the group
# mean is (1 − 1/G)∇J; GRPO's whitening rescales it.

# %%
logits, model, G = [0.3, -0.2, 0.1], R.bernoulli([0.8, 0.4, 0.1]), 4
for name in ["reinforce", "rloo", "grpo_mean", "grpo", "optimal_baseline_loo"]:
    m = exact.moments(name, logits, model, G)
    print(f"{name:22s} mean={np.round(m.mean, 5)}  bias={np.round(m.bias, 5)}  trVar={m.trace_var:.5f}")
print("true gradient", np.round(m.true_gradient, 5))

# %% [markdown]
# ## Closed form versus enumeration: RLOO's variance
# (1/G)[E(|s|²(R−μ)²) + E|s|²·Var R/(G−1) − |∇J|²(G−2)/(G−1)], derived by sympy for symbolic G.

# %%
pi = np.asarray(exact.moments("rloo", logits, model, G).pi)
closed = T.numeric_rloo_variance(3)(pi, model.means, model.second_moments, G)
print("closed form", closed, " exact engine", exact.moments("rloo", logits, model, G).trace_var)

# %% [markdown]
# ## Monte Carlo, with honest statistics
# The z-tests are Holm-controlled at α = 1e-6; the power line says how small a bias would
# still be caught with probability 0.99.

# %%
for name in ["rloo", "grpo_mean"]:
    print(checks.mc_unbiased(name, logits, model, G, SAMPLES, seed=0).summary())
mc = montecarlo.moments("grpo", logits, model, G, SAMPLES, seed=1)
print("GRPO tr Cov: MC", round(mc.trace_var, 5), "±", round(mc.trace_var_se, 5),
      " exact", round(exact.moments("grpo", logits, model, G).trace_var, 5))

# %% [markdown]
# ## GRPO's difficulty bias under binary rewards
# With pass/fail rewards E[ĝ] = c(J, G)·∇J: parallel to the gradient, with a scale that depends
# on the pass rate J alone (`sims.difficulty`). RLOO has c = 1 everywhere.

# %%
from sims import difficulty  # noqa: E402

for j in [0.05, 0.2, 0.5, 0.8, 0.95]:
    print(f"J={j:.2f}  c_grpo={difficulty.binary_reward_scale('grpo', j, 8):.3f}  "
          f"c_rloo={difficulty.binary_reward_scale('rloo', j, 8):.3f}")

# %% [markdown]
# ## The figure
# `paper_figs/baseline_variance.py` draws V(b) with b* and E[R] marked.

# %%
from paper_figs import baseline_variance  # noqa: E402

print(baseline_variance.make(quick=True))
