"""Multi-prompt bandit ensembles: P "prompts", each a softmax bandit over K answers.

Prompt p has per-arm success probabilities q_{p,a} (Bernoulli rewards, "verifiable": 1 if the
answer is accepted) and its own logits θ_p. A prompt's difficulty is its pass rate under the
current policy, P_p = J_p(θ_p) = Σ_a π_{p,a} q_{p,a}. Success probabilities are drawn from a
Beta(α, β) distribution, so an ensemble mixes easy and hard prompts. The ensemble objective is
the mean pass rate J(Θ) = (1/P) Σ_p J_p(θ_p), maximised by putting all mass on each prompt's
best arm: J* = (1/P) Σ_p max_a q_{p,a}.

A training batch selects B prompts (with replacement) and draws a group of G answers for each
(`rollouts`); the trainers in `sims.train` turn them into gradient estimates with the estimator
registry. A prompt sampler is a pair of pure functions (see `PromptSampler`), so uniform sampling
and variance-aware sampling plug into the same trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bandits import softmax
from bandits.errors import InputError


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """P prompts × K arms of Bernoulli success probabilities."""

    success: np.ndarray  # (P, K), entries in [0, 1]

    def __post_init__(self):
        q = np.asarray(self.success, dtype=np.float64)
        if q.ndim != 2 or q.shape[0] < 1 or q.shape[1] < 2:
            raise InputError("an ensemble needs P ≥ 1 prompts with K ≥ 2 arms each")
        if not np.all(np.isfinite(q)) or np.any(q < 0) or np.any(q > 1):
            raise InputError("success probabilities must lie in [0, 1]")

    @property
    def prompts(self) -> int:
        return self.success.shape[0]

    @property
    def arms(self) -> int:
        return self.success.shape[1]

    @property
    def optimum(self) -> float:
        """J* = mean_p max_a q_{p,a}."""
        return float(np.mean(np.max(self.success, axis=1)))


def make_ensemble(seed: int, prompts: int, arms: int, alpha: float = 1.0, beta: float = 3.0) -> Ensemble:
    """Draw q_{p,a} ~ Beta(α, β) i.i.d. (default: mostly hard prompts, mean success 1/4)."""
    if not isinstance(prompts, int) or prompts < 1:
        raise InputError(f"the number of prompts P must be an integer ≥ 1, got {prompts!r}")
    if not isinstance(arms, int) or arms < 2:
        raise InputError(f"the number of arms K must be an integer ≥ 2, got {arms!r}")
    if not (alpha > 0 and beta > 0):
        raise InputError("Beta parameters must be positive")
    rng = np.random.default_rng(seed)
    return Ensemble(rng.beta(alpha, beta, size=(prompts, arms)))


def pass_rates(logits, success):
    """P_p = J_p(θ_p) = Σ_a π_{p,a} q_{p,a} for every prompt; (P,)."""
    return jnp.sum(softmax.policy(logits) * success, axis=-1)


def objective(logits, success):
    """J(Θ) = mean_p J_p(θ_p)."""
    return jnp.mean(pass_rates(logits, success))


def gradient(logits, success):
    """∇J(Θ): row p is (1/P) π_p ∘ (q_p − J_p)."""
    return jax.vmap(softmax.gradient)(logits, success) / logits.shape[0]


def rollouts(key, logits, success, prompt_idx, group: int):
    """G answers for each selected prompt: arms (B, G), Bernoulli rewards (B, G)."""
    k_arm, k_rew = jax.random.split(key)
    keys = jax.random.split(k_arm, prompt_idx.shape[0])
    arms = jax.vmap(lambda k, p: softmax.sample_arms(k, logits[p], (group,)))(keys, prompt_idx)
    u = jax.random.uniform(k_rew, arms.shape, dtype=success.dtype)
    rewards = (u < success[prompt_idx[:, None], arms]).astype(success.dtype)
    return arms, rewards


class PromptSampler(NamedTuple):
    """How a trainer picks the B prompts of each step.

    init(key, logits, success) -> state
    select(key, state, logits, success, step) -> (prompt_idx (B,), weights (B,) or None, state,
                                                  extra_rollouts: int32 — samples spent on scoring)
    """

    init: Callable[..., Any]
    select: Callable[..., tuple]


def uniform_sampler(batch: int) -> PromptSampler:
    """B prompts uniformly with replacement (weights None ⇒ P/B each, unbiased)."""
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch size must be an integer ≥ 1, got {batch!r}")

    def init(key, logits, success):
        del key, logits, success
        return ()

    def select(key, state, logits, success, step):
        del logits, step
        idx = jax.random.randint(key, (batch,), 0, success.shape[0])
        return idx, None, state, jnp.int32(0)

    return PromptSampler(init, select)
