"""Claims of docs/design.md §4.3: reward variance and the policy-gradient norm, MMR1's Theorem 1 and its
covariance statements.

Symbolic checks come from `theory.vas` (sympy), exact checks evaluate closed forms
and exact expectations (`sims.vas`, built on the multiset enumeration of `sims.engines.exact`) on random
instances from fixed seeds, and every universally quantified statement also gets a search
(`sims.vas.search`: hypothesis, derandomised) that tries to break it. What Γ means:

* Theorem 1: Γ = E_a|s(a)|² = tr F = 1 − |π|² (a scalar), full K-logit parameterisation;
* the covariance statements: Γ = F = E[s sᵀ] (the Fisher matrix) in the reduced
  parameterisation (logits (θ_1, ..., θ_{K−1}, 0)), where F is non-singular; ĝ is one sample
  (r_a − J)s(a) of REINFORCE with the mean baseline b = J (a group of G divides Cov by G).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from bandits import rewards as R
from sims import vas as V
from sims.claims import _kit as kit
from sims.ledger import Check, Outcome, claim
from theory import oblrpo as TO
from theory import vas as TV

SOURCE_OURS = "derived here (docs/design.md §4.3), for MMR1's assumption |∇J|² ≥ c_min·Var[R]"
SOURCE_MMR1 = "Leng et al. 2025, MMR1 (arXiv:2509.21268)"
TOL = 1e-9  # relative slack tolerance: the bounds are attained, so rounding shows at ~1e-12
L_LAB = float(TO.SMOOTHNESS_L)  # ‖∇²J‖₂ ≤ 3/4, any K, rewards in [0, 1] (theory.oblrpo)
L_TWO = float(TV.TWO_ARM_L)  # ‖∇²J‖₂ ≤ 1/(3√3), K = 2 (theory.vas, exact)


# ---------------------------------------------------------------------------------------------
# The bounds
# ---------------------------------------------------------------------------------------------


def bound_violation(bound: str, factor: float = 1.0, stochastic: bool = False):
    """(logits, rewards) → True when |∇J| < factor·bound (relative slack < −1e-12).
    With `stochastic`, the rewards are Bernoulli success probabilities and the bounds use the
    between-arm variance Var_a(m_a)."""

    def violates(logits, rewards):
        m = np.asarray(rewards, dtype=np.float64)
        terms = V.bound_terms(np.asarray(logits, dtype=np.float64), m, m if stochastic else None)
        return float(V.bound_slack(terms, bound, factor)) < -TOL

    return violates


def check_bound_random(bound: str, factor: float = 1.0, quick: bool = True, seed: int = 0) -> Outcome:
    """|∇J| ≥ factor·bound on random bandits (K = 2..8, binary and uniform rewards): the worst
    relative slack over all of them, and the instance attaining it."""
    count = 500 if quick else 5000
    worst, where, tightest = math.inf, None, math.inf
    for k in range(2, 9):
        logits, r = V.random_bandits(seed * 100 + k, count, k)
        # include the uniform policy, where the first two bounds are equalities
        logits[:5] = 0.0
        terms = V.bound_terms(logits, r)
        slack = np.asarray(V.bound_slack(terms, bound, factor))
        i = int(np.argmin(slack))
        ratio = np.asarray(terms["grad_norm"]) / np.maximum(factor * np.asarray(terms[bound]), 1e-300)
        ratio = ratio[np.asarray(terms["var_between"]) > 1e-9]
        tightest = min(tightest, float(ratio.min()))
        if slack[i] < worst:
            worst, where = float(slack[i]), {"K": k, "logits": np.round(logits[i], 6).tolist(),
                                              "rewards": np.round(r[i], 6).tolist()}
    n = 7 * count
    return Outcome(worst >= -TOL, {"min_relative_slack": worst, "min_ratio": tightest},
                   f"slack ≥ −{TOL:g}",
                   f"|∇J| ≥ {factor:g}·{bound} on {n} random bandits (K = 2..8); the smallest "
                   f"ratio |∇J|/bound is {tightest:.6g}",
                   counterexample=where if worst < -TOL else None)


def search_bound(bound: str, factor: float = 1.0, quick: bool = True, stochastic: bool = False,
                 holds_if_not_found: bool = True) -> Outcome:
    """The hypothesis search for an instance with |∇J| < factor·bound."""
    kind = "bernoulli" if stochastic else "deterministic"
    out = V.search(bound_violation(bound, factor, stochastic), kind,
                   max_examples=300 if quick else 1500)
    holds = not out["found"] if holds_if_not_found else out["found"]
    return Outcome(holds, {"found": out["found"], "examples": out["examples"]},
                   "no violation found",
                   f"{out['engine']} search over {kind} bandits (K = 2..6) for |∇J| < "
                   f"{factor:g}·{bound}",
                   counterexample=_instance(out["example"], kind) if out["found"] else None)


def _instance(example, kind):
    if example is None:
        return None
    logits, r = example
    key = "success_probabilities" if kind == "bernoulli" else "rewards"
    if kind == "reduced":
        return {"logits": list(logits) + [0.0], key: list(r), "parameterisation": "reduced"}
    return {"logits": list(logits), key: list(r)}


@claim("vas.grad_norm_pimin", source=SOURCE_OURS,
       statement="|∇J|² ≥ π_min·Var[R] for a softmax bandit with deterministic rewards, so MMR1's "
                 "c_min can be taken as min_a π_a",
       conditions="softmax bandit, full parameterisation, deterministic rewards (any real values)")
def _pimin():
    return [
        kit.symbolic(lambda: {f"|∇J|² − cVar = Σπ_a(π_a − c)d_a² (K={k})": TV.pimin_identity(k)
                           for k in (2, 3, 4, 5)}
                  | {"equality at uniform π (K=4)": TV.uniform_equalities(4)["pimin"]}),
        Check("exact", lambda quick: check_bound_random("pimin", quick=quick)),
        Check("exact", lambda quick: search_bound("pimin", quick=quick)),
    ]


@claim("vas.grad_norm_cauchy_schwarz", source=SOURCE_OURS,
       statement="|∇J| ≥ Var[R]/√(Σ_a (r_a − J)²) for a softmax bandit with deterministic rewards "
                 "(Cauchy–Schwarz; more generally Var[R]/√(Σ_a (r_a − t)²) for any constant t)",
       conditions="softmax bandit, full parameterisation, deterministic rewards")
def _cauchy_schwarz():
    return [
        kit.symbolic(lambda: {f"Var = Σ u_a (r_a − t) (K={k})": TV.variance_shift_identity(k)
                           for k in (2, 3, 4, 5)}
                  | {f"Lagrange identity (K={k})": TV.lagrange_identity(k) for k in (2, 3, 4)}
                  | {"equality at uniform π (K=4)": TV.uniform_equalities(4)["cauchy_schwarz"]}),
        Check("exact", lambda quick: check_bound_random("cauchy_schwarz", quick=quick)),
        Check("exact", lambda quick: search_bound("cauchy_schwarz", quick=quick)),
    ]


@claim("vas.grad_norm_sqrt_k", source=SOURCE_OURS,
       statement="|∇J| ≥ Var[R]/√K for a softmax bandit with deterministic rewards in [0, 1]",
       conditions="softmax bandit, deterministic rewards r ∈ [0, 1]^K (|r_a − J| ≤ 1 − π_a ≤ 1)")
def _sqrt_k():
    return [
        kit.symbolic(lambda: {f"r_a − J = Σ_b π_b(r_a − r_b) (K={k})": TV.centred_reward_identity(k)
                           for k in (2, 3, 4)}
                  | {f"K − Σd² = Σ(1 − d)(1 + d) (K={k})": TV.sqrt_k_identity(k) for k in (2, 3, 4)}),
        Check("exact", lambda quick: check_bound_random("sqrt_k", quick=quick)),
        Check("exact", lambda quick: search_bound("sqrt_k", quick=quick)),
    ]


@claim("vas.grad_norm_sharp_sqrt_k", source=SOURCE_OURS,
       statement="|∇J| ≥ 2·Var[R]/√K for deterministic rewards in [0, 1] (twice the √K bound), "
                 "and 2 is the best constant: K = 2, r = (1, 0) gives equality for every policy",
       conditions="softmax bandit, deterministic rewards r ∈ [0, 1]^K")
def _sharp_sqrt_k():
    def symbolic(quick):
        ratio = TV.two_arm_ratio()
        zero = all(sp.simplify(TV.quarter_identity(k)) == 0 for k in (2, 3, 4, 5))
        ok = zero and sp.simplify(ratio - sp.Rational(1, 2)) == 0
        return Outcome(ok, {"K/4 − Σ(r−1/2)² − Σr(1−r)": "0" if zero else "≠ 0",
                            "Var/(√2|∇J|) at K=2, r=(1,0)": str(ratio)},
                       {"K/4 − Σ(r−1/2)² − Σr(1−r)": "0", "Var/(√2|∇J|) at K=2, r=(1,0)": "1/2"},
                       "sympy: Var = Σ u_a(r_a − 1/2) ≤ |∇J|·√K/2; the two-arm ratio is exactly 1/2")

    def tight(quick):
        out = check_bound_random("sharp_sqrt_k", quick=quick)
        ok = out.holds and out.measured["min_ratio"] <= 1 + TOL
        return Outcome(ok, out.measured, f"slack ≥ −{TOL:g} and min ratio = 1 (attained)",
                       out.detail, counterexample=out.counterexample)

    return [Check("symbolic", symbolic), Check("exact", tight),
            Check("exact", lambda quick: search_bound("sharp_sqrt_k", quick=quick))]


# ---------------------------------------------------------------------------------------------
# Stochastic rewards
# ---------------------------------------------------------------------------------------------


def _random_stochastic(quick: bool, seed: int = 7):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(40 if quick else 400):
        k = int(rng.integers(2, 7))
        logits = rng.normal(size=k) * rng.uniform(0, 3)
        if i % 2:
            model = R.bernoulli(rng.uniform(size=k))
        else:
            vals = [list(rng.uniform(0, 1, size=3)) for _ in range(k)]
            model = R.categorical(vals, [list(q) for q in rng.dirichlet(np.ones(3), size=k)])
        out.append((logits, model))
    return out


@claim("vas.total_variance", source="law of total variance; docs/design.md §4.3",
       statement="Var[R] = E_a[Var(R|a)] + Var_a(m_a), and ∇J = π∘(m − J) depends on the means only, "
                 "so the gradient-norm bounds hold with Var_a(m_a) in place of Var[R]",
       conditions="softmax bandit, finite reward laws")
def _total_variance():
    def exact_split(quick):
        worst = 0.0
        for logits, model in _random_stochastic(quick):
            t = V.bound_terms(logits, model.means, model.second_moments)
            pi = np.exp(logits - logits.max())
            pi /= pi.sum()
            within = float(pi @ (model.second_moments - model.means**2))
            worst = max(worst, abs(float(t["var"]) - within - float(t["var_between"])))
        return Outcome(worst <= 1e-13, worst, "≤ 1e-13",
                       "max |Var[R] − E Var(R|a) − Var_a m_a| over random Bernoulli and categorical bandits")

    def between_bounds(quick):
        worst, where = math.inf, None
        for logits, model in _random_stochastic(quick, seed=8):
            t = V.bound_terms(logits, model.means, model.second_moments)
            for b in ("pimin", "cauchy_schwarz", "sharp_sqrt_k"):
                s = float(V.bound_slack(t, b))
                if s < worst:
                    worst, where = s, {"bound": b, "logits": logits.tolist(), "means": model.means.tolist()}
        return Outcome(worst >= -TOL, worst, f"≥ −{TOL:g}",
                       "min relative slack of the π_min, Cauchy–Schwarz and 2/√K bounds with Var_a(m_a)",
                       counterexample=where if worst < -TOL else None)

    return [
        kit.symbolic(lambda: {f"total variance (K={k})": TV.total_variance_residual(k) for k in (2, 3, 4)}),
        Check("exact", exact_split),
        Check("exact", between_bounds),
        Check("exact", lambda quick: search_bound("pimin", quick=quick, stochastic=True)),
    ]


@claim("vas.variance_implies_gradient", source="MMR1's premise that reward variance drives the gradient; docs/design.md §4.3",
       statement="With stochastic rewards, reward variance implies a gradient: |∇J|² ≥ π_min·Var[R]",
       expected="refuted",
       conditions="softmax bandit with Bernoulli rewards; refuted by identical arms "
                  "(Var[R] = p(1 − p) > 0, ∇J = 0): only the between-arm part Var_a(m_a) drives ∇J")
def _variance_implies_gradient():
    def symbolic(quick):
        res = TV.identical_arms(3, sp.Rational(1, 2))
        refuted = res["var"] > 0 and all(g == 0 for g in res["grad"])
        return Outcome(not refuted, {"Var[R]": str(res["var"]), "grad": [str(g) for g in res["grad"]]},
                       "|∇J|² ≥ π_min·Var[R] > 0",
                       "sympy: three identical Bernoulli(1/2) arms, any policy",
                       counterexample={"success_probabilities": [0.5, 0.5, 0.5], "logits": "any",
                                       "Var[R]": str(res["var"]), "grad": "0"} if refuted else None)

    def exact_instance(quick):
        logits, p = np.array([0.4, -0.3, 0.0]), np.array([0.5, 0.5, 0.5])
        t = V.bound_terms(logits, p, p)
        g2, rhs = float(t["grad_norm"]) ** 2, float(t["pi_min"] * t["var"])
        return Outcome(g2 >= rhs, {"|∇J|²": g2, "π_min·Var[R]": rhs}, "|∇J|² ≥ π_min·Var[R]",
                       "float64 at logits (0.4, −0.3, 0), Bernoulli(0.5) arms",
                       counterexample=None if g2 >= rhs else {"logits": logits.tolist(),
                                                              "success_probabilities": p.tolist()})

    def search(quick):
        def violates(logits, p):
            m = np.asarray(p)
            t = V.bound_terms(np.asarray(logits), m, m)
            return float(t["grad_norm"]) ** 2 < float(t["pi_min"] * t["var"]) * (1 - 1e-9)

        out = V.search(violates, "bernoulli", max_examples=200 if quick else 1000)
        return Outcome(not out["found"], {"found": out["found"], "examples": out["examples"]},
                       "no violation", f"{out['engine']} search over Bernoulli bandits",
                       counterexample=_instance(out["example"], "bernoulli"))

    return [Check("symbolic", symbolic), Check("exact", exact_instance), Check("exact", search)]


# ---------------------------------------------------------------------------------------------
# MMR1's Theorem 1
# ---------------------------------------------------------------------------------------------


def _theorem_instances(quick: bool, seed: int = 11):
    """(logits, reward model, G, L, label) on which Theorem 1 is checked: general K with the
    lab's L = 3/4 and two-armed bandits with their exact L = 1/(3√3)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(24 if quick else 240):
        two = i % 2 == 0
        k = 2 if two else int(rng.integers(3, 6))
        logits = rng.normal(size=k) * rng.uniform(0, 5)
        if i % 4 < 2:
            model = R.deterministic(np.where(rng.uniform(size=k) < 0.5,
                                             rng.choice([0.0, 1.0], size=k), rng.uniform(size=k)))
        else:
            model = R.bernoulli(rng.uniform(size=k))
        group = int(rng.choice([1, 1, 2, 4]))
        out.append((logits, model, group, L_TWO if two else L_LAB))
    # the corner where the appendix condition breaks (K = 2, nearly deterministic good arm)
    out.append((np.array([0.0, 5.0]), R.deterministic([0.0, 1.0]), 1, L_TWO))
    return out


