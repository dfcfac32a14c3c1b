"""The exact expected one-step improvement of a batch under a rollout allocation
(docs/design.md §4.10), the yardstick allocations, and the statistics behind the allocation claims.

Batch gradient. Prompt p gets one group of n_p rollouts (n_p = 0 or n_p ≥ 2) on a Bernoulli
ensemble (`bandits.ensemble`), ĝ_p = (1/n_p) Σ_i A_i s(a_i) with a registry estimator, and

    Θ⁺_p = θ_p + η·w_p·ĝ_p,     "rollout" aggregation: w_p = n_p/N,  N = Σ_p n_p
                                "prompt"  aggregation: w_p = 1/|S|,  S = {p : n_p > 0}

("rollout" is the mean over every rollout of the batch, as a trainer that averages the loss over
all responses does; it gives w_p = 1/B when B prompts get G each, matching `sims.train`). Prompts
are independent and J = (1/P) Σ_p J_p(θ_p), so

    E[ΔJ] = (1/P) Σ_p E[J_p(θ_p + η w_p ĝ_p) − J_p(θ_p)],

and each term is a finite sum over the multisets of n_p outcomes (arm, reward) with multinomial
weights (`sims.engines.exact.multisets`), evaluated for all prompts of one count at once, float64.
`objective_change` (from `sims.vas`) evaluates J(θ + δ) − J(θ) without cancellation. A sampler
with replacement (MMR1's VAS) can give one prompt c groups of G; then the term is
E[J_p(θ_p + η(G/N) Σ_{j≤c} ĝ_{p,j}) − J_p(θ_p)], exact over the c-fold convolution of one
group's law (`repeated_group_gain`, `groups_improvement`). The released Knapsack RL trainer
clamps GRPO's advantages at ±5 (`adv_clip`).

Rules on the study ensembles (`rule_allocation`, `rank_rules`, `python -m sims.allocation`) see
a history of h = 8 rollouts per prompt at the current policy: Knapsack RL reads it as its reward
buffer, VAS scores it (OVS + TDS), VADE's posterior is Beta(1 + k, 1 + h − k), SEC bins its
p̂ = k/h and runs its TD(0) update over it; the oracle knows the pass rates.

Yardsticks: `best_allocation` searches every count vector with Σ n_p = N exhaustively;
`oracle_allocation` runs the knapsack programme on the exact per-prompt gains (separable
because w_p = n_p/N with N fixed), which must agree with it.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits import allocation as A
from bandits import ensemble as ens
from bandits import softmax
from bandits import vas as vas_mod
from bandits.errors import MAX_SEED, InputError
from bandits.rewards import bernoulli
from sims import estimators
from sims.engines import exact, montecarlo
from sims.vas import objective_change

GRPO = estimators.get("grpo")  # the default estimator of the allocation rules (the papers' own)

AGGREGATIONS = ("rollout", "prompt")
MAX_ROWS = 2_000_000  # multisets × prompts of one count evaluated at once


def _validate(logits, success, counts, estimator):
    q = np.asarray(success, dtype=np.float64)
    lg = np.zeros_like(q) if logits is None else np.asarray(logits, dtype=np.float64)
    n = np.asarray(counts)
    if q.ndim != 2 or lg.shape != q.shape:
        raise InputError(f"logits and success probabilities must both be (P, K), got {lg.shape} and {q.shape}")
    if n.shape != (q.shape[0],) or not np.issubdtype(n.dtype, np.integer) or np.any(n < 0):
        raise InputError(f"counts must be {q.shape[0]} non-negative integers")
    est = estimators.as_entry(estimator)
    bad = (n > 0) & (n < est.min_group)
    if np.any(bad):
        raise InputError(f"estimator {est.name!r} needs groups of at least {est.min_group}; "
                         f"prompt {int(np.flatnonzero(bad)[0])} has {int(n[bad][0])}")
    if n.sum() == 0:
        raise InputError("an allocation needs at least one rollout")
    return lg, q, n.astype(np.int64)


def batch_weights(counts, aggregation: str = "rollout") -> np.ndarray:
    """w_p of the batch gradient: n_p/N ("rollout") or 1/|S| on the selected prompts ("prompt")."""
    n = np.asarray(counts, dtype=np.float64)
    if aggregation == "rollout":
        return n / n.sum()
    if aggregation == "prompt":
        return np.where(n > 0, 1.0 / np.sum(n > 0), 0.0)
    raise InputError(f"unknown aggregation {aggregation!r}; expected one of {', '.join(AGGREGATIONS)}")


@functools.lru_cache(maxsize=64)
def _rows(arms: int, group: int):
    rows, log_coef = exact.multisets(2 * arms, group)
    return jnp.asarray(rows // 2), jnp.asarray((rows % 2).astype(np.float64)), jnp.asarray(log_coef)


def _advantages(fn, clip):
    """The advantage function `fn`, clipped to [−clip, clip] when `clip` is set (Knapsack RL's
    trainer clamps A at ±ADV_CLIP_VALUE = 5 after GRPO)."""
    if clip is None:
        return fn
    return lambda r, w, **k: jnp.clip(fn(r, w, **k), -clip, clip)


@functools.partial(jax.jit, static_argnames=("est", "clip"))
def _gains_kernel(est, logits, success, steps, arm_rows, val_rows, log_coef, params, clip=None):
    """E[J_p(θ_p + step_p·ĝ_p) − J_p(θ_p)] for each prompt (one group size for all)."""
    adv = _advantages(est.advantages, clip)

    def one(lg, q, step):
        logp_arm = jax.nn.log_softmax(lg)
        log_succ = jnp.log(q)
        log_fail = jnp.log1p(-q)
        lp = log_coef + jnp.sum(logp_arm[arm_rows] + jnp.where(val_rows > 0, log_succ[arm_rows],
                                                                 log_fail[arm_rows]), axis=-1)
        w = jnp.exp(lp)
        g = jax.vmap(lambda a, r: estimators.bandit_group_gradient(
            adv, lg, a, r, params, est.per_coordinate))(arm_rows, val_rows)
        dj = jax.vmap(lambda x: objective_change(lg, q, step * x))(g)
        return jnp.sum(jnp.where(w > 0, w * dj, 0.0))

    return jax.lax.map(lambda args: one(*args), (logits, success, steps))


def prompt_gains(logits, success, group: int, steps, estimator: estimators.Estimator = GRPO, adv_clip=None,
                 **params) -> np.ndarray:
    """E[J_p(θ_p + step_p·ĝ_p)] − J_p(θ_p) for every prompt p, ĝ_p one group of G (exact, (P,));
    `adv_clip` clamps the advantages to [−c, c]."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    est = estimators.as_entry(estimator)
    params = estimators.resolve_params(est, group, **params)
    rows = exact.count_multisets(2 * q.shape[1], group)
    if rows > exact.MAX_MULTISETS:
        raise InputError(f"{rows:,} multisets at K={q.shape[1]}, G={group} exceed the exact limit of "
                         f"{exact.MAX_MULTISETS:,}")
    arm_rows, val_rows, log_coef = _rows(q.shape[1], group)
    st = np.broadcast_to(np.asarray(steps, dtype=np.float64), (q.shape[0],))
    out = _gains_kernel(est, jnp.asarray(lg), jnp.asarray(q), jnp.asarray(st), arm_rows,
                        val_rows, log_coef, {k: jnp.float64(v) for k, v in params.items()},
                        clip=None if adv_clip is None else float(adv_clip))
    return np.asarray(out)


