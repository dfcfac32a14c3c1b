"""`pglab npg`: strict JSON of a run, agreement with the library, and one-line errors with exit 2."""

import json

import numpy as np
import pytest

from sims import cli
from sims.npg import methods as npg
from sims.npg import problems as P

ARGS = ["npg", "--method", "n-harpg", "--problem", "softmax", "--steps", "300", "--seeds", "4",
        "--gamma0", "1.5"]


def _strict_loads(text):
    def no_constant(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=no_constant)


def test_json_report_matches_the_library(capsys):
    cli.main(ARGS + ["--json", "--eps", "0.1,0.03,0.01,0.003"])
    out = _strict_loads(capsys.readouterr().out)
    assert out["method"] == "n-harpg" and out["trajectories_per_step"] == 2
    assert out["paper_exponent"] == 2.0 and out["j_star"] == 0.8
    run = npg.run("n-harpg", P.get("softmax"), np.arange(4), 300, 1.5, out["record_every"])
    np.testing.assert_allclose(out["final_gap"]["median"], np.median(run.gaps[:, -1]), rtol=1e-12)
    hits = npg.hitting_trajectories(run.gaps, run.trajectories, [0.1, 0.03, 0.01, 0.003])
    med = np.median(hits, axis=0)
    assert out["complexity"]["median"] == [None if np.isinf(m) else float(m) for m in med]
    curve = out["curve"]
    assert curve["trajectories"][0] == 0 and curve["trajectories"][-1] == 600
    assert curve["median"][0] == pytest.approx(0.3)
    assert all(lo <= m <= hi for lo, m, hi in zip(curve["lo"], curve["median"], curve["hi"]))
    assert out["non_finite_gaps"] == 0


def test_tune_then_run(capsys):
    cli.main(["npg", "--method", "n-pg-igt", "--problem", "quadratic", "--steps", "100", "--seeds",
              "2", "--tune", "0.05,0.5", "--tune-seeds", "2", "--eps", "0.1,0.01", "--json"])
    out = _strict_loads(capsys.readouterr().out)
    tuning = npg.tune_gamma0("n-pg-igt", P.get("quadratic"), [0.05, 0.5], 100, 2, 0.01,
                             out["record_every"])
    assert out["tuning"] == tuning and out["gamma0"] == tuning["best"]


def test_table_output(capsys):
    cli.main(ARGS)
    text = capsys.readouterr().out
    assert "n-harpg" in text and "final J* − J" in text and "exponent" in text


@pytest.mark.parametrize("args, message", [
    (["--method", "npg"], "unknown method"),
    (["--problem", "lqr7"], "unknown problem"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--gamma0", "-1"], "--gamma0 must be positive"),
    (["--gamma0", "nan"], "--gamma0 must be positive"),
    (["--eps", "0.1,x"], "--eps must be"),
    (["--eps", "0.1,-2"], "--eps must be"),
    (["--tune", "0.1,1"], "--tune needs --eps"),
    (["--tune", "0.1,1", "--eps", "0.1", "--gamma0", "1"], "either --gamma0 or --tune"),
    (["--tune", "0.1,inf", "--eps", "0.1"], "--tune must be"),
    (["--rule", "last"], "unknown rule"),
    (["--record-every", "7"], "multiple of record_every"),
    (["--steps", "100000", "--seeds", "100000", "--record-every", "1"], "exceeds the limit"),
])
def test_bad_input_one_line_exit_2(capsys, args, message):
    base = dict(zip(ARGS[1::2], ARGS[2::2]))
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["npg"] + [x for kv in base.items() for x in kv]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
