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
weights (`sims.exact.multisets`), evaluated for all prompts of one count at once, float64.
`objective_change` (from `sims.vas`) evaluates J(θ + δ) − J(θ) without cancellation.

Yardsticks: `best_allocation` searches every count vector with Σ n_p = N exhaustively;
`oracle_allocation` runs the knapsack programme on the exact per-prompt gains (separable
because w_p = n_p/N with N fixed), which must agree with it.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits import allocation as A
from bandits import ensemble as ens
from bandits import softmax
from bandits.errors import InputError
from bandits.rewards import bernoulli
from sims import estimators, exact, montecarlo
from sims.vas import objective_change

AGGREGATIONS = ("rollout", "prompt")
MAX_ROWS = 2_000_000  # multisets × prompts of one count evaluated at once


def _validate(logits, success, counts, name):
    q = np.asarray(success, dtype=np.float64)
    lg = np.zeros_like(q) if logits is None else np.asarray(logits, dtype=np.float64)
    n = np.asarray(counts)
    if q.ndim != 2 or lg.shape != q.shape:
        raise InputError(f"logits and success probabilities must both be (P, K), got {lg.shape} and {q.shape}")
    if n.shape != (q.shape[0],) or not np.issubdtype(n.dtype, np.integer) or np.any(n < 0):
        raise InputError(f"counts must be {q.shape[0]} non-negative integers")
    est = estimators.get(name)
    bad = (n > 0) & (n < est.min_group)
    if np.any(bad):
        raise InputError(f"estimator {name!r} needs groups of at least {est.min_group}; "
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


@functools.partial(jax.jit, static_argnames=("name",))
def _gains_kernel(name, logits, success, steps, arm_rows, val_rows, log_coef, params):
    """E[J_p(θ_p + step_p·ĝ_p) − J_p(θ_p)] for each prompt (one group size for all)."""
    est = estimators.get(name)

    def one(lg, q, step):
        logp_arm = jax.nn.log_softmax(lg)
        log_succ = jnp.log(q)
        log_fail = jnp.log1p(-q)
        lp = log_coef + jnp.sum(logp_arm[arm_rows] + jnp.where(val_rows > 0, log_succ[arm_rows],
                                                                 log_fail[arm_rows]), axis=-1)
        w = jnp.exp(lp)
        g = jax.vmap(lambda a, r: estimators.bandit_group_gradient(
            est.advantages, lg, a, r, params, est.per_coordinate))(arm_rows, val_rows)
        dj = jax.vmap(lambda x: objective_change(lg, q, step * x))(g)
        return jnp.sum(jnp.where(w > 0, w * dj, 0.0))

    return jax.lax.map(lambda args: one(*args), (logits, success, steps))


def prompt_gains(logits, success, group: int, steps, estimator: str = "grpo", **params) -> np.ndarray:
    """E[J_p(θ_p + step_p·ĝ_p)] − J_p(θ_p) for every prompt p, ĝ_p one group of G (exact, (P,))."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    est = estimators.get(estimator)
    params = estimators.resolve_params(est, group, **params)
    rows = exact.count_multisets(2 * q.shape[1], group)
    if rows > exact.MAX_MULTISETS:
        raise InputError(f"{rows:,} multisets at K={q.shape[1]}, G={group} exceed the exact limit of "
                         f"{exact.MAX_MULTISETS:,}")
    arm_rows, val_rows, log_coef = _rows(q.shape[1], group)
    st = np.broadcast_to(np.asarray(steps, dtype=np.float64), (q.shape[0],))
    out = _gains_kernel(estimator, jnp.asarray(lg), jnp.asarray(q), jnp.asarray(st), arm_rows,
                        val_rows, log_coef, {k: jnp.float64(v) for k, v in params.items()})
    return np.asarray(out)


def expected_improvement(logits, success, counts, eta: float, estimator: str = "grpo",
                         aggregation: str = "rollout", per_prompt: bool = False, **params):
    """E[ΔJ] = (1/P) Σ_p E[J_p(θ_p + η w_p ĝ_p) − J_p(θ_p)] of one step under allocation `counts`
    (module docstring), exactly. `per_prompt` returns the (P,) terms (already divided by P)."""
    lg, q, n = _validate(logits, success, counts, estimator)
    w = batch_weights(n, aggregation)
    out = np.zeros(q.shape[0])
    for g in np.unique(n[n > 0]):
        idx = np.flatnonzero(n == g)
        out[idx] = prompt_gains(lg[idx], q[idx], int(g), eta * w[idx], estimator, **params)
    out /= q.shape[0]
    return out if per_prompt else float(out.sum())


def gain_table(logits, success, budget: int, eta: float, *, n_min: int = 2, n_max: int | None = None,
               estimator: str = "grpo", **params) -> np.ndarray:
    """(P, n_max + 1) table of (1/P)·E[J_p(θ_p + η(n/N)ĝ_p) − J_p] for n = 0, n_min..n_max
    (−inf for 0 < n < n_min), N = `budget` (rollout aggregation)."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    n_max = budget if n_max is None else min(n_max, budget)
    table = np.full((q.shape[0], n_max + 1), -np.inf)
    table[:, 0] = 0.0
    for g in range(max(n_min, estimators.get(estimator).min_group), n_max + 1):
        table[:, g] = prompt_gains(lg, q, g, eta * g / budget, estimator, **params) / q.shape[0]
    return table


def oracle_allocation(logits, success, budget: int, eta: float, *, n_min: int = 2,
                      n_max: int | None = None, estimator: str = "grpo", **params):
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
                    n_max: int | None = None, estimator: str = "grpo", **params):
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


