"""N-PG-IGT, (N)-HARPG and their baselines as pure JAX step functions (docs/design.md §4.7).

Fatkhullin, Barakat, Kireeva & He (ICML 2023), "Stochastic Policy Gradient Methods: Improved
Sample Complexity for Fisher-non-degenerate Policies": Algorithm 1 (N-PG-IGT) and Algorithm 2
((N)-HARPG). J is maximised; g(τ, θ) is a one-trajectory gradient estimate and B(τ, θ)·v a
one-trajectory Hessian-vector estimate.

A problem is a `Problem`: an exact objective and two sampling oracles,

    grad_sample(key, θ) -> g            one trajectory τ ~ p(·|θ), g(τ, θ)
    hvp_sample(key, θ, v) -> B v        one trajectory τ ~ p(·|θ), B(τ, θ)·v

so the softmax bandit, the Gaussian bandit and LQR plug in the same way. The state of every
method is `State(theta, theta_prev, d, t, key)`: θ_t, θ_{t−1}, d_{t−1}, t and the run's key
(initially θ_{−1} = θ_0 and d_{−1} = 0). With ρ_t = 2/(t+2):

| method | direction d_t | step θ_{t+1} − θ_t | η_t | γ_t | trajectories |
|---|---|---|---|---|---|
| `pg` (GPOMDP) | g(τ_t, θ_t) | γ_t d_t | – | γ_0 ρ_t^{2/3} | 1 |
| `pg-const` | g(τ_t, θ_t) | γ_0 d_t | – | γ_0 | 1 |
| `n-pg-m` | (1−η_t)d_{t−1} + η_t g(τ_t, θ_t) | γ_t d_t/‖d_t‖ | ρ_t^{2/3} | γ_0 ρ_t | 1 |
| `n-pg-igt` | (1−η_t)d_{t−1} + η_t g(τ̃_t, θ̃_t) | γ_t d_t/‖d_t‖ | ρ_t^{4/5} | γ_0 ρ_t | 1 |
| `harpg` | (1−η_t)(d_{t−1} + v_t) + η_t g(τ_t, θ_t) | γ_t d_t | ρ_t | γ_0 ρ_t^{1/2} | 2 |
| `n-harpg` | (1−η_t)(d_{t−1} + v_t) + η_t g(τ_t, θ_t) | γ_t d_t/‖d_t‖ | ρ_t | γ_0 ρ_t | 2 |

with the look-ahead θ̃_t = θ_t + ((1−η_t)/η_t)(θ_t − θ_{t−1}) (implicit gradient transport), and
the Hessian correction v_t = B(τ̂_t, θ̂_t)(θ_t − θ_{t−1}) at θ̂_t = q_tθ_t + (1−q_t)θ_{t−1},
q_t ~ U[0, 1], τ̂_t independent of τ_t. The schedules of `pg` (the authors' `sgd`: γ_t =
γ_0(2/(t+2))^{2/3}) and `n-pg-m` (their `nsgdm`, normalised PG with momentum: η_t =
(2/(t+2))^{2/3} with η_0 = 1, γ_t = γ_0·2/(t+2)) are those of the authors' released code
(`SGDMOptimizer`, garage fork, `run_PG.py` with its default η_0 = 1; the lab's earlier `pg`
step γ_0/√(t+1) is gone); `pg-const` (a constant tuned step) is the lab's variant. A zero direction gives a zero
normalised step. The papers' sample-complexity rates (upper bounds on the trajectories to a
global ε-optimum): `pg` O(ε⁻³), `n-pg-igt` Õ(ε⁻²·⁵), `harpg`/`n-harpg` Õ(ε⁻²).

Runs: `run` vmaps one `lax.scan` per seed over a batch of integer seeds inside one `jit`; seed s
uses the key `jax.random.key(s)` and splits four keys per step (next key, g, B, q), so every run
is reproducible from its integer seed whatever batch it is in. `complexity` turns a batch of
learning curves into trajectories-to-ε on a grid (median over seeds with bootstrap CIs) and a
fitted log-log exponent with a bootstrap CI.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError

MAX_RECORDS = 20_000_000  # seeds × recorded points held in memory (160 MB of float64)
MAX_SEEDS = 100_000


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A maximisation problem with sampling oracles (hashable by identity, so it is a static
    argument of the compiled runs).

    objective(θ) -> J(θ) exact; grad_sample(key, θ) -> g(τ, θ) for one fresh trajectory;
    hvp_sample(key, θ, v) -> B(τ, θ)·v for one fresh trajectory; j_star = sup J; theta0 the
    initial parameters (float64, shape (dim,)); gap(θ) -> J* − J(θ), when a cancellation-free
    form exists (default j_star − objective(θ)).

    Contract: every function is pure JAX, float64, traceable under `jit`, `vmap` and
    `lax.scan` (no Python control flow on values, no host callbacks); θ and v are (dim,)
    arrays; `key` is a typed `jax.random.key` that the function may split but must be its only
    randomness; each call draws its own trajectory (HARPG calls grad_sample and hvp_sample with
    independent keys, at different points); E[grad_sample] = ∇J and E[hvp_sample] = ∇²J·v
    (for a horizon-H problem: of the horizon-H objective that `objective` computes)."""

    name: str
    theta0: np.ndarray
    objective: Callable
    grad_sample: Callable
    hvp_sample: Callable
    j_star: float
    gap: Callable | None = None
    description: str = ""

    @property
    def dim(self) -> int:
        return int(np.asarray(self.theta0).size)

    def suboptimality(self, theta):
        """J* − J(θ)."""
        if self.gap is not None:
            return self.gap(theta)
        return self.j_star - self.objective(theta)


