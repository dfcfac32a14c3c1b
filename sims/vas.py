"""Numerics of docs/design.md §4.3: reward variance against the gradient norm, MMR1's Theorem 1 checked
exactly, the covariance statements in the reduced parameterisation, and variance-aware prompt
sampling (VAS) against uniform sampling.

* `bound_terms`: |∇J|, Var[R], its between-arm part and the lower bounds of
  `theory.vas` (π_min, Cauchy–Schwarz, √K and the sharp 2/√K), for a batch of
  softmax bandits at once.
* `expected_step_gain`: E[J(θ + ηĝ)] − J(θ) for one group estimate ĝ of any registry estimator,
  exactly, by summing over the multisets of the group's outcomes (the enumeration of
  `sims.engines.exact`); J(θ + δ) − J(θ) is evaluated in a cancellation-free form (`objective_change`).
* `theorem1`: MMR1's Theorem 1 (Leng et al. 2025) on one instance, under a named step-size
  condition: step size, promised gain (η c_min/4)·Var[R], exact gain and their ratio.
* `reduced_statistics`: Cov[ĝ], the Fisher matrix F = E[s sᵀ] and Var[R] in the reduced
  parameterisation (last logit fixed at 0), for MMR1's covariance statements.
* VAS: `compare_samplers` trains with `sims.train.train` under uniform and VAS sampling (same
  seeds, so runs are paired) and `paired_gain` states the gain at equal sample budget with
  bootstrap confidence intervals, counting and not counting the scoring rollouts.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from bandits import ensemble as ens
from bandits import softmax
from bandits import vas as bvas
from bandits.errors import InputError
from bandits.rewards import RewardModel
from sims import estimators
from sims.engines import exact, montecarlo

CONDITIONS = ("main", "appendix", "repaired")

# ---------------------------------------------------------------------------------------------
# Bounds
# ---------------------------------------------------------------------------------------------


def bound_terms(logits, means, second_moments=None) -> dict:
    """For bandits with logits (..., K) and arm means (..., K): a dict of (...) arrays

    grad_norm |∇J|, var Var[R] (from `second_moments`, default m² i.e. deterministic rewards),
    var_between Σπ_a(m_a − J)², pi_min, sum_sq Σ_a(m_a − J)², and the lower bounds on |∇J|:
    "pimin" √(π_min·Var_a m), "cauchy_schwarz" Var_a m/√(Σ_a(m_a − J)²), "sqrt_k" Var_a m/√K and
    "sharp_sqrt_k" 2·Var_a m/√K (theory.vas, item 1; the last two need m ∈ [0, 1])."""
    logits = jnp.asarray(logits, jnp.float64)
    m = jnp.asarray(means, jnp.float64)
    v = m**2 if second_moments is None else jnp.asarray(second_moments, jnp.float64)
    pi = softmax.policy(logits)
    J = jnp.sum(pi * m, axis=-1, keepdims=True)
    d = m - J
    grad = pi * d
    between = jnp.sum(pi * d**2, axis=-1)
    total = jnp.sum(pi * v, axis=-1) - J[..., 0] ** 2
    sum_sq = jnp.sum(d**2, axis=-1)
    k = m.shape[-1]
    safe = jnp.where(sum_sq > 0, sum_sq, 1.0)
    return {
        "grad_norm": jnp.linalg.norm(grad, axis=-1),
        "var": total,
        "var_between": between,
        "pi_min": jnp.min(pi, axis=-1),
        "sum_sq": sum_sq,
        "pimin": jnp.sqrt(jnp.min(pi, axis=-1) * between),
        "cauchy_schwarz": jnp.where(sum_sq > 0, between / jnp.sqrt(safe), 0.0),
        "sqrt_k": between / math.sqrt(k),
        "sharp_sqrt_k": 2.0 * between / math.sqrt(k),
    }


BOUNDS = ("pimin", "cauchy_schwarz", "sqrt_k", "sharp_sqrt_k")


def bound_slack(terms: dict, bound: str, factor: float = 1.0):
    """Relative slack of |∇J| ≥ factor·bound: (|∇J| − factor·bound)/max(|∇J|, factor·bound, tiny).
    Negative means the (scaled) bound is violated; `factor` > 1 plants a defect."""
    if bound not in BOUNDS:
        raise InputError(f"unknown bound {bound!r}; expected one of {', '.join(BOUNDS)}")
    g = terms["grad_norm"]
    b = factor * terms[bound]
    scale = jnp.maximum(jnp.maximum(g, b), 1e-300)
    return (g - b) / scale


def random_bandits(seed: int, count: int, arms: int, reward_kind: str = "mixed",
                   logit_scale: float = 3.0):
    """`count` random K-armed bandits from one seed: logits (count, K) ~ N(0, s²)·U(0, 1) with
    s = `logit_scale`, rewards (count, K) in [0, 1]: "binary" {0, 1}, "uniform" U[0, 1], or
    "mixed" (alternating). Deterministic rewards; the means are the rewards."""
    if reward_kind not in ("binary", "uniform", "mixed"):
        raise InputError(f"unknown reward kind {reward_kind!r}; expected binary, uniform or mixed")
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(count, arms)) * rng.uniform(0, logit_scale, size=(count, 1))
    binary = rng.integers(0, 2, size=(count, arms)).astype(np.float64)
    uniform = rng.uniform(size=(count, arms))
    if reward_kind == "binary":
        r = binary
    elif reward_kind == "uniform":
        r = uniform
    else:
        r = np.where((np.arange(count) % 2 == 0)[:, None], binary, uniform)
    return logits, r


# ---------------------------------------------------------------------------------------------
# Exact one-step gain
# ---------------------------------------------------------------------------------------------


def objective_change(logits, means, delta):
    """J(θ + δ) − J(θ) without cancellation: with π' ∝ π e^δ,
    π'_a/π_a − 1 = expm1(δ_a − ℓ), ℓ = log1p(Σ_b π_b expm1(δ_b)), so
    J(θ + δ) − J(θ) = Σ_a π_a (m_a − J) expm1(δ_a − ℓ)."""
    pi = softmax.policy(logits)
    d = means - jnp.sum(pi * means)
    ell = jnp.log1p(jnp.sum(pi * jnp.expm1(delta)))
    return jnp.sum(jnp.where(pi > 0, pi * d * jnp.expm1(delta - ell), 0.0))


def stat_step_gain(terms, scores, rewards, logits, extra):
    """J(θ + ηĝ) − J(θ) of one group (η = extra["eta"], ĝ = mean_i terms_i; `objective_change`)."""
    return objective_change(logits, extra["means"], extra["eta"] * jnp.mean(terms, axis=0))


def expected_step_gain(estimator: estimators.Estimator, logits, rewards: RewardModel, group: int,
                       eta: float, **params) -> float:
    """E[J(θ + ηĝ)] − J(θ) = Σ_c P(c)·[J(θ + ηĝ(c)) − J(θ)], exactly, for ĝ one group of G members of
    the entry `estimator`: the statistic `stat_step_gain` on `sims.engines.exact.expectation`."""
    return float(exact.expectation(stat_step_gain, estimator, logits, rewards, group, params,
                                   {"eta": np.float64(eta)}))


# ---------------------------------------------------------------------------------------------
# MMR1's Theorem 1
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Theorem1:
    """One instance of MMR1's Theorem 1 (see `theorem1`)."""

    condition: str
    c_min: float
    smoothness: float
    group: int
    estimator: str
    var: float
    grad_sq: float
    gamma: float  # E|s|² = 1 − |π|²
    gamma_r: float  # E[(R − J)²|s|²]/Var[R]
    eta: float
    promised: float  # (η c_min/4)·Var[R]
    gain: float  # exact E[J(θ + ηĝ)] − J(θ)

    @property
    def premise(self) -> bool:
        """|∇J|² ≥ c_min·Var[R] (up to rounding)."""
        return self.grad_sq >= self.c_min * self.var * (1 - 1e-12)

    @property
    def ratio(self) -> float:
        """gain / promised (≥ 1 when the guarantee holds)."""
        return self.gain / self.promised if self.promised > 0 else math.inf

    @property
    def holds(self) -> bool:
        return self.gain >= self.promised - 1e-13 * max(abs(self.promised), 1e-300) - 1e-300


