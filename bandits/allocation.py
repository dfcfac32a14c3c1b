"""Prompt selection and rollout allocation rules (docs/design.md §4.10).

An *allocation* is a vector of rollout counts n ∈ {0, 1, ...}^P over the P prompts of an
ensemble: prompt p gets one group of n_p rollouts (n_p = 0: not trained on this step). A rule is a
pure function of what a trainer can observe — per-prompt success and trial counts from past
rollouts (`successes`, `trials`), a category label per prompt, a rule's own state — and returns
the counts, spending a total rollout budget. Random rules take a `numpy.random.Generator`, so
every draw is reproducible from one integer seed.

Rules (papers' versions first; the lab's choices where a paper leaves something open are named):

* `uniform_rule`: m = ⌊budget/G⌋ distinct prompts uniformly at random, G rollouts each.
* `vas_groups`: MMR1's variance-aware sampling (Leng et al. 2025, arXiv:2509.21268; code
  LengSicong/MMR1, `MixedCurriculumSampler`): of the m = ⌊budget/G⌋ groups of a batch,
  n_w = ⌊λm⌋ (λ = `curriculum_mixture_ratio` = 0.5) are drawn *with replacement* ∝ VPS and the
  other m − n_w are distinct prompts drawn uniformly (a shuffled pool); a prompt drawn c times
  gets c independent groups of G. VPS = α·OVS + β·TDS with OVS = P̂(1 − P̂) and TDS the
  trajectory-diversity score (reconstructed: the paper scores the diversity of text trajectories,
  whose exact definition the lab could not recover; on a bandit the lab uses
  `bandits.vas.diversity_score`, the normalised entropy of the sampled arms); α = β = 1 as the paper writes VPS (the released example config scores
  OVS alone, "learnability", weight 1).
* `knapsack_released_rule`: Knapsack RL (Li et al. 2025, arXiv:2509.25849) as released
  (liziniu/KnapsackRL, `exploration_utils.sampling_budget_by_knapsack` and `solve_by_dp`, run
  script defaults MIN_N = NEGATIVE_N = POSITIVE_N = 2, MAX_N = 128, N = 8, α = 0.9): prompts with
  a valid buffer (≥ 8 past rewards) get 2, the others N; the rest goes by an exact dynamic
  programme over the 0 < p̂ < 1 prompts maximising Σ_i V_i(k_i) over extra rollouts
  k_i ∈ {0, …, MAX_N − MIN_N}, with

      V_i(0) = 0,   V_i(k) = Value(MIN_N + k, p̂_i) for k ≥ 1,
      Value(n, p) = (1 − pⁿ − (1 − p)ⁿ) · p(1 − p)²,

  so a prompt left at its 2 rollouts scores nothing. Fallback: when the "cost" Σ_i
  ⌊min(MAX_N, log(1 − α)/log max(p̂_i, 1 − p̂_i))⌋ of the effective prompts is below the rest, the
  surplus is split evenly over the prompts with p̂ = 0 (the prompts without a valid buffer count
  as p̂ = 0 there, as in the release) and the programme gets the cost; when no prompt is
  effective the rest goes to the p̂ = 0 prompts. p̂ comes from a buffer of the prompt's latest
  16 rewards (`knapsack_reward_state`). Reconstructed where the release cannot run: with every
  prompt effective and a surplus it divides by zero (here the programme keeps the surplus).
* `knapsack_lab_rule`: the lab's earlier reading, kept beside it: the same value but a prompt
  left at n_min scores Value(n_min, p̂) (the table starts at n_min), p̂ = k/h of the latest
  history, no cost fallback (surplus only to p̂ = 0 prompts when none is effective).
* `vade_rule`: VADE (arXiv:2511.18902): Thompson sampling p̃_i ~ Beta(α_i, β_i), the m prompts
  with the largest information gain IG(p̃) = p̃(1 − p̃) (the IG form is the lab's choice),
  G rollouts each; `vade_update` adds the observed successes and failures and decays the
  posterior toward the prior (one rate; the paper's two-scale decay is not specified).
* `sec_rule`: SEC (arXiv:2505.14970): each of m slots draws a category c ~ softmax(Q/τ) and pops
  a prompt from c's shuffled queue; `sec_update`: the paper's TD(0) value update
  Q_c ← α·r_c + (1 − α)Q_c, r_c the mean |A| of the category's rollouts this step, 0 for
  categories not sampled; `sec_categories`: difficulty categories from the rule's own pass-rate
  estimates (terciles of p̂), not from the true pass rates.
* `d3s_subset`: D³S (arXiv:2509.22115), sample level: of a group's rewards keep the subset of
  size m with the largest variance (the j largest and m − j smallest for the best j).
* `knapsack_dp`: the generic exact multiple-choice knapsack with unit costs used by both Knapsack
  RL rules and by the oracle (`sims.allocation.oracle_allocation`, which knows the true pass rates).
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


def vas_scores(successes, trials, diversity=None, *, alpha: float = 1.0, beta: float = 1.0):
    """VPS = α·P̂(1 − P̂) + β·TDS per prompt (P̂ from the history, 1/2 with no history; TDS 0
    when `diversity` is None)."""
    p_hat = pass_rate_estimates(successes, trials, default=0.5)
    tds = np.zeros_like(p_hat) if diversity is None else np.asarray(diversity, dtype=np.float64)
    if tds.shape != p_hat.shape:
        raise InputError(f"one diversity score per prompt is needed, got {tds.shape} for {p_hat.shape}")
    return alpha * p_hat * (1.0 - p_hat) + beta * tds


def vas_groups(rng: np.random.Generator, vps, budget: int, group: int, *, lam: float = 0.5) -> np.ndarray:
    """MMR1's batch (module docstring): m = ⌊budget/G⌋ groups, n_w = ⌊λm⌋ drawn with replacement
    ∝ VPS, m − n_w distinct prompts uniformly; returns the number of groups of G per prompt (P,),
    summing to m (a prompt may get several). All-zero VPS: the weighted draws are uniform
    (reconstructed; torch's sampler refuses all-zero weights)."""
    v = np.asarray(vps, dtype=np.float64)
    if v.ndim != 1 or np.any(~np.isfinite(v)) or np.any(v < 0):
        raise InputError("VPS must be finite and non-negative, one per prompt")
    if not (isinstance(lam, (int, float, np.floating)) and 0.0 <= lam <= 1.0):
        raise InputError(f"the VPS fraction λ must lie in [0, 1], got {lam!r}")
    prompts = v.shape[0]
    m = _groups_of(prompts, budget, group)
    n_w = int(m * lam)
    probs = v / v.sum() if v.sum() > 0 else np.full(prompts, 1.0 / prompts)
    groups = np.zeros(prompts, dtype=np.int64)
    if n_w:
        np.add.at(groups, rng.choice(prompts, size=n_w, replace=True, p=probs), 1)
    if m - n_w:
        np.add.at(groups, rng.choice(prompts, size=m - n_w, replace=False), 1)
    return groups


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


KNAPSACK_RELEASED = {"n": 8, "min_n": 2, "max_n": 128, "negative_n": 2, "positive_n": 2,
                     "alpha": 0.9, "buffer": 16, "min_buffer": 8, "adv_clip": 5.0}


def knapsack_reward_state(rewards_by_prompt, *, buffer: int = 16, min_buffer: int = 8):
    """The release's reward buffer (`rl_dataset.update_sample_state` with epoch estimation and
    robust estimation on): per prompt a list of past reward groups, oldest first. Valid once
    the prompt has ≥ `min_buffer` rewards; p̂ is the mean of its latest group when that has
    ≥ `buffer` rewards, else of its latest `buffer` rewards across groups. Returns
    (valid (P,) bool, p̂ (P,), 0 where not valid)."""
    valid, p_hat = [], []
    for groups in rewards_by_prompt:
        flat = [float(r) for g in groups for r in g]
        if any(r not in (0.0, 1.0) for r in flat):
            raise InputError("the Knapsack reward buffer holds binary rewards")
        valid.append(len(flat) >= min_buffer)
        if not flat:
            p_hat.append(0.0)
        elif len(groups[-1]) >= buffer:
            p_hat.append(float(np.mean(groups[-1])))
        else:
            p_hat.append(float(np.mean(flat[-buffer:])))
    p = np.array(p_hat)
    return np.array(valid, dtype=bool), np.where(valid, p, 0.0)


def knapsack_released_table(p_hat, min_n: int, max_n: int) -> np.ndarray:
    """The released programme's value table over extra rollouts k = 0..max_n − min_n:
    V(0) = 0, V(k) = Value(min_n + k, p̂) (`solve_by_dp`: "don't allocate" adds nothing)."""
    p = np.asarray(p_hat, dtype=np.float64)[:, None]
    k = np.arange(max_n - min_n + 1)[None, :]
    return np.where(k > 0, knapsack_value(min_n + k, p), 0.0)


def _spread(counts, targets, amount):
    """Add `amount` evenly over `targets` (the first ones get the remainder), in place."""
    targets = np.asarray(targets, dtype=np.int64)
    counts[targets] += amount // targets.size
    counts[targets[: amount % targets.size]] += 1


def knapsack_released_rule(valid, p_hat, budget: int, *, n: int = 8, min_n: int = 2, max_n: int = 128,
                           negative_n: int = 2, positive_n: int = 2, alpha: float = 0.9,
                           cost_estimation: str = "probability", allow_fallback: bool = True) -> np.ndarray:
    """Knapsack RL's `sampling_budget_by_knapsack` (module docstring): counts (P,) summing to
    `budget`."""
    _check_budget(budget)
    if not (1 <= min_n <= max_n):
        raise InputError(f"need 1 ≤ min_n ≤ max_n, got min_n={min_n}, max_n={max_n}")
    ok = np.asarray(valid, dtype=bool)
    p = np.asarray(p_hat, dtype=np.float64)
    if p.shape != ok.shape or p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InputError("p̂ must lie in [0, 1], one per prompt with its validity flag")
    rate = np.where(ok, p, 0.0)  # the release keeps 0 for prompts without a valid buffer
    eff = np.flatnonzero(ok & (rate > 0) & (rate < 1))
    counts = np.where(~ok, n, np.where(rate == 0, negative_n, np.where(rate == 1, positive_n, min_n)))
    counts = counts.astype(np.int64)
    rest = int(budget) - int(counts.sum())
    if rest < 0:
        raise InputError(f"a budget of {budget} cannot give the {p.shape[0]} prompts their initial "
                         f"{int(counts.sum())} rollouts")
    zero = np.flatnonzero(rate == 0)
    if rest > 0 and eff.size == 0:
        if zero.size:
            _spread(counts, zero, rest)
            return counts
        if p.shape[0] * n != budget:
            raise InputError(f"with every prompt at p̂ = 1 the release gives each N = {n} rollouts, "
                             f"which does not meet a budget of {budget}")
        return np.full(p.shape[0], n, dtype=np.int64)
    if eff.size and rest > 0:
        pe = rate[eff]
        if cost_estimation == "probability":
            cost = np.log(1 - alpha) / np.log(np.maximum(pe, 1 - pe))
        elif cost_estimation == "expectation":
            cost = 1 / (pe * (1 - pe)) - 1
        else:
            raise InputError(f"unknown cost estimation {cost_estimation!r}")
        estimated = int(np.sum(np.floor(np.minimum(max_n, cost))))
        others = zero if zero.size else np.setdiff1d(np.arange(p.shape[0]), eff)
        if allow_fallback and estimated < rest and others.size:
            _spread(counts, others, rest - estimated)
            rest = estimated
        table = knapsack_released_table(pe, min_n, max_n)
        usable = min(rest, eff.size * (max_n - min_n))
        add, _ = knapsack_dp(table, usable, exact=True)
        counts[eff] += add
        if rest - usable > 0:
            _spread(counts, eff, rest - usable)
    return counts


def knapsack_lab_rule(successes, trials, budget: int, *, n_min: int = 2, n_max: int = 128,
                      default_n: int = 8) -> np.ndarray:
    """The lab's earlier Knapsack reading (module docstring): the table starts at n_min, so a
    prompt left at n_min scores Value(n_min, p̂); no cost fallback."""
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


def sec_categories(successes, trials, num: int = 3) -> np.ndarray:
    """Difficulty categories the rule can know: p̂ = k/h of each prompt's history binned into
    `num` equal-width bins of [0, 1] (1/2 without history)."""
    p_hat = pass_rate_estimates(successes, trials, default=0.5)
    return np.minimum((p_hat * num).astype(np.int64), num - 1)


def grpo_mean_abs_advantage(successes, group, eps: float = 1e-6):
    """Mean |A| of GRPO (ddof = 1 std + eps) over one binary group of G with k successes:
    2k(G − k)/G² / (std + eps), std² = k(G − k)/(G(G − 1)); 0 when k ∈ {0, G}."""
    k = np.asarray(successes, dtype=np.float64)
    g = float(group)
    std = np.sqrt(k * (g - k) / (g * (g - 1)))
    return np.where((k > 0) & (k < g), 2 * k * (g - k) / g**2 / (std + eps), 0.0)


def sec_update(q_values, rewards_by_category, *, lr: float = 0.5):
    """SEC's TD(0) update Q_c ← α·r_c + (1 − α)Q_c with r_c the mean |A| of category c's rollouts this step
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