class State(NamedTuple):
    """θ_t, θ_{t−1}, d_{t−1}, t and the key of one run."""

    theta: jax.Array
    theta_prev: jax.Array
    d: jax.Array
    t: jax.Array
    key: jax.Array


def init_state(theta0, key) -> State:
    """θ_{−1} = θ_0, d_{−1} = 0, t = 0."""
    theta0 = jnp.asarray(theta0, dtype=jnp.float64)
    return State(theta0, theta0, jnp.zeros_like(theta0), jnp.asarray(0, jnp.int32), key)


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


def rho(t):
    """ρ_t = 2/(t + 2)."""
    return 2.0 / (jnp.asarray(t, jnp.float64) + 2.0)


def igt_momentum(t):
    """η_t = (2/(t+2))^{4/5} (N-PG-IGT)."""
    return rho(t) ** 0.8


def igt_lookahead(eta):
    """(1 − η)/η, the look-ahead coefficient of implicit gradient transport."""
    return (1.0 - eta) / eta


SCHEDULES = {
    # method: (t, γ_0) -> (γ_t, η_t)
    "pg": lambda t, g0: (g0 * rho(t) ** (2.0 / 3.0), jnp.float64(1.0)),
    "pg-const": lambda t, g0: (g0 * jnp.ones((), jnp.float64), jnp.float64(1.0)),
    "n-pg-m": lambda t, g0: (g0 * rho(t), rho(t) ** (2.0 / 3.0)),
    "n-pg-igt": lambda t, g0: (g0 * rho(t), igt_momentum(t)),
    "harpg": lambda t, g0: (g0 * jnp.sqrt(rho(t)), rho(t)),
    "n-harpg": lambda t, g0: (g0 * rho(t), rho(t)),
}


def schedule(method: str, t, gamma0):
    """(γ_t, η_t) of `method` at iteration t (t = 0, 1, ...)."""
    return SCHEDULES[_method(method).name](t, gamma0)


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def normalise(d):
    """d/‖d‖, and 0 when d = 0."""
    n = jnp.linalg.norm(d)
    return jnp.where(n > 0, d / jnp.where(n > 0, n, 1.0), 0.0)


def _keys(state: State):
    key, kg, kh, kq = jax.random.split(state.key, 4)
    return key, kg, kh, kq


