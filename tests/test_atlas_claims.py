"""Atlas ledger rows that can fail: each batch estimator pinned to an independent reference of its
released formula, with one planted one-line defect per estimator that its `atlas.batch.<name>` row
catches; hand-derived values that check the reference itself; the rows that replace self-referential
ones, with their planted defects."""

import dataclasses
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import betaln, xlogy

from sims import batch, ledger
from sims.claims import _references as REF
from sims.claims import atlas as C


def _centred(r):
    return r - jnp.mean(r, axis=-1, keepdims=True)


def _entropy_bits(answers):
    g = answers.shape[-1]
    counts = jnp.sum(answers[..., :, None] == answers[..., None, :], axis=-1)
    return -jnp.mean(jnp.log2(counts / g), axis=-1, keepdims=True)


def _z_group(r, eps):
    c = _centred(r)
    sd = jnp.sqrt(jnp.sum(c**2, axis=-1, keepdims=True) / (r.shape[-1] - 1))
    return jnp.where(jnp.any(c != 0, axis=-1, keepdims=True), c / (sd + eps), 0.0)


# One plausible one-line error per batch estimator (the comment names the line that changed).

def _grpo_batch_std_ddof0(rewards, weights, eps=1e-4, **_):
    return _centred(rewards) / (jnp.std(rewards) + eps)  # batch std with ddof 0, not 1


def _rpp_untokened(rewards, weights, eps=1e-8, **_):
    d = _centred(rewards)  # each response counted once: the token weights L_i dropped
    return (d - jnp.mean(d)) / jnp.sqrt(jnp.var(d, ddof=1) + eps)


def _gpg_ratio_inverted(rewards, weights, f_norm=1.0, **_):
    c = _centred(rewards)
    n_valid = jnp.sum(jnp.any(c != 0, axis=-1))
    return (n_valid / rewards.shape[0]) * c / f_norm  # N_v/P instead of P/N_v


def _gpg_verl_ratio_inverted(rewards, weights, f_norm=1.0, **_):
    alpha = jnp.maximum(jnp.sum(rewards != 0), 1) / rewards.size  # #non-zero/(PG) instead of PG/#non-zero
    return alpha * _centred(rewards) / f_norm


def _gdpo_ddof0(rewards, weights, eps=1e-4, **_):
    r = rewards if rewards.ndim == 3 else rewards[..., None]
    c = r - jnp.mean(r, axis=1, keepdims=True)
    z = jnp.where(jnp.any(c != 0, axis=1, keepdims=True), c / (jnp.std(r, axis=1, keepdims=True) + eps), 0.0)  # ddof 0
    s = jnp.sum(z, axis=-1)
    return (s - jnp.mean(s)) / (jnp.std(s, ddof=1) + eps)


def _gdpo_verl_untokened(rewards, weights, eps=1e-6, whiten_eps=1e-8, **_):
    r = rewards if rewards.ndim == 3 else rewards[..., None]
    c = r - jnp.mean(r, axis=1, keepdims=True)
    z = jnp.where(jnp.any(c != 0, axis=1, keepdims=True), c / (jnp.std(r, axis=1, ddof=1, keepdims=True) + eps), 0.0)
    s = jnp.sum(z, axis=-1)
    return (s - jnp.mean(s)) / jnp.sqrt(jnp.var(s, ddof=1) + whiten_eps)  # each response once: token weights dropped


def _bnpo_ddof0(rewards, weights, max_weight=1e6, **_):
    p = jnp.mean(rewards, axis=-1, keepdims=True)
    q = p.shape[0]
    m = jnp.mean(p) if q > 1 else 0.0
    v = jnp.var(p) if q > 1 else 1.0  # population variance of the pass rates, not ddof 1
    c = m * (1 - m) / jnp.where(v > 0, v, 1.0) - 1
    a, b = jnp.maximum(1.0, 1 + c * m / 3), jnp.maximum(1.0, 1 + c * (1 - m) / 3)
    inv_f = jnp.minimum(jnp.exp(betaln(a, b) - xlogy(a - 1, p) - xlogy(b - 1, 1 - p)), max_weight)
    return jnp.where(v > 0, inv_f * _centred(rewards), 0.0)


def _dgpo_easier_first(rewards, weights, eps=1e-4, temperature=2.0, **_):
    c = _centred(rewards)
    valid = jnp.any(c != 0, axis=-1, keepdims=True)
    n_valid = jnp.sum(valid)
    e = jnp.where(valid, jnp.exp(jnp.mean(rewards, axis=-1, keepdims=True) / temperature), 0.0)  # +p̂/T, not −p̂/T
    lam = jnp.where(valid, n_valid * e / jnp.maximum(jnp.sum(e), 1e-300), 1.0)
    ratio = jnp.where(n_valid > 0, rewards.shape[0] / jnp.maximum(n_valid, 1), 1.0)
    g = rewards.shape[-1]
    return lam * ratio * g * c / (jnp.sum(jnp.abs(c), axis=-1, keepdims=True) + eps)