def expected_batch_gradient(logits, success, counts, estimator: str = "grpo",
                            aggregation: str = "rollout", **params) -> np.ndarray:
    """E[Ĝ] (P, K): row p is w_p·E[ĝ_p] with E[ĝ_p] from `sims.exact.moments` at G = n_p."""
    lg, q, n = _validate(logits, success, counts, estimator)
    w = batch_weights(n, aggregation)
    out = np.zeros_like(q)
    for p in np.flatnonzero(n > 0):
        m = exact.moments(estimator, lg[p], bernoulli(q[p]), int(n[p]), **params)
        out[p] = w[p] * m.mean
    return out


def reweighting(logits, success, counts, estimator: str = "grpo", aggregation: str = "rollout",
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


@functools.partial(jax.jit, static_argnames=("name", "group", "samples"))
def _mc_kernel(name, group, samples, keys, logits, success, steps, params):
    """Mean and variance over `samples` groups of J_p(θ_p + step_p ĝ) − J_p(θ_p), per prompt."""

    def one(key, lg, q, step):
        tables = {"values": jnp.broadcast_to(jnp.array([0.0, 1.0]), (lg.shape[0], 2)),
                  "cdf": jnp.stack([1.0 - q, jnp.ones_like(q)], axis=-1)}
        g = montecarlo.sample_group_gradients(name, lg, tables, params, key, (samples, group))
        dj = jax.vmap(lambda x: objective_change(lg, q, step * x))(g)
        return jnp.mean(dj), jnp.var(dj, ddof=1)

    return jax.lax.map(lambda a: one(*a), (keys, logits, success, steps))


def mc_improvement(logits, success, counts, eta: float, samples: int, seed: int = 0,
                   estimator: str = "grpo", aggregation: str = "rollout", **params) -> dict:
    """Monte Carlo estimate of E[ΔJ]: `samples` independent groups per selected prompt drawn by the
    Monte Carlo engine's `sample_group_gradients` (prompt p's key is fold_in(key(seed), p)):
    {"mean", "se", "samples", "seed"}."""
    lg, q, n = _validate(logits, success, counts, estimator)
    if not isinstance(samples, int) or samples < 2:
        raise InputError(f"Monte Carlo needs at least 2 samples, got {samples!r}")
    w = batch_weights(n, aggregation)
    est = estimators.get(estimator)
    base = jax.random.key(seed)
    mean, var = 0.0, 0.0
    for g in np.unique(n[n > 0]):
        idx = np.flatnonzero(n == g)
        prm = estimators.resolve_params(est, int(g), **params)
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(idx))
        m, v = _mc_kernel(estimator, int(g), samples, keys, jnp.asarray(lg[idx]), jnp.asarray(q[idx]),
                          jnp.asarray(eta * w[idx]), {k: jnp.float64(x) for k, x in prm.items()})
        mean += float(np.sum(m)) / q.shape[0]
        var += float(np.sum(v)) / q.shape[0] ** 2
    return {"mean": mean, "se": math.sqrt(var / samples), "samples": samples, "seed": seed}


