"""Every check of the gaussian.* and lqr.* claims fails on a planted defect handed to the same
check function (that they pass as shipped is checked where the test suite runs the ledger); the
Hessian checks catch a bias of the size they state (B scaled by 1.1 or 0.9); the independent
recursion and quadrature the closed forms are pinned to are themselves pinned to hand values."""

import dataclasses
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bandits import gaussian as G
from bandits import lqr as L
from sims import continuous as C
from sims import estimators
from sims import trajectory as T
from sims.claims import gaussian as CG
from sims.claims import lqr as CL


def own_reward_dropped(log_prob, theta, traj, gamma, v):
    """Defect: rewards-to-go Σ_{h>t} γ^h r_h that leave out the step's own reward."""
    h = traj.rewards.shape[-1]
    d = traj.rewards * gamma ** jnp.arange(h)
    later = jnp.concatenate([jnp.flip(jnp.cumsum(jnp.flip(d)))[1:], jnp.zeros(1)])
    return jax.grad(lambda th: later @ jax.vmap(lambda s, a: log_prob(th, s, a))(traj.states, traj.actions))(theta)


def hessian_without_outer(log_prob, theta, traj, gamma, v):
    """Defect: B without the ∇Φ ∇log pᵀ term."""
    return jax.hessian(T.surrogate, argnums=1)(log_prob, theta, traj, gamma).reshape(-1)


def hvp_without_outer(log_prob, theta, traj, gamma, v):
    """Defect: B·v without the ∇Φ (∇log pᵀ v) term."""
    return jax.jvp(lambda th: T.gpomdp(log_prob, th, traj, gamma), (theta,), (v,))[1]


def gradient_log_sigma_halved(theta, coeffs, sigma=None):
    """Defect: ∂J/∂log σ off by a factor 2 (∂/∂σ² taken for ∂/∂log σ)."""
    g = G.gradient(theta, coeffs, sigma)
    return g * jnp.array([1.0, 0.5])[: g.shape[0]]


def fisher_log_sigma_one(theta, sigma=None):
    """Defect: Fisher entry of log σ taken as 1 instead of 2."""
    f = G.fisher(theta, sigma)
    return f.at[1, 1].set(1.0) if f.shape[0] == 2 else f


def rloo_as_known_mean(est, theta, coeffs, group, sigma=None, **params):
    """Defect: RLOO's variance as if its baseline were the true mean E[R] (noise-free baseline)."""
    ex = C.gaussian_group_exact(est, theta, coeffs, group, sigma, **params)
    if est.name != "rloo":
        return ex
    fake = C.gaussian_group_exact(estimators.get("reinforce"), theta, coeffs, group, sigma, baseline=ex["objective"])
    return {**ex, "cov": fake["cov"]}


def grpo_mean_unbiased(est, theta, coeffs, group, sigma=None, **params):
    """Defect: the group-mean advantage taken as unbiased (E[ĝ] = ∇J instead of (1 − 1/G)∇J)."""
    ex = C.gaussian_group_exact(est, theta, coeffs, group, sigma, **params)
    return {**ex, "mean": ex["true_gradient"]} if est.name == "grpo_mean" else ex


def objective_undiscounted(theta, lqr, sigma=None):
    """Defect: J_H summed without the discount."""
    return L.objective(theta, dataclasses.replace(lqr, gamma=jnp.float64(1.0)), sigma)


def gradient_cost_gain_frozen(theta, lqr, sigma=None):
    """Defect: ∇J that forgets the K in the action cost KᵀRK."""
    def j(th):
        k = jax.lax.stop_gradient(L.gain(th, lqr))
        s = L.policy_std(th, lqr, sigma)
        per = jnp.einsum("tij,ji->t", L.second_moments(th, lqr, sigma), lqr.Q + k.T @ lqr.R @ k)
        return -jnp.sum(lqr.gamma ** jnp.arange(lqr.horizon) * (per + s**2 * jnp.trace(lqr.R)))
    return jax.grad(j)(theta)


def objective_noise_term_linear(theta, lqr, sigma=None):
    """Defect: the action-noise cost σ tr R per step instead of σ² tr R."""
    s = L.policy_std(theta, lqr, sigma)
    extra = (s - s**2) * jnp.trace(lqr.R) * jnp.sum(lqr.gamma ** jnp.arange(lqr.horizon))
    return L.objective(theta, lqr, sigma) - extra


def gaussian_objective_sigma_not_squared(theta, coeffs, sigma=None):
    """Defect: J with σ in place of σ² in the second moment E[a²] = μ² + σ²."""
    mu, s = G.mu_sigma(theta, sigma)
    return G.objective(theta, coeffs, sigma) + coeffs[2] * (s - s**2) if len(coeffs) > 2 else G.objective(theta, coeffs, sigma)


