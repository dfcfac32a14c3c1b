"""The Monte Carlo engine: streamed mean and covariance of per-sample vectors, for any problem.

A problem is a `draw(key, n, args) -> (n, d)` function that returns n independent samples of a
d-vector (a group estimate ĝ on a softmax or Gaussian bandit, a GPOMDP or Hessian estimate from
one LQR trajectory, ...): `draw` must be hashable (a module-level function or a frozen dataclass;
it is a static argument of the compiled kernel) and pure JAX; `args` is a pytree of arrays.
Samples are drawn in chunks by one `jit`-compiled kernel; each chunk returns its count, mean and
centred second-moment matrix, and chunks are merged with Chan et al.'s parallel update

    n = n_a + n_b,  δ = μ_b − μ_a,  μ = μ_a + δ n_b/n,  M2 = M2_a + M2_b + δδᵀ n_a n_b / n,

so memory is O(d²) whatever the number of samples. The standard error of tr Cov comes from batch
means: every chunk's own unbiased estimate tr(M2_c)/(n_c − 1) is one batch (at least 32 batches
when the sample count allows). Chunk c draws from `fold_in(_base_key(seed), c)`: one integer seed
reproduces the run exactly. `stream` is the engine; on it, `moments` is the softmax-bandit group
estimator, `expectation` any statistic of a group (the sampled twin of `exact.expectation`), and
`ensemble` / `ensemble_bandits` the batch estimators on pass/fail prompts (docs/design.md §3).

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
from bandits.rewards import RewardModel, count_at_or_below, random_words, uniform_thresholds
from sims import batch, estimators
from sims.engines import exact

MAX_CHUNK = 1 << 13
MIN_CHUNK = 1 << 8
MIN_BATCHES = 32
BLOCK = 16  # chunks per compiled call
PROGRESS_AFTER_S = 2.0
RNG_IMPL = "rbg"  # see the module docstring


def chunk_size(samples: int) -> int:
    """A power of two giving at least MIN_BATCHES chunks where possible, within [MIN, MAX]."""
    target = max(1, samples // MIN_BATCHES)
    return int(min(MAX_CHUNK, max(MIN_CHUNK, 1 << (target.bit_length() - 1))))


def sample_group_gradients(estimator, logits, tables, params, key, shape):
    """ĝ for `shape` independent groups of the entry `estimator`: arrays shape + (K,). The Monte
    Carlo unit of work."""
    est = estimators.as_entry(estimator)
    arms, rewards = softmax.sample_outcomes(key, logits, tables, shape)
    grad = functools.partial(estimators.bandit_group_gradient, est.advantages, logits, params=params,
                             per_coordinate=est.per_coordinate)
    for _ in range(len(shape) - 1):
        grad = jax.vmap(grad)
    return grad(arms, rewards)


def _base_key(seed: int):
    """The run's root key; chunk c uses fold_in(root, c)."""
    return jax.random.key(seed, impl=RNG_IMPL)


@dataclasses.dataclass(frozen=True)
class SoftmaxGroups:
    """The softmax-bandit problem: `draw(key, n, (logits, tables, params))` → n group estimates ĝ (n, K).

    The registry entry is part of the hash (entries hash by identity), so the compiled kernel
    follows the entry: a name registered again with another function is compiled afresh."""

    estimator: estimators.Estimator
    group: int

    def __call__(self, key, n, args):
        logits, tables, params = args
        return sample_group_gradients(self.estimator, logits, tables, params, key, (n, self.group))


def _one_chunk(draw, chunk, args, key, valid):
    """Count, mean and centred second-moment matrix of `valid` ≤ chunk fresh samples."""
    g = draw(key, chunk, args)
    mask = (jnp.arange(chunk) < valid).astype(g.dtype)
    n = jnp.sum(mask)
    mean = mask @ g / n
    d = (g - mean) * mask[:, None]
    return n, mean, d.T @ d


