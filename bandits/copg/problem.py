"""Contrastive policy gradient (CoPG) and its baselines on logged pairs of a softmax bandit.

Reference: Flet-Berliac et al. (2024), "Contrastive Policy Gradient: Aligning LLMs on
sequence-level scores in a supervised-friendly fashion"; IPO from Azar et al. (2023), DPO from
Rafailov et al. (2023); docs/design.md §4.4. The symbolic side lives in `theory.copg`.

Problem. K arms with deterministic rewards R, temperature β > 0, reference policy π_ref (full
support), and two sampling laws μ1, μ2 (full support) that produced a logged data set of pairs
(y, y') with y ~ μ1 and y' ~ μ2 drawn independently. Each pair carries a Bradley–Terry label
z ~ Bernoulli(σ(R_y − R_y')): z = 1 means "y preferred to y'". The policy is π = softmax(θ),
started at π_ref (θ_0 = ln π_ref).

    h(a)      = ln π_a − ln π_ref,a                     (log-ratio)
    R_β^π(a)  = R_a − β h(a)                            (regularised reward)
    J_β(π)    = Σ_a π_a R_β^π(a) = E_π[R] − β KL(π‖π_ref)
    π*        ∝ π_ref e^{R/β},  J_β(π*) = β ln Σ_a π_ref,a e^{R_a/β}
    regret(π) = J_β(π*) − J_β(π) = β KL(π‖π*) ≥ 0    (computed in the KL form: exact near 0)

Per-pair losses (all minimised; ΔR = R_y − R_y', Δh = h(y) − h(y'), s = 2z − 1). Each loss
function `loss(logits, problem, y, y2, label)` broadcasts over arrays of pairs:

    copg      −ℓ,  ℓ = ΔR·Δh − (β/2)·Δh²   (the CoPG objective; ∇ℓ = (R_β^π(y) − R_β^π(y'))(e_y − e_y'))
    pg             −½ Σ_{a∈{y,y'}} sg[R_β^π(a)] · ln π_a
    pg_value       −½ Σ_{a∈{y,y'}} sg[R_β^π(a) − E_π[R]] · ln π_a     (the paper's value baseline)
    pg_soft_value  −½ Σ_{a∈{y,y'}} sg[R_β^π(a) − J_β(π)] · ln π_a     (the lab's variant)
    ipo       (s·Δh − 1/(2β))²              (IPO with τ = β on the Bradley–Terry labels)
    dpo       −ln σ(β·s·Δh)                  (DPO on the Bradley–Terry labels)

sg is stop-gradient. "Off-policy PG" treats both members of every logged pair as samples of
the current policy and applies the on-policy estimator of ∇J_β = E_π[R_β^π(a) ∇ln π_a] to them,
so its expected update is E_μ̄[(R_β^π(a) − b) ∇ln π_a] with μ̄ = (μ1 + μ2)/2 and

    b = 0                              pg
    b = E_π[R] = Σ_a π_a R_a           pg_value: the paper's "value baseline" (§5, eq. 23–24), the
                                       unregularised expected reward of the current policy, exact
    b = J_β(π)                         pg_soft_value: the regularised value (a variant of the lab)

On policy (μ̄ = π) all three are ∇J_β. Off policy all are biased estimates of ∇J_β. Since
R_β^{π*} ≡ J_β(π*), the update at π* is (J_β(π*) − b)(μ̄ − π*): without a baseline it is
J_β(π*)(μ̄ − π*); with the paper's value baseline it is −β KL(π*‖π_ref)(μ̄ − π*), so both come
to rest elsewhere (the paper's "biased solution"; on its toy π ≈ (0.8116, 0.1675, 0.0209),
regret ≈ 0.0148); with the soft value every advantage vanishes at π*, so π* is a fixed point for
any μ̄ even though the path to it differs from gradient ascent on J_β. CoPG is unbiased in the sense that its population objective
is maximised at π* for any full-support μ1, μ2, with no value function needed. DPO with
labels from the Bradley–Terry model of R is consistent too (its population optimum is π*); IPO's
population optimum is the weighted least-squares fit of Δh to (2σ(ΔR) − 1)/(2β), generally ≠ π*.

Numerics are meant for float64 (`import sims` turns it on, docs/design.md §3).

Expected (population) quantities sum over all K×K pairs with weights μ1_y μ2_y' and average the
label over its Bernoulli law. Trainers use Adam (optax); minibatch runs are vmapped over seeds in
one jit.
"""


from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError

_PROB_TOL = 1e-6
MAX_ARMS = 1024
MAX_SCALE = 1e100  # |R|, β, 1/β and |R|/β: squares of the log-ratios must stay finite

TOY = {
    "rewards": (2.5, 2.0, 1.0),
    "beta": 0.5,
    "mu1": (0.1, 0.2, 0.7),
    "mu2": (0.05, 0.05, 0.9),
    "ref": (1 / 3, 1 / 3, 1 / 3),
}


