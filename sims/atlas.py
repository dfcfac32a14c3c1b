"""The estimator atlas (docs/design.md §4.9): what every registry estimator ascends under
pass/fail rewards, and at what variance.

Binary rewards. On the two-armed bandit with deterministic rewards (1, 0) and π_1 = p, a group is
fixed up to order by its number of successes k ~ Binomial(G, p), so every moment of ĝ is a sum of
G + 1 terms (any G, any registry estimator, the weights |s(a)|² included):

    E[ĝ] = Σ_k P(k) ĝ(k),     c(p, G) = E[ĝ]_1 / ∇p_1,   ∇p = p(1 − p)·(1, −1).

For an estimator whose advantages read the rewards only, E[ĝ_x] = c(p_x, G)·∇p_x on every
bandit with Bernoulli rewards (E[s(a)|R] = (R − p)∇p/(p(1 − p))), so c is *the* reweighting of the
objective it ascends: c = 1 (RLOO, unbiased), 1 − 1/G (group mean), ≈ 1/√(p(1−p)) (GRPO).
Variance at equal budget: tr Cov[ĝ]/c² (the variance after rescaling to the true gradient's
length) relative to RLOO's at the same G and p.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bandits.errors import InputError
from sims import estimators

MAX_GROUP = 4096


@functools.partial(jax.jit, static_argnames=("fn", "group", "per_coordinate"))
def _two_arm(fn, group, per_coordinate, ps, params):
    """(E[ĝ]_1, tr Cov[ĝ]) on the two-armed bandit for every p in `ps` (float64)."""
    k = jnp.arange(group + 1)
    idx = jnp.arange(group)

    def at(p):
        logits = jnp.log(jnp.stack([p, 1.0 - p]))

        def one(kk):
            arms = (idx >= kk).astype(jnp.int32)
            rewards = (idx < kk).astype(jnp.float64)
            return estimators.bandit_group_gradient(fn, logits, arms, rewards, params, per_coordinate)

        g = jax.vmap(one)(k)  # (G+1, 2)
        logpmf = (jax.scipy.special.gammaln(group + 1.0) - jax.scipy.special.gammaln(k + 1.0)
                  - jax.scipy.special.gammaln(group - k + 1.0) + k * jnp.log(p)
                  + (group - k) * jnp.log1p(-p))
        w = jnp.exp(logpmf)
        mean = w @ g
        return mean[0], w @ jnp.sum((g - mean) ** 2, axis=-1)

    return jax.vmap(at)(ps)


def binary_moments(name_or_fn, ps, group: int, **params):
    """c(p, G) and tr Cov[ĝ] on the two-armed pass/fail bandit, for each pass rate in `ps`.

    `name_or_fn` is a registry name or an advantage function with the registry's signature."""
    if isinstance(name_or_fn, str):
        est = estimators.get(name_or_fn)
        params = estimators.resolve_params(est, group, **params)
        fn, per_coord = est.advantages, est.per_coordinate
    else:
        fn, per_coord = name_or_fn, False
    if not isinstance(group, int) or not 1 <= group <= MAX_GROUP:
        raise InputError(f"the two-armed route takes 1 ≤ G ≤ {MAX_GROUP}, got {group!r}")
    ps = np.atleast_1d(np.asarray(ps, dtype=np.float64))
    if np.any(~(ps > 0) | ~(ps < 1)):
        raise InputError("pass rates must lie strictly inside (0, 1)")
    mean1, trace = _two_arm(fn, group, per_coord, jnp.asarray(ps),
                            {k: jnp.float64(v) for k, v in params.items()})
    grad1 = ps * (1.0 - ps)
    return np.asarray(mean1) / grad1, np.asarray(trace)


def scale_curve(name, ps, group: int, **params) -> np.ndarray:
    """c(p, G) for each p: E[ĝ] = c·∇p on the two-armed pass/fail bandit."""
    return binary_moments(name, ps, group, **params)[0]


