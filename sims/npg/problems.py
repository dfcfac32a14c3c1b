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

Continuous problems (Fisher-non-degenerate Gaussian policies, docs/design.md §4.5): the Gaussian
bandit with a concave quadratic reward and σ fixed (`gaussian_problem`), and LQR with a linear
Gaussian policy u ~ N(Kx, σ²I), θ = vec K, σ fixed (`lqr_problem`). Their oracles draw ONE fresh
trajectory per call and apply `sims.trajectory.gpomdp` (g) and `sims.trajectory.hessian_vector`
(B·v); J is the exact horizon-H objective and J* its maximum over θ.

Problems are registered by name (`register`), built on first use and cached, so a name always
maps to the same `Problem` object (one compilation per method and problem).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bandits import gaussian as G
from bandits import lqr as L
from bandits import rewards as R
from bandits import softmax
from bandits.errors import InputError
from sims import trajectory as T
from sims.npg.methods import Problem


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
# Continuous problems: trajectory oracles
# ---------------------------------------------------------------------------------------------


def trajectory_oracles(rollout: Callable, policy: Callable, gamma):
    """`grad_sample(key, θ)` = GPOMDP g(τ, θ) and `hvp_sample(key, θ, v)` = B(τ, θ)·v, each on one
    fresh trajectory τ = `rollout(key, θ)` of the policy `policy(θ, state, action)`."""

    def grad_sample(key, theta):
        return T.gpomdp(policy, theta, rollout(key, theta), gamma)

    def hvp_sample(key, theta, v):
        return T.hessian_vector(policy, theta, rollout(key, theta), gamma, v)

    return grad_sample, hvp_sample


def gaussian_problem(coeffs=G.REWARDS["quadratic"], sigma: float = 1.0, mu0: float = -1.0,
                     name: str = "gaussian") -> Problem:
    """The Gaussian bandit a ~ N(μ, σ²), θ = (μ,), σ fixed, reward r(a) = c0 + c1 a + c2 a² with
    c2 < 0 (concave: the optimum is finite). J(μ) = c0 + c1 μ + c2(μ² + σ²), maximised at
    μ* = −c1/(2c2) with J* = J(μ*) and J* − J(μ) = −c2(μ − μ*)² (cancellation-free). Oracles:
    REINFORCE g = r(a)(a − μ)/σ² and B·v = r(a)[((a − μ)/σ²)² − 1/σ²]v on one action each
    (`sims.trajectory` with H = 1). The Fisher information 1/σ² is constant: non-degenerate."""
    c = np.asarray(coeffs, dtype=np.float64).reshape(-1)
    if c.size != 3 or not c[2] < 0:
        raise InputError("the Gaussian problem needs a concave quadratic reward (c0, c1, c2), c2 < 0")
    G.validate(c, [mu0], sigma)
    mu_star = -c[1] / (2 * c[2])
    j_star = float(c[0] + c[1] * mu_star + c[2] * (mu_star**2 + sigma**2))
    cj = jnp.asarray(c)

    def rollout(key, theta):
        a = G.sample(key, theta, (), sigma)
        return L.Trajectory(jnp.zeros((1, 0), a.dtype), a.reshape(1, 1), G.polyval(cj, a).reshape(1))

    grad_sample, hvp_sample = trajectory_oracles(rollout, T.GaussianPolicy(sigma), 1.0)
    return Problem(
        name=name,
        theta0=np.array([float(mu0)]),
        objective=lambda th: G.objective(th, cj, sigma),
        grad_sample=grad_sample,
        hvp_sample=hvp_sample,
        j_star=j_star,
        gap=lambda th: -c[2] * (th[0] - mu_star) ** 2,
        description=f"Gaussian bandit, θ = μ (σ = {sigma:g} fixed), reward "
                    f"{c[0]:g} + {c[1]:g}a + {c[2]:g}a², μ_0 = {mu0:g}, μ* = {mu_star:g}, "
                    f"J* = {j_star:g}",
    )


