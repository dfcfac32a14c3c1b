"""Hostile input through the real command line: every row either succeeds with strict JSON
(no NaN or Infinity, nothing on stderr) and the right values, or fails with exit code 2 and
exactly one line on stderr, never a traceback, a MemoryError or a hang.

Most rows run in process (`sims.cli.main` with captured streams); a few run as real
subprocesses, to cover the console entry point end to end."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sims import cli

ROOT = Path(__file__).resolve().parent.parent
M = ["moments", "--json"]
BERN = ["--rewards", "bernoulli:0.5,0.5", "--logits", "0,0"]
TOY = ["copg", "--rewards", "2.5,2,1", "--beta", "0.5", "--mu1", "0.1,0.2,0.7", "--mu2", "0.05,0.05,0.9"]
BIG = str(2**63)


def _reject_constant(name):
    raise ValueError(f"non-strict JSON constant {name}")


def strict_json(text: str):
    return json.loads(text, parse_constant=_reject_constant)


def run_inprocess(argv):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _onehot_baseline(report):  # π → e_1: b* tends to the mean of arms 2 and 3 (equal vanishing π)
    assert report["exact"]["optimal_constant_baseline"] == pytest.approx(0.25, abs=1e-12)
    assert report["pi"] == [1.0, 0.0, 0.0] and report["exact"]["trace_var"] == pytest.approx(0, abs=1e-30)


def _all_equal_grpo(report):  # eps = 0 on groups that are all equal: advantage 0 by its limit
    assert report["exact"]["mean"] == [0.0, 0.0] and report["exact"]["trace_var"] == 0.0


def _grpo_eps0_mixed(report):  # Bernoulli(1/2) arms, G = 3: finite, and the mean is 0 by symmetry
    assert report["exact"]["mean"] == pytest.approx([0.0, 0.0], abs=1e-15)
    assert report["exact"]["trace_var"] > 0


def _se_undefined(report):
    assert report["mc"]["trace_var_se"] is None and "2 batches" in report["mc"]["trace_var_se_reason"]


def _exact_too_large_with_mc(report):
    assert report["exact"] is None and "limit" in report["exact_reason"]
    assert report["mc"]["samples"] == 300


def _copg_cap(report):
    assert report["converged"] is False and report["steps"] == 50


def _extreme_scale(report):  # R/β = 1e9: π* is one-hot; 200 steps get close and say so
    assert report["pi_star"] == [1.0, 0.0] and report["pi"] == pytest.approx([1.0, 0.0], abs=1e-6)
    assert report["converged"] is False and report["steps"] == 200 and 0 <= report["regret"] < 1e-2


OK = [  # (argv, value check) — exit 0, strict JSON, empty stderr
    (M + ["--logits", "1000,0,0", "--rewards", "bernoulli:0.8,0.4,0.1", "--estimator", "optimal_baseline_loo",
          "--group", "4"], _onehot_baseline),
    (M + ["--logits", "1000,0,0", "--rewards", "bernoulli:0.8,0.4,0.1", "--estimator", "grpo", "--group", "4"],
     _onehot_baseline),
    (M + ["--logits", "-1000,0,0", "--rewards", "bernoulli:0.8,0.4,0.1", "--estimator", "rloo", "--group", "4"],
     None),
    (M + ["--logits", "1e308,-1e308,0", "--rewards", "bernoulli:0.8,0.4,0.1", "--estimator", "rloo",
          "--group", "2"], None),
    (M + ["--logits", "0,0", "--rewards", "deterministic:1,1", "--estimator", "grpo", "--group", "2", "--eps", "0"],
     _all_equal_grpo),
    (M + BERN + ["--estimator", "grpo", "--group", "3", "--eps", "0"], _grpo_eps0_mixed),
    (M + BERN + ["--estimator", "rloo", "--group", "2", "--mc", "2"], _se_undefined),
    (M + BERN + ["--estimator", "rloo", "--group", "2048", "--mc", "300"], _exact_too_large_with_mc),
    (M + ["--logits", "0,0,0", "--rewards", "categorical:1/0.5;2/0.5|0/1|1e-300/1", "--estimator",
          "optimal_baseline_loo", "--group", "3", "--mc", "300", "--seed", "5"], None),
    (M + ["--logits", "0,0", "--rewards", "deterministic:1e100,-1e100", "--estimator", "rloo", "--group", "2"],
     None),
    (TOY + ["--method", "pg", "--exact", "--max-steps", "50", "--json"], _copg_cap),
    (["copg", "--rewards", "1000,0", "--beta", "1e-6", "--mu1", "0.5,0.5", "--mu2", "0.5,0.5", "--exact",
      "--max-steps", "200", "--json"], _extreme_scale),
]

BAD = [  # (argv, fragment of the one-line error) — exit 2
    (M + ["--logits", "0", "--rewards", "bernoulli:0.5", "--estimator", "rloo", "--group", "2"], "2 and 4,096 arms"),
    (M + ["--logits", ",".join(["0"] * 5000), "--rewards", "bernoulli:" + ",".join(["0.5"] * 5000),
          "--estimator", "rloo", "--group", "2"], "4,096 arms"),
    (M + ["--logits", "0,0", "--rewards", "deterministic:1e300,0", "--estimator", "reinforce", "--group", "2"],
     "limit of 1e+100"),
    (M + ["--logits", "0,0", "--rewards", "gaussian:0/1e300,0/1", "--estimator", "rloo", "--group", "2",
          "--mc", "1000"], "limit of 1e+100"),
    (M + BERN + ["--estimator", "reinforce", "--group", "2", "--baseline", "1e300"], "magnitude"),
    (M + BERN + ["--estimator", "grpo", "--group", "2", "--eps", "-1"], "eps"),
    (M + BERN + ["--estimator", "grpo", "--group", "2", "--eps", "nan"], "finite"),
    (M + BERN + ["--estimator", "rloo", "--group", "2", "--mc", "2", "--seed", "-1"], "2^63"),
    (M + BERN + ["--estimator", "rloo", "--group", "2", "--mc", "2", "--seed", BIG], "2^63"),
    (M + BERN + ["--estimator", "rloo", "--group", "2", "--seed", "3"], "add --mc"),
    (M + BERN + ["--estimator", "rloo", "--group", "2", "--mc", "1"], "--mc"),
    (M + BERN + ["--estimator", "rloo", "--group", "2", "--mc", str(10**15)], "1,000,000,000"),
    (M + BERN + ["--estimator", "rloo", "--group", "2000000"], "limit of 3,000,000"),
    (M + BERN + ["--estimator", "rloo", "--group", str(10**9), "--mc", "10"], "limit of 134,217,728"),
    (M + BERN + ["--estimator", "rloo", "--group", "0"], "group"),
    (M + ["--logits", "0,inf", "--rewards", "bernoulli:0.5,0.5", "--estimator", "rloo", "--group", "2"], "finite"),
    (M + ["--logits", "0,0", "--rewards", "bernoulli:0.5,1.5", "--estimator", "rloo", "--group", "2"], "[0, 1]"),
    (M + ["--logits", "0,0", "--rewards", "categorical:", "--estimator", "rloo", "--group", "2"], "categorical"),
    (TOY + ["--seed", "-1"], "2^63"),
    (TOY + ["--seed", BIG], "2^63"),
    (TOY + ["--pairs", str(10**12)], "limit of 10,000,000"),
    (TOY + ["--epochs", str(10**9)], "limit of 100,000"),
    (TOY + ["--pairs", "10000000", "--epochs", "100000"], "Adam steps"),
    (TOY + ["--exact", "--seed", "3"], "sampled runs only"),
    (TOY + ["--exact", "--pairs", "5"], "--exact-budget"),
    (TOY + ["--exact", "--max-steps", str(10**12)], "step cap"),
    (["copg", "--rewards", ",".join(["1"] * 2000), "--beta", "1", "--mu1", ",".join(["0.0005"] * 2000),
      "--mu2", ",".join(["0.0005"] * 2000)], "1,024"),
    (["copg", "--rewards", "1e300,0", "--beta", "1", "--mu1", "0.5,0.5", "--mu2", "0.5,0.5"], "|R|/β"),
    (["copg", "--rewards", "1,0", "--beta", "1e-300", "--mu1", "0.5,0.5", "--mu2", "0.5,0.5"], "beta"),
    (["copg", "--rewards", "1,0", "--beta", "nan", "--mu1", "0.5,0.5", "--mu2", "0.5,0.5"], "beta"),
    (["copg", "--rewards", "1,0", "--beta", "1", "--mu1", "1e-400,1", "--mu2", "0.5,0.5"], "full support"),
    (["verify", "--only", ""], "empty pattern"),
    (["verify", "--only", "copg.*,"], "empty pattern"),
    (["verify", "--only", "optimum"], "no claim matches"),  # a glob over whole ids, not a substring
    (["verify", "--out", "/dev/null", "--only", "copg.optimum"], "not a folder"),
    (["figures", "--only", ""], "empty step"),
    (["figures", "--only", "copg_toy,,"], "empty step"),
    (["figures", "--out", "/dev/null", "--only", "copg_toy"], "not a folder"),
    (["figures", "--jobs", "0", "--only", "copg_toy"], "--jobs must be between 1"),
    (["figures", "--jobs", "100000", "--only", "copg_toy"], "--jobs must be between 1"),
]


@pytest.mark.parametrize("argv, check", OK, ids=lambda x: " ".join(x)[:70] if isinstance(x, list) else "")
def test_extreme_but_valid_input_gives_strict_correct_json(argv, check):
    code, out, err = run_inprocess(argv)
    assert code == 0 and err == "", err
    report = strict_json(out)
    if check:
        check(report)


@pytest.mark.parametrize("argv, fragment", BAD, ids=lambda x: " ".join(x)[:70] if isinstance(x, list) else "")
def test_bad_input_is_one_line_and_exit_2(argv, fragment):
    code, out, err = run_inprocess(argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("pglab: error:") and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
    assert out == ""


@pytest.mark.parametrize("argv, code", [
    (M + ["--logits", "1000,0,0", "--rewards", "bernoulli:0.8,0.4,0.1", "--estimator", "grpo",
          "--group", "3", "--eps", "0"], 0),
    (TOY + ["--seed", BIG], 2),
    (["verify", "--only", ""], 2),
])
def test_console_entry_point_in_a_subprocess(argv, code):
    proc = subprocess.run([sys.executable, "-m", "sims.cli", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    if code == 0:
        strict_json(proc.stdout)
    else:
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("pglab: error:")


def test_every_json_writer_is_strict(tmp_path):
    """The figure/ledger writer refuses NaN rather than writing non-standard JSON."""
    from paper_figs import style

    with pytest.raises(ValueError):
        style.write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()