def verify_theorem1(condition: str, quick: bool, *, step_fraction: float = 1.0,
                    gain_factor: float = 0.25, instances=None) -> Outcome:
    """MMR1's Theorem 1 under `condition`, exactly: for each instance, c_min ∈ {|∇J|²/Var[R]
    (the largest admissible), π_min (deterministic rewards, where our bound makes it admissible)},
    η = step_fraction × the largest allowed step, and E[ΔJ] (exact enumeration of one group of
    REINFORCE with the mean baseline b = J) against gain_factor·η c_min Var[R]."""
    instances = _theorem_instances(quick) if instances is None else instances
    worst, where, count = math.inf, None, 0
    for logits, model, group, smooth in instances:
        for c in (("best", "pimin") if model.kind == "deterministic" else ("best",)):
            th = V.theorem1(logits, model, condition=condition, smoothness=smooth, c_min=c,
                            group=group, step_fraction=step_fraction, gain_factor=gain_factor)
            if not th.premise or th.promised <= 0:
                continue
            count += 1
            if th.ratio < worst:
                worst = th.ratio
                where = {"logits": np.round(logits, 6).tolist(), "rewards": model.kind,
                         "means": np.round(model.means, 6).tolist(), "G": group, "L": smooth,
                         "c_min": c, "c_min_value": th.c_min, "Gamma": th.gamma, "eta": th.eta,
                         "gain": th.gain, "promised": th.promised, "ratio": th.ratio}
    ok = worst >= 1 - 1e-9
    return Outcome(ok, {"min_gain_over_promised": worst, "cases": count}, "≥ 1",
                   f"condition {condition!r}, η = {step_fraction:g}×max step, promised "
                   f"{gain_factor:g}·η c_min Var[R]; exact E[ΔJ] over {count} cases",
                   counterexample=None if ok else where)


