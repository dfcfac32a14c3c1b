"""Claims on the sequence testbed (docs/design.md §4.12): what each loss aggregation does to the
length of responses when length does not enter the reward, and the testbed against the bandit.

The task is the answer-filler family (`bandits.sequence.AnswerFiller`): the first token picks one of
two answers, then every step is filler or the end token with a stop logit per answer; the reward is
1 for answer 0 and 0 otherwise, so any component of E[ĝ] along the stop logits ("the length push")
is the aggregation's doing. Positive push on an answer's stop logit shortens its responses.

Two claims concern the gradient itself. Micro-batch invariance: a group of G responses split into k
equal micro-batches, each loss computed with the mode's own normaliser and the losses accumulated as
the peers do (times the share 1/k; TRL's dapo normalised by the global token count instead), with
the whole group's advantages held fixed, against the full-batch loss, by autodiff on every ordered
group of a small answer-filler task and by Monte Carlo. The score-function identity
∇J = E[R(y) Σ_t ∇log π(y_t | y<t)] on random policies with an end token (variable lengths).
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from bandits import rewards as R
from bandits import sequence as S
from bandits.errors import InputError
from sims import estimators
from sims import sequences as Q
from sims.claims import _kit as kit
from sims.engines import exact, montecarlo, stats
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
        for g in (2, 4):
            a = Q.moments(est, sp, theta, r, g, agg="seq-mean-token-sum",
                          feature=None if est.per_coordinate else feature)
            b = exact.moments(est, theta[0], R.deterministic(r), g)
            scale = max(float(np.max(np.abs(b.cov))), float(np.max(np.abs(b.mean))))
            err = max(float(np.max(np.abs(a.mean - b.mean))), float(np.max(np.abs(a.cov - b.cov)))) / scale
            if err > worst:
                worst, where = err, {"estimator": name, "G": g}
    return Outcome(worst <= tol, worst, f"≤ {tol:g} (relative)",
                   "testbed (T = 1, weights |s|²; the per-coordinate entry on the response route) against the "
                   "bandit's exact engine, every entry", counterexample=where if worst > tol else None)


@claim("sequences.one_token_is_the_bandit", "docs/design.md §4.12",
       "At T = 1 the sequence testbed is the softmax bandit: the exact mean and covariance of every registry "
       "estimator's group estimate agree with the bandit's exact engine (two independent routes).",
       conditions="V = 4, deterministic rewards (1, 0, 0.35, 1), logits (0.3, −0.2, 0.1, 1), G = 2 and 4; the "
                  "per-coordinate entry by the response route, every other entry by the type route")
def one_token_is_the_bandit():
    return [Check("exact", lambda quick: verify_bandit_at_one_token())]


# ---------------------------------------------------------------------------------------------
# Micro-batch invariance: a group split into k micro-batches, the losses accumulated as the peers do
# ---------------------------------------------------------------------------------------------

SOURCE_MICRO = ("verl dp_actor.update_policy (each micro-batch loss times loss_scale_factor = micro-batch size / "
                "ppo_mini_batch_size) with agg_loss; TRL GRPOTrainer._compute_loss (grpo, bnpo, dr_grpo: the loss "
                "divided by current_gradient_accumulation_steps; dapo: the token sum over num_items_in_batch, the "
                "global token count); ../shared/research/surrogates.md §4 (bnpo = local-batch token-mean, dapo = "
                "global accumulated token-mean; 'every mode is invariant to the micro-batch and DP layout')")
MICRO = S.AnswerFiller(answers=2, max_len=4)
MICRO_PARAMS = np.array([0.3, 0.0, -0.5, -1.0])  # answer logits, stop logits: lengths 2, 3, 4 all likely
MICRO_GROUP, MICRO_SPLITS = 4, 2
IDENTITY_TOL = 1e-12
GAP_MIN = 1e-3  # the smallest max-abs gap claimed on a group with unequal token counts and non-zero A
EXPECTED_GAP_MIN = 1e-3  # the smallest max-abs E[ĝ_accum − ĝ_full] claimed for token-mean


@dataclasses.dataclass(frozen=True)
class Accumulation:
    """How a peer accumulates one aggregation mode (a `sims.sequences` name) over k equal
    micro-batches of a group: each micro-batch loss L_m uses the mode's normaliser, computed from the
    micro-batch alone (`normaliser="local"`: its own lengths and size) or from the whole batch
    ("global"), and is multiplied by its share 1/k (`share`: verl's dp_actor loss_scale_factor, not
    agg_loss's normaliser of the same name; TRL's division by the accumulation steps) or not (TRL dapo).
    The claim: ĝ_accum = ρ·ĝ_full for every group (`invariant`), with ρ = 1/k when the mode sums over
    the sequences (`scale_is_share`) and 1 otherwise; or, not invariant, only for groups whose
    micro-batches hold equal token counts."""

    name: str
    peer: str
    normaliser: str = "local"
    share: bool = True
    scale_is_share: bool = False
    invariant: bool = True

    def ratio(self, splits: int) -> float:
        return 1.0 / splits if self.scale_is_share else 1.0


ACCUMULATIONS = (
    Accumulation("seq-mean-token-sum", "verl seq-mean-token-sum; TRL luspo"),
    Accumulation("seq-mean-token-mean", "verl seq-mean-token-mean; TRL grpo"),
    Accumulation("dr_grpo", "TRL dr_grpo"),
    Accumulation("dapo", "TRL dapo (global token count, not divided by the steps)", normaliser="global", share=False),
    Accumulation("token-sum", "verl token-sum", scale_is_share=True),
    Accumulation("seq-mean-token-sum-norm", "verl seq-mean-token-sum-norm (c_i = 1/T)", scale_is_share=True),
    Accumulation("bnpo", "TRL bnpo; verl token-mean normalised per micro-batch", invariant=False),
)


def accumulated_loss(sp: S.Space, theta, ids, advantages, acc: Accumulation, splits: int):
    """L_accum(θ) = Σ_m w·L_m over k = `splits` consecutive equal micro-batches m of the group `ids`
    (G,), w = 1/k with `acc.share` and 1 without; L_m = −Σ_{i∈m} c_i A_i log π(y_i) with c from the
    micro-batch alone (`Q.surrogate` on the slice) or, for a global normaliser, from the whole group.
    The advantages are the whole group's, held fixed."""
    g = ids.shape[-1]
    if splits < 1 or g % splits:
        raise InputError(f"{splits} micro-batches do not split a group of {g} equally")
    coef = Q.Coefficient(Q.aggregation(acc.name).rule, sp.max_len)
    size, w = g // splits, (1.0 / splits if acc.share else 1.0)
    whole = coef(jnp.asarray(sp.lengths, theta.dtype)[ids])
    logp = jnp.sum(S.token_logprobs(sp, theta)[ids], axis=-1)
    adv = jax.lax.stop_gradient(advantages)
    total = 0.0
    for m in range(splits):
        part = slice(m * size, (m + 1) * size)
        if acc.normaliser == "global":
            total = total - w * jnp.sum(whole[part] * adv[part] * logp[part])
        else:
            total = total + w * Q.surrogate(sp, theta, ids[part], adv[part], coef)
    return total


