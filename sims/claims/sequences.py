"""Claims on the sequence testbed (docs/design.md §4.12): what each loss aggregation does to the
length of responses when length does not enter the reward, and the testbed against the bandit.

The task is the answer-filler family (`bandits.sequence.AnswerFiller`): the first token picks one of
two answers, then every step is filler or the end token with a stop logit per answer; the reward is
1 for answer 0 and 0 otherwise, so any component of E[ĝ] along the stop logits ("the length push")
is the aggregation's doing. Positive push on an answer's stop logit shortens its responses.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bandits import rewards as R
from bandits import sequence as S
from sims import estimators
from sims import sequences as Q
from sims.claims import _kit as kit
from sims.engines import exact, stats
from sims.ledger import Check, Outcome, claim

FAMILY = S.AnswerFiller(answers=2, max_len=6)
PARAMS = np.array([0.3, 0.0, -1.0, -1.0])  # answer logits, stop logits
ESTIMATORS = ("grpo", "grpo_mean", "rloo")
NEUTRAL = ("seq-mean-token-sum", "seq-mean-token-sum-norm", "dr_grpo", "token-sum", "luspo")
TOL = 1e-13
SOURCE_DRGRPO = "Liu et al. 2025 (Dr. GRPO, arXiv 2503.20783), §3.1"
SOURCE_PEERS = "verl agg_loss; TRL GRPOTrainer loss_type (docs/design.md §4.12)"


def _setup():
    theta = np.asarray(FAMILY.logits(jnp.asarray(PARAMS)))
    return FAMILY.space, theta, S.answer_correct(FAMILY.space, 0)


def length_push(flat) -> np.ndarray:
    """A vector over θ (P·V,) carried to the family's stop logits by the chain rule, (answers,)."""
    return FAMILY.parameter_gradient(PARAMS, flat)[FAMILY.answers:]


def _push_matrix() -> np.ndarray:
    """L (answers, P·V) with push = L ĝ (the pull-back is linear)."""
    sp = FAMILY.space
    return np.stack([length_push(e) for e in np.eye(sp.num_prefixes * sp.vocab)], axis=1)


def exact_pushes(aggs, groups, names=ESTIMATORS) -> dict:
    sp, theta, r = _setup()
    return {(n, a, g): length_push(Q.moments(estimators.get(n), sp, theta, r, g, agg=a).mean)
            for n in names for a in aggs for g in groups}


def verify_length_bias(agg: str = "seq-mean-token-mean", groups=(2, 4, 8)) -> Outcome:
    """Exact: the right answer's stop logit is pushed up and the wrong one's down, for every
    estimator and G."""
    pushes = exact_pushes([agg], groups)
    holds = all(p[0] > 1e-6 and p[1] < -1e-6 for p in pushes.values())
    worst = min(min(p[0], -p[1]) for p in pushes.values())
    return Outcome(holds, {f"{n} G={g}": np.round(p, 6).tolist() for (n, _, g), p in pushes.items()},
                   "push on the right answer's stop logit > 0, on the wrong answer's < 0",
                   f"{agg}: smallest push of the expected sign {worst:.3g} over {len(pushes)} cases")


def mc_push(agg: str, quick: bool, expected=None, seed: int = 31) -> stats.ZCheck:
    """The Monte Carlo push (GRPO, G = 4) against `expected` (default: the exact push)."""
    sp, theta, r = _setup()
    est = estimators.get("grpo")
    n = 40_000 if quick else 400_000
    s = Q.monte_carlo(est, sp, theta, r, 4, n, seed=seed, agg=agg)
    lmat = _push_matrix()
    mean = lmat @ s.mean
    se = np.sqrt(np.diag(lmat @ s.cov @ lmat.T) / s.samples)
    want = length_push(Q.moments(est, sp, theta, r, 4, agg=agg).mean) if expected is None else expected
    return stats.z_check(f"{agg}: MC length push vs exact", mean, se, np.asarray(want, dtype=np.float64))


@claim("sequences.seq_mean_token_mean_length_bias", SOURCE_DRGRPO,
       "With a length-neutral reward, per-sequence length normalisation (seq-mean-token-mean; TRL's "
       "loss_type='grpo') pushes the stop logit of the right answer up and of the wrong answer down: right "
       "answers get shorter and wrong ones longer, for the GRPO, Dr. GRPO (mean-only) and RLOO advantages.",
       conditions="answer-filler family, two answers, T = 6, answer logits (0.3, 0), stop logits (−1, −1), "
                  "reward 1 for answer 0; G = 2, 4, 8 exactly; Monte Carlo at G = 4 with GRPO")
def seq_mean_token_mean_length_bias():
    return [Check("exact", lambda quick: verify_length_bias()),
            Check("monte_carlo", lambda quick: kit.mc_outcome(mc_push("seq-mean-token-mean", quick), "GRPO, G = 4"))]


def verify_length_neutral(aggs=NEUTRAL, groups=(2, 4, 8)) -> Outcome:
    pushes = exact_pushes(aggs, groups)
    worst = max(float(np.max(np.abs(p))) for p in pushes.values())
    where = max(pushes, key=lambda k: float(np.max(np.abs(pushes[k]))))
    return Outcome(worst <= TOL, worst, f"≤ {TOL:g}",
                   f"max |push| over {len(pushes)} cases ({', '.join(aggs)})",
                   counterexample=None if worst <= TOL else {"estimator": where[0], "agg": where[1], "G": where[2]})


