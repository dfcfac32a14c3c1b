"""`pglab moments-gaussian` and `pglab moments-lqr`: JSON keys of `pglab moments`, values, and
one-line errors with exit code 2 for unstable, malformed or non-finite input."""

import json
import math

import numpy as np
import pytest

from tests.cli_run import run


def test_gaussian_json(capsys):
    code, out, _ = run(capsys, "moments-gaussian", "--reward", "0,1", "--mu", "0.5", "--sigma", "2",
                       "--estimator", "reinforce", "--baseline", "0", "--group", "1", "--mc", "5000", "--json")
    assert code == 0
    r = json.loads(out)
    assert set(r) == {"estimator", "group", "params", "pi", "true_gradient", "exact", "mc"}
    assert set(r["exact"]) == {"mean", "bias", "cov", "trace_var", "optimal_constant_baseline"}
    assert set(r["mc"]) == {"samples", "seed", "mean", "mean_se", "trace_var", "trace_var_se"}
    # r = a, θ = (μ, log σ): ∇J = (1, 0); one sample: Cov = E[a² u uᵀ] − ∇J∇Jᵀ, u = (z/σ, z² − 1)
    # E[a² z²/σ²] = (μ² + 3σ²)/σ², E[a²(z² − 1)²] = 2μ² + 10σ², off-diagonal E[a² z (z² − 1)/σ] = 4μ
    mu, s = 0.5, 2.0
    assert r["true_gradient"] == pytest.approx([1.0, 0.0], abs=1e-12)
    np.testing.assert_allclose(r["exact"]["cov"], [[(mu**2 + 3 * s**2) / s**2 - 1, 4 * mu],
                                                    [4 * mu, 2 * mu**2 + 10 * s**2]], atol=1e-12)


def test_lqr_json_and_values(capsys):
    code, out, _ = run(capsys, "moments-lqr", "--A", "0.5", "--B", "1", "--Q", "1", "--R", "0.5", "--K", "-0.25",
                       "--sigma", "0.5", "--horizon", "4", "--gamma", "0.9", "--noise-cov", "0.1", "--json")
    assert code == 0
    r = json.loads(out)
    assert {"estimator", "group", "params", "pi", "true_gradient", "exact"} <= set(r)
    # value computed by hand in tests/test_lqr.py's rational recursion
    s, j = 1.0, 0.0
    for t in range(4):
        j -= 0.9**t * ((1 + 0.5 * 0.0625) * s + 0.5 * 0.25)
        s = 0.0625 * s + 0.25 + 0.1
    assert r["exact"]["objective"] == pytest.approx(j, abs=1e-12)
    assert r["exact"]["riccati_gain"] is not None and math.isfinite(r["exact"]["riccati_gain"][0][0])


@pytest.mark.parametrize("args, message", [
    (["--A", "1.1", "--B", "0.5", "--K", "0", "--sigma", "0.5", "--horizon", "500", "--gamma", "1"], "not stable"),
    (["--A", "1", "--B", "1", "--K", "0", "--sigma", "0.5", "--horizon", "1000", "--gamma", "1"], "not stable"),
    (["--A", "0.9", "--B", "0.5", "--K", "0", "--sigma", "0", "--horizon", "20"], "σ must be"),
    (["--A", "0.9", "--B", "0.5", "--K", "0", "--sigma", "-0.1", "--horizon", "20"], "σ must be"),
    (["--A", "0.9", "--B", "0.5", "--K", "0", "--sigma", "0.5", "--horizon", "0"], "horizon"),
    (["--A", "0.9", "--B", "0.5", "--K", "0", "--sigma", "0.5", "--horizon", "5", "--gamma", "0"], "discount"),
    (["--A", "0.9", "--B", "0.5", "--K", "0", "--sigma", "0.5", "--horizon", "5", "--gamma", "1.01"], "discount"),
    (["--A", "nan", "--B", "0.5", "--K", "0", "--sigma", "0.5", "--horizon", "5"], "finite"),
    (["--A", "0.9", "--B", "0.5", "--K", "nan", "--sigma", "0.5", "--horizon", "5"], "finite"),
    (["--A", "0.9", "--B", "0.5", "--K", "0", "--sigma", "nan", "--horizon", "5"], "finite"),
    (["--A", "0.9", "--B", "0.5", "--K", "0", "--sigma", "0.5", "--horizon", "5", "--gamma", "nan"], "finite"),
    (["--A", "0.9", "--B", "0.5", "--K", "0,1", "--sigma", "0.5", "--horizon", "5"], "K must be"),
])
def test_lqr_bad_input(capsys, args, message):
    code, out, err = run(capsys, "moments-lqr", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("pglab: error:") and message in err, err


@pytest.mark.parametrize("args, message", [
    (["--mu", "nan", "--sigma", "1"], "finite"),
    (["--mu", "0", "--sigma", "0"], "σ must be"),
    (["--mu", "0", "--sigma", "-2"], "σ must be"),
    (["--mu", "0", "--sigma", "1", "--estimator", "grpo"], "--mc"),
    (["--mu", "0", "--sigma", "1", "--reward", "1,nan"], "finite"),
])
def test_gaussian_bad_input(capsys, args, message):
    base = {"--reward": "cubic", "--estimator": "rloo", "--group": "4"}
    extra = dict(zip(args[::2], args[1::2]))
    flat = [x for kv in {**base, **extra}.items() for x in kv]
    code, out, err = run(capsys, "moments-gaussian", *flat)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("pglab: error:") and message in err, err


def test_one_wording_for_a_missing_standard_error(capsys):
    """Too few samples for two batches: every calculator writes null and the same reason."""
    common = ("--mc", "200", "--json")
    reasons = []
    for args in (("moments", "--logits", "0.3,-0.2", "--rewards", "bernoulli:0.8,0.4", "--estimator", "rloo",
                  "--group", "4"),
                 ("moments-gaussian", "--reward", "cubic", "--mu", "0.3", "--sigma", "0.8", "--estimator",
                  "rloo", "--group", "4"),
                 ("moments-lqr", "--A", "0.9", "--B", "0.5", "--K", "-0.6", "--sigma", "0.5", "--horizon", "5")):
        code, out, _ = run(capsys, *args, *common)
        assert code == 0
        mc = json.loads(out)["mc"]
        assert mc["trace_var_se"] is None
        reasons.append(mc["trace_var_se_reason"])
    assert len(set(reasons)) == 1 and "2 batches" in reasons[0]