def step_size(condition: str, c_min: float, smoothness: float, gamma: float,
              gamma_r: float | None = None) -> float:
    """The largest step of a condition: "main" c_min/(4LΓ); "appendix" min{1/L, c_min/(2LΓ)}
    (our reconstruction); "repaired" c_min/(4LΓ_R) (theory.vas, item 3).
    A degenerate policy (Γ = 0 or Γ_R = 0, hence c_min ≤ Γ forces c_min = 0) gets η = 0."""
    if condition in CONDITIONS and (gamma <= 0 or (condition == "repaired" and not gamma_r)):
        if condition == "repaired" and gamma_r is None:
            raise InputError("the repaired condition needs Γ_R")
        return 0.0
    if condition == "main":
        return c_min / (4 * smoothness * gamma)
    if condition == "appendix":
        return min(1 / smoothness, c_min / (2 * smoothness * gamma))
    if condition == "repaired":
        if gamma_r is None:
            raise InputError("the repaired condition needs Γ_R")
        return c_min / (4 * smoothness * gamma_r)
    raise InputError(f"unknown step-size condition {condition!r}; expected {', '.join(CONDITIONS)}")


def theorem1(logits, rewards: RewardModel, *, condition: str = "main", smoothness: float,
             c_min: str | float = "best", group: int = 1, step_fraction: float = 1.0,
             estimator: estimators.Estimator | None = None, gain_factor: float = 0.25) -> Theorem1:
    """MMR1's Theorem 1 on one bandit: η = step_fraction × the largest step of `condition`;
    promised gain gain_factor·η c_min·Var[R] (the theorem's gain_factor is 1/4; other values
    and step_fraction > 1 are planted defects); exact gain of one step of the entry `estimator`
    (default REINFORCE, with the mean baseline b = J for it). `c_min` is "best" (|∇J|²/Var[R], the largest admissible),
    "pimin" (π_min) or a number."""
    logits = np.asarray(logits, dtype=np.float64)
    m, v = rewards.means, rewards.second_moments
    pi = np.asarray(softmax.policy(logits))
    J = float(pi @ m)
    var_r = float(pi @ v - J**2)
    grad = pi * (m - J)
    grad_sq = float(grad @ grad)
    sq = np.asarray(softmax.score_sq_norms(logits))
    gamma = float(pi @ sq)
    gamma_r = float(pi @ (sq * (v - 2 * J * m + J**2))) / var_r if var_r > 0 else math.inf
    if c_min == "best":
        c = grad_sq / var_r if var_r > 0 else 0.0
    elif c_min == "pimin":
        c = float(pi.min())
    else:
        c = float(c_min)
    eta = step_fraction * step_size(condition, c, smoothness, gamma, gamma_r)
    est = estimators.get("reinforce") if estimator is None else estimators.as_entry(estimator)
    params = {"baseline": J} if est.name == "reinforce" else {}
    gain = expected_step_gain(est, logits, rewards, group, eta, **params)
    return Theorem1(condition, c, float(smoothness), group, est.name, var_r, grad_sq, gamma,
                    gamma_r, eta, gain_factor * eta * c * var_r, gain)