def pg_step(problem: Problem, gamma0, state: State, sched=SCHEDULES["pg"]):
    """Vanilla PG (GPOMDP): θ_{t+1} = θ_t + γ_t g(τ_t, θ_t)."""
    key, kg, _, _ = _keys(state)
    gamma, _ = sched(state.t, gamma0)
    d = problem.grad_sample(kg, state.theta)
    return State(state.theta + gamma * d, state.theta, d, state.t + 1, key)


def momentum_step(problem: Problem, gamma0, state: State, sched=SCHEDULES["n-pg-m"],
                  lookahead=None):
    """Normalised PG with momentum; with `lookahead` = (1−η)/η it is N-PG-IGT:
    θ̃_t = θ_t + lookahead(η_t)(θ_t − θ_{t−1}), d_t = (1−η_t)d_{t−1} + η_t g(τ̃_t, θ̃_t),
    θ_{t+1} = θ_t + γ_t d_t/‖d_t‖."""
    key, kg, _, _ = _keys(state)
    gamma, eta = sched(state.t, gamma0)
    point = state.theta
    if lookahead is not None:
        point = state.theta + lookahead(eta) * (state.theta - state.theta_prev)
    d = (1.0 - eta) * state.d + eta * problem.grad_sample(kg, point)
    return State(state.theta + gamma * normalise(d), state.theta, d, state.t + 1, key)


def igt_step(problem: Problem, gamma0, state: State):
    """N-PG-IGT (Algorithm 1), η_t = (2/(t+2))^{4/5}, γ_t = γ_0·2/(t+2); one trajectory."""
    return momentum_step(problem, gamma0, state, SCHEDULES["n-pg-igt"], igt_lookahead)


def harpg_direction(problem: Problem, state: State, eta, kg, kh, kq):
    """d_t = (1−η_t)(d_{t−1} + B(τ̂_t, θ̂_t)(θ_t − θ_{t−1})) + η_t g(τ_t, θ_t), with
    θ̂_t = q θ_t + (1−q) θ_{t−1}, q = U[0, 1] drawn from kq, τ̂_t from kh and τ_t from kg (two
    independent trajectories)."""
    q = jax.random.uniform(kq, dtype=jnp.float64)
    delta = state.theta - state.theta_prev
    v = problem.hvp_sample(kh, state.theta_prev + q * delta, delta)
    return (1.0 - eta) * (state.d + v) + eta * problem.grad_sample(kg, state.theta)


def harpg_step(problem: Problem, gamma0, state: State, normalised: bool = False,
               direction: Callable | None = None):
    """HARPG (θ_{t+1} = θ_t + γ_t d_t, γ_t = γ_0 (2/(t+2))^{1/2}) or, `normalised`, N-HARPG
    (θ_{t+1} = θ_t + γ_t d_t/‖d_t‖, γ_t = γ_0·2/(t+2)); η_t = 2/(t+2) for both. `direction`
    (default `harpg_direction`) is the d_t rule, a parameter so that the tests can plant a
    wrong one."""
    key, kg, kh, kq = _keys(state)
    gamma, eta = SCHEDULES["n-harpg" if normalised else "harpg"](state.t, gamma0)
    d = (direction or harpg_direction)(problem, state, eta, kg, kh, kq)
    step = normalise(d) if normalised else d
    return State(state.theta + gamma * step, state.theta, d, state.t + 1, key)


@dataclasses.dataclass(frozen=True)
class Method:
    """A named algorithm: its step `(problem, γ_0, state) -> state`, trajectories per step, the
    paper's sample-complexity exponent (None for the lab's ablation) and its source."""

    name: str
    step: Callable
    trajectories_per_step: int
    paper_exponent: float | None
    source: str