@functools.partial(jax.jit, static_argnames=("draw", "chunk", "block"))
def _block_stats(draw, chunk, block, args, base, first, samples):
    """Chunks first, …, first + block − 1 in one call (a scan): per-chunk (n, mean, M2)."""

    def body(carry, c):
        valid = jnp.clip(samples - c * chunk, 0, chunk)
        key = jax.random.fold_in(base, c)
        return carry, _one_chunk(draw, chunk, args, key, valid)

    return jax.lax.scan(body, None, first + jnp.arange(block))[1]


def _merge(acc, n_b, mean_b, m2_b):
    n_a, mean_a, m2_a = acc
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + np.outer(delta, delta) * (n_a * n_b / n)


@dataclasses.dataclass(frozen=True)
class Stream:
    """Mean and covariance of a problem's per-sample vectors, with standard errors."""

    samples: int
    seed: int
    mean: np.ndarray
    cov: np.ndarray
    trace_var_se: float | None  # None when fewer than 2 batches make it undefined
    batches: int

    @property
    def mean_se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov) / self.samples)

    @property
    def trace_var(self) -> float:
        return float(np.trace(self.cov))

    def to_json(self) -> dict:
        """{"samples", "seed", "mean", "mean_se", "trace_var", "trace_var_se"}: the "mc" block of the
        moment calculators (docs/design.md §3); an undefined or non-finite standard error of tr Cov
        is null, with `trace_var_se_reason` saying why."""
        se = self.trace_var_se
        out = {"samples": self.samples, "seed": self.seed, "mean": _floats(self.mean),
               "mean_se": _floats(self.mean_se), "trace_var": self.trace_var,
               "trace_var_se": se if se is not None and math.isfinite(se) else None}
        if out["trace_var_se"] is None:
            out["trace_var_se_reason"] = trace_var_se_reason(self.samples, self.batches, se)
        return out


def trace_var_se_reason(samples: int, batches: int, se: float | None = None) -> str:
    """Why the batch-means standard error of tr Cov is missing: fewer than 2 batches (se None), or
    a value that is not finite."""
    if se is not None:
        return f"not finite ({se}): the batch estimates of tr Cov overflow float64"
    return (f"undefined: the batch-means standard error needs at least 2 batches, and "
            f"{samples:,} samples make {batches} (use a larger --mc)")


def _floats(x) -> list:
    return [float(v) for v in np.asarray(x).reshape(-1)]


@dataclasses.dataclass(frozen=True)
class MCMoments(Stream):
    """Monte Carlo estimate of E[ĝ] and Cov[ĝ] of a softmax-bandit group estimator."""

    estimator: str
    group: int
    params: dict


