"""Independent references for the batch estimators' advantages (docs/design.md §4.9).

Plain Python, written from the released code's formulas and constants, importing nothing of the
lab's estimator code: exact fractions where the formula is rational (GPG, GPG-verl), `math`
elsewhere. A batch is a list of P groups, each a list of G rewards (floats or Fractions); the
per-sample features are lengths (REINFORCE++) or answer identities (COPO). Every function returns
a P×G list of advantages. The ledger compares the lab's `sims.batch` functions with these on fixed
batches (`sims.claims.atlas.batch_pin_check`).

Where the released code divides by zero (BNPO with every pass rate equal, GPG with every group
all-equal, COPO's batch std with one prompt) the reference gives the lab's documented limit, 0.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction


def _mean(xs):
    return sum(xs) / len(xs)


def _var1(xs):
    """Sample variance (ddof = 1), torch's `.std()`/`.var()` default."""
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _centred(group):
    m = _mean(group)
    return [r - m for r in group]


def _all_equal(group) -> bool:
    return max(group) == min(group)


def _z_group(group, eps):
    """verl/TRL GRPO: (r − mean)/(std(ddof = 1) + eps); 0 on an all-equal group."""
    if _all_equal(group):
        return [0.0] * len(group)
    s = math.sqrt(float(_var1(group)))
    return [float(d) / (s + eps) for d in _centred(group)]


def grpo_batch_std(rewards, eps=1e-4):
    """TRL GRPOTrainer, scale_rewards="batch": A = (R − mean_group R)/(std_batch(R, ddof = 1) + eps)."""
    flat = [float(r) for g in rewards for r in g]
    if len(flat) < 2 or _all_equal(flat):
        return [[0.0] * len(g) for g in rewards]
    s = math.sqrt(_var1(flat))
    return [[float(d) / (s + eps) for d in _centred(g)] for g in rewards]


def reinforce_pp_baseline(rewards, lengths, eps=1e-8):
    """verl `reinforce_plus_plus_baseline` (REINFORCE++, arXiv 2501.03262): D = R − mean_group R on
    every token of the response, then `masked_whiten` over the batch's tokens:
    A = (D − μ)/sqrt(σ² + eps), μ and σ² the token mean and Bessel-corrected token variance."""
    tokens = []
    for g, ls in zip(rewards, lengths):
        for d, n in zip(_centred([float(r) for r in g]), ls):
            tokens += [d] * int(n)
    if len(tokens) < 2:
        return [[0.0] * len(g) for g in rewards]
    mu = math.fsum(tokens) / len(tokens)
    var = math.fsum((t - mu) ** 2 for t in tokens) / (len(tokens) - 1)
    return [[(d - mu) / math.sqrt(var + eps) for d in _centred([float(r) for r in g])] for g in rewards]


def gpg(rewards, f_norm=1):
    """GPG as released (AMAP-ML/GPG `gpg_trainer.py`, adjust_gd): A = α (R − mean_group R)/f_norm,
    α = 1/min(1, N_v/P) = P/N_v, N_v the groups whose rewards are not all equal. Exact fractions."""
    rewards = [[Fraction(r) for r in g] for g in rewards]
    n_valid = sum(not _all_equal(g) for g in rewards)
    if n_valid == 0:
        return [[Fraction(0)] * len(g) for g in rewards]
    alpha = Fraction(len(rewards), n_valid)
    return [[alpha * d / Fraction(f_norm) for d in _centred(g)] for g in rewards]


def gpg_verl(rewards, f_norm=1):
    """verl `compute_gpg_outcome_advantage`: A = α (R − mean_group R)/f_norm with
    α = P·G/max(1, #non-zero rewards in the batch). Exact fractions."""
    rewards = [[Fraction(r) for r in g] for g in rewards]
    n = sum(len(g) for g in rewards)
    nonzero = sum(r != 0 for g in rewards for r in g)
    alpha = Fraction(n, max(1, nonzero))
    return [[alpha * d / Fraction(f_norm) for d in _centred(g)] for g in rewards]


