"""CoPG and its peers' per-pair losses on logged pairs, and their exact expected gradients (the
population limit over all K×K pairs); the formulas are in `bandits.copg.problem` and docs/design.md §4.4."""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bandits.copg.problem import (
    Pairs,
    Problem,
    expected_reward,
    log_ratio,
    objective,
    preference_probabilities,
    regularised_reward,
)
from bandits.errors import InputError

METHODS = ("copg", "pg", "pg_value", "pg_soft_value", "ipo", "dpo")
PG_BASELINES = {"pg": "none", "pg_value": "value", "pg_soft_value": "soft_value"}


# ---------------------------------------------------------------------------------------------
# Per-pair losses (minimised)
# ---------------------------------------------------------------------------------------------


@jax.jit
def copg_objective(logits, problem: Problem, y, y2):
    """CoPG pair objective (maximised): ℓ = ΔR·Δh − (β/2)·Δh² (Flet-Berliac et al. 2024)."""
    h = log_ratio(logits, problem)
    d_r = problem.rewards[y] - problem.rewards[y2]
    d_h = h[y] - h[y2]
    return d_r * d_h - 0.5 * problem.beta * d_h**2


@jax.jit
def copg_objective_squared(logits, problem: Problem, y, y2):
    """Equivalent form −(1/(2β))(R_β^π(y) − R_β^π(y'))²; equals ℓ − ΔR²/(2β)."""
    rb = regularised_reward(logits, problem)
    return -((rb[y] - rb[y2]) ** 2) / (2.0 * problem.beta)


def copg_loss(logits, problem, y, y2, label):
    """−ℓ (labels unused: CoPG learns from the rewards of the pair)."""
    del label
    return -copg_objective(logits, problem, y, y2)


def _pg_loss(logits, problem, y, y2, baseline):
    adv = jax.lax.stop_gradient(regularised_reward(logits, problem) - baseline)
    lp = jax.nn.log_softmax(logits)
    return -0.5 * (adv[y] * lp[y] + adv[y2] * lp[y2])


def pg_loss(logits, problem, y, y2, label):
    """Off-policy PG without baseline: −½ Σ_{a∈{y,y'}} sg[R_β^π(a)] ln π_a."""
    del label
    return _pg_loss(logits, problem, y, y2, 0.0)


def pg_value_loss(logits, problem, y, y2, label):
    """Off-policy PG with the paper's value baseline b = E_π[R] (Flet-Berliac et al. 2024, §5,
    eq. 23–24; the unregularised expected reward, exact): −½ Σ_{a∈{y,y'}} sg[R_β^π(a) − E_π[R]] ln π_a."""
    del label
    return _pg_loss(logits, problem, y, y2, expected_reward(logits, problem))


def pg_soft_value_loss(logits, problem, y, y2, label):
    """Off-policy PG with the soft value baseline b = J_β(π) (the lab's variant, not the paper's):
    −½ Σ_{a∈{y,y'}} sg[R_β^π(a) − J_β(π)] ln π_a."""
    del label
    return _pg_loss(logits, problem, y, y2, objective(logits, problem))


def _signed_dh(logits, problem, y, y2, label):
    h = log_ratio(logits, problem)
    return (2.0 * label - 1.0) * (h[y] - h[y2])


def ipo_loss(logits, problem, y, y2, label):
    """IPO (Azar et al. 2023) with τ = β: (Δh_{w,l} − 1/(2β))², w the preferred member."""
    return (_signed_dh(logits, problem, y, y2, label) - 0.5 / problem.beta) ** 2


def dpo_loss(logits, problem, y, y2, label):
    """DPO (Rafailov et al. 2023): −ln σ(β Δh_{w,l}), w the preferred member."""
    return jax.nn.softplus(-problem.beta * _signed_dh(logits, problem, y, y2, label))


LOSSES: dict[str, Callable] = {
    "copg": copg_loss, "pg": pg_loss, "pg_value": pg_value_loss,
    "pg_soft_value": pg_soft_value_loss, "ipo": ipo_loss, "dpo": dpo_loss,
}


def loss_fn(method) -> Callable:
    """A method name from METHODS, or a per-pair loss function itself (for planted defects)."""
    if callable(method):
        return method
    try:
        return LOSSES[method]
    except KeyError:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}") from None


# ---------------------------------------------------------------------------------------------
# Exact expected gradients (the population limit)
# ---------------------------------------------------------------------------------------------


