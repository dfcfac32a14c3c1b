"""The sequences.* claims (docs/design.md §4.12): each check catches its planted defect."""

import dataclasses
import itertools

import numpy as np

from bandits import sequence as S
from sims.claims import sequences as C
from sims.engines import stats


def test_length_bias_check_fails_on_a_length_neutral_aggregation():
    assert C.verify_length_bias().holds
    assert not C.verify_length_bias(agg="seq-mean-token-sum").holds


def test_length_neutral_check_fails_when_a_length_reading_mode_is_slipped_in():
    assert C.verify_length_neutral().holds
    assert not C.verify_length_neutral(aggs=("seq-mean-token-sum", "seq-mean-token-mean")).holds


def test_token_mean_residual_check_fails_for_other_modes():
    assert C.verify_token_mean_residual().holds
    assert not C.verify_token_mean_residual(agg="seq-mean-token-mean").holds  # not smaller than itself
    assert not C.verify_token_mean_residual(agg="seq-mean-token-sum").holds  # no push at all


def test_one_token_check_fails_with_the_wrong_feature():
    assert C.verify_bandit_at_one_token().holds
    assert not C.verify_bandit_at_one_token(feature="length").holds  # OPO would read lengths, not |s|²


def test_monte_carlo_push_rejects_a_wrong_target():
    assert C.mc_push("seq-mean-token-mean", True).passed
    assert not C.mc_push("seq-mean-token-mean", True, expected=np.zeros(2)).passed


# --- micro-batch invariance ---------------------------------------------------------------------

ACC = {a.name: a for a in C.ACCUMULATIONS}


def _numpy_policy(sp, theta):
    """π(y) (N,) and ∇log π(y) (N, P·V) in plain numpy: Σ_t e_{y<t} ⊗ (e_{y_t} − softmax(θ_{y<t}))."""
    theta = np.asarray(theta, dtype=np.float64)
    z = np.exp(theta - np.max(theta, axis=-1, keepdims=True))
    soft = z / z.sum(-1, keepdims=True)
    n, p, v = sp.num_responses, *theta.shape
    pi, score = np.ones(n), np.zeros((n, p, v))
    for i in range(n):
        for t in range(sp.lengths[i]):
            h, y = sp.rows[i, t], sp.tokens[i, t]
            pi[i] *= soft[h, y]
            score[i, h] -= soft[h]
            score[i, h, y] += 1.0
    return pi, score.reshape(n, -1)


def _grpo(r):
    c = r - r.mean()
    sd = np.sqrt(np.sum(c**2) / (len(r) - 1)) + 1e-6
    return c / sd if np.any(c != 0) else np.zeros_like(r)


def test_micro_batch_check_holds_and_token_mean_gap_matches_a_brute_force():
    assert C.verify_micro_batch().holds
    # ĝ = Σ_i c_i A_i ∇log π(y_i): per micro-batch token-mean with share 1/k against the full token-mean,
    # summed over the ordered groups with their probabilities (no lab helper on this path).
    sp = C.MICRO.space
    pi, score = _numpy_policy(sp, np.asarray(C.MICRO.logits(C.MICRO_PARAMS)))
    r = (sp.tokens[:, 0] == 0).astype(float)
    g, k = C.MICRO_GROUP, C.MICRO_SPLITS
    want = np.zeros(score.shape[1])
    for ids in itertools.product(range(sp.num_responses), repeat=g):
        ids = np.array(ids)
        a, lens = _grpo(r[ids]), sp.lengths[ids]
        part = lens.reshape(k, -1).sum(-1)
        c = 1.0 / (k * np.repeat(part, g // k)) - 1.0 / lens.sum()
        want += np.prod(pi[ids]) * (c * a) @ score[ids]
    got = C.exact_micro((ACC["bnpo"],))["expected"][0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    assert np.max(np.abs(want)) > C.EXPECTED_GAP_MIN


def test_micro_batch_check_fails_on_a_per_micro_batch_normaliser_in_an_invariant_mode():
    slipped = dataclasses.replace(ACC["dapo"], normaliser="local", share=True)  # bnpo's path under dapo's claim
    assert not C.verify_micro_batch((ACC["seq-mean-token-sum"], slipped)).holds
    assert not C.mc_micro(True, accs=(slipped,)).holds


def test_micro_batch_check_fails_when_token_mean_is_claimed_invariant():
    claimed = dataclasses.replace(ACC["bnpo"], invariant=True)
    out = C.verify_micro_batch((claimed,))
    assert not out.holds and out.counterexample["mode"] == "bnpo"
    assert not C.mc_micro(True, accs=(claimed,)).holds
    assert not C.mc_micro(True, accs=(ACC["bnpo"],), expected=np.zeros(28)).holds  # E[gap] = 0 is rejected


def test_micro_batch_check_fails_without_the_share_or_the_stated_scale():
    assert not C.verify_micro_batch((dataclasses.replace(ACC["seq-mean-token-sum"], share=False),)).holds
    assert not C.verify_micro_batch((dataclasses.replace(ACC["token-sum"], scale_is_share=False),)).holds


def test_micro_batch_monte_carlo_passes():
    out = C.mc_micro(True)
    assert out.holds, out.detail


# --- the score-function identity ------------------------------------------------------------------


def test_score_function_exact_matches_finite_differences():
    sp, theta, r = C.random_policy(3)
    exact = (np.asarray(S.policy(sp, theta)) * r) @ C.summed_scores(sp, theta)
    h, fd = 1e-5, np.zeros(theta.size)
    for j in range(theta.size):
        e = np.zeros(theta.size)
        e[j] = h
        up, down = theta + e.reshape(theta.shape), theta - e.reshape(theta.shape)
        fd[j] = (_numpy_policy(sp, up)[0] @ r - _numpy_policy(sp, down)[0] @ r) / (2 * h)
    np.testing.assert_allclose(exact, fd, rtol=0, atol=1e-8)
    np.testing.assert_allclose(C.summed_scores(sp, theta), _numpy_policy(sp, theta)[1], rtol=0, atol=1e-13)


def test_score_function_checks_fail_on_a_dropped_or_lone_step():
    assert C.verify_score_function().holds
    assert C.mc_score_function(True).passed
    for drop in ("last", "first_only"):
        assert not C.verify_score_function(drop).holds
        assert not C.mc_score_function(True, drop).passed  # the same seed
    z = C.mc_score_function(True, "last")
    finite = np.isfinite(z.z)  # rejected at finite z too, not only where the defect leaves se = 0
    assert np.max(np.abs(z.z[finite])) > stats.critical_z(z.z.size)