def expected_improvement(logits, success, counts, eta: float, estimator: estimators.Estimator = GRPO,
                         aggregation: str = "rollout", per_prompt: bool = False, adv_clip=None,
                         **params):
    """E[ΔJ] = (1/P) Σ_p E[J_p(θ_p + η w_p ĝ_p) − J_p(θ_p)] of one step under allocation `counts`
    (module docstring), exactly. `per_prompt` returns the (P,) terms (already divided by P)."""
    lg, q, n = _validate(logits, success, counts, estimator)
    w = batch_weights(n, aggregation)
    out = np.zeros(q.shape[0])
    for g in np.unique(n[n > 0]):
        idx = np.flatnonzero(n == g)
        out[idx] = prompt_gains(lg[idx], q[idx], int(g), eta * w[idx], estimator, adv_clip, **params)
    out /= q.shape[0]
    return out if per_prompt else float(out.sum())


@functools.partial(jax.jit, static_argnames=("est",))
def _group_law_kernel(est, lg, q, arm_rows, val_rows, log_coef, params):
    """The law of one group's ĝ on one prompt: (gradients (M, K), probabilities (M,))."""
    logp_arm = jax.nn.log_softmax(lg)
    lp = log_coef + jnp.sum(logp_arm[arm_rows] + jnp.where(val_rows > 0, jnp.log(q)[arm_rows],
                                                             jnp.log1p(-q)[arm_rows]), axis=-1)
    g = jax.vmap(lambda a, r: estimators.bandit_group_gradient(
        est.advantages, lg, a, r, params, est.per_coordinate))(arm_rows, val_rows)
    return g, jnp.exp(lp)


@jax.jit
def _changes(lg, q, deltas):
    return jax.vmap(lambda x: objective_change(lg, q, x))(deltas)


def _merge(points, probs):
    """Merge equal support points (rounded to 1e-12) of a discrete law, dropping zero mass."""
    keep = probs > 0
    uniq, inv = np.unique(np.round(points[keep], 12), axis=0, return_inverse=True)
    mass = np.zeros(uniq.shape[0])
    np.add.at(mass, inv.ravel(), probs[keep])
    return uniq, mass


MC_REPEATS = 1 << 15  # Monte Carlo samples for a prompt drawn too often for the exact sum


@dataclasses.dataclass(frozen=True)
class RepeatedGain:
    """The Monte Carlo problem `draw(key, n, (lg, q, step, params))` → (n, 1):
    J(θ + step·Σ_{j≤c} ĝ_j) − J(θ) for c = `copies` independent groups of G on one prompt."""

    estimator: estimators.Estimator
    group: int
    copies: int

    def __call__(self, key, n, args):
        lg, q, step, params = args
        tables = {"values": jnp.broadcast_to(jnp.array([0.0, 1.0]), (lg.shape[0], 2)),
                  "cdf": jnp.stack([1.0 - q, jnp.ones_like(q)], axis=-1)}
        g = montecarlo.sample_group_gradients(self.estimator, lg, tables, params, key,
                                              (n, self.copies, self.group))
        return jax.vmap(lambda x: objective_change(lg, q, step * x))(jnp.sum(g, axis=1))[:, None]


def repeated_group_gain(logits, success, group: int, copies: int, step: float,
                        estimator: estimators.Estimator = GRPO, seed: int = 0) -> tuple[float, bool]:
    """E[J(θ + step·Σ_{j=1}^{c} ĝ_j) − J(θ)] for c = `copies` independent groups of G on one
    prompt (a prompt drawn c times by a sampler with replacement, each copy its own group):
    the law of one group's ĝ from the multisets, convolved c times, support points merged at
    1e-12 (exact up to that rounding). Returns (value, exact); when the convolution would pass
    `MAX_ROWS` support points it is a Monte Carlo mean of `MC_REPEATS` samples from `seed`
    instead, on the Monte Carlo engine's `stream` (exact = False; its noise is independent across
    the rule's draws, so the SE over draws covers it)."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    if copies == 1:
        return float(prompt_gains(lg[None], q[None], group, step, estimator)[0]), True
    est = estimators.as_entry(estimator)
    prm = {k: jnp.float64(v) for k, v in estimators.resolve_params(est, group).items()}
    arm_rows, val_rows, log_coef = _rows(q.shape[0], group)
    g, w = _group_law_kernel(est, jnp.asarray(lg), jnp.asarray(q), arm_rows, val_rows, log_coef, prm)
    one, mass = _merge(np.asarray(g), np.asarray(w))
    pts, pr = one, mass
    for _ in range(copies - 1):
        if pts.shape[0] * one.shape[0] > MAX_ROWS:
            s = montecarlo.stream(RepeatedGain(est, group, copies),
                                  (jnp.asarray(lg), jnp.asarray(q), jnp.float64(step), prm), MC_REPEATS, seed)
            return float(s.mean[0]), False
        pts, pr = _merge((pts[:, None, :] + one[None, :, :]).reshape(-1, q.shape[0]),
                         (pr[:, None] * mass[None, :]).ravel())
    pad = max(64, 1 << (pts.shape[0] - 1).bit_length()) - pts.shape[0]  # shape buckets
    deltas = np.concatenate([step * pts, np.zeros((pad, q.shape[0]))])
    dj = np.asarray(_changes(jnp.asarray(lg), jnp.asarray(q), jnp.asarray(deltas)))[: pts.shape[0]]
    return float(np.sum(pr * dj)), True


def groups_improvement(logits, success, groups, group: int, eta: float, estimator: estimators.Estimator = GRPO,
                       seed: int = 0, with_exact: bool = False):
    """E[ΔJ] of a batch of m = Σ_p c_p groups of G (prompt p drawn c_p times), rollout-mean
    aggregation: every group has weight G/N, N = G·m, so
    E[ΔJ] = (1/P) Σ_p E[J_p(θ_p + η(G/N) Σ_j ĝ_{p,j}) − J_p(θ_p)], exact but for the prompts
    `repeated_group_gain` hands to Monte Carlo (`with_exact`: also return how many were)."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    c = np.asarray(groups, dtype=np.int64)
    step = eta / c.sum()  # η·G/N
    once = np.flatnonzero(c == 1)
    total = float(np.sum(prompt_gains(lg[once], q[once], group, step, estimator))) if once.size else 0.0
    sampled = 0
    for p in np.flatnonzero(c > 1):
        v, ok = repeated_group_gain(lg[p], q[p], group, int(c[p]), step, estimator, seed=seed + int(p))
        total += v
        sampled += not ok
    return (total / q.shape[0], sampled) if with_exact else total / q.shape[0]


