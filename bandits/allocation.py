"""Prompt selection and rollout allocation rules (docs/design.md §4.10).

An *allocation* is a vector of rollout counts n ∈ {0, 1, ...}^P over the P prompts of an
ensemble: prompt p gets one group of n_p rollouts (n_p = 0: not trained on this step). A rule is a
pure function of what a trainer can observe — per-prompt success and trial counts from past
rollouts (`successes`, `trials`), a category label per prompt, a rule's own state — and returns
the counts, spending a total rollout budget. Random rules take a `numpy.random.Generator`, so
every draw is reproducible from one integer seed.

Rules (papers' versions first; the lab's choices where a paper leaves something open are named):

* `uniform_rule`: m = ⌊budget/G⌋ distinct prompts uniformly at random, G rollouts each.
* `vas_rule`: MMR1's variance-aware sampling (Leng et al. 2025; `bandits.vas`): n_v = round(λm)
  slots ∝ VPS = α·P̂(1 − P̂), the rest uniform. Lab variant: prompts are drawn without
  replacement (one group per prompt), so an allocation stays one group per prompt.
* `knapsack_rule`: Knapsack RL (Li et al. 2025, arXiv:2509.25849): every prompt gets n_min
  (no history: the default n), and the rest of the budget goes to the prompts with
  0 < p̂ < 1 by an exact dynamic programme maximising Σ_i Value(n_i, p̂_i),

      Value(n, p) = (1 − pⁿ − (1 − p)ⁿ) · p(1 − p)²,

  i.e. P(non-zero gradient) × an information gain, with n_i ≤ n_max (`knapsack_dp`). If no
  prompt has 0 < p̂ < 1 the rest goes to the p̂ = 0 prompts; any leftover is spread evenly.
* `vade_rule`: VADE (arXiv:2511.18902): Thompson sampling p̃_i ~ Beta(α_i, β_i), the m prompts
  with the largest information gain IG(p̃) = p̃(1 − p̃) (the IG form is the lab's choice),
  G rollouts each; `vade_update` adds the observed successes and failures and decays the
  posterior toward the prior (one rate; the paper's two-scale decay is not specified).
* `sec_rule`: SEC (arXiv:2505.14970): each of m slots draws a category c ~ softmax(Q/τ) and pops
  a prompt from c's shuffled queue; `sec_update`: Q_c ← (1 − α)Q_c + α·r_c, r_c the mean |A| of
  the category's rollouts this step, 0 for categories not sampled.
* `d3s_subset`: D³S (arXiv:2509.22115), sample level: of a group's rewards keep the subset of
  size m with the largest variance (the j largest and m − j smallest for the best j).
* `knapsack_dp`: the generic exact multiple-choice knapsack with unit costs used by Knapsack RL
  and by the oracle (`sims.allocation.oracle_allocation`, which knows the true pass rates).
"""

from __future__ import annotations

import math

import numpy as np

from bandits.errors import InputError


def _check_budget(budget, group=None):
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InputError(f"the rollout budget must be an integer ≥ 1, got {budget!r}")
    if group is not None and (not isinstance(group, (int, np.integer)) or group < 1):
        raise InputError(f"the group size G must be an integer ≥ 1, got {group!r}")


def pass_rate_estimates(successes, trials, default: float = math.nan):
    """p̂ = successes/trials per prompt; `default` where trials = 0."""
    s = np.asarray(successes, dtype=np.float64)
    t = np.asarray(trials, dtype=np.float64)
    if s.shape != t.shape or np.any(t < 0) or np.any(s < 0) or np.any(s > t):
        raise InputError("successes and trials must be counts of one shape with 0 ≤ successes ≤ trials")
    return np.where(t > 0, s / np.where(t > 0, t, 1.0), default)


def _groups_of(prompts: int, budget: int, group: int) -> int:
    _check_budget(budget, group)
    m = budget // group
    if m < 1 or m > prompts:
        raise InputError(f"a budget of {budget} in groups of {group} needs between 1 and {prompts} "
                         f"prompts, got {m}")
    return m


def counts_from_selection(prompts: int, selected, group: int) -> np.ndarray:
    """Counts (P,) with G at the selected (distinct) prompts and 0 elsewhere."""
    n = np.zeros(prompts, dtype=np.int64)
    n[np.asarray(selected, dtype=np.int64)] = group
    return n


# ---------------------------------------------------------------------------------------------
# Uniform and VAS
# ---------------------------------------------------------------------------------------------


def uniform_rule(rng: np.random.Generator, prompts: int, budget: int, group: int) -> np.ndarray:
    """⌊budget/G⌋ distinct prompts uniformly at random, G rollouts each."""
    m = _groups_of(prompts, budget, group)
    return counts_from_selection(prompts, rng.choice(prompts, size=m, replace=False), group)