def gdpo(components, eps=1e-4):
    """GDPO, TRL `normalize_then_sum` (NVlabs/GDPO): per component and group z_k = (r_k − mean)/
    (std(ddof = 1) + eps), S = Σ_k z_k (unit weights), then A = (S − mean_B S)/(std_B(S, ddof = 1) + eps)
    over the batch. `components` is P×G×C (C = 1: P×G×1)."""
    c = len(components[0][0])
    s = [[0.0] * len(g) for g in components]
    for k in range(c):
        for q, g in enumerate(components):
            z = _z_group([float(m[k]) for m in g], eps)
            s[q] = [a + b for a, b in zip(s[q], z)]
    flat = [x for g in s for x in g]
    mu = math.fsum(flat) / len(flat)
    sd = math.sqrt(math.fsum((x - mu) ** 2 for x in flat) / (len(flat) - 1))
    if sd + eps == 0:
        return [[0.0] * len(g) for g in s]
    return [[(x - mu) / (sd + eps) for x in g] for g in s]


def _beta_pdf(p, a, b):
    if (p == 0 and a > 1) or (p == 1 and b > 1):
        return 0.0
    if (p == 0 and a == 1) or (p == 1 and b == 1):
        logf = 0.0
    else:
        logf = (a - 1) * math.log(p) + (b - 1) * math.log(1 - p)
    return math.exp(logf + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))


def bnpo_batch(rewards, max_weight=1e6):
    """BNPO (changyi7231/BNPO `compute_bnpo_outcome_advantage`): pass rates p̂_q, m = mean_q p̂,
    v = var_q p̂ (ddof = 1; P = 1: m = 0, v = 1); c = m(1 − m)/v − 1, α = max(1, 1 + cm/3),
    β = max(1, 1 + c(1 − m)/3); A_qi = clamp(1/BetaPDF(p̂_q; α, β), 0, max_weight)·(R_qi − p̂_q)."""
    ps = [float(_mean(g)) for g in rewards]
    if len(ps) == 1:
        m, v = 0.0, 1.0
    else:
        m, v = _mean(ps), _var1(ps)
    if v == 0:
        return [[0.0] * len(g) for g in rewards]
    c = m * (1 - m) / v - 1
    a, b = max(1.0, 1 + c * m / 3), max(1.0, 1 + c * (1 - m) / 3)
    out = []
    for g, p in zip(rewards, ps):
        f = _beta_pdf(p, a, b)
        w = max_weight if f == 0 else min(1 / f, max_weight)
        out.append([w * float(d) for d in _centred(g)])
    return out


def dgpo(rewards, eps=1e-4, temperature=2.0):
    """DGPO as released (AMAP-ML/MathForge, TRL 0.20 `grpo_trainer.py`, enable_dgpo and dqw, one
    process, equal lengths): A_qi = DGAE_qi · λ_q · P/N_v with
    DGAE_qi = G(R_qi − mean R_q)/(Σ_j |R_qj − mean R_q| + eps), λ_q = N_v·softmax_{q ∈ V}(−mean R_q/T)
    over the N_v prompts V whose group is not all-equal (λ = 1 elsewhere), and the zero_mask_ratio
    (all tokens over the tokens of V) = P/N_v; 1 when no group is valid."""
    p = len(rewards)
    valid = [not _all_equal(g) for g in rewards]
    n_valid = sum(valid)
    ratio = p / n_valid if n_valid else 1.0
    lam = [1.0] * p
    if n_valid:
        e = [math.exp(-float(_mean(g)) / temperature) if ok else 0.0 for g, ok in zip(rewards, valid)]
        tot = math.fsum(e)
        lam = [n_valid * x / tot if ok else 1.0 for x, ok in zip(e, valid)]
    out = []
    for g, lq in zip(rewards, lam):
        d = _centred([float(r) for r in g])
        den = math.fsum(abs(x) for x in d) + eps
        out.append([lq * ratio * len(g) * x / den if den > 0 else 0.0 for x in d])
    return out


def answer_entropy_bits(answers) -> float:
    """Entropy in bits of a group's empirical answer distribution (hijih/copo-code
    `compute_score_global`: Counter of the extracted answers, log2)."""
    n = len(answers)
    return -math.fsum(c / n * math.log2(c / n) for c in Counter(answers).values())


