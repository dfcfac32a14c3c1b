"""The atlas on the sequence testbed (docs/design.md §4.12): the testbed's pass/fail task, pinned by
hand, and the sequences.atlas.* claims, each catching its planted defect."""

import numpy as np

from bandits import sequence as S
from sims import atlas, estimators
from sims.claims import atlas as C


def test_the_task_has_the_stated_pass_rate_and_a_gradient_on_the_answer_logits_only():
    for p in (0.05, 0.5, 0.9):
        sp, theta, r, _ = atlas.testbed_task(p)
        pi = np.asarray(S.policy(sp, theta))
        assert abs(pi @ r - p) < 1e-14
        # ∇J = p(e_0 − π_answers) on the first prefix's answer logits, zero elsewhere (by hand)
        grad = np.asarray(S.gradient(sp, theta, r))
        first = np.exp(theta[0, :3] - np.max(theta[0, :3]))
        first /= first.sum()
        want = p * (np.eye(3)[0] - first)
        np.testing.assert_allclose(grad[0, :3], want, atol=1e-15)
        assert np.max(np.abs(np.delete(grad.ravel(), [0, 1, 2]))) < 1e-15


def test_reinforce_is_unbiased_and_grpo_mean_has_the_hand_scale():
    s = atlas.testbed_scale(estimators.get("reinforce"), [0.3], 4)
    assert atlas.testbed_verdict(s) == "unbiased"
    s = atlas.testbed_scale(estimators.get("grpo_mean"), [0.3, 0.7], 4)
    np.testing.assert_allclose(s["c"], 0.75, atol=1e-13)  # 1 − 1/G
    assert atlas.testbed_verdict(s) == "parallel to ∇J"


def test_reward_only_scale_check_fails_on_a_length_reading_aggregation():
    names = ["grpo", "rloo"]
    assert C.verify_testbed_scale(names=names).holds
    assert not C.verify_testbed_scale(agg="seq-mean-token-mean", names=names).holds


def test_reward_only_scale_check_fails_when_a_weight_reader_is_slipped_in():
    assert not C.verify_testbed_scale(names=["grpo", "gtpo"]).holds


def test_weight_reader_verdicts_fail_when_the_feature_is_dropped():
    assert C.verify_weight_readers(groups=(4,)).holds
    assert not C.verify_weight_readers(feature="ones", groups=(4,)).holds


def test_monte_carlo_catches_the_stand_in_feature():
    assert C.mc_testbed("gtpo", 0.25, True).passed
    assert not C.mc_testbed("gtpo", 0.25, True, expected_feature="ones").passed


def test_token_whitening_check_fails_with_equal_lengths():
    assert C.verify_batch_testbed().holds
    assert not C.verify_batch_testbed(feature="ones").holds  # every response one token: no length shift


def test_batch_monte_carlo_catches_the_equal_length_mean():
    assert C.mc_batch_testbed("reinforce_pp_baseline", True).passed
    assert not C.mc_batch_testbed("reinforce_pp_baseline", True, expected_feature="ones").passed
