"""Training on multi-prompt bandit ensembles with any registry estimator.

The batch gradient uses the estimator registry unchanged (docs/design.md §3):

    Ĝ = (1/P) Σ_b w_b · e_{p_b} ĝ_bᵀ,   ĝ_b = (1/G) Σ_i A_i s(a_{b,i}),   w_b = P/B by default,

which is unbiased for ∇J(Θ) = (1/P) Σ_p ∇J_p when prompts are drawn uniformly and ĝ is unbiased.

`train` runs gradient ascent Θ ← Θ + η_t ⊙ u_t, where u_t is the optax update (sgd or adam with
unit learning rate) for the ascent direction Ĝ, for many seeds at once: the seeds are vmapped
and the steps run under `lax.scan`, all inside one `jit`. Step rules:

* "fixed": η_t = lr;
* "snr" (OBLR-PO, docs/design.md §4.2): η_t = clip(η_max·SNR̂/(1+SNR̂), η_min, η_max), with SNR̂ pooled
  over the batch's groups from their per-sample terms g_i = A_i s(a_i) (`sims.oblrpo.batch_snr`:
  U-statistic for |∇J|², sample covariance trace for V, each group weighted by its weight in
  Ĝ). η_max defaults to lr; it plays the role of 1/L in η* = (1/L)·SNR/(1+SNR).

Every run is reproducible from one integer: seed s of `seeds` uses the s-th key of
`jax.random.split(jax.random.key(seed), seeds)`; step t folds t into it.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bandits import ensemble as ens
from bandits import softmax
from bandits.errors import InputError
from sims import estimators, oblrpo
from sims.estimators import bandit_group_gradient

STEP_RULES = ("fixed", "snr")
OPTIMIZERS = ("sgd", "adam")


def batch_gradient(estimator, params, logits, prompt_idx, arms, rewards, weights=None):
    """Ĝ for a batch of groups with a registry `Estimator`; `logits` (P, K), `prompt_idx` (B,),
    `arms`/`rewards` (B, G).

    `weights` (B,) default to P/B (uniform selection); pass importance weights otherwise."""
    p, b = logits.shape[0], prompt_idx.shape[0]
    if weights is None:
        weights = jnp.full((b,), p / b, dtype=logits.dtype)
    g = jax.vmap(lambda q, a, r: bandit_group_gradient(estimator.advantages, logits[q], a, r, params,
                                                estimator.per_coordinate))(
        prompt_idx, arms, rewards
    )
    return jnp.zeros_like(logits).at[prompt_idx].add(g * weights[:, None]) / p


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Learning curves of `seeds` independent runs.

    expected_reward     (seeds, steps+1)  exact ensemble objective J(Θ_t)
    samples             (steps+1,)        cumulative rollouts (B·G per step + the sampler's
                                          extra rollouts), mean over seeds
    step_sizes          (seeds, steps)    η_t
    snr                 (seeds, steps)    the pooled SNR̂ of the batch (nan under "fixed"; +inf
                                          when the batch's sample variance is 0 but Û > 0)
    selected_grad_norm  (seeds, steps)    batch mean of the exact |∇J_p(θ_p)| of the selected prompts
    optimum             float             J* of the ensemble
    """

    expected_reward: np.ndarray
    samples: np.ndarray
    step_sizes: np.ndarray
    snr: np.ndarray
    selected_grad_norm: np.ndarray
    optimum: float


def _positive_int(x, what, minimum=1):
    if not isinstance(x, (int, np.integer)) or isinstance(x, bool) or x < minimum:
        raise InputError(f"{what} must be an integer ≥ {minimum}, got {x!r}")
    return int(x)


def _finite(x, what):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.floating, np.integer)) \
            or not math.isfinite(x):
        raise InputError(f"{what} must be a finite number, got {x!r}")
    return float(x)


@functools.lru_cache(maxsize=64)
def _uniform(batch: int) -> ens.PromptSampler:
    return ens.uniform_sampler(batch)