def relative_variance(name, ps, group: int, **params) -> np.ndarray:
    """(tr Cov/c²) / tr Cov_RLOO at equal G: the variance at equal budget and equal step length
    relative to RLOO (NaN where c ≤ 0, i.e. the estimator does not ascend p there)."""
    c, v = binary_moments(name, ps, group, **params)
    _, v_rloo = binary_moments("rloo", ps, group)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, v / np.maximum(c, 1e-300) ** 2 / v_rloo, np.nan)


def shape_word(c: np.ndarray, ps: np.ndarray) -> str:
    """A one-word description of c(p, G) over a symmetric grid of p."""
    c = np.asarray(c)
    if np.max(c) - np.min(c) <= 1e-9 * max(1.0, np.max(np.abs(c))):
        return "flat"
    mid = c[np.argmin(np.abs(ps - 0.5))]
    ends = (c[0], c[-1])
    if mid < min(ends):
        return "U (favours hard and easy prompts)"
    if mid > max(ends):
        return "∩ (favours p ≈ 1/2)"
    return "monotone, favours " + ("hard" if c[0] > c[-1] else "easy") + " prompts"


# ---- docs/estimators.md ------------------------------------------------------------------------

DOC_PS = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
DOC_GROUP = 8
BATCH_ENSEMBLE = (0.2, 0.5, 0.7)  # the ledger's prompt ensemble (sims/claims/atlas.py)
TIE_SHIFT = 1e-12  # p = ½ + this breaks the two arms' |s|² tie
TESTED_BATCH_PEERS = ("grpo_batch_std", "reinforce_pp_baseline", "gpg_verl", "gdpo")