def micro_gaps(sp: S.Space, theta, ids, advantages, accs, splits: int):
    """ĝ_accum − ρ·ĝ_full (len(accs), P·V) for one group, ĝ = −∇L by autodiff of each loss."""
    out = []
    for acc in accs:
        full = Q.Coefficient(Q.aggregation(acc.name).rule, sp.max_len)
        g_full = -jax.grad(Q.surrogate, argnums=1)(sp, theta, ids, advantages, full)
        g_acc = -jax.grad(accumulated_loss, argnums=1)(sp, theta, ids, advantages, acc, splits)
        out.append((g_acc - acc.ratio(splits) * g_full).ravel())
    return jnp.stack(out)


def _micro_setup():
    sp = MICRO.space
    theta = jnp.asarray(MICRO.logits(jnp.asarray(MICRO_PARAMS)))
    return sp, theta, S.answer_correct(sp, 0), estimators.get("grpo")


def _advantages(est, rewards):
    return est.advantages(rewards, jnp.ones_like(rewards), **estimators.resolve_params(est, rewards.shape[-1]))


def exact_micro(accs=ACCUMULATIONS, group: int = MICRO_GROUP, splits: int = MICRO_SPLITS) -> dict:
    """Every ordered group of the testbed: its probability (M,), the gaps (M, len(accs), P·V), the
    micro-batch token counts (M, k), whether A ≠ 0, and E[gap] (len(accs), P·V)."""
    sp, theta, r, est = _micro_setup()
    ids = np.array(list(itertools.product(range(sp.num_responses), repeat=group)))
    pi = np.asarray(S.policy(sp, theta))
    prob = np.prod(pi[ids], axis=-1)
    adv = _advantages(est, jnp.asarray(r[ids]))
    gaps = np.asarray(jax.jit(jax.vmap(lambda g, a: micro_gaps(sp, theta, g, a, tuple(accs), splits)))(
        jnp.asarray(ids), adv))
    tokens = sp.lengths[ids].reshape(len(ids), splits, -1).sum(-1)
    return {"prob": prob, "gaps": gaps, "tokens": tokens, "signal": np.any(np.asarray(adv) != 0, axis=-1),
            "expected": np.einsum("m,mad->ad", prob, gaps)}