def gain_table(logits, success, budget: int, eta: float, *, n_min: int = 2, n_max: int | None = None,
               estimator: estimators.Estimator = GRPO, **params) -> np.ndarray:
    """(P, n_max + 1) table of (1/P)·E[J_p(θ_p + η(n/N)ĝ_p) − J_p] for n = 0, n_min..n_max
    (−inf for 0 < n < n_min), N = `budget` (rollout aggregation)."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    n_max = budget if n_max is None else min(n_max, budget)
    table = np.full((q.shape[0], n_max + 1), -np.inf)
    table[:, 0] = 0.0
    for g in range(max(n_min, estimators.as_entry(estimator).min_group), n_max + 1):
        table[:, g] = prompt_gains(lg, q, g, eta * g / budget, estimator, **params) / q.shape[0]
    return table


def oracle_allocation(logits, success, budget: int, eta: float, *, n_min: int = 2,
                      n_max: int | None = None, estimator: estimators.Estimator = GRPO, **params):
    """The allocation with Σ n_p = N maximising the exact E[ΔJ] (knapsack on `gain_table`):
    (counts, E[ΔJ])."""
    table = gain_table(logits, success, budget, eta, n_min=n_min, n_max=n_max, estimator=estimator,
                       **params)
    return A.knapsack_dp(table, budget, exact=True)


def all_allocations(prompts: int, budget: int, n_min: int = 2, n_max: int | None = None):
    """Every count vector with Σ n_p = N and n_p ∈ {0} ∪ [n_min, n_max] (brute-force iterator)."""
    n_max = budget if n_max is None else n_max
    choices = [0] + list(range(n_min, n_max + 1))
    for c in itertools.product(choices, repeat=prompts):
        if sum(c) == budget:
            yield np.array(c, dtype=np.int64)


def best_allocation(logits, success, budget: int, eta: float, *, n_min: int = 2,
                    n_max: int | None = None, estimator: estimators.Estimator = GRPO, **params):
    """Exhaustive search over `all_allocations` for the largest exact E[ΔJ]: (counts, value)."""
    table = gain_table(logits, success, budget, eta, n_min=n_min, n_max=n_max, estimator=estimator,
                       **params)
    best, arg = -math.inf, None
    for c in all_allocations(table.shape[0], budget, n_min, table.shape[1] - 1):
        v = float(table[np.arange(len(c)), c].sum())
        if v > best:
            best, arg = v, c
    if arg is None:
        raise InputError(f"no allocation of {budget} rollouts in groups of {n_min}..{n_max}")
    return arg, best


def nonzero_fraction(pass_rates, counts) -> float:
    """Expected fraction of the selected groups whose rewards are not all equal (a non-zero GRPO
    gradient): mean over {p : n_p > 0} of 1 − P_pⁿᵖ − (1 − P_p)ⁿᵖ."""
    p = np.asarray(pass_rates, dtype=np.float64)
    n = np.asarray(counts)
    sel = n > 0
    return float(np.mean(1.0 - p[sel] ** n[sel] - (1.0 - p[sel]) ** n[sel]))


# ---------------------------------------------------------------------------------------------
# Expected batch gradient (bias) and Monte Carlo
# ---------------------------------------------------------------------------------------------


def expected_batch_gradient(logits, success, counts, estimator: estimators.Estimator = GRPO,
                            aggregation: str = "rollout", **params) -> np.ndarray:
    """E[Ĝ] (P, K): row p is w_p·E[ĝ_p] with E[ĝ_p] from `sims.engines.exact.moments` at G = n_p."""
    lg, q, n = _validate(logits, success, counts, estimator)
    w = batch_weights(n, aggregation)
    out = np.zeros_like(q)
    for p in np.flatnonzero(n > 0):
        m = exact.moments(estimator, lg[p], bernoulli(q[p]), int(n[p]), **params)
        out[p] = w[p] * m.mean
    return out


def reweighting(logits, success, counts, estimator: estimators.Estimator = GRPO, aggregation: str = "rollout",
                **params) -> dict:
    """How the batch gradient weighs the prompts: c_p with E[Ĝ]_p = c_p·∇J_p where such a c_p
    exists (the per-prompt estimator's scale times w_p), the largest relative deviation of a row
    from its best multiple of ∇J_p ("direction_defect"), and the spread max c/min c over the
    selected prompts with ∇J_p ≠ 0 (1 ⇔ E[Ĝ] is the uniform average of the selected ∇J_p up to
    one scale)."""
    lg, q, n = _validate(logits, success, counts, estimator)
    mean = expected_batch_gradient(lg, q, n, estimator, aggregation, **params)
    grads = np.asarray(jax.vmap(softmax.gradient)(jnp.asarray(lg), jnp.asarray(q)))
    c = np.full(q.shape[0], np.nan)
    defect = 0.0
    for p in np.flatnonzero(n > 0):
        gg = float(grads[p] @ grads[p])
        if gg < 1e-24:
            continue
        c[p] = float(mean[p] @ grads[p]) / gg
        r = mean[p] - c[p] * grads[p]
        defect = max(defect, float(np.linalg.norm(r)) / max(float(np.linalg.norm(mean[p])), 1e-300))
    sel = c[np.isfinite(c)]
    spread = float(sel.max() / sel.min()) if sel.size and sel.min() > 0 else math.inf
    return {"scale": c, "direction_defect": defect, "spread": spread, "mean": mean, "grad": grads}


@dataclasses.dataclass(frozen=True)
class BatchGain:
    """The Monte Carlo problem `draw(key, n, args)` → (n, 1): n independent draws of
    (1/P) Σ_p [J_p(θ_p + step_p·ĝ_p) − J_p(θ_p)], prompt p one group of n_p. `sizes` lists
    (n_p, number of prompts) per group size, `args` one (logits, success, steps, params) per size
    (prompts of one size sampled together by `montecarlo.sample_prompts`)."""

    estimator: estimators.Estimator
    sizes: tuple
    prompts: int

    def __call__(self, key, n, args):
        est = self.estimator
        total = jnp.zeros(n)
        for j, ((g, _), (lg, q, steps, params)) in enumerate(zip(self.sizes, args)):
            arms, rewards = montecarlo.sample_prompts(jax.random.fold_in(key, j), lg, q, (n, lg.shape[0], g))

            def gain(l, qq, step, a, r, params=params):
                x = estimators.bandit_group_gradient(est.advantages, l, a, r, params, est.per_coordinate)
                return objective_change(l, qq, step * x)

            dj = jax.vmap(jax.vmap(gain), in_axes=(None, None, None, 0, 0))(lg, q, steps, arms, rewards)
            total = total + jnp.sum(dj, axis=1)
        return (total / self.prompts)[:, None]


def mc_improvement(logits, success, counts, eta: float, samples: int, seed: int = 0,
                   estimator: estimators.Estimator = GRPO, aggregation: str = "rollout", **params) -> dict:
    """Monte Carlo estimate of E[ΔJ] from `samples` independent batches (every selected prompt one
    group per batch) on the Monte Carlo engine's `stream` (`BatchGain`), reproducible from `seed`:
    {"mean", "se", "samples", "seed"}."""
    lg, q, n = _validate(logits, success, counts, estimator)
    if not isinstance(samples, int) or samples < 2:
        raise InputError(f"Monte Carlo needs at least 2 samples, got {samples!r}")
    w = batch_weights(n, aggregation)
    est = estimators.as_entry(estimator)
    sizes, args = [], []
    for g in np.unique(n[n > 0]):
        idx = np.flatnonzero(n == g)
        prm = estimators.resolve_params(est, int(g), **params)
        sizes.append((int(g), len(idx)))
        args.append((jnp.asarray(lg[idx]), jnp.asarray(q[idx]), jnp.asarray(eta * w[idx]),
                     {k: jnp.float64(x) for k, x in prm.items()}))
    chunk = min(montecarlo.chunk_size(samples), 1 << (samples - 1).bit_length())  # no padding to 256
    s = montecarlo.stream(BatchGain(est, tuple(sizes), q.shape[0]), tuple(args), samples, seed, chunk=chunk)
    return {"mean": float(s.mean[0]), "se": float(s.mean_se[0]), "samples": samples, "seed": seed}


# ---------------------------------------------------------------------------------------------
# D³S: the expected gradient of the max-variance subset
# ---------------------------------------------------------------------------------------------


def d3s_expected_gradient(logits, success, group: int, keep: int, estimator: estimators.Estimator = GRPO,
                          selection: str = "max_var", **params) -> np.ndarray:
    """E[ĝ] of one prompt when D³S keeps m = `keep` of G rollouts and the estimator runs on the
    kept ones (advantages recomputed on the subset; binary rewards). "max_var": j = `d3s_split`
    successes, chosen uniformly among the group's successes (likewise failures); "random": a
    uniformly random size-m subset (equal in law to a fresh group of m). Exact: by symmetry the
    kept successes contribute (j/k)·Σ_{successes} s on average, so

        E[ĝ] = Σ_c P(c) (1/m)[A⁺ (j/k) Σ_{i∈succ} s(a_i) + A⁻ ((m−j)/(G−k)) Σ_{i∈fail} s(a_i)],

    A⁺, A⁻ the estimator's advantages of a kept success and failure (subset with j of m)."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    est = estimators.as_entry(estimator)
    prm = estimators.resolve_params(est, keep, **params)
    if not 2 <= keep <= group:
        raise InputError(f"D³S keeps between 2 and G = {group} rollouts, got {keep}")
    rows, log_coef = exact.multisets(2 * q.shape[0], group)
    arms, vals = rows // 2, rows % 2
    pi = np.asarray(softmax.policy(lg))
    logp = np.log(pi)[arms] + np.where(vals > 0, np.log(np.where(q > 0, q, 1e-300))[arms],
                                       np.log(np.where(q < 1, 1 - q, 1e-300))[arms])
    w = np.exp(log_coef + logp.sum(axis=1))
    w = np.where((np.where(vals > 0, q[arms], 1 - q[arms]) > 0).all(axis=1), w, 0.0)
    scores = np.eye(q.shape[0])[arms] - pi  # (N, G, K)
    out = np.zeros(q.shape[0])
    adv_cache = {}
    for r in range(rows.shape[0]):
        if w[r] == 0:
            continue
        k = int(vals[r].sum())
        if selection == "max_var":
            j = A.d3s_split(k, group, keep)
            weights_s = j / k if k else 0.0
            weights_f = (keep - j) / (group - k) if group - k else 0.0
            if j not in adv_cache:
                sub = np.array([1.0] * j + [0.0] * (keep - j))
                a = np.asarray(est.advantages(jnp.asarray(sub), jnp.ones(keep), **prm))
                adv_cache[j] = (a[0] if j else 0.0, a[-1] if keep - j else 0.0)
            a_s, a_f = adv_cache[j]
            s_succ = scores[r][vals[r] > 0].sum(axis=0)
            s_fail = scores[r][vals[r] == 0].sum(axis=0)
            out += w[r] * (a_s * weights_s * s_succ + a_f * weights_f * s_fail) / keep
        elif selection == "random":
            out += w[r] * _random_subset_gradient(est, prm, scores[r], vals[r], keep)
        else:
            raise InputError(f"unknown D³S selection {selection!r}; expected max_var or random")
    return out


def _random_subset_gradient(est, prm, scores, vals, keep):
    """E over uniformly random size-m subsets of the group of (1/m) Σ_{kept} A_i s_i."""
    g = vals.shape[0]
    total = np.zeros(scores.shape[1])
    combos = list(itertools.combinations(range(g), keep))
    for sub in combos:
        sub = list(sub)
        a = np.asarray(est.advantages(jnp.asarray(vals[sub].astype(np.float64)), jnp.ones(keep), **prm))
        total += a @ scores[sub] / keep
    return total / len(combos)


def _sub_multisets(counts, total):
    """Every d ≤ counts (elementwise) with Σ d = total, with Π_t C(counts_t, d_t)."""
    counts = list(counts)
    if not counts:
        if total == 0:
            yield (), 1
        return
    for d0 in range(min(counts[0], total) + 1):
        for rest, ways in _sub_multisets(counts[1:], total - d0):
            yield (d0, *rest), math.comb(counts[0], d0) * ways


@functools.partial(jax.jit, static_argnames=("est",))
def _kept_gain_kernel(est, logits, success, arms, rewards, weights, step, params):
    g = jax.vmap(lambda a, r: estimators.bandit_group_gradient(
        est.advantages, logits, a, r, params, est.per_coordinate))(arms, rewards)
    dj = jax.vmap(lambda x: objective_change(logits, success, step * x))(g)
    return jnp.sum(weights * dj)


def d3s_prompt_gain(logits, success, group: int, keep: int, step: float, estimator: estimators.Estimator = GRPO,
                    **params) -> float:
    """E[J(θ + step·ĝ_kept) − J(θ)] for one prompt when D³S draws G rollouts and keeps the
    max-variance subset of m = `keep` (j = `d3s_split` successes, chosen uniformly among the
    group's successes, likewise the failures), with the estimator recomputed on the kept ones.
    Exact: multisets of G outcomes × the multivariate-hypergeometric sub-multisets kept."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    k_arms = q.shape[0]
    est = estimators.as_entry(estimator)
    prm = estimators.resolve_params(est, keep, **params)
    if not 2 <= keep <= group:
        raise InputError(f"D³S keeps between 2 and G = {group} rollouts, got {keep}")
    rows, log_coef = exact.multisets(2 * k_arms, group)
    pi = np.asarray(softmax.policy(lg))
    p_type = np.stack([pi * (1 - q), pi * q], axis=1).reshape(-1)  # type t = 2a + v
    arms_out, vals_out, w_out = [], [], []
    for r in range(rows.shape[0]):
        c = np.bincount(rows[r], minlength=2 * k_arms)
        prob = math.exp(log_coef[r]) * float(np.prod(p_type ** c))
        if prob == 0.0:
            continue
        c_succ, c_fail = c[1::2], c[0::2]
        k = int(c_succ.sum())
        j = A.d3s_split(k, group, keep)
        for d, wd in _sub_multisets(c_succ, j):
            for e, we in _sub_multisets(c_fail, keep - j):
                arms = np.concatenate([np.repeat(np.arange(k_arms), d), np.repeat(np.arange(k_arms), e)])
                vals = np.concatenate([np.ones(j), np.zeros(keep - j)])
                arms_out.append(arms)
                vals_out.append(vals)
                w_out.append(prob * wd * we / (math.comb(k, j) * math.comb(group - k, keep - j)))
    pad = max(16, 1 << (len(w_out) - 1).bit_length()) - len(w_out)  # shape buckets: reuse the kernel
    arms_out += [arms_out[0]] * pad
    vals_out += [vals_out[0]] * pad
    w_out += [0.0] * pad
    return float(_kept_gain_kernel(est, jnp.asarray(lg), jnp.asarray(q),
                                   jnp.asarray(np.array(arms_out)), jnp.asarray(np.array(vals_out)),
                                   jnp.asarray(np.array(w_out)), jnp.float64(step),
                                   {k_: jnp.float64(v) for k_, v in prm.items()}))


# ---------------------------------------------------------------------------------------------
# Rules on an ensemble: history → allocation → exact E[ΔJ]
# ---------------------------------------------------------------------------------------------

RULES = ("uniform", "vas", "knapsack", "knapsack_lab", "vade", "sec", "d3s", "oracle")
SEC_TAU, SEC_LR = 0.4, 0.5  # SEC's README: τ = 0.4 (Math), α = 0.5


def ensemble_pass_rates(logits, success) -> np.ndarray:
    return np.asarray(ens.pass_rates(jnp.asarray(logits), jnp.asarray(success)))


def draw_history(rng: np.random.Generator, logits, success, trials: int):
    """The rules' observable history: `trials` rollouts per prompt at the current policy,
    arms (P, h) ~ π_p and rewards (P, h) ~ Bernoulli(q_p[arm])."""
    pi = np.asarray(jax.vmap(softmax.policy)(jnp.asarray(logits)))
    u = rng.uniform(size=(pi.shape[0], trials, 1))
    arms = np.minimum((u > np.cumsum(pi, axis=1)[:, None, :]).sum(axis=-1), pi.shape[1] - 1)
    q = np.asarray(success)
    rewards = (rng.uniform(size=arms.shape) < np.take_along_axis(q, arms, axis=1)).astype(np.float64)
    return arms, rewards


def categories_by_difficulty(pass_rates, num: int = 3) -> np.ndarray:
    """Prompts binned by their true pass rate into `num` equal-width bins (a yardstick only: SEC
    itself bins the estimates it has, `bandits.allocation.sec_categories`)."""
    return np.minimum((np.asarray(pass_rates) * num).astype(np.int64), num - 1)


def sec_values(rewards, categories, group: int, *, lr: float = SEC_LR, num: int = 3):
    """SEC's Q after its TD(0) updates (`bandits.allocation.sec_update`) over the history, read as
    ⌊h/G⌋ past steps (one step of h when h < G) in each of which every prompt had one group:
    Q starts at 0, r_c is the mean GRPO |A| of category c's rollouts that step."""
    r = np.asarray(rewards)
    size = group if r.shape[1] >= group else r.shape[1]
    q = np.zeros(num)
    for t in range(r.shape[1] // size):
        k = r[:, t * size:(t + 1) * size].sum(axis=1)
        mean_abs = A.grpo_mean_abs_advantage(k, size)
        q = A.sec_update(q, [mean_abs[categories == c].repeat(size) if np.any(categories == c) else None
                             for c in range(num)], lr=lr)
    return q


def rule_allocation(rule: str, rng: np.random.Generator, logits, success, budget: int, group: int,
                    eta: float, history: int = 8, estimator: estimators.Estimator = GRPO, vas_lambda: float = 0.5):
    """One draw of `rule` on its observable history (`history` past rollouts per prompt at the
    current policy): returns ("counts", n) (one group of n_p per prompt) or ("groups", c) (c_p
    groups of G, VAS's sampling with replacement). Knapsack RL (released): the reward buffer's
    p̂ (valid: h ≥ 8) and `knapsack_released_rule`; its lab variant: p̂ = k/h and
    `knapsack_lab_rule`; VAS: VPS = OVS + TDS from the history, λ = `vas_lambda`; VADE:
    Beta(1 + k, 1 + h − k); SEC: categories = terciles of p̂, Q from TD(0) over the history,
    τ = 0.4; the oracle uses the true pass rates and the exact gains."""
    arms, rewards = draw_history(rng, logits, success, history)
    k = rewards.sum(axis=1).astype(np.int64)
    t = np.full(k.shape[0], history)
    prompts = k.shape[0]
    if rule == "uniform":
        return "counts", A.uniform_rule(rng, prompts, budget, group)
    if rule == "vas":
        tds = np.asarray(vas_mod.diversity_score(jnp.asarray(arms), np.asarray(logits).shape[1]))
        return "groups", A.vas_groups(rng, A.vas_scores(k, t, tds), budget, group, lam=vas_lambda)
    if rule == "knapsack":
        cfg = A.KNAPSACK_RELEASED
        valid, p_hat = A.knapsack_reward_state([[r] for r in rewards], buffer=cfg["buffer"],
                                               min_buffer=cfg["min_buffer"])
        return "counts", A.knapsack_released_rule(valid, p_hat, budget, n=cfg["n"], min_n=cfg["min_n"],
                                                  max_n=cfg["max_n"], negative_n=cfg["negative_n"],
                                                  positive_n=cfg["positive_n"], alpha=cfg["alpha"])
    if rule == "knapsack_lab":
        return "counts", A.knapsack_lab_rule(k, t, budget, n_min=2, n_max=min(128, budget), default_n=group)
    if rule == "vade":
        return "counts", A.vade_rule(rng, 1.0 + k, 1.0 + t - k, budget, group)
    if rule == "sec":
        cats = A.sec_categories(k, t)
        return "counts", A.sec_rule(rng, sec_values(rewards, cats, group), cats, budget, group, tau=SEC_TAU)
    if rule == "oracle":
        return "counts", oracle_allocation(logits, success, budget, eta, n_max=min(4 * group, budget),
                                           estimator=estimator)[0]
    raise InputError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")


def _d3s_improvement(logits, success, budget, group, eta, estimator):
    """D³S on uniformly drawn prompts: m = ⌊budget/G⌋ prompts get G rollouts, each keeps G/2
    (rounded down, at least 2), w_p = 1/m. Exact over the uniform draw as well:
    E[ΔJ] = (1/P)·(m/P)·Σ_p gain_p."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    prompts = q.shape[0]
    m = budget // group
    keep = max(2, group // 2)
    gains = [d3s_prompt_gain(lg[p], q[p], group, keep, eta / m, estimator) for p in range(prompts)]
    rates = ensemble_pass_rates(lg, q)
    frac = float(np.mean(1.0 - rates**group - (1.0 - rates) ** group))
    total = float(np.sum(gains)) * m / prompts / prompts
    return {"rule": "d3s", "gain": total, "gain_se": 0.0, "per_rollout": total / budget,
            "nonzero_fraction": frac, "draws": 0, "monte_carlo_terms": 0}


def rule_improvement(rule: str, logits, success, budget: int, group: int, eta: float, *,
                     draws: int = 16, seed: int = 0, history: int = 8, estimator: estimators.Estimator = GRPO,
                     vas_lambda: float = 0.5) -> dict:
    """E[ΔJ] of a rule: exact given each allocation, averaged over `draws` independent histories
    and draws of the rule (mean, SE over draws), with the expected non-zero-gradient fraction of
    its groups. The released Knapsack rule's step clamps GRPO's advantages at ±5 (its trainer)."""
    rng = np.random.default_rng(seed)
    rates = ensemble_pass_rates(logits, success)
    if rule == "d3s":
        return _d3s_improvement(logits, success, budget, group, eta, estimator)
    gains, frac, mc_terms = [], [], 0
    for _ in range(1 if rule == "oracle" else draws):
        kind, n = rule_allocation(rule, rng, logits, success, budget, group, eta, history, estimator,
                                  vas_lambda)
        if kind == "groups":
            v, sampled = groups_improvement(logits, success, n, group, eta, estimator,
                                            seed=int(rng.integers(2**31)), with_exact=True)
            gains.append(v)
            mc_terms += sampled
            nz = 1.0 - rates**group - (1.0 - rates) ** group
            frac.append(float(np.sum(n * nz) / n.sum()))
        else:
            big = int(n.max())
            if exact.count_multisets(2 * np.asarray(success).shape[1], big) > exact.MAX_MULTISETS:
                raise InputError(f"rule {rule!r} gave a prompt {big} rollouts: beyond the exact limit of "
                                 f"{exact.MAX_MULTISETS:,} multisets; use a smaller budget")
            clip = A.KNAPSACK_RELEASED["adv_clip"] if rule == "knapsack" else None
            gains.append(expected_improvement(logits, success, n, eta, estimator, adv_clip=clip))
            frac.append(nonzero_fraction(rates, n))
    g = np.asarray(gains)
    se = float(g.std(ddof=1) / math.sqrt(len(g))) if len(g) > 1 else 0.0
    return {"rule": rule, "gain": float(g.mean()), "gain_se": se, "per_rollout": float(g.mean()) / budget,
            "nonzero_fraction": float(np.mean(frac)), "draws": len(g), "monte_carlo_terms": mc_terms}


# ---------------------------------------------------------------------------------------------
# Study: every rule at equal budget on easy, mixed and hard ensembles
# ---------------------------------------------------------------------------------------------

KINDS = {"easy": (3.0, 1.0), "mixed": (1.0, 1.0), "hard": (1.0, 3.0)}
STUDY = {"prompts": 12, "arms": 3, "group": 4, "eta": 2.0, "history": 8, "ensemble_seed": 0}


def study_ensemble(kind: str, setup: dict | None = None):
    """(logits, success) of a study ensemble: success ~ Beta(a, b) of `KINDS[kind]`, logits 0."""
    s = dict(STUDY, **(setup or {}))
    if kind not in KINDS:
        raise InputError(f"unknown ensemble kind {kind!r}; expected one of {', '.join(KINDS)}")
    e = ens.make_ensemble(s["ensemble_seed"], s["prompts"], s["arms"], *KINDS[kind])
    return np.zeros_like(e.success), np.asarray(e.success)


def rank_rules(kind: str, budget: int, *, draws: int = 16, seed: int = 0, rules=RULES,
               setup: dict | None = None, vas_lambda: float = 0.5) -> list[dict]:
    """`rule_improvement` of every rule on one study ensemble at one budget, best first."""
    s = dict(STUDY, **(setup or {}))
    lg, q = study_ensemble(kind, s)
    out = [rule_improvement(r, lg, q, budget, s["group"], s["eta"], draws=draws, seed=seed,
                            history=s["history"], vas_lambda=vas_lambda) for r in rules]
    return sorted(out, key=lambda d: -d["gain"])


MAX_GROUP = 8  # the exact sums at K = 3: C(2K + G − 1, G) multisets per group
MAX_DRAWS = 256


def budget_limits(group: int, prompts: int = STUDY["prompts"]) -> tuple[int, int]:
    """The budgets every rule can spend: at least 2 per prompt (Knapsack RL's minimum) and one
    group, at most one group of G for every prompt (uniform, VADE and SEC draw distinct prompts)."""
    return max(2 * prompts, group), prompts * group


def _cli_int(text: str, name: str, lo: int, hi: int) -> int:
    try:
        v = int(text, 10)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an integer, got {text!r}") from None
    if not lo <= v <= hi:
        raise InputError(f"{name} must lie in [{lo:,}, {hi:,}], got {v:,}")
    return v


def _cli_lambda(text: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise InputError(f"--vas-lambda must be a number, got {text!r}") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise InputError(f"--vas-lambda (MMR1's mixture ratio λ) must lie in [0, 1], got {text}")
    return v


def report(budget: int, group: int = STUDY["group"], *, seed: int = 0, draws: int = 32,
           vas_lambda: float = 0.5, kinds=tuple(KINDS)) -> dict:
    """The ranking of every rule on each study ensemble at one budget (the command's JSON)."""
    setup = dict(STUDY, group=group)
    out = {"setup": dict(setup, budget=budget, seed=seed, draws=draws, vas_lambda=vas_lambda,
                         rollouts_per_prompt=budget / setup["prompts"]), "ranking": {}}
    for kind in kinds:
        out["ranking"][kind] = rank_rules(kind, budget, draws=draws, seed=seed, setup=setup,
                                          vas_lambda=vas_lambda)
    return out


def main(argv=None) -> int:
    """`python -m sims.allocation [--budget N] [--group G] [--draws D] [--seed S] [--vas-lambda λ]
    [--kind K] [--quick]`: the rules ranked by exact E[ΔJ] at equal budget on the easy, mixed and
    hard study ensembles (12 prompts × 3 arms), as strict JSON. The paper's setting is 8 rollouts
    per prompt: `--budget 96 --group 8`; the lab's: `--budget 32 --group 4`. Bad input: exit 2
    and one line on stderr."""
    import argparse
    import json
    import sys

    class _Parser(argparse.ArgumentParser):
        def error(self, message):
            raise InputError(message)

    ap = _Parser(prog="python -m sims.allocation", description=main.__doc__)
    ap.add_argument("--quick", action="store_true", help="4 draws per rule")
    ap.add_argument("--budget", default="32", help="rollouts per step")
    ap.add_argument("--group", default=str(STUDY["group"]), help=f"G, 2..{MAX_GROUP}")
    ap.add_argument("--draws", default=None, help=f"histories per rule, 2..{MAX_DRAWS} (default 32)")
    ap.add_argument("--seed", default="0", help="0..2^63 − 1")
    ap.add_argument("--vas-lambda", default="0.5", help="MMR1's mixture ratio λ ∈ [0, 1]")
    ap.add_argument("--kind", default=None, choices=tuple(KINDS), help="one ensemble (default all)")
    try:
        a = ap.parse_args(argv)
        group = _cli_int(a.group, "--group", 2, MAX_GROUP)
        lo, hi = budget_limits(group)
        budget = _cli_int(a.budget, f"--budget (at G = {group})", lo, hi)
        seed = _cli_int(a.seed, "--seed", 0, MAX_SEED)
        draws = 4 if a.quick and a.draws is None else _cli_int(a.draws or "32", "--draws", 2, MAX_DRAWS)
        lam = _cli_lambda(a.vas_lambda)
        kinds = (a.kind,) if a.kind else tuple(KINDS)
        text = json.dumps(report(budget, group, seed=seed, draws=draws, vas_lambda=lam, kinds=kinds),
                          indent=1, allow_nan=False)
    except (InputError, ValueError) as exc:
        print(f"sims.allocation: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---------------------------------------------------------------------------------------------
# Learning curves at equal rollout budget
# ---------------------------------------------------------------------------------------------

CURVE_RULES = ("uniform", "vas", "knapsack", "knapsack_lab", "vade", "sec")


@functools.partial(jax.jit, static_argnames=("est", "clip"))
def _group_terms(est, lg, arms, rewards, clip=None):
    """ĝ of one group on prompt logits `lg` and its advantages (weights 1; clipped to ±clip when
    set), compiled once per (estimator, group size): the training loops call it once per group."""
    prm = estimators.resolve_params(est, arms.shape[0])
    adv = _advantages(est.advantages, clip)
    g = estimators.bandit_group_gradient(adv, lg, arms, rewards, prm)
    return g, adv(rewards, jnp.ones_like(rewards), **prm)


_policy = jax.jit(softmax.policy)
_objective = jax.jit(ens.objective)


def train_rule(rule: str, logits, success, *, budget: int, group: int, eta: float, steps: int,
               seed: int, warmup: int = 2, refresh: int = 10, estimator: estimators.Estimator = GRPO,
               vas_lambda: float = 0.5) -> dict:
    """One run of `rule` on an ensemble: every step the rule allocates `budget` rollouts from what
    it has observed, the groups are drawn, and Θ_p += η (n/N) ĝ for each group of n (N the
    step's rollouts). Every rollout is counted: a warm-up pass gives the history-based rules
    their first estimates (`warmup` rollouts per prompt; the released Knapsack rule needs its
    buffer's 8), and VAS re-scores every prompt with `warmup` rollouts every `refresh` steps
    (MMR1's refresh; VPS = OVS + TDS, λ = `vas_lambda`, with replacement). Histories: Knapsack RL
    (released) the reward buffer of the latest 16 rewards and ±5 advantage clipping; its lab
    variant each prompt's latest group; VAS the scores of its latest refresh; VADE a Beta posterior (decay 0.1 toward
    Beta(1, 1)); SEC categories = terciles of the warm-up estimate, Q by TD(0) on mean |A|.
    Returns {"rollouts", "objective"}: cumulative rollouts and J(Θ) after the warm-up and every
    step."""
    if rule not in CURVE_RULES:
        raise InputError(f"unknown rule {rule!r}; expected one of {', '.join(CURVE_RULES)}")
    rng = np.random.default_rng(seed)
    lg = np.array(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    prompts = q.shape[0]
    cfg = A.KNAPSACK_RELEASED

    def draw(p, n):
        pi = np.asarray(_policy(lg[p]))
        arms = rng.choice(q.shape[1], size=n, p=pi / pi.sum())
        return arms, (rng.uniform(size=n) < q[p, arms]).astype(np.float64)

    spent = 0
    succ, trials = np.zeros(prompts, np.int64), np.zeros(prompts, np.int64)
    tds, vps = np.zeros(prompts), np.zeros(prompts)
    buffers: list[list] = [[] for _ in range(prompts)]
    a_post, b_post = np.ones(prompts), np.ones(prompts)

    def score_all(n):
        nonlocal spent
        for p in range(prompts):
            arms, r = draw(p, n)
            succ[p], trials[p] = int(r.sum()), n
            tds[p] = float(vas_mod.diversity_score(jnp.asarray(arms), q.shape[1]))
            buffers[p].append(r)
        vps[:] = A.vas_scores(succ, trials, tds)  # VAS keeps these scores until the next refresh
        spent += prompts * n

    if rule != "uniform":
        score_all(max(warmup, cfg["min_buffer"]) if rule == "knapsack" else warmup)
        a_post += succ
        b_post += trials - succ
    cats = A.sec_categories(succ, trials)
    q_sec = np.zeros(3)
    clip = cfg["adv_clip"] if rule == "knapsack" else None
    est = estimators.as_entry(estimator)
    j0 = float(_objective(lg, q))
    rollouts, objective = ([0, spent], [j0, j0]) if spent else ([0], [j0])  # warm-up moves nothing
    for t in range(steps):
        if rule == "uniform":
            n = A.uniform_rule(rng, prompts, budget, group)
        elif rule == "vas":
            if t > 0 and t % refresh == 0:
                score_all(warmup)
            n = group * A.vas_groups(rng, vps, budget, group, lam=vas_lambda)
        elif rule == "knapsack":
            valid, p_hat = A.knapsack_reward_state(buffers, buffer=cfg["buffer"], min_buffer=cfg["min_buffer"])
            n = A.knapsack_released_rule(valid, p_hat, budget, n=cfg["n"], min_n=cfg["min_n"],
                                         max_n=cfg["max_n"], negative_n=cfg["negative_n"],
                                         positive_n=cfg["positive_n"], alpha=cfg["alpha"])
        elif rule == "knapsack_lab":
            n = A.knapsack_lab_rule(succ, trials, budget, n_min=2, n_max=min(128, budget), default_n=group)
        elif rule == "vade":
            n = A.vade_rule(rng, a_post, b_post, budget, group)
        else:
            n = A.sec_rule(rng, q_sec, cats, budget, group, tau=SEC_TAU)
        sizes = [(p, group) for p in np.flatnonzero(n) for _ in range(n[p] // group)] if rule == "vas" \
            else [(p, int(n[p])) for p in np.flatnonzero(n)]
        total = int(n.sum())
        new = lg.copy()
        k_step, n_step = np.zeros(prompts), np.zeros(prompts)
        abs_adv = [[] for _ in range(3)]
        for p, size in sizes:
            arms, r = draw(p, size)
            if size >= 2:
                g, adv = _group_terms(est, lg[p], arms, r, clip=clip)
                new[p] += eta * size / total * np.asarray(g)
                abs_adv[cats[p]].extend(np.abs(np.asarray(adv)).tolist())
            k_step[p] += r.sum()
            n_step[p] += size
            buffers[p].append(r)
        for p in np.flatnonzero(n_step):
            succ[p], trials[p] = int(k_step[p]), int(n_step[p])
        a_post, b_post = A.vade_update(a_post, b_post, n_step, k_step, decay=0.1)
        q_sec = A.sec_update(q_sec, [x if x else None for x in abs_adv], lr=SEC_LR)
        lg = new
        spent += total
        rollouts.append(spent)
        objective.append(float(_objective(lg, q)))
    return {"rollouts": np.array(rollouts), "objective": np.array(objective)}


def learning_curves(kind: str, *, seeds: int, steps: int, budget: int = 32, seed: int = 0,
                    rules=CURVE_RULES, grid_points: int = 41, setup: dict | None = None) -> dict:
    """Mean J(Θ) over seeds with a normal 95% band for every rule, on a common grid of
    cumulative rollouts (every rollout counted) up to the smallest final total."""
    s = dict(STUDY, **(setup or {}))
    lg, q = study_ensemble(kind, s)
    runs = {r: [train_rule(r, lg, q, budget=budget, group=s["group"], eta=s["eta"], steps=steps,
                           seed=seed * 1000 + i) for i in range(seeds)] for r in rules}
    end = min(run["rollouts"][-1] for rs in runs.values() for run in rs)
    grid = np.linspace(0, end, grid_points)
    out = {"grid": grid, "rules": {}}
    for r, rs in runs.items():
        ys = np.stack([np.interp(grid, run["rollouts"], run["objective"]) for run in rs])
        mean = ys.mean(axis=0)
        se = ys.std(axis=0, ddof=1) / math.sqrt(seeds) if seeds > 1 else np.zeros_like(mean)
        out["rules"][r] = {"mean": mean, "lo": mean - 1.96 * se, "hi": mean + 1.96 * se,
                           "final": [float(mean[-1]), float(mean[-1] - 1.96 * se[-1]),
                                     float(mean[-1] + 1.96 * se[-1])]}
    return out