def theorem1_violation(condition: str, smoothness: float, step_fraction: float = 1.0,
                       gain_factor: float = 0.25, group: int = 1):
    """(logits, rewards) → True when Theorem 1's inequality fails on that deterministic bandit
    (c_min = |∇J|²/Var[R])."""

    def violates(logits, rewards):
        model = R.deterministic(rewards)
        th = V.theorem1(np.asarray(logits), model, condition=condition, smoothness=smoothness,
                        c_min="best", group=group, step_fraction=step_fraction,
                        gain_factor=gain_factor)
        if th.var < 1e-9 or th.promised <= 1e-14:
            return False
        return not th.holds

    return violates


def search_theorem1(condition: str, quick: bool, *, kind: str = "two_arm",
                    smoothness: float = L_TWO, step_fraction: float = 1.0,
                    gain_factor: float = 0.25) -> dict:
    return V.search(theorem1_violation(condition, smoothness, step_fraction, gain_factor), kind,
                    max_examples=300 if quick else 1200)


def _theorem_search_check(condition: str) -> Check:
    def run(quick):
        out = search_theorem1(condition, quick)
        return Outcome(not out["found"], {"found": out["found"], "examples": out["examples"]},
                       "no violation",
                       f"{out['engine']} search over two-armed bandits with the exact L = 1/(3√3), "
                       f"c_min = |∇J|²/Var[R], η at the largest step of condition {condition!r}",
                       counterexample=_instance(out["example"], "two_arm"))

    return Check("exact", run)