def maximise_lqr(inst: L.LQR, sigma: float, start, iters: int = 50):
    """argmax_K J_H(K) over stationary gains by Newton's method on the exact recursion
    (`bandits.lqr.gradient`/`hessian`), from `start` (the discounted Riccati gain). Raises
    InputError unless it ends at a stationary point with a negative definite Hessian."""
    theta = jnp.asarray(np.asarray(start, dtype=np.float64).reshape(-1))
    for _ in range(iters):
        g = L.gradient(theta, inst, sigma)
        h = L.hessian(theta, inst, sigma)
        step = jnp.linalg.solve(h, -g)
        theta = theta + step
        if float(jnp.max(jnp.abs(step))) < 1e-15 * (1 + float(jnp.max(jnp.abs(theta)))):
            break
    g = np.asarray(L.gradient(theta, inst, sigma))
    h = np.asarray(L.hessian(theta, inst, sigma))
    if not (np.all(np.isfinite(g)) and np.max(np.abs(g)) < 1e-9 and np.linalg.eigvalsh(0.5 * (h + h.T)).max() < 0):
        raise InputError("Newton's method found no maximiser of J_H over stationary gains")
    return np.asarray(theta)


def lqr_problem(inst: L.LQR, sigma: float, theta0, name: str) -> Problem:
    """LQR with u ~ N(Kx, σ²I), θ = vec K (row-major), σ fixed; J = J_H exact (second-moment
    recursion), J* = max_K J_H(K) by Newton from the Riccati gain (`maximise_lqr`); oracles
    GPOMDP and B·v on one fresh H-step trajectory each. Fisher-non-degenerate: the per-step
    Fisher information of K is E[x xᵀ]/σ² ⪰ Σ_0/σ² ≻ 0 when Σ_0 ≻ 0."""
    theta0 = L.check_policy(inst, theta0, sigma)
    k_ric, _ = L.optimal_gain(inst)
    k_star = maximise_lqr(inst, sigma, k_ric)
    j_star = float(L.objective(jnp.asarray(k_star), inst, sigma))
    policy = T.LQRPolicy(sigma)
    grad_sample, hvp_sample = trajectory_oracles(
        lambda key, th: L.rollout(key, th, inst, sigma), policy, inst.gamma)
    d, m = inst.dims
    return Problem(
        name=name,
        theta0=np.asarray(theta0, dtype=np.float64),
        objective=lambda th: L.objective(th, inst, sigma),
        grad_sample=grad_sample,
        hvp_sample=hvp_sample,
        j_star=j_star,
        description=f"LQR d = {d}, m = {m}, H = {inst.horizon}, γ = {float(inst.gamma):g}, σ = {sigma:g} "
                    f"fixed, θ = vec K, K_0 = {np.round(theta0, 4).tolist()}, "
                    f"K* = {np.round(k_star, 6).tolist()} (Riccati {np.round(k_ric, 6).reshape(-1).tolist()}), "
                    f"J* = {j_star:.8g}",
    )


# ---------------------------------------------------------------------------------------------
# The paper's setting: bounded score, bounded reward, γ < 1, H growing with the accuracy
# ---------------------------------------------------------------------------------------------

MDP = dict(scale=1.0, centres=(1.0, -1.0), weights=(0.5, 1.0), slope=2.0, shift=1.0,
           start=(0.5, 0.5), gamma=0.5, theta0=(-0.5, 0.5))
MAX_HORIZON = 10_000
QUAD_NODES = 400  # Gauss–Legendre nodes on [−QUAD_RANGE, QUAD_RANGE] for E over a logistic action
QUAD_RANGE = 36.0  # logistic tail mass beyond it: 2e^{−36} ≈ 5e-16


def logistic_log_prob(theta, state, action, scale: float = MDP["scale"]):
    """log π(a | s; θ) of a ~ Logistic(μ_s, b), μ_s = θ·e_s (state one-hot), z = (a − μ_s)/b:
    −z − 2 log(1 + e^{−z}) − log b. Score ∂_μ log π = tanh(z/2)/b, |score| ≤ 1/b; ∂²_μ log π =
    −sech²(z/2)/(2b²), bounded; Fisher information 1/(3b²) per state visited, whatever θ
    (Fisher-non-degenerate, with the bounded score and Hessian of the paper's assumptions)."""
    z = (action[0] - jnp.dot(theta, state)) / scale
    return -z - 2.0 * jax.nn.softplus(-z) - jnp.log(scale)


