"""Claims of docs/design.md §4.9: every registry estimator's declared property, every batch
estimator pinned to an independent reference of its released formula (`sims.claims._references`),
and the papers' statements about the seeds' estimators (BNPO, GDPO, DGPO, ADORA, REAL, COPO).

The rows `atlas.registry.<name>` are generated from the registry: one per estimator, with an
exact check and a Monte Carlo check chosen by the entry's declared property (`registry_checks`).
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import sympy as sp
from scipy import integrate, optimize
from scipy.special import beta as beta_fn

from bandits import rewards as R
from bandits import softmax
from sims import atlas, batch, estimators
from sims.claims import _kit as kit
from sims.claims import _references
from sims.engines import binary, checks, exact, montecarlo, stats
from sims.ledger import Check, Outcome, claim, symbolic_zero

TOL = 1e-10
SOURCE = "docs/design.md §4.9"
_BERN = R.bernoulli([0.8, 0.4, 0.1])
_LOGITS = (0.3, -0.2, 0.1)
_G = 4


def _cosine(a, b) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def _samples(quick: bool) -> int:
    return 100_000 if quick else checks.SUITE_SAMPLES


def registry_checks(est: estimators.Estimator) -> list[Check]:
    """The exact and Monte Carlo checks of an entry's declared property (any registry entry)."""
    name, prop = est.name, est.property
    g0 = max(_G, est.min_group)

    if prop == estimators.UNBIASED:
        def ex(quick):
            insts = kit.random_instances(quick, seed=21)
            worst, where = kit.worst_over(insts, lambda lg, m, g: exact.moments(est, lg, m, max(g, est.min_group)).bias)
            return Outcome(worst <= TOL, worst, f"≤ {TOL:g}", f"max |E[ĝ] − ∇J| over {len(insts)} random bandits",
                           counterexample=where if worst > TOL else None)

        def mc(quick):
            c = checks.mc_unbiased(est, _LOGITS, _BERN, g0, _samples(quick), 31)
            return kit.mc_outcome(c, "MC mean vs ∇J")

    elif prop == estimators.DIRECTION:
        def residual(lg, m, g):
            mo = exact.moments(est, lg, m, max(g, est.min_group))
            c = mo.mean @ mo.true_gradient / max(mo.true_gradient @ mo.true_gradient, 1e-300)
            return mo.mean - c * mo.true_gradient

        def ex(quick):
            insts = kit.random_instances(quick, seed=22)
            worst, where = kit.worst_over(insts, residual)
            return Outcome(worst <= TOL, worst, f"≤ {TOL:g}", f"max |E[ĝ] − c∇J| over {len(insts)} random bandits",
                           counterexample=where if worst > TOL else None)

        def mc(quick):
            return kit.mc_outcome(checks.mc_matches_exact(est, _LOGITS, _BERN, g0, _samples(quick), 32),
                               "MC vs exact (mean, tr Cov)")

    elif prop == estimators.BINARY_DIRECTION and (est.uses_weights or est.per_coordinate):
        def ex(quick):
            return Outcome(False, "reads the per-sample weights", "advantages from the rewards alone",
                           f"{name!r} is declared direction-unbiased for binary rewards with c(J, G) from "
                           "the rewards alone, but it reads the per-sample weights (uses_weights)")

        mc = ex

    elif prop == estimators.BINARY_DIRECTION:
        def residual(lg, m, g):
            g = max(g, est.min_group)
            mo = exact.moments(est, lg, m, g)
            return mo.mean - binary.binary_reward_scale(est, mo.objective, g) * mo.true_gradient

        def ex(quick):
            insts = kit.random_instances(quick, seed=23, kinds=("bernoulli",))
            worst, where = kit.worst_over(insts, residual)
            return Outcome(worst <= TOL, worst, f"≤ {TOL:g}",
                           f"max |E[ĝ] − c(J, G)∇J| over {len(insts)} Bernoulli bandits, c from the rewards alone",
                           counterexample=where if worst > TOL else None)

        def mc(quick):
            m = montecarlo.moments(est, _LOGITS, _BERN, g0, _samples(quick), seed=33)
            j = float(softmax.objective(np.asarray(_LOGITS), _BERN.means))
            target = binary.binary_reward_scale(est, j, g0) * np.asarray(
                softmax.gradient(np.asarray(_LOGITS), _BERN.means))
            return kit.mc_outcome(stats.z_check(f"{name} G={g0}: MC mean vs c(J, G)∇J", m.mean, m.mean_se, target),
                               "MC mean vs c(J, G)∇J")

    else:
        def ex(quick):
            for logits, model, group in kit.random_instances(quick, seed=24, kinds=("bernoulli", "categorical")):
                mo = exact.moments(est, logits, model, max(group, est.min_group))
                cos = _cosine(mo.mean, mo.true_gradient)
                if cos < 1 - 1e-6:
                    return Outcome(True, {"cosine": cos, "at": kit.describe(logits, model, group)},
                                   "cosine < 1 − 1e-6", "exact E[ĝ] is not parallel to ∇J on this bandit")
            return Outcome(False, "every instance parallel", "cosine < 1 − 1e-6 somewhere",
                           "no counterexample found: the entry may be direction-unbiased")

        def mc(quick):
            return kit.mc_outcome(checks.mc_matches_exact(est, _LOGITS, _BERN, g0, _samples(quick), 34),
                               "MC vs exact (mean, tr Cov)")

    return [Check("exact", ex), Check("monte_carlo", mc)]