def _copo_unmasked(rewards, weights, eps=1e-6, **_):
    w = jax.nn.sigmoid(5.0 * (_entropy_bits(weights) - 1.0))  # the 1[R_i ≠ 0] mask dropped ("only soft")
    gq = jnp.mean(rewards, axis=-1, keepdims=True)
    if rewards.shape[0] > 1:
        glob = (gq - jnp.mean(gq)) / (jnp.std(gq, ddof=1) + eps)
    else:
        glob = jnp.zeros_like(gq)
    return w * _z_group(rewards, eps) + (1 - w) * glob


def _copo_soft_nats(rewards, weights, eps=1e-6, k_b=1.0, b=0.5, **_):
    g = rewards.shape[-1]
    h = _entropy_bits(weights) * math.log(2.0)  # the answers' entropy in nats, not bits
    w = jax.nn.sigmoid(k_b * (h - b))
    gq = jnp.mean(rewards, axis=-1, keepdims=True) * (1 - (1 - 1 / g) / math.log2(g) * h)
    glob = (gq - jnp.mean(gq)) / (jnp.std(gq, ddof=1) + eps) if rewards.shape[0] > 1 else jnp.zeros_like(gq)
    return w * _z_group(rewards, eps) + (1 - w) * glob


DEFECTS = {
    "grpo_batch_std": _grpo_batch_std_ddof0,
    "reinforce_pp_baseline": _rpp_untokened,
    "gpg": _gpg_ratio_inverted,
    "gpg_verl": _gpg_verl_ratio_inverted,
    "gdpo": _gdpo_ddof0,
    "gdpo_verl": _gdpo_verl_untokened,
    "bnpo_batch": _bnpo_ddof0,
    "dgpo": _dgpo_easier_first,
    "copo": _copo_unmasked,
    "copo_soft": _copo_soft_nats,
}


def _plant(monkeypatch, name, fn):
    monkeypatch.setitem(batch.REGISTRY, name, dataclasses.replace(batch.get(name), advantages=fn))


@pytest.mark.parametrize("name", list(batch.REGISTRY))
def test_unplanted_batch_pin_passes(name):
    out = C.batch_pin_check(name)
    assert out.holds, out


@pytest.mark.parametrize("name", list(batch.REGISTRY))
def test_planted_defect_fails_the_batch_pin(name, monkeypatch):
    assert name in DEFECTS, f"{name!r} needs a planted defect here"
    _plant(monkeypatch, name, DEFECTS[name])
    out = C.batch_pin_check(name)
    assert not out.holds, out


def test_every_batch_estimator_has_an_independent_reference():
    assert set(batch.REGISTRY) <= set(REF.REFERENCES)


def test_a_planted_defect_fails_the_ledger_row(monkeypatch):
    _plant(monkeypatch, "grpo_batch_std", DEFECTS["grpo_batch_std"])
    rec = ledger.run_claim(ledger.REGISTRY["atlas.batch.grpo_batch_std"], quick=True)
    assert rec["status"] == "failed" and not rec["passed"]
    assert rec["checks"][0]["status"] == "refuted" and rec["counterexample"]["batch"]


# The reference itself, against values derived by hand.

def test_reference_gpg_forms_by_hand():
    r = C.PIN_BATCHES["degenerate_groups"]  # P = 4, two mixed groups, 7 non-zero rewards of 16
    h, q = Fraction(1, 2), Fraction(1, 4)
    assert REF.gpg(r) == [[0] * 4, [0] * 4, [2 * h, -2 * h, 2 * h, -2 * h], [-2 * q, -2 * q, -2 * q, 2 * 3 * q]]
    a = Fraction(16, 7)
    assert REF.gpg_verl(r) == [[0] * 4, [0] * 4, [a * h, -a * h, a * h, -a * h], [-a * q, -a * q, -a * q, 3 * a * q]]
    assert REF.gpg([[1, 1], [0, 0]]) == [[0, 0], [0, 0]]