def horizon_for(eps: float, gamma: float, r_max: float = 1.0) -> int:
    """The smallest H with γ^H r_max/(1 − γ) ≤ ε/10: J_H is then within ε/10 of the discounted
    infinite-horizon J at every θ (rewards in [0, r_max]), so H = O(log(1/ε)/(1 − γ))."""
    if not (0 < gamma < 1 and eps > 0 and r_max > 0):
        raise InputError("need 0 < γ < 1, ε > 0 and r_max > 0")
    h = max(1, int(np.ceil(np.log(eps * (1 - gamma) / (10 * r_max)) / np.log(gamma))))
    if h > MAX_HORIZON:
        raise InputError(f"ε = {eps:g} with γ = {gamma:g} needs H = {h} steps, over the limit of "
                         f"{MAX_HORIZON}")
    return h


def mdp_problem(eps: float = 1e-3, name: str = "mdp-logistic", **overrides) -> Problem:
    """A two-state MDP in the setting of Fatkhullin et al. (2023): θ ∈ ℝ² (one mean per state),
    a ~ Logistic(θ_s, b) (bounded score, Fisher-non-degenerate), reward
    r(s, a) = w_s exp(−(a − c_s)²/2) ∈ [0, 1], next state 1 with probability σ(κa − δ), start
    law ρ_0, discount γ < 1 and horizon H = `horizon_for(eps, γ)`. In state 0 a large action pays
    and leads to state 1, where the reward wants a < 0, which leads away: the optimum is interior.
    J = J_H exactly: r̄_s(θ_s) = E_a r(s, a) and p̄_s(θ_s) = E_a σ(κa − δ) by Gauss–Legendre
    quadrature of the logistic density, then ρ_{h+1} = ρ_h P(θ), J_H = Σ_{h<H} γ^h ρ_h·r̄. J* =
    max_θ J_H by Newton's method on the exact J (autodiff Hessian). Oracles: GPOMDP and B·v on
    one fresh H-step trajectory (`sims.trajectory`)."""
    unknown = set(overrides) - set(MDP)
    if unknown:
        raise InputError(f"unknown MDP settings {sorted(unknown)}; expected some of {', '.join(MDP)}")
    cfg = {**MDP, **overrides}
    b, gamma = float(cfg["scale"]), float(cfg["gamma"])
    if not (b > 0 and np.all(np.asarray(cfg["weights"]) >= 0) and np.all(np.asarray(cfg["weights"]) <= 1)):
        raise InputError("the MDP needs a positive scale b and reward weights in [0, 1]")
    c, w = jnp.asarray(cfg["centres"]), jnp.asarray(cfg["weights"])
    kappa, delta = float(cfg["slope"]), float(cfg["shift"])
    start = jnp.asarray(cfg["start"], jnp.float64)
    horizon = horizon_for(eps, gamma, float(np.max(cfg["weights"])))
    x, wq = np.polynomial.legendre.leggauss(QUAD_NODES)
    x, wq = x * QUAD_RANGE, wq * QUAD_RANGE
    dens = jnp.asarray(wq * np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))) ** 2)
    x = jnp.asarray(x)

    def reward(s_onehot, a):
        return jnp.dot(w, s_onehot) * jnp.exp(-0.5 * (a - jnp.dot(c, s_onehot)) ** 2)

    def objective(theta):
        a = theta[:, None] + b * x[None, :]  # (2, nodes)
        rbar = (w[:, None] * jnp.exp(-0.5 * (a - c[:, None]) ** 2)) @ dens
        pbar = jax.nn.sigmoid(kappa * a - delta) @ dens
        trans = jnp.stack([1 - pbar, pbar], axis=1)

        def body(carry, _):
            rho, disc = carry
            return (rho @ trans, disc * gamma), disc * (rho @ rbar)

        _, vals = jax.lax.scan(body, (start, jnp.float64(1.0)), None, length=horizon)
        return jnp.sum(vals)

    def rollout(key, theta):
        k0, ks = jax.random.split(key)
        s0 = jax.random.bernoulli(k0, start[1]).astype(jnp.int32)

        def body(s, k):
            ka, kn = jax.random.split(k)
            e = jax.nn.one_hot(s, 2, dtype=jnp.float64)
            a = theta[s] + b * jax.random.logistic(ka, dtype=jnp.float64)
            nxt = jax.random.bernoulli(kn, jax.nn.sigmoid(kappa * a - delta)).astype(jnp.int32)
            return nxt, (e, a.reshape(1), reward(e, a))

        _, (states, actions, rewards) = jax.lax.scan(body, s0, jax.random.split(ks, horizon))
        return L.Trajectory(states, actions, rewards)

    policy = functools.partial(logistic_log_prob, scale=b)
    grad_sample, hvp_sample = trajectory_oracles(rollout, policy, gamma)
    grid = np.stack(np.meshgrid(np.linspace(-3, 3, 61), np.linspace(-3, 3, 61)), -1).reshape(-1, 2)
    theta = jnp.asarray(grid[int(np.argmax(np.asarray(jax.jit(jax.vmap(objective))(grid))))])
    grad, hess = jax.jit(jax.grad(objective)), jax.jit(jax.hessian(objective))
    for _ in range(60):
        step = jnp.linalg.solve(hess(theta), -grad(theta))
        theta = theta + step
        if float(jnp.max(jnp.abs(step))) < 1e-14:
            break
    h = np.asarray(hess(theta))
    if not (np.max(np.abs(np.asarray(grad(theta)))) < 1e-10 and np.linalg.eigvalsh(h).max() < 0):
        raise InputError("Newton's method found no maximiser of the MDP's J_H")
    theta_star = np.asarray(theta)
    j_star = float(objective(theta))
    return Problem(
        name=name,
        theta0=np.asarray(cfg["theta0"], dtype=np.float64),
        objective=objective,
        grad_sample=grad_sample,
        hvp_sample=hvp_sample,
        j_star=j_star,
        description=f"two-state MDP, logistic policy a ~ Logistic(θ_s, {b:g}) (bounded score), "
                    f"reward w_s exp(−(a − c_s)²/2) ∈ [0, 1], w = {list(cfg['weights'])}, "
                    f"c = {list(cfg['centres'])}, P(s' = 1) = σ({kappa:g}a − {delta:g}), "
                    f"γ = {gamma:g}, H = {horizon} (γ^H/(1 − γ) ≤ ε/10 for ε = {eps:g}), "
                    f"θ_0 = {list(cfg['theta0'])}, θ* = {np.round(theta_star, 6).tolist()}, "
                    f"J* = {j_star:.8g}",
    )


