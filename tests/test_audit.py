"""`pglab audit`: verdicts on the registry's own estimators and on planted broken ones; one-line errors."""

import json
import textwrap

import numpy as np
import pytest

from sims import estimators
from sims.engines import binary
from tests.cli_run import run

USER = textwrap.dedent('''
    import jax.numpy as jnp

    def leaky(rewards, weights):
        """The sample's own reward in the baseline, without the G/(G−1) factor."""
        return rewards - jnp.sum(rewards) / (rewards.shape[-1] - 1)

    def nan_on_ties(rewards, weights):
        return (rewards - jnp.mean(rewards)) / jnp.std(rewards)

    def one_arg(rewards):
        return rewards

    def raises(rewards, weights):
        raise RuntimeError("boom")
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_advantage_module.py").write_text(USER)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_advantage_module"


def card(capsys, target, group=4):
    code, out, err = run(capsys, "audit", target, "--group", str(group), "--json")
    assert code == 0, err
    return json.loads(out)


def test_rloo_is_unbiased(capsys):
    c = card(capsys, "sims.estimators:rloo")
    assert c["verdict"] == "unbiased" and c["scope"] == "all rewards"
    assert all(p["bias_max_abs"] < 1e-12 for p in c["panel"])
    np.testing.assert_allclose(c["scale_curve"]["c"], 1.0, atol=1e-12)


def test_grpo_is_direction_unbiased_for_binary_rewards_with_its_scale(capsys):
    c = card(capsys, "sims.estimators:grpo")
    assert c["verdict"] == "direction-unbiased" and c["scope"] == "binary rewards"
    np.testing.assert_allclose(c["scale_curve"]["c"], binary.scale_curve(estimators.get("grpo"), c["scale_curve"]["p"], 4),
                               rtol=1e-12)
    assert c["checks"]["scale"] == "invariant" and c["checks"]["float32_residue"] == 0.0
    # the card's checks are `audit.contract`'s (one definition), read off its results
    from sims import audit

    res = {r.name: r for r in audit.contract(estimators.grpo, 4)}
    assert c["checks"]["permutation_max_error"] == res["permutation"].value
    assert (c["checks"]["shift"], c["checks"]["scale"]) == (res["shift"].detail, res["scale"].detail)
    assert c["checks"]["all_equal_groups"] == res["all_equal"].value
    assert c["checks"]["singleton_group"] == res["singleton"].value


def test_report_from_python_runs_without_a_time_limit_and_with_one():
    """`sims.audit.report` called as a library: no --timeout means no alarm, a timeout arms one and
    disarms it afterwards; both give the card the CLI prints."""
    import signal

    from sims import audit

    plain = audit.report("sims.estimators:grpo_mean", group=4)
    timed = audit.report("sims.estimators:grpo_mean", group=4, timeout=120)
    assert plain["verdict"] == timed["verdict"] == "direction-unbiased"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_planted_own_reward_baseline_is_caught(capsys, user_module):
    c = card(capsys, f"{user_module}:leaky")
    assert c["verdict"] == "direction-unbiased" and c["scope"] == "all rewards"
    assert c["panel"][0]["scale_c"] == pytest.approx(2 / 3, abs=1e-12)  # (G − 2)/(G − 1) at G = 4
    assert any("wrong length" in p for p in c["problems"])
    assert any("all-equal groups get non-zero" in p for p in c["problems"])


def test_planted_nan_on_all_equal_groups_is_caught(capsys, user_module):
    c = card(capsys, f"{user_module}:nan_on_ties")
    assert c["verdict"] == "biased" and c["checks"]["non_finite_outputs"]
    assert any("NaN" in p and "all-equal" in p for p in c["problems"])
    assert all(p["bias_max_abs"] is None and p["reason"] for p in c["panel"])


@pytest.mark.parametrize("target, message", [
    ("no_such_module_anywhere:f", "cannot import"), ("{m}:missing", "has no function"),
    ("{m}:one_arg", "must take (rewards, weights)"), ("{m}:raises", "raised RuntimeError"),
    ("nocolon", "MODULE:FUNCTION")])
def test_bad_targets_exit_2_with_one_line(capsys, user_module, target, message):
    code, out, err = run(capsys, "audit", target.format(m=user_module))
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