def _fmt(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{x:.3g}"


def render_markdown() -> str:
    """docs/estimators.md, generated from the registries (python -m sims.atlas)."""
    from sims import batch

    lines = [
        "# The estimator atlas",
        "",
        "Generated from the registries (`sims.estimators.REGISTRY`, `sims.batch.REGISTRY`) by "
        "`python -m sims.atlas`; a test keeps it current. Each entry's declared property is checked "
        "by the ledger (`pglab verify --only 'atlas.*'`), exactly and by Monte Carlo. See "
        "docs/design.md §4.9.",
        "",
        "Properties: **unbiased** E[ĝ] = ∇J; **direction-unbiased** E[ĝ] = c(G)·∇J for every reward law; "
        "**direction-unbiased (binary rewards)** E[ĝ] = c(p, G)·∇p per prompt for pass/fail rewards "
        "(it ascends a reweighted objective); **biased** none of these. c(p, G) is computed on the "
        "two-armed pass/fail bandit (`sims.atlas.scale_curve`); for estimators that read the weights "
        "(|s|², lengths) it is that bandit's value only.",
        "",
        "**Stand-ins.** Entries that read a per-token feature of a sequence (response length, token "
        "entropy, the final answer) receive |s(a)|² in its place on bandits (column *bandit stand-in*). "
        "Their property, c(p, G) and shape are marked *given the stand-in*: they describe the "
        "substitute, not the method, and a sequence testbed with real lengths and entropies is needed "
        "to judge the method. On the two-armed bandit both arms' |s|² tie at p = ½ "
        "(2(1 − p)² = 2p²), so such an entry's c can jump there; the column gives c(p, "
        f"{DOC_GROUP}) at p = ½ and ½ ± {TIE_SHIFT:g}.",
        "",
        f"| name | A_i | source | provenance | property | c(p, {DOC_GROUP}) at p = "
        + ", ".join(f"{p:g}" for p in DOC_PS) + " | shape | bandit stand-in | peers (tested to 1e-9) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in estimators.REGISTRY.items():
        if e.per_coordinate:
            cs, shape = "per-coordinate", "—"
        else:
            c = scale_curve(name, DOC_PS, DOC_GROUP)
            cs, shape = ", ".join(_fmt(x) for x in c), shape_word(c, DOC_PS)
        prop, stand_in = e.property, "—"
        if e.feature_substitute:
            tie = scale_curve(name, [0.5 - TIE_SHIFT, 0.5, 0.5 + TIE_SHIFT], DOC_GROUP)
            prop, cs, shape = prop + ", given the stand-in", cs + " (given the stand-in)", shape + ", given the stand-in"
            stand_in = (f"{e.feature_substitute}; c at p = ½ − {TIE_SHIFT:g}, ½, ½ + {TIE_SHIFT:g}: "
                        + ", ".join(_fmt(x) for x in tie)).replace("|", "∣")
        peers = ("; ".join(e.peers) or "—").replace("|", "∣")
        tested = e.tested_peers
        lines.append(f"| `{name}` | {e.summary.replace('|', '∣')} | {e.source or '—'} | {e.provenance} | "
                     f"{prop} | {cs} | {shape} | {stand_in} | "
                     f"{peers}{' (yes: ' + tested + ')' if tested else ' (no)'} |")
    ens = ", ".join(f"{p:g}" for p in BATCH_ENSEMBLE)
    lines += [
        "",
        "## Batch estimators",
        "",
        "`batch_advantages(rewards (P, G), weights (P, G), **params) -> (P, G)`: statistics across the "
        "prompts of a batch. c is per prompt and depends on the other prompts' pass rates; "
        "`sims.batch.exact_ensemble` computes it exactly by enumeration. The column c_x gives each "
        f"prompt's scale on the ensemble of two-armed pass/fail prompts p = ({ens}) at G = {DOC_GROUP} "
        "(weights |s(a)|², the stand-in where the method reads a per-token feature).",
        "",
        f"| name | formula | source | property | c_x at p = ({ens}), G = {DOC_GROUP} | reads weights "
        "| bandit stand-in | peers (tested to 1e-9) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, b in batch.REGISTRY.items():
        tested = " (yes)" if name in TESTED_BATCH_PEERS else " (no)"
        cx = ", ".join(_fmt(x) for x in batch.exact_ensemble(name, BATCH_ENSEMBLE, DOC_GROUP)["c"])
        prop, stand_in = b.property, "—"
        if b.feature_substitute:
            prop, cx, stand_in = prop + ", given the stand-in", cx + " (given the stand-in)", b.feature_substitute
        lines.append(f"| `{name}` | {b.summary.replace('|', '∣')} | {b.source} | {prop} | {cx} | "
                     f"{'yes' if b.uses_weights else 'no'} | {stand_in.replace('|', '∣')} | "
                     f"{'; '.join(b.peers) or '—'}{tested} |")
    lines += [
        "",
        "## Conventions that differ between the lab and its peers",
        "",
        "- GRPO's eps: verl 1e-6, TRL 1e-4, both outside the root and with ddof = 1 (`torch.std`); "
        "the lab's `grpo` defaults to 1e-6 and takes `--eps`.",
        "- All-equal groups: the lab centres about the first member, so it returns exact zeros in "
        "float32 and float64; the peers' float32 mean can leave a residue of one ulp that the "
        "whitening divides by eps.",
        "- Singleton groups: verl uses mean 0 and std 1 (the advantage is the raw reward); the lab "
        "refuses G = 1 for every estimator that needs two members.",
        "- RLOO is leave-one-out (G/(G − 1)·(R_i − mean R)); the group mean and GRPO include the member itself.",
        "- OPO's baseline includes the member itself; verl's optimal token baseline adds 1e-8 to the "
        "denominator (`opo --eps 1e-8`).",
        "- Batch whitening: verl's `masked_whiten` is token-weighted (each response counts L_i times), "
        "uses ddof = 1 over tokens, adds 1e-8 inside the root and divides masked means by N + 1e-8; "
        "TRL's batch scaling uses the response-level std (ddof = 1) plus 1e-4 outside the root and "
        "keeps the group mean as the centre.",
        "",
    ]
    return "\n".join(lines)


def write_doc():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "docs" / "estimators.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_markdown())
    tmp.replace(path)
    return path


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    print(write_doc())
