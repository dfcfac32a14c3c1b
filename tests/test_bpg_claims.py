"""The bpg.* ledger checks: each passes on the lab's posterior and on a NumPy posterior written out
here, and catches the planted defects below; the Gaussian-policy helpers are pinned to
hand-derived values."""

import numpy as np
import pytest

from sims.claims import bpg as C


def numpy_posterior(defect=None):
    """The BPG posterior in plain NumPy (explicit inverses are fine in a reference), optionally
    with one planted defect."""

    def post(s, r, g, model, noise):
        s, r = np.asarray(s, float), np.asarray(r, float)
        m, n = s.shape
        g = s.T @ s / m if g is None else np.asarray(g, float)
        gi = np.eye(n) if defect == "kernel_without_G" else np.linalg.inv(g)
        if defect == "noise_sqrt":
            noise = np.sqrt(noise)
        gram = s @ gi @ s.T
        if model == 1:
            c = np.linalg.inv((1 + gram) ** 2 + noise * np.eye(m))
            z = np.einsum("ij,jk,ik->i", s, gi, s) + (0 if defect == "z_without_one" else 1)
            z0 = n if defect == "z0_minus_one" else 1 + n
            return (s * r[:, None]).T @ c @ z, (z0 - z @ c @ z) * np.eye(n)
        c = np.linalg.inv(gram + noise * np.eye(m))
        mean = s.T @ r / m if defect == "no_shrink" else s.T @ c @ r
        return mean, g - s.T @ c @ s

    return post


def test_gaussian_policy_helpers_match_hand_derivations():
    assert [C.normal_moment(k) for k in range(7)] == [1, 0, 1, 0, 3, 0, 15]
    # J(μ, s) for R = a, a², a³ is μ, μ² + s², μ³ + 3μs²; ∇ w.r.t. (μ, log s) at (0, 1):
    np.testing.assert_array_equal(C.true_gradient((0, 1), "mean_logstd"), [1, 0])
    np.testing.assert_array_equal(C.true_gradient((0, 0, 1), "mean_logstd"), [0, 2])
    np.testing.assert_array_equal(C.true_gradient((0, 0, 0, 1), "mean_logstd"), [3, 0])
    np.testing.assert_array_equal(C.true_gradient((0, 1, 1), "mean"), [1])
    np.testing.assert_array_equal(C.scores([2.0], "mean_logstd"), [[2.0, 3.0]])


def test_checks_hold_on_correct_posteriors():
    """On the reference posterior written here; `pglab verify` (tests/test_pipeline.py) runs
    every check on the lab's own posterior."""
    kw = {"posterior_fn": numpy_posterior()}
    assert C.verify_reference().holds and C.verify_reference(**kw).holds
    assert C.verify_exact_in_span(True, **kw).holds
    assert C.verify_push_through(True, **kw).holds
    assert C.verify_plugin_shrinkage(True, **kw).holds


@pytest.mark.parametrize("defect, checks", [
    ("z0_minus_one", ["reference"]),
    ("z_without_one", ["reference", "span"]),
    ("kernel_without_G", ["span", "push"]),
    ("noise_sqrt", ["reference", "push"]),
    ("no_shrink", ["reference", "plugin"]),
])
def test_checks_catch_planted_defects(defect, checks):
    fn = numpy_posterior(defect)
    run = {"reference": lambda: C.verify_reference(fn),
           "span": lambda: C.verify_exact_in_span(True, fn),
           "push": lambda: C.verify_push_through(True, fn),
           "plugin": lambda: C.verify_plugin_shrinkage(True, fn)}
    for name in checks:
        out = run[name]()
        assert not out.holds, (defect, name, out.measured)


def test_outside_span_counterexample_is_the_hand_value():
    out = C.verify_outside_span(True)
    assert not out.holds  # the claim is expected to be refuted
    # U y/(U Uᵀ + σ²) = (Σa² + Σa³)/(Σa² + σ²) = (21/4 + 57/8)/(21/4 + σ²) → 33/14 as σ² → 0
    assert out.counterexample["mean"] == pytest.approx(12.375 / (5.25 + C.OUTSIDE_NOISE), rel=1e-9)
    assert out.counterexample["true_gradient"] == 1.0


def test_reparameterisation_checks():
    assert C.verify_reparameterisation(True, "means").holds
    assert C.verify_reparameterisation(True, "model2_cov").holds
    out = C.verify_reparameterisation(True, "model1_cov")
    assert not out.holds and out.counterexample["model"] == 1
    # planted: a Model 2 whose kernel ignores G is not covariant
    assert not C.verify_reparameterisation(True, "means", numpy_posterior("kernel_without_G")).holds
    assert C.verify_reparameterisation(True, "model2_cov", numpy_posterior()).holds