_STATEMENTS = {
    estimators.UNBIASED: "is unbiased: E[ĝ] = ∇J on every finite reward law.",
    estimators.DIRECTION: "is unbiased in direction: E[ĝ] = c(G)·∇J on every finite reward law.",
    estimators.BINARY_DIRECTION: ("is unbiased in direction for pass/fail rewards: E[ĝ] = c(J, G)·∇J with c "
                                  "a function of the pass rate and G alone (a reweighted objective)."),
    estimators.BIASED: "is biased: on some bandit (binary or not) E[ĝ] is not a multiple of ∇J.",
}


def _register_rows():
    for name, est in list(estimators.REGISTRY.items()):
        cond = "formula reconstructed by the lab" if est.provenance == "reconstructed" else ""
        if est.feature_substitute:  # the verdict describes the bandit stand-in, not the method
            cond = "; ".join(x for x in (cond, f"given the bandit stand-in: {est.feature_substitute}") if x)
        claim(f"atlas.registry.{name}", est.source or SOURCE, f"`{name}` ({est.summary}) " + _STATEMENTS[est.property],
              conditions=cond)(lambda est=est: registry_checks(est))


_register_rows()


def _adv(name, r, w=None, **p):
    est = estimators.get(name)
    r = jnp.asarray(r, dtype=jnp.float64)
    w = jnp.ones_like(r) if w is None else jnp.asarray(w, dtype=jnp.float64)
    return np.asarray(est.advantages(r, w, **(est.params | p)))


def _binary_groups(max_g: int = 8):
    for g in range(2, max_g + 1):
        for k in range(0, g + 1):
            yield g, np.array([1.0] * k + [0.0] * (g - k))


# Batches whose pass rates spread more than a Beta law allows (v > m(1 − m)), and one prompt.
_BNPO_WIDE = {"p̂ = (1/8, 7/8)": [[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]],
              "p̂ = (1/8, 1, 0, 7/8)": [[1, 0, 0, 0, 0, 0, 0, 0], [1] * 8, [0] * 8, [1] * 7 + [0]],
              "one prompt, p̂ = 2/3": [[1, 0, 1, 1, 0, 1]]}


@claim("atlas.bnpo_batch_reinforce_limit", "Xiao et al. 2025 (BNPO), abstract ('generalizes REINFORCE'); "
       "code changyi7231/BNPO (α = max(1, 1 + a/3))",
       "With BNPO's batch rule, pass rates spread wider than any Beta law (v > m(1 − m), so the moment "
       "estimate c < 0) or a single prompt (m = 0, v = 1) clamp α = β = 1, and `bnpo_batch` is REINFORCE "
       "with the group-mean baseline: A = R − p̂ exactly.",
       conditions="pass/fail rewards; R − p̂ in exact fractions")
def _():
    def run(quick):
        est = batch.get("bnpo_batch")
        params = {k: jnp.float64(v) for k, v in batch.resolve_params(est).items()}
        worst, out = 0.0, {}
        for label, r in _BNPO_WIDE.items():
            want = [[float(Fraction(x) - Fraction(sum(g), len(g))) for x in g] for g in r]
            rr = jnp.asarray(r, dtype=jnp.float64)
            got = np.asarray(est.advantages(rr, jnp.ones_like(rr), **params))
            alpha, beta, _ = batch.bnpo_moments(rr)
            out[label] = {"alpha": float(alpha), "beta": float(beta)}
            worst = max(worst, float(np.max(np.abs(got - np.asarray(want)))))
        return Outcome(worst < 1e-12, {"max_error": worst, "moments": out}, "< 1e-12",
                       "max |A_bnpo_batch − (R − p̂)| over batches with v > m(1 − m) and one prompt")

    return [Check("exact", run)]


@claim("atlas.bnpo_grpo", "Xiao et al. 2025 (BNPO), abstract",
       "BNPO at α = β = 3/2 is GRPO up to a constant: A = (π/8)(R − p̂)/std(R, ddof=0) = "
       "(π/8)·√(G/(G−1))·A_GRPO(eps = 0) for pass/fail rewards.",
       conditions="equal to GRPO with the population std, no eps; verl/TRL GRPO (ddof = 1, eps) differ by "
                  "the G-dependent factor √(G/(G−1)) and eps; checked on mixed groups (both give 0 on "
                  "all-equal groups)")
def _():
    def symbolic(quick):
        h = sp.Rational(3, 2)
        return symbolic_zero(sp.simplify(sp.gamma(h) ** 2 / sp.gamma(2 * h) - sp.pi / 8), "Γ(3/2)²/Γ(3) − π/8")

    def run(quick):
        worst = 0.0
        for g, r in _binary_groups():
            if r.sum() in (0, g):
                worst = max(worst, float(np.max(np.abs(_adv("bnpo", r)))), float(np.max(np.abs(_adv("grpo", r)))))
                continue
            k = math.pi / 8 * math.sqrt(g / (g - 1))
            worst = max(worst, float(np.max(np.abs(_adv("bnpo", r) - k * _adv("grpo", r, eps=0.0)))))
        return Outcome(worst < 1e-12, worst, "< 1e-12", "every pass/fail group with G = 2..8")

    return [Check("symbolic", symbolic), Check("exact", run)]


def _bnpo_proxy(alpha, beta, a, b):
    """E_{p~Beta(a,b)}[p(1−p)/f(p; α, β)²] by quadrature."""
    def integrand(p):
        f = p ** (alpha - 1) * (1 - p) ** (beta - 1) / beta_fn(alpha, beta)
        dens = p ** (a - 1) * (1 - p) ** (b - 1) / beta_fn(a, b)
        return p * (1 - p) / f**2 * dens

    return integrate.quad(integrand, 0, 1, limit=200)[0]