def verify_micro_batch(accs=ACCUMULATIONS) -> Outcome:
    """Exact, over every ordered group: invariant modes max|gap| ≤ 1e-12 and |E[gap]| ≤ 1e-12; the
    others gap ≤ 1e-12 on equal token counts, > GAP_MIN on unequal counts with A ≠ 0, |E[gap]| >
    EXPECTED_GAP_MIN."""
    ex = exact_micro(accs)
    size = np.max(np.abs(ex["gaps"]), axis=-1)  # (M, modes)
    equal = np.all(ex["tokens"] == ex["tokens"][:, :1], axis=-1)
    apart = ~equal & ex["signal"]
    measured, ok, bad = {}, True, None
    for j, acc in enumerate(accs):
        e = float(np.max(np.abs(ex["expected"][j])))
        if acc.invariant:
            worst = float(np.max(size[:, j]))
            holds = worst <= IDENTITY_TOL and e <= IDENTITY_TOL
            measured[acc.name] = {"max_gap": worst, "max_expected_gap": e}
        else:
            on_equal, least = float(np.max(size[equal, j])), float(np.min(size[apart, j]))
            holds = on_equal <= IDENTITY_TOL and least > GAP_MIN and e > EXPECTED_GAP_MIN
            measured[acc.name] = {"max_gap_equal_tokens": on_equal, "min_gap_unequal_tokens": least,
                                  "max_expected_gap": e}
        if not holds and bad is None:
            bad = {"mode": acc.name, "peer": acc.peer, "normaliser": acc.normaliser, "invariant": acc.invariant,
                   **measured[acc.name]}
        ok &= holds
    return Outcome(bool(ok), measured,
                   f"invariant: max|ĝ_accum − ρĝ_full| ≤ {IDENTITY_TOL:g} over every group and in expectation; "
                   f"token-mean per micro-batch: ≤ {IDENTITY_TOL:g} on equal token counts, > {GAP_MIN:g} on "
                   f"unequal ones with A ≠ 0, |E[gap]| > {EXPECTED_GAP_MIN:g}",
                   f"{len(ex['prob']):,} ordered groups (G = {MICRO_GROUP}, k = {MICRO_SPLITS}), GRPO advantages "
                   f"on the whole group", counterexample=bad)


@dataclasses.dataclass(frozen=True)
class MicroGroups:
    """Engine problem: `draw(key, n, (theta, rewards, params))` → the gaps of n sampled groups,
    (n, len(accs)·P·V)."""

    space: S.Space
    estimator: estimators.Estimator
    accs: tuple
    group: int
    splits: int

    def __call__(self, key, n, args):
        theta, rewards, params = args
        ids = S.sample_responses(key, self.space, theta, (n, self.group))

        def one(g):
            r = rewards[g]
            a = self.estimator.advantages(r, jnp.ones_like(r), **params)
            return micro_gaps(self.space, theta, g, a, self.accs, self.splits).ravel()

        return jax.vmap(one)(ids)


