"""Trainers for CoPG and its peers: minibatch Adam runs vmapped over seeds, exact (population) Adam runs
and the convergence search for fixed points (docs/design.md §4.4)."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bandits.copg.losses import (
    METHODS,
    ascent_field,
    cell_index,
    cell_loss,
    loss_fn,
    population_loss,
)
from bandits.copg.problem import Problem, regret, sample_pairs
from bandits.errors import InputError, check_seed

DEFAULTS = {"pairs": 10_000, "epochs": 100, "batch": 512, "lr": 1e-3}
# Size limits, refused up front with the limit named (memory: the 2K² pair cells, per-minibatch
# cell counts and the logged data; time: the number of Adam steps).
MAX_PAIRS = 10_000_000
MAX_EPOCHS = 100_000
MAX_ADAM_STEPS = 10_000_000
MAX_COUNT_ENTRIES = 1 << 26  # minibatches per epoch × 2K² cell counts


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


def check_budget(pairs, epochs, batch, lr, k: int | None = None):
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
    check_budget(pairs, epochs, batch, lr, problem.rewards.shape[-1])
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
    check_budget(pairs, epochs, batch, lr, problems.rewards.shape[-1])
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
    check_budget(1, epochs, spe, lr)
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
