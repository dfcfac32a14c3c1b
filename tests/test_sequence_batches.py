"""Prompt ensembles on the sequence testbed (docs/design.md §4.12): P = 1 against
`sims.sequences.moments`, the independent route against the enumerated one, the coupled route
against a brute force over every ordered batch written here in plain numpy (REINFORCE++ with token
weights, batch token-mean, GDPO with reward components), Monte Carlo within a Holm z-check with a
planted defect caught, and the limits."""

import itertools

import numpy as np
import pytest

from bandits import sequence as S
from bandits.errors import InputError
from sims import batch as B
from sims import estimators
from sims import sequence_batches as SB
from sims import sequences as Q
from sims.engines import stats


def _prompt(vocab, max_len, eos, seed, components=False):
    sp = S.space(vocab, max_len, eos)
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(sp.num_prefixes, vocab))
    r = rng.integers(0, 2, sp.num_responses).astype(np.float64)
    if components:
        comps = np.stack([r, S.stops(sp) if eos is not None else 0.5 * rng.integers(0, 2, sp.num_responses)], -1)
        return SB.Prompt(sp, theta, comps.sum(-1), comps)
    return SB.Prompt(sp, theta, r)


def _filler_prompt(correct, stop, max_len=2):
    fam = S.AnswerFiller(2, max_len)
    theta = np.asarray(fam.logits(np.array([0.3, -0.2, stop, -stop])))
    sp = fam.space
    comps = np.stack([S.answer_correct(sp, correct), S.stops(sp)], -1)
    return SB.Prompt(sp, theta, comps.sum(-1), comps)


# ---- plain numpy brute force over every ordered batch of responses ---------------------------


def _softmax(row):
    row = np.asarray(row, dtype=np.float64)
    e = np.where(np.isfinite(row), np.exp(row - np.max(row[np.isfinite(row)])), 0.0)
    return e / e.sum()


def _brute_policy_and_scores(p):
    """π(y) and ∇_θ log π(y) (N, P·V), walking each response's tokens."""
    sp, th = p.space, p.theta
    index = {h: i for i, h in enumerate(sp.prefixes)}
    pis, scores = [], []
    for i in range(sp.num_responses):
        y = sp.response(i)
        pi, s = 1.0, np.zeros_like(th)
        for t in range(len(y)):
            row = index[y[:t]]
            q = _softmax(th[row])
            pi *= q[y[t]]
            s[row] -= q
            s[row, y[t]] += 1.0
        pis.append(pi)
        scores.append(s.ravel())
    return np.array(pis), np.array(scores)


def _brute(prompts, group, advantages, coef):
    """E[ĝ], Cov[ĝ] over all ordered groups of every prompt: ĝ_x = Σ_i c_xi A_xi s_x(y_xi)."""
    tables = [_brute_policy_and_scores(p) for p in prompts]
    sizes = [t[1].shape[1] for t in tables]
    off = np.concatenate([[0], np.cumsum(sizes)])
    per = [list(itertools.product(range(p.space.num_responses), repeat=group)) for p in prompts]
    first, second = 0.0, 0.0
    for combo in itertools.product(*per):
        w = np.prod([np.prod(tables[x][0][list(ids)]) for x, ids in enumerate(combo)])
        if w == 0:
            continue
        R = np.array([prompts[x].rewards[list(ids)] for x, ids in enumerate(combo)])
        C = None if any(p.components is None for p in prompts) else np.array(
            [prompts[x].components[list(ids)] for x, ids in enumerate(combo)])
        L = np.array([prompts[x].space.lengths[list(ids)] for x, ids in enumerate(combo)], dtype=np.float64)
        x_ = coef(L) * advantages(R, C, L)
        g = np.zeros(off[-1])
        for x, ids in enumerate(combo):
            g[off[x]:off[x + 1]] = x_[x] @ tables[x][1][list(ids)]
        first = first + w * g
        second = second + w * np.outer(g, g)
    return first, second - np.outer(first, first)


def _rpp(R, C, L, eps=1e-8):
    d = R - R.mean(axis=1, keepdims=True)
    n = L.sum()
    mu = (L * d).sum() / n
    var = (L * (d - mu) ** 2).sum() / (n - 1)
    return (d - mu) / np.sqrt(var + eps)


def _grpo(R, C, L, eps=1e-6):
    c = R - R.mean(axis=1, keepdims=True)
    std = np.sqrt((c**2).sum(axis=1, keepdims=True) / (R.shape[1] - 1))
    return np.where(std + eps > 0, c / (std + eps), 0.0)


def _gdpo(R, C, L, eps=1e-4):
    s = sum(_grpo(C[..., k], None, None, eps) for k in range(C.shape[-1]))
    flat = s.ravel()
    std = np.sqrt(((flat - flat.mean()) ** 2).sum() / (flat.size - 1))
    return (s - flat.mean()) / (std + eps)