@claim("atlas.bnpo_a_over_3", "BNPO code (α = 1 + a/3); derivation of the lab",
       "If pass rates follow Beta(a, b), E[p(1−p)/f(p; α, β)²] = B(α,β)²B(a+3−2α, b+3−2β)/B(a,b) is "
       "minimised at α = 1 + a/3, β = 1 + b/3 (the official code's rule).",
       conditions="a second-moment proxy: ignores the squared mean, p-dependent score norms and the "
                  "plug-in p̂; formula reconstructed by the lab")
def _():
    def symbolic(quick):
        a, b, al, be = sp.symbols("a b alpha beta", positive=True)
        logv = 2 * sp.log(sp.beta(al, be)) + sp.log(sp.beta(a + 3 - 2 * al, b + 3 - 2 * be))
        at = {al: 1 + a / 3, be: 1 + b / 3}
        grads = [sp.diff(logv, v).rewrite(sp.polygamma).subs(at) for v in (al, be)]
        return symbolic_zero([sp.simplify(sp.expand_func(x)) for x in grads], "∂ log V/∂(α, β) at (1 + a/3, 1 + b/3)")

    def run(quick):
        worst, rows = 0.0, []
        for a, b in ([(2.0, 5.0), (0.7, 1.5)] if quick else [(2.0, 5.0), (0.7, 1.5), (3.0, 3.0), (1.0, 4.0)]):
            closed = lambda al, be: beta_fn(al, be) ** 2 * beta_fn(a + 3 - 2 * al, b + 3 - 2 * be) / beta_fn(a, b)  # noqa: E731
            quad = _bnpo_proxy(1.3, 1.2, a, b)
            res = optimize.minimize(lambda x: math.log(closed(*x)), x0=[1.1, 1.1], method="Nelder-Mead",
                                    options={"xatol": 1e-10, "fatol": 1e-14})
            err = max(abs(quad - closed(1.3, 1.2)) / closed(1.3, 1.2),
                      abs(res.x[0] - (1 + a / 3)), abs(res.x[1] - (1 + b / 3)))
            rows.append({"a": a, "b": b, "argmin": np.round(res.x, 8).tolist(), "rule": [1 + a / 3, 1 + b / 3]})
            worst = max(worst, err)
        return Outcome(worst < 1e-6, rows, "argmin = (1 + a/3, 1 + b/3)",
                       f"quadrature vs closed form and numerical argmin, max error {worst:.1e}")

    return [Check("symbolic", symbolic), Check("exact", run)]


@claim("atlas.gdpo_toy", "GDPO project page (NVlabs/GDPO), two-reward toy",
       "Two binary rewards, G = 2: GRPO on the summed reward maps totals (0,1), (0,2) and (1,2) all to "
       "±0.7071; GDPO's per-reward z-scores give ±0.7071 for (0,1) and ±1.4142 for (0,2) "
       "(±0.70701 and ±1.41401 with eps = 1e-4), and batch whitening keeps their ratio 2.")
def _():
    def run(quick):
        grpo = {t: _adv("grpo", np.array(t, float), eps=0.0)[1] for t in [(0, 1), (0, 2), (1, 2)]}
        comps = {(0, 1): [[0, 0], [0, 1]], (0, 2): [[0, 1], [0, 1]]}
        gd = {}
        for eps in (0.0, 1e-4):
            for t, cs in comps.items():
                z = sum(_adv("grpo", np.array(c, float), eps=eps) if c[0] != c[1] else np.zeros(2)
                        for c in cs)
                gd[(t, eps)] = float(z[1])
        r = jnp.asarray([[[0, 0], [0, 1]], [[0, 0], [1, 1]]], dtype=jnp.float64)  # (P=2, G=2, C=2)
        a = np.asarray(batch.gdpo(r, jnp.ones((2, 2))))
        ratio = float(a[1, 1] / a[0, 1])
        s2 = math.sqrt(2)
        ok = (all(abs(v - 1 / s2) < 1e-12 for v in grpo.values())
              and abs(gd[((0, 1), 0.0)] - 1 / s2) < 1e-12 and abs(gd[((0, 2), 0.0)] - s2) < 1e-12
              and round(gd[((0, 1), 1e-4)], 5) == 0.70701 and round(gd[((0, 2), 1e-4)], 5) == 1.41401
              and abs(ratio - 2.0) < 1e-3)
        return Outcome(ok, {"grpo": [grpo[t] for t in grpo], "gdpo_eps0": [gd[((0, 1), 0.0)], gd[((0, 2), 0.0)]],
                            "gdpo_eps1e-4": [gd[((0, 1), 1e-4)], gd[((0, 2), 1e-4)]], "batch_ratio": ratio},
                       {"grpo": [0.7071] * 3, "gdpo": [0.7071, 1.4142], "gdpo_eps1e-4": [0.70701, 1.41401]},
                       "the positive member's advantage")

    return [Check("exact", run)]


@claim("atlas.large_group_limits", "DGPO (MathForge) C3, derivation of the notes; GRPO",
       "As G → ∞ with pass/fail rewards, DGAE's scale c(p, G) → 1/(2p(1−p)) (it ascends ½·logit p) while "
       "GRPO's → 1/√(p(1−p)) (it ascends 2·arcsin√p).")