def test_reference_dgpo_grpo_batch_and_bnpo_by_hand():
    # Two valid groups with equal pass rates (λ = 1), P/N_v = 3/2: ±(3/2)·4·(1/2)/(2 + 1e-4).
    got = REF.dgpo([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]])
    v = float(Fraction(3, 2) * 2 / (2 + Fraction(1, 10_000)))
    assert np.allclose(got, [[v, -v, v, -v], [-v, v, -v, v], [0, 0, 0, 0]], rtol=0, atol=1e-15)
    # Batch std of (1, 0, 1, 1) with ddof 1 is 1/2: ±(1/2)/(1/2 + 1e-4) = ±5000/5001.
    assert np.allclose(REF.grpo_batch_std([[1, 0], [1, 1]]), [[5000 / 5001, -5000 / 5001], [0, 0]], rtol=0, atol=1e-15)
    # One prompt: m = 0, v = 1, so α = β = 1 and A = R − p̂.
    assert np.allclose(REF.bnpo_batch([[1, 0, 1, 1, 0]]), [[0.4, -0.6, 0.4, 0.4, -0.6]], rtol=0, atol=1e-15)
    # Every prompt at the same pass rate: v = 0, the lab's limit 0.
    assert REF.bnpo_batch(C.PIN_BATCHES["same_rate"]) == [[0.0] * 4, [0.0] * 4]


def test_reference_reinforce_pp_and_copo_by_hand():
    # D = (1/2, −1/2) on 1 and 3 tokens: μ = −1/4, token variance (ddof 1) 1/4, so (3/2, −1/2) at eps 0.
    assert np.allclose(REF.reinforce_pp_baseline([[1, 0]], [[1, 3]], eps=0.0), [[1.5, -0.5]], rtol=0, atol=1e-15)
    # Group 1 all pass, one answer (H = 0); group 2 (1, 0) with two answers (H = 1). At eps 0 the global
    # z-scores of p̂ = (1, 1/2) are ±√2/2, group 2's local ones ±√2/2; w = σ(−5) on group 1, σ(0)·1[R ≠ 0]
    # on group 2.
    got = REF.copo([[1, 1], [1, 0]], [[0, 0], [0, 1]], eps=0.0)
    s = math.sqrt(2) / 2
    a = (1 - 1 / (1 + math.exp(5))) * s
    assert np.allclose(got, [[a, a], [0.0, -s]], rtol=0, atol=1e-15)


# The rows that replace self-referential ones, each with the planted defect it catches.

def _bnpo_unclamped(rewards, weights, max_weight=1e6, **_):
    p = jnp.mean(rewards, axis=-1, keepdims=True)
    q = p.shape[0]
    m = jnp.mean(p) if q > 1 else 0.0
    v = jnp.sum((p - jnp.mean(p)) ** 2) / (q - 1) if q > 1 else 1.0
    c = m * (1 - m) / v - 1
    a, b = 1 + c * m / 3, 1 + c * (1 - m) / 3  # the max(1, ·) clamp dropped
    inv_f = jnp.minimum(jnp.exp(betaln(a, b) - xlogy(a - 1, p) - xlogy(b - 1, 1 - p)), max_weight)
    return inv_f * _centred(rewards)


def _copo_local_only(rewards, weights, eps=1e-6, **_):
    w = jnp.where(rewards != 0, jax.nn.sigmoid(5.0 * (_entropy_bits(weights) - 1.0)), 0.0)
    return w * _z_group(rewards, eps)  # the global term (1 − w)·A^glob dropped


def _run(claim_id):
    return ledger.run_claim(ledger.REGISTRY[claim_id], quick=True)


@pytest.mark.parametrize("claim_id, registry, name, defect", [
    ("atlas.bnpo_batch_reinforce_limit", "batch", "bnpo_batch", _bnpo_unclamped),
    ("atlas.copo_degenerate_signal", "batch", "copo", _copo_local_only),
    ("atlas.real_not_zero_sum", "estimators", "real", None),
])
def test_replaced_rows_pass_and_catch_their_planted_defect(claim_id, registry, name, defect, monkeypatch):
    assert _run(claim_id)["passed"]
    if registry == "batch":
        _plant(monkeypatch, name, defect)
    else:
        from sims import estimators as E

        est = E.get(name)
        zero_sum = lambda r, w, **p: _centred(est.advantages(r, w, **p))  # noqa: E731 - REAL made zero-sum
        monkeypatch.setitem(E.REGISTRY, name, dataclasses.replace(est, advantages=zero_sum))
    rec = _run(claim_id)
    assert rec["status"] == "failed", rec


def test_real_scale_reference_by_hand():
    # G = 2: only k = 1 is mixed, A = (+2, −2) at τ = 1/2, u = 1, so c = 2p(1 − p)/(p(1 − p)) = 2.
    for p in (Fraction(1, 10), Fraction(1, 2), Fraction(7, 9)):
        assert C.real_scale_reference(p, 2) == 2 == C.real_scale_reference(p, 2, centred=True)
    assert C.real_scale_reference(Fraction(1, 5), 8) != C.real_scale_reference(Fraction(1, 5), 8, centred=True)


def test_removed_rows_are_gone():
    for cid in ("atlas.bnpo_reinforce", "atlas.empg_identity", "atlas.gdpo_distinct_groups"):
        assert cid not in ledger.REGISTRY
