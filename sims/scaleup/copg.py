"""CoPG on logged pairs of completions (Flet-Berliac et al. 2024; docs/design.md §4.4).

The bandit version lives in `bandits.copg`; here the arms are completions y of a prompt x and

    h(y) = log π_θ(y | x) − log π_ref(y | x)          (sequence log-ratio, masked token sums)
    ℓ(y, y') = ΔR·Δh − (β/2)·Δh²,   ΔR = R(y) − R(y'),  Δh = h(y) − h(y')

is maximised over a logged data set of pairs. Its gradient is
∇ℓ = (R_β(y) − R_β(y'))·(∇log π(y) − ∇log π(y')) with R_β(y) = R(y) − β h(y), and its population
optimum is π* ∝ π_ref·e^{R/β} whatever full-support law logged the pairs.

`log_pairs` draws the data set once: prompts uniformly from the task's pool, y and y' from the
reference policy (μ1 = μ2 = π_ref, the starting parameters), their rewards and reference
log-probabilities. `train` then takes Adam steps on minibatches of logged pairs; the mean reward
of the current policy is measured on fresh on-policy samples (not used for learning).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bandits.errors import InputError
from sims.scaleup import model as M
from sims.scaleup import rollout, tasks
from sims.scaleup import trainer as T


def pair_objective(d_r, d_h, beta):
    """ℓ = ΔR·Δh − (β/2)·Δh² (the CoPG pair objective, maximised)."""
    return d_r * d_h - 0.5 * beta * d_h**2


def sequence_logprob(graphdef, params, prompts, completions, mask):
    """log π(y | x) = Σ_t m_t log π(y_t | …) for completions (P, G, T) → (P, G)."""
    return jnp.sum(mask * M.token_logprobs(nnx.merge(graphdef, params), prompts, completions), axis=-1)


@dataclasses.dataclass
class Logged:
    prompt_idx: np.ndarray  # (N,)
    completions: np.ndarray  # (N, 2, T)
    mask: np.ndarray  # (N, 2, T)
    rewards: np.ndarray  # (N, 2)
    ref_logprob: np.ndarray  # (N, 2)


def log_pairs(cfg: T.TrainConfig, graphdef, params, pairs: int, seed: int) -> Logged:
    """`pairs` logged pairs from the reference policy `params`, drawn in chunks of cfg.prompts."""
    task = tasks.get(cfg.task)
    pool_p, pool_t = jnp.asarray(task.prompts), jnp.asarray(task.targets)

    @jax.jit
    def chunk(key):
        k1, k2 = jax.random.split(key)
        idx = jax.random.randint(k1, (cfg.prompts,), 0, task.size)
        comp, mask = rollout.sample(nnx.merge(graphdef, params), pool_p[idx], k2, 2, task.completion_len,
                                    cfg.temperature)
        r = tasks.rewards(comp, pool_t[idx][:, None, :])
        lp = sequence_logprob(graphdef, params, pool_p[idx], comp, mask.astype(r.dtype))
        return idx, comp, mask, r, lp

    n = -(-pairs // cfg.prompts)
    out = [jax.device_get(chunk(jax.random.fold_in(jax.random.key(seed), i))) for i in range(n)]
    cat = [np.concatenate(x)[:pairs] for x in zip(*out)]
    return Logged(*cat)


def train(cfg: T.TrainConfig, beta: float, pairs: int, progress: bool = False):
    """CoPG from cfg's starting point (after its warm start, if any) on `pairs` logged pairs;
    cfg.steps Adam steps on minibatches of cfg.prompts·cfg.group/2 pairs. Returns the per-step
    on-policy mean reward (cfg.prompts × cfg.group fresh samples) and the final parameters."""
    T.validate(cfg)
    if not (isinstance(beta, (int, float)) and np.isfinite(beta) and beta > 0):
        raise InputError(f"--copg-beta must be a finite number > 0, got {beta!r}")
    if not isinstance(pairs, int) or pairs < 1:
        raise InputError(f"--copg-pairs must be an integer ≥ 1, got {pairs!r}")
    task = tasks.get(cfg.task)
    graphdef, params, opt, opt_state = T.init(cfg)
    pool_p, pool_t = jnp.asarray(task.prompts), jnp.asarray(task.targets)
    if cfg.warmstart_steps:
        wstep = T.make_warmstart_step(cfg, graphdef, opt)
        for t in range(cfg.warmstart_steps):
            params, opt_state, _ = wstep(params, opt_state, t, jax.random.key(cfg.seed + 7919), pool_p, pool_t)
        opt_state = opt.init(params)
    data = log_pairs(cfg, graphdef, params, pairs, cfg.seed + 1)
    data = jax.tree_util.tree_map(jnp.asarray, dataclasses.asdict(data))
    batch = max(1, cfg.prompts * cfg.group // 2)

    @jax.jit
    def step(params, opt_state, t):
        key = jax.random.fold_in(jax.random.key(cfg.seed), t)
        sel = jax.random.randint(key, (batch,), 0, pairs)
        d = {k: v[sel] for k, v in data.items()}
        prompts = pool_p[d["prompt_idx"]]
        mask = d["mask"].astype(d["rewards"].dtype)

        def loss(prm):
            h = sequence_logprob(graphdef, prm, prompts, d["completions"], mask) - d["ref_logprob"]
            return -jnp.mean(pair_objective(d["rewards"][:, 0] - d["rewards"][:, 1], h[:, 0] - h[:, 1], beta))

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, jax.tree_util.tree_map(lambda u: cfg.lr * u, updates))
        k_eval = jax.random.fold_in(key, 1)
        idx = jax.random.randint(k_eval, (cfg.prompts,), 0, task.size)
        comp, _ = rollout.sample(nnx.merge(graphdef, params), pool_p[idx], jax.random.fold_in(k_eval, 1),
                                 cfg.group, task.completion_len, cfg.temperature)
        return params, opt_state, value, jnp.mean(tasks.rewards(comp, pool_t[idx][:, None, :]))

    t0 = time.perf_counter()
    rewards = []
    for t in range(cfg.steps):
        params, opt_state, _, r = step(params, opt_state, t)
        rewards.append(float(r))
    return T.Result(cfg, np.asarray(rewards), np.zeros(0), T.greedy_accuracy(cfg, graphdef, params),
                    time.perf_counter() - t0, 0.0, params, None)