THEOREM1 = ("If |∇J|² ≥ c_min·Var[R] and J is L-smooth, one REINFORCE step with the mean baseline "
            "and step size η ≤ {step} gains E[J(θ+ηĝ)] − J(θ) ≥ (η c_min/4)·Var[R]")
THEOREM1_CONDITIONS = (
    "softmax bandit, full parameterisation, Γ = E|s|² = 1 − |π|²; ĝ one group of G ∈ {{1, 2, 4}} "
    "REINFORCE samples with the constant baseline b = J (the mean baseline); deterministic and "
    "Bernoulli rewards in [0, 1]; L = 3/4 (theory.oblrpo.SMOOTHNESS_L) for K ≥ 3 and the exact "
    "two-arm constant 1/(3√3) for K = 2; c_min = |∇J|²/Var[R] and, for deterministic rewards, "
    "π_min; η at the largest allowed step. Step-size condition: {which}")


@claim("vas.theorem1_main", source=SOURCE_MMR1 + ", Theorem 1 (main text)",
       statement=THEOREM1.format(step="c_min/(4LΓ)"),
       conditions=THEOREM1_CONDITIONS.format(
           which="η ≤ c_min/(4LΓ), as docs/design.md §4.3 records the main text's condition"))
def _theorem1_main():
    def symbolic(quick):
        fm = TV.factorised_margin("main")
        cs = [TV.cauchy_schwarz_gamma(k) for k in (2, 3)]
        ok = fm["minimum_per_c_min"] == sp.Rational(1, 2) and all(sp.simplify(x) == 0 for x in cs)
        return Outcome(ok, {"margin/c_min min": str(fm["minimum_per_c_min"]),
                            "VarΓ − |∇J|² = SOS": "0" if ok else str(cs)},
                       {"margin/c_min min": "1/2", "VarΓ − |∇J|² = SOS": "0"},
                       "sympy: c_min ≤ Γ, and the descent-lemma argument closes under the "
                       "factorisation E|ĝ|² = |∇J|² + Var[R]Γ (which is itself false, see "
                       "vas.cov_factorisation; hence the exact checks)")

    return [Check("symbolic", symbolic),
            Check("exact", lambda quick: verify_theorem1("main", quick)),
            _theorem_search_check("main")]