def vas_rule(rng: np.random.Generator, successes, trials, budget: int, group: int, *,
             lam: float = 0.5, alpha: float = 1.0) -> np.ndarray:
    """MMR1's VAS on the history (OVS term; α·P̂(1 − P̂), P̂ from the history, 1/2 with no
    history): round(λm) prompts drawn ∝ VPS without replacement, the rest uniformly from the
    remaining prompts; G rollouts each."""
    p_hat = pass_rate_estimates(successes, trials, default=0.5)
    prompts = p_hat.shape[0]
    m = _groups_of(prompts, budget, group)
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"the VPS fraction λ must lie in [0, 1], got {lam!r}")
    n_v = int(round(lam * m))
    vps = alpha * p_hat * (1.0 - p_hat)
    chosen: list[int] = []
    if n_v > 0:
        positive = int(np.sum(vps > 0))
        take = min(n_v, positive)
        if take > 0:
            chosen = list(rng.choice(prompts, size=take, replace=False, p=vps / vps.sum()))
    rest = np.setdiff1d(np.arange(prompts), chosen)
    chosen += list(rng.choice(rest, size=m - len(chosen), replace=False))
    return counts_from_selection(prompts, chosen, group)


# ---------------------------------------------------------------------------------------------
# Knapsack RL
# ---------------------------------------------------------------------------------------------


def knapsack_value(n, p):
    """Knapsack RL's per-prompt value: (1 − pⁿ − (1 − p)ⁿ) · p(1 − p)²."""
    n = np.asarray(n, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    return (1.0 - p**n - (1.0 - p) ** n) * p * (1.0 - p) ** 2


def knapsack_dp(values, budget: int, exact: bool = False):
    """Exact multiple-choice knapsack with unit costs: choose c_i ∈ {0, ..., C} for every item i
    (values (I, C+1), value[i, c] of giving item i c units; −inf marks a forbidden choice) to
    maximise Σ_i value[i, c_i] subject to Σ_i c_i ≤ budget (= budget when `exact`).

    Returns (counts (I,), best value); the best value is −inf when nothing is feasible. Ties go
    to the smaller count of the earlier item."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 1:
        raise InputError("knapsack values must be a table (items, choices)")
    if not isinstance(budget, (int, np.integer)) or budget < 0:
        raise InputError(f"the knapsack budget must be an integer ≥ 0, got {budget!r}")
    items, choices = v.shape
    budget = int(budget)
    best = np.full(budget + 1, -np.inf)
    best[0] = 0.0  # best[b]: the best value using exactly b units so far
    take = np.zeros((items, budget + 1), dtype=np.int64)
    for i in range(items):
        new = np.full(budget + 1, -np.inf)
        for c in range(min(choices, budget + 1)):
            if not np.isfinite(v[i, c]) and v[i, c] < 0:
                continue
            cand = np.full(budget + 1, -np.inf)
            cand[c:] = best[: budget + 1 - c] + v[i, c]
            better = cand > new
            new = np.where(better, cand, new)
            take[i] = np.where(better, c, take[i])
        best = new
    end = budget if exact else int(np.argmax(best))
    total = best[end]
    counts = np.zeros(items, dtype=np.int64)
    if not np.isfinite(total):
        return counts, -math.inf
    b = end
    for i in range(items - 1, -1, -1):
        counts[i] = take[i, b]
        b -= counts[i]
    return counts, float(total)


def knapsack_rule(successes, trials, budget: int, *, n_min: int = 2, n_max: int = 128,
                  default_n: int = 8) -> np.ndarray:
    """Knapsack RL's allocation (module docstring; defaults of the paper's run script:
    MIN_N = NEGATIVE_N = POSITIVE_N = 2, MAX_N = 128, N = 8)."""
    _check_budget(budget)
    if not (1 <= n_min <= n_max):
        raise InputError(f"need 1 ≤ n_min ≤ n_max, got n_min={n_min}, n_max={n_max}")
    t = np.asarray(trials)
    p_hat = pass_rate_estimates(successes, trials)
    prompts = p_hat.shape[0]
    counts = np.where(t > 0, n_min, default_n).astype(np.int64)
    if counts.sum() > budget:
        raise InputError(f"a budget of {budget} cannot give the {prompts} prompts their initial "
                         f"{int(counts.sum())} rollouts")
    rest = budget - int(counts.sum())
    effective = np.flatnonzero((t > 0) & (p_hat > 0) & (p_hat < 1))
    if effective.size:
        extra = np.arange(n_max - n_min + 1)
        table = knapsack_value(n_min + extra[None, :], p_hat[effective][:, None])
        add, _ = knapsack_dp(table, rest)
        counts[effective] += add
        rest -= int(add.sum())
        targets = effective
    else:
        targets = np.flatnonzero((t > 0) & (p_hat == 0))
        if targets.size == 0:
            targets = np.arange(prompts)
    if rest > 0:  # leftover: spread evenly (earlier prompts first)
        counts[targets] += rest // targets.size
        counts[targets[: rest % targets.size]] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# VADE
# ---------------------------------------------------------------------------------------------


def vade_rule(rng: np.random.Generator, alpha_post, beta_post, budget: int, group: int) -> np.ndarray:
    """Thompson sampling: p̃_i ~ Beta(α_i, β_i); the ⌊budget/G⌋ prompts with the largest
    information gain p̃(1 − p̃) get G rollouts each."""
    a = np.asarray(alpha_post, dtype=np.float64)
    b = np.asarray(beta_post, dtype=np.float64)
    if a.shape != b.shape or np.any(a <= 0) or np.any(b <= 0):
        raise InputError("Beta posterior parameters must be positive arrays of one shape")
    m = _groups_of(a.shape[0], budget, group)
    draw = rng.beta(a, b)
    gain = draw * (1.0 - draw)
    return counts_from_selection(a.shape[0], np.argsort(-gain, kind="stable")[:m], group)


def vade_update(alpha_post, beta_post, counts, successes, *, decay: float = 0.0,
                prior=(1.0, 1.0)):
    """Posterior after a step: α += k, β += n − k for the prompts rolled out, then every
    posterior moves a fraction `decay` back toward the prior (tracks the drifting policy)."""
    n = np.asarray(counts, dtype=np.float64)
    k = np.asarray(successes, dtype=np.float64)
    a = np.asarray(alpha_post, dtype=np.float64) + k
    b = np.asarray(beta_post, dtype=np.float64) + n - k
    return (1 - decay) * a + decay * prior[0], (1 - decay) * b + decay * prior[1]


# ---------------------------------------------------------------------------------------------
# SEC
# ---------------------------------------------------------------------------------------------


def sec_probabilities(q_values, tau: float):
    """softmax(Q/τ) over categories."""
    q = np.asarray(q_values, dtype=np.float64) / tau
    e = np.exp(q - q.max())
    return e / e.sum()


def sec_rule(rng: np.random.Generator, q_values, categories, budget: int, group: int, *,
             tau: float = 1.0) -> np.ndarray:
    """Each of ⌊budget/G⌋ slots draws c ~ softmax(Q/τ) among the categories with prompts left and
    pops a prompt from c's shuffled queue (without replacement); G rollouts each."""
    cats = np.asarray(categories, dtype=np.int64)
    q = np.asarray(q_values, dtype=np.float64)
    if tau <= 0:
        raise InputError(f"the SEC temperature τ must be > 0, got {tau!r}")
    if cats.min() < 0 or cats.max() >= q.shape[0]:
        raise InputError("every category label must index the Q values")
    prompts = cats.shape[0]
    m = _groups_of(prompts, budget, group)
    queues = {c: list(rng.permutation(np.flatnonzero(cats == c))) for c in range(q.shape[0])}
    chosen = []
    for _ in range(m):
        alive = np.array([len(queues[c]) > 0 for c in range(q.shape[0])])
        probs = np.where(alive, sec_probabilities(q, tau), 0.0)
        c = int(rng.choice(q.shape[0], p=probs / probs.sum()))
        chosen.append(queues[c].pop())
    return counts_from_selection(prompts, chosen, group)


