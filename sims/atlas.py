"""The estimator atlas (docs/design.md §4.9): what every registry estimator ascends under
pass/fail rewards, and at what variance.

Binary rewards. On the two-armed bandit with deterministic rewards (1, 0) and π_1 = p, a group is
fixed up to order by its number of successes k ~ Binomial(G, p), so every moment of ĝ is a sum of
G + 1 terms (any G, any registry estimator, the weights |s(a)|² included):

    E[ĝ] = Σ_k P(k) ĝ(k),     c(p, G) = E[ĝ]_1 / ∇p_1,   ∇p = p(1 − p)·(1, −1).

For an estimator whose advantages read the rewards only, E[ĝ_x] = c(p_x, G)·∇p_x on every
bandit with Bernoulli rewards (E[s(a)|R] = (R − p)∇p/(p(1 − p))), so c is *the* reweighting of the
objective it ascends: c = 1 (RLOO, unbiased), 1 − 1/G (group mean), ≈ 1/√(p(1−p)) (GRPO).
Variance at equal budget: tr Cov[ĝ]/c² (the variance after rescaling to the true gradient's
length) relative to RLOO's at the same G and p.
"""

from __future__ import annotations

import numpy as np

from sims import estimators
from sims.engines.binary import binary_moments, scale_curve  # noqa: F401  (the atlas reads them)


def relative_variance(estimator: estimators.Estimator, ps, group: int, **params) -> np.ndarray:
    """(tr Cov/c²) / tr Cov_RLOO at equal G for the entry `estimator`: the variance at equal budget
    and equal step length relative to RLOO (NaN where c ≤ 0, i.e. the estimator does not ascend p)."""
    c, v = binary_moments(estimator, ps, group, **params)
    _, v_rloo = binary_moments(estimators.get("rloo"), ps, group)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, v / np.maximum(c, 1e-300) ** 2 / v_rloo, np.nan)


def shape_word(c: np.ndarray, ps: np.ndarray) -> str:
    """A one-word description of c(p, G) over a symmetric grid of p."""
    c = np.asarray(c)
    if np.max(c) - np.min(c) <= 1e-9 * max(1.0, np.max(np.abs(c))):
        return "flat"
    mid = c[np.argmin(np.abs(ps - 0.5))]
    ends = (c[0], c[-1])
    if mid < min(ends):
        return "U (favours hard and easy prompts)"
    if mid > max(ends):
        return "∩ (favours p ≈ 1/2)"
    return "monotone, favours " + ("hard" if c[0] > c[-1] else "easy") + " prompts"