TOKEN_MEAN = lambda L: np.full_like(L, 1.0 / L.sum())  # noqa: E731  (batch token-mean)


def _close(m, mean, cov):
    np.testing.assert_allclose(m.mean, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.cov, cov, rtol=0, atol=1e-12)


def test_coupled_route_against_a_brute_force_reinforce_pp_token_weighted():
    prompts = [_prompt(3, 2, 2, 1), _filler_prompt(0, 0.4, max_len=3)]  # lengths 1..3: token weights matter
    m = SB.batch_moments(B.get("reinforce_pp_baseline"), prompts, 2, agg="token-mean")
    assert m.route == "enumerate" and m.feature == "length"
    _close(m, *_brute(prompts, 2, _rpp, TOKEN_MEAN))


def test_batch_token_mean_couples_a_group_entry_and_matches_the_brute_force():
    prompts = [_filler_prompt(1, -0.3, max_len=3), _prompt(3, 2, 2, 4)]
    m = SB.batch_moments(estimators.get("grpo"), prompts, 2, agg="token-mean")
    assert m.route == "enumerate"
    _close(m, *_brute(prompts, 2, _grpo, TOKEN_MEAN))
    # the per-group normaliser is another estimate: each group's own token count, halved
    g = SB.batch_moments(estimators.get("grpo"), prompts, 2, agg="token-mean", scope="group")
    _close(g, *_brute(prompts, 2, _grpo, lambda L: 0.5 / L.sum(axis=1, keepdims=True) * np.ones_like(L)))
    assert np.max(np.abs(g.mean - m.mean)) > 1e-4


def test_gdpo_reads_the_components():
    prompts = [_filler_prompt(0, 0.2), _filler_prompt(1, -0.5)]
    m = SB.batch_moments(B.get("gdpo"), prompts, 2, agg="seq-mean-token-sum")
    seq = lambda L: np.full_like(L, 1.0 / L.size)  # noqa: E731
    _close(m, *_brute(prompts, 2, _gdpo, seq))
    # the same prompts with the summed reward only (one component) give another estimate
    flat = [SB.Prompt(p.space, p.theta, p.rewards) for p in prompts]
    one = SB.batch_moments(B.get("gdpo"), flat, 2, agg="seq-mean-token-sum")
    assert np.max(np.abs(one.mean - m.mean)) > 1e-4


@pytest.mark.parametrize("name, agg", [("rloo", "token-mean"), ("grpo", "seq-mean-token-mean"),
                                       ("opo", "token-mean"), ("grpo_mean", "dr_grpo")])
def test_one_prompt_is_sims_sequences_moments(name, agg):
    p = _prompt(3, 3, 2, 7)
    est = estimators.get(name)
    want = Q.moments(est, p.space, p.theta, p.rewards, 3, agg=agg)
    for scope in ("batch", "group"):
        m = SB.batch_moments(est, [p], 3, agg=agg, scope=scope)
        _close(m, want.mean, want.cov)
        np.testing.assert_allclose(m.true_gradient, want.true_gradient, rtol=0, atol=1e-15)
        assert m.objective == pytest.approx(want.objective, abs=1e-15)


@pytest.mark.parametrize("agg", ["seq-mean-token-sum", "token-sum", "seq-mean-token-mean",
                                 "seq-mean-token-sum-norm", "dr_grpo"])
def test_independent_route_equals_the_enumeration(agg):
    prompts = [_prompt(2, 2, None, 1), _prompt(3, 3, 2, 2)]
    est = estimators.get("grpo")
    a = SB.batch_moments(est, prompts, 2, agg=agg, route="independent")
    b = SB.batch_moments(est, prompts, 2, agg=agg, route="enumerate")
    _close(a, b.mean, b.cov)
    off = a.cov[a.blocks[0], a.blocks[1]]
    assert np.all(off == 0)


def test_group_scope_token_mean_independent_equals_enumeration():
    prompts = [_prompt(2, 2, None, 5), _filler_prompt(0, 0.1)]
    est = estimators.get("rloo")
    a = SB.batch_moments(est, prompts, 2, agg="token-mean", scope="group")
    b = SB.batch_moments(est, prompts, 2, agg="token-mean", scope="group", route="enumerate")
    assert a.route == "independent"
    _close(a, b.mean, b.cov)