@claim("sequences.length_neutral_aggregations", SOURCE_PEERS,
       "On a length-neutral task the aggregations with a normaliser that does not read the response's own "
       "length (seq-mean-token-sum, verl's seq-mean-token-sum-norm, TRL's dr_grpo and luspo, token-sum) push "
       "no stop logit: E[ĝ] has no component along length.",
       conditions="answer-filler family as in sequences.seq_mean_token_mean_length_bias; GRPO, Dr. GRPO, RLOO; "
                  "G = 2, 4, 8 exactly; Monte Carlo at G = 4 with GRPO")
def length_neutral_aggregations():
    return [Check("exact", lambda quick: verify_length_neutral()),
            Check("monte_carlo", lambda quick: kit.mc_outcome(
                mc_push("seq-mean-token-sum", quick, expected=np.zeros(2)), "GRPO, G = 4, against zero"))]


def verify_token_mean_residual(groups=(2, 4, 8, 16), agg: str = "token-mean") -> Outcome:
    """token-mean within one group: a push of the same signs as seq-mean-token-mean's, smaller than
    it, and shrinking as G grows (`agg` replaces token-mean in the planted-defect tests)."""
    tm = {(n, "token-mean", g): v for (n, _, g), v in exact_pushes([agg], groups).items()}
    sm = exact_pushes(["seq-mean-token-mean"], groups)
    ok = True
    for n in ESTIMATORS:
        mags = [tm[(n, "token-mean", g)][0] for g in groups]
        ok &= all(tm[(n, "token-mean", g)][0] > 0 > tm[(n, "token-mean", g)][1] for g in groups)
        ok &= all(tm[(n, "token-mean", g)][0] < sm[(n, "seq-mean-token-mean", g)][0] for g in groups)
        ok &= all(b < a for a, b in zip(mags[1:], mags[2:]))  # decreasing from G = 4 on
    return Outcome(bool(ok), {f"{n}": [round(float(tm[(n, "token-mean", g)][0]), 6) for g in groups]
                              for n in ESTIMATORS},
                   "0 < push(token-mean) < push(seq-mean-token-mean), decreasing in G from G = 4",
                   f"right answer's stop-logit push under token-mean at G = {', '.join(map(str, groups))}")


@claim("sequences.token_mean_residual_push", "DAPO (Yu et al. 2025, arXiv 2503.14476) token-level loss; " + SOURCE_PEERS,
       "token-mean normalised within one group (verl token-mean; TRL bnpo, and dapo with one group) leaves a "
       "residual length push on a length-neutral task, of the same sign as seq-mean-token-mean's, smaller than "
       "it, and shrinking as the group grows.",
       conditions="answer-filler family as in sequences.seq_mean_token_mean_length_bias; GRPO, Dr. GRPO, RLOO; "
                  "G = 2, 4, 8, 16 exactly; Monte Carlo at G = 4 with GRPO")
def token_mean_residual_push():
    return [Check("exact", lambda quick: verify_token_mean_residual()),
            Check("monte_carlo", lambda quick: kit.mc_outcome(mc_push("token-mean", quick), "GRPO, G = 4"))]


def verify_bandit_at_one_token(tol: float = 1e-12, feature: str = "score_sq") -> Outcome:
    sp = S.space(4, 1)
    theta = np.array([[0.3, -0.2, 0.1, 1.0]])
    r = np.array([1.0, 0.0, 0.35, 1.0])
    worst, where = 0.0, None
    for name, est in estimators.REGISTRY.items():
        if est.per_coordinate:
            continue
        for g in (2, 4):
            a = Q.moments(est, sp, theta, r, g, agg="seq-mean-token-sum", feature=feature)
            b = exact.moments(est, theta[0], R.deterministic(r), g)
            scale = max(float(np.max(np.abs(b.cov))), float(np.max(np.abs(b.mean))))
            err = max(float(np.max(np.abs(a.mean - b.mean))), float(np.max(np.abs(a.cov - b.cov)))) / scale
            if err > worst:
                worst, where = err, {"estimator": name, "G": g}
    return Outcome(worst <= tol, worst, f"≤ {tol:g} (relative)",
                   "testbed (T = 1, weights |s|²) against the bandit's exact engine, every entry but the "
                   "per-coordinate one", counterexample=where if worst > tol else None)


@claim("sequences.one_token_is_the_bandit", "docs/design.md §4.12",
       "At T = 1 the sequence testbed is the softmax bandit: the exact mean and covariance of every registry "
       "estimator's group estimate agree with the bandit's exact engine (two independent routes).",
       conditions="V = 4, deterministic rewards (1, 0, 0.35, 1), logits (0.3, −0.2, 0.1, 1), G = 2 and 4; the "
                  "per-coordinate entry is not on the testbed's type route")
def one_token_is_the_bandit():
    return [Check("exact", lambda quick: verify_bandit_at_one_token())]
