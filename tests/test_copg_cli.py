"""`pglab copg`: the JSON report, the population (--exact) mode, and one-line errors with exit 2."""

import json

import numpy as np
import pytest

from sims import cli

TOY = ["copg", "--rewards", "2.5,2,1", "--beta", "0.5", "--mu1", "0.1,0.2,0.7",
       "--mu2", "0.05,0.05,0.9"]


def _run(capsys, args):
    cli.main(args)
    return capsys.readouterr().out


def _softmax(x):
    e = np.exp(np.asarray(x, dtype=float) - np.max(x))
    return e / e.sum()


def _regret_by_hand(pi, r, beta, ref):
    """β KL(π‖π*) with π* = softmax(ln π_ref + R/β), in plain numpy."""
    star = _softmax(np.log(ref) + np.asarray(r) / beta)
    return beta * float(np.sum(pi * np.log(pi / star)))


TOY_REF = np.full(3, 1 / 3)
TOY_STAR = _softmax(np.array([2.5, 2.0, 1.0]) / 0.5)


def test_json_report_sampled_toy(capsys):
    out = json.loads(_run(capsys, TOY + ["--ref", "1/3,1/3,1/3", "--json", "--epochs", "30"]))
    assert set(out) == {"method", "mode", "pi", "J", "pi_star", "J_star", "regret", "grad_norm",
                        "steps", "converged", "converged_reason"}
    assert out["method"] == "copg" and out["mode"] == "sampled" and out["converged"] is None
    assert out["steps"] == 30 * 20  # ⌈10⁴/512⌉ = 20 Adam steps per epoch
    np.testing.assert_allclose(out["pi_star"], TOY_STAR, atol=1e-12)
    np.testing.assert_allclose(out["J_star"], 0.5 * np.log(np.mean(np.exp(np.array([2.5, 2, 1]) / 0.5))),
                               atol=1e-12)
    np.testing.assert_allclose(out["regret"], _regret_by_hand(np.asarray(out["pi"]), [2.5, 2, 1], 0.5,
                                                              TOY_REF), atol=1e-12)
    start = _regret_by_hand(TOY_REF, [2.5, 2, 1], 0.5, TOY_REF)
    assert 0 < out["regret"] < start / 2  # 600 Adam steps of CoPG have closed over half the gap
    again = json.loads(_run(capsys, TOY + ["--ref", "1/3,1/3,1/3", "--json", "--epochs", "30"]))
    other = json.loads(_run(capsys, TOY + ["--json", "--epochs", "30", "--seed", "1"]))
    assert again == out and other["pi"] != out["pi"]


def test_exact_mode_is_the_converged_population_limit(capsys):
    """The population limit is the limit: CoPG reaches π* (softmax(ln π_ref + R/β), by hand),
    the paper's value baseline its biased solution; both report convergence and their steps."""
    args = ["copg", "--rewards", "1,0.3,0.8,-0.2", "--beta", "0.3", "--mu1", "0.4,0.3,0.2,0.1",
            "--mu2", "0.1,0.1,0.1,0.7", "--ref", "0.1,0.2,0.3,0.4", "--exact", "--json"]
    out = json.loads(_run(capsys, args))
    star = _softmax(np.log([0.1, 0.2, 0.3, 0.4]) + np.array([1, 0.3, 0.8, -0.2]) / 0.3)
    assert out["mode"] == "exact" and out["converged"] is True and 0 < out["steps"] <= 100_000
    assert out["grad_norm"] < 1e-10 and out["regret"] < 1e-15
    np.testing.assert_allclose(out["pi"], star, atol=1e-9)
    pv = json.loads(_run(capsys, TOY + ["--method", "pg_value", "--exact", "--json"]))
    np.testing.assert_allclose(pv["pi"], [0.8116, 0.1675, 0.0209], atol=1e-4)
    np.testing.assert_allclose(pv["regret"], 0.0148, atol=1e-4)
    soft = json.loads(_run(capsys, TOY + ["--method", "pg_soft_value", "--exact", "--json"]))
    np.testing.assert_allclose(soft["pi"], TOY_STAR, atol=1e-9)


def test_exact_step_cap_is_reported(capsys):
    out = json.loads(_run(capsys, TOY + ["--method", "pg", "--exact", "--max-steps", "10", "--json"]))
    assert out["converged"] is False and out["steps"] == 10 and out["grad_norm"] > 1e-3
    text = _run(capsys, TOY + ["--method", "pg", "--exact", "--max-steps", "10"])
    assert "NOT converged" in text and "π*" in text


def test_exact_budget_is_a_fixed_budget(capsys):
    """The old fixed-budget run stays available under its own name: 20·⌈10⁴/512⌉ Adam steps at
    lr 1e-3 on exact gradients, far from the limit (CoPG's regret is still > 1e-3)."""
    out = json.loads(_run(capsys, TOY + ["--exact-budget", "--epochs", "20", "--json"]))
    assert out["mode"] == "exact_budget" and out["steps"] == 400 and out["converged"] is False
    assert out["regret"] > 1e-3 and out["grad_norm"] > 1e-3


@pytest.mark.parametrize("extra, fragment", [
    (["--mu1", "0.1,0.9"], "entries"),
    (["--mu1", "0,0.3,0.7"], "full support"),
    (["--mu2", "0.1,0.1,0.1"], "sum"),
    (["--beta", "0"], "beta"),
    (["--beta", "-0.5"], "beta"),
    (["--ref", "1/2,1/2"], "entries"),
    (["--ref", "1/3,1/3,x"], "cannot read"),
    (["--method", "ppo"], "unknown method"),
    (["--pairs", "0"], "pairs"),
    (["--epochs", "0"], "epochs"),
    (["--exact", "--exact-budget"], "exclude"),
    (["--max-steps", "5"], "--exact only"),
    (["--exact", "--max-steps", "0"], "step cap"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, extra, fragment):
    with pytest.raises(SystemExit) as err:
        cli.main(TOY + extra)
    assert err.value.code == 2
    msg = capsys.readouterr().err.strip()
    assert msg.startswith("pglab: error:") and "\n" not in msg and fragment in msg


def test_missing_required_option_is_exit_2(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["copg", "--rewards", "1,2"])
    assert err.value.code == 2
