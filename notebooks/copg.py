# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # CoPG on bandits: contrastive policy gradient from logged pairs
#
# docs/design.md §4.4, after Flet-Berliac et al. (2024). A softmax bandit with rewards R, a reference
# policy π_ref and a temperature β defines the regularised objective
# J_β(π) = E_π[R] − β KL(π‖π_ref), whose maximiser is π* ∝ π_ref·e^{R/β}. The data are logged
# pairs (y, y') with y ~ μ1, y' ~ μ2 — drawn by *other* policies. CoPG maximises, per pair,
#
# ℓ = ΔR·Δh − (β/2)·Δh²,  ΔR = R(y) − R(y'),  Δh = ln(π(y)/π_ref(y)) − ln(π(y')/π_ref(y')).
#
# We check its theory symbolically, compute every method's population limit exactly, and
# reproduce the paper's toy experiment against off-policy PG, IPO and DPO.

# %%
import json
import os

import numpy as np
import sympy as sp
from IPython.display import Image, display

import sims  # noqa: F401  (float64)
from bandits import copg as C
from sims import claims, ledger
from theory import copg as T

QUICK = os.environ.get("PGLAB_QUICK") == "1"

# %% [markdown]
# ## 1. The optimum and the two forms of the loss
# sympy confirms, for K = 2 and 3 with softmax logits: ∇J_β vanishes at θ* = ln π_ref + R/β,
# J_β(π*) = β ln Σ π_ref e^{R/β}, and the regret is a scaled KL, J_β(π*) − J_β(π) = β KL(π‖π*).
# The loss equals −(1/(2β))(R_β^π(y) − R_β^π(y'))² + ΔR²/(2β) with R_β^π = R − β ln(π/π_ref),
# so maximising ℓ is a regression of the regularised rewards onto each other; its gradient is
# (R_β^π(y) − R_β^π(y'))(∇ln π(y) − ∇ln π(y')).

# %%
for K in (2, 3):
    print(f"K={K}", "optimum:", T.optimum_residuals(K))
    print(f"K={K}", "loss forms:", set(T.loss_forms_residual(K)),
          "gradient:", set(T.pair_gradient_residual(K)))

# %% [markdown]
# ## 2. Why CoPG is unbiased off policy
# Δh is affine in the logits (the log-normaliser cancels), so the population objective
# Σ μ1(y)μ2(y')ℓ(y, y') is a concave quadratic with constant Hessian −β Σ μ1μ2 (e_y − e_y')(e_y − e_y')ᵀ.
# At π* every regularised reward equals J_β(π*), so every pair's factor vanishes whatever μ1, μ2.
# Off-policy PG with a baseline b moves by (J_β(π*) − b)(μ̄ − π*) at π*, μ̄ = (μ1 + μ2)/2:
#
# - no baseline (`pg`, b = 0): J_β(π*)(μ̄ − π*);
# - the paper's value baseline (`pg_value`, b = E_π[R], §5 eq. 23–24): −β KL(π*‖π_ref)(μ̄ − π*),
#   so it too comes to rest elsewhere — the "biased solution" the paper reports;
# - the soft value (`pg_soft_value`, b = J_β(π), a variant of the lab): 0, so π* is a fixed point.
#
# sympy checks all three forms (every residual below is 0).

# %%
for K in (2, 3):
    pg_at_star = T.pg_field_at_optimum_residuals(K)
    print(f"K={K}", "CoPG stationarity:", set(T.stationarity_residual(K)),
          "Hessian:", T.population_hessian_residual(K) == sp.zeros(K, K), "PG at π*:", pg_at_star)
    assert set(T.stationarity_residual(K)) == {0}
    assert all(set(v) == {0} for v in pg_at_star.values())
print("on policy E[∇ℓ] − 2∇J_β (K=3):", T.onpolicy_residual(3))
print("RLOO with G = 2 (β = 0):", set(T.rloo_reduction_beta0(3)), " IPO:", T.ipo_reduction_residual())
assert set(T.onpolicy_residual(3)) == {0} and T.ipo_reduction_residual() == 0

# %% [markdown]
# ## 3. Population limits on the paper's toy
# R = (2.5, 2, 1), β = 0.5, π_ref uniform, μ1 = (0.1, 0.2, 0.7), μ2 = (0.05, 0.05, 0.9).
# `fixed_point` runs Adam on the exact expected gradient with a decaying step and polishes with
# Newton steps until the expected gradient's norm is below 1e-10; IPO's optimum also has a closed
# form (weighted least squares), and so has CoPG's. The asserted numbers are independent of the
# trainers: π* = softmax(R/β) by hand, and the paper-baseline limit solved below by plain
# fixed-point iteration of its update in numpy.

# %%
toy = C.toy_problem()
pi_star = np.exp(np.array([2.5, 2.0, 1.0]) / 0.5) / np.exp(np.array([2.5, 2.0, 1.0]) / 0.5).sum()
print("π* =", np.asarray(C.optimal_policy(toy)).round(5), " J_β(π*) =", float(C.optimal_value(toy)),
      " regret of π_ref =", float(C.regret(toy.log_ref, toy)))
