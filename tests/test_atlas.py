"""The estimator atlas: new formulas against plain references, the two-armed route, generated ledger
rows with planted defects, batch estimators, and the generated docs/estimators.md."""

import itertools
import math
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from bandits import rewards as R
from bandits.errors import InputError
from sims import batch
from sims import estimators as E
from sims.claims import atlas as C
from sims.engines import binary, exact

groups = st.integers(2, 7).flatmap(
    lambda g: st.tuples(st.lists(st.sampled_from([0.0, 1.0, 0.35, 0.5]) | st.floats(0, 1, allow_subnormal=False),
                                 min_size=g, max_size=g),
                        st.lists(st.floats(0.1, 3.0), min_size=g, max_size=g)))


def adv(name, r, w, **p):
    e = E.get(name)
    return np.asarray(e.advantages(jnp.asarray(r, jnp.float64), jnp.asarray(w, jnp.float64), **(e.params | p)))


@settings(max_examples=12, deadline=None)
@given(groups)
def test_new_formulas_match_plain_references(rw):
    r, w = np.asarray(rw[0]), np.asarray(rw[1])
    g = len(r)
    m, sd1 = r.mean(), r.std(ddof=1)
    grpo = (r - m) / (sd1 + 1e-6)
    np.testing.assert_allclose(adv("opo", r, w), r - (w @ r) / w.sum(), atol=1e-12)
    top = np.sort(r)[::-1]
    want = np.where((r == top[0]) & (np.sum(r == top[0]) == 1), (top[0] - top[1]) / (sd1 + 1e-6), 0.0)
    np.testing.assert_allclose(adv("grpo_passk", r, w), want, atol=1e-9)
    f = sps.beta(2.0, 1.5).pdf(m)
    np.testing.assert_allclose(adv("bnpo", r, w, alpha=2.0, beta=1.5), (r - m) * min(1 / f, 1e6) if f > 0 else
                               (r - m) * 1e6, atol=1e-9, rtol=1e-9)
    mad = np.abs(r - m).sum()
    np.testing.assert_allclose(adv("dgae", r, w), g * (r - m) / (mad + 1e-4), atol=1e-9)
    yp, yn = (r == 1).astype(float), (r == 0).astype(float)  # the release's labels
    kp, kn = yp.sum(), yn.sum()
    real = (g / 0.5) * (yp / (1 + kp) - yn / (1 + kn)) if kp > 0 and kn > 0 else np.zeros(g)
    np.testing.assert_allclose(adv("real", r, w), real, atol=1e-12)
    prod = (g / 0.5) * (yp * kn - yn * kp) / (1 + kp * kn) if kp > 0 and kn > 0 else np.zeros(g)
    np.testing.assert_allclose(adv("real_product", r, w), prod, atol=1e-12)
    pos, neg = r > 0.5, r <= 0.5
    length_adv = (not neg.any()) or (pos.any() and w[pos].max() > w[neg].mean())
    np.testing.assert_allclose(adv("adora", r, w), (1.0 if length_adv else 0.1) * grpo, atol=1e-9)
    _, counts = np.unique(w, return_counts=True)
    h = -np.sum(counts / g * np.log2(counts / g))
    np.testing.assert_allclose(adv("copo_local", r, w), np.where(r != 0, grpo / (1 + np.exp(-5 * (h - 1))), 0.0),
                               atol=1e-9)
    np.testing.assert_allclose(adv("copo_local_soft", r, w), grpo / (1 + np.exp(-(h - 0.5))), atol=1e-9)
    trl_grpo = (r - m) / (sd1 + 1e-4)
    np.testing.assert_allclose(adv("gtpo", r, w), np.where(w > 0.7, 0.0, trl_grpo - 0.1 * w), atol=1e-9)


def test_real_effective_advantage_is_the_gradient_of_its_loss():
    """Finite differences of L = log(1 + Σ_neg e^{s/τ}) + log(1 + Σ_pos e^{−s/τ}) at s = 0."""
    tau, y = 0.5, np.array([1, 0, 0, 1, 0, 0, 0, 1.0])
    loss = lambda s: np.log1p(np.sum(np.exp(s[y == 0] / tau))) + np.log1p(np.sum(np.exp(-s[y == 1] / tau)))  # noqa: E731
    h = 1e-6
    grad = np.array([(loss(h * np.eye(8)[i]) - loss(-h * np.eye(8)[i])) / (2 * h) for i in range(8)])
    np.testing.assert_allclose(adv("real", y, np.ones(8)), -8 * grad, atol=1e-7)


