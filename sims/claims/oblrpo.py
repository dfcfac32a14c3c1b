"""OBLR-PO claims (docs/design.md §4.2): optimal baselines, leave-one-out plug-ins, the SNR step and the
smoothness constant of the softmax bandit.

The published algorithm box was not available to us, so every entry is sourced
"derived (OBLR-PO framework)". Each check is a pure function of its inputs (`verify_*`), so the
tests can run it with a planted defect and see it fail.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from bandits import rewards as R
from bandits import softmax
from sims import estimators, oblrpo
from sims.engines import checks, exact, stats
from sims.ledger import Check, Outcome, claim, symbolic_zero
from theory import oblrpo as T

SOURCE = "derived (OBLR-PO framework); docs/design.md §4.2"
TOL = 1e-10


# ---------------------------------------------------------------------------------------------
# Random instances
# ---------------------------------------------------------------------------------------------


def _k(quick):
    """Arm counts of the random instances: K = 3 only in quick mode (compiled kernels reused)."""
    return (3,) if quick else (3, 4)


def random_instance(rng, k_choices=(3, 4), min_gap=0.05):
    """(logits, Bernoulli RewardModel) with |b* − E[R]| ≥ min_gap (redrawn until it holds)."""
    while True:
        k = int(rng.choice(k_choices))
        logits = rng.normal(0.0, 1.2, size=k)
        model = R.bernoulli(rng.uniform(0.0, 1.0, size=k))
        pi = np.asarray(softmax.policy(logits))
        bstar = float(softmax.optimal_constant_baseline(logits, model.means))
        if abs(bstar - pi @ model.means) >= min_gap:
            return logits, model


def _grad(logits, model):
    return np.asarray(softmax.gradient(np.asarray(logits, np.float64), model.means))


def _symbolic_zero(residuals: dict) -> Outcome:
    return symbolic_zero(residuals, "every residual reduces to 0")


# ---------------------------------------------------------------------------------------------
# oblrpo.optimal_baseline
# ---------------------------------------------------------------------------------------------


def verify_optimal_baseline(instances, group=3, grid=401, baseline_fn=None) -> Outcome:
    """On each instance, the exact V(b)/G over a dense grid of constant baselines is minimised at
    `baseline_fn(logits, means)` (default b* = E[|s|²R]/E|s|²): no grid point does better than
    V(b*) and the grid's argmin lies within one grid step of b*; and b* ≠ E[R] there, with
    V(E[R]) − V(b*) = E|s|²(E[R] − b*)²/G > 0."""
    baseline_fn = baseline_fn or (lambda th, m: float(softmax.optimal_constant_baseline(th, m)))
    worst, gains = None, []
    for logits, model in instances:
        m = model.means
        pi = np.asarray(softmax.policy(logits))
        bstar = float(baseline_fn(logits, m))
        mean_r = float(pi @ m)
        bs = np.linspace(-0.5, 1.5, grid)
        step = bs[1] - bs[0]
        v_grid = oblrpo.exact_coordinate_variances_over_baselines(logits, model, group, bs).sum(1)
        v_at = oblrpo.exact_coordinate_variances_over_baselines(
            logits, model, group, [bstar, mean_r]).sum(1)
        gamma = float(pi @ np.asarray(softmax.score_sq_norms(logits)))
        excess = gamma * (mean_r - bstar) ** 2 / group
        ok = (v_grid.min() >= v_at[0] - TOL and abs(bs[np.argmin(v_grid)] - bstar) <= step
              and abs(bstar - mean_r) > step and abs((v_at[1] - v_at[0]) - excess) <= TOL)
        gains.append(float(v_at[1] / v_at[0]))
        if not ok and worst is None:
            worst = {"logits": logits.tolist(), "success": model.means.tolist(), "group": group,
                     "b_star": bstar, "mean_reward": mean_r, "grid_argmin": float(bs[np.argmin(v_grid)]),
                     "V_grid_min": float(v_grid.min()), "V_at_b_star": float(v_at[0])}
    return Outcome(worst is None,
                   {"instances": len(instances), "V(E[R])/V(b*) min": min(gains),
                    "V(E[R])/V(b*) max": max(gains)},
                   "grid argmin within one step of b*, V(b*) ≤ min over grid, b* ≠ E[R]",
                   f"G={group}, {grid}-point grid on [-0.5, 1.5]; V(b*) is below V(E[R]) by "
                   f"a factor up to {max(gains):.3g}", counterexample=worst)


def verify_optimal_baseline_coord(instances, group=3, grid=401, baseline_fn=None) -> Outcome:
    """Per coordinate: Var[ĝ_k] over a dense grid of b_k is minimised at b*_k = E[s_k²R]/E[s_k²]."""
    baseline_fn = baseline_fn or oblrpo.optimal_constant_baseline_coord
    worst = None
    for logits, model in instances:
        bstar = np.asarray(baseline_fn(logits, model.means))
        bs = np.linspace(-0.5, 1.5, grid)
        step = bs[1] - bs[0]
        v_grid = oblrpo.exact_coordinate_variances_over_baselines(logits, model, group, bs)
        v_star = np.diag(oblrpo.exact_coordinate_variances_over_baselines(logits, model, group, bstar))
        ok = np.all(v_grid.min(0) >= v_star - TOL) and np.all(np.abs(bs[np.argmin(v_grid, 0)] - bstar) <= step)
        if not ok and worst is None:
            worst = {"logits": logits.tolist(), "success": model.means.tolist(),
                     "b_star_k": bstar.tolist(), "grid_argmin": bs[np.argmin(v_grid, 0)].tolist()}
    return Outcome(worst is None, {"instances": len(instances)},
                   "each coordinate's grid argmin within one step of b*_k", f"G={group}",
                   counterexample=worst)


@claim("oblrpo.optimal_baseline", source=SOURCE,
       statement="Among constant baselines, V(b)/G is minimised by the gradient-weighted mean "
                 "b* = E[|s|²R]/E[|s|²] (per coordinate b*_k = E[s_k²R]/E[s_k²]), which differs "
                 "from E[R] unless Cov(|s|², R) = 0",
       conditions="softmax bandit, finite rewards, G i.i.d. members")
def _optimal_baseline():
    def symbolic(quick):
        _, moment_residual = T.moment_form_optimal_baseline()
        return _symbolic_zero({
            "group b* = E[|s|²R]/E|s|² (K=3)": T.group_optimal_baseline_residual(3),
            "V(b) − V(b*) = E|s|²(b − b*)² (K=3)": T.variance_excess_residual(3),
            "moment form b* = μ + Cov(R,|s|²)/E|s|²": moment_residual,
            "per-coordinate b*_k (K=3)": T.per_coordinate_residual(3),
        })

    def exact_check(quick):
        rng = np.random.default_rng(41)
        return verify_optimal_baseline([random_instance(rng, _k(quick)) for _ in range(3 if quick else 20)])

    def exact_coord(quick):
        rng = np.random.default_rng(42)
        return verify_optimal_baseline_coord([random_instance(rng, _k(quick)) for _ in range(2 if quick else 12)])

    return [Check("symbolic", symbolic), Check("exact", exact_check), Check("exact", exact_coord)]


# ---------------------------------------------------------------------------------------------
# oblrpo.loo_unbiased
# ---------------------------------------------------------------------------------------------


def verify_loo_unbiased(instances, groups=(2, 4, 8), estimator="optimal_baseline_loo") -> Outcome:
    """E[ĝ] = ∇J exactly for the leave-one-out plug-in; reports tr Var relative to the oracle b*."""
    worst, ratios = None, {}
    for logits, model in instances:
        grad = _grad(logits, model)
        bstar = float(softmax.optimal_constant_baseline(logits, model.means))
        for g in groups:
            ex = exact.moments(estimators.get(estimator), logits, model, g)
            oracle = exact.moments(estimators.get("reinforce"), logits, model, g, baseline=bstar)
            err = float(np.max(np.abs(ex.mean - grad)))
            ratios.setdefault(g, []).append(ex.trace_var / oracle.trace_var)
            if err > TOL * max(1.0, np.linalg.norm(grad)) and worst is None:
                worst = {"logits": logits.tolist(), "success": model.means.tolist(), "group": g,
                         "mean": ex.mean.tolist(), "true_gradient": grad.tolist()}
    summary = {g: [round(min(r), 4), round(max(r), 4)] for g, r in ratios.items()}
    return Outcome(worst is None,
                   {"trVar(LOO)/trVar(b*) range per G": {f"G={g}": v for g, v in summary.items()}},
                   "|E ĝ − ∇J| ≤ 1e-10",
                   "variance relative to the oracle constant b* (ratio → 1 as G grows): "
                   + ", ".join(f"G={g}: {v[0]}–{v[1]}" for g, v in summary.items()),
                   counterexample=worst)


@claim("oblrpo.loo_unbiased", source=SOURCE,
       statement="The leave-one-out plug-in of b* (optimal_baseline_loo, and its per-coordinate "
                 "variant) is unbiased: E[ĝ] = ∇J; its variance approaches that of the oracle b*",
       conditions="softmax bandit, finite rewards, G ≥ 2")
def _loo_unbiased():
    def symbolic(quick):
        res = {"K=2, G=2, symbolic π and rewards": T.loo_bias(2, 2)}
        if not quick:
            res["K=3, G=2, symbolic π and rewards"] = T.loo_bias(3, 2)
        return _symbolic_zero(res)

    def exact_check(quick):
        rng = np.random.default_rng(43)
        return verify_loo_unbiased([random_instance(rng, _k(quick)) for _ in range(2 if quick else 10)],
                                   groups=(2, 4) if quick else (2, 4, 8))

    def exact_coord(quick):
        rng = np.random.default_rng(44)
        return verify_loo_unbiased([random_instance(rng, _k(quick)) for _ in range(1 if quick else 6)],
                                   groups=(2, 4), estimator="optimal_baseline_loo_coord")

    def mc(quick):
        logits, model = (0.3, -0.2, 0.1), R.bernoulli([0.8, 0.4, 0.1])
        z = checks.mc_unbiased(estimators.get("optimal_baseline_loo"), logits, model, 4,
                               100_000 if quick else 400_000, seed=7)
        return Outcome(z.passed, {"max_abs_z": z.max_abs_z}, "no Holm rejection at α=1e-6",
                       z.summary(), interval=[float(x) for x in z.se])

    return [Check("symbolic", symbolic), Check("exact", exact_check), Check("exact", exact_coord),
            Check("monte_carlo", mc)]


# ---------------------------------------------------------------------------------------------
# oblrpo.self_inclusive_bias
# ---------------------------------------------------------------------------------------------


def verify_self_inclusive_bias(instances, groups=(16, 32, 64), leading_fn=None, rtol=0.02) -> Outcome:
    """The self-inclusive plug-in's exact bias is c/G + O(1/G²): with G·bias(G) = c + d/G + O(1/G²),
    the Richardson combination 2·(2G)·bias(2G) − G·bias(G) = c + O(1/G²) must match `leading_fn`
    (default c = −E[|s|²(R−b*)s]/E|s|²) to `rtol` at the two largest G, with the match improving
    from the smaller pair; and the bias at G = 2 is non-zero."""
    worst, errs = None, []
    for logits, model in instances:
        pi = np.asarray(softmax.policy(logits))
        c = np.asarray((leading_fn or T.numeric_self_inclusive_bias_leading(len(pi)))(pi, model.means))
        small = np.linalg.norm(oblrpo.exact_self_inclusive_bias(logits, model, 2))
        gb = [g * oblrpo.exact_self_inclusive_bias(logits, model, g) for g in groups]
        rich = [2 * gb[i + 1] - gb[i] for i in range(len(groups) - 1)]
        rel = [float(np.linalg.norm(x - c) / np.linalg.norm(c)) for x in rich]
        errs.append(rel[-1])
        ok = small > 1e-6 and rel[-1] <= rtol and (len(rel) < 2 or rel[-1] <= rel[-2] + 1e-9)
        if not ok and worst is None:
            worst = {"logits": logits.tolist(), "rewards": model.means.tolist(), "c": c.tolist(),
                     "richardson estimates": [x.tolist() for x in rich], "relative errors": rel}
    return Outcome(worst is None, {"relative error of the 1/G coefficient": [min(errs), max(errs)]},
                   f"≤ {rtol:g}, shrinking with G",
                   f"G in {list(groups)}, policies with min π ≥ 0.15; c = −E[|s|²(R−b*)s]/E|s|²",
                   counterexample=worst)


def _deterministic_instance(rng, k=3, min_pi=0.15):
    """Deterministic rewards in [0, 1] and logits whose policy has every π_a ≥ min_pi (the
    asymptotic regime G·min π ≫ 1 is then reached by G ≈ 64)."""
    while True:
        logits = rng.normal(0.0, 1.0, size=k)
        if np.min(np.asarray(softmax.policy(logits))) >= min_pi:
            return logits, R.deterministic(rng.uniform(0.0, 1.0, size=k))


@claim("oblrpo.self_inclusive_bias", source=SOURCE,
       statement="Including the sample in the gradient-weighted baseline biases the estimator: "
                 "E[ĝ] − ∇J = c/G + O(1/G²) with c = −E[|s|²(R − b*) s]/E|s|²",
       conditions="softmax bandit, finite rewards")
def _self_inclusive_bias():
    def symbolic(quick):
        half, quarter = sp.Rational(1, 2), sp.Rational(1, 4)
        pi, r = (half, quarter, quarter), (1, 0, 0)
        exact_sym = [np.array([float(x) for x in T.self_inclusive_bias(3, g, r, pi)]) for g in (2, 3)]
        model = R.deterministic([1.0, 0.0, 0.0])
        logits = np.log(np.array([0.5, 0.25, 0.25]))
        numeric = [oblrpo.exact_self_inclusive_bias(logits, model, g) for g in (2, 3)]
        agree = max(float(np.max(np.abs(a - b))) for a, b in zip(exact_sym, numeric))
        symbolic_k2 = T.self_inclusive_bias(2, 2)
        nonzero = any(sp.simplify(x) != 0 for x in symbolic_k2)
        return Outcome(agree < 1e-12 and nonzero,
                       {"sympy vs JAX enumeration, max diff": agree,
                        "K=2, G=2 symbolic bias non-zero": nonzero,
                        "bias at G=2 (π=(1/2,1/4,1/4), r=(1,0,0))": exact_sym[0].tolist()},
                       "agreement < 1e-12 and a non-zero symbolic bias",
                       "sympy sums over every ordered group; the JAX engine over multisets")

    def exact_check(quick):
        rng = np.random.default_rng(45)
        inst = [_deterministic_instance(rng) for _ in range(2 if quick else 8)]
        return verify_self_inclusive_bias(inst, (16, 32, 64) if quick else (16, 32, 64, 128))

    def mc(quick):
        logits, model = np.array([1.0, -0.5, 0.0]), R.deterministic([1.0, 0.0, 0.2])
        mean, se = oblrpo.monte_carlo_expectation(oblrpo.stat_moments, logits, model, 2,
                                                  100_000 if quick else 400_000, seed=8,
                                                  estimator=oblrpo.SELF_INCLUSIVE)
        k = len(logits)
        biased = _grad(logits, model) + oblrpo.exact_self_inclusive_bias(logits, model, 2)
        agree = stats.z_check("MC mean vs exact biased mean", mean[:k], se[:k], biased)
        detect = stats.z_check("MC mean vs ∇J", mean[:k], se[:k], _grad(logits, model))
        return Outcome(agree.passed and not detect.passed,
                       {"vs exact biased mean, max |z|": agree.max_abs_z,
                        "vs ∇J, max |z|": detect.max_abs_z},
                       "matches the exact biased mean; ∇J rejected (Holm α=1e-6)",
                       agree.summary() + "; " + detect.summary())

    return [Check("symbolic", symbolic), Check("exact", exact_check), Check("monte_carlo", mc)]


# ---------------------------------------------------------------------------------------------
# oblrpo.optimal_step
# ---------------------------------------------------------------------------------------------


def verify_optimal_step(instances, group=4, step_fn=None, smoothness=float(T.SMOOTHNESS_L)) -> Outcome:
    """With |∇J|² and V = tr Cov ĝ exact (optimal_baseline_loo) and L = 3/4: the descent-lemma
    bound over a dense η grid peaks at `step_fn` (default η* = (1/L)·SNR/(1+SNR)), its value there
    is the guaranteed ascent (|∇J|²/2L)·SNR/(1+SNR), and the exact E[J(θ+ηĝ)] − J is at least
    the bound at every grid η (the descent lemma holds with this L)."""
    step_fn = step_fn or T.numeric_optimal_step
    worst, slack = None, []
    for logits, model in instances:
        grad = _grad(logits, model)
        g2 = float(grad @ grad)
        _, var = oblrpo.exact_mean_and_trace_var(logits, model, group, estimators.get("optimal_baseline_loo"))
        star = step_fn(g2, var, smoothness)
        true_star = g2 / (smoothness * (g2 + var))
        etas = np.linspace(0.0, 4.0 * true_star, 2001)
        bound = etas * g2 - smoothness * etas**2 / 2 * (g2 + var)
        at_star = star * g2 - smoothness * star**2 / 2 * (g2 + var)
        ascent = T.numeric_guaranteed_ascent(g2, var, smoothness)
        j0 = float(softmax.objective(logits, model.means))
        probe = np.concatenate([etas[::100], [star]])
        gains = oblrpo.exact_objective_after_step(logits, model, group, probe) - j0
        lower = probe * g2 - smoothness * probe**2 / 2 * (g2 + var)
        slack.append(float(gains[-1] / ascent))
        ok = (abs(etas[np.argmax(bound)] - star) <= etas[1] and at_star >= bound.max() - 1e-15
              and abs(at_star - ascent) <= 1e-12 and np.all(gains >= lower - 1e-14))
        if not ok and worst is None:
            worst = {"logits": logits.tolist(), "success": model.means.tolist(), "eta_star": star,
                     "grid_argmax": float(etas[np.argmax(bound)]), "bound_at_star": at_star,
                     "grid_max": float(bound.max()), "guaranteed_ascent": ascent}
    return Outcome(worst is None,
                   {"exact ascent at η* / guaranteed ascent": [round(min(slack), 3), round(max(slack), 3)]},
                   "argmax of the bound within one grid step of η*; exact ascent ≥ bound",
                   f"G={group}, L=3/4, 2001-point η grid on [0, 4η*]", counterexample=worst)


@claim("oblrpo.optimal_step", source=SOURCE,
       statement="For an L-smooth J and unbiased ĝ, E[J(θ+ηĝ)] ≥ J + η|∇J|² − (Lη²/2)(|∇J|² + V); "
                 "the bound is maximised by η* = (1/L)·SNR/(1+SNR), SNR = |∇J|²/V, guaranteeing "
                 "an ascent of (|∇J|²/2L)·SNR/(1+SNR)",
       conditions="softmax bandit with rewards in [0, 1], L = 3/4, optimal_baseline_loo")
def _optimal_step():
    def symbolic(quick):
        return _symbolic_zero(T.optimal_step_residuals())

    def exact_check(quick):
        rng = np.random.default_rng(46)
        return verify_optimal_step([random_instance(rng, _k(quick)) for _ in range(3 if quick else 15)])

    return [Check("symbolic", symbolic), Check("exact", exact_check)]


# ---------------------------------------------------------------------------------------------
# oblrpo.u_statistic
# ---------------------------------------------------------------------------------------------


def u_with_diagonal(terms, scores, rewards, logits, extra):
    """|ḡ|² = (1/G²)Σ_{i,j}⟨g_i, g_j⟩ — the U-statistic with the i = j terms left in (biased)."""
    import jax.numpy as jnp

    return jnp.sum(jnp.mean(terms, axis=0) ** 2)[None]


def verify_u_statistic(instances, groups=(2, 3, 5), stat=None, rloo_factor=None) -> Outcome:
    """E[Û] = |∇J|² exactly for i.i.d. terms (reinforce, random constant b) and
    E[Û] = (1 + 1/(G−1)²)|∇J|² for RLOO terms; reports E[Û]/|∇J|² for optimal_baseline_loo."""
    stat = stat or oblrpo.stat_u
    rloo_factor = rloo_factor or (lambda g: float(T.rloo_u_statistic_factor(g)))
    worst, obl = None, []
    rng = np.random.default_rng(0)
    for logits, model in instances:
        grad = _grad(logits, model)
        g2 = float(grad @ grad)
        for g in groups:
            b = float(rng.uniform(-0.5, 1.0))
            iid = float(oblrpo.exact_expectation(stat, logits, model, g, estimators.get("reinforce"), {"baseline": b})[0])
            loo = float(oblrpo.exact_expectation(stat, logits, model, g, estimators.get("rloo"))[0]) if g >= 2 else g2
            obl.append(float(oblrpo.exact_expectation(stat, logits, model, g, estimators.get("optimal_baseline_loo"))[0]) / g2)
            ok = abs(iid - g2) <= TOL * max(g2, 1.0) and abs(loo - rloo_factor(g) * g2) <= TOL * max(g2, 1.0)
            if not ok and worst is None:
                worst = {"logits": logits.tolist(), "success": model.means.tolist(), "group": g,
                         "baseline": b, "E[U] reinforce": iid, "E[U] rloo": loo, "|grad|^2": g2}
    return Outcome(worst is None,
                   {"E[U]/|∇J|² for optimal_baseline_loo": [round(min(obl), 4), round(max(obl), 4)]},
                   "reinforce: |∇J|²; rloo: (1 + 1/(G−1)²)|∇J|² (to 1e-10)",
                   f"G in {list(groups)}; with a leave-one-out baseline the terms are dependent",
                   counterexample=worst)


def mc_u_statistic(logits, model, group, samples, seed, stat=None, baseline=0.3):
    """Monte Carlo mean of Û (reinforce with constant b: i.i.d. terms) against |∇J|², and of Û
    (rloo) against (1 + 1/(G−1)²)|∇J|², one Holm family."""
    stat = stat or oblrpo.stat_u
    grad = _grad(logits, model)
    g2 = float(grad @ grad)
    m1, s1 = oblrpo.monte_carlo_expectation(stat, logits, model, group, samples, seed, estimators.get("reinforce"),
                                            {"baseline": baseline})
    m2, s2 = oblrpo.monte_carlo_expectation(stat, logits, model, group, samples, seed + 1, estimators.get("rloo"))
    return stats.combine("U-statistic MC vs exact", [
        stats.z_check("reinforce", m1, s1, [g2]),
        stats.z_check("rloo", m2, s2, [float(T.rloo_u_statistic_factor(group)) * g2]),
    ])


@claim("oblrpo.u_statistic", source=SOURCE,
       statement="Û = (1/(G(G−1)))Σ_{i≠j}⟨g_i, g_j⟩ is unbiased for |∇J|² when the terms g_i are "
                 "i.i.d. (constant baseline); with RLOO terms E[Û] = (1 + 1/(G−1)²)|∇J|²",
       conditions="softmax bandit, finite rewards, G ≥ 2")
def _u_statistic():
    def symbolic(quick):
        res = {"i.i.d. terms, K=2, G=2, symbolic π, r, b": T.iid_u_statistic_residual(2, 2),
               "RLOO pair moment, symbolic G": T.rloo_u_statistic_residual(),
               "RLOO by enumeration, K=2, G=3": T.rloo_u_statistic_enumerated_residual(2, 3)}
        if not quick:
            res["i.i.d. terms, K=2, G=3"] = T.iid_u_statistic_residual(2, 3)
        return _symbolic_zero(res)

    def exact_check(quick):
        rng = np.random.default_rng(47)
        return verify_u_statistic([random_instance(rng, _k(quick)) for _ in range(2 if quick else 10)],
                                  (2, 4) if quick else (2, 3, 5, 8))

    def mc(quick):
        z = mc_u_statistic(np.array([0.5, -0.3, 0.2]), R.bernoulli([0.9, 0.2, 0.5]), 4,
                           100_000 if quick else 1_000_000, seed=9)
        return Outcome(z.passed, {"max_abs_z": z.max_abs_z}, "no Holm rejection at α=1e-6", z.summary())

    return [Check("symbolic", symbolic), Check("exact", exact_check), Check("monte_carlo", mc)]


# ---------------------------------------------------------------------------------------------
# oblrpo.smoothness
# ---------------------------------------------------------------------------------------------


def verify_smoothness(n, seed, bound=float(T.SMOOTHNESS_L), search=0) -> Outcome:
    """‖∇²J(θ)‖₂ ≤ `bound` on n random (θ, m ∈ [0,1]^K) instances, K = 2..8, plus `search` local
    maximisations of the norm (Nelder–Mead over θ with 0/1 means)."""
    rng = np.random.default_rng(seed)
    worst_val, worst = 0.0, None
    for i in range(n):
        k = int(rng.integers(2, 9))
        logits = rng.normal(0.0, float(rng.choice([0.5, 1.5, 4.0])), size=k)
        means = rng.uniform(0, 1, size=k) if i % 2 else rng.integers(0, 2, size=k).astype(float)
        val = oblrpo.hessian_spectral_norm(logits, means)
        if val > worst_val:
            worst_val, worst = val, {"logits": logits.tolist(), "means": means.tolist()}
    if search:
        from scipy.optimize import minimize

        for j in range(search):
            k = 2 + j % 5
            means = (np.arange(k) == 0).astype(float)
            res = minimize(lambda th: -oblrpo.hessian_spectral_norm(th, means), rng.normal(size=k),
                           method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12})
            if -res.fun > worst_val:
                worst_val, worst = -res.fun, {"logits": res.x.tolist(), "means": means.tolist()}
    holds = worst_val <= bound + 1e-12
    return Outcome(holds, {"max spectral norm found": worst_val}, f"≤ L = {bound:g}",
                   f"{n} random instances, {search} local searches; the supremum found numerically "
                   "is 1/(3√3) ≈ 0.192 (two arms), so 3/4 is valid but not tight",
                   counterexample=None if holds else worst)


@claim("oblrpo.smoothness", source=SOURCE,
       statement="For the softmax bandit with mean rewards in [0, 1], ‖∇²J(θ)‖₂ ≤ 3/4 for every θ, "
                 "so J is L-smooth with L = 3/4",
       conditions="any K ≥ 2, m ∈ [0, 1]^K")
def _smoothness():
    def symbolic(quick):
        res = dict(T.smoothness_identities(3))
        res["Hessian = ∂²J/∂θ∂θ (K=3)"] = T.hessian_residual(3)
        return _symbolic_zero(res)

    def exact_check(quick):
        return verify_smoothness(300 if quick else 5000, seed=48, search=0 if quick else 20)

    return [Check("symbolic", symbolic), Check("exact", exact_check)]