# ---------------------------------------------------------------------------------------------
# Covariance statements (reduced parameterisation)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reduced:
    """Cov[ĝ] (one group, mean baseline), F = E[s sᵀ] and Var[R] with logits (θ', 0)."""

    cov: np.ndarray
    fisher: np.ndarray
    var: float
    group: int

    @property
    def lambda_min_cov(self) -> float:
        return float(np.linalg.eigvalsh(self.cov)[0])

    @property
    def floor(self) -> float:
        """MMR1's appendix lower bound λ_min(F)·Var[R] (per group: divided by G)."""
        return float(np.linalg.eigvalsh(self.fisher)[0]) * self.var / self.group

    @property
    def sandwich_gap(self) -> float:
        """λ_min(Cov − floor·I); negative ⇔ λ_min(F)Var[R]·I ⪯ Cov fails."""
        return float(np.linalg.eigvalsh(self.cov - self.floor * np.eye(len(self.cov)))[0])

    @property
    def factorisation_defect(self) -> float:
        """max |Cov − Var[R]·F/G| (0 ⇔ the main text's factorisation holds)."""
        return float(np.max(np.abs(self.cov - self.var * self.fisher / self.group)))


def reduced_statistics(reduced_logits, rewards: RewardModel, group: int = 1) -> Reduced:
    """Logits θ = (θ', 0): Cov[ĝ] from the exact engine (REINFORCE, baseline b = J) restricted to
    the first K − 1 coordinates (the score of the reduced parameterisation), F = diag(π') − π'π'ᵀ."""
    theta = np.concatenate([np.asarray(reduced_logits, dtype=np.float64), [0.0]])
    k = theta.shape[0]
    pi = np.asarray(softmax.policy(theta))
    J = float(pi @ rewards.means)
    mom = exact.moments(estimators.get("reinforce"), theta, rewards, group, baseline=J)
    p = pi[: k - 1]
    fisher = np.diag(p) - np.outer(p, p)
    var_r = float(pi @ rewards.second_moments - J**2)
    return Reduced(mom.cov[: k - 1, : k - 1], fisher, var_r, group)


