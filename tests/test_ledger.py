"""The ledger's own machinery: statuses, expected refutations, errors, and symbolic checks."""

import sympy as sp

from sims import ledger
from sims.ledger import Check, Claim, Outcome


def _claim(expected, holds=True, raises=False):
    def run(quick):
        if raises:
            raise RuntimeError("boom")
        return Outcome(holds, 1, 1, counterexample=None if holds else {"x": 1})

    return Claim("t.c", "test", "statement", expected, lambda: [Check("exact", run)])


def test_status_rules():
    assert ledger.run_claim(_claim("holds"), True)["status"] == "verified"
    assert ledger.run_claim(_claim("refuted", holds=False), True)["status"] == "refuted"
    failed = ledger.run_claim(_claim("holds", holds=False), True)
    assert failed["status"] == "failed" and not failed["passed"] and failed["counterexample"] == {"x": 1}
    assert ledger.run_claim(_claim("refuted", holds=True), True)["status"] == "failed"
    err = ledger.run_claim(_claim("holds", raises=True), True)
    assert err["status"] == "error" and "boom" in err["checks"][0]["detail"]


def test_symbolic_zero_accepts_zero_and_catches_a_planted_residual():
    x = sp.Symbol("x")
    ok = ledger.symbolic_zero({"a": sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1, "b": [0, x - x]}, "identities")
    assert ok.holds and ok.measured == {"a": "0", "b": "0"}
    bad = ledger.symbolic_zero(sp.Matrix([0, x / 50]), "planted")
    assert not bad.holds and "x/50" in bad.measured["residual"]


def test_non_finite_measured_values_are_null_with_a_reason():
    """NaN and ±inf in what a check measured become null (strict JSON), each with its reason."""
    import json

    import numpy as np

    def run(quick):
        return Outcome(False, {"trace_var": float("nan"), "mean": np.array([1.0, np.inf])}, -np.inf,
                       interval=[0.0, float("nan")], counterexample={"gap": float("-inf")})

    record = ledger.run_claim(Claim("t.n", "test", "statement", "refuted", lambda: [Check("exact", run)]), True)
    entry = record["checks"][0]
    json.dumps(record, allow_nan=False)  # raises on any NaN or infinity left
    assert entry["measured"] == {"trace_var": None, "mean": [1.0, None]} and entry["expected"] is None
    assert entry["interval"] == [0.0, None] and entry["counterexample"] == {"gap": None}
    assert entry["null_reasons"] == {
        "measured.trace_var": "not a number (NaN)",
        "measured.mean[1]": "infinite (+inf)",
        "expected": "infinite (-inf)",
        "interval[1]": "not a number (NaN)",
        "counterexample.gap": "infinite (-inf)",
    }
    finite = ledger.run_claim(_claim("holds"), True)["checks"][0]
    assert "null_reasons" not in finite  # the planted NaN above is what adds the reasons
