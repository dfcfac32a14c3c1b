# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Bayesian policy gradients: one posterior, step by step
#
# docs/design.md §4.6 (Ghavamzadeh, Engel & Valko 2016). The policy gradient is an integral,
# ∇J = ∫ R(a) u(a) p(a; θ) da, with u the score. Monte Carlo averages R·u over samples; Bayesian
# quadrature instead puts a Gaussian process on part of the integrand and integrates the GP's
# posterior, which is Gaussian and closed-form when the kernel's integrals against p are known.
# We follow one posterior on the simplest policy: a ~ N(μ, 1) at μ = 0, so u = a and the Fisher
# information is G = E[u²] = 1. The reward R(a) = a + a² has J(μ) = μ + μ² + 1 and ∇J = 1 at μ = 0.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from sims import claims, ledger
from sims.bpg import gpytorch_path as bg
from sims.bpg import quadrature as bpg
from sims.claims import bpg as C

QUICK = os.environ.get("PGLAB_QUICK") == "1"
rng = np.random.default_rng(3)

# %% [markdown]
# ## 1. The samples
# Ten actions from the policy; the score of each is u = a, and Monte Carlo's estimate is the
# mean of R(a)·a.

# %%
a = rng.normal(size=10)
coeffs = (0.0, 1.0, 1.0)  # R(a) = a + a²
scores, returns = C.scores(a, "mean"), C.reward(coeffs, a)
truth = C.true_gradient(coeffs, "mean")
print("a =", np.round(a, 3))
print("MC estimate:", float(bpg.mc_gradient(scores, returns)[0]), "  true gradient:", truth[0])

# %% [markdown]
# ## 2. The kernels
# Model 2 puts a GP on R with the Fisher kernel k(a, a') = uᵀG⁻¹u' = a a'; its functions are the
# multiples of a, so K has rank 1. Model 1 puts a GP on R·u with the quadratic Fisher kernel
# (1 + a a')², whose functions are the quadratics in a: K has rank 3. Both integrate in closed
# form against p (z_i = 1 + a_i², z_0 = 1 + n for Model 1; u_i itself for Model 2).

# %%
for model in (1, 2):
    k = np.asarray(bpg.kernel_matrix(scores, [[1.0]], model))
    eig = np.linalg.eigvalsh(k)[::-1]
    print(f"Model {model}: K is {k.shape}, eigenvalues {np.round(eig[:4], 4)} ... rank "
          f"{int(np.sum(eig > 1e-9 * eig[0]))}")

# %% [markdown]
# ## 3. The posterior, with the noise fitted by gpytorch
# The noise σ² is a hyper-parameter: gpytorch fits it by maximising the marginal likelihood
# (`ExactMarginalLogLikelihood`, L-BFGS); at that σ² the JAX closed form gives the same posterior.
# R·a = a² + a³ is cubic, outside Model 1's quadratics, and R is outside Model 2's span{a}: neither
# posterior mean is exact, and the credible intervals say how far off they may be.

# %%
fig, ax = plt.subplots(figsize=(6, 2.4))
for model in (1, 2):
    fit = bg.posterior(scores, returns, [[1.0]], model, None)
    post = bpg.gradient_posterior(scores, returns, [[1.0]], model, fit.noise)
    m, sd = float(post.mean[0]), float(np.sqrt(post.cov[0, 0]))
    print(f"Model {model}: σ² = {fit.noise:.4g}, mean {m:.4f} ± {1.96 * sd:.4f} (95%), "
          f"gpytorch mean {fit.mean[0]:.4f}, natural gradient {float(post.natural[0]):.4f}")
    ax.errorbar(m, model, xerr=1.96 * sd, fmt="o", capsize=4, label=f"Model {model}, 95%")
ax.axvline(truth[0], color="k", ls="--", label="true ∇J")
ax.plot(float(bpg.mc_gradient(scores, returns)[0]), 0, "s", color="gray", label="Monte Carlo")
ax.set_yticks([0, 1, 2], ["MC", "Model 1", "Model 2"])
ax.set_xlabel("∂J/∂μ")
ax.legend(fontsize=7, loc="lower right")
plt.show()

# %% [markdown]
# ## 4. Exact on the kernel's span; the reference values
# With R = 2a (Model 2's span) or R = 1 + 3a (R·u = a + 3a² in Model 1's span), the posterior mean
# is exact as σ² → 0. The table of docs/design.md §4.6 (samples a = (−1, 0.5, 2)) comes out too.