def _real_losses(s, r, tau=0.5):
    """The released losses at scores s: positives R == 1, negatives R == 0, others in neither sum."""
    pos, neg = r == 1, r == 0
    lse_n, lse_p = np.log(np.sum(np.exp(s[neg] / tau))), np.log(np.sum(np.exp(-s[pos] / tau)))
    return (np.log1p(np.exp(lse_n)) + np.log1p(np.exp(lse_p)), np.log1p(np.exp(lse_n + lse_p)))


def test_real_labels_follow_the_released_code_on_non_binary_rewards():
    """A member with R ∉ {0, 1} is in neither label set: its advantage is 0 and it is not counted.
    Finite differences of both released losses at s = 0, with such members in the group."""
    r = np.array([1.0, 0, 0.35, 1, 0, 0, 0.5, 1])
    h = 1e-6
    for k, name in enumerate(("real", "real_product")):
        grad = np.array([(_real_losses(h * np.eye(8)[i], r)[k] - _real_losses(-h * np.eye(8)[i], r)[k]) / (2 * h)
                         for i in range(8)])
        np.testing.assert_allclose(adv(name, r, np.ones(8)), -8 * grad, atol=1e-7)
    # hand value: (1, 0, 1/2, 1, 0), τ = 1/2: k₊ = k₋ = 2, A = ±(5/0.5)/3, the 1/2 member 0
    got = adv("real", [1.0, 0, 0.5, 1, 0], np.ones(5))
    np.testing.assert_allclose(got, [10 / 3, -10 / 3, 0, 10 / 3, -10 / 3], rtol=1e-15)
    # planted defect: labels by R > 1/2 (the lab's earlier rule) count 1/2 as a negative
    y = np.array([1.0, 0, 0.5, 1, 0]) > 0.5
    threshold = (5 / 0.5) * (y / (1 + y.sum()) - (~y) / (1 + (~y).sum()))
    assert not np.allclose(threshold, got, rtol=1e-12)
    assert np.all(adv("real", [1.0, 1.0, 0.35], np.ones(3)) == 0)  # no negative: not a valid group


def test_rational_reference_for_dgae_and_bnpo():
    r = [Fraction(1), Fraction(0), Fraction(0), Fraction(1), Fraction(1)]
    m = sum(r) / 5
    mad = sum(abs(x - m) for x in r)
    np.testing.assert_allclose(adv("dgae", [float(x) for x in r], np.ones(5), eps=0.0),
                               [float(5 * (x - m) / mad) for x in r], atol=1e-15)
    # α = 2, β = 1: f(p) = 2p, so A = (R − 3/5)/(6/5)
    np.testing.assert_allclose(adv("bnpo", [float(x) for x in r], np.ones(5), alpha=2.0, beta=1.0),
                               [float((x - m) / (2 * m)) for x in r], atol=1e-15)


@pytest.mark.parametrize("name, params, message", [
    ("bnpo", {"alpha": 0.5}, "alpha >= 1"), ("bnpo", {"beta": 0.99}, "beta >= 1"),
    ("dgae", {"eps": -1.0}, "non-negative"), ("real", {"tau": float("inf")}, "finite"),
    ("real", {"tau": 0.0}, "positive"), ("real_product", {"tau": -1.0}, "positive")])
def test_undefined_parameters_are_rejected(name, params, message):
    with pytest.raises(InputError, match=message):
        E.resolve_params(E.get(name), 4, **params)


def test_every_estimator_declares_a_known_property_and_source():
    for e in E.REGISTRY.values():
        assert e.property in E.PROPERTIES and e.source and e.provenance in ("paper", "code", "reconstructed")
    # the pass@k advantage is Tang, Zheng, Synnaeve and Munos's (arXiv 2503.19595, cited by verl)
    assert E.get("grpo_passk").source.startswith("Tang, Zheng, Synnaeve, Munos") and "2503.19595" in \
        E.get("grpo_passk").source