def test_prompt_scale_is_one_for_an_unbiased_estimate_and_the_bandit_c_for_grpo_mean():
    prompts = [_prompt(2, 2, None, 1), _prompt(3, 2, 2, 3)]
    m = SB.batch_moments(estimators.get("rloo"), prompts, 3, agg="seq-mean-token-sum")
    np.testing.assert_allclose(m.bias, 0.0, atol=1e-14)
    assert [round(m.prompt_scale(x), 12) for x in range(2)] == [1.0, 1.0]
    g = SB.batch_moments(estimators.get("grpo_mean"), prompts, 3, agg="seq-mean-token-sum")
    assert [round(g.prompt_scale(x), 12) for x in range(2)] == [round(2 / 3, 12)] * 2  # (1 − 1/G)
    assert g.cosine == pytest.approx(1.0, abs=1e-12)


def test_monte_carlo_matches_exact_and_a_wrong_target_is_caught():
    prompts = [_prompt(2, 2, None, 1), _filler_prompt(0, 0.4)]
    entry = B.get("reinforce_pp_baseline")
    ex = SB.batch_moments(entry, prompts, 2, agg="token-mean")
    mc = SB.batch_monte_carlo(entry, prompts, 2, 40_000, seed=3, agg="token-mean")
    ok = stats.z_check("batch mc", mc.mean, mc.mean_se, ex.mean)
    assert ok.passed, ok.summary()
    assert mc.trace_var == pytest.approx(ex.trace_var, rel=0.05)
    # planted defect: the true gradient as the target (REINFORCE++ with token weights is biased)
    bad = stats.z_check("wrong target", mc.mean, mc.mean_se, ex.true_gradient)
    assert not bad.passed


def test_monte_carlo_of_gdpo_components_per_group_scope():
    prompts = [_filler_prompt(0, 0.2, max_len=3), _filler_prompt(1, -0.5, max_len=3)]
    entry = B.get("gdpo_verl")
    ex = SB.batch_moments(entry, prompts, 3, agg="token-mean", scope="group")
    mc = SB.batch_monte_carlo(entry, prompts, 3, 40_000, seed=5, agg="token-mean", scope="group")
    assert stats.z_check("gdpo_verl mc", mc.mean, mc.mean_se, ex.mean).passed
    # planted defect: the batch-scope normaliser as the target
    other = SB.batch_moments(entry, prompts, 3, agg="token-mean", scope="batch")
    assert not stats.z_check("wrong scope", mc.mean, mc.mean_se, other.mean).passed


def test_limits_and_hostile_input():
    p = _prompt(2, 2, None, 1)
    with pytest.raises(InputError, match="1 to 16 prompts"):
        SB.batch_moments(estimators.get("rloo"), [], 2)
    with pytest.raises(InputError, match="1 to 16 prompts"):
        SB.batch_moments(estimators.get("rloo"), [p] * 17, 2)
    with pytest.raises(InputError, match="independent route"):
        SB.batch_moments(B.get("gpg"), [p, p], 2, route="independent")
    with pytest.raises(InputError, match="scope"):
        SB.batch_moments(estimators.get("rloo"), [p], 2, scope="world")
    big = _prompt(3, 3, 2, 1)
    big = SB.Prompt(big.space, big.theta, np.arange(big.space.num_responses, dtype=np.float64))
    with pytest.raises(InputError, match="exact limit of 1,000,000"):
        SB.batch_moments(B.get("gpg"), [big] * 3, 8)
    with pytest.raises(InputError, match="prompt 0: rewards"):
        SB.batch_moments(estimators.get("rloo"), [SB.Prompt(p.space, p.theta, p.rewards[:2])], 2)
    with pytest.raises(InputError, match="sum of the components"):
        SB.batch_moments(B.get("gdpo"), [SB.Prompt(p.space, p.theta, p.rewards, np.ones((4, 2)))], 2)


def test_one_token_batches_are_the_bandit_ensembles_for_every_batch_entry():
    """At T = 1 with |s|² for the weights, a batch of two-token-vocabulary prompts is the two-armed
    pass/fail ensemble of `sims.batch.exact_ensemble`: the same c_x for every batch entry."""
    from bandits import sequence as S
    from sims import batch as B
    from sims import sequence_batches as SB

    ps = (0.3, 0.6)
    sp = S.space(2, 1)
    prompts = [SB.Prompt(sp, np.array([[np.log(p / (1 - p)), 0.0]]), np.array([1.0, 0.0])) for p in ps]
    for name, entry in B.REGISTRY.items():
        m = SB.batch_moments(entry, prompts, 3, feature="score_sq")
        want = B.exact_ensemble(entry, ps, 3)["c"]
        got = np.array([m.prompt_scale(x) for x in range(len(ps))])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, err_msg=name)
    # planted: the weights of the bandit's stand-in are what makes the weight readers agree
    m = SB.batch_moments(B.get("reinforce_pp_baseline"), prompts, 3, feature="length")
    got = np.array([m.prompt_scale(x) for x in range(len(ps))])
    assert np.max(np.abs(got - B.exact_ensemble(B.get("reinforce_pp_baseline"), ps, 3)["c"])) > 1e-3