class Problem(NamedTuple):
    """A logged-pairs bandit problem; a JAX pytree, so it can be vmapped (stacked problems)."""

    rewards: jax.Array  # (K,)
    beta: jax.Array  # ()
    log_ref: jax.Array  # (K,)  ln π_ref
    mu1: jax.Array  # (K,)
    mu2: jax.Array  # (K,)


class Pairs(NamedTuple):
    """A logged data set: y ~ μ1, y' ~ μ2 (independent), label z = 1 if y is preferred."""

    y: jax.Array  # (N,) int
    y2: jax.Array  # (N,) int
    label: jax.Array  # (N,) float in {0, 1}


# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------


def parse_vector(text: str, what: str) -> np.ndarray:
    """Comma-separated finite numbers; fractions such as 1/3 are accepted."""
    tokens = [t.strip() for t in str(text).split(",")]
    if not tokens or any(t == "" for t in tokens):
        raise InputError(f"{what}: expected comma-separated numbers, got {text!r}")
    out = []
    for t in tokens:
        try:
            out.append(float(Fraction(t)))
        except (ValueError, ZeroDivisionError, OverflowError):
            raise InputError(f"{what}: cannot read {t!r} as a finite number or fraction") from None
    return np.asarray(out, dtype=np.float64)


def _finite(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise InputError(f"{what}: no numbers given")
    if not np.all(np.isfinite(x)):
        raise InputError(f"{what}: every entry must be a finite number")
    return x


def _law(x, what: str, k: int) -> np.ndarray:
    """A probability vector with full support (every entry > 0), renormalised exactly."""
    x = _finite(x, what)
    if x.size != k:
        raise InputError(f"{what} has {x.size} entries but there are {k} rewards")
    if np.any(x < 0) or np.any(x > 1):
        raise InputError(f"{what}: probabilities must lie in [0, 1]")
    if np.any(x == 0):
        raise InputError(f"{what} must have full support (every probability > 0)")
    if abs(x.sum() - 1.0) > _PROB_TOL:
        raise InputError(f"{what}: probabilities sum to {x.sum():.10g}, not 1")
    return x / x.sum()


def make_problem(rewards, beta, mu1, mu2, ref=None) -> Problem:
    """Validate and build a `Problem` (float64). `ref` defaults to the uniform policy.

    Raises InputError for: fewer than 2 arms, non-finite numbers, lengths that differ, a law
    without full support or not summing to 1, β ≤ 0."""
    r = _finite(rewards, "rewards")
    if r.size < 2:
        raise InputError("rewards: a bandit needs at least 2 arms")
    if r.size > MAX_ARMS:
        raise InputError(f"rewards: {r.size:,} arms exceed the limit of {MAX_ARMS:,} (2K² pair cells)")
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise InputError(f"beta: cannot read {beta!r} as a number") from None
    if not math.isfinite(b) or b <= 0:
        raise InputError(f"beta must be a finite number > 0, got {b:g}")
    if not 1 / MAX_SCALE <= b <= MAX_SCALE:
        raise InputError(f"beta must lie in [{1 / MAX_SCALE:g}, {MAX_SCALE:g}], got {b:g}")
    if np.max(np.abs(r)) > MAX_SCALE or np.max(np.abs(r)) / b > MAX_SCALE:
        raise InputError(f"rewards: |R| and |R|/β must be at most {MAX_SCALE:g} "
                         f"(got max |R| = {np.max(np.abs(r)):g}, β = {b:g})")
    k = r.size
    m1, m2 = _law(mu1, "mu1", k), _law(mu2, "mu2", k)
    q = np.full(k, 1.0 / k) if ref is None else _law(ref, "ref", k)
    return Problem(jnp.asarray(r), jnp.asarray(b), jnp.asarray(np.log(q)), jnp.asarray(m1),
                   jnp.asarray(m2))


def toy_problem() -> Problem:
    """The paper's 3-armed toy: R = (2.5, 2, 1), β = 0.5, uniform π_ref, μ1, μ2 of `TOY`."""
    return make_problem(TOY["rewards"], TOY["beta"], TOY["mu1"], TOY["mu2"], TOY["ref"])


def stack(problems) -> Problem:
    """Stack problems of the same K along a leading axis (for vmapped trainers)."""
    return Problem(*[jnp.stack(xs) for xs in zip(*problems)])


# ---------------------------------------------------------------------------------------------
# The regularised objective and its optimum
# ---------------------------------------------------------------------------------------------


def _b(problem: Problem):
    """β with a trailing axis, so the arm-wise formulas also serve stacked problems (P, K)."""
    return jnp.asarray(problem.beta)[..., None]


@jax.jit
def log_ratio(logits, problem: Problem):
    """h(a) = ln π_a − ln π_ref,a."""
    return jax.nn.log_softmax(logits, axis=-1) - problem.log_ref


@jax.jit
def regularised_reward(logits, problem: Problem):
    """R_β^π(a) = R_a − β ln(π_a/π_ref,a)."""
    return problem.rewards - _b(problem) * log_ratio(logits, problem)


@jax.jit
def objective(logits, problem: Problem):
    """J_β(π) = Σ_a π_a R_β^π(a) = E_π[R] − β KL(π‖π_ref)."""
    return jnp.sum(jax.nn.softmax(logits) * regularised_reward(logits, problem), axis=-1)


@jax.jit
def expected_reward(logits, problem: Problem):
    """E_π[R] = Σ_a π_a R_a (unregularised)."""
    return jnp.sum(jax.nn.softmax(logits) * problem.rewards, axis=-1)


@jax.jit
def optimal_logits(problem: Problem):
    """ln π* = ln π_ref + R/β − ln Σ_a π_ref,a e^{R_a/β}."""
    return jax.nn.log_softmax(problem.log_ref + problem.rewards / _b(problem))


@jax.jit
def optimal_policy(problem: Problem):
    """π* ∝ π_ref e^{R/β}."""
    return jax.nn.softmax(problem.log_ref + problem.rewards / _b(problem))


@jax.jit
def optimal_value(problem: Problem):
    """J_β(π*) = β ln Σ_a π_ref,a e^{R_a/β}."""
    return problem.beta * jax.nn.logsumexp(problem.log_ref + problem.rewards / _b(problem), axis=-1)


@jax.jit
def regret(logits, problem: Problem):
    """J_β(π*) − J_β(π) = β KL(π‖π*), evaluated in the KL form (non-negative, accurate near 0)."""
    lp = jax.nn.log_softmax(logits)
    kl = jnp.sum(jnp.exp(lp) * (lp - optimal_logits(problem)), axis=-1)
    return problem.beta * jnp.maximum(kl, 0.0)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def preference_probabilities(problem: Problem):
    """P[y, y'] = σ(R_y − R_y'), the Bradley–Terry probability that y is preferred."""
    return jax.nn.sigmoid(problem.rewards[:, None] - problem.rewards[None, :])


def sample_pairs(key, problem: Problem, n: int) -> Pairs:
    """n logged pairs: y ~ μ1, y' ~ μ2 independent, label ~ Bernoulli(σ(R_y − R_y'))."""
    k1, k2, k3 = jax.random.split(key, 3)
    y = jax.random.categorical(k1, jnp.log(problem.mu1), shape=(n,))
    y2 = jax.random.categorical(k2, jnp.log(problem.mu2), shape=(n,))
    p = jax.nn.sigmoid(problem.rewards[y] - problem.rewards[y2])
    label = (jax.random.uniform(k3, (n,), dtype=p.dtype) < p).astype(p.dtype)
    return Pairs(y, y2, label)


# ---------------------------------------------------------------------------------------------
# Summaries and problem families
# ---------------------------------------------------------------------------------------------


def mean_ci(x, axis: int = 0, level: float = 0.95):
    """Mean over `axis` with a Student-t confidence interval: (mean, lo, hi)."""
    from scipy.stats import t as student_t

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = student_t.ppf(0.5 + level / 2, n - 1) * x.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def total_variation(p, q):
    """TV(p, q) = ½ Σ |p − q|."""
    return 0.5 * jnp.sum(jnp.abs(jnp.asarray(p) - jnp.asarray(q)), axis=-1)


def distance_from_optimum(problem: Problem):
    """½ (TV(μ1, π*) + TV(μ2, π*)): how far the logging laws are from the optimum."""
    star = optimal_policy(problem)
    return 0.5 * (total_variation(problem.mu1, star) + total_variation(problem.mu2, star))


def random_problems(seed: int, k: int, n: int, beta: float = 0.5, reward_scale: float = 1.0,
                    floor: float = 1e-3) -> Problem:
    """n stacked K-armed problems sharing rewards R ~ U(0, reward_scale)^K (drawn once), β and a
    uniform π_ref, with logging laws spread from π* outwards:

        μ_i = (1 − t)·π* + t·d_i,  d_i ~ Dirichlet(1, ..., 1),  t ~ U(0, 1),

    independently for μ1 and μ2, then floored at `floor` and renormalised (full support).
    numpy default_rng(seed) drives every draw."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.0, reward_scale, size=k)
    base = make_problem(r, beta, np.full(k, 1 / k), np.full(k, 1 / k))
    star = np.asarray(optimal_policy(base))
    out = []
    for _ in range(n):
        laws = []
        for _ in range(2):
            t = rng.uniform()
            m = (1 - t) * star + t * rng.dirichlet(np.ones(k))
            m = np.maximum(m, floor)
            laws.append(m / m.sum())
        out.append(make_problem(r, beta, laws[0], laws[1]))
    return stack(out)
