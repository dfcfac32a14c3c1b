"""Every check of the gaussian.* and lqr.* claims fails on a planted defect handed to the same
check function (that they pass as shipped is checked where the test suite runs the ledger)."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from bandits import gaussian as G
from bandits import lqr as L
from sims import continuous as C
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


def rloo_as_known_mean(name, theta, coeffs, group, sigma=None, **params):
    """Defect: RLOO's variance as if its baseline were the true mean E[R] (noise-free baseline)."""
    ex = C.gaussian_group_exact(name, theta, coeffs, group, sigma, **params)
    if name != "rloo":
        return ex
    fake = C.gaussian_group_exact("reinforce", theta, coeffs, group, sigma, baseline=ex["objective"])
    return {**ex, "cov": fake["cov"]}


def grpo_mean_unbiased(name, theta, coeffs, group, sigma=None, **params):
    """Defect: the group-mean advantage taken as unbiased (E[ĝ] = ∇J instead of (1 − 1/G)∇J)."""
    ex = C.gaussian_group_exact(name, theta, coeffs, group, sigma, **params)
    return {**ex, "mean": ex["true_gradient"]} if name == "grpo_mean" else ex


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
    from sims import ledger

    claim = ledger.load_all()[claim_id]
    assert len(claim.checks()) == len(DEFECTS[claim_id])  # one defect per check
    assert {c.kind for c in claim.checks()} >= {"exact", "monte_carlo"}
    for make_outcome in DEFECTS[claim_id]:
        out = make_outcome()
        assert not out.holds, out.detail
