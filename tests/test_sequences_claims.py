"""The sequences.* claims (docs/design.md §4.12): each check catches its planted defect."""

import numpy as np

from sims.claims import sequences as C


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