def mc_micro(quick: bool, accs=ACCUMULATIONS, expected=None, seed: int = 37) -> Outcome:
    """Monte Carlo: the sampled mean gap of the modes claimed not invariant, z-checked against the
    exact E[gap] (or `expected`, one row per such mode); for the invariant ones the sampled mean gap
    and its standard error stay ≤ 1e-12 (the identity holds on every sampled group)."""
    sp, theta, r, est = _micro_setup()
    accs = tuple(accs)
    n = 20_000 if quick else 200_000
    params = {k: jnp.float64(v) for k, v in estimators.resolve_params(est, MICRO_GROUP).items()}
    s = montecarlo.stream(MicroGroups(sp, est, accs, MICRO_GROUP, MICRO_SPLITS),
                          (theta, jnp.asarray(r), params), n, seed)
    d = sp.num_prefixes * sp.vocab
    mean, se = s.mean.reshape(len(accs), d), s.mean_se.reshape(len(accs), d)
    loose = [j for j, a in enumerate(accs) if not a.invariant]
    if expected is None:
        expected = exact_micro(accs)["expected"][loose] if loose else np.zeros((0, d))
    expected = np.asarray(expected, dtype=np.float64).reshape(len(loose), d)
    tight = [j for j, a in enumerate(accs) if a.invariant]
    bound = float(np.max(np.abs(mean[tight]) + se[tight])) if tight else 0.0
    checks = [stats.z_check(f"{accs[j].name}: MC E[ĝ_accum − ĝ_full] vs exact", mean[j], se[j], expected[i])
              for i, j in enumerate(loose)]
    z = stats.combine("token-mean per micro-batch", checks) if checks else None
    holds = bound <= IDENTITY_TOL and (z is None or z.passed)
    measured = {"invariant modes: max |mean| + se": bound}
    if z is not None:
        measured.update({"token-mean mean gap": np.round(z.measured, 6).tolist(), "max |z|": z.max_abs_z})
    return Outcome(bool(holds), measured,
                   {"invariant modes": f"≤ {IDENTITY_TOL:g}",
                    **({"token-mean exact E[gap]": np.round(z.expected, 6).tolist()} if z is not None else {})},
                   f"{n:,} sampled groups (G = {MICRO_GROUP}, k = {MICRO_SPLITS}, GRPO, seed {seed})"
                   + (f"; {z.summary()}" if z is not None else ""),
                   interval=None if z is None else [(z.measured - 5 * z.se).tolist(), (z.measured + 5 * z.se).tolist()])


@claim("sequences.micro_batch_invariance", SOURCE_MICRO,
       "Splitting a group into k equal micro-batches, computing each micro-batch's loss with the mode's own "
       "normaliser and accumulating as the peers do (verl: each loss times its share 1/k; TRL: divided by the k "
       "accumulation steps, except dapo, normalised by the global token count and not divided), with the "
       "advantages computed on the whole group and held fixed: the accumulated gradient equals the full-batch "
       "gradient exactly, on every group, for seq-mean-token-sum (verl; TRL luspo), seq-mean-token-mean (verl; "
       "TRL grpo; equal-size micro-batches), TRL dr_grpo and TRL dapo; it is exactly 1/k of it for token-sum "
       "and seq-mean-token-sum-norm (sums over the sequences, scaled by the share); token-mean normalised per "
       "micro-batch (TRL bnpo; verl token-mean with the sequence share) equals it only when the micro-batches "
       "hold equal token counts, differs on every group with unequal counts and non-zero advantages, and has a "
       "non-zero expected difference E[ĝ_accum − ĝ_full].",
       conditions="answer-filler family, two answers, T = 4, answer logits (0.3, 0), stop logits (−0.5, −1), "
                  "reward 1 for answer 0; GRPO advantages; G = 4 split into k = 2 consecutive micro-batches; every "
                  "one of the 4,096 ordered groups exactly; Monte Carlo 20,000 (quick) or 200,000 groups")
def micro_batch_invariance():
    return [Check("exact", lambda quick: verify_micro_batch()),
            Check("monte_carlo", lambda quick: mc_micro(quick))]


# ---------------------------------------------------------------------------------------------
# The sequence-level score-function identity
# ---------------------------------------------------------------------------------------------

SCORE_SPACE = dict(vocab=3, max_len=4, eos=2)
SCORE_SEEDS = (0, 1, 2, 3, 4)
DROPS = ("none", "last", "first_only")


def random_policy(seed: int):
    """(space, θ (P, V) with N(0, 1) logits, rewards (N,) uniform on [−1, 2]) from one seed."""
    sp = S.space(**SCORE_SPACE)
    rng = np.random.default_rng(seed)
    return sp, rng.normal(size=(sp.num_prefixes, sp.vocab)), rng.uniform(-1.0, 2.0, size=sp.num_responses)