def _optimizer(name: str):
    return {"sgd": lambda: optax.sgd(1.0), "adam": lambda: optax.adam(1.0)}[name]()


@functools.lru_cache(maxsize=64)
def _compiled(est, steps, batch, group, step_rule, optimizer, sampler):
    opt = _optimizer(optimizer)

    def one_seed(key, success, logits0, params, lr, eta_min, eta_max):
        k_init, k_loop = jax.random.split(key)
        sstate0 = sampler.init(k_init, logits0, success)
        opt_state0 = opt.init(logits0)

        def step(carry, t):
            logits, opt_state, sstate = carry
            k_sel, k_roll = jax.random.split(jax.random.fold_in(k_loop, t))
            idx, weights, sstate, extra = sampler.select(k_sel, sstate, logits, success, t)
            arms, rewards = ens.rollouts(k_roll, logits, success, idx, group)
            grad = batch_gradient(est, params, logits, idx, arms, rewards, weights)
            exact_norm = jnp.linalg.norm(
                jax.vmap(softmax.gradient)(logits[idx], success[idx]), axis=-1)
            if step_rule == "snr":
                terms = jax.vmap(lambda q, a, r: oblrpo.group_terms(est, params, logits[q], a, r))(
                    idx, arms, rewards)
                snr = oblrpo.batch_snr(terms, weights)
                eta = oblrpo.snr_step(snr, eta_min, eta_max)
            else:
                eta, snr = lr, jnp.nan
            updates, opt_state = opt.update(-grad, opt_state, logits)
            logits = logits + eta * updates
            out = (ens.objective(logits, success), eta, snr, jnp.mean(exact_norm),
                   jnp.asarray(extra, jnp.float64))
            return (logits, opt_state, sstate), out

        _, (obj, eta, snr, gnorm, extra) = jax.lax.scan(
            step, (logits0, opt_state0, sstate0), jnp.arange(steps))
        return jnp.concatenate([ens.objective(logits0, success)[None], obj]), eta, snr, gnorm, extra

    run = jax.vmap(one_seed, in_axes=(0, None, None, None, None, None, None))
    return jax.jit(run)