@claim("vas.theorem1_appendix", source=SOURCE_MMR1 + ", Theorem 1 (appendix condition, reconstructed)",
       statement=THEOREM1.format(step="min{1/L, c_min/(2LΓ)}"),
       expected="refuted",
       conditions=THEOREM1_CONDITIONS.format(
           which="η ≤ min{1/L, c_min/(2LΓ)} — our reconstruction of the appendix's condition (the "
                 "largest step for which the descent-lemma proof with the factorised second "
                 "moment closes); the published appendix wording could not be retrieved. It holds "
                 "with L = 3/4 but fails for K = 2 with the exact L = 1/(3√3)"))
def _theorem1_appendix():
    def symbolic(quick):
        fm = TV.factorised_margin("appendix")
        ok = fm["minimum_per_c_min"] == sp.Rational(1, 4)
        return Outcome(ok, {"margin/c_min min": str(fm["minimum_per_c_min"])},
                       {"margin/c_min min": "1/4"},
                       "sympy: under the (false) factorisation the argument would close")

    def lab_l(quick):
        insts = [x for x in _theorem_instances(quick) if x[3] == L_LAB]
        return verify_theorem1("appendix", quick, instances=insts)

    def two_arm(quick):
        insts = [x for x in _theorem_instances(quick) if x[3] == L_TWO]
        return verify_theorem1("appendix", quick, instances=insts)

    return [Check("symbolic", symbolic), Check("exact", lab_l), Check("exact", two_arm),
            _theorem_search_check("appendix")]