# ---------------------------------------------------------------------------------------------
# VAS against uniform sampling
# ---------------------------------------------------------------------------------------------


def prompt_grad_norms(logits, success):
    """|∇_{θ_p} J_p| for every prompt (P,)."""
    return jnp.linalg.norm(jax.vmap(softmax.gradient)(logits, success), axis=-1)


@dataclasses.dataclass(frozen=True)
class SelectedGradNorm:
    """Engine problem: `draw(key, n, (logits, success, norms))` → n values of Σ_p q_p |∇J_p|, each from
    one independent VAS scoring (q the per-slot selection probability), (n, 1)."""

    num_rollouts: int
    alpha: float
    beta: float
    lam: float
    batch: int

    def __call__(self, key, n, args):
        logits, success, norms = args

        def one(k):
            scores, _, _ = bvas.score_prompts(k, logits, success, self.num_rollouts, self.alpha, self.beta)
            return jnp.sum(bvas.mixture_probabilities(scores, self.lam, self.batch) * norms)

        return jax.vmap(one)(jax.random.split(key, n))[:, None]


def expected_selected_grad_norm(seed: int, ensemble: ens.Ensemble, logits=None, *, batch: int,
                                draws: int = 256, **vas) -> dict:
    """E over the scoring rollouts of Σ_p q_p |∇J_p|, q the per-slot selection probability of
    VAS (`bandits.vas.mixture_probabilities`), against the uniform Σ_p |∇J_p|/P; `draws`
    independent scorings from one seed, drawn by the Monte Carlo engine. Keyword arguments go to
    the VAS scores: num_rollouts, alpha, beta, lam."""
    success = jnp.asarray(ensemble.success)
    logits = jnp.zeros_like(success) if logits is None else jnp.asarray(logits, jnp.float64)
    norms = prompt_grad_norms(logits, success)
    draw = SelectedGradNorm(vas.get("num_rollouts", 8), float(vas.get("alpha", 1.0)),
                            float(vas.get("beta", 1.0)), float(vas.get("lam", 0.5)), batch)
    s = montecarlo.stream(draw, (logits, success, norms), draws, seed)
    return {"vas": float(s.mean[0]), "vas_se": float(s.mean_se[0]), "uniform": float(jnp.mean(norms))}