SOURCE = "Fatkhullin, Barakat, Kireeva & He, ICML 2023"
METHODS = {
    "pg": Method("pg", pg_step, 1, 3.0, "vanilla PG (GPOMDP), the baseline of " + SOURCE
                 + " (the released code's `sgd` step γ_0(2/(t+2))^{2/3})"),
    "pg-const": Method("pg-const", functools.partial(pg_step, sched=SCHEDULES["pg-const"]), 1,
                       3.0, "vanilla PG (GPOMDP) with a constant step (lab variant)"),
    "n-pg-m": Method("n-pg-m", momentum_step, 1, None,
                     "normalised PG with momentum (the released code's `nsgdm`: η_t = "
                     "(2/(t+2))^{2/3}, γ_t = γ_0·2/(t+2)), the baseline of " + SOURCE),
    "n-pg-igt": Method("n-pg-igt", igt_step, 1, 2.5, SOURCE + ", Algorithm 1"),
    "harpg": Method("harpg", harpg_step, 2, 2.0, SOURCE + ", Algorithm 2 (not normalised)"),
    "n-harpg": Method("n-harpg", functools.partial(harpg_step, normalised=True), 2, 2.0,
                      SOURCE + ", Algorithm 2 (normalised)"),
}


def _method(name: str) -> Method:
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    return METHODS[name]


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def trace(step: Callable, problem: Problem, gamma0, steps: int, seed: int = 0, theta0=None):
    """One run of `steps` iterations of a step function, keeping every iterate: returns
    (θ_t for t = 0..steps−1, d_t for t = 0..steps−1, the final state). For the exactness checks
    and for plotting single runs."""
    start = init_state(problem.theta0 if theta0 is None else theta0, jax.random.key(seed))
    return _trace(step, problem, jnp.float64(gamma0), start, steps)


@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def _trace(step, problem, gamma0, state, steps):
    def body(s, _):
        new = step(problem, gamma0, s)
        return new, (s.theta, new.d)

    final, (thetas, ds) = jax.lax.scan(body, state, None, length=steps)
    return thetas, ds, final


@dataclasses.dataclass(frozen=True)
class Run:
    """A batch of runs of one method on one problem. gaps[i, k] = J* − J(θ) of seed i after
    `trajectories[k]` trajectories (k = 0 is θ_0)."""

    method: str
    problem: str
    seeds: np.ndarray
    gamma0: np.ndarray  # one per seed
    steps: int
    record_every: int
    trajectories: np.ndarray
    gaps: np.ndarray
    theta: np.ndarray  # final parameters, (seeds, dim)


@functools.partial(jax.jit, static_argnames=("step", "problem", "records", "record_every"))
def _block(step, problem, states, gamma0, records, record_every):
    def one(state, g0):
        def inner(s, _):
            return step(problem, g0, s), None

        def outer(s, _):
            s, _ = jax.lax.scan(inner, s, None, length=record_every)
            return s, problem.suboptimality(s.theta)

        return jax.lax.scan(outer, state, None, length=records)

    return jax.vmap(one)(states, gamma0)


def _validate_run(method, problem, seeds, steps, gamma0, record_every):
    _method(method)
    if not isinstance(problem, Problem):
        raise InputError(f"problem must be a Problem, got {type(problem).__name__}")
    if seeds.ndim != 1 or seeds.size < 1:
        raise InputError("give at least one seed")
    if seeds.size > MAX_SEEDS:
        raise InputError(f"{seeds.size} seeds exceed the limit of {MAX_SEEDS}")
    if steps < 1 or record_every < 1:
        raise InputError(f"steps and record_every must be at least 1, got {steps}, {record_every}")
    if steps % record_every:
        raise InputError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    if not np.all(np.isfinite(gamma0)) or np.any(gamma0 <= 0):
        raise InputError("gamma0 must be finite and positive")
    cells = seeds.size * (steps // record_every + 1)
    if cells > MAX_RECORDS:
        raise InputError(f"{seeds.size} seeds × {steps // record_every + 1} recorded points = "
                         f"{cells:,} exceeds the limit of {MAX_RECORDS:,}; raise record_every")


def run(method: str, problem: Problem, seeds, steps: int, gamma0, record_every: int = 1,
        progress: bool | Callable | None = None) -> Run:
    """`steps` iterations of `method` for every integer seed (vmapped, one jit), recording
    J* − J(θ) every `record_every` steps. `gamma0` is a scalar or one value per seed (a γ_0 sweep
    is one batch). Without `progress` the whole run is one `lax.scan`; with it, the same scan is
    cut into blocks (the state carries the keys, so the result is identical) and a progress bar
    (or the callable `progress(done, total)`) is updated between blocks."""
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    g0 = np.broadcast_to(np.asarray(gamma0, dtype=np.float64), seeds.shape).copy()
    _validate_run(method, problem, seeds, int(steps), g0, int(record_every))
    records = steps // record_every
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    theta0 = jnp.broadcast_to(jnp.asarray(problem.theta0, jnp.float64), (seeds.size, problem.dim))
    states = jax.vmap(init_state)(theta0, keys)
    gap0 = np.asarray(jax.vmap(problem.suboptimality)(theta0))
    blocks = [records] if not progress else _split(records, min(records, 50))
    out, done, bar = [], 0, None
    for n in blocks:
        states, gaps = _block(METHODS[method].step, problem, states, jnp.asarray(g0), n,
                              record_every)
        out.append(np.asarray(gaps))
        done += n
        if progress:
            bar = _progress(bar, progress, done, records)
    if bar is not None:
        bar.stop()
    traj = METHODS[method].trajectories_per_step * record_every * np.arange(records + 1)
    return Run(method, problem.name, seeds, g0, int(steps), int(record_every), traj,
               np.concatenate([gap0[:, None], *out], axis=1), np.asarray(states.theta))


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts) if base + (i < extra) > 0]