LQR1 = dict(A=1.0, B=1.0, Q=1.0, R=1.0, horizon=50, gamma=1.0, init_cov=1.0, noise_cov=0.01)
LQR2 = dict(A=[[1.0, 0.2], [0.0, 0.9]], B=[[0.0], [1.0]], Q=1.0, R=1.0, horizon=50, gamma=1.0,
            init_cov=1.0, noise_cov=0.01)
LQR_SIGMA = 0.5


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


@register("gaussian", "Gaussian bandit, θ = μ, σ = 1 fixed, reward −(a − 1)², μ_0 = −1 (J* = −1)")
def _gaussian():
    return gaussian_problem()


@register("lqr1", "scalar LQR x' = x + u + w, Q = R = 1, Σ_0 = 1, Σ_w = 0.01, H = 50, σ = 0.5, K_0 = −0.2")
def _lqr1():
    return lqr_problem(L.make(**LQR1), LQR_SIGMA, [-0.2], "lqr1")


@register("lqr2", "2-D LQR A = [[1, 0.2], [0, 0.9]], B = (0, 1)ᵀ, Q = I, R = 1, Σ_0 = I, "
          "Σ_w = 0.01 I, H = 50, σ = 0.5, K_0 = (−0.5, −0.5)")
def _lqr2():
    return lqr_problem(L.make(**LQR2), LQR_SIGMA, [-0.5, -0.5], "lqr2")


@register("mdp-logistic", "two-state MDP in the paper's setting: logistic policy (bounded score, "
          "Fisher-non-degenerate), rewards in [0, 1], γ = 0.5, H = 15 (from ε = 1e-3), θ ∈ ℝ²")
def _mdp_logistic():
    return mdp_problem(1e-3)