def bootstrap_mean_ci(x, seed: int, level: float = 0.95, resamples: int = 2000) -> list:
    """[mean, lo, hi]: percentile bootstrap interval of the mean of x over its first axis."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(x.mean()), float(lo), float(hi)]


def _interp_curves(curves, samples, grid):
    return np.stack([np.interp(grid, samples, c) for c in curves])


def paired_gain(vas_result, uniform_result, *, count_scoring: bool = True, seed: int = 0,
                level: float = 0.95, grid_points: int = 201) -> dict:
    """Gain of VAS over uniform sampling at equal sample budget, paired by seed.

    The budget axis is the cumulative number of rollouts (with or without VAS's scoring
    rollouts). Both curves J(Θ) are interpolated on a common grid up to the smaller final
    budget; reported with bootstrap CIs over seeds: "final" (J_VAS − J_uniform at that budget)
    and "auc" (the mean over the grid of J_VAS − J_uniform, i.e. the normalised area between
    the curves)."""
    if vas_result.expected_reward.shape != uniform_result.expected_reward.shape:
        raise InputError("paired_gain needs runs with the same seeds and steps")
    # without the scoring rollouts VAS spends B·G per step, as uniform sampling does
    s_v = vas_result.samples if count_scoring else uniform_result.samples
    budget = float(min(s_v[-1], uniform_result.samples[-1]))
    grid = np.linspace(0.0, budget, grid_points)
    jv = _interp_curves(vas_result.expected_reward, s_v, grid)
    ju = _interp_curves(uniform_result.expected_reward, uniform_result.samples, grid)
    diff = jv - ju
    return {
        "budget": budget,
        "count_scoring_rollouts": count_scoring,
        "final": bootstrap_mean_ci(diff[:, -1], seed, level),
        "auc": bootstrap_mean_ci(diff.mean(axis=1), seed + 1, level),
        "level": level,
        "seeds": int(diff.shape[0]),
    }


def compare_samplers(ensemble: ens.Ensemble, configs: dict, *, estimator: estimators.Estimator | None = None,
                     steps: int, batch: int, group: int, seeds: int = 32, seed: int = 0,
                     lr: float = 0.5) -> dict:
    """Train with uniform sampling and with each VAS configuration (name → kwargs of
    `bandits.vas.vas_sampler`) on the same seeds; returns name → `sims.train.TrainResult`
    ("uniform" included). `estimator` defaults to GRPO."""
    from sims.train import train

    estimator = estimators.get("grpo") if estimator is None else estimator
    out = {"uniform": train(ensemble, estimator, steps=steps, batch=batch, group=group,
                            seeds=seeds, seed=seed, lr=lr)}
    for name, kw in configs.items():
        sampler = cached_vas_sampler(batch, **kw)
        out[name] = train(ensemble, estimator, steps=steps, batch=batch, group=group, seeds=seeds,
                          seed=seed, lr=lr, sampler=sampler)
    return out


@functools.lru_cache(maxsize=64)
def _cached(batch, items):
    return bvas.vas_sampler(batch, **dict(items))


def cached_vas_sampler(batch: int, **kw):
    """`bandits.vas.vas_sampler` memoised on its arguments, so the trainer's compiled step is
    reused across calls with the same configuration."""
    return _cached(batch, tuple(sorted(kw.items())))


# ---------------------------------------------------------------------------------------------
# Searching for counterexamples
# ---------------------------------------------------------------------------------------------

SEARCH_KINDS = ("deterministic", "bernoulli", "reduced", "two_arm")


def _strategy(kind: str):
    """Instances (logits, rewards); half of the reward vectors are binary {0, 1} (where the
    bounds are tightest), the rest mix 0, 1/2, 1 and arbitrary values in [0, 1]."""
    from hypothesis import strategies as st

    logit = st.floats(-5.0, 5.0, allow_nan=False, width=64)
    mixed = st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0.0, 1.0, allow_nan=False, width=64)

    def rewards(k):
        return (st.lists(st.sampled_from([0.0, 1.0]), min_size=k, max_size=k)
                | st.lists(mixed, min_size=k, max_size=k))

    @st.composite
    def draw(d):
        k = 2 if kind == "two_arm" else d(st.sampled_from([2, 3, 4, 5] if kind == "reduced"
                                                          else [2, 3, 4, 5, 6]))
        n_logits = k - 1 if kind == "reduced" else k
        return d(st.lists(logit, min_size=n_logits, max_size=n_logits)), d(rewards(k))

    return draw()


def _random_instance(rng, kind: str):
    k = 2 if kind == "two_arm" else int(rng.integers(2, 6 if kind == "reduced" else 7))
    n_logits = k - 1 if kind == "reduced" else k
    logits = (rng.normal(size=n_logits) * rng.uniform(0, 5)).clip(-5, 5).tolist()
    r = np.where(rng.uniform(size=k) < 0.5, rng.choice([0.0, 1.0, 0.5], size=k), rng.uniform(size=k))
    return logits, r.tolist()


def search(violates, kind: str, *, max_examples: int = 200, seed: int = 0) -> dict:
    """Try to falsify a statement: draw instances (logits, rewards) of `kind` ("deterministic":
    K ∈ 2..6 logits and rewards in [0, 1]; "bernoulli": the same numbers read as success
    probabilities; "reduced": K − 1 logits, the last fixed at 0; "two_arm") until
    `violates(logits, rewards)` is true.

    Uses hypothesis (derandomised, so the search is reproducible, and the counterexample is
    shrunk) when it is installed, else a seeded random search. Returns {"found", "example",
    "engine", "examples"}."""
    if kind not in SEARCH_KINDS:
        raise InputError(f"unknown search kind {kind!r}; expected one of {', '.join(SEARCH_KINDS)}")
    try:
        from hypothesis import HealthCheck, find, settings
        from hypothesis.errors import NoSuchExample
    except ImportError:  # the dev extra is not installed
        rng = np.random.default_rng(seed)
        for i in range(max_examples):
            inst = _random_instance(rng, kind)
            if violates(*inst):
                return {"found": True, "example": inst, "engine": "random", "examples": i + 1}
        return {"found": False, "example": None, "engine": "random", "examples": max_examples}
    calls = [0]

    def predicate(inst):
        calls[0] += 1
        return bool(violates(list(inst[0]), list(inst[1])))

    conf = settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))
    try:
        found = find(_strategy(kind), predicate, settings=conf)
    except NoSuchExample:
        return {"found": False, "example": None, "engine": "hypothesis", "examples": calls[0]}
    return {"found": True, "example": [list(found[0]), list(found[1])], "engine": "hypothesis",
            "examples": calls[0]}


# ---------------------------------------------------------------------------------------------
# Study data behind the figures and the notebook
# ---------------------------------------------------------------------------------------------


def bound_scatter(seed: int, count: int, arms=(2, 3, 5, 8)) -> dict:
    """|∇J|, Var[R] and the ratios |∇J|/bound of every bound on `count` random bandits per K
    (deterministic rewards in [0, 1], `random_bandits` with seed + K)."""
    out = {}
    for k in arms:
        logits, r = random_bandits(seed + k, count, k)
        t = {key: np.asarray(v) for key, v in bound_terms(logits, r).items()}
        ok = t["var_between"] > 1e-12
        out[int(k)] = {
            "var": t["var"][ok], "grad_norm": t["grad_norm"][ok], "pi_min": t["pi_min"][ok],
            **{f"ratio_{b}": t["grad_norm"][ok] / t[b][ok] for b in BOUNDS},
        }
    return out


VAS_SETUP = {"prompts": 32, "arms": 4, "beta_a": 0.5, "beta_b": 3.0, "ensemble_seed": 0,
             "estimator": "grpo", "batch": 8, "group": 8, "lr": 2.0, "steps": 300, "seeds": 32}
VAS_DEFAULT = "λ=0.5, α=1, β=1"
VAS_CONFIGS = {
    VAS_DEFAULT: {"lam": 0.5, "alpha": 1.0, "beta": 1.0},
    "λ=0.25, α=1, β=1": {"lam": 0.25, "alpha": 1.0, "beta": 1.0},
    "λ=1, α=1, β=1": {"lam": 1.0, "alpha": 1.0, "beta": 1.0},
    "λ=1, α=1, β=0 (OVS only)": {"lam": 1.0, "alpha": 1.0, "beta": 0.0},
    "λ=1, α=0, β=1 (TDS only)": {"lam": 1.0, "alpha": 0.0, "beta": 1.0},
}
VAS_SCORING = {"num_rollouts": 4, "update_every": 20}
VAS_QUICK = (VAS_DEFAULT, "λ=1, α=1, β=0 (OVS only)")


def _curve_summary(curves, points: int):
    """Mean and normal 95% band over seeds, on `points` evenly spaced steps."""
    idx = np.unique(np.linspace(0, curves.shape[1] - 1, points).round().astype(int))
    mean = curves.mean(axis=0)
    se = curves.std(axis=0, ddof=1) / math.sqrt(curves.shape[0])
    return idx, mean[idx], (mean - 1.96 * se)[idx], (mean + 1.96 * se)[idx]


def vas_study(quick: bool, seed: int = 0, configs: dict | None = None, setup: dict | None = None) -> dict:
    """VAS against uniform sampling on one ensemble (`VAS_SETUP`; quick: 100 steps and the
    configurations of `VAS_QUICK`): learning curves, selected-batch gradient norms, and the gains
    of `paired_gain` (bootstrap 95% CIs over ≥ 32 paired seeds), counting and not counting the
    scoring rollouts."""
    s = dict(VAS_SETUP, **(setup or {}))
    if quick:
        s["steps"] = min(s["steps"], 100)
    if configs is None:
        configs = {k: VAS_CONFIGS[k] for k in (VAS_QUICK if quick else VAS_CONFIGS)}
    e = ens.make_ensemble(s["ensemble_seed"], s["prompts"], s["arms"], s["beta_a"], s["beta_b"])
    runs = compare_samplers(e, {k: dict(v, **VAS_SCORING) for k, v in configs.items()},
                            estimator=estimators.get(s["estimator"]), steps=s["steps"], batch=s["batch"],
                            group=s["group"], seeds=s["seeds"], seed=seed, lr=s["lr"])
    uni = runs["uniform"]
    out = {"setup": s, "scoring": VAS_SCORING, "optimum": e.optimum, "seed": seed, "runs": {}}
    for name, res in runs.items():
        idx, mean, lo, hi = _curve_summary(res.expected_reward, 61)
        gnorm = res.selected_grad_norm.mean(axis=1)
        entry = {"step": idx, "samples": res.samples[idx], "mean": mean, "lo": lo, "hi": hi,
                 "selected_grad_norm": bootstrap_mean_ci(gnorm, seed + 7),
                 "extra_rollouts_total": float(res.samples[-1] - uni.samples[-1])}
        if name != "uniform":
            kw = dict(configs[name], num_rollouts=VAS_SCORING["num_rollouts"])
            entry["config"] = kw
            entry["gain_counting_scoring"] = paired_gain(res, uni, count_scoring=True, seed=seed)
            entry["gain_not_counting_scoring"] = paired_gain(res, uni, count_scoring=False, seed=seed)
            entry["selected_grad_norm_gain"] = bootstrap_mean_ci(
                gnorm - uni.selected_grad_norm.mean(axis=1), seed + 8)
            entry["expected_selected_grad_norm_at_init"] = expected_selected_grad_norm(
                seed, e, batch=s["batch"], draws=64 if quick else 256, **kw)
        out["runs"][name] = entry
    return out
