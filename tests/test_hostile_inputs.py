"""Hostile input through the real command line: every row either succeeds with strict JSON
(no NaN or Infinity, nothing on stderr) and the right values, or fails with exit code 2 and
exactly one line on stderr, never a traceback, a MemoryError or a hang.

Most rows run in process (`sims.cli.main` with captured streams); a few run as real
subprocesses, to cover the console entry point end to end."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from sims import cli
from tests.cli_run import strict_json

ROOT = Path(__file__).resolve().parent.parent
M = ["moments", "--json"]
BERN = ["--rewards", "bernoulli:0.5,0.5", "--logits", "0,0"]
TOY = ["copg", "--rewards", "2.5,2,1", "--beta", "0.5", "--mu1", "0.1,0.2,0.7", "--mu2", "0.05,0.05,0.9"]
BIG = str(2**63)


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
    (M + ["--logits", "0,0,0", "--rewards", "categorical:0/0.5;1/0.5|0.2/0.5;0.7/0.5|0.3/1", "--estimator", "rloo",
          "--group", "2048", "--mc", "300"], _exact_too_large_with_mc),
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


# ---------------------------------------------------------------- the newer commands
# One row per class of hostile input to npg, train, audit, moments-gaussian, moments-lqr,
# verify and figures: each is refused up front (exit 2, one line naming the limit) before any
# numerics run, so the rows are cheap.

NPG = ["npg", "--method", "pg", "--problem", "softmax", "--steps", "20", "--seeds", "2", "--json"]
TRAIN = ["train", "--json", "--steps", "2", "--group", "2", "--prompts", "2", "--width", "16", "--layers", "1",
         "--heads", "1"]
GAUSS = ["moments-gaussian", "--json", "--reward", "cubic", "--mu", "0.3", "--sigma", "0.8", "--estimator", "rloo",
         "--group", "4"]
LQR = ["moments-lqr", "--json", "--A", "0.9", "--B", "0.5", "--K", "-0.6", "--sigma", "0.5", "--gamma", "0.9"]
LONG_NAME = "x" * 300

NEWER_BAD = [  # (argv, fragment); "{tmp}" is replaced by a fresh folder, "{file}" by a file in it
    (M + ["--logits", "0,,0,0", "--rewards", "bernoulli:0.5,0.5,0.5", "--estimator", "rloo", "--group", "2"],
     "empty field 2"),
    (M + ["--logits", "0,0", "--rewards", "bernoulli:0.5,,0.5", "--estimator", "rloo", "--group", "2"], "empty field"),
    (M + ["--logits", "0,0", "--rewards", "categorical:0/1;|1/1", "--estimator", "rloo", "--group", "2"],
     "empty trailing field"),
    (NPG + ["--seed", BIG], "2^63 - 1"),
    (NPG + ["--seed", str(2**63 - 1)], "runs past 2^63 - 1"),
    (NPG[:-3] + ["--seeds", str(10**9), "--json"], "--seeds must be at most 100,000"),
    (NPG + ["--tune", "0.1,1", "--eps", "0.1", "--tune-seeds", str(10**9)], "tuning runs, over the limit"),
    (NPG + ["--tune", "0.1,1", "--eps", "0.1", "--tune-seeds", BIG], "tuning runs, over the limit"),
    (NPG + ["--eps", "0.1,,0.01"], "empty field 2"),
    (NPG + ["--eps", ",0.1"], "empty leading field"),
    (NPG + ["--tune", "0.1,", "--eps", "0.1"], "empty trailing field"),
    (NPG + ["--eps", ",".join(["0.1"] * 2000)], "over the limit of 1,000"),
    (NPG + ["--record-every", str(10**12)], "--record-every must be at most 20"),
    (TRAIN + ["--seed", BIG], "--seed must be an integer in [0, 9,223,372,036,854,767,888]"),
    (TRAIN + ["--seed", "-1"], "--seed must be an integer"),
    (TRAIN + ["--steps", str(10**12)], "--steps must be at most 100,000"),
    (TRAIN + ["--group", str(10**9)], "--group must be at most 4,096"),
    (TRAIN + ["--layers", str(10**6)], "--layers must be at most 64"),
    (TRAIN + ["--width", "4096", "--layers", "64", "--heads", "4"], "over the limit of 50,000,000"),
    (TRAIN + ["--copg-beta", "0.5", "--copg-pairs", str(10**12)], "--copg-pairs must be at most 10,000,000"),
    (TRAIN + ["--copg-beta", "1e308"], "--copg-beta must lie in"),
    (TRAIN + ["--eta-min", "nan"], "--eta-min must be a finite number"),
    (TRAIN + ["--log", ""], "--log: empty path"),
    (TRAIN + ["--log", "{tmp}"], "is a folder"),
    (TRAIN + ["--log", "{tmp}/no/such/m.jsonl"], "does not exist"),
    (TRAIN + ["--log", "{tmp}/" + LONG_NAME], "over the limit of 255"),
    (TRAIN + ["--log", "{file}/m.jsonl"], "does not exist"),
    (TRAIN + ["--checkpoint-dir", ""], "--checkpoint-dir: empty path"),
    (TRAIN + ["--checkpoint-dir", "{file}"], "exists and is not a folder"),
    (TRAIN + ["--checkpoint-dir", "{tmp}/" + LONG_NAME], "over the limit of 255"),
    (GAUSS + ["--mc", str(10**12)], "--mc must be at most 1,000,000,000"),
    (GAUSS + ["--mc", "1000", "--seed", BIG], "2^63 - 1"),
    (GAUSS + ["--seed", "-1"], "add --mc"),
    (GAUSS[:-1] + [str(10**9), "--mc", "1000"], "--group must be at most"),
    (GAUSS[:3] + ["0,,1"] + GAUSS[4:], "empty field 2"),
    (LQR + ["--horizon", str(10**5)], "--horizon must be at most 10,000"),
    (LQR + ["--horizon", "10", "--mc", str(10**12)], "--mc must be at most"),
    (LQR + ["--horizon", "1000", "--mc", str(10**8)], "simulated steps"),
    (LQR + ["--horizon", "10", "--mc", "100", "--seed", BIG], "2^63 - 1"),
    (LQR + ["--horizon", "10", "--seed", "3"], "add --mc"),
    (LQR[:3] + ["0.9,"] + LQR[4:] + ["--horizon", "10"], "empty trailing field"),
    (LQR[:3] + ["0.9;"] + LQR[4:] + ["--horizon", "10"], "empty trailing field"),
    (GAUSS + ["--mc", str(10**9)], "over the limit of 200,000,000 draws"),
    (LQR[:7] + ["1e300"] + LQR[8:] + ["--horizon", "10"], "limit of 1e+100"),
    (["verify", "--only", "*" * 10000], "at most 200 characters"),
    (["audit", "x:y", "--group", str(10**9)], "--group must be an integer in [2, 1,024]"),
    (["audit", "x:y", "--group", BIG], "--group must be an integer in [2, 1,024]"),
    (["audit", "x:y", "--timeout", "nan"], "--timeout must be"),
    (["verify", "--only", "copg.optimum", "--out", ""], "--out: empty path"),
    (["verify", "--only", "copg.optimum", "--out", "{tmp}/" + LONG_NAME], "over the limit of 255"),
    (["figures", "--only", "copg_toy", "--out", ""], "--out: empty path"),
    (["figures", "--only", "copg_toy", "--out", "{file}"], "not a folder"),
]


def _fill(argv, tmp_path):
    (tmp_path / "a_file").write_text("x")
    return [a.replace("{tmp}", str(tmp_path)).replace("{file}", str(tmp_path / "a_file")) for a in argv]


@pytest.mark.parametrize("argv, fragment", NEWER_BAD, ids=lambda x: " ".join(x)[:70] if isinstance(x, list) else "")
def test_newer_commands_refuse_hostile_input_with_one_line(argv, fragment, tmp_path):
    code, out, err = run_inprocess(_fill(argv, tmp_path))
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("pglab: error:") and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing created


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
@pytest.mark.parametrize("argv, fragment", [
    (TRAIN + ["--log", "{ro}/m.jsonl"], "not writable"),
    (TRAIN + ["--checkpoint-dir", "{ro}/ck"], "cannot create the folder"),
    (["verify", "--only", "copg.optimum", "--out", "{ro}"], "not writable"),
])
def test_read_only_folders_are_refused_with_one_line(argv, fragment, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, out, err = run_inprocess([a.replace("{ro}", str(ro)) for a in argv])
    finally:
        ro.chmod(0o755)
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert list(ro.iterdir()) == []


def test_moments_with_mc_keeps_the_reward_alphabet_exact_route():
    """G = 64 on four Bernoulli arms: the multiset route is far beyond its limit, the
    reward-alphabet route is small; --mc must not drop the exact moments."""
    base = M + ["--logits", "0.3,-0.2,0.1,0", "--rewards", "bernoulli:0.8,0.4,0.1,0.5", "--estimator", "rloo",
                "--group", "64"]
    code, out, err = run_inprocess(base)
    assert code == 0, err
    alone = strict_json(out)["exact"]
    code, out, err = run_inprocess(base + ["--mc", "1000"])
    assert code == 0, err
    report = strict_json(out)
    assert report["exact"] is not None and report["exact"]["route"] == "reward-alphabet"
    assert report["exact"]["mean"] == alone["mean"] and report["mc"]["samples"] == 1000


AUDIT_USER = '''
import sys
import time

import jax.numpy as jnp
import numpy as np

print("importing prints")


def prints(rewards, weights):
    print("a print inside the function")
    sys.stderr.write("and two lines\\non stderr\\n")
    return rewards - jnp.mean(rewards)


def exits(rewards, weights):
    sys.exit(3)


def exits_hard(rewards, weights):
    import os

    os._exit(0)


def interrupts(rewards, weights):
    raise KeyboardInterrupt


def python_if(rewards, weights):
    if jnp.std(rewards) > 0:
        return (rewards - jnp.mean(rewards)) / jnp.std(rewards)
    return rewards * 0


def uses_numpy(rewards, weights):
    r = np.asarray(rewards)
    return r - r.mean()


def python_floats(rewards, weights):
    return [float(x) - 0.5 for x in rewards]


def sleeps(rewards, weights):
    time.sleep(600)
    return rewards
'''


@pytest.fixture
def audit_module(tmp_path, monkeypatch):
    (tmp_path / "hostile_audit_module.py").write_text(AUDIT_USER)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "hostile_audit_module"
    sys.modules.pop("hostile_audit_module", None)


@pytest.mark.parametrize("function, extra, fragment", [
    ("exits", [], "called sys.exit(3)"),
    ("exits_hard", [], "called os._exit(0)"),
    ("interrupts", [], "raised KeyboardInterrupt"),
    ("python_if", [], "jnp.where"),
    ("uses_numpy", [], "write it with jax.numpy"),
    ("python_floats", [], "float(x)"),
    ("sleeps", ["--timeout", "2"], "--timeout 2 s"),
])
def test_audit_survives_hostile_user_functions(audit_module, function, extra, fragment):
    code, out, err = run_inprocess(["audit", f"{audit_module}:{function}", "--group", "2", "--json", *extra])
    assert code == 2, (code, err)
    assert len(err.strip().splitlines()) == 1 and fragment in err and out == "", err


def test_audit_of_a_printing_function_keeps_the_json_clean(audit_module):
    code, out, err = run_inprocess(["audit", f"{audit_module}:prints", "--group", "2", "--json"])
    assert code == 0 and err == "", err
    card = strict_json(out)  # R − mean(R) keeps the member's own reward: E[ĝ] = (G−1)/G·∇J
    assert card["verdict"] == "direction-unbiased" and card["panel"][0]["scale_c"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ck") / "run"
    code, out, err = run_inprocess(TRAIN + ["--checkpoint-dir", str(folder)])
    assert code == 0, err
    return folder


@pytest.mark.parametrize("change, fragment", [
    (["--width", "32"], "another configuration (width=16 there, 32 here)"),
    (["--steps", "1"], "at step 2, beyond --steps 1"),
])
def test_resuming_a_checkpoint_of_another_run_is_refused(checkpoint, change, fragment):
    argv = TRAIN + ["--checkpoint-dir", str(checkpoint)]
    for i in range(0, len(change), 2):
        argv[argv.index(change[i]) + 1] = change[i + 1]
    code, out, err = run_inprocess(argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err and out == "", err


def test_figures_keep_the_users_files_and_read_a_list_manifest(tmp_path):
    """A manifest that is a list is rewritten; hidden user files survive, and only the
    pipeline's own stale temporaries are removed."""
    for name in (".settings.json", ".notes.md", ".keep.png", "visible.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "manifest.json").write_text("[1, 2, 3]")
    (tmp_path / ".manifest.json.ab12cd34.tmp").write_text("stale")
    code, out, err = run_inprocess(["figures", "--quick", "--jobs", "1", "--only", "baseline_variance",
                                    "--out", str(tmp_path)])
    assert code == 0, err
    assert all((tmp_path / n).read_text() == "{}" for n in (".settings.json", ".notes.md", ".keep.png",
                                                             "visible.json"))
    assert not (tmp_path / ".manifest.json.ab12cd34.tmp").exists()
    assert "baseline_variance" in strict_json((tmp_path / "manifest.json").read_text())
    (tmp_path / "baseline_variance.png").unlink()  # an output path that is now a folder
    (tmp_path / "baseline_variance.png").mkdir()
    code, out, err = run_inprocess(["figures", "--quick", "--jobs", "1", "--only", "baseline_variance",
                                    "--out", str(tmp_path)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot write" in err, err


def test_figures_refuse_a_manifest_that_is_a_folder(tmp_path):
    (tmp_path / "manifest.json").mkdir()
    code, out, err = run_inprocess(["figures", "--quick", "--jobs", "1", "--only", "baseline_variance",
                                    "--out", str(tmp_path)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is a folder" in err, err