def stream(draw, args, samples: int, seed: int = 0, progress: bool | None = None,
           chunk: int | None = None) -> Stream:
    """Mean, covariance and batch-means SE of tr Cov over `samples` draws, reproducible from `seed`.

    `draw(key, n, args) -> (n, d)` is the problem (hashable, pure JAX); `chunk` overrides the
    chunk size (a power of two is best; default `chunk_size(samples)`)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise InputError(f"Monte Carlo needs at least 2 samples, got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    chunk = chunk or chunk_size(samples)
    n_chunks = math.ceil(samples / chunk)
    base = _base_key(seed)
    acc = (0.0, 0.0, 0.0)  # (n, mean, M2); broadcasts to the problem's dimension on first merge
    batch_n, batch_tr = np.zeros(n_chunks), np.zeros(n_chunks)
    start, bar = time.perf_counter(), None
    block = min(n_chunks, BLOCK)
    # One block in flight while the host merges the one before (dispatch is asynchronous), so the
    # device does not wait for the merges.
    firsts = range(0, n_chunks, block)
    try:
        running = _block_stats(draw, chunk, block, args, base, 0, samples)
        for b, first in enumerate(firsts):
            ns, means, m2s = jax.device_get(running)
            if b + 1 < len(firsts):
                running = _block_stats(draw, chunk, block, args, base, firsts[b + 1], samples)
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
    return Stream(samples=samples, seed=seed, mean=mean, cov=cov,
                  trace_var_se=_batch_means_se(batch_n, batch_tr, np.trace(cov)), batches=n_chunks)


def moments(
    estimator: estimators.Estimator,
    logits,
    rewards: RewardModel,
    group: int,
    samples: int,
    seed: int = 0,
    progress: bool | None = None,
    **params,
) -> MCMoments:
    """Estimate E[ĝ] and Cov[ĝ] of the entry `estimator` from `samples` independent groups,
    reproducibly from `seed`."""
    est = estimators.as_entry(estimator)
    params = estimators.resolve_params(est, group, **params)
    logits = jnp.asarray(np.asarray(logits, dtype=np.float64))
    k = logits.shape[0]
    if rewards.num_arms != k:
        raise InputError(f"{k} logits but {rewards.num_arms} reward distributions; give one per arm")
    jparams = {key: jnp.float64(v) for key, v in params.items()}
    s = stream(SoftmaxGroups(est, group), (logits, rewards.tables(), jparams), samples, seed, progress)
    return MCMoments(
        estimator=est.name, group=group, params=params, samples=samples, seed=seed,
        mean=s.mean, cov=s.cov, trace_var_se=s.trace_var_se, batches=s.batches,
    )


@dataclasses.dataclass(frozen=True)
class GroupStatistic:
    """The problem `draw(key, n, (logits, tables, params, extra))` → stat(group) for n independent
    groups of G on a softmax bandit, (n, d): the statistic of `sims.engines.exact.expectation`,
    evaluated on sampled groups (`exact.group_statistic`). Hashed by its fields (the statistic,
    the entry by identity, G)."""

    stat: object
    estimator: estimators.Estimator
    group: int

    def __call__(self, key, n, args):
        logits, tables, params, extra = args
        arms, rewards = softmax.sample_outcomes(key, logits, tables, (n, self.group))
        one = functools.partial(exact.group_statistic, self.stat, self.estimator, logits, params, extra)
        return jnp.reshape(jax.vmap(one)(arms, rewards), (n, -1))


def expectation(stat, estimator: estimators.Estimator, logits, rewards: RewardModel, group: int,
                samples: int, seed: int = 0, params=None, extra=None, progress: bool | None = None) -> Stream:
    """Monte Carlo E[stat(group)] over `samples` independent groups of G, on `stream` (mean, its
    standard errors, covariance), reproducible from `seed`: the sampled twin of
    `sims.engines.exact.expectation` (same statistic, `extra` with "means" added when absent; the
    arms are not padded here)."""
    est = estimators.as_entry(estimator)
    params = estimators.resolve_params(est, group, **(params or {}))
    logits = np.asarray(logits, dtype=np.float64)
    if rewards.num_arms != logits.shape[0]:
        raise InputError(f"{logits.shape[0]} logits but {rewards.num_arms} reward distributions; "
                         f"give one per arm")
    jparams = {key: jnp.float64(v) for key, v in params.items()}
    args = (jnp.asarray(logits), rewards.tables(), jparams, exact.statistic_extra(extra, rewards.means))
    return stream(GroupStatistic(stat, est, group), args, samples, seed, progress)


# ---------------------------------------------------------------------------------------------
# Batches of pass/fail prompts (batch estimators, allocations)
# ---------------------------------------------------------------------------------------------


def sample_prompts(key, logits, success, shape):
    """Arms a ~ π_x and pass/fail rewards R ~ Bernoulli(q_x[a]) for `shape` = (..., P, G) members
    of P prompts with logits and success probabilities (P, K): one 32-bit word per member, by
    inverse CDF over the joint outcomes (a, R) in the order (0, fail), (0, pass), (1, fail), …"""
    pi = softmax.policy(logits)
    q = jnp.asarray(success, dtype=pi.dtype)
    joint = jnp.stack([pi * (1.0 - q), pi * q], axis=-1).reshape(pi.shape[0], -1)  # (P, 2K)
    thresholds = uniform_thresholds(jnp.cumsum(joint, axis=-1)[:, :-1])  # (P, 2K − 1)
    o = count_at_or_below(random_words(key, shape), thresholds[:, None, :])
    return o // 2, (o % 2).astype(pi.dtype)


@dataclasses.dataclass(frozen=True)
class PassFailBatches:
    """The problem `draw(key, n, (ps, params))` → u (n, P) for n batches of P two-armed pass/fail
    prompts (π_1 = p_x, rewards (1, 0)), G members each: u_x = (1/G) Σ_i A_xi (R_xi − p_x)
    (`sims.batch.prompt_terms`). The batch entry hashes by identity."""

    estimator: batch.BatchEstimator
    group: int

    def __call__(self, key, n, args):
        ps, params = args
        u = random_words(key, (n, ps.shape[0], self.group))
        rewards = (u < uniform_thresholds(ps)[:, None]).astype(ps.dtype)
        return batch.prompt_terms(self.estimator.advantages, rewards, ps, params)


@dataclasses.dataclass(frozen=True)
class PassFailBandits:
    """The problem `draw(key, n, (logits, success, params))` → ĝ (n, P·K) for n batches of P
    K-armed pass/fail prompts, G members each, weights ones (`sims.batch.bandit_prompt_gradients`)."""

    estimator: batch.BatchEstimator
    group: int

    def __call__(self, key, n, args):
        logits, success, params = args
        arms, rewards = sample_prompts(key, logits, success, (n, logits.shape[0], self.group))
        g = batch.bandit_prompt_gradients(self.estimator.advantages, logits, arms, rewards, params)
        return g.reshape(n, -1)


def ensemble(estimator: batch.BatchEstimator, ps, group: int, samples: int, seed: int = 0,
             chunk: int | None = None, **params) -> dict:
    """Per-prompt c_x = E[u_x]/(p_x(1 − p_x)) of a batch entry on pass/fail prompts with pass rates
    `ps`, from `samples` batches on `stream`: {"c", "c_se", "mean_u", "var_u", "samples"}."""
    est = batch.as_entry(estimator)
    ps = np.asarray(ps, dtype=np.float64)
    p = {k: jnp.float64(v) for k, v in batch.resolve_params(est, **params).items()}
    s = stream(PassFailBatches(est, group), (jnp.asarray(ps), p), samples, seed, chunk=chunk)
    pq = ps * (1 - ps)
    return {"c": s.mean / pq, "c_se": s.mean_se / pq, "mean_u": s.mean, "var_u": np.diag(s.cov),
            "samples": samples}


def ensemble_bandits(estimator: batch.BatchEstimator, logits, success, group: int, samples: int,
                     seed: int = 0, chunk: int | None = None, **params) -> dict:
    """E[ĝ_x] (P, K) of a batch entry on K-armed pass/fail prompts (weights ones), from `samples`
    batches on `stream`: {"mean", "se", "samples"}."""
    est = batch.as_entry(estimator)
    logits = np.asarray(logits, dtype=np.float64)
    p = {k: jnp.float64(v) for k, v in batch.resolve_params(est, **params).items()}
    args = (jnp.asarray(logits), jnp.asarray(np.asarray(success, dtype=np.float64)), p)
    s = stream(PassFailBandits(est, group), args, samples, seed, chunk=chunk)
    return {"mean": s.mean.reshape(logits.shape), "se": s.mean_se.reshape(logits.shape), "samples": samples}


def _batch_means_se(sizes, estimates, overall) -> float | None:
    """SE of a mean of batch estimates weighted by size: sqrt(B/(B−1) Σ (n_b/N)² (T_b − T)²).

    Undefined (None) with fewer than 2 batches of at least 2 samples."""
    usable = sizes > 1
    sizes, estimates = sizes[usable], estimates[usable]
    b = len(sizes)
    if b < 2:
        return None
    w = sizes / sizes.sum()
    return float(np.sqrt(b / (b - 1) * np.sum(w**2 * (estimates - overall) ** 2)))


def _progress(bar, wanted, start, done, total):
    """Show a progress bar (stderr, `sims.runtime.progress`) once a run has taken longer than
    PROGRESS_AFTER_S; inside an open display (the ledger, the figures) it is one more row."""
    if wanted is False or done >= total:
        return bar
    if bar is None and (wanted or time.perf_counter() - start > PROGRESS_AFTER_S):
        from sims.runtime import progress

        bar = progress.task("Monte Carlo", total)
    if bar is not None:
        bar.update(done)
    return bar