@claim("vas.theorem1_repaired", source=SOURCE_OURS + "; a corrected form of MMR1's Theorem 1",
       statement="With Γ_R = E[(R − J)²|s|²]/Var[R] in place of Γ, η ≤ c_min/(4LΓ_R) gives "
                 "E[ΔJ] ≥ (η c_min/4)·Var[R] for one group of any size with the mean baseline "
                 "(proved without the factorisation: E|ĝ|² ≤ Γ_R·Var[R])",
       conditions=THEOREM1_CONDITIONS.format(which="η ≤ c_min/(4LΓ_R)"))
def _theorem1_repaired():
    def symbolic(quick):
        rm = TV.repaired_margin()
        ok = sp.simplify(rm["excess_over_five_eighths"]) == 0
        return Outcome(ok, {"margin at full step": str(rm["at_full_step"])},
                       {"margin at full step": "5*Gamma_R*rho/8"},
                       "sympy: descent lemma with E|ĝ|² ≤ Γ_R Var[R] leaves a margin 5c_min/8 ≥ 0")

    def search(quick):
        out = search_theorem1("repaired", quick)
        return Outcome(not out["found"], {"found": out["found"], "examples": out["examples"]},
                       "no violation", f"{out['engine']} search, two arms, exact L",
                       counterexample=_instance(out["example"], "two_arm"))

    return [Check("symbolic", symbolic),
            Check("exact", lambda quick: verify_theorem1("repaired", quick)),
            Check("exact", search)]


