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


# ---------------------------------------------------------------------------------------------
# The atlas on the sequence testbed: the weight-reading entries with their papers' features
# ---------------------------------------------------------------------------------------------

# The testbed's pass/fail task (docs/design.md §4.12): the answer-filler family with three answers,
# answer 0 right; π(answer 0) = p, the two wrong answers share the rest in the ratio e^1.2 : 1 (two
# equally likely wrong answers would make every answer statistic symmetric); after its answer a
# response is filler or the end token with one stop logit per answer, so the lengths (and the token
# entropies) differ by answer while the reward reads the answer only. Wrong answers run longer.
TESTBED_ANSWERS = 3
TESTBED_MAX_LEN = 4
TESTBED_STOP = (0.5, -1.0, -0.5)
TESTBED_WRONG = (0.6, -0.6)  # the wrong answers' logits
TESTBED_AGG = "seq-mean-token-sum"  # length-neutral: any bias is the advantage's doing
TESTBED_NOTE = (f"testbed: answer-filler, {TESTBED_ANSWERS} answers (answer 0 right, wrong-answer logits {TESTBED_WRONG}), "
                f"T = {TESTBED_MAX_LEN}, stop logits {TESTBED_STOP}, aggregation {TESTBED_AGG}; "
                "features: the paper's own (length, mean token entropy, final answer)")


def testbed_task(p: float):
    """(space, logits θ (P, V), rewards (N,), family parameters) of the testbed's pass/fail prompt
    with pass rate p: answer logits (log(p/(1 − p)) + log Σ_w e^{w}, TESTBED_WRONG)."""
    from bandits import sequence as S

    if not 0 < p < 1:
        raise ValueError("the pass rate must lie strictly inside (0, 1)")
    family = S.AnswerFiller(answers=TESTBED_ANSWERS, max_len=TESTBED_MAX_LEN)
    wrong = np.asarray(TESTBED_WRONG)
    params = np.array([np.log(p / (1 - p)) + np.log(np.sum(np.exp(wrong))), *wrong, *TESTBED_STOP])
    theta = np.asarray(family.logits(params))
    return family.space, theta, S.answer_correct(family.space, 0), params


def testbed_moments(estimator: estimators.Estimator, p: float, group: int, feature: str | None = None,
                    agg: str = TESTBED_AGG, **params):
    """Exact `sims.sequences.moments` of the entry on the testbed's prompt with pass rate p, with the
    paper's feature (`sims.sequences.PAPER_FEATURE`) unless `feature` names another."""
    from sims import sequences

    sp, theta, r, _ = testbed_task(p)
    return sequences.moments(estimator, sp, theta, r, group, agg=agg, feature=feature, **params)


def testbed_scale(estimator: estimators.Estimator, ps, group: int, feature: str | None = None,
                  agg: str = TESTBED_AGG, **params) -> dict:
    """On the testbed, for each p: `c` = E[ĝ]·∇J/|∇J|² (the bandit's c(p, G) when E[ĝ] ∥ ∇J),
    `cosine` cos(E[ĝ], ∇J), and `off` |E[ĝ] − c∇J|/|∇J| (the part no reweighting of J explains)."""
    c, cos, off = [], [], []
    for p in np.atleast_1d(ps):
        m = testbed_moments(estimator, float(p), group, feature, agg, **params)
        g2 = float(m.true_gradient @ m.true_gradient)
        k = float(m.mean @ m.true_gradient) / g2
        c.append(k)
        cos.append(m.cosine if m.cosine is not None else 0.0)
        off.append(float(np.linalg.norm(m.mean - k * m.true_gradient)) / np.sqrt(g2))
    return {"c": np.array(c), "cosine": np.array(cos), "off": np.array(off)}


TESTBED_VERDICTS = ("unbiased", "parallel to ∇J", "biased")


def testbed_verdict(scale: dict, tol: float = 1e-9) -> str:
    """From `testbed_scale` over a grid of p (one G): `unbiased` (E[ĝ] = ∇J), `parallel to ∇J`
    (E[ĝ] = c(p, G)·∇J: a reweighted objective, on this task), or `biased` (a part of E[ĝ] off ∇J)."""
    if np.max(scale["off"]) > tol:
        return "biased"
    return "unbiased" if np.max(np.abs(scale["c"] - 1.0)) <= tol else "parallel to ∇J"


TESTBED_BATCH_PS = (0.3, 0.7)  # a batch of two testbed prompts
TESTBED_BATCH_GROUP = 4


def testbed_batch(ps=TESTBED_BATCH_PS):
    """The testbed's prompts with pass rates `ps`, as `sims.sequence_batches.Prompt`s."""
    from sims import sequence_batches

    return [sequence_batches.Prompt(*testbed_task(p)[:3]) for p in ps]


def testbed_batch_scale(entry, ps=TESTBED_BATCH_PS, group: int = TESTBED_BATCH_GROUP, feature: str | None = None,
                        **params) -> dict:
    """A batch entry (or a group entry) on a batch of testbed prompts: per prompt x, c_x =
    E[ĝ_x]·∇J_x/|∇J_x|² and the part off ∇J_x, |E[ĝ_x] − c_x∇J_x|/|∇J_x|; and cos(E[ĝ], ∇J) of the
    whole batch (J the mean of the prompts' pass rates)."""
    from sims import sequence_batches

    m = sequence_batches.batch_moments(entry, testbed_batch(ps), group, agg=TESTBED_AGG, feature=feature, **params)
    c, off = [], []
    for block in m.blocks:
        g, e = m.true_gradient[block], m.mean[block]
        k = float(e @ g / (g @ g))
        c.append(k)
        off.append(float(np.linalg.norm(e - k * g) / np.linalg.norm(g)))
    return {"c": np.array(c), "off": np.array(off), "cosine": m.cosine, "moments": m}