def sec_update(q_values, rewards_by_category, *, lr: float = 0.5):
    """Q_c ← (1 − α)Q_c + α·r_c with r_c the mean |A| of category c's rollouts this step
    (`rewards_by_category[c]`, None or empty when c was not sampled: r_c = 0)."""
    q = np.asarray(q_values, dtype=np.float64).copy()
    r = np.array([float(np.mean(np.abs(x))) if x is not None and len(x) else 0.0
                  for x in rewards_by_category])
    return (1 - lr) * q + lr * r


# ---------------------------------------------------------------------------------------------
# D³S
# ---------------------------------------------------------------------------------------------


def d3s_split(successes: int, group: int, keep: int) -> int:
    """Binary rewards: the number j of successes in the max-variance subset of size m = `keep`
    from a group of G with k successes: j(m − j) is largest at the feasible j closest to m/2
    (ties to the smaller j)."""
    lo, hi = max(0, keep - (group - successes)), min(successes, keep)
    return int(min(max(keep // 2, lo), hi))


def d3s_subset(values, keep: int) -> np.ndarray:
    """Indices of a size-m subset of `values` with the largest variance: the j largest and the
    m − j smallest for the best j (ties: the first j in order)."""
    x = np.asarray(values, dtype=np.float64)
    if not 1 <= keep <= x.shape[0]:
        raise InputError(f"D³S keeps between 1 and {x.shape[0]} rollouts, got {keep}")
    order = np.argsort(x, kind="stable")
    best, best_idx = -1.0, None
    for j in range(keep + 1):
        idx = np.concatenate([order[x.shape[0] - j:], order[: keep - j]]) if j else order[:keep]
        v = float(np.var(x[idx]))
        if v > best + 1e-15:
            best, best_idx = v, idx
    return np.sort(best_idx)