DEFECTS = {
    "gaussian.gpomdp_unbiased": [
        lambda: CG.exact_unbiased("gpomdp", True, fn=own_reward_dropped),
        lambda: CG.softmax_unbiased("gpomdp", True, fn=own_reward_dropped),
        lambda: CG.mc_unbiased("gpomdp", True, fn=own_reward_dropped)],
    "gaussian.hessian_unbiased": [
        lambda: CG.exact_unbiased("hessian", True, fn=hessian_without_outer),
        lambda: CG.softmax_unbiased("hessian", True, fn=hessian_without_outer),
        lambda: CG.mc_unbiased("hessian", True, fn=hessian_without_outer)],
    "gaussian.closed_forms": [
        lambda: CG.exact_closed_forms(True, gradient=gradient_log_sigma_halved),
        lambda: CG.mc_closed_forms(True, fisher=fisher_log_sigma_one)],
    "gaussian.group_moments": [
        lambda: CG.exact_group_moments(True, closed_form=rloo_as_known_mean),
        lambda: CG.mc_group_moments(True, closed_form=grpo_mean_unbiased)],
    "lqr.gpomdp_unbiased": [
        lambda: CL.exact_unbiased("gpomdp", True, fn=own_reward_dropped),
        lambda: CL.mc_unbiased("gpomdp", True, fn=own_reward_dropped)],
    "lqr.hessian_unbiased": [
        lambda: CL.exact_unbiased("hessian", True, fn=hessian_without_outer),
        lambda: CL.mc_unbiased("hessian_vector", True, fn=hvp_without_outer)],
    "lqr.exact_objective": [
        lambda: CL.exact_objective(True, objective=objective_undiscounted),
        lambda: CL.mc_objective(True, objective=objective_undiscounted)],
    "lqr.gradient_finite_difference": [
        lambda: CL.exact_finite_difference(True, gradient=gradient_cost_gain_frozen),
        lambda: CL.mc_finite_difference(True, fn=own_reward_dropped)],
    "lqr.riccati_stationary": [
        lambda: CL.exact_riccati(True, gain_offset=0.05),
        lambda: CL.mc_riccati(True, gain_offset=0.3)],
}


@pytest.mark.parametrize("claim_id", sorted(DEFECTS))
def test_every_check_catches_its_planted_defect(claim_id):
    from sims import claims

    claim = claims.load_all()[claim_id]
    assert len(claim.checks()) == len(DEFECTS[claim_id])  # one defect per check
    assert {c.kind for c in claim.checks()} >= {"exact", "monte_carlo"}
    for make_outcome in DEFECTS[claim_id]:
        out = make_outcome()
        assert not out.holds, out.detail


@pytest.mark.parametrize("make_outcome", [
    lambda: CL.exact_finite_difference(True, objective=objective_noise_term_linear),
    lambda: CL.exact_finite_difference(True, gradient=jax.jit(jax.grad(objective_noise_term_linear))),
    lambda: CL.exact_finite_difference(True, hessian=jax.jit(jax.hessian(objective_noise_term_linear))),
    lambda: CG.exact_closed_forms(True, objective=gaussian_objective_sigma_not_squared),
    lambda: CG.exact_closed_forms(True, hessian=lambda th, c, s=None: G.hessian(th, c, s) * 1.001),
    lambda: CG.exact_closed_forms(True, fisher=fisher_log_sigma_one),
], ids=["lqr J σ", "lqr ∇J σ", "lqr ∇²J σ", "gaussian J σ", "gaussian ∇²J", "gaussian F"])
def test_independent_pins_catch_a_wrong_noise_term(make_outcome):
    assert not make_outcome().holds


def _scaled(fn, factor):
    def scaled(log_prob, theta, traj, gamma, v):
        return factor * fn(log_prob, theta, traj, gamma, v)
    scaled.__name__ = f"{fn.__name__}_times_{factor}"
    return scaled


@pytest.mark.parametrize("factor", [1.1, 0.9])
def test_hessian_checks_catch_a_tenth_of_the_target(factor):
    """Both Hessian checks state a detectable bias ≤ 0.1 × |target| at quick sizes; B scaled by
    1.1 or 0.9 is a bias of exactly 0.1 × |target| and fails both."""
    lqr_out = CL.mc_unbiased("hessian_vector", True, fn=_scaled(T.hessian_vector, factor))
    gauss_out = CG.mc_unbiased("hessian", True, fn=_scaled(T.ESTIMATORS["hessian"], factor))
    assert not lqr_out.holds, lqr_out.detail
    assert not gauss_out.holds, gauss_out.detail
    for out in (lqr_out, gauss_out):  # scaling B scales every standard error by the same factor
        reach = float(out.detail.split("detects bias ≥ ")[1].split(" ")[0]) / factor
        assert reach <= 0.1, out.detail