def train(ensemble: ens.Ensemble, estimator: estimators.Estimator, *, steps: int, batch: int, group: int,
          seeds: int = 32, seed: int = 0, lr: float = 0.5, step_rule: str = "fixed",
          eta_min: float = 0.0, eta_max: float | None = None, optimizer: str = "sgd",
          sampler: ens.PromptSampler | None = None, params: dict | None = None,
          init_logits=None) -> TrainResult:
    """Train `seeds` independent runs on `ensemble` with the estimator entry `estimator`.

    B = `batch` prompts per step (from `sampler`, default uniform with replacement), G = `group`
    answers each; `lr` is the fixed step (rule "fixed") and the default η_max (rule "snr").
    `params` are the estimator's parameters (e.g. {"baseline": 0.3}); `init_logits` (P, K) or (K,)
    default to zeros. Bad input raises InputError."""
    if not isinstance(ensemble, ens.Ensemble):
        raise InputError("train needs a bandits.ensemble.Ensemble")
    est = estimators.as_entry(estimator)
    steps = _positive_int(steps, "steps")
    batch = _positive_int(batch, "batch size")
    group = _positive_int(group, "group size G")
    seeds = _positive_int(seeds, "number of seeds")
    seed = _positive_int(seed, "seed", minimum=0)
    p = estimators.resolve_params(est, group, **(params or {}))
    lr = _finite(lr, "lr")
    if lr <= 0:
        raise InputError(f"lr must be > 0, got {lr:g}")
    if step_rule not in STEP_RULES:
        raise InputError(f"unknown step rule {step_rule!r}; expected one of {', '.join(STEP_RULES)}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
    eta_min = _finite(eta_min, "eta_min")
    eta_max = lr if eta_max is None else _finite(eta_max, "eta_max")
    eta_min, eta_max = oblrpo.validate_step_bounds(eta_min, eta_max)
    if step_rule == "snr" and group < 2:
        raise InputError("the SNR step rule needs a group of at least 2 members")
    success = np.asarray(ensemble.success, dtype=np.float64)
    shape = success.shape
    if init_logits is None:
        logits0 = np.zeros(shape)
    else:
        logits0 = np.asarray(init_logits, dtype=np.float64)
        if logits0.shape == shape[1:]:
            logits0 = np.broadcast_to(logits0, shape).copy()
        if logits0.shape != shape or not np.all(np.isfinite(logits0)):
            raise InputError(f"init_logits must be finite with shape {shape} or {shape[1:]}, "
                             f"got {np.shape(init_logits)}")
    if sampler is None:
        sampler = _uniform(batch)
    elif not isinstance(sampler, ens.PromptSampler):
        raise InputError("sampler must be a bandits.ensemble.PromptSampler")

    run = _compiled(est, steps, batch, group, step_rule, optimizer, sampler)
    keys = jax.random.split(jax.random.key(seed), seeds)
    jp = {k: jnp.float64(v) for k, v in p.items()}
    obj, eta, snr, gnorm, extra = jax.device_get(
        run(keys, jnp.asarray(success), jnp.asarray(logits0), jp, jnp.float64(lr),
            jnp.float64(eta_min), jnp.float64(eta_max)))
    per_step = batch * group + np.mean(np.asarray(extra, dtype=np.float64), axis=0)
    samples = np.concatenate([[0.0], np.cumsum(per_step)])
    return TrainResult(
        expected_reward=np.asarray(obj),
        samples=samples,
        step_sizes=np.broadcast_to(np.asarray(eta, np.float64), (seeds, steps)).copy(),
        snr=np.asarray(snr, np.float64) if step_rule == "snr" else np.full((seeds, steps), np.nan),
        selected_grad_norm=np.asarray(gnorm),
        optimum=ensemble.optimum,
    )


# ---------------------------------------------------------------------------------------------
# Summaries over seeds (bootstrap)
# ---------------------------------------------------------------------------------------------


def _bootstrap_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling counts of n seeds with replacement (numpy default_rng(seed))."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def bootstrap_mean_ci(curves, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """(mean, lo, hi) over seeds of `curves` (S, T): the mean curve and percentile bootstrap
    bounds of the mean at every t (resampling whole seeds)."""
    x = np.asarray(curves, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError("bootstrap needs curves of shape (seeds ≥ 2, T)")
    means = _bootstrap_counts(x.shape[0], n_boot, seed) @ x / x.shape[0]
    a = (1.0 - level) / 2.0
    return x.mean(0), np.quantile(means, a, axis=0), np.quantile(means, 1.0 - a, axis=0)


def _first_crossing(mean_curves, samples, threshold):
    hit = mean_curves >= threshold
    first = np.argmax(hit, axis=-1)
    return np.where(np.any(hit, axis=-1), samples[first], np.inf)


def samples_to_threshold(result: TrainResult, fraction: float = 0.9, n_boot: int = 1000,
                         seed: int = 0, level: float = 0.95) -> dict:
    """Samples until the seed-mean expected reward first reaches `fraction`·J*, with a percentile
    bootstrap CI over seeds. A bound that some resamples never reach within the budget is None
    ("not reached"); `reached` is the fraction of resamples that reach it."""
    x = np.asarray(result.expected_reward, dtype=np.float64)
    thr = fraction * result.optimum
    point = float(_first_crossing(x.mean(0), result.samples, thr))
    boots = _first_crossing(_bootstrap_counts(x.shape[0], n_boot, seed) @ x / x.shape[0],
                            result.samples, thr)
    a = (1.0 - level) / 2.0
    lo, hi = (np.quantile(boots, q, method="inverted_cdf") for q in (a, 1.0 - a))
    fin = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
    return {"samples": fin(point), "ci": [fin(lo), fin(hi)], "reached": float(np.mean(np.isfinite(boots))),
            "threshold": thr, "budget": float(result.samples[-1])}
