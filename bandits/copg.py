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

import dataclasses
import functools
import math
from fractions import Fraction
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bandits.errors import InputError, check_seed

METHODS = ("copg", "pg", "pg_value", "pg_soft_value", "ipo", "dpo")
PG_BASELINES = {"pg": "none", "pg_value": "value", "pg_soft_value": "soft_value"}
DEFAULTS = {"pairs": 10_000, "epochs": 100, "batch": 512, "lr": 1e-3}
_PROB_TOL = 1e-6
# Size limits, refused up front with the limit named (memory: the 2K² pair cells, per-minibatch
# cell counts and the logged data; time: the number of Adam steps).
MAX_ARMS = 1024
MAX_PAIRS = 10_000_000
MAX_EPOCHS = 100_000
MAX_ADAM_STEPS = 10_000_000
MAX_COUNT_ENTRIES = 1 << 26  # minibatches per epoch × 2K² cell counts
MAX_SCALE = 1e100  # |R|, β, 1/β and |R|/β: squares of the log-ratios must stay finite

# The paper's toy experiment (docs/design.md §4.4).
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


# ---------------------------------------------------------------------------------------------
# Trainers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """Logits after every epoch (index 0 = start) and the matching regrets.

    logits: (..., E + 1, K), regret: (..., E + 1); leading axes are problems and/or seeds."""

    method: str
    logits: np.ndarray
    regret: np.ndarray


def _init(problem: Problem, init):
    return problem.log_ref if init is None else jnp.asarray(init, dtype=problem.rewards.dtype)


def shuffle(key, n: int):
    """A uniformly random permutation of 0..n−1 (n < 2³²): sort 64-bit words whose high half
    is a random 32-bit key and low half the index, then keep the low halves. One integer sort
    (several times faster than an argsort on CPU); equal keys, which occur with probability
    about n²/2³³, are ordered by index."""
    bits = jax.random.bits(key, (n,), dtype=jnp.uint32)
    if not jax.config.jax_enable_x64:  # no 64-bit words: sort (key, index) pairs instead
        return jax.lax.sort((bits, jnp.arange(n, dtype=jnp.int32)), num_keys=1)[1]
    words = jnp.sort((bits.astype(jnp.uint64) << 32) | jnp.arange(n, dtype=jnp.uint64))
    return (words & jnp.uint64(0xFFFFFFFF)).astype(jnp.int32)


def _minibatch_core(fn, problem: Problem, seed, init, lr, pairs: int, epochs: int, batch: int):
    """One seed: draw the data set, then `epochs` passes of shuffled minibatches with Adam."""
    nb = -(-pairs // batch)
    padded = nb * batch
    opt = optax.adam(lr)
    kd, ks = jax.random.split(jax.random.key(seed))
    data = sample_pairs(kd, problem, pairs)
    k = problem.rewards.shape[-1]
    cell = cell_index(data, k)
    mask = (jnp.arange(padded) < pairs).astype(init.dtype).reshape(nb, batch)
    grad = jax.grad(lambda theta, counts: cell_loss(fn, theta, problem, counts))

    def step(carry, counts):
        theta, state = carry
        upd, state = opt.update(grad(theta, counts), state, theta)
        return (optax.apply_updates(theta, upd), state), None

    def epoch(carry, key):
        perm = shuffle(key, pairs)
        idx = jnp.concatenate([perm, jnp.zeros(padded - pairs, perm.dtype)]).reshape(nb, batch)
        rows = jnp.broadcast_to(jnp.arange(nb)[:, None], (nb, batch))
        counts = jnp.zeros((nb, 2 * k * k), init.dtype).at[rows, cell[idx]].add(mask)  # per-minibatch cell counts
        carry, _ = jax.lax.scan(step, carry, counts)
        return carry, carry[0]

    (_, _), thetas = jax.lax.scan(epoch, (init, opt.init(init)), jax.random.split(ks, epochs))
    return jnp.concatenate([init[None], thetas])


@functools.partial(jax.jit, static_argnames=("fn", "pairs", "epochs", "batch", "over_problems"))
def _train_jit(fn, problem, seeds, init, lr, pairs, epochs, batch, over_problems):
    per_seed = jax.vmap(lambda p, s, i: _minibatch_core(fn, p, s, i, lr, pairs, epochs, batch),
                        in_axes=(None, 0, None))
    run = jax.vmap(per_seed, in_axes=(0, None, 0)) if over_problems else per_seed
    thetas = run(problem, seeds, init)
    reg = jax.vmap(regret, in_axes=(0, None))
    if over_problems:
        return thetas, jax.vmap(jax.vmap(reg, in_axes=(0, None)))(thetas, problem)
    return thetas, jax.vmap(reg, in_axes=(0, None))(thetas, problem)


def _check_budget(pairs, epochs, batch, lr, k: int | None = None):
    for name, v, top in (("pairs", pairs, MAX_PAIRS), ("epochs", epochs, MAX_EPOCHS), ("batch", batch, None)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
        if top is not None and v > top:
            raise InputError(f"{name} = {v:,} exceeds the limit of {top:,}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"learning rate must be a finite number > 0, got {lr!r}")
    per_epoch = -(-pairs // min(batch, pairs))
    if epochs * per_epoch > MAX_ADAM_STEPS:
        raise InputError(f"{epochs:,} epochs × {per_epoch:,} minibatches = {epochs * per_epoch:,} Adam steps "
                         f"exceed the limit of {MAX_ADAM_STEPS:,}")
    if k is not None and per_epoch * 2 * k * k > MAX_COUNT_ENTRIES:
        raise InputError(f"{per_epoch:,} minibatches × {2 * k * k:,} pair cells exceed the limit of "
                         f"{MAX_COUNT_ENTRIES:,} count entries per epoch")


def _seeds(seeds) -> jax.Array:
    return jnp.asarray(np.asarray([check_seed(s) for s in np.asarray(seeds, dtype=object).reshape(-1)],
                                  dtype=np.int64))


def train(method, problem: Problem, seeds, pairs: int = DEFAULTS["pairs"],
          epochs: int = DEFAULTS["epochs"], batch: int = DEFAULTS["batch"],
          lr: float = DEFAULTS["lr"], init=None) -> Run:
    """Minibatch training on a logged data set, one data set and shuffle stream per seed.

    For each seed s: (k_data, k_shuffle) = split(jax.random.key(s)); `pairs` pairs are drawn
    with `sample_pairs(k_data, ...)`; every epoch shuffles them (`shuffle`) and takes
    ⌈pairs/batch⌉ Adam steps on the mean loss of each minibatch (the last minibatch is the
    remainder, averaged over its real members). A minibatch enters through its counts per
    (y, y', z) cell (`cell_loss`), which is the same loss as the per-pair average and much
    cheaper. All seeds run vmapped in one jit. Returns logits and regret
    after every epoch, shapes (S, E + 1, K) and (S, E + 1). Default budget of docs/design.md §4.4:
    10⁴ pairs, batch 512, 100 epochs, Adam lr 1e-3; start at π_ref."""
    fn = loss_fn(method)
    _check_budget(pairs, epochs, batch, lr, problem.rewards.shape[-1])
    seeds = _seeds(seeds)
    thetas, reg = _train_jit(fn, problem, seeds, _init(problem, init), float(lr), int(pairs),
                             int(epochs), int(min(batch, pairs)), False)
    return Run(method if isinstance(method, str) else getattr(fn, "__name__", "custom"),
               np.asarray(thetas), np.asarray(reg))


def train_problems(method, problems: Problem, seeds, pairs: int = DEFAULTS["pairs"],
                   epochs: int = DEFAULTS["epochs"], batch: int = DEFAULTS["batch"],
                   lr: float = DEFAULTS["lr"]) -> Run:
    """`train` vmapped over stacked problems (leading axis P) and seeds: shapes (P, S, E+1, K)."""
    fn = loss_fn(method)
    _check_budget(pairs, epochs, batch, lr, problems.rewards.shape[-1])
    seeds = _seeds(seeds)
    thetas, reg = _train_jit(fn, problems, seeds, problems.log_ref, float(lr), int(pairs),
                             int(epochs), int(min(batch, pairs)), True)
    return Run(method if isinstance(method, str) else "custom", np.asarray(thetas), np.asarray(reg))


def _population_adam_step(fn, problem, opt):
    """One optimiser step on the exact population loss; a `lax.scan` body over (θ, state)."""
    grad = jax.grad(lambda t: population_loss(fn, t, problem))

    def step(carry, _):
        theta, state = carry
        upd, state = opt.update(grad(theta), state, theta)
        return (optax.apply_updates(theta, upd), state), None

    return step


@functools.partial(jax.jit, static_argnames=("fn", "steps", "record_every"))
def _exact_jit(fn, problem, init, lr, steps, record_every):
    opt = optax.adam(lr)
    step = _population_adam_step(fn, problem, opt)

    def block(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=record_every)
        return carry, carry[0]

    _, thetas = jax.lax.scan(block, (init, opt.init(init)), None, length=steps // record_every)
    thetas = jnp.concatenate([init[None], thetas])
    return thetas, jax.vmap(regret, in_axes=(0, None))(thetas, problem)


def train_exact(method, problem: Problem, epochs: int = DEFAULTS["epochs"],
                steps_per_epoch: int | None = None, lr: float = DEFAULTS["lr"], init=None) -> Run:
    """Adam on the exact expected gradient (`expected_gradient`): the population limit of
    `train` with the same optimiser budget. `steps_per_epoch` defaults to ⌈10⁴/512⌉ = 20, so the
    default is the same 2000 Adam steps at lr 1e-3; logits are recorded once per epoch."""
    fn = loss_fn(method)
    spe = -(-DEFAULTS["pairs"] // DEFAULTS["batch"]) if steps_per_epoch is None else steps_per_epoch
    _check_budget(1, epochs, spe, lr)
    thetas, reg = _exact_jit(fn, problem, _init(problem, init), float(lr), int(epochs * spe),
                             int(spe))
    return Run(method if isinstance(method, str) else "custom", np.asarray(thetas), np.asarray(reg))


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    """Where a population-limit update comes to rest: logits, π, regret, the residual
    |E[∇ loss]| there, the iterations taken (`steps`) and whether the residual fell below the
    tolerance within the step cap (`converged`)."""

    method: str
    logits: np.ndarray
    pi: np.ndarray
    regret: np.ndarray
    grad_norm: np.ndarray
    steps: np.ndarray
    converged: np.ndarray


# The convergence search: blocks of `block` Adam steps (learning rate decayed exponentially from
# `lr` to `final_lr` over `decay_steps`, then held) each followed by `newton` safeguarded Newton
# steps, until |E[∇ loss]| < `tol` or `max_steps` iterations (Adam and Newton) have been taken.
FIXED_POINT = {"tol": 1e-10, "max_steps": 100_000, "block": 500, "lr": 0.05, "final_lr": 1e-5,
               "decay_steps": 20_000, "newton": 8}
MAX_STEPS_LIMIT = 10_000_000


def _fixed_point_core(method, problem, init, tol, max_steps, block, lr, final_lr, decay_steps, newton):
    """One iteration per loop turn: Adam steps, except that every (block + newton) iterations
    end with `newton` Newton steps; stops as soon as the residual is below `tol`."""
    fn, field = loss_fn(method), ascent_field(method)
    sched = optax.exponential_decay(lr, decay_steps, final_lr / lr, end_value=final_lr)
    opt = optax.adam(sched)
    grad = jax.grad(lambda t: population_loss(fn, t, problem))
    norm = lambda t: jnp.linalg.norm(field(t, problem))  # noqa: E731

    def adam_step(theta, state):
        upd, state = opt.update(grad(theta), state, theta)
        return optax.apply_updates(theta, upd), state

    def newton_step(theta, state):
        g = field(theta, problem)
        jac = jax.jacfwd(field)(theta, problem)
        cand = jax.nn.log_softmax(theta - jnp.linalg.pinv(jac, rtol=1e-10) @ g)
        better = jnp.all(jnp.isfinite(cand)) & (norm(cand) < jnp.linalg.norm(g))
        return jnp.where(better, cand, theta), state

    def body(carry):
        theta, state, i, _ = carry
        theta, state = jax.lax.cond(i % (block + newton) < block, adam_step, newton_step, theta, state)
        return theta, state, i + 1, norm(theta)

    def cond(carry):
        _, _, i, residual = carry
        return (residual >= tol) & (i < max_steps) & jnp.isfinite(residual)

    init = jax.nn.log_softmax(init)
    carry = (init, opt.init(init), jnp.asarray(0, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32),
             norm(init))
    theta, _, steps, residual = jax.lax.while_loop(cond, body, carry)
    theta = jax.nn.log_softmax(theta)
    return theta, regret(theta, problem), residual, steps, residual < tol


_STATIC = ("method", "tol", "max_steps", "block", "lr", "final_lr", "decay_steps", "newton")
_fixed_point_jit = jax.jit(_fixed_point_core, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _fixed_points_jit(method, problems, tol, max_steps, block, lr, final_lr, decay_steps, newton):
    return jax.vmap(lambda p: _fixed_point_core(method, p, p.log_ref, tol, max_steps, block, lr,
                                                final_lr, decay_steps, newton))(problems)


def _search_options(method, tol, max_steps) -> dict:
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise InputError(f"tolerance must be a finite number > 0, got {tol!r}")
    if not isinstance(max_steps, (int, np.integer)) or not 1 <= max_steps <= MAX_STEPS_LIMIT:
        raise InputError(f"the step cap must be an integer in [1, {MAX_STEPS_LIMIT:,}], got {max_steps!r}")
    o = {k: FIXED_POINT[k] for k in ("block", "lr", "final_lr", "decay_steps", "newton")}
    return {"tol": float(tol), "max_steps": int(max_steps), **o}


def fixed_point(method: str, problem: Problem, tol: float = FIXED_POINT["tol"],
                max_steps: int = FIXED_POINT["max_steps"], init=None) -> FixedPoint:
    """The population limit of `method`: iterate exact expected gradients from π_ref (or `init`)
    until |E[∇ loss]| < `tol`, or until `max_steps` iterations, reported as `converged = False`.

    The iteration (`FIXED_POINT`): blocks of Adam steps on the exact population loss with the
    learning rate decayed from 0.05 to 1e-5, each followed by safeguarded Newton steps on the
    ascent field (pseudo-inverse of its Jacobian; a step is kept only if it shrinks the field).
    `steps` counts both kinds. Works on stacked problems via `fixed_points`."""
    o = _search_options(method, tol, max_steps)
    theta, reg, gn, steps, ok = _fixed_point_jit(method, problem, _init(problem, init), **o)
    return FixedPoint(method, np.asarray(theta), np.asarray(jax.nn.softmax(theta)),
                      np.asarray(reg), np.asarray(gn), np.asarray(steps), np.asarray(ok))


def fixed_points(method: str, problems: Problem, tol: float = FIXED_POINT["tol"],
                 max_steps: int = FIXED_POINT["max_steps"]) -> FixedPoint:
    """`fixed_point` vmapped over stacked problems (one jit); every field gains a leading axis."""
    o = _search_options(method, tol, max_steps)
    theta, reg, gn, steps, ok = _fixed_points_jit(method, problems, **o)
    return FixedPoint(method, np.asarray(theta), np.asarray(jax.nn.softmax(theta)),
                      np.asarray(reg), np.asarray(gn), np.asarray(steps), np.asarray(ok))


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
