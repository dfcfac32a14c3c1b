"""`pglab copg`: the JSON report, the population (--exact) mode, and one-line errors with exit 2."""

import json
import time

import numpy as np
import pytest

from bandits import copg as C
from sims import cli

TOY = ["copg", "--rewards", "2.5,2,1", "--beta", "0.5", "--mu1", "0.1,0.2,0.7",
       "--mu2", "0.05,0.05,0.9"]


def _run(capsys, args):
    cli.main(args)
    return capsys.readouterr().out


def test_json_report_default_toy(capsys):
    start = time.perf_counter()
    out = json.loads(_run(capsys, TOY + ["--ref", "1/3,1/3,1/3", "--json"]))
    assert time.perf_counter() - start < 30
    assert set(out) == {"method", "pi", "J", "pi_star", "J_star", "regret"}
    assert out["method"] == "copg"
    np.testing.assert_allclose(sum(out["pi"]), 1.0, atol=1e-12)
    p = C.toy_problem()
    np.testing.assert_allclose(out["pi_star"], np.asarray(C.optimal_policy(p)), atol=1e-12)
    np.testing.assert_allclose(out["J_star"], float(C.optimal_value(p)), atol=1e-12)
    np.testing.assert_allclose(out["regret"], out["J_star"] - out["J"], atol=1e-10)
    run = C.train("copg", p, [0])  # the CLI's default run is seed 0 of the trainer
    np.testing.assert_allclose(out["regret"], run.regret[0, -1], atol=1e-12)
    assert 0 < out["regret"] < 0.05


def test_exact_mode_is_the_population_run(capsys):
    out = json.loads(_run(capsys, TOY + ["--method", "pg", "--exact", "--json", "--epochs", "20"]))
    run = C.train_exact("pg", C.toy_problem(), epochs=20)
    np.testing.assert_allclose(out["regret"], run.regret[-1], atol=1e-12)
    text = _run(capsys, TOY + ["--method", "pg", "--exact", "--epochs", "20"])
    assert "regret" in text and "π*" in text


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