@pytest.mark.parametrize("name", ["rloo", "grpo", "opo", "adora", "copo_local", "optimal_baseline_loo_coord"])
def test_two_arm_route_equals_the_exact_engine(name):
    p, g = 0.3, 4
    m = exact.moments(E.get(name), [math.log(p), math.log(1 - p)], R.deterministic([1.0, 0.0]), g)
    c, v = binary.binary_moments(E.get(name), [p], g)
    assert c[0] * p * (1 - p) == pytest.approx(m.mean[0], abs=1e-13)
    assert v[0] == pytest.approx(m.trace_var, abs=1e-13)


def test_scale_reference_values():
    ps = np.array([0.2, 0.5])
    np.testing.assert_allclose(binary.scale_curve(E.get("rloo"), ps, 8), 1.0, atol=1e-13)
    np.testing.assert_allclose(binary.scale_curve(E.get("grpo_mean"), ps, 8), 7 / 8, atol=1e-13)
    # G = 2 GRPO (eps → 0): A = ±1/√2 on mixed groups, u = 1/(2√2) there, E[u] = p(1−p)/√2, c = 1/√2
    np.testing.assert_allclose(binary.scale_curve(E.get("grpo"), ps, 2, eps=1e-300), 1 / math.sqrt(2), rtol=1e-12)


def _leaky(rewards, weights):
    return rewards - jnp.sum(rewards, axis=-1, keepdims=True) / (rewards.shape[-1] - 1)


@pytest.mark.parametrize("fn, declared", [
    (_leaky, E.UNBIASED),  # own reward in the baseline
    (E.opo, E.BINARY_DIRECTION),  # reads the weights: not a function of the rewards alone
    (E.rloo, E.BIASED),  # declared biased but unbiased: no counterexample
])
def test_generated_rows_catch_planted_defects(fn, declared):
    est = E.Estimator(name="planted", advantages=fn, summary="defect", property=declared)
    E.register(est)
    try:
        checks = C.registry_checks(est)
        exact_out = checks[0].run(True)
        assert not exact_out.holds, exact_out
        if declared == E.UNBIASED:
            assert not checks[1].run(True).holds
    finally:
        E.unregister("planted")


def _brute_batch(name, ps, g):
    """Ordered tuples of every member's reward, plain numpy."""
    ps = np.asarray(ps)
    out_mean = np.zeros(len(ps))
    for bits in itertools.product([0.0, 1.0], repeat=len(ps) * g):
        r = np.array(bits).reshape(len(ps), g)
        w = np.prod(np.where(r == 1, ps[:, None], 1 - ps[:, None]))
        weights = np.where(r == 1, 2 * (1 - ps[:, None]) ** 2, 2 * ps[:, None] ** 2)
        a = np.asarray(batch.get(name).advantages(jnp.asarray(r), jnp.asarray(weights), **batch.get(name).params))
        out_mean += w * np.mean(a * (r - ps[:, None]), axis=1)
    return out_mean / (ps * (1 - ps))


@pytest.mark.parametrize("name", list(batch.REGISTRY))
def test_batch_enumeration_equals_ordered_tuples(name):
    ps = [0.3, 0.6]
    np.testing.assert_allclose(batch.exact_ensemble(batch.get(name), ps, 3)["c"], _brute_batch(name, ps, 3), atol=1e-12)


def test_batch_monte_carlo_passes_and_catches_a_planted_five_percent_error():
    assert C.batch_mc_check("grpo_batch_std", True).passed
    assert not C.batch_mc_check("grpo_batch_std", True, shift=0.05).passed


def test_bnpo_batch_moments_and_degenerate_batch():
    r = jnp.asarray([[1.0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]])
    a, b, ok = batch.bnpo_moments(r)
    p = np.array([0.25, 0.5, 0.75])
    m, v = p.mean(), p.var(ddof=1)
    c = m * (1 - m) / v - 1
    assert bool(ok) and float(a) == pytest.approx(max(1, 1 + c * m / 3)) and float(b) == pytest.approx(max(1, 1 + c * (1 - m) / 3))
    same = jnp.asarray([[1.0, 0, 0, 0], [0, 1, 0, 0]])
    assert np.all(np.asarray(batch.bnpo_batch(same, jnp.ones((2, 4)))) == 0.0)


def test_estimators_doc_is_current():
    from sims.tools import docs

    assert docs.ESTIMATORS_DOC.read_text() == docs.render_estimators(), "run make docs"