def cells(k: int):
    """The 2K² outcomes (y, y', z) of a labelled pair, in the order of `cell_index`."""
    c = np.arange(2 * k * k)
    return jnp.asarray(c // (2 * k)), jnp.asarray((c // 2) % k), jnp.asarray(c % 2, dtype=float)


def cell_index(pairs: Pairs, k: int):
    """(y·K + y')·2 + z for every pair: a loss that depends on a pair only through (y, y', z)
    is, summed over a minibatch, Σ_cells count_cell · loss(cell)."""
    return (pairs.y * k + pairs.y2) * 2 + pairs.label.astype(pairs.y.dtype)


def cell_loss(method, logits, problem: Problem, weights):
    """Σ_cells weights_cell · loss(cell) / Σ weights (weights: counts of a minibatch, or the
    population law of the cells)."""
    fn = loss_fn(method)
    y, y2, z = cells(problem.rewards.shape[-1])
    return jnp.sum(weights * fn(logits, problem, y, y2, z)) / jnp.sum(weights)


def population_weights(problem: Problem):
    """Law of a labelled pair: μ1_y μ2_y' P_yy' for z = 1 and μ1_y μ2_y' (1 − P_yy') for z = 0."""
    y, y2, z = cells(problem.rewards.shape[-1])
    p = preference_probabilities(problem)[y, y2]
    return problem.mu1[y] * problem.mu2[y2] * (z * p + (1.0 - z) * (1.0 - p))


@functools.partial(jax.jit, static_argnums=0)
def population_loss(method, logits, problem: Problem):
    """E[loss] = Σ_{y,y'} μ1_y μ2_y' [P_yy' loss(z=1) + (1 − P_yy') loss(z=0)]."""
    return cell_loss(method, logits, problem, population_weights(problem))


@functools.partial(jax.jit, static_argnums=0)
def expected_gradient(method, logits, problem: Problem):
    """E[∇_θ loss] over pairs and labels, by differentiating `population_loss` (stop-gradients
    included): the exact mean of a minibatch gradient, i.e. the population-limit update."""
    return jax.grad(lambda t: population_loss(method, t, problem))(logits)


@jax.jit
def copg_expected_ascent(logits, problem: Problem):
    """Closed form of E[∇ℓ] = Σ μ1_y μ2_y' (D_y − D_y')(e_y − e_y'), D = R_β^π:

        E[∇ℓ]_a = μ1_a (D_a − E_μ2 D) + μ2_a (D_a − E_μ1 D)."""
    d = regularised_reward(logits, problem)
    return problem.mu1 * (d - problem.mu2 @ d) + problem.mu2 * (d - problem.mu1 @ d)


@functools.partial(jax.jit, static_argnames=("baseline",))
def pg_expected_ascent(logits, problem: Problem, baseline: str = "none"):
    """Closed form of the off-policy PG update E_μ̄[(R_β^π(a) − b)(e_a − π)], μ̄ = (μ1 + μ2)/2:
    μ̄ ∘ A − π (μ̄·A) with A = R_β^π − b, and b = 0 (`"none"`), E_π[R] (`"value"`, the paper's)
    or J_β(π) (`"soft_value"`)."""
    mu = 0.5 * (problem.mu1 + problem.mu2)
    adv = regularised_reward(logits, problem)
    if baseline == "value":
        adv = adv - expected_reward(logits, problem)
    elif baseline == "soft_value":
        adv = adv - objective(logits, problem)
    elif baseline != "none":
        raise InputError(f"unknown baseline {baseline!r}; expected none, value or soft_value")
    return mu * adv - jax.nn.softmax(logits) * (mu @ adv)


def ascent_field(method: str) -> Callable:
    """θ ↦ −E[∇ loss] as a differentiable function of θ (stop-gradients resolved), used for
    Newton steps: closed forms for copg and the pg family, autodiff for ipo/dpo."""
    if method == "copg":
        return copg_expected_ascent
    if method in PG_BASELINES:
        return functools.partial(pg_expected_ascent, baseline=PG_BASELINES[method])
    if method in ("ipo", "dpo"):
        return lambda t, p: -expected_gradient(method, t, p)
    raise InputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def laplacian_fixed_point(problem: Problem, targets):
    """Maximiser of −Σ μ1_y μ2_y' (Δh(y,y') − t_yy')², a weighted least-squares problem in θ.

    Δh(y,y') = θ_y − θ_y' − (ln π_ref,y − ln π_ref,y') is affine in θ, so the normal equations
    are L u = Σ w t (e_y − e_y') with u = θ − ln π_ref and L the weighted graph Laplacian; the
    minimum-norm solution (pseudo-inverse) is returned as normalised log-probabilities.
    CoPG's population objective is this problem with t = ΔR/β; IPO's with
    t = (2σ(ΔR) − 1)/(2β)."""
    k = problem.rewards.shape[-1]
    w = problem.mu1[:, None] * problem.mu2[None, :]
    sym = w + w.T
    lap = jnp.diag(jnp.sum(sym, axis=1)) - sym
    rhs = jnp.sum(w * targets, axis=1) - jnp.sum(w * targets, axis=0)
    u = jnp.linalg.pinv(lap, rtol=1e-12 * k) @ rhs
    return jax.nn.log_softmax(u + problem.log_ref)


def copg_argmax(problem: Problem):
    """Exact maximiser of the population CoPG objective (targets ΔR/β); equals ln π*."""
    r = problem.rewards
    return laplacian_fixed_point(problem, (r[:, None] - r[None, :]) / problem.beta)


def ipo_argmax(problem: Problem):
    """Exact minimiser of the population IPO loss with Bradley–Terry labels: targets
    E[s]/(2β) = (2σ(ΔR) − 1)/(2β) for Δh(y,y') (the label-averaged least-squares target)."""
    return laplacian_fixed_point(problem, (2.0 * preference_probabilities(problem) - 1.0)
                                 / (2.0 * problem.beta))