def summed_scores(sp: S.Space, theta, drop: str = "none") -> np.ndarray:
    """Σ_t s_t(y) per response (N, P·V), s_t = ∇log π(y_t | y<t) in closed form (`S.token_scores`);
    `drop` leaves out the last step (the end token's, for a response that stops) or keeps only the
    first (the planted defects)."""
    if drop not in DROPS:
        raise InputError(f"unknown drop {drop!r}; known: {', '.join(DROPS)}")
    ts = np.asarray(S.token_scores(sp, jnp.asarray(theta)))
    pos = np.arange(sp.max_len)[None, :]
    keep = {"none": sp.mask, "last": pos < sp.lengths[:, None] - 1, "first_only": pos == 0}[drop]
    return np.einsum("nt,ntpv->npv", keep.astype(np.float64), ts).reshape(sp.num_responses, -1)


def verify_score_function(drop: str = "none", seeds=SCORE_SEEDS) -> Outcome:
    """Exact: Σ_y π(y) R(y) Σ_t s_t(y) = ∇J (autodiff of J = Σ_y π(y)R(y)) and Σ_t s_t(y) = ∇log π(y)
    (autodiff of the log-probability) for every response, both to 1e-12, on every seeded policy."""
    worst, where = 0.0, None
    for seed in seeds:
        sp, theta, r = random_policy(seed)
        th = jnp.asarray(theta)
        table = summed_scores(sp, theta, drop)
        pi = np.asarray(S.policy(sp, th))
        grad = np.asarray(S.gradient(sp, th, jnp.asarray(r))).ravel()
        jac = np.asarray(jax.jacrev(S.log_policy, argnums=1)(sp, th)).reshape(sp.num_responses, -1)
        err = max(float(np.max(np.abs((pi * r) @ table - grad))), float(np.max(np.abs(table - jac))))
        if err > worst:
            worst, where = err, {"seed": seed, "drop": drop}
    return Outcome(worst <= IDENTITY_TOL, worst, f"≤ {IDENTITY_TOL:g}",
                   f"max |Σ_y π R Σ_t s_t − ∇J| and |Σ_t s_t − ∇log π(y)| over {len(seeds)} random policies "
                   f"(V = 3, T = 4, end token 2, {S.space(**SCORE_SPACE).num_responses} responses)",
                   counterexample=where if worst > IDENTITY_TOL else None)


@dataclasses.dataclass(frozen=True)
class ScoreSamples:
    """Engine problem: `draw(key, n, (theta, table))` → table[y] for n responses drawn token by
    token, table (N, d) holding R(y) Σ_t s_t(y)."""

    space: S.Space

    def __call__(self, key, n, args):
        theta, table = args
        return table[S.sample_responses(key, self.space, theta, (n,))]


def mc_score_function(quick: bool, drop: str = "none", seed: int = 41) -> stats.ZCheck:
    """Monte Carlo mean of R(y) Σ_t s_t(y) against the exact ∇J, Holm over the coordinates of
    the seeded policies (one in quick mode, three in full)."""
    checks = []
    for k, pol in enumerate(SCORE_SEEDS[: 1 if quick else 3]):
        sp, theta, r = random_policy(pol)
        th = jnp.asarray(theta)
        table = r[:, None] * summed_scores(sp, theta, drop)
        s = montecarlo.stream(ScoreSamples(sp), (th, jnp.asarray(table)), 20_000 if quick else 200_000, seed + k)
        grad = np.asarray(S.gradient(sp, th, jnp.asarray(r))).ravel()
        checks.append(stats.z_check(f"policy {pol}", s.mean, s.mean_se, grad))
    return stats.combine(f"MC E[R Σ_t s_t] vs ∇J (drop {drop})", checks)


@claim("sequences.score_function_identity", "Williams 1992 (REINFORCE); Sutton et al. 2000, the policy-gradient "
       "theorem; docs/design.md §4.12",
       "The sequence-level score-function identity: ∇J(θ) = E_y[R(y) ∇log π(y)] = E_y[R(y) Σ_t ∇log π(y_t | y<t)], "
       "the per-token scores (closed form e_{y<t} ⊗ (e_{y_t} − softmax(θ_{y<t})), the end token's step included) "
       "summing to the sequence score, for responses of variable length.",
       conditions="V = 3, T = 4, end token 2 (31 responses, 15 prefixes), logits N(0, 1) and rewards uniform on "
                  "[−1, 2] from seeds 0–4, exact against autodiff of J = Σ_y π(y)R(y); Monte Carlo 20,000 "
                  "responses on seed 0 (quick) or 200,000 on seeds 0–2")
def score_function_identity():
    return [Check("exact", lambda quick: verify_score_function()),
            Check("monte_carlo", lambda quick: kit.mc_outcome(mc_score_function(quick), "R·Σ_t s_t"))]