def _():
    def run(quick):
        ps = np.linspace(0.2, 0.8, 7)
        out = {}
        for g in (64, 512, 2048):
            d = binary.scale_curve(estimators.get("dgae"), ps, g, eps=0.0) * 2 * ps * (1 - ps)
            q = binary.scale_curve(estimators.get("grpo"), ps, g) * np.sqrt(ps * (1 - ps))
            out[g] = [float(np.max(np.abs(d - 1))), float(np.max(np.abs(q - 1)))]
        shrinking = all(out[2048][i] < out[512][i] < out[64][i] or out[2048][i] < 1e-9 for i in (0, 1))
        return Outcome(shrinking and max(out[2048]) < 2e-3, out, "→ 0, < 2e-3 at G = 2048",
                       "max_p |c·2p(1−p) − 1| (dgae) and |c·√(p(1−p)) − 1| (grpo), p ∈ [0.2, 0.8], exact")

    return [Check("exact", run)]


@claim("atlas.adora_unbiased", "ADORA (arXiv 2602.10019), summary: 'while preserving unbiased policy updates'",
       "ADORA's length-conditioned reweighting keeps the update unbiased in direction (E[ĝ] ∥ ∇J, as GRPO's "
       "is for pass/fail rewards).", expected="refuted",
       conditions="lengths stand for |s(a)|² on the bandit; the weight depends on the group's own rewards "
                  "and lengths")
def _():
    def search(quick):
        for logits, model, group in kit.random_instances(quick, seed=7, kinds=("bernoulli",)):
            g = max(group, 3)
            grpo_ = exact.moments(estimators.get("grpo"), logits, model, g)
            ad = exact.moments(estimators.get("adora"), logits, model, g)
            cos = _cosine(ad.mean, ad.true_gradient)
            if cos < 1 - 1e-6:
                return Outcome(False, {"cosine_adora": cos, "cosine_grpo": _cosine(grpo_.mean, grpo_.true_gradient)},
                               "cosine 1", "exact E[ĝ_ADORA] is not parallel to ∇J where GRPO's is",
                               counterexample=kit.describe(logits, model, g))
        return Outcome(True, "no counterexample", "cosine 1", "every instance parallel")

    return [Check("exact", search)]


_REAL_PS = tuple(Fraction(k, 10) for k in range(1, 10))


def real_scale_reference(p: Fraction, g: int, tau=Fraction(1, 2), centred: bool = False) -> Fraction:
    """c(p, G) = E[u]/(p(1 − p)), u = (1/G) Σ_i A_i (R_i − p), by enumeration of the success count k in
    exact fractions, with REAL's on-policy effective advantage (G/τ)[y/(1 + k) − (1 − y)/(1 + G − k)] on
    mixed groups (0 otherwise); `centred` uses its zero-sum part A − mean A instead."""
    total = Fraction(0)
    for k in range(1, g):
        a_pos, a_neg = Fraction(g) / tau / (1 + k), -Fraction(g) / tau / (1 + g - k)
        if centred:
            m = (k * a_pos + (g - k) * a_neg) / g
            a_pos, a_neg = a_pos - m, a_neg - m
        u = (k * a_pos * (1 - p) - (g - k) * a_neg * p) / g
        total += math.comb(g, k) * p**k * (1 - p) ** (g - k) * u
    return total / (p * (1 - p))


@claim("atlas.real_not_zero_sum", "REAL (arXiv 2602.05630), on-policy effective advantage (reconstructed)",
       "REAL's advantages do not sum to zero over a mixed group, and the non-zero-sum part is not a harmless "
       "shift: the lab's exact c(p, G) for `real` (E[ĝ] = c·∇p on pass/fail rewards) equals an independent "
       "enumeration of the effective advantage and differs from the c of its zero-sum part.",
       conditions="formula reconstructed by the lab from the official loss at ratio 1; τ = 1/2, G = 8, "
                  "p = 0.1..0.9; reference in exact fractions")
def _():
    def run(quick):
        g = 8
        ps = np.array([float(p) for p in _REAL_PS])
        ref = np.array([float(real_scale_reference(p, g)) for p in _REAL_PS])
        ref_centred = np.array([float(real_scale_reference(p, g, centred=True)) for p in _REAL_PS])
        lab = binary.scale_curve(estimators.get("real"), ps, g)
        err = float(np.max(np.abs(lab - ref) / np.maximum(1.0, np.abs(ref))))
        gap = float(np.max(np.abs(ref - ref_centred)))
        ok = err < 1e-12 and gap > 1e-3
        return Outcome(ok, {"max_rel_error": err, "c_real": np.round(lab, 6).tolist(),
                            "c_zero_sum_part": np.round(ref_centred, 6).tolist(), "max_gap": gap},
                       "lab = reference (< 1e-12); gap to the zero-sum part > 1e-3",
                       "exact two-armed route vs enumeration in fractions")

    return [Check("exact", run)]


@claim("atlas.gdpo_one_reward", "GDPO C4 (derivation of the notes)",
       "With one reward component, GDPO (TRL convention) is GRPO (eps 1e-4) times one global batch scale: the "
       "batch mean of the summed z-scores is exactly 0.")
def _():
    def run(quick):
        rng = np.random.default_rng(5)
        worst = 0.0
        for _ in range(20):
            r = jnp.asarray((rng.uniform(size=(3, 4)) < 0.5).astype(float))
            a = np.asarray(batch.gdpo(r, jnp.ones_like(r)))
            z = np.asarray(estimators.grpo(r, None, 1e-4))
            if np.any(z != 0):
                scale = np.sum(a * z) / np.sum(z * z)
                worst = max(worst, float(np.max(np.abs(a - scale * z))))
        return Outcome(worst < 1e-12, worst, "< 1e-12", "random pass/fail batches P = 3, G = 4")

    return [Check("exact", run)]


_ENSEMBLE = (0.2, 0.5, 0.7)

