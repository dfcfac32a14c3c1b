"""Monte Carlo moments of a group estimator ĝ on a softmax bandit.

Groups are drawn in chunks by one `jit`-compiled, `vmap`-ed kernel; each chunk returns its count,
mean and centred second-moment matrix, and chunks are merged with Chan et al.'s parallel update

    n = n_a + n_b,  δ = μ_b − μ_a,  μ = μ_a + δ n_b/n,  M2 = M2_a + M2_b + δδᵀ n_a n_b / n,

so memory is O(K²) whatever the number of samples. The standard error of tr Cov comes from batch
means: every chunk's own unbiased estimate tr(M2_c)/(n_c − 1) is one batch (at least 32 batches
when the sample count allows). Chunk c draws from `fold_in(key(seed), c)`: one integer seed
reproduces the run exactly.

The generator is JAX's `rbg` key: key derivation (`fold_in`, `split`) by threefry2x32, the bulk
words by XLA's RngBitGenerator (a Philox4x32 expansion on CPU; Philox passes TestU01's BigCrush,
Salmon et al., 2011). Chosen over the default threefry keys for speed (its words cost several
times less, and the engine is otherwise bound by them; see `make bench`) and over `unsafe_rbg`
for quality: `unsafe_rbg` also derives its keys with the bulk generator, for which JAX gives no
guarantee on split streams, while `rbg` keeps threefry's derivation and leaves only each chunk's
bulk draw to the bulk generator. The stream depends on the backend's RngBitGenerator (and may
change with the XLA version) and on the chunk shape (fixed by the sample count): one seed
reproduces a run bit for bit on a given backend and installation, not across backends.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from bandits import softmax
from bandits.errors import InputError
from bandits.rewards import RewardModel
from sims import estimators

MAX_CHUNK = 1 << 13
MIN_CHUNK = 1 << 8
MIN_BATCHES = 32
BLOCK = 16  # chunks per compiled call
PROGRESS_AFTER_S = 2.0
RNG_IMPL = "rbg"  # see the module docstring


@dataclasses.dataclass(frozen=True)
class MCMoments:
    """Monte Carlo estimate of E[ĝ] and Cov[ĝ] with standard errors."""

    estimator: str
    group: int
    params: dict
    samples: int
    seed: int
    mean: np.ndarray
    cov: np.ndarray
    trace_var_se: float
    batches: int

    @property
    def mean_se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov) / self.samples)

    @property
    def trace_var(self) -> float:
        return float(np.trace(self.cov))


def chunk_size(samples: int) -> int:
    """A power of two giving at least MIN_BATCHES chunks where possible, within [MIN, MAX]."""
    target = max(1, samples // MIN_BATCHES)
    return int(min(MAX_CHUNK, max(MIN_CHUNK, 1 << (target.bit_length() - 1))))


def sample_group_gradients(name, logits, tables, params, key, shape):
    """ĝ for `shape` independent groups: arrays shape + (K,). The Monte Carlo unit of work."""
    est = estimators.get(name)
    fn = est.advantages
    arms, rewards = softmax.sample_outcomes(key, logits, tables, shape)
    grad = functools.partial(estimators.bandit_group_gradient, fn, logits, params=params,
                             per_coordinate=est.per_coordinate)
    for _ in range(len(shape) - 1):
        grad = jax.vmap(grad)
    return grad(arms, rewards)


def _one_chunk(name, chunk, group, logits, tables, params, key, valid):
    """Count, mean and centred second-moment matrix of `valid` ≤ chunk fresh groups."""
    g = sample_group_gradients(name, logits, tables, params, key, (chunk, group))
    mask = (jnp.arange(chunk) < valid).astype(g.dtype)
    n = jnp.sum(mask)
    mean = mask @ g / n
    d = (g - mean) * mask[:, None]
    return n, mean, d.T @ d


@functools.partial(jax.jit, static_argnames=("name", "chunk", "group", "block"))
def _block_stats(name, chunk, group, block, logits, tables, params, base, first, samples):
    """Chunks first, …, first + block − 1 in one call (a scan): per-chunk (n, mean, M2)."""

    def body(carry, c):
        valid = jnp.clip(samples - c * chunk, 0, chunk)
        key = jax.random.fold_in(base, c)
        return carry, _one_chunk(name, chunk, group, logits, tables, params, key, valid)

    return jax.lax.scan(body, None, first + jnp.arange(block))[1]


def _merge(acc, n_b, mean_b, m2_b):
    n_a, mean_a, m2_a = acc
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + np.outer(delta, delta) * (n_a * n_b / n)


def moments(
    name: str,
    logits,
    rewards: RewardModel,
    group: int,
    samples: int,
    seed: int = 0,
    progress: bool | None = None,
    **params,
) -> MCMoments:
    """Estimate E[ĝ] and Cov[ĝ] from `samples` independent groups, reproducibly from `seed`."""
    est = estimators.get(name)
    params = estimators.resolve_params(est, group, **params)
    if not isinstance(samples, int) or samples < 2:
        raise InputError(f"Monte Carlo needs at least 2 samples, got {samples!r}")
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    logits = jnp.asarray(np.asarray(logits, dtype=np.float64))
    k = logits.shape[0]
    if rewards.num_arms != k:
        raise InputError(f"{k} logits but {rewards.num_arms} reward distributions; give one per arm")
    chunk = chunk_size(samples)
    n_chunks = math.ceil(samples / chunk)
    base = jax.random.key(seed, impl=RNG_IMPL)
    tables = rewards.tables()
    jparams = {key: jnp.float64(v) for key, v in params.items()}

    acc = (0.0, np.zeros(k), np.zeros((k, k)))
    batch_n, batch_tr = np.zeros(n_chunks), np.zeros(n_chunks)
    start, bar = time.perf_counter(), None
    block = min(n_chunks, BLOCK)
    try:
        for first in range(0, n_chunks, block):
            ns, means, m2s = jax.device_get(_block_stats(
                name, chunk, group, block, logits, tables, jparams, base, first, samples))
            for i in range(min(block, n_chunks - first)):
                acc = _merge(acc, float(ns[i]), np.asarray(means[i]), np.asarray(m2s[i]))
                batch_n[first + i] = ns[i]
                batch_tr[first + i] = np.trace(m2s[i]) / max(ns[i] - 1, 1)
            bar = _progress(bar, progress, start, min(first + block, n_chunks), n_chunks)
    finally:
        if bar is not None:
            bar.stop()
    n, mean, m2 = acc
    cov = m2 / (n - 1)
    return MCMoments(
        estimator=name, group=group, params=params, samples=samples, seed=seed,
        mean=mean, cov=cov, trace_var_se=_batch_means_se(batch_n, batch_tr, np.trace(cov)),
        batches=n_chunks,
    )


def _batch_means_se(sizes, estimates, overall) -> float:
    """SE of a mean of batch estimates weighted by size: sqrt(B/(B−1) Σ (n_b/N)² (T_b − T)²)."""
    usable = sizes > 1
    sizes, estimates = sizes[usable], estimates[usable]
    b = len(sizes)
    if b < 2:
        return float("nan")
    w = sizes / sizes.sum()
    return float(np.sqrt(b / (b - 1) * np.sum(w**2 * (estimates - overall) ** 2)))


def _progress(bar, wanted, start, done, total):
    """Show a rich progress bar (stderr) once a run has taken longer than PROGRESS_AFTER_S."""
    if wanted is False or done >= total:
        return bar
    if bar is None and (wanted or time.perf_counter() - start > PROGRESS_AFTER_S):
        from rich.console import Console
        from rich.progress import Progress

        bar = Progress(console=Console(stderr=True), transient=True)
        bar.start()
        bar.add_task("Monte Carlo", total=total)
    if bar is not None:
        bar.update(bar.task_ids[0], completed=done)
    return bar
