"""Claims of docs/design.md §4.1: score-function group estimators, their bias and their variance.

Symbolic checks come from `theory.estimators` (sympy), exact checks run the multiset
engine on random instances drawn from a fixed seed, Monte Carlo checks use `sims.engines.checks`
(Holm-controlled z-tests at α = 1e-6).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp

from bandits import rewards as R
from bandits import softmax
from sims import estimators
from sims.claims import _kit as kit
from sims.engines import binary, checks, exact, stats
from sims.ledger import Check, Outcome, claim
from theory import estimators as T

TOL = 1e-10
SOURCE_41 = "docs/design.md §4.1"


def _worst(residuals) -> float:
    return float(max(np.max(np.abs(r)) for r in residuals))


def _exact_over_instances(residual, what: str, kinds=("bernoulli", "deterministic", "categorical"),
                          tol=TOL) -> Check:
    """`residual(logits, model, G)` → array that should vanish; the worst instance is reported."""

    def run(quick):
        worst, where = 0.0, None
        insts = kit.random_instances(quick, kinds=kinds)
        for logits, model, group in insts:
            r = float(np.max(np.abs(residual(logits, model, group))))
            if r > worst:
                worst, where = r, kit.describe(logits, model, group)
        return Outcome(worst <= tol, worst, f"≤ {tol:g}",
                       f"{what}; max residual over {len(insts)} random instances",
                       counterexample=where if worst > tol else None)

    return Check("exact", run)


def _mc(fn, label: str) -> Check:
    def run(quick):
        samples = 100_000 if quick else checks.SUITE_SAMPLES
        return kit.mc_outcome(fn(samples), label)

    return Check("monte_carlo", run)


_BERN = R.bernoulli([0.8, 0.4, 0.1])
_LOGITS = (0.3, -0.2, 0.1)


@claim("estimators.score_identity", SOURCE_41 + " (score-function identity)",
       "Σ_a π_a s(a) = 0 for the softmax score s(a) = e_a − π, for every K.")
def _():
    def exact_run(quick):
        rng = np.random.default_rng(1)
        worst = 0.0
        for _ in range(20 if quick else 200):
            k = int(rng.integers(2, 9))
            logits = rng.uniform(-5, 5, size=k)
            s = np.asarray(softmax.scores(logits, np.arange(k)))
            worst = max(worst, float(np.max(np.abs(np.asarray(softmax.policy(logits)) @ s))))
        return Outcome(worst < 1e-14, worst, "< 1e-14", "max |Σ_a π_a s(a)| over random logits")

    return [kit.symbolic(T.score_identity_general_K, "Σ_a π_a(δ_ak − π_k) with Σπ = 1, symbolic K"),
            Check("exact", exact_run)]


@claim("estimators.constant_baseline_unbiased", "Williams 1992; " + SOURCE_41,
       "REINFORCE with any constant baseline b is unbiased: E[ĝ] = ∇J.")
def _():
    def symbolic(quick):
        b = sp.Symbol("b", real=True)
        k, g = (2, 2) if quick else (3, 2)
        mean, _ = T.enumerate_group_moments(functools.partial(T.reinforce_advantages, b=b), k, g)
        pi = T.policy(k)
        grad = T.true_gradient(pi, T.reward_symbols(k))
        res = [sp.simplify(m - x) for m, x in zip(mean, grad)]
        return Outcome(all(r == 0 for r in res), str(res), "0",
                       f"enumerated E[ĝ] − ∇J, symbolic b, π and r, K={k}, G={g}")

    return [
        Check("symbolic", symbolic),
        _exact_over_instances(
            lambda lg, m, g: exact.moments(estimators.get("reinforce"), lg, m, g, baseline=0.7).bias,
            "|E[ĝ] − ∇J| with b = 0.7"),
        _mc(lambda n: checks.mc_unbiased(estimators.get("reinforce"), _LOGITS, _BERN, 4, n, 11, baseline=0.7),
            "b = 0.7"),
    ]


@claim("estimators.constant_baseline_variance", SOURCE_41,
       "V(b) = tr Cov[ĝ] = E[|s|²(R−b)²] − |∇J|² for one sample, divided by G for a group of G.")
def _():
    def residual(logits, model, group):
        pi = np.asarray(softmax.policy(logits))
        formula = T.numeric_single_sample_variance(len(pi))(pi, model.means, model.second_moments, 0.35)
        return exact.moments(estimators.get("reinforce"), logits, model, group, baseline=0.35).trace_var - formula / group

    return [kit.symbolic(T.reinforce_group_variance_residual, "moment algebra, symbolic G"),
            _exact_over_instances(residual, "exact tr Cov − V(b)/G at b = 0.35")]


@claim("estimators.optimal_constant_baseline", SOURCE_41 + "; docs/design.md §4.2",
       "dV/db = 0 at b* = E[|s|²R]/E[|s|²], which differs from E[R] in general.")
def _():
    def reference(quick):
        m = exact.moments(estimators.get("reinforce"), [math.log(2), 0, 0], R.deterministic([1, 0, 0]), 1)
        ok = abs(m.optimal_constant_baseline - 0.3) < 1e-14 and abs(m.objective - 0.5) < 1e-14
        return Outcome(ok, {"b_star": m.optimal_constant_baseline, "E[R]": m.objective},
                       {"b_star": 0.3, "E[R]": 0.5}, "θ = (ln 2, 0, 0), r = (1, 0, 0)")

    def stationary(logits, model, group):
        m = exact.moments(estimators.get("reinforce"), logits, model, 1)
        b = m.optimal_constant_baseline
        v = [exact.moments(estimators.get("reinforce"), logits, model, 1, baseline=b + d).trace_var for d in (-1e-3, 0, 1e-3)]
        return np.array([min(0.0, v[0] - v[1]), min(0.0, v[2] - v[1])])

    return [kit.symbolic(lambda: T.optimal_baseline_residual(3), "solve(dV/db = 0) − E[|s|²R]/E[|s|²], K=3"),
            Check("exact", reference),
            _exact_over_instances(stationary, "V(b* ± 1e-3) ≥ V(b*)", tol=1e-15)]


@claim("estimators.rloo_unbiased", "Kool et al. 2019; " + SOURCE_41,
       "RLOO (leave-one-out mean baseline) is unbiased: E[ĝ] = ∇J.")
def _():
    return [kit.symbolic(T.rloo_mean_residual, "moment algebra, symbolic G"),
            _exact_over_instances(lambda lg, m, g: exact.moments(estimators.get("rloo"), lg, m, g).bias, "|E[ĝ] − ∇J|"),
            _mc(lambda n: checks.mc_unbiased(estimators.get("rloo"), _LOGITS, _BERN, 4, n, 12), "G = 4")]


@claim("estimators.rloo_variance", SOURCE_41,
       "RLOO: tr Cov = (1/G)[E(|s|²(R−μ)²) + E|s|²·Var R/(G−1) − |∇J|²(G−2)/(G−1)].")
def _():
    def residual(logits, model, group):
        pi = np.asarray(softmax.policy(logits))
        formula = T.numeric_rloo_variance(len(pi))(pi, model.means, model.second_moments, group)
        return exact.moments(estimators.get("rloo"), logits, model, group).trace_var - formula

    def mc(n):
        pi = np.asarray(softmax.policy(np.asarray(_LOGITS)))
        formula = T.numeric_rloo_variance(3)(pi, _BERN.means, _BERN.second_moments, 4)
        from sims.engines import montecarlo

        m = montecarlo.moments(estimators.get("rloo"), _LOGITS, _BERN, 4, n, seed=13)
        return stats.z_check("tr Cov vs closed form", m.trace_var, m.trace_var_se, formula)

    return [kit.symbolic(T.rloo_variance_residual, "moment algebra, symbolic G"),
            _exact_over_instances(residual, "exact tr Cov − closed form"),
            _mc(mc, "G = 4")]


@claim("estimators.grpo_mean_scaled", "Liu et al. 2025 (Dr. GRPO); " + SOURCE_41,
       "The group-mean advantage R_i − mean(R) gives E[ĝ] = (1 − 1/G)∇J: biased in scale only.")
def _():
    def residual(logits, model, group):
        m = exact.moments(estimators.get("grpo_mean"), logits, model, group)
        return m.mean - (1 - 1 / group) * m.true_gradient

    def mc(n):
        from sims.engines import montecarlo

        m = montecarlo.moments(estimators.get("grpo_mean"), _LOGITS, _BERN, 4, n, seed=14)
        target = 0.75 * np.asarray(softmax.gradient(np.asarray(_LOGITS), _BERN.means))
        return stats.z_check("mean vs (1−1/G)∇J", m.mean, m.mean_se, target)

    return [kit.symbolic(T.grpo_mean_mean_residual, "moment algebra, symbolic G"),
            _exact_over_instances(residual, "|E[ĝ] − (1−1/G)∇J|"),
            _mc(mc, "G = 4")]


@claim("estimators.grpo_parallel", "Shao et al. 2024 (GRPO); " + SOURCE_41,
       "GRPO's std-whitened advantage gives an E[ĝ] parallel to ∇J.", expected="refuted",
       conditions="refuted by exact search over rewards with more than two values: "
                  "cos(E[ĝ], ∇J) < 1 − 1e-6 on some instance")
def _():
    def search(quick):
        for logits, model, group in kit.random_instances(quick, seed=5, kinds=("deterministic", "categorical")):
            m = exact.moments(estimators.get("grpo"), logits, model, group)
            cos = float(m.mean @ m.true_gradient /
                        (np.linalg.norm(m.mean) * np.linalg.norm(m.true_gradient) + 1e-300))
            if cos < 1 - 1e-6:
                return Outcome(False, {"cosine": cos, "mean": m.mean, "true_gradient": m.true_gradient},
                               "cosine 1", "exact E[ĝ] is not parallel to ∇J",
                               counterexample=kit.describe(logits, model, group))
        return Outcome(True, "no counterexample", "cosine 1", "every instance parallel")

    return [Check("exact", search)]


@claim("estimators.binary_reward_scale", SOURCE_41 + " (difficulty bias, derived)",
       "With Bernoulli rewards every reward-only advantage gives E[ĝ] = c(J, G)·∇J, with "
       "c = E[A_1(R_1 − J)]/(J(1 − J)) a function of the pass rate J and G alone "
       "(c = 1 for RLOO, 1 − 1/G for the group mean; GRPO's c is the difficulty bias).",
       conditions="E[s(a) | R] = (R − J)∇J/(J(1 − J)) for binary R, so only the rewards matter")
def _():
    def residual(logits, model, group):
        out = []
        for name in ("grpo", "grpo_mean"):
            m = exact.moments(estimators.get(name), logits, model, group)
            c = binary.binary_reward_scale(estimators.get(name), m.objective, group)
            out.append(m.mean - c * m.true_gradient)
        return np.concatenate(out)

    def closed_forms(quick):
        js = np.linspace(0.05, 0.95, 7 if quick else 19)
        got = {n: [binary.binary_reward_scale(estimators.get(n), j, 6) for j in js] for n in ("rloo", "grpo_mean")}
        err = max(np.max(np.abs(np.array(got["rloo"]) - 1)), np.max(np.abs(np.array(got["grpo_mean"]) - 5 / 6)))
        return Outcome(err < 1e-12, float(err), "< 1e-12", "c_RLOO = 1 and c_mean = 1 − 1/G at G = 6")

    return [_exact_over_instances(residual, "|E[ĝ] − c(J, G)∇J| for grpo and grpo_mean",
                                  kinds=("bernoulli",)),
            Check("exact", closed_forms)]


@claim("estimators.optimal_baseline_loo_unbiased", "docs/design.md §4.2 (OBLR-PO framework)",
       "The leave-one-out gradient-weighted baseline Σ_{j≠i}|s_j|²R_j/Σ_{j≠i}|s_j|² is unbiased.")
def _():
    def symbolic(quick):
        mean, _ = T.enumerate_group_moments(T.optimal_baseline_loo_advantages, 2, 2 if quick else 3,
                                            simplify=None)
        grad = T.true_gradient(T.policy(2), T.reward_symbols(2))
        res = [sp.simplify(m - x) for m, x in zip(mean, grad)]
        return Outcome(all(r == 0 for r in res), str(res), "0", "enumerated E[ĝ] − ∇J, K = 2")

    return [Check("symbolic", symbolic),
            _exact_over_instances(lambda lg, m, g: exact.moments(estimators.get("optimal_baseline_loo"), lg, m, g).bias,
                                  "|E[ĝ] − ∇J|"),
            _mc(lambda n: checks.mc_unbiased(estimators.get("optimal_baseline_loo"), _LOGITS, _BERN, 4, n, 15), "G = 4")]


@claim("estimators.reference_values", SOURCE_41 + " (reference values)",
       "θ=0, r=(1,0,0): ∇J=(2/9,−1/9,−1/9), V(b)=2b²/3−4b/9+4/27, b*=1/3; θ=(ln 2,0,0): "
       "b*=3/10, V(0)=3/32, V(1/2)=1/16, V(3/10)=3/80.")
def _():
    b = T.b
    want_v = {0: sp.Rational(3, 32), sp.Rational(1, 2): sp.Rational(1, 16), sp.Rational(3, 10): sp.Rational(3, 80)}

    def symbolic(quick):
        ref = T.reference_values()
        u, s = ref["uniform"], ref["skewed"]
        ok = (sp.simplify(u["V"] - (2 * b**2 / 3 - 4 * b / 9 + sp.Rational(4, 27))) == 0
              and u["b_star"] == sp.Rational(1, 3)
              and [sp.nsimplify(x) for x in u["grad"]] == [sp.Rational(2, 9), -sp.Rational(1, 9), -sp.Rational(1, 9)]
              and s["b_star"] == sp.Rational(3, 10)
              and all(sp.simplify(s["V"].subs(b, k) - v) == 0 for k, v in want_v.items()))
        return Outcome(ok, {"uniform b*": str(u["b_star"]), "skewed b*": str(s["b_star"])},
                       {"uniform b*": "1/3", "skewed b*": "3/10"}, "exact rationals from sympy")

    def exact_run(quick):
        v = lambda lg, bb: exact.moments(estimators.get("reinforce"), lg, R.deterministic([1, 0, 0]), 1, baseline=bb).trace_var  # noqa: E731
        got = [v([0, 0, 0], 0.0), v([math.log(2), 0, 0], 0.0), v([math.log(2), 0, 0], 0.5), v([math.log(2), 0, 0], 0.3)]
        want = [4 / 27, 3 / 32, 1 / 16, 3 / 80]
        err = max(abs(x - y) for x, y in zip(got, want))
        return Outcome(err < 1e-14, got, want, "float64 exact engine, max error %.1e" % err)

    return [Check("symbolic", symbolic), Check("exact", exact_run)]


@claim("estimators.monte_carlo_engine", "docs/design.md §3 (Monte Carlo engine)",
       "The Monte Carlo engine's mean and tr Cov agree with the exact engine for every estimator.")
def _():
    def run(quick):
        results = checks.run_suite(seed=0, samples=60_000 if quick else checks.SUITE_SAMPLES)
        bad = [c.summary() for c in results if not c.passed]
        power = max(c.detectable_fraction for c in results)
        return Outcome(not bad, f"{len(results) - len(bad)}/{len(results)} checks pass",
                       f"{len(results)}/{len(results)}",
                       f"Holm α = 1e-6 per check; every mean check detects a bias ≥ {power:.3f}·|∇J| "
                       "with probability 0.99" + ("; failures: " + "; ".join(bad) if bad else ""))

    return [Check("monte_carlo", run)]