# Fixed reward batches (P prompts × G members) for the pins: mixed groups; all-pass and all-fail groups
# beside mixed ones; a single prompt; non-binary rewards in [0, 1] and outside it; every group all-equal;
# every prompt at the same pass rate (BNPO's v = 0); GDPO's several reward components (P × G × C).
PIN_BATCHES = {
    "mixed": [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]],
    "degenerate_groups": [[1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]],
    "one_prompt": [[1, 0, 1, 1, 0]],
    "graded": [[0.2, 0.7, 0.35], [0.9, 0.1, 0.0], [0.3, 0.3, 0.3]],
    "signed": [[1.5, -0.5, 0.0, 2.0], [0.25, 0.25, 1.0, -1.0]],
    "all_equal": [[1, 1, 1], [0, 0, 0]],
    "same_rate": [[1, 0, 0, 0], [0, 1, 0, 0]],
}
PIN_COMPONENTS = {"two_rewards": [[[0, 1], [1, 1], [0, 0]], [[1, 0], [1, 0], [1, 1]]]}
# Rewards outside [0, 1] are not in BNPO's domain (its code asserts p̂ ∈ [0, 1]).
_PIN_SKIP = {"bnpo_batch": ("signed",)}
PIN_TOL = 1e-9


def _pin_features(rewards):
    """Deterministic lengths (1..5 tokens) and answer identities (0 for a reward of 1, else one of
    three wrong answers) for a batch."""
    lengths = [[1 + (3 * q + 2 * i) % 5 for i in range(len(g))] for q, g in enumerate(rewards)]
    answers = [[0 if r == 1 else 1 + (q + i) % 3 for i, r in enumerate(g)] for q, g in enumerate(rewards)]
    return lengths, answers


def _pin_cases(name):
    """(label, rewards for the lab, weights for the lab, reference advantages) for `name`."""
    ref, feature = _references.REFERENCES[name], _references.FEATURES.get(name)
    for label, r in PIN_BATCHES.items():
        if label in _PIN_SKIP.get(name, ()):
            continue
        lengths, answers = _pin_features(r)
        if feature == "lengths":
            yield label, r, lengths, ref(r, lengths)
        elif feature == "answers":
            yield label, r, answers, ref(r, answers)
        elif name == "gdpo":
            yield label, r, None, ref([[[x] for x in g] for g in r])
        else:
            yield label, r, None, ref(r)
    if name == "gdpo":
        for label, r in PIN_COMPONENTS.items():
            yield label, r, None, ref(r)
    if name == "gdpo_verl":
        for label, r in PIN_COMPONENTS.items():
            lengths, _ = _pin_features(r)
            yield label, r, lengths, ref(r, lengths)


def batch_pin_check(name: str) -> Outcome:
    """The lab's `batch.REGISTRY[name].advantages` at its default parameters against the independent
    reference written from the released code (`sims.claims._references`) on the fixed batches."""
    est = batch.get(name)
    if name not in _references.REFERENCES:
        return Outcome(False, "no reference", "an independent reference",
                       f"{name!r} has no independent reference in sims.claims._references")
    params = {k: jnp.float64(v) for k, v in batch.resolve_params(est).items()}
    worst, where, rows = 0.0, None, {}
    for label, r, w, want in _pin_cases(name):
        r = jnp.asarray(r, dtype=jnp.float64)
        w = jnp.ones(r.shape[:2]) if w is None else jnp.asarray(w, dtype=jnp.float64)
        got = np.asarray(est.advantages(r, w, **params), dtype=np.float64)
        want = np.asarray([[float(x) for x in g] for g in want])
        err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))) if got.shape == want.shape \
            else math.inf
        err = err if np.isfinite(err) else math.inf
        rows[label] = np.round(got, 6).tolist()
        if where is None or err > worst:
            worst, where = err, label
    ok = worst <= PIN_TOL
    return Outcome(ok, {"max_rel_error": worst, "worst_batch": where, "advantages": rows},
                   f"≤ {PIN_TOL:g} on every batch",
                   f"lab advantages vs the released formula recomputed in plain Python on {len(rows)} fixed "
                   f"batches ({', '.join(rows)})",
                   counterexample=None if ok else {"batch": where, "max_rel_error": worst})


def batch_mc_check(name: str, quick: bool, shift: float = 0.0) -> stats.ZCheck:
    """Monte Carlo per-prompt c_x against exact enumeration on a 3-prompt ensemble (G = 4).
    `shift` perturbs the exact value (a planted defect for the tests)."""
    ex = batch.exact_ensemble(batch.get(name), _ENSEMBLE, 4)
    mc = montecarlo.ensemble(batch.get(name), _ENSEMBLE, 4, 60_000 if quick else 400_000, seed=41)
    return stats.z_check(f"{name}: MC c_x vs exact", mc["c"], mc["c_se"], ex["c"] * (1 + shift))


def _register_batch_rows():
    for name, b in batch.REGISTRY.items():
        def checks_(name=name):
            def pins(quick):
                return batch_pin_check(name)

            def mc(quick):
                return kit.mc_outcome(batch_mc_check(name, quick), "MC vs exact")

            return [Check("exact", pins), Check("monte_carlo", mc)]

        claim(f"atlas.batch.{name}", b.source,
              f"`{name}` ({b.summary}) gives the released formula's advantages on fixed reward batches (all-pass, "
              "all-fail and all-equal groups, one prompt, non-binary rewards), recomputed independently of the "
              "lab; on a prompt ensemble exact enumeration and Monte Carlo agree on the per-prompt scales c_x "
              "(E[ĝ_x] = c_x·∇p_x).",
              conditions="default parameters; equal lengths where the released code weighs tokens, except "
                         "REINFORCE++ and verl's GDPO (lengths 1..5)")(checks_)