@claim("vas.two_arm_smoothness", source=SOURCE_OURS,
       statement="For K = 2 and rewards in [0, 1], ‖∇²J‖₂ ≤ 1/(3√3) ≈ 0.19245, attained at "
                 "r = (1, 0), θ_1 − θ_2 = ln(2 ± √3)",
       conditions="two-armed softmax bandit, full parameterisation")
def _two_arm_smoothness():
    def symbolic(quick):
        res = TV.two_arm_smoothness()
        ok = all(x == 0 for x in res["hessian_residual"]) and sp.simplify(res["L2_minus_claimed"]) == 0
        return Outcome(ok, {"max|σ''|": str(res["max_abs_sigma2"]), "L2": str(res["L2"])},
                       {"max|σ''|": "sqrt(3)/18", "L2": "sqrt(3)/9"},
                       "sympy: Hessian = (r_1 − r_2)σ''(x)[[1, −1], [−1, 1]], max|σ''| at σ''' = 0")

    def exact_check(quick):
        import jax
        import jax.numpy as jnp

        from bandits import softmax

        rng = np.random.default_rng(3)
        n = 2000 if quick else 20000
        logits = rng.normal(size=(n, 2)) * 4
        logits[0] = [float(np.log(2 + np.sqrt(3))), 0.0]
        r = rng.uniform(size=(n, 2))
        r[: n // 2] = rng.integers(0, 2, size=(n // 2, 2))
        r[0] = [1.0, 0.0]
        h = jax.vmap(softmax.hessian)(jnp.asarray(logits), jnp.asarray(r))
        norms = np.abs(np.linalg.eigvalsh(np.asarray(h))).max(axis=1)
        top = float(norms.max())
        ok = top <= L_TWO * (1 + 1e-12) and abs(top - L_TWO) < 1e-12
        return Outcome(ok, top, f"≤ {L_TWO:.12g} and attained",
                       f"max ‖∇²J‖₂ over {n} random two-armed bandits (plus the extremal one)")

    return [Check("symbolic", symbolic), Check("exact", exact_check)]


# ---------------------------------------------------------------------------------------------
# MMR1's covariance statements
# ---------------------------------------------------------------------------------------------


def _design_instance():
    return V.reduced_statistics([0.0, 0.0], R.deterministic([1.0, 0.0, 0.0]))


def sandwich_violation(logits, rewards) -> bool:
    """λ_min(F)·Var[R]·I ⪯ Cov[ĝ] fails (reduced parameterisation, one sample, b = J)."""
    red = V.reduced_statistics(logits, R.deterministic(rewards))
    return red.sandwich_gap < -1e-12 * max(red.floor, 1e-300) - 1e-15


def factorisation_violation(logits, rewards) -> bool:
    """Cov[ĝ] = Var[R]·F fails (reduced parameterisation, one sample, b = J)."""
    red = V.reduced_statistics(logits, R.deterministic(rewards))
    return red.factorisation_defect > 1e-10


def _reduced_search(violates, what):
    def run(quick):
        out = V.search(violates, "reduced", max_examples=100 if quick else 500)
        ce = None
        if out["found"]:
            lg, r = out["example"]
            red = V.reduced_statistics(lg, R.deterministic(r))
            ce = _instance(out["example"], "reduced") | {
                "lambda_min_cov": red.lambda_min_cov, "floor": red.floor,
                "factorisation_defect": red.factorisation_defect}
        return Outcome(not out["found"], {"found": out["found"], "examples": out["examples"]},
                       f"no instance where {what} fails",
                       f"{out['engine']} search over reduced-parameterisation bandits (K = 2..5)",
                       counterexample=ce)

    return Check("exact", run)


COV_CONDITIONS = ("softmax bandit in the reduced parameterisation (logits (θ_1, ..., θ_{K−1}, 0)); "
                  "Γ = F = E[s sᵀ], the Fisher matrix there (non-singular); ĝ = (r_a − J)s(a), one "
                  "sample of REINFORCE with the mean baseline; deterministic rewards. (In the full "
                  "parameterisation F·1 = 0, so λ_min(F) = 0 and the lower bound is vacuous.)")


@claim("vas.cov_lower_bound", source=SOURCE_MMR1 + ", appendix (variance sandwich)",
       statement="λ_min(Γ)·Var[R]·I ⪯ Cov[ĝ]", expected="refuted", conditions=COV_CONDITIONS)
def _cov_lower_bound():
    def symbolic(quick):
        res = TV.reduced_counterexample()
        holds = bool(res["lambda_min_cov"] >= res["floor"])
        return Outcome(holds, {"lambda_min_cov": str(res["lambda_min_cov"]), "floor": str(res["floor"])},
                       "λ_min(Cov) ≥ λ_min(F)·Var[R]",
                       "sympy, K = 3, θ = 0, r = (1, 0, 0): F = [[2,−1],[−1,2]]/9, Var = 2/9, "
                       "Cov = [[2,−1],[−1,2]]/81",
                       counterexample=None if holds else {
                           "logits": [0, 0, 0], "rewards": [1, 0, 0], "parameterisation": "reduced",
                           "lambda_min_cov": "1/81", "claimed_floor": "2/81"})

    def exact_check(quick):
        red = _design_instance()
        holds = red.sandwich_gap >= -1e-15
        return Outcome(holds, {"lambda_min_cov": red.lambda_min_cov, "floor": red.floor},
                       "λ_min(Cov) ≥ floor", "exact engine (float64) at the docs/design.md §4.3 instance",
                       counterexample=None if holds else {
                           "logits": [0.0, 0.0, 0.0], "rewards": [1.0, 0.0, 0.0],
                           "lambda_min_cov_times_81": red.lambda_min_cov * 81,
                           "floor_times_81": red.floor * 81})

    return [Check("symbolic", symbolic), Check("exact", exact_check),
            _reduced_search(sandwich_violation, "the lower bound")]


@claim("vas.cov_factorisation", source=SOURCE_MMR1 + ", main text",
       statement="Cov[ĝ] = Var[R]·Γ", expected="refuted", conditions=COV_CONDITIONS)
def _cov_factorisation():
    def symbolic(quick):
        res = TV.reduced_counterexample()
        defect = res["factorisation_defect"]
        holds = all(x == 0 for x in defect)
        return Outcome(holds, {"Cov − Var·F": str(defect.tolist())}, "0",
                       "sympy, K = 3, θ = 0, r = (1, 0, 0)",
                       counterexample=None if holds else {
                           "logits": [0, 0, 0], "rewards": [1, 0, 0], "parameterisation": "reduced",
                           "cov": "[[2,-1],[-1,2]]/81", "var_times_fisher": "[[4,-2],[-2,4]]/81"})

    def exact_check(quick):
        red = _design_instance()
        holds = red.factorisation_defect <= 1e-12
        return Outcome(holds, red.factorisation_defect, "0",
                       "max |Cov − Var[R]·F|, exact engine at the docs/design.md §4.3 instance",
                       counterexample=None if holds else {"logits": [0.0, 0.0, 0.0],
                                                          "rewards": [1.0, 0.0, 0.0]})

    return [Check("symbolic", symbolic), Check("exact", exact_check),
            _reduced_search(factorisation_violation, "the factorisation")]