limits = {}
for m in C.METHODS:
    fp = C.fixed_point(m, toy)
    limits[m] = fp
    print(f"{m:14s} fixed point π = {fp.pi.round(5)}  regret = {float(fp.regret):.3e}  "
          f"|E∇| = {float(fp.grad_norm):.1e}")
print("IPO least squares:", np.exp(np.asarray(C.ipo_argmax(toy))).round(5))
for m in ("copg", "pg_soft_value", "dpo"):
    np.testing.assert_allclose(limits[m].pi, pi_star, atol=1e-8)


def paper_value_baseline_limit(r=np.array([2.5, 2.0, 1.0]), beta=0.5, steps=20_000):
    """θ ← θ + ½ E_μ̄[(R − β ln(π/π_ref) − E_π[R])(e_a − π)], plain numpy, uniform π_ref."""
    mu = 0.5 * (np.array([0.1, 0.2, 0.7]) + np.array([0.05, 0.05, 0.9]))
    theta = np.zeros(3)
    for _ in range(steps):
        pi = np.exp(theta - theta.max()) / np.exp(theta - theta.max()).sum()
        adv = r - beta * np.log(3 * pi) - pi @ r
        theta = theta + 0.5 * (mu * adv - pi * (mu @ adv))
    return pi


ref_pi = paper_value_baseline_limit()
print("paper's value baseline, numpy iteration:", ref_pi.round(4))
np.testing.assert_allclose(limits["pg_value"].pi, ref_pi, atol=1e-6)
np.testing.assert_allclose(limits["pg_value"].pi, [0.8116, 0.1675, 0.0209], atol=1e-4)
np.testing.assert_allclose(float(limits["pg_value"].regret), 0.0148, atol=1e-4)
assert float(limits["pg"].regret) > float(C.regret(toy.log_ref, toy))  # b = 0 ends worse than π_ref

# %% [markdown]
# ## 4. The paper's budget: 10⁴ pairs, Adam lr 1e-3, batch 512, 100 epochs
# The figure module trains every method on its own logged data sets (one per seed, vmapped in one
# jit) and records the mean regret per epoch with a 95% t-interval, the same 2000 Adam steps on
# exact gradients (dashed), and the population fixed points (dotted). CoPG is the fastest;
# off-policy PG without baseline ends *worse* than π_ref; with the paper's value baseline it heads
# for its biased limit (regret ≈ 0.0148); IPO stops at its own fixed point.

# %%
from paper_figs import copg_toy  # noqa: E402

path = copg_toy.make(QUICK)
display(Image(filename=str(path)))
data = json.loads(path.with_suffix(".json").read_text())
for m, d in data["methods"].items():
    lo, hi = d["final_regret"]["ci95"]
    print(f"{m:14s} sampled {d['final_regret']['mean']:.4f} [{lo:.4f}, {hi:.4f}]   "
          f"exact gradients {d['exact_regret'][-1]:.4f}   "
          f"population run (Adam lr 1e-2): {d['population_run']['final_regret']:.2e}")
    assert d["final_regret"]["mean"] < data["start_regret"] or m == "pg", m
ms = data["methods"]
assert ms["copg"]["population_run"]["final_regret"] < 1e-3  # claim copg.toy_population_limit
assert ms["pg"]["final_regret"]["mean"] > data["start_regret"]  # b = 0 ends worse than π_ref
assert ms["copg"]["final_regret"]["ci95"][1] < ms["pg_value"]["final_regret"]["ci95"][0]

# %% [markdown]
# With exact gradients and a larger step (Adam lr 1e-2, the same 2000 steps) the population runs
# converge: CoPG's regret falls below 1e-3 — to rounding level — while off-policy PG and IPO stop
# at their own fixed points. A single run from the API:

# %%
run = C.train("copg", toy, np.arange(4), epochs=10)
print("regret after 10 epochs, 4 seeds:", run.regret[:, -1].round(4))

# %% [markdown]
# ## 5. K arms: how far the logging laws are from π*
# K = 8, random rewards, logging laws spread from π* outwards. In the population limit CoPG,
# DPO and PG with the soft value baseline sit at π* for every μ; off-policy PG's regret, without a
# baseline and with the paper's value baseline, grows with the distance; IPO's does not depend
# much on μ but never vanishes.

# %%
if not QUICK:
    from paper_figs import copg_k_arms

    display(Image(filename=str(copg_k_arms.make(False))))
else:
    print("quick mode: the K-arm figure is built by paper_figs.copg_k_arms.make")

# %% [markdown]
# ## 6. The ledger

# %%
report = ledger.run(claims.load_all(), quick=True, only="copg.*")
for c in report["claims"]:
    print(f"{c['id']:40s} {c['expected']:8s} {c['status']}")
print(report["summary"])
assert report["summary"]["not_passed"] == 0, [c["id"] for c in report["claims"] if not c["passed"]]
status = {c["id"]: c["status"] for c in report["claims"]}
assert status["copg.pg_value_baseline_optimum"] == "refuted"
assert status["copg.pg_soft_value_baseline_stationary"] == "verified"