def _progress(bar, progress, done, total):
    if callable(progress):
        progress(done, total)
        return bar
    if bar is None:
        from sims.runtime import progress as bars

        bar = bars.task("steps", total)
    bar.update(done)
    return bar


# ---------------------------------------------------------------------------------------------
# Sample complexity
# ---------------------------------------------------------------------------------------------


def hitting_trajectories(gaps, trajectories, eps, rule: str = "first") -> np.ndarray:
    """(seeds, len(eps)) trajectories until J* − J(θ) ≤ ε, +inf when never within the run.

    rule "first": the first recorded point with gap ≤ ε; rule "stay": the first recorded point
    after which the gap stays ≤ ε until the end of the run."""
    gaps = np.asarray(gaps, dtype=np.float64)
    traj = np.asarray(trajectories, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64).reshape(-1)
    if rule not in ("first", "stay"):
        raise InputError(f"unknown rule {rule!r}; expected first or stay")
    below = gaps[:, None, :] <= eps[None, :, None]  # (S, E, R)
    if rule == "stay":
        below = np.flip(np.logical_and.accumulate(np.flip(below, -1), axis=-1), -1)
    hit = below.any(-1)
    idx = below.argmax(-1)
    return np.where(hit, traj[idx], np.inf)


def median_ci(values, seed: int = 0, level: float = 0.95, resamples: int = 2000):
    """Median over the first axis with a percentile bootstrap interval (resampling the first
    axis, numpy Generator seeded by `seed`); +inf entries (never reached) are allowed and make
    the median or a bound infinite. Returns (median, lo, hi), each of shape values.shape[1:]."""
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(resamples, x.shape[0]))
    boot = np.median(x[idx], axis=1)
    lo = np.quantile(boot, (1 - level) / 2, axis=0, method="lower")
    hi = np.quantile(boot, (1 + level) / 2, axis=0, method="higher")
    return np.median(x, axis=0), lo, hi