def test_independent_lqr_recursion_by_hand():
    """Scalar, H = 2, in fractions: S_0 = s0, S_1 = (a + bk)² s0 + σ²b² + w,
    J = −[(q + k²r) s0 + σ²r] − γ[(q + k²r) S_1 + σ²r]."""
    a, b, q, r, s0, w, g, k, sig2 = (Fraction(x) for x in ("0.9", "0.5", "1", "0.1", "1", "0.05", "0.9", "-0.6", "0.25"))
    s1 = (a + b * k) ** 2 * s0 + sig2 * b**2 + w
    want = -((q + k * k * r) * s0 + sig2 * r) - g * ((q + k * k * r) * s1 + sig2 * r)
    one = lambda x: np.array([[float(x)]])  # noqa: E731
    got = CL.independent_objective(one(a), one(b), one(q), one(r), one(s0), one(w), float(g), 2, one(k), 0.5)
    assert got == pytest.approx(float(want), rel=1e-15)
    # dJ/dK by hand: −[2kr s0] − γ[2kr S_1 + (q + k²r)·2(a + bk)b s0]
    dk = -(2 * k * r * s0) - g * (2 * k * r * s1 + (q + k * k * r) * 2 * (a + b * k) * b * s0)
    # dJ/dlog σ: d(σ²) = 2σ²: −[2σ²r] − γ[(q + k²r)·2σ²b² + 2σ²r]
    dw = -(2 * sig2 * r) - g * ((q + k * k * r) * 2 * sig2 * b**2 + 2 * sig2 * r)
    grad = CL.independent_gradient(one(a), one(b), one(q), one(r), one(s0), one(w), float(g), 2, one(k), 0.5, True)
    np.testing.assert_allclose(grad, [float(dk), float(dw)], rtol=1e-14)


def test_gaussian_quadrature_moments_by_hand():
    """R = −(a − 1)² at θ = (μ, log s) = (0, 0): J = −(μ − 1)² − s² = −2, ∇J = (2, −2),
    ∇²J = diag(−2, −4), F = diag(1, 2); with σ fixed at 2 and θ = μ: ∇J = 2, ∇²J = −2, F = 1/4."""
    j, g, h, f, fd = CG.quadrature_moments((0.0, 0.0), G.REWARDS["quadratic"])
    assert j == pytest.approx(-2.0, abs=1e-13)
    np.testing.assert_allclose(g, [2.0, -2.0], atol=1e-13)
    np.testing.assert_allclose(h, [[-2.0, 0.0], [0.0, -4.0]], atol=1e-12)
    np.testing.assert_allclose(f, np.diag([1.0, 2.0]), atol=1e-13)
    np.testing.assert_allclose(fd, g, atol=1e-7)
    j, g, h, f, _ = CG.quadrature_moments((0.0,), G.REWARDS["quadratic"], sigma=2.0)
    assert (j, g[0], h[0, 0], f[0, 0]) == pytest.approx((-5.0, 2.0, -2.0, 0.25), abs=1e-12)
    assert math.isfinite(j)


def _variates_without_minus_one(theta, traj, gamma, v):
    """Defect: the log σ step score taken as ε² instead of ε² − 1 (mean 1, not 0)."""
    out = CL._control_variates(theta, traj, gamma, v)
    h = traj.states.shape[0]
    return out.at[h:2 * h].add(gamma ** jnp.arange(h))  # the q = γ^t block of s2 = ε² − 1


@pytest.mark.parametrize("variates, holds", [(CL._control_variates, True), (_variates_without_minus_one, False)])
def test_control_variates_have_mean_zero(variates, holds):
    """The 16·H control variates of the LQR checks, streamed alone, have mean 0 under Holm at α = 1e-6;
    a variate with a mean of 1 (ε² for ε² − 1) is caught."""
    from sims.engines import montecarlo, stats

    lqr = L.make(**CL.MC_CASE)
    th = jnp.asarray(CL.MC_THETA)
    s = montecarlo.stream(CL.ControlledDraw("gpomdp", variates=variates), (th, lqr, lqr.gamma, jnp.asarray(CL.MC_V)),
                          100_000, 5)
    z = stats.z_check("control variates", s.mean[2:], s.mean_se[2:], np.zeros(s.mean.size - 2), scale=1.0)
    assert z.passed == holds, z.summary()