_register_batch_rows()


_BATCH_LOGITS = np.array([[0.5, -0.3, 0.0], [-1.0, 0.4, 0.2], [0.0, 0.0, 1.0]])
_BATCH_SUCCESS = np.array([[0.9, 0.2, 0.5], [0.1, 0.6, 0.3], [0.8, 0.7, 0.05]])


def batch_direction_check(name: str, quick: bool, factor: float = 1.0) -> stats.ZCheck:
    """MC E[ĝ_x] on 3-armed pass/fail prompts against c_x(p_1..p_P)·∇p_x, c_x from the exact
    two-armed enumeration (`factor` perturbs c: a planted defect for the tests)."""
    from bandits import softmax as S

    pis = np.asarray([S.policy(lg) for lg in _BATCH_LOGITS])
    ps = np.sum(pis * _BATCH_SUCCESS, axis=1)
    grads = np.asarray([S.gradient(lg, q) for lg, q in zip(_BATCH_LOGITS, _BATCH_SUCCESS)])
    c = batch.exact_ensemble(batch.get(name), ps, 4)["c"] * factor
    mc = montecarlo.ensemble_bandits(batch.get(name), _BATCH_LOGITS, _BATCH_SUCCESS, 4, 60_000 if quick else 400_000, seed=43)
    return stats.z_check(f"{name}: MC E[ĝ_x] vs c_x∇p_x", mc["mean"].ravel(), mc["se"].ravel(),
                         (c[:, None] * grads).ravel(), scale=float(np.linalg.norm(grads)))


@claim("atlas.batch_per_prompt_direction", SOURCE + " (derivation of the lab)",
       "For batch estimators that read the rewards only, each prompt's expected gradient on pass/fail "
       "rewards is c_x·∇p_x, with c_x a function of every prompt's pass rate and G (computed on two-armed "
       "prompts) — also on K-armed prompts: batch statistics reweight prompts but keep each one's direction.",
       conditions="E[s(a) | R] = (R − p)∇p/(p(1 − p)) for each prompt; 3 prompts × 3 arms, G = 4")
def _():
    def run(quick):
        out = {n: batch_direction_check(n, quick) for n, b in batch.REGISTRY.items() if not b.uses_weights}
        bad = [c.summary() for c in out.values() if not c.passed]
        return Outcome(not bad, f"{len(out) - len(bad)}/{len(out)} pass", f"{len(out)}/{len(out)}",
                       "; ".join(c.summary() for c in out.values()))

    return [Check("monte_carlo", run)]


_COPO_BATCH = [[1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0]]
_COPO_ANSWERS = [[1, 1, 1, 1], [2, 3, 2, 3], [1, 2, 1, 4], [1, 2, 3, 4]]


@claim("atlas.copo_degenerate_signal", "COPO (arXiv 2508.04138), abstract; code hijih/copo-code",
       "When every member of a group agrees (all pass or all fail, so GRPO's local advantage is 0), COPO's "
       "global term still gives that group a non-zero advantage, constant within the group: positive for "
       "an all-pass group, negative for an all-fail one (its global reward p̂ is 0; only the batch "
       "centring moves it).",
       conditions="the released default (soft with zero, k = 5, b = 1); 4 prompts × 4 members, answers "
                  "from the weights; values against the independent reference")
def _():
    def run(quick):
        est = batch.get("copo")
        params = {k: jnp.float64(v) for k, v in batch.resolve_params(est).items()}
        r = jnp.asarray(_COPO_BATCH, dtype=jnp.float64)
        a = np.asarray(est.advantages(r, jnp.asarray(_COPO_ANSWERS, dtype=jnp.float64), **params))
        want = np.asarray(_references.copo(_COPO_BATCH, _COPO_ANSWERS))
        err = float(np.max(np.abs(a - want)))
        ok = (err < 1e-9 and np.all(a[:2] != 0) and np.ptp(a[0]) == 0 and np.ptp(a[1]) == 0
              and a[1, 0] < 0 < a[0, 0])
        return Outcome(bool(ok), {"all_pass": a[0].tolist(), "all_fail": a[1].tolist(), "max_error": err},
                       "non-zero, constant within the group; = reference",
                       "4 prompts × 4 members, answers from the weights")

    return [Check("exact", run)]


def _bnpo_ratio(ps, g, alpha, beta):
    """BNPO's variance at equal budget and step length over REINFORCE's with the group mean."""
    return (atlas.relative_variance(estimators.get("bnpo"), ps, g, alpha=alpha, beta=beta)
            / atlas.relative_variance(estimators.get("grpo_mean"), ps, g))


@claim("atlas.bnpo_lower_variance", "Xiao et al. 2025 (BNPO), abstract: 'lower-variance gradient estimation'",
       "At equal budget and equal step length (tr Cov[ĝ]/c², pass/fail rewards), BNPO at α = β = 3/2 has lower "
       "variance than REINFORCE with the group-mean baseline at every pass rate, and exactly GRPO's (eps 0).",
       conditions="two-armed pass/fail bandit, G = 4, 8, 16, p on a grid in [0.02, 0.98]; one prompt's gradient")
def _():
    def run(quick):
        ps = np.linspace(0.02, 0.98, 13 if quick else 49)
        worst_ratio = max(float(np.max(_bnpo_ratio(ps, g, 1.5, 1.5))) for g in (4, 8, 16))
        worst_eq = max(float(np.max(np.abs(atlas.relative_variance(estimators.get("bnpo"), ps, g)
                                           / atlas.relative_variance(estimators.get("grpo"), ps, g, eps=1e-300) - 1)))
                       for g in (4, 8, 16))
        return Outcome(worst_ratio < 1 and worst_eq < 1e-9, {"max ratio to grpo_mean": worst_ratio,
                                                              "max |ratio to grpo − 1|": worst_eq},
                       "< 1; 0", "exact two-armed route")

    return [Check("exact", run)]