def fit_exponent(eps, n):
    """Least-squares slope p of log n = a + p·log(1/ε) (so n ∝ ε^{−p}); returns (p, a)."""
    p, a = np.polyfit(np.log(1.0 / np.asarray(eps)), np.log(np.asarray(n)), 1)
    return float(p), float(a)


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def complexity(gaps, trajectories, eps, seed: int = 0, level: float = 0.95,
               resamples: int = 2000, rule: str = "first") -> dict:
    """Trajectories to ε on the grid `eps` (median over seeds, bootstrap CI) and the fitted
    exponent p of n ∝ ε^{−p} with a bootstrap CI (seeds resampled, medians and fit redone).

    The fit uses the ε whose median and upper bound are both finite (at least 3 of them, else
    the exponent is null with a reason); bootstrap replicates where one of those medians is
    infinite are dropped and counted. Infinite values are reported as null (never reached).
    `reached` is the fraction of seeds that reached each ε (the median hides the rest), and a
    warning is set when a median used is under 10× the recording resolution."""
    eps = np.sort(np.asarray(eps, dtype=np.float64).reshape(-1))[::-1]
    if eps.size < 1 or not np.all(np.isfinite(eps)) or np.any(eps <= 0):
        raise InputError("the ε grid must be finite positive numbers")
    hits = hitting_trajectories(gaps, trajectories, eps, rule)
    med, lo, hi = median_ci(hits, seed, level, resamples)
    use = np.isfinite(med) & np.isfinite(hi) & (med > 0)
    out = {
        "eps": eps.tolist(),
        "rule": rule,
        "level": level,
        "median": [_finite(v) for v in med],
        "ci": [[_finite(a), _finite(b)] for a, b in zip(lo, hi)],
        "reached": np.isfinite(hits).mean(0).tolist(),
        "exponent": None,
        "exponent_ci": None,
        "fit_points": int(use.sum()),
        "dropped_resamples": None,
        "reason": None,
        "resolution": float(np.min(np.diff(trajectories))) if len(trajectories) > 1 else None,
        "warning": None,
    }
    res = out["resolution"]
    if res and np.any(med[use] < 10 * res):
        out["warning"] = (f"some medians are below 10× the recording resolution ({res:g} "
                          "trajectories): the fit is quantised; record more often or use smaller ε")
    if use.sum() < 3:
        out["reason"] = (f"only {int(use.sum())} ε with a finite median and upper bound; "
                         "the fit needs 3")
        return out
    p, _ = fit_exponent(eps[use], med[use])
    rng = np.random.default_rng(seed + 1)
    idx = rng.integers(0, hits.shape[0], size=(resamples, hits.shape[0]))
    boot = np.median(hits[idx][:, :, use], axis=1)  # (B, E_used)
    ok = np.all(np.isfinite(boot) & (boot > 0), axis=1)
    x = np.log(1.0 / eps[use])
    xc = x - x.mean()
    y = np.log(boot[ok])
    slopes = (y - y.mean(1, keepdims=True)) @ xc / (xc @ xc)
    out["exponent"] = p
    out["exponent_ci"] = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2]).tolist()
    out["dropped_resamples"] = int((~ok).sum())
    return out


def default_eps_grid(gaps, points: int = 8) -> np.ndarray:
    """A geometric ε grid from a quarter of the median initial gap down to twice the 75th
    percentile (over seeds) of the final gap."""
    gaps = np.asarray(gaps, dtype=np.float64)
    hi = 0.25 * float(np.median(gaps[:, 0]))
    lo = 2.0 * float(np.quantile(gaps[:, -1], 0.75))
    if not (hi > 0 and math.isfinite(hi)):
        raise InputError("the initial gap is not positive: nothing to optimise")
    lo = min(max(lo, 1e-14), hi / 10)
    return np.geomspace(hi, lo, points)


def learning_curve(run: Run, points: int = 100, seed: int = 0, level: float = 0.95) -> dict:
    """Median J* − J over seeds with a bootstrap CI, at about `points` log-spaced record
    indices (always including the first and the last)."""
    k = np.unique(np.concatenate([[0], np.geomspace(1, run.gaps.shape[1] - 1, points).astype(int)])) \
        if run.gaps.shape[1] > 1 else np.array([0])
    med, lo, hi = median_ci(run.gaps[:, k], seed, level, resamples=1000)
    return {"trajectories": run.trajectories[k].tolist(), "median": med.tolist(),
            "lo": lo.tolist(), "hi": hi.tolist(), "level": level}


# ---------------------------------------------------------------------------------------------
# Tuning and sweeps
# ---------------------------------------------------------------------------------------------

TUNE_SEED_OFFSET = 1_000_000  # tuning seeds are disjoint from evaluation seeds


def steps_for(method: str, budget: int, record_every: int) -> int:
    """The largest number of steps within `budget` trajectories that is a multiple of
    `record_every`."""
    steps = budget // _method(method).trajectories_per_step
    steps -= steps % record_every
    if steps < record_every:
        raise InputError(f"a budget of {budget} trajectories is too small for {method}")
    return steps


