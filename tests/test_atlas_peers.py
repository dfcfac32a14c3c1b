"""Agreement with verl and TRL where they share a formula, to 1e-9 in float64.

The references below are written from the peers' documented behaviour (verl
`trainer/ppo/core_algos.py` and `utils/torch_functional.py`; TRL `GRPOTrainer`), in plain numpy over
a flat batch with a prompt index, the way those libraries lay out their data. Conventions that
differ are listed in docs/estimators.md.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from sims import batch
from sims import estimators as E

TOL = dict(rtol=1e-9, atol=1e-9)


def _groups(scores, index):
    return {i: np.flatnonzero(index == i) for i in np.unique(index)}


def verl_grpo(scores, index, eps=1e-6, norm=True):
    out = scores.copy()
    for rows in _groups(scores, index).values():
        s = scores[rows]
        mean, std = (0.0, 1.0) if len(s) == 1 else (s.mean(), s.std(ddof=1))
        out[rows] = (s - mean) / (std + eps) if norm else s - mean
    return out


def verl_rloo(scores, index):
    out = scores.copy()
    for rows in _groups(scores, index).values():
        n = len(rows)
        if n > 1:
            out[rows] = scores[rows] * n / (n - 1) - scores[rows].mean() * n / (n - 1)
    return out


def verl_opo(scores, index, lengths):
    out = scores.copy()
    for rows in _groups(scores, index).values():
        b = 0.0 if len(rows) == 1 else (lengths[rows] * scores[rows]).sum() / lengths[rows].sum()
        out[rows] = scores[rows] - b
    return out


def verl_optimal_token_baseline_one_token(scores, index, pi_sampled, sum_pi_sq):
    w = 1 - 2 * pi_sampled + sum_pi_sq
    out = scores.copy()
    for rows in _groups(scores, index).values():
        if len(rows) > 1:
            out[rows] = scores[rows] - (scores[rows] * w[rows]).sum() / (w[rows].sum() + 1e-8)
    return out


def verl_grpo_passk(scores, index, eps=1e-6):
    out = np.zeros_like(scores)
    for rows in _groups(scores, index).values():
        s = scores[rows]
        order = np.argsort(-s, kind="stable")
        out[rows[order[0]]] = (s[order[0]] - s[order[1]]) / (s.std(ddof=1) + eps)
    return out


def verl_masked_whiten(values, mask):
    n = mask.sum()
    mean = (values * mask).sum() / (n + 1e-8)
    var = (((values - mean) ** 2) * mask).sum() / (n + 1e-8) * n / (n - 1)
    return (values - mean) / np.sqrt(var + 1e-8)


def verl_reinforce_pp_baseline(scores, index, lengths):
    d = verl_grpo(scores, index, norm=False)
    t = int(lengths.max())
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(float)
    tokens = d[:, None] * mask
    return (verl_masked_whiten(tokens, mask) * mask)[:, 0]  # every token of a response carries one value


def verl_gdpo(components, index, lengths):
    """verl-GDPO: verl GRPO per component, summed, then masked_whiten over the tokens."""
    s = sum(verl_grpo(components[:, k], index) for k in range(components.shape[1]))
    t = int(lengths.max())
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(float)
    return (verl_masked_whiten(s[:, None] * mask, mask) * mask)[:, 0]


def verl_gpg(scores, index, f_norm=1.0):
    alpha = len(scores) / max(np.count_nonzero(scores), 1)
    return alpha * verl_grpo(scores, index, norm=False) / f_norm


def trl(rewards, num_generations, scale):
    g = rewards.reshape(-1, num_generations)
    adv = (g - g.mean(1, keepdims=True)).reshape(-1)
    if scale == "group":
        std = np.repeat(g.std(1, ddof=1), num_generations)
    elif scale == "batch":
        std = np.full_like(rewards, rewards.std(ddof=1))
    else:
        return adv
    return adv / (std + 1e-4)


def trl_normalize_then_sum(rewards_per_func, num_generations):
    g = rewards_per_func.reshape(-1, num_generations, rewards_per_func.shape[-1])
    z = (g - g.mean(1, keepdims=True)) / (g.std(1, ddof=1, keepdims=True) + 1e-4)
    s = z.sum(-1).reshape(-1)
    return (s - s.mean()) / (s.std(ddof=1) + 1e-4)


def _batches(seed=0, n=6):
    rng = np.random.default_rng(seed)
    for i in range(n):
        p, g = int(rng.integers(2, 5)), int(rng.integers(2, 7))
        r = (rng.uniform(size=(p, g)) < 0.5).astype(float) if i % 2 else rng.choice([0.0, 0.35, 0.5, 1.0, 2.0], (p, g))
        r[0] = r[0, 0]  # one all-equal group in every batch
        yield r, rng.integers(3, 40, size=(p, g)).astype(float)


def _lab(name, r, w, **p):
    e = E.get(name)
    return np.asarray(E.get(name).advantages(jnp.asarray(r), jnp.asarray(w), **(e.params | p))).reshape(-1)


@pytest.mark.parametrize("batch_", list(_batches()))
def test_group_estimators_agree_with_verl_and_trl(batch_):
    r, lengths = batch_
    p, g = r.shape
    flat, index, L = r.reshape(-1), np.repeat(np.arange(p), g), lengths.reshape(-1)
    np.testing.assert_allclose(_lab("grpo", r, lengths), verl_grpo(flat, index), **TOL)
    np.testing.assert_allclose(_lab("grpo", r, lengths, eps=1e-4), trl(flat, g, "group"), **TOL)
    np.testing.assert_allclose(_lab("grpo_mean", r, lengths), verl_grpo(flat, index, norm=False), **TOL)
    np.testing.assert_allclose(_lab("grpo_mean", r, lengths), trl(flat, g, "none"), **TOL)
    np.testing.assert_allclose(_lab("rloo", r, lengths), verl_rloo(flat, index), **TOL)
    np.testing.assert_allclose(_lab("opo", r, lengths), verl_opo(flat, index, L), **TOL)
    np.testing.assert_allclose(_lab("grpo_passk", r, lengths), verl_grpo_passk(flat, index), **TOL)


def test_opo_with_score_weights_is_verls_optimal_token_baseline_for_one_token():
    rng = np.random.default_rng(1)
    pi = rng.dirichlet(np.ones(5))
    arms = rng.choice(5, size=(3, 6), p=pi)
    r = rng.uniform(size=(3, 6))
    sq = np.full(arms.shape, pi @ pi)
    w = 1 - 2 * pi[arms] + sq
    want = verl_optimal_token_baseline_one_token(r.reshape(-1), np.repeat(np.arange(3), 6),
                                                pi[arms].reshape(-1), sq.reshape(-1))
    np.testing.assert_allclose(_lab("opo", r, w, eps=1e-8), want, **TOL)


@pytest.mark.parametrize("batch_", list(_batches(seed=2, n=4)))
def test_batch_estimators_agree_with_verl_and_trl(batch_):
    r, lengths = batch_
    p, g = r.shape
    flat, index, L = r.reshape(-1), np.repeat(np.arange(p), g), lengths.reshape(-1)

    def lab(name, w=lengths, rr=r):
        b = batch.get(name)
        return np.asarray(b.advantages(jnp.asarray(rr), jnp.asarray(w), **b.params)).reshape(-1)

    np.testing.assert_allclose(lab("grpo_batch_std"), trl(flat, g, "batch"), **TOL)
    np.testing.assert_allclose(lab("gpg_verl"), verl_gpg(flat, index), **TOL)
    np.testing.assert_allclose(lab("reinforce_pp_baseline"), verl_reinforce_pp_baseline(flat, index, L), **TOL)
    comps = np.stack([r, (np.arange(g)[None, :] % 2 == 0) * 1.0 + 0 * r], axis=-1)
    comps[1, :, 1] = 1.0 - comps[1, :, 1]
    np.testing.assert_allclose(lab("gdpo", rr=comps), trl_normalize_then_sum(comps.reshape(p * g, 2), g), **TOL)
    np.testing.assert_allclose(lab("gdpo_verl", rr=comps), verl_gdpo(comps.reshape(p * g, 2), index, L), **TOL)
    np.testing.assert_allclose(lab("gdpo_verl"), verl_gdpo(flat[:, None], index, L), **TOL)


def test_lab_gives_exact_zeros_where_float32_peers_leave_a_residue():
    """TRL's group scaling in float32 torch leaves ~3e-4 on an all-equal group of 0.35 (G = 8)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    r = torch.full((8,), 0.35, dtype=torch.float32)
    peer = ((r - r.mean()) / (r.std() + 1e-4)).numpy()
    lab = np.asarray(E.grpo(jnp.asarray(r.numpy()), None, 1e-4))
    assert np.all(lab == 0.0) and lab.dtype == np.float32
    assert np.max(np.abs(peer)) > 1e-5


def test_the_registry_claims_tested_peers_only_for_the_estimators_pinned_here():
    """docs/estimators.md says "(yes: …)" from each entry's `tested_peers`; the entries must be
    exactly those this file compares with verl and TRL."""
    claimed = {name for name, e in E.REGISTRY.items() if e.tested_peers}
    assert claimed == {"grpo", "grpo_mean", "rloo", "opo", "grpo_passk"}
