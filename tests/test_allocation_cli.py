"""Hostile input through `python -m sims.allocation`: every row either succeeds with strict JSON
(no NaN or Infinity, nothing on stderr) or fails with exit code 2 and exactly one line on stderr
that names the limit, never a traceback or a hang.

Most rows call `sims.allocation.main` in process with captured streams (they fail before any
computation); a few run as real subprocesses, to cover the module's command line end to end."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sims import allocation as S
from tests.cli_run import strict_json

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "sims.allocation: error:"


def run_inprocess(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = S.main(argv)
        except SystemExit as exc:  # argparse's --help
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


BAD = [
    (["--budget", "0"], "[24, 48]"),
    (["--budget", "-8"], "[24, 48]"),
    (["--budget", "4"], "[24, 48]"),  # below Knapsack RL's 2 rollouts per prompt
    (["--budget", "23"], "[24, 48]"),
    (["--budget", "49"], "[24, 48]"),  # more groups of 4 than the 12 prompts
    (["--budget", "1000"], "[24, 48]"),
    (["--budget", str(10**9)], "[24, 48]"),
    (["--budget", "97", "--group", "8"], "[24, 96]"),
    (["--budget", "32.5"], "integer"),
    (["--budget", "abc"], "integer"),
    (["--budget", ""], "integer"),
    (["--group", "1"], "[2, 8]"),
    (["--group", "100", "--budget", "400"], "[2, 8]"),
    (["--seed", "-1"], "[0, 9,223,372,036,854,775,807]"),
    (["--seed", str(2**63)], "[0, 9,223,372,036,854,775,807]"),
    (["--draws", "1"], "[2, 256]"),
    (["--draws", str(10**6)], "[2, 256]"),
    (["--vas-lambda", "1.5"], "[0, 1]"),
    (["--vas-lambda", "-0.1"], "[0, 1]"),
    (["--vas-lambda", "nan"], "[0, 1]"),
    (["--vas-lambda", "inf"], "[0, 1]"),
    (["--vas-lambda", "half"], "number"),
    (["--kind", "medium"], "invalid choice"),
    (["--bogus"], "unrecognized"),
    (["--budget"], "expected one argument"),
]


@pytest.mark.parametrize("argv, fragment", BAD, ids=lambda x: " ".join(x)[:60] if isinstance(x, list) else "")
def test_bad_input_is_one_line_and_exit_2(argv, fragment):
    code, out, err = run_inprocess(argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith(PREFIX) and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
    assert out == ""


def test_budget_limits_follow_the_rules():
    assert S.budget_limits(4) == (24, 48) and S.budget_limits(8) == (24, 96) and S.budget_limits(2) == (24, 24)


def _env():
    env = dict(os.environ)
    cache = ROOT / ".jax-cache"
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache))
    return env


@pytest.mark.parametrize("argv", [["--budget", str(10**9)], ["--vas-lambda", "1.5"]])
def test_refusals_in_a_subprocess(argv):
    proc = subprocess.run([sys.executable, "-m", "sims.allocation", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=_env())
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(PREFIX)


def test_smallest_run_in_a_subprocess_is_strict_json():
    """The smallest budget at G = 2 (24 = 2 per prompt: Knapsack RL's floor and one group for
    every prompt), one ensemble, 2 draws: exit 0, nothing on stderr, strict JSON, finite gains."""
    argv = ["--budget", "24", "--group", "2", "--draws", "2", "--kind", "hard", "--seed", "3"]
    proc = subprocess.run([sys.executable, "-m", "sims.allocation", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, env=_env())
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    report = strict_json(proc.stdout)
    assert report["setup"]["budget"] == 24 and report["setup"]["seed"] == 3
    rows = report["ranking"]["hard"]
    assert {r["rule"] for r in rows} == set(S.RULES)
    assert all(isinstance(r["gain"], float) for r in rows)
    assert [r["gain"] for r in rows] == sorted((r["gain"] for r in rows), reverse=True)