def test_batch_per_prompt_direction_check_and_its_planted_defect():
    assert C.batch_direction_check("gpg", True).passed
    assert not C.batch_direction_check("gpg", True, factor=1.05).passed


def test_dgpo_question_weights_against_a_plain_reference():
    rng = np.random.default_rng(6)
    for _ in range(5):
        r = (rng.uniform(size=(4, 5)) < rng.uniform(size=(4, 1))).astype(float)
        m = r.mean(1)
        valid = (r.min(1) != r.max(1))
        lam, ratio = np.ones(4), 1.0
        if valid.any():
            e = np.exp(-m[valid] / 2.0)
            lam[valid] = valid.sum() * e / e.sum()
            ratio = 4 / valid.sum()  # the release's zero_mask_ratio at equal lengths
        dgae = 5 * (r - m[:, None]) / (np.abs(r - m[:, None]).sum(1, keepdims=True) + 1e-4)
        got = np.asarray(batch.dgpo(jnp.asarray(r), jnp.ones((4, 5))))
        np.testing.assert_allclose(got, ratio * lam[:, None] * dgae, atol=1e-12)


def _dgpo_pin_holds(fn) -> bool:
    """Hand value, rewards ((1, 0, 0, 0), (1, 1, 1, 1), (1, 1, 0, 0)): V = {1st, 3rd}, N_v = 2,
    zero_mask_ratio 3/2; λ = 2·(e^{−1/8}, e^{−1/4})/(e^{−1/8} + e^{−1/4}); DGAE 4(R − R̄)/(Σ|R − R̄| + 1e-4)
    with Σ|R − R̄| = 3/2 and 2."""
    r = np.array([[1.0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    e1, e3 = math.exp(-1 / 8), math.exp(-1 / 4)
    l1, l3 = 2 * e1 / (e1 + e3), 2 * e3 / (e1 + e3)
    a1 = [4 * x / (1.5 + 1e-4) for x in (0.75, -0.25, -0.25, -0.25)]
    a3 = [4 * x / (2 + 1e-4) for x in (0.5, 0.5, -0.5, -0.5)]
    want = [[1.5 * l1 * x for x in a1], [0.0] * 4, [1.5 * l3 * x for x in a3]]
    got = np.asarray(fn(jnp.asarray(r), jnp.ones((3, 4)), 1e-4, 2.0))
    return bool(np.allclose(got, want, rtol=1e-13, atol=0))


def test_dgpo_released_form_against_a_hand_value_and_a_planted_defect():
    assert _dgpo_pin_holds(batch.dgpo)
    # planted defect: the zero_mask_ratio P/N_v left out (the lab's earlier form)
    assert not _dgpo_pin_holds(lambda r, w, eps, t: batch.dgpo(r, w, eps, t) * 2 / 3)
    assert not _dgpo_pin_holds(lambda r, w, eps, t: E.dgae(r, None, eps) * 1.5)  # λ left out


@pytest.mark.parametrize("name, params, message", [
    ("gpg", {"f_norm": 0.0}, "positive"), ("dgpo", {"temperature": -1.0}, "positive"),
    ("grpo_batch_std", {"eps": -1e-4}, "non-negative"), ("copo", {"nope": 1.0}, "no parameter"),
    ("bnpo_batch", {"max_weight": float("nan")}, "finite")])
def test_batch_parameters_are_validated(name, params, message):
    with pytest.raises(InputError, match=message):
        batch.exact_ensemble(batch.get(name), [0.3, 0.6], 2, **params)


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _copo_local_pin_holds(fn) -> bool:
    """Hand value, rewards (1, 0, 1, 1), answers (a, b, a, c): H = 1.5 bits, mean 3/4, std 1/2;
    released weight σ(5(1.5 − 1))·1[R ≠ 0]: the passes get σ(2.5)·(1/4)/(1/2 + 1e-6), the fail 0."""
    r, answers = np.array([1.0, 0, 1, 1]), np.array([1.0, 2, 1, 3])
    want = [_sigmoid(2.5) * 0.25 / (0.5 + 1e-6) if x else 0.0 for x in r]
    got = np.asarray(fn(jnp.asarray(r), jnp.asarray(answers), 1e-6, 5.0, 1.0))
    return bool(np.allclose(got, want, rtol=1e-13, atol=1e-15))


def _copo_pin_holds(fn) -> bool:
    """Hand value, P = 2, G = 2: rewards ((1, 0), (1, 1)), answers ((a, b), (c, c)). H = (1, 0) bits,
    p̂ = (1/2, 1), global z = (∓1/4)/(√2/4 + 1e-6); local A = ±(1/2)/(√2/2 + 1e-6) on prompt 1, 0 on 2;
    released weights σ(5(H − 1))·1[R ≠ 0] = (1/2, 0) on prompt 1, σ(−5) on prompt 2."""
    r, answers = np.array([[1.0, 0], [1, 1]]), np.array([[1.0, 2], [3, 3]])
    z = 0.25 / (math.sqrt(2) / 4 + 1e-6)
    loc = 0.5 / (math.sqrt(2) / 2 + 1e-6)
    w2 = _sigmoid(-5.0)
    want = [[0.5 * loc - 0.5 * z, -z], [(1 - w2) * z, (1 - w2) * z]]
    got = np.asarray(fn(jnp.asarray(r), jnp.asarray(answers), 1e-6, 5.0, 1.0))
    return bool(np.allclose(got, want, rtol=1e-13, atol=1e-15))


def test_copo_released_form_against_hand_values_and_planted_defects():
    assert _copo_local_pin_holds(E.copo_local)
    assert not _copo_local_pin_holds(E.copo_local_soft)  # defect: the 1[R ≠ 0] mask dropped
    assert _copo_pin_holds(batch.copo)
    assert not _copo_pin_holds(lambda r, w, eps, k, b: batch._copo(r, w, eps, k, b, zero_mask=False,
                                                                    consistency=False))  # mask dropped
    assert not _copo_pin_holds(lambda r, w, eps, k, b: batch._copo(r, w, eps, k, b, zero_mask=True,
                                                                    consistency=True))  # 1 − λH kept
    assert E.get("copo_local").params == {"eps": 1e-6, "k_b": 5.0, "b": 1.0}
    assert batch.get("copo").params == {"eps": 1e-6, "k_b": 5.0, "b": 1.0}


def test_copo_soft_variant_against_a_plain_reference():
    """The lab's earlier form, kept as the release's only-soft mode: g_q = p̂(1 − λ_G H), one weight per
    prompt σ(H − 1/2), written here per prompt in plain numpy."""
    rng = np.random.default_rng(9)
    r = (rng.uniform(size=(3, 4)) < 0.5).astype(float)
    answers = rng.integers(0, 3, size=(3, 4)).astype(float)
    g = 4
    lam = (1 - 1 / g) / math.log2(g)
    hs, gq, loc = [], [], []
    for row, ans in zip(r, answers):
        _, counts = np.unique(ans, return_counts=True)
        h = -np.sum(counts / g * np.log2(counts / g))
        hs.append(h)
        gq.append(row.mean() * (1 - lam * h))
        sd = row.std(ddof=1)
        loc.append((row - row.mean()) / (sd + 1e-6))
    gq = np.array(gq)
    glob = (gq - gq.mean()) / (gq.std(ddof=1) + 1e-6)
    w = 1 / (1 + np.exp(-(np.array(hs) - 0.5)))
    want = w[:, None] * np.array(loc) + (1 - w[:, None]) * glob[:, None]
    got = np.asarray(batch.copo_soft(jnp.asarray(r), jnp.asarray(answers)))
    np.testing.assert_allclose(got, want, atol=1e-12)


def _gpg_pin_holds(fn, alpha) -> bool:
    """Hand value, rewards ((1, 0, 0, 0), (1, 1, 1, 1), (0, 0, 0, 0), (1, 1, 0, 0)), f_norm = 1:
    A = α(R − mean R); the paper's α = P/N_v = 4/2, verl's α = PG/#{R ≠ 0} = 16/7."""
    r = np.array([[1.0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]])
    want = alpha * np.array([[0.75, -0.25, -0.25, -0.25], [0] * 4, [0] * 4, [0.5, 0.5, -0.5, -0.5]])
    return bool(np.allclose(np.asarray(fn(jnp.asarray(r), jnp.ones((4, 4)), 1.0)), want, rtol=1e-14, atol=0))


def test_gpg_paper_and_verl_forms_against_hand_values_and_planted_defects():
    assert _gpg_pin_holds(batch.gpg, 2.0) and _gpg_pin_holds(batch.gpg_verl, 16 / 7)
    assert not _gpg_pin_holds(batch.gpg, 16 / 7)  # defect: verl's α credited to the paper
    assert not _gpg_pin_holds(batch.gpg_verl, 2.0)
    assert not _gpg_pin_holds(lambda r, w, f: batch.gpg(r, w, f) / 2.0, 2.0)  # defect: α = 1
    assert batch.get("gpg").peers == () and batch.get("gpg_verl").peers == ("verl gpg",)
    none_valid = jnp.asarray([[1.0, 1.0], [0.0, 0.0]])
    assert np.all(np.asarray(batch.gpg(none_valid, jnp.ones((2, 2)))) == 0.0)


def _log_exact_beta(a: int, b: int) -> Decimal:
    """log B(a, b) = log((a − 1)!(b − 1)!/(a + b − 1)!) from exact integers, to 60 digits."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (Decimal(math.factorial(a - 1) * math.factorial(b - 1)).ln()
                - Decimal(math.factorial(a + b - 1)).ln())


def _beta_rel_error(log_b, a: int, b: int) -> float:
    with localcontext() as ctx:
        ctx.prec = 60
        return abs(float((Decimal(float(log_b)) - _log_exact_beta(a, b)).exp() - 1))


INTEGER_AB = [(a, b) for a in (1, 2, 3, 5, 8, 9, 10, 11, 16, 30, 64, 200, 1000) for b in (1, 2, 7, 8, 13, 50, 400)]


def test_log_beta_against_exact_factorials_and_mpmath():
    a, b = (np.array(x, dtype=float) for x in zip(*INTEGER_AB))
    got = np.asarray(E.log_beta(jnp.asarray(a), jnp.asarray(b)))
    worst = max(_beta_rel_error(g, int(x), int(y)) for g, x, y in zip(got, a, b))
    assert worst < 1e-12, worst
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    grid = [1.0, 1.25, 1.5, 4.7, 7.5, 9.99, 10.0, 10.5, 19.5, 33.3, 123.4, 999.0]
    aa, bb = np.meshgrid(grid, grid)
    got = np.asarray(E.log_beta(jnp.asarray(aa.ravel()), jnp.asarray(bb.ravel())))
    worst = max(abs(float(mpmath.expm1(mpmath.mpf(float(g)) - mpmath.log(mpmath.beta(x, y)))))
                for g, x, y in zip(got, aa.ravel(), bb.ravel()))
    assert worst < 1e-12, worst


def _bnpo_exact(r, a: int, b: int):
    """A = (R − p̂)/f(p̂; a, b) in exact fractions: f(p) = p^(a−1)(1 − p)^(b−1)/B(a, b),
    B(a, b) = (a − 1)!(b − 1)!/(a + b − 1)!."""
    p = Fraction(int(sum(r)), len(r))
    beta_ab = Fraction(math.factorial(a - 1) * math.factorial(b - 1), math.factorial(a + b - 1))
    inv_f = beta_ab / (p ** (a - 1) * (1 - p) ** (b - 1))
    return np.array([float((Fraction(int(x)) - p) * inv_f) for x in r])


BNPO_R = np.array([1.0, 1, 1, 0, 0, 0, 0, 0])  # p̂ = 3/8


def _bnpo_pin_error(log_beta_fn, a=2, b=8) -> float:
    """Worst relative error of BNPO's A at (α, β) = (a, b) on BNPO_R against `_bnpo_exact`, with the
    density's normaliser from `log_beta_fn`."""
    pm = jnp.asarray(3 / 8)
    log_f = (jax.scipy.special.xlogy(a - 1.0, pm) + jax.scipy.special.xlogy(b - 1.0, 1 - pm)
             - log_beta_fn(jnp.asarray(float(a)), jnp.asarray(float(b))))
    got = (BNPO_R - 3 / 8) * np.exp(-float(log_f))
    return float(np.max(np.abs(got / _bnpo_exact(BNPO_R, a, b) - 1)))


def test_bnpo_weight_pinned_to_exact_fractions_and_the_old_betaln_fails():
    for a, b in ((2, 8), (8, 2), (9, 9), (12, 30), (1, 64)):
        assert _bnpo_pin_error(E.log_beta, a, b) < 1e-12, (a, b)
        np.testing.assert_allclose(adv("bnpo", BNPO_R, np.ones(8), alpha=float(a), beta=float(b), max_weight=1e30),
                                   _bnpo_exact(BNPO_R, a, b), rtol=1e-12, atol=0)
    # planted defect: jax.scipy.special.betaln, which loses ~1e-6 relative at (α, β) = (2, 8)
    assert _bnpo_pin_error(jax.scipy.special.betaln, 2, 8) > 1e-9


def test_bnpo_batch_with_large_moment_parameters_against_mpmath(monkeypatch):
    """p̂ = (1/2, 1/2, 1/2, 5/8): the method of moments gives α ≈ 12.1, β ≈ 10.8, where the old
    betaln lost ~3e-7; the weights against a 40-digit mpmath reference of the official formula."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    r = np.array([[1.0, 1, 1, 1, 0, 0, 0, 0]] * 3 + [[1.0, 1, 1, 1, 1, 0, 0, 0]])
    ps = [mpmath.mpf(int(x.sum())) / 8 for x in r]
    m = sum(ps) / 4
    v = sum((x - m) ** 2 for x in ps) / 3
    c = m * (1 - m) / v - 1
    a, b = max(1, 1 + c * m / 3), max(1, 1 + c * (1 - m) / 3)
    assert a > 8 and b > 8
    want = [[float((x - p) * mpmath.beta(a, b) / (p ** (a - 1) * (1 - p) ** (b - 1))) for x in row]
            for row, p in zip(r, ps)]
    got = np.asarray(batch.bnpo_batch(jnp.asarray(r), jnp.ones_like(jnp.asarray(r))))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    monkeypatch.setattr(E, "log_beta", jax.scipy.special.betaln)  # planted defect: the old normaliser
    old = np.asarray(batch.bnpo_batch(jnp.asarray(r), jnp.ones_like(jnp.asarray(r))))
    assert np.max(np.abs(old / np.asarray(want) - 1)) > 1e-9


STAND_INS = {"opo", "adora", "copo_local", "copo_local_soft", "gtpo"}
BATCH_STAND_INS = {"gdpo_verl", "reinforce_pp_baseline", "copo", "copo_soft"}


def _unlabelled_stand_ins(markdown: str) -> set:
    """Rows of the atlas for entries with a bandit stand-in that do not say so."""
    names = STAND_INS | BATCH_STAND_INS
    # the testbed sections give the papers' own features, not the stand-in
    for start, end in (("## On the sequence testbed", "## Batch estimators"),
                       ("On a batch of two testbed prompts", "## Conventions")):
        i, j = markdown.index(start), markdown.index(end)
        markdown = markdown[:i] + markdown[j:]
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    return {line.split("`")[1] for line in rows
            if line.split("`")[1] in names and line.count("given the stand-in") < 2}


def test_estimators_reading_per_token_features_are_labelled_conditional_on_the_stand_in():
    """ADORA, COPO, GTPO, OPO (lengths, answers, entropies) and REINFORCE++ (token weights) receive
    |s(a)|² on bandits; the registry says so, the atlas marks their verdicts, and so do the ledger rows."""
    from sims import ledger

    assert {n for n, e in E.REGISTRY.items() if e.feature_substitute} == STAND_INS
    assert {n for n, b in batch.REGISTRY.items() if b.feature_substitute} == BATCH_STAND_INS
    # every entry that reads the weights either has a stand-in or reads |s|² by design (OBLR-PO)
    assert {n for n, e in E.REGISTRY.items() if e.uses_weights and not e.per_coordinate} - STAND_INS \
        == {"optimal_baseline_loo"}
    doc = (Path(__file__).resolve().parent.parent / "docs" / "estimators.md").read_text()
    assert _unlabelled_stand_ins(doc) == set()
    assert _unlabelled_stand_ins(doc.replace("given the stand-in", "")) == STAND_INS | BATCH_STAND_INS  # planted
    for name in STAND_INS:
        assert E.get(name).feature_substitute in ledger.REGISTRY[f"atlas.registry.{name}"].conditions
    assert "stand-in" not in ledger.REGISTRY["atlas.registry.grpo"].conditions