def _z_batch(values, eps):
    """(g_q − mean_Q g)/(std_Q(g, ddof = 1) + eps); 0 with one prompt."""
    if len(values) < 2:
        return [0.0] * len(values)
    m = math.fsum(values) / len(values)
    s = math.sqrt(math.fsum((x - m) ** 2 for x in values) / (len(values) - 1))
    return [(x - m) / (s + eps) for x in values]


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def copo(rewards, answers, eps=1e-6, k=5.0, b=1.0):
    """COPO as released (hijih/copo-code, `compute_policy_loss_with_global`, global_flg "soft with
    zero", reward_coef_flg off): A_qi = w_qi·A^loc_qi + (1 − w_qi)·A^glob_q with
    w_qi = σ(k(H_q − b))·1[R_qi ≠ 0], A^loc verl GRPO (eps 1e-6), A^glob the batch z-score
    (ddof = 1, eps 1e-6) of g_q = p̂_q, H_q the answers' entropy in bits; k = 5, b = 1."""
    glob = _z_batch([float(_mean(g)) for g in rewards], eps)
    out = []
    for g, ans, zg in zip(rewards, answers, glob):
        w = _sigmoid(k * (answer_entropy_bits(ans) - b))
        loc = _z_group([float(r) for r in g], eps)
        out.append([(w if r != 0 else 0.0) * a + (1 - (w if r != 0 else 0.0)) * zg for r, a in zip(g, loc)])
    return out


def copo_soft(rewards, answers, eps=1e-6, k=1.0, b=0.5):
    """COPO's "only soft" blend with the entropy-discounted global reward (hijih/copo-code with
    reward_coef_flg on; the function defaults k = 1, b = 0.5): A_qi = w_q·A^loc_qi + (1 − w_q)·A^glob_q,
    w_q = σ(k(H_q − b)), g_q = p̂_q(1 − λ_G H_q), λ_G = (1 − 1/G)/log2 G."""
    out = []
    gs, ws = [], []
    for g, ans in zip(rewards, answers):
        n = len(g)
        h = answer_entropy_bits(ans)
        lam = (1 - 1 / n) / math.log2(n) if n > 1 else 0.0
        gs.append(float(_mean(g)) * (1 - lam * h))
        ws.append(_sigmoid(k * (h - b)))
    glob = _z_batch(gs, eps)
    for g, w, zg in zip(rewards, ws, glob):
        out.append([w * a + (1 - w) * zg for a in _z_group([float(r) for r in g], eps)])
    return out


def gdpo_verl(rewards, lengths, eps=1e-6, whiten_eps=1e-8):
    """GDPO in its verl release (NVlabs/GDPO verl-GDPO): verl GRPO per component (eps 1e-6,
    ddof = 1), summed, then `masked_whiten` over tokens (each response's value on each of its L
    tokens; token mean, Bessel-corrected token variance, 1e-8 inside the root). `rewards` is P×G
    (one component) or P×G×C."""
    comps = [[m if isinstance(m, (list, tuple)) else [m] for m in g] for g in rewards]
    s = [[0.0] * len(g) for g in comps]
    for k in range(len(comps[0][0])):
        for q, g in enumerate(comps):
            s[q] = [a + b for a, b in zip(s[q], _z_group([float(m[k]) for m in g], eps))]
    tokens = [x for g, ls in zip(s, lengths) for x, n in zip(g, ls) for _ in range(int(n))]
    if len(tokens) < 2:
        return [[0.0] * len(g) for g in s]
    mu = math.fsum(tokens) / len(tokens)
    var = math.fsum((t - mu) ** 2 for t in tokens) / (len(tokens) - 1)
    return [[(x - mu) / math.sqrt(var + whiten_eps) for x in g] for g in s]


# Which per-sample feature each estimator reads: "lengths", "answers" or None (rewards only).
FEATURES = {"reinforce_pp_baseline": "lengths", "gdpo_verl": "lengths", "copo": "answers", "copo_soft": "answers"}

REFERENCES = {
    "grpo_batch_std": grpo_batch_std, "reinforce_pp_baseline": reinforce_pp_baseline, "gpg": gpg,
    "gpg_verl": gpg_verl, "gdpo": gdpo, "bnpo_batch": bnpo_batch, "dgpo": dgpo, "copo": copo,
    "copo_soft": copo_soft, "gdpo_verl": gdpo_verl,
}