def tune_gamma0(method: str, problem: Problem, grid, budget: int, seeds: int, eps: float,
                record_every: int = 1, seed: int = TUNE_SEED_OFFSET, rule: str = "first") -> dict:
    """Pick γ_0 from `grid` with the same budget for every method: `seeds` runs per γ_0 (all in
    one vmapped batch), each of `budget` trajectories. Score: the median over seeds of the
    trajectories until J* − J ≤ `eps` (`rule` of `hitting_trajectories`; never reached counts as +inf); ties (e.g. all +inf) go
    to the smaller median final gap. A run that ends with a non-finite gap (it diverged) counts
    as never reaching ε, even if it passed below ε on the way, and a γ_0 under which any tuning
    run diverged ranks after every γ_0 under which none did."""
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    steps = steps_for(method, budget, record_every)
    seed_ids = np.tile(np.arange(seed, seed + seeds), grid.size)
    r = run(method, problem, seed_ids, steps, np.repeat(grid, seeds), record_every)
    hits = hitting_trajectories(r.gaps, r.trajectories, [eps], rule)[:, 0]
    hits = np.where(np.isfinite(r.gaps[:, -1]), hits, np.inf).reshape(grid.size, seeds)
    med = np.median(hits, axis=1)
    final = np.median(r.gaps[:, -1].reshape(grid.size, seeds), axis=1)
    diverged = ~np.all(np.isfinite(r.gaps[:, -1]).reshape(grid.size, seeds), axis=1)
    best = min(range(grid.size), key=lambda i: (diverged[i], med[i], final[i]))
    return {"grid": grid.tolist(), "eps": float(eps), "budget": int(budget), "seeds": int(seeds),
            "median_trajectories": [_finite(v) for v in med],
            "median_final_gap": [_finite(v) for v in final], "diverged": diverged.tolist(),
            "best": float(grid[best])}


def sweep(problem: Problem, methods, budget: int, seeds: int, eps, gamma_grid, tune_seeds: int,
          seed: int = 0, record_every: int = 1, progress: Callable | None = None,
          rule: str = "first") -> dict:
    """For each method: tune γ_0 on `gamma_grid` (`tune_seeds` seeds disjoint from the
    evaluation seeds, target the smallest ε, same trajectory budget), then run `seeds`
    evaluation seeds from `seed` with that γ_0 and measure trajectories to ε (`rule`) on the grid `eps`
    and the fitted exponent with CIs, and the learning curve. Returns a strict-JSON dict, so the
    figure can be redrawn from it."""
    eps = np.sort(np.asarray(eps, dtype=np.float64))[::-1]
    out = {"problem": problem.name, "description": problem.description, "budget": int(budget),
           "seeds": int(seeds), "seed": int(seed), "tune_seeds": int(tune_seeds),
           "gamma_grid": np.asarray(gamma_grid, dtype=np.float64).tolist(),
           "eps": eps.tolist(), "record_every": int(record_every), "methods": {}}
    for name in methods:
        m = _method(name)
        start = time.perf_counter()
        tuning = tune_gamma0(name, problem, gamma_grid, budget, tune_seeds, float(eps[-1]),
                             record_every, rule=rule)
        steps = steps_for(name, budget, record_every)
        r = run(name, problem, np.arange(seed, seed + seeds), steps, tuning["best"], record_every)
        out["methods"][name] = {
            "gamma0": tuning["best"], "tuning": tuning, "steps": steps,
            "trajectories_per_step": m.trajectories_per_step, "paper_exponent": m.paper_exponent,
            "complexity": complexity(r.gaps, r.trajectories, eps, seed=seed, rule=rule),
            "curve": learning_curve(r, seed=seed),
            "non_finite_gaps": int(np.sum(~np.isfinite(r.gaps))),
            "seconds": round(time.perf_counter() - start, 2),
        }
        if progress:
            progress(name)
    return strict_json(out)


def strict_json(x):
    """Non-finite floats become None, arrays lists: `json.dumps(..., allow_nan=False)` safe."""
    if isinstance(x, dict):
        return {str(k): strict_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [strict_json(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x