@claim("atlas.bnpo_rule_lower_variance", "Xiao et al. 2025 (BNPO), abstract; the code's a/3 rule",
       "With α, β from the a/3 rule (pass rates ~ Beta(1, 3): α = 4/3, β = 2), BNPO has lower variance than "
       "REINFORCE with the group-mean baseline for every prompt (equal budget, equal step length).",
       expected="refuted",
       conditions="the rule minimises a proxy averaged over the Beta law of pass rates; per prompt, mid-range "
                  "pass rates pay for it; two-armed pass/fail bandit, exact")
def _():
    def run(quick):
        ps = np.linspace(0.02, 0.98, 13 if quick else 49)
        for g in (4, 8, 16):
            r = _bnpo_ratio(ps, g, 4 / 3, 2.0)
            if np.max(r) > 1:
                k = int(np.argmax(r))
                return Outcome(False, {"ratio": float(r[k])}, "< 1 at every p",
                               "variance ratio BNPO/REINFORCE-mean above 1",
                               counterexample={"G": g, "p": float(ps[k]), "alpha": 4 / 3, "beta": 2.0})
        return Outcome(True, "ratio < 1 everywhere", "< 1 at every p", "exact two-armed route")

    return [Check("exact", run)]


# ---------------------------------------------------------------------------------------------
# The atlas on the sequence testbed (docs/design.md §4.12): real lengths, entropies and answers
# ---------------------------------------------------------------------------------------------

TESTBED_PS = (0.05, 0.25, 0.5, 0.75, 0.95)
TESTBED_GROUPS = (2, 4, 8)
WEIGHT_READERS = ("opo", "adora", "gtpo", "copo_local", "copo_local_soft")
# What the testbed finds with each paper's feature (measured; the claim checks it stays so).
TESTBED_EXPECTED = {"opo": "biased", "adora": "biased", "gtpo": "biased", "copo_local": "parallel to ∇J",
                    "copo_local_soft": "biased"}
OFF_MIN = 1e-6  # "biased" needs a part of E[ĝ] off ∇J above this (relative to |∇J|)


def verify_testbed_scale(agg: str = atlas.TESTBED_AGG, names=None, tol: float = 1e-12) -> Outcome:
    """Every entry that reads the rewards only: on the testbed E[ĝ] = c(p, G)·∇J with the two-armed
    bandit's c(p, G), to `tol` relative, at every p of TESTBED_PS and G of TESTBED_GROUPS."""
    names = [n for n, e in estimators.REGISTRY.items() if not e.uses_weights] if names is None else names
    ps = np.array(TESTBED_PS)
    worst, where = 0.0, None
    for name in names:
        est = estimators.get(name)
        for g in TESTBED_GROUPS:
            if g < est.min_group:
                continue
            s = atlas.testbed_scale(est, ps, g, agg=agg)
            b = binary.scale_curve(est, ps, g)
            err = max(float(np.max(np.abs(s["c"] - b) / np.maximum(np.abs(b), 1e-300))), float(np.max(s["off"])))
            if err > worst:
                worst, where = err, {"estimator": name, "G": g}
    return Outcome(worst <= tol, worst, f"≤ {tol:g}",
                   f"max over {len(names)} reward-only entries, p ∈ {TESTBED_PS}, G ∈ {TESTBED_GROUPS} of "
                   "|c_testbed − c_bandit|/c_bandit and |E[ĝ] − c∇J|/|∇J|",
                   counterexample=where if worst > tol else None)


def mc_testbed(name: str, p: float, quick: bool, expected_feature: str | None = None, seed: int = 17) -> stats.ZCheck:
    """Monte Carlo E[ĝ] (G = 8, the paper's feature) on the testbed against the exact mean computed
    with `expected_feature` (default: the paper's)."""
    from sims import sequences

    est = estimators.get(name)
    sp, theta, r, _ = atlas.testbed_task(p)
    n = 20_000 if quick else 200_000
    s = sequences.monte_carlo(est, sp, theta, r, 8, n, seed=seed, agg=atlas.TESTBED_AGG)
    want = atlas.testbed_moments(est, p, 8, expected_feature).mean
    return stats.z_check(f"{name} on the testbed, p = {p}", s.mean, np.sqrt(np.diag(s.cov) / s.samples), want)


@claim("sequences.atlas.reward_only_scale", SOURCE + ", §4.12",
       "For every registry estimator that reads the rewards only, the sequence testbed's pass/fail task gives "
       "exactly the two-armed bandit's c(p, G): E[ĝ] = c(p, G)·∇J with no component along the stop logits, "
       "whatever the lengths and entropies of the responses.",
       conditions=atlas.TESTBED_NOTE + f"; p ∈ {TESTBED_PS}, G ∈ {TESTBED_GROUPS}; Monte Carlo: GRPO at p = 0.25, "
                  "G = 8")
def _():
    return [Check("exact", lambda quick: verify_testbed_scale()),
            Check("monte_carlo", lambda quick: kit.mc_outcome(mc_testbed("grpo", 0.25, quick), "GRPO, G = 8"))]