# ---------------------------------------------------------------------------------------------
# D³S: the expected gradient of the max-variance subset
# ---------------------------------------------------------------------------------------------


def d3s_expected_gradient(logits, success, group: int, keep: int, estimator: str = "grpo",
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
    est = estimators.get(estimator)
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


@functools.partial(jax.jit, static_argnames=("name",))
def _kept_gain_kernel(name, logits, success, arms, rewards, weights, step, params):
    est = estimators.get(name)
    g = jax.vmap(lambda a, r: estimators.bandit_group_gradient(
        est.advantages, logits, a, r, params, est.per_coordinate))(arms, rewards)
    dj = jax.vmap(lambda x: objective_change(logits, success, step * x))(g)
    return jnp.sum(weights * dj)


def d3s_prompt_gain(logits, success, group: int, keep: int, step: float, estimator: str = "grpo",
                    **params) -> float:
    """E[J(θ + step·ĝ_kept) − J(θ)] for one prompt when D³S draws G rollouts and keeps the
    max-variance subset of m = `keep` (j = `d3s_split` successes, chosen uniformly among the
    group's successes, likewise the failures), with the estimator recomputed on the kept ones.
    Exact: multisets of G outcomes × the multivariate-hypergeometric sub-multisets kept."""
    lg = np.asarray(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    k_arms = q.shape[0]
    est = estimators.get(estimator)
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
    return float(_kept_gain_kernel(estimator, jnp.asarray(lg), jnp.asarray(q), jnp.asarray(np.array(arms_out)),
                                   jnp.asarray(np.array(vals_out)), jnp.asarray(np.array(w_out)),
                                   jnp.float64(step), {k_: jnp.float64(v) for k_, v in prm.items()}))


# ---------------------------------------------------------------------------------------------
# Rules on an ensemble: history → allocation → exact E[ΔJ]
# ---------------------------------------------------------------------------------------------

RULES = ("uniform", "vas", "knapsack", "vade", "sec", "d3s", "oracle")


def ensemble_pass_rates(logits, success) -> np.ndarray:
    return np.asarray(ens.pass_rates(jnp.asarray(logits), jnp.asarray(success)))


def draw_history(rng: np.random.Generator, pass_rates, trials: int):
    """Successes ~ Binomial(trials, P_p) for every prompt (the rules' observable history)."""
    return rng.binomial(trials, np.asarray(pass_rates)), np.full(len(pass_rates), trials)


def categories_by_difficulty(pass_rates, num: int = 3) -> np.ndarray:
    """SEC's categories: prompts binned by their true pass rate into `num` equal-width bins."""
    return np.minimum((np.asarray(pass_rates) * num).astype(np.int64), num - 1)


def rule_allocation(rule: str, rng: np.random.Generator, logits, success, budget: int, group: int,
                    eta: float, history: int = 8, estimator: str = "grpo") -> np.ndarray:
    """One allocation of `rule` on its observable history (`history` past rollouts per prompt,
    drawn at the current policy): VADE's posterior is Beta(1 + k, 1 + h − k); SEC's Q values
    are the expected mean |A| of GRPO per category estimated from the same history, with
    categories = difficulty terciles; the oracle uses the true pass rates and the exact gains."""
    rates = ensemble_pass_rates(logits, success)
    k, t = draw_history(rng, rates, history)
    prompts = len(rates)
    if rule == "uniform":
        return A.uniform_rule(rng, prompts, budget, group)
    if rule == "vas":
        return A.vas_rule(rng, k, t, budget, group, lam=1.0)
    if rule == "knapsack":
        return A.knapsack_rule(k, t, budget, n_min=2, n_max=min(128, budget), default_n=group)
    if rule == "vade":
        return A.vade_rule(rng, 1.0 + k, 1.0 + t - k, budget, group)
    if rule == "sec":
        cats = categories_by_difficulty(rates)
        p_hat = k / t
        mean_abs = 2.0 * np.sqrt(p_hat * (1 - p_hat))  # GRPO's mean |A| on a non-degenerate group
        q = np.array([mean_abs[cats == c].mean() if np.any(cats == c) else 0.0 for c in range(3)])
        return A.sec_rule(rng, q, cats, budget, group, tau=0.4)
    if rule == "oracle":
        return oracle_allocation(logits, success, budget, eta, n_max=min(4 * group, budget),
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
            "nonzero_fraction": frac, "draws": 0}


def rule_improvement(rule: str, logits, success, budget: int, group: int, eta: float, *,
                     draws: int = 16, seed: int = 0, history: int = 8, estimator: str = "grpo") -> dict:
    """E[ΔJ] of a rule: exact given each allocation, averaged over `draws` independent histories
    and draws of the rule (mean, SE over draws), with the expected non-zero-gradient fraction."""
    rng = np.random.default_rng(seed)
    rates = ensemble_pass_rates(logits, success)
    if rule == "d3s":
        return _d3s_improvement(logits, success, budget, group, eta, estimator)
    gains, frac = [], []
    for _ in range(1 if rule == "oracle" else draws):
        n = rule_allocation(rule, rng, logits, success, budget, group, eta, history, estimator)
        gains.append(expected_improvement(logits, success, n, eta, estimator))
        frac.append(nonzero_fraction(rates, n))
    g = np.asarray(gains)
    se = float(g.std(ddof=1) / math.sqrt(len(g))) if len(g) > 1 else 0.0
    return {"rule": rule, "gain": float(g.mean()), "gain_se": se, "per_rollout": float(g.mean()) / budget,
            "nonzero_fraction": float(np.mean(frac)), "draws": len(g)}


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
               setup: dict | None = None) -> list[dict]:
    """`rule_improvement` of every rule on one study ensemble at one budget, best first."""
    s = dict(STUDY, **(setup or {}))
    lg, q = study_ensemble(kind, s)
    out = [rule_improvement(r, lg, q, budget, s["group"], s["eta"], draws=draws, seed=seed,
                            history=s["history"]) for r in rules]
    return sorted(out, key=lambda d: -d["gain"])


def main(argv=None) -> None:
    """`python -m sims.allocation [--quick]`: the rules ranked by exact E[ΔJ] at equal budget on
    the easy, mixed and hard study ensembles, as JSON."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budget", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    report = {"setup": dict(STUDY, budget=a.budget, seed=a.seed), "ranking": {}}
    for kind in KINDS:
        report["ranking"][kind] = rank_rules(kind, a.budget, draws=4 if a.quick else 32, seed=a.seed)
    print(json.dumps(report, indent=1, allow_nan=False))


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------
# Learning curves at equal rollout budget
# ---------------------------------------------------------------------------------------------

CURVE_RULES = ("uniform", "vas", "knapsack", "vade", "sec")


@functools.partial(jax.jit, static_argnames=("name",))
def _group_terms(name, lg, arms, rewards):
    """ĝ of one group on prompt logits `lg` and its advantages (weights 1), compiled once per
    (estimator, group size): the training loops call it once per prompt and step."""
    est = estimators.get(name)
    prm = estimators.resolve_params(est, arms.shape[0])
    g = estimators.bandit_group_gradient(est.advantages, lg, arms, rewards, prm)
    return g, est.advantages(rewards, jnp.ones_like(rewards), **prm)


_policy = jax.jit(softmax.policy)
_objective = jax.jit(ens.objective)


def train_rule(rule: str, logits, success, *, budget: int, group: int, eta: float, steps: int,
               seed: int, warmup: int = 2, refresh: int = 10, estimator: str = "grpo") -> dict:
    """One run of `rule` on an ensemble: every step the rule allocates `budget` rollouts from what
    it has observed, the groups are drawn, and Θ_p += η (n_p/N) ĝ_p. Every rollout is counted:
    a warm-up pass of `warmup` rollouts per prompt gives the history-based rules their first
    estimates (all rules but uniform), and VAS re-scores every prompt with `warmup` rollouts every
    `refresh` steps (MMR1's refresh). Histories: Knapsack RL and VAS use each prompt's latest
    group; VADE a Beta posterior (decay 0.1 toward Beta(1, 1)); SEC mean |A| per difficulty
    tercile (of the warm-up estimate). Returns {"rollouts", "objective"}: cumulative rollouts and J(Θ) after the warm-up and every step."""
    rng = np.random.default_rng(seed)
    lg = np.array(logits, dtype=np.float64)
    q = np.asarray(success, dtype=np.float64)
    prompts = q.shape[0]

    def draw(p, n):
        pi = np.asarray(_policy(lg[p]))
        arms = rng.choice(q.shape[1], size=n, p=pi / pi.sum())
        return arms, (rng.uniform(size=n) < q[p, arms]).astype(np.float64)

    spent = 0
    succ, trials = np.zeros(prompts, np.int64), np.zeros(prompts, np.int64)
    a_post, b_post = np.ones(prompts), np.ones(prompts)

    def score_all():
        nonlocal spent
        for p in range(prompts):
            _, r = draw(p, warmup)
            succ[p], trials[p] = int(r.sum()), warmup
        spent += prompts * warmup

    if rule != "uniform":
        score_all()
        a_post += succ
        b_post += trials - succ
    cats = categories_by_difficulty(np.where(trials > 0, succ / np.maximum(trials, 1), 0.5))
    q_sec = np.zeros(3)
    j0 = float(_objective(lg, q))
    rollouts, objective = ([0, spent], [j0, j0]) if spent else ([0], [j0])  # warm-up moves nothing
    for t in range(steps):
        if rule == "uniform":
            n = A.uniform_rule(rng, prompts, budget, group)
        elif rule == "vas":
            if t > 0 and t % refresh == 0:
                score_all()
            n = A.vas_rule(rng, succ, trials, budget, group, lam=1.0)
        elif rule == "knapsack":
            n = A.knapsack_rule(succ, trials, budget, n_min=2, n_max=min(128, budget), default_n=group)
        elif rule == "vade":
            n = A.vade_rule(rng, a_post, b_post, budget, group)
        elif rule == "sec":
            n = A.sec_rule(rng, q_sec, cats, budget, group, tau=0.4)
        else:
            raise InputError(f"unknown rule {rule!r}; expected one of {', '.join(CURVE_RULES)}")
        total = n.sum()
        new = lg.copy()
        k_step = np.zeros(prompts)
        abs_adv = [[] for _ in range(3)]
        for p in np.flatnonzero(n > 0):
            arms, r = draw(p, int(n[p]))
            if n[p] >= 2:
                g, adv = _group_terms(estimator, lg[p], arms, r)
                new[p] += eta * n[p] / total * np.asarray(g)
                abs_adv[cats[p]].extend(np.abs(np.asarray(adv)).tolist())
            k_step[p] = r.sum()
            succ[p], trials[p] = int(r.sum()), int(n[p])
        a_post, b_post = A.vade_update(a_post, b_post, n, k_step, decay=0.1)
        q_sec = A.sec_update(q_sec, [x if x else None for x in abs_adv], lr=0.5)
        lg = new
        spent += int(total)
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