# %%
for model, c in ((2, (0.0, 2.0)), (1, (1.0, 3.0))):
    mean, _ = bpg.posterior(scores, C.reward(c, a), [[1.0]], model, 1e-8)
    print(f"Model {model}, R = {c[0]:g} + {c[1]:g}a: mean {float(mean[0]):.8f}, "
          f"true {C.true_gradient(c, 'mean')[0]:g}")
print(C.verify_reference().measured)

# %% [markdown]
# ## 5. Two parameters: the credible ellipse
# With θ = (μ, log s) the score is u = (a, a² − 1) and G = diag(1, 2); for R = a + a² the true
# gradient is (1, 2). The 95% credible ellipse is {g : (g − mean)ᵀ cov⁻¹ (g − mean) ≤ χ²₂(0.95)}.
# Here R·u = (a² + a³, (a + a²)(a² − 1)) has degree ≤ 4, inside Model 1's span (the quadratics in
# u), so Model 1 is off only by the noise's shrinkage; R's constant part is outside Model 2's span.

# %%
scores2, g2 = C.scores(a, "mean_logstd"), C.fisher("mean_logstd")
truth2 = C.true_gradient(coeffs, "mean_logstd")
fig, ax = plt.subplots(figsize=(4.5, 4))
for model, color in ((1, "C0"), (2, "C1")):
    post = bpg.gradient_posterior(scores2, returns, g2, model, 0.5)
    ring = bpg.credible_ellipse(post.mean, post.cov, 0.95)
    inside = bpg.mahalanobis(post.mean, post.cov, truth2) <= -2 * np.log(0.05)
    print(f"Model {model}: mean {np.round(np.asarray(post.mean), 3)}, truth inside the 95% ellipse: {inside}")
    ax.plot(*ring.T, color=color, label=f"Model {model} 95%")
    ax.plot(*np.asarray(post.mean), "o", color=color)
ax.plot(*np.asarray(bpg.mc_gradient(scores2, returns)), "s", color="gray", label="Monte Carlo")
ax.plot(*truth2, "k*", ms=12, label="true ∇J")
ax.set_xlabel("∂J/∂μ")
ax.set_ylabel("∂J/∂log s")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# ## 6. Unknown Fisher: the plug-in
# With Ĝ = UUᵀ/M in place of G, Model 2's mean is the Monte Carlo estimate shrunk by M/(M + σ²)
# (push-through identity): the plug-in Model 2 carries no information beyond Monte Carlo.

# %%
post = bpg.gradient_posterior(scores2, returns, None, 2, 0.5)
print("plug-in Model 2:", np.round(np.asarray(post.mean), 4),
      " MC × M/(M + σ²):", np.round(np.asarray(bpg.mc_gradient(scores2, returns)) * 10 / 10.5, 4))

# %% [markdown]
# ## 7. The noise σ²: fixed or fitted
# The posterior covariance G − U C Uᵀ does not depend on the returns, so at a fixed σ² = 1 it cannot
# follow the scale of R. Fitting σ² by the marginal likelihood on each data set lets it: on scalar
# LQR at M = 40 (∇J ≈ −2.8, returns of order 10) the fitted σ² is about 25 and Model 2's 95%
# ellipsoid then covers ∇J in about 95% of data sets (claims bpg.calibration_*). The batched
# maximiser of `sims.bpg` and gpytorch's ExactGP + L-BFGS give the same σ².

# %%
from sims.bpg import experiments as E  # noqa: E402

d = E.lqr_data(5, 100 if QUICK else 1000, 40)
fitted = bpg.marginal_likelihood_noise(d.scores, d.returns, d.fisher, 2)
print("gpytorch σ²:", round(bg.posterior(d.scores[0], d.returns[0], d.fisher, 2, None).noise, 4),
      " batched σ²:", round(float(fitted[0]), 4))
for noise in (1.0, fitted):
    post = bpg.posterior_batch(d.scores, d.returns, d.fisher, 2, noise)
    inside = E.distances(np.asarray(post.mean), np.asarray(post.cov), d.gradient) <= 3.841  # χ²₁(0.95)
    print(f"σ² {'fitted' if np.ndim(noise) else noise}: 95%-coverage {inside.mean():.3f} over {len(inside)} data sets")

# %% [markdown]
# ## 8. The ledger entries of this topic

# %%
report = ledger.run(claims.load_all(), quick=True, only="bpg.*")
for c in report["claims"]:
    print(f"{c['id']:62s} {c['expected']:8s} → {c['status']}")