def verify_weight_readers(feature: str | None = None, groups=(4, 8)) -> Outcome:
    """The testbed verdict of each weight-reading entry with the paper's feature (`feature` replaces
    it in the planted-defect tests), against TESTBED_EXPECTED, with the worst cosine."""
    ps = np.array(TESTBED_PS)
    found, cosines = {}, {}
    for name in WEIGHT_READERS:
        est = estimators.get(name)
        verdicts, cos = set(), 1.0
        for g in groups:
            s = atlas.testbed_scale(est, ps, g, feature)
            verdicts.add(atlas.testbed_verdict(s, tol=OFF_MIN))
            cos = min(cos, float(np.min(s["cosine"])))
        found[name] = verdicts.pop() if len(verdicts) == 1 else "mixed"
        cosines[name] = round(cos, 4)
    wrong = {n: found[n] for n in WEIGHT_READERS if found[n] != TESTBED_EXPECTED[n]}
    return Outcome(not wrong, {"verdicts": found, "min_cosine": cosines}, TESTBED_EXPECTED,
                   f"verdicts at G ∈ {groups}, p ∈ {TESTBED_PS}; biased = a part of E[ĝ] off ∇J above {OFF_MIN:g}·|∇J|",
                   counterexample=wrong or None)


@claim("sequences.atlas.weight_readers", "the registry's properties (docs/estimators.md); OPO (arXiv 2505.23585), "
       "ADORA (arXiv 2602.10019), GTPO (arXiv 2508.03772), COPO (arXiv 2508.04138)",
       "Given their papers' features on the sequence testbed (lengths for OPO and ADORA, the mean token entropy "
       "for GTPO, the final answers for COPO), OPO, ADORA, GTPO and COPO's only-soft local term are biased: E[ĝ] "
       "has a part off ∇J. COPO's released soft-with-zero local term, which weights right answers only, stays "
       "parallel to ∇J on a task with one right answer: it ascends a reweighted objective there.",
       conditions=atlas.TESTBED_NOTE + f"; p ∈ {TESTBED_PS}, G = 4 and 8; Monte Carlo: GTPO at p = 0.25, G = 8")
def _():
    return [Check("exact", lambda quick: verify_weight_readers()),
            Check("monte_carlo", lambda quick: kit.mc_outcome(mc_testbed("gtpo", 0.25, quick), "GTPO, G = 8"))]


BATCH_TESTBED_EXPECTED = {"grpo_batch_std": False, "gdpo": False, "reinforce_pp_baseline": True, "gdpo_verl": True,
                          "copo": False, "copo_soft": True}  # True: a part of some prompt's E[ĝ_x] off ∇J_x


def verify_batch_testbed(feature: str | None = None) -> Outcome:
    """Per batch entry: does some prompt's E[ĝ_x] have a part off ∇J_x above OFF_MIN (the token
    whitening's length-weighted shift; COPO's soft blend), against BATCH_TESTBED_EXPECTED."""
    found, rows = {}, {}
    for name in BATCH_TESTBED_EXPECTED:
        s = atlas.testbed_batch_scale(batch.get(name), feature=feature)
        found[name] = bool(np.max(s["off"]) > OFF_MIN)
        rows[name] = {"c_x": np.round(s["c"], 6).tolist(), "off_x": [float(f"{v:.3g}") for v in s["off"]]}
    wrong = {n: found[n] for n in found if found[n] != BATCH_TESTBED_EXPECTED[n]}
    return Outcome(not wrong, rows, {n: ("off ∇J_x" if v else "along ∇J_x") for n, v in BATCH_TESTBED_EXPECTED.items()},
                   f"per-prompt part of E[ĝ_x] off ∇J_x, threshold {OFF_MIN:g}·|∇J_x|", counterexample=wrong or None)


def mc_batch_testbed(name: str, quick: bool, expected_feature: str | None = None, seed: int = 19) -> stats.ZCheck:
    """Monte Carlo E[ĝ] of a batch entry on the testbed batch against the exact mean computed with
    `expected_feature` (default: the source's feature)."""
    from sims import sequence_batches

    n = 20_000 if quick else 200_000
    s = sequence_batches.batch_monte_carlo(batch.get(name), atlas.testbed_batch(), atlas.TESTBED_BATCH_GROUP, n,
                                           seed=seed, agg=atlas.TESTBED_AGG)
    want = atlas.testbed_batch_scale(batch.get(name), feature=expected_feature)["moments"].mean
    return stats.z_check(f"{name} on the testbed batch", s.mean, np.sqrt(np.diag(s.cov) / s.samples), want)


@claim("sequences.atlas.token_whitening", "REINFORCE++ (arXiv 2501.03262) and NVlabs/GDPO verl-GDPO, token-level "
       "masked_whiten; TRL GDPO normalize_then_sum",
       "On a batch of sequence prompts with real lengths, whitening the advantages over tokens (verl's "
       "REINFORCE++ baseline, verl's GDPO) puts a part of each prompt's E[ĝ_x] off ∇J_x: the token mean is "
       "length-weighted, so it shifts long and short responses' advantages unequally. Response-level batch scaling "
       "(TRL's scale_rewards='batch' and GDPO) keeps every prompt's E[ĝ_x] along ∇J_x; so does COPO's released "
       "soft-with-zero blend, while its only-soft blend does not.",
       conditions=atlas.TESTBED_NOTE + f"; two prompts, p = {atlas.TESTBED_BATCH_PS}, G = {atlas.TESTBED_BATCH_GROUP}; "
                  "Monte Carlo: REINFORCE++ baseline")
def _():
    return [Check("exact", lambda quick: verify_batch_testbed()),
            Check("monte_carlo", lambda quick: kit.mc_outcome(mc_batch_testbed("reinforce_pp_baseline", quick),
                                                             "REINFORCE++ baseline, G = 4"))]
