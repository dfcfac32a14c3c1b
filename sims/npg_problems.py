"""Problems for `sims.npg` (docs/design.md §4.7): the one-step score-function oracles, the softmax
bandit, a quadratic with exact oracles, and the registry the CLI reads.

One-step score-function oracles (a bandit is a trajectory of length one). For an action x drawn
from p(·; θ) with reward R, Φ(θ) = R·log p(x; θ) (x and R held fixed) and

    g(x, R, θ)    = ∇Φ = R ∇log p(x; θ)                                  (REINFORCE)
    B(x, R, θ)·v  = ∇Φ (∇log p(x; θ)·v) + ∇²Φ v
                  = R [∇log p (∇log p·v) + ∇²log p · v]

(Fatkhullin et al. 2023, the estimators g(τ, θ) and B(τ, θ) with H = 1), so E[g] = ∇J and
E[B] = ∇²J for J(θ) = E_{x~p(·;θ)}[R] (differentiate ∫ p m twice: ∇²p = p(∇log p ∇log pᵀ +
∇²log p)). ∇log p is `jax.grad` of the log-probability and ∇²log p·v one forward-over-reverse
`jax.jvp` of it; no dense Hessian is formed.

Problems are registered by name (`register`), built on first use and cached, so a name always
maps to the same `Problem` object (one compilation per method and problem).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bandits import rewards as R
from bandits import softmax
from bandits.errors import InputError
from sims.npg import Problem


def score_function_estimates(log_prob: Callable, theta, x, reward, v):
    """(g, B·v) for one sample x with reward R: g = R ∇log p(x; θ),
    B·v = R [∇log p (∇log p·v) + ∇²log p(x; θ)·v]."""
    score_fn = jax.grad(lambda th: log_prob(th, x))
    s, hv = jax.jvp(score_fn, (theta,), (v,))
    return reward * s, reward * (s * jnp.dot(s, v) + hv)


def score_function_oracles(sample: Callable, log_prob: Callable):
    """`grad_sample(key, θ)` and `hvp_sample(key, θ, v)` of a one-step problem from
    `sample(key, θ) -> (x, R)` and `log_prob(θ, x)`; each call draws one fresh sample."""

    def grad_sample(key, theta):
        x, r = sample(key, theta)
        return r * jax.grad(lambda th: log_prob(th, x))(theta)

    def hvp_sample(key, theta, v):
        x, r = sample(key, theta)
        return score_function_estimates(log_prob, theta, x, r, v)[1]

    return grad_sample, hvp_sample


# ---------------------------------------------------------------------------------------------
# The softmax bandit
# ---------------------------------------------------------------------------------------------


def softmax_log_prob(theta, arm):
    """log π(a) = θ_a − log Σ_b e^{θ_b}."""
    return jax.nn.log_softmax(theta)[arm]


def softmax_problem(model: R.RewardModel, theta0=None, name: str = "softmax") -> Problem:
    """The K-armed softmax bandit π = softmax(θ) with reward law `model` (docs/design.md §3),
    REINFORCE gradient and score-function Hessian-vector samples (one arm and one reward each).

    The softmax policy is not Fisher-non-degenerate: F(θ) = diag(π) − ππᵀ is singular (the
    all-ones direction) and its non-zero eigenvalues vanish as π approaches a vertex, so the
    papers' assumption F ⪰ μ_F·I fails and their global rates do not apply. What changes:
    J* = max_a m_a is a supremum reached only as θ → ∞; gradient domination holds only in the
    non-uniform form |∇J| ≥ (π_{a*}(θ)/√K)(J* − J) (Mei et al. 2020, deterministic rewards), with a
    constant that depends on the iterate; and normalised steps bound the distance travelled,
    ‖θ_T − θ_0‖ ≤ Σ_{t<T} γ_t ≤ 2γ_0 ln(T + 1), so on two arms with gap Δ = m_1 − m_2, whatever the
    noise, J* − J(θ_T) = Δ·σ(θ_2 − θ_1) ≥ Δ·σ((θ_0,2 − θ_0,1) − 2√2 γ_0 ln(T + 1)), which decays
    like T^{−2√2γ_0}: N-PG-IGT and N-HARPG need at least of order ε^{−1/(2√2γ_0)} trajectories,
    and the measured exponent depends on γ_0 (tune it; the exponent is not the papers')."""
    means = jnp.asarray(model.means, jnp.float64)
    k = model.num_arms
    theta0 = np.zeros(k) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    if theta0.shape != (k,):
        raise InputError(f"{theta0.size} initial logits for {k} arms")
    tables = model.tables()
    best = float(np.max(model.means))

    def sample(key, theta):
        ka, kr = jax.random.split(key)
        arm = softmax.sample_arms(ka, theta, ())
        return arm, R.sample_rewards(tables, kr, arm)

    grad_sample, hvp_sample = score_function_oracles(sample, softmax_log_prob)
    return Problem(
        name=name,
        theta0=theta0,
        objective=lambda th: softmax.objective(th, means),
        grad_sample=grad_sample,
        hvp_sample=hvp_sample,
        j_star=best,
        gap=lambda th: jnp.sum(softmax.policy(th) * (best - means)),  # no cancellation near J*
        description=f"softmax bandit, K = {k}, {model.kind} rewards with means "
                    f"{np.round(model.means, 4).tolist()}, θ_0 = {theta0.tolist()}",
    )


# ---------------------------------------------------------------------------------------------
# A quadratic with exact oracles
# ---------------------------------------------------------------------------------------------


def quadratic_problem(a, b, c: float = 0.0, theta0=None, name: str = "quadratic") -> Problem:
    """J(θ) = −½ θᵀAθ + bᵀθ + c (A symmetric positive definite) with exact oracles: grad_sample
    returns ∇J = b − Aθ and hvp_sample returns ∇²J·v = −A v whatever the key. J* = ½ bᵀA⁻¹b + c."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != (b.size, b.size) or not np.allclose(a, a.T):
        raise InputError("A must be a symmetric matrix matching b")
    if np.linalg.eigvalsh(a).min() <= 0:
        raise InputError("A must be positive definite")
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    opt = np.linalg.solve(a, b)
    return Problem(
        name=name,
        theta0=np.zeros(b.size) if theta0 is None else np.asarray(theta0, dtype=np.float64),
        objective=lambda th: -0.5 * th @ aj @ th + bj @ th + c,
        grad_sample=lambda key, th: bj - aj @ th,
        hvp_sample=lambda key, th, v: -(aj @ v),
        j_star=float(0.5 * b @ opt + c),
        gap=lambda th: 0.5 * (th - opt) @ aj @ (th - opt),
        description=f"quadratic, dim {b.size}, exact oracles",
    )


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

_FACTORIES: dict[str, tuple[Callable[[], Problem], str]] = {}


def register(name: str, help: str = ""):
    """Decorator registering a factory `() -> Problem` under `name` (for `get` and the CLI)."""

    def wrap(factory):
        if name in _FACTORIES:
            raise ValueError(f"problem {name!r} registered twice")
        _FACTORIES[name] = (factory, help)
        return factory

    return wrap


def names() -> list[str]:
    return list(_FACTORIES)


@functools.lru_cache(maxsize=None)
def get(name: str) -> Problem:
    """The registered problem `name` (the same object on every call)."""
    if name not in _FACTORIES:
        raise InputError(f"unknown problem {name!r}; expected one of {', '.join(_FACTORIES)}")
    return _FACTORIES[name][0]()


@register("softmax", "3-armed softmax bandit, Bernoulli(0.8, 0.5, 0.2) rewards, θ_0 = 0")
def _softmax():
    return softmax_problem(R.bernoulli([0.8, 0.5, 0.2]))


@register("softmax-hard", "3-armed softmax bandit, Bernoulli(0.8, 0.5, 0.2), θ_0 = (0, 3, 3)")
def _softmax_hard():
    return softmax_problem(R.bernoulli([0.8, 0.5, 0.2]), theta0=[0.0, 3.0, 3.0],
                           name="softmax-hard")


@register("quadratic", "J(θ) = −½|θ − (1, −1)|²_A, A = [[2, 0.5], [0.5, 1]], exact oracles")
def _quadratic():
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    return quadratic_problem(a, a @ np.array([1.0, -1.0]), name="quadratic")
