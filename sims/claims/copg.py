"""Claims about contrastive policy gradient (CoPG) on bandits (docs/design.md §4.4).

Flet-Berliac et al. (2024), "Contrastive Policy Gradient"; IPO (Azar et al. 2023); DPO
(Rafailov et al. 2023). Symbolic checks come from `theory.copg`; exact and Monte Carlo checks use
`bandits.copg`; the RLOO reduction uses the estimator registry.

Also public here, for the tests' planted-defect twins:
`pair_gradient_mc` (Monte Carlo mean ± se of a per-pair gradient) and the two statistical checks
`onpolicy_check` and `minibatch_check`, which take the loss under test as an argument.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from bandits import copg as C
from sims import estimators
from sims.engines import montecarlo, stats
from sims.ledger import Check, Outcome, claim, symbolic_zero
from theory import copg as T

SOURCE = "Flet-Berliac et al. 2024, Contrastive Policy Gradient"
TOL = 1e-9


def _all_zero(values) -> bool:
    return all(sp.sympify(v) == 0 for v in values)


def _symbolic(residuals_by_k: dict, label: str) -> Outcome:
    return symbolic_zero({f"K={k}": v for k, v in residuals_by_k.items()},
                         f"{label}, K in {sorted(residuals_by_k, key=str)}")


def random_instance(rng, k: int, beta=None, support_floor: float = 0.02):
    """A random problem: rewards ~ N(0, 1.5²), β ~ U(0.2, 2), π_ref, μ1, μ2 ~ Dirichlet(1)
    floored at `support_floor` (full support), and random logits θ ~ N(0, 1)."""
    def law():
        x = np.maximum(rng.dirichlet(np.ones(k)), support_floor)
        return x / x.sum()

    beta = rng.uniform(0.2, 2.0) if beta is None else beta
    problem = C.make_problem(rng.normal(0, 1.5, k), beta, law(), law(), law())
    return problem, jnp.asarray(rng.normal(0, 1, k))


def _instances(quick: bool, seed: int):
    rng = np.random.default_rng(seed)
    ks = [5] if quick else [2, 3, 4, 5, 7, 10, 16]  # one K in quick mode: one compilation
    return [(k, *random_instance(rng, k)) for k in ks for _ in range(4)]


def _pairs(k: int):
    y, y2 = jnp.meshgrid(jnp.arange(k), jnp.arange(k), indexing="ij")
    return y.reshape(-1), y2.reshape(-1)


@functools.partial(jax.jit, static_argnums=0)
def _per_pair_grad(objective, theta, problem, y, y2):
    """∇_θ objective(θ; y_i, y'_i) for every pair i: shape (pairs, K)."""
    return jax.vmap(jax.grad(objective), in_axes=(None, None, 0, 0))(theta, problem, y, y2)


def _with_laws(problem: C.Problem, mu1, mu2) -> C.Problem:
    return problem._replace(mu1=jnp.asarray(mu1), mu2=jnp.asarray(mu2))


# ---------------------------------------------------------------------------------------------
# Monte Carlo machinery (shared with the tests)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairGradients:
    """Engine problem: `draw(key, n, (logits, problem))` → the per-pair gradients ∇_θ loss of every
    loss in `losses` on n fresh pairs, concatenated, (n, L·K)."""

    losses: tuple

    def __call__(self, key, n, args):
        logits, problem = args
        pairs = C.sample_pairs(key, problem, n)
        out = []
        for loss in self.losses:
            g = jax.vmap(jax.grad(lambda t, y, y2, z: loss(t, problem, y, y2, z)), in_axes=(None, 0, 0, 0))
            out.append(g(logits, pairs.y, pairs.y2, pairs.label))
        return jnp.concatenate(out, axis=-1)


def pair_gradient_mc(loss, logits, problem: C.Problem, samples: int, seed: int):
    """Mean ± standard error over `samples` fresh pairs (y ~ μ1, y' ~ μ2, Bradley–Terry label)
    of ∇_θ loss(θ; y, y', z), loss a per-pair function of `bandits.copg`'s signature."""
    return pair_gradients_mc((loss,), logits, problem, samples, seed)[0]


def pair_gradients_mc(losses: tuple, logits, problem: C.Problem, samples: int, seed: int):
    """`pair_gradient_mc` for several losses on the same pairs, drawn by the Monte Carlo engine."""
    logits = jnp.asarray(logits)
    s = montecarlo.stream(PairGradients(tuple(losses)), (logits, problem), samples, seed)
    k = logits.shape[-1]
    return [(s.mean[i * k:(i + 1) * k], s.mean_se[i * k:(i + 1) * k]) for i in range(len(losses))]


def copg_ascent_loss(logits, problem, y, y2, label):
    """ℓ itself (maximised), as a loss-shaped function: its gradient is the CoPG ascent step."""
    del label
    return C.copg_objective(logits, problem, y, y2)


def onpolicy_check(objective_loss, logits, problem: C.Problem, samples: int, seed: int,
                   alpha: float = stats.ALPHA) -> stats.ZCheck:
    """Pairs y, y' drawn independently from the current π: the Monte Carlo mean of ∇ℓ must equal
    2∇J_β (Holm z-tests per coordinate). `objective_loss` is ℓ in loss signature."""
    pi = jax.nn.softmax(logits)
    on = _with_laws(problem, pi, pi)
    mean, se = pair_gradient_mc(objective_loss, logits, on, samples, seed)
    target = 2 * np.asarray(jax.grad(C.objective)(jnp.asarray(logits), problem))
    return stats.z_check("on-policy E[∇ℓ] vs 2∇J_β", mean, se, target, alpha=alpha)


def minibatch_check(loss, method: str, logits, problem: C.Problem, samples: int, seed: int,
                    alpha: float = stats.ALPHA) -> stats.ZCheck:
    """The Monte Carlo mean of a per-pair loss gradient against the closed-form expected update
    of `method` (−E[∇ℓ] for copg, the off-policy PG formulas for pg, pg_value and pg_soft_value, autodiff of the
    population loss for ipo/dpo)."""
    return _minibatch_z(method, *pair_gradient_mc(loss, logits, problem, samples, seed), logits,
                        problem, alpha)


def _minibatch_z(method, mean, se, logits, problem, alpha=stats.ALPHA):
    target = -np.asarray(C.ascent_field(method)(jnp.asarray(logits), problem))
    return stats.z_check(f"{method}: minibatch gradient vs exact", mean, se, target, alpha=alpha)


def _z_outcome(checks: list[stats.ZCheck]) -> Outcome:
    ok = all(c.passed for c in checks)
    worst = max(c.max_abs_z for c in checks)
    return Outcome(ok, {"max_abs_z": worst, "checks": len(checks)}, "no Holm rejection",
                   "; ".join(c.summary() for c in checks[:3]) + ("" if len(checks) <= 3 else " ..."))


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------


@claim("copg.optimum", source=f"{SOURCE}, §2 (KL-regularised optimum); docs/design.md §4.4",
       statement="π* ∝ π_ref·exp(R/β) maximises J_β(π) = E_π[R] − β KL(π‖π_ref), "
                 "J_β(π*) = β ln E_ref e^{R/β}, and J_β(π*) − J_β(π) = β KL(π‖π*) for every π",
       conditions="β > 0, π_ref with full support, deterministic rewards")
def _():
    def symbolic(quick):
        res = {k: [*T.optimum_residuals(k)["gradient"], T.optimum_residuals(k)["value"],
                   T.optimum_residuals(k)["regret_is_kl"]] for k in (2, 3)}
        return _symbolic(res, "∇J_β(θ*), J_β(π*) − β ln Σ π_ref e^{R/β}, regret − β KL")

    def exact(quick):
        worst = 0.0
        for k, p, theta in _instances(quick, 11):
            star = C.optimal_logits(p)
            g = np.asarray(jax.grad(C.objective)(star, p))
            value = float(C.objective(star, p)) - float(C.optimal_value(p))
            gap = float(C.optimal_value(p)) - float(C.objective(theta, p))
            kl_form = float(C.regret(theta, p))
            worst = max(worst, np.abs(g).max(), abs(value), abs(gap - kl_form))
            if gap < -TOL:
                return Outcome(False, gap, ">= 0", "J_β(π) above J_β(π*)", counterexample={"K": k})
        return Outcome(worst < TOL, worst, f"< {TOL:g}",
                       "max over random K of |∇J_β(π*)|, |J_β(π*) − β ln E e^{R/β}|, "
                       "|(J* − J_β(π)) − β KL(π‖π*)|")

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.loss_forms", source=f"{SOURCE}, Eq. for the CoPG loss and its gradient",
       statement="ℓ = ΔR·Δh − (β/2)Δh² = −(1/(2β))(R_β^π(y) − R_β^π(y'))² + ΔR²/(2β), so maximising ℓ "
                 "minimises (R_β^π(y) − R_β^π(y'))²; ∇ℓ = (R_β^π(y) − R_β^π(y'))(∇ln π(y) − ∇ln π(y'))",
       conditions="softmax policy; the term ΔR²/(2β) does not depend on π")
def _():
    def symbolic(quick):
        res = {k: [*T.loss_forms_residual(k), *T.pair_gradient_residual(k)] for k in (2, 3)}
        return _symbolic(res, "loss forms and gradient")

    def exact(quick):
        worst = 0.0
        for k, p, theta in _instances(quick, 12):
            y, y2 = _pairs(k)
            lhs = C.copg_objective(theta, p, y, y2)
            d_r = p.rewards[y] - p.rewards[y2]
            rhs = C.copg_objective_squared(theta, p, y, y2) + d_r**2 / (2 * p.beta)
            g = _per_pair_grad(C.copg_objective, theta, p, y, y2)
            rb = C.regularised_reward(theta, p)
            eye = jnp.eye(k)
            formula = (rb[y] - rb[y2])[:, None] * (eye[y] - eye[y2])
            worst = max(worst, float(jnp.abs(lhs - rhs).max()), float(jnp.abs(g - formula).max()))
        return Outcome(worst < TOL, worst, f"< {TOL:g}",
                       "max |difference| over every pair of random instances")

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.population_stationary", source=f"{SOURCE}, Theorem (unbiasedness of CoPG)",
       statement="For any full-support μ1, μ2 the population CoPG objective E_{μ1×μ2}[ℓ] is a concave "
                 "quadratic in the logits, stationary at θ* = ln π_ref + R/β, and maximised only "
                 "at π* (up to the softmax shift)",
       conditions="y ~ μ1, y' ~ μ2 independent, μ1, μ2 with full support, β > 0")
def _():
    def symbolic(quick):
        res = {k: [*T.stationarity_residual(k), *list(T.population_hessian_residual(k))]
               for k in (2, 3)}
        return _symbolic(res, "∇L(θ*) and ∇²L + β Σ μ1μ2 (e_y − e_y')(e_y − e_y')ᵀ")

    def exact(quick):
        worst_grad, worst_argmax = 0.0, 0.0
        for _k, p, _ in _instances(quick, 13):
            star = C.optimal_logits(p)
            worst_grad = max(worst_grad, float(jnp.abs(C.copg_expected_ascent(star, p)).max()),
                             float(jnp.abs(C.expected_gradient("copg", star, p)).max()))
            arg = C.copg_argmax(p)  # exact maximiser: a weighted least-squares solve
            worst_argmax = max(worst_argmax, float(jnp.abs(jnp.exp(arg) - jnp.exp(star)).max()))
        fp = C.fixed_point("copg", C.toy_problem())
        ok = worst_grad < TOL and worst_argmax < 1e-8 and float(fp.regret) < 1e-10
        return Outcome(ok, {"max_grad_at_opt": worst_grad, "max_argmax_minus_opt": worst_argmax,
                            "toy_fixed_point_regret": float(fp.regret)},
                       {"max_grad_at_opt": f"< {TOL:g}", "max_argmax_minus_opt": "< 1e-8",
                        "toy_fixed_point_regret": "< 1e-10"},
                       "random K: |E[∇ℓ]| at π*, |argmax − π*| (least-squares solve); toy: trained "
                       "to convergence on exact gradients")

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.toy_population_limit", source=f"{SOURCE}, toy bandit experiment; docs/design.md §4.4",
       statement="On the paper's toy (R = (2.5, 2, 1), β = 0.5, uniform π_ref, μ1 = (0.1, 0.2, 0.7), "
                 "μ2 = (0.05, 0.05, 0.9)) CoPG trained with Adam on exact expected gradients reaches "
                 "regret J_β(π*) − J_β(π) < 1e-3",
       conditions="population limit; Adam lr 1e-2 for 2000 steps from π_ref")
def _():
    def exact(quick):
        run = C.train_exact("copg", C.toy_problem(), epochs=100, steps_per_epoch=20, lr=1e-2)
        final = float(run.regret[-1])
        return Outcome(final < 1e-3, final, "< 1e-3",
                       f"start {float(run.regret[0]):.4f}, after 2000 Adam steps {final:.3g}")

    return [Check("exact", exact)]


@claim("copg.onpolicy_gradient", source=f"{SOURCE}, on-policy case",
       statement="On policy, E_{y,y'~π}[∇ℓ(y, y')] = 2∇J_β(π)",
       conditions="y, y' independent draws from the current π; the gradient acts on ℓ with the "
                  "samples held fixed (not through the sampling law)")
def _():
    def symbolic(quick):
        return _symbolic({k: T.onpolicy_residual(k) for k in (2, 3)}, "E[∇ℓ] − 2∇J_β")

    def exact(quick):
        worst = 0.0
        for _k, p, theta in _instances(quick, 14):
            pi = jax.nn.softmax(theta)
            on = _with_laws(p, pi, pi)
            mean = C.copg_expected_ascent(theta, on)  # Σ π_y π_y' ∇ℓ(y, y') in closed form
            auto = -C.expected_gradient("copg", theta, on)  # the same sum by autodiff
            target = 2 * jax.grad(C.objective)(theta, p)
            worst = max(worst, float(jnp.abs(mean - target).max()), float(jnp.abs(auto - target).max()))
        return Outcome(worst < TOL, worst, f"< {TOL:g}", "enumeration of all K×K pairs, random K")

    def mc(quick):
        rng = np.random.default_rng(15)
        checks = []
        for i, k in enumerate([4] if quick else [3, 5, 8]):
            p, theta = random_instance(rng, k)
            checks.append(onpolicy_check(copg_ascent_loss, theta, p,
                                         100_000 if quick else 1_000_000, seed=100 + i))
        return _z_outcome(checks)

    return [Check("symbolic", symbolic), Check("exact", exact), Check("monte_carlo", mc)]


@claim("copg.through_sampling", source=f"{SOURCE}, on-policy case (condition probed)",
       statement="The on-policy identity also holds when the gradient is taken through the sampling "
                 "law: ∇_θ E_{y,y'~π_θ}[ℓ(y, y'; θ)] = 2∇J_β(θ)",
       expected="refuted",
       conditions="differentiating the expectation, sampling law included")
def _():
    point = {"rewards": (1.0, 0.0), "ref": (0.5, 0.5), "beta": 1.0, "theta": (0.0, float(np.log(2)))}

    def symbolic(quick):
        diff = T.through_sampling_difference(2)
        x = sp.symbols("x_1:3", positive=True)
        r, q = sp.symbols("r_1:3", real=True), sp.symbols("rho_1:3", positive=True)
        subs = {x[0]: 1, x[1]: 2, r[0]: 1, r[1]: 0, q[0]: sp.Rational(1, 2), q[1]: sp.Rational(1, 2),
                T.beta: 1}
        values = [float(sp.N(e.subs(subs))) for e in diff]
        holds = all(abs(v) < TOL for v in values)
        return Outcome(holds, values, [0.0, 0.0],
                       "∇ E_{π×π}[ℓ] − 2∇J_β at K = 2, R = (1, 0), β = 1, π_ref uniform, π = (1/3, 2/3)",
                       counterexample=None if holds else {**point, "difference": values})

    def exact(quick):
        p = C.make_problem(point["rewards"], point["beta"], (0.5, 0.5), (0.5, 0.5), point["ref"])

        y, y2 = (jnp.repeat(jnp.arange(2), 2), jnp.tile(jnp.arange(2), 2))

        def pop(theta):  # E_{y,y'~π_θ}[ℓ(y, y'; θ)], differentiated in both places
            pi = jax.nn.softmax(theta)
            return jnp.sum(pi[y] * pi[y2] * C.copg_objective(theta, p, y, y2))

        theta = jnp.asarray(point["theta"])
        diff = np.asarray(jax.grad(pop)(theta) - 2 * jax.grad(C.objective)(theta, p))
        holds = bool(np.abs(diff).max() < TOL)
        return Outcome(holds, diff.tolist(), [0.0, 0.0], "autodiff through π×π at the same point",
                       counterexample=None if holds else {**point, "difference": diff.tolist()})

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.rloo_g2", source=f"{SOURCE}, link with RLOO; Kool et al. 2019",
       statement="On policy, the CoPG pair gradient is twice the RLOO group estimate with G = 2 "
                 "(β = 0: RLOO on R; β > 0: RLOO on the regularised rewards R_β^π)",
       conditions="the pair (y, y') is the group; registry estimator `rloo`")
def _():
    def symbolic(quick):
        res = {k: [*T.rloo_reduction_beta0(k), *T.rloo_reduction_residual(k)] for k in (2, 3)}
        return _symbolic(res, "∇ℓ − 2 ĝ_RLOO(G=2)")

    def exact(quick):
        rloo = estimators.get("rloo")
        worst = 0.0
        group = jax.jit(jax.vmap(
            lambda t, arms, r: estimators.bandit_group_gradient(rloo.advantages, t, arms, r, rloo.params),
            in_axes=(None, 0, 0)))
        for k, p, theta in _instances(quick, 16):
            y, y2 = _pairs(k)
            arms = jnp.stack([y, y2], axis=1)
            for beta in (0.0, float(p.beta)):
                q = p._replace(beta=jnp.asarray(beta))
                rb = C.regularised_reward(theta, q)
                g_rloo = group(theta, arms, rb[arms])
                g = _per_pair_grad(C.copg_objective, theta, q, y, y2)
                worst = max(worst, float(jnp.abs(g - 2 * g_rloo).max()))
        return Outcome(worst < TOL, worst, f"< {TOL:g}",
                       "every pair of random instances, β = 0 and β > 0, registry `rloo`")

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.ipo_reduction", source=f"{SOURCE}, link with IPO; Azar et al. 2023",
       statement="With R(y) = −R(y') = 1/4 for the preferred y, ℓ = −(β/2)·(Δh − 1/(2β))² + 1/(8β): "
                 "CoPG maximisation is IPO minimisation with τ = β",
       conditions="IPO loss (Δh_{w,l} − 1/(2τ))²")
def _():
    def symbolic(quick):
        return _symbolic({"pair": [T.ipo_reduction_residual()]}, "ℓ + (β/2)·IPO − 1/(8β)")

    def exact(quick):
        worst = 0.0
        for k, p, theta in _instances(quick, 17):
            y, y2 = _pairs(k)
            keep = y != y2
            y, y2 = y[keep], y2[keep]
            # per pair, a reward vector with R(y) = 1/4, R(y') = −1/4 (other arms as drawn)
            r = jnp.tile(p.rewards, (y.size, 1))
            r = r.at[jnp.arange(y.size), y].set(0.25).at[jnp.arange(y.size), y2].set(-0.25)
            beta = p.beta

            def one(rv, a, b):
                q = p._replace(rewards=rv)
                return C.copg_objective(theta, q, a, b) - (
                    -beta / 2 * C.ipo_loss(theta, q, a, b, 1.0) + 1 / (8 * beta))

            worst = max(worst, float(jnp.abs(jax.vmap(one)(r, y, y2)).max()))
        return Outcome(worst < TOL, worst, f"< {TOL:g}", "every ordered pair y ≠ y' of random instances")

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.minibatch_unbiased", source="docs/design.md §4.4 (trainer losses)",
       statement="For copg, pg, pg_value, pg_soft_value, ipo and dpo, the gradient of the per-pair "
                 "loss on logged pairs (y ~ μ1, y' ~ μ2, Bradley–Terry labels) is unbiased for the "
                 "method's exact expected update (closed forms for copg and the three pg baselines)",
       conditions="pairs i.i.d. from μ1 × μ2; labels ~ Bernoulli(σ(R_y − R_y'))")
def _():
    def exact(quick):
        worst = 0.0
        for _k, p, theta in _instances(quick, 18):
            for m in ("copg", *C.PG_BASELINES):
                auto = C.expected_gradient(m, theta, p)
                worst = max(worst, float(jnp.abs(auto + C.ascent_field(m)(theta, p)).max()))
        return Outcome(worst < TOL, worst, f"< {TOL:g}",
                       "autodiff of the population loss (stop-gradients included) vs closed forms")

    def mc(quick):
        rng = np.random.default_rng(19)
        checks = []
        for i, k in enumerate([4] if quick else [3, 6, 9]):
            p, theta = random_instance(rng, k)
            res = pair_gradients_mc(tuple(C.LOSSES[m] for m in C.METHODS), theta, p,
                                    100_000 if quick else 1_000_000, seed=200 + i)
            checks += [_minibatch_z(m, *r, theta, p) for m, r in zip(C.METHODS, res)]
        return _z_outcome(checks)

    return [Check("exact", exact), Check("monte_carlo", mc)]


def _toy_fixed_point(method: str) -> dict:
    fp = C.fixed_point(method, C.toy_problem())
    return {"pi": [round(float(x), 6) for x in fp.pi], "regret": float(fp.regret),
            "residual": float(fp.grad_norm)}


def _update_at_optimum(problem: C.Problem, baseline: float) -> np.ndarray:
    """(J_β(π*) − b)(μ̄ − π*): the off-policy PG update at π* with a constant-at-π* baseline b."""
    mu_bar = 0.5 * np.asarray(problem.mu1 + problem.mu2)
    return (float(C.optimal_value(problem)) - baseline) * (mu_bar - np.asarray(C.optimal_policy(problem)))


@claim("copg.pg_no_baseline_optimum", source=f"{SOURCE}, §5 and Fig. 1 (off-policy PG, b = 0)",
       statement="Off-policy PG without a baseline (b = 0: the on-policy estimator "
                 "E[R_β^π(y)∇ln π(y)] applied to logged pairs) converges to π*",
       expected="refuted",
       conditions="population limit; its update at π* is J_β(π*)(μ̄ − π*), μ̄ = (μ1 + μ2)/2, "
                  "which vanishes only if μ̄ = π* or J_β(π*) = 0")
def _():
    def symbolic(quick):
        res = T.pg_field_at_optimum_residuals(3)["no_baseline"]
        update = _update_at_optimum(C.toy_problem(), 0.0)
        holds = not _all_zero(res) or bool(np.abs(update).max() < TOL)
        return Outcome(holds, {"update_at_optimum": update.tolist()}, "0",
                       "update at θ* = J_β(π*)(μ̄ − π*) (derived for symbolic K = 3), evaluated on the toy",
                       counterexample=None if holds else {"problem": "toy", "update_at_optimum": update.tolist()})

    def exact(quick):
        fp = _toy_fixed_point("pg")
        holds = fp["regret"] < 1e-6
        return Outcome(holds, fp, {"regret": "≈ 0"},
                       f"toy fixed point {fp['pi']} with regret {fp['regret']:.4f}",
                       counterexample=None if holds else {"problem": "toy", **fp})

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.pg_value_baseline_optimum",
       source=f"{SOURCE}, §5 eq. 23–24 and Fig. 1 (off-policy PG with the value baseline b = E_π[R])",
       statement="Off-policy PG with the paper's value baseline b = E_{y~π}[R(y)] (the unregularised "
                 "expected reward of the current policy, computed exactly) converges to π*; the paper "
                 "reports that it converges to a biased solution instead",
       expected="refuted",
       conditions="population limit; its update at π* is −β KL(π*‖π_ref)(μ̄ − π*), μ̄ = (μ1 + μ2)/2, "
                  "which vanishes only if μ̄ = π* or π* = π_ref; on the toy the limit is "
                  "π ≈ (0.8116, 0.1675, 0.0209) with regret ≈ 0.0148")
def _():
    def symbolic(quick):
        res = T.pg_field_at_optimum_residuals(3)["value_baseline"]
        p = C.toy_problem()
        update = _update_at_optimum(p, float(C.expected_reward(C.optimal_logits(p), p)))
        holds = not _all_zero(res) or bool(np.abs(update).max() < TOL)
        return Outcome(holds, {"update_at_optimum": update.tolist()}, "0",
                       "update at θ* = −β KL(π*‖π_ref)(μ̄ − π*) (derived for symbolic K = 3), "
                       "evaluated on the toy",
                       counterexample=None if holds else {"problem": "toy", "update_at_optimum": update.tolist()})

    def exact(quick):
        fp = _toy_fixed_point("pg_value")
        holds = fp["regret"] < 1e-6
        return Outcome(holds, fp, {"regret": "≈ 0"},
                       f"toy fixed point {fp['pi']} with regret {fp['regret']:.4f} "
                       "(the paper's biased solution)",
                       counterexample=None if holds else {"problem": "toy", **fp})

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.pg_soft_value_baseline_stationary",
       source=f"{SOURCE}, §5 (off-policy PG); the soft value baseline b = J_β(π) is the lab's variant",
       statement="Off-policy PG with the soft value baseline b = J_β(π) (the regularised value, not the "
                 "paper's E_π[R]) is stationary at π* for any sampling law, because R_β^{π*}(a) = "
                 "J_β(π*) for every arm",
       conditions="population limit; the exact soft value J_β(π) of the current policy as baseline")
def _():
    def symbolic(quick):
        return _symbolic({k: T.pg_field_at_optimum_residuals(k)["soft_value_baseline"] for k in (2, 3)},
                         "E_μ̄[(R_β^π − J_β)∇ln π] at θ*")

    def exact(quick):
        worst = 0.0
        for _k, p, _ in _instances(quick, 20):
            worst = max(worst, float(jnp.abs(C.pg_expected_ascent(C.optimal_logits(p), p, "soft_value")).max()))
        fp = _toy_fixed_point("pg_soft_value")
        ok = worst < TOL and fp["regret"] < 1e-10
        return Outcome(ok, {"max_update_at_opt": worst, "toy": fp},
                       {"max_update_at_opt": f"< {TOL:g}", "toy regret": "< 1e-10"},
                       "random K: update at π*; toy: converged fixed point from π_ref")

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.dpo_consistent", source="Rafailov et al. 2023 (DPO); derived for docs/design.md §4.4",
       statement="DPO on Bradley–Terry labels z ~ σ(R_y − R_y') has π* as its population optimum, "
                 "for any full-support μ1, μ2",
       conditions="population limit; the labels' Bradley–Terry reward is R itself (same scale as β)")
def _():
    def symbolic(quick):
        return _symbolic({"pair": [T.dpo_pair_stationarity_residual()]},
                         "label-averaged DPO derivative at βΔh = ΔR")

    def exact(quick):
        worst = 0.0
        for _k, p, _ in _instances(quick, 21):
            worst = max(worst, float(jnp.abs(C.expected_gradient("dpo", C.optimal_logits(p), p)).max()))
        fp = _toy_fixed_point("dpo")
        ok = worst < TOL and fp["regret"] < 1e-10
        return Outcome(ok, {"max_grad_at_opt": worst, "toy": fp},
                       {"max_grad_at_opt": f"< {TOL:g}", "toy regret": "< 1e-10"},
                       "random K: expected DPO gradient at π*; toy: converged fixed point")

    return [Check("symbolic", symbolic), Check("exact", exact)]


@claim("copg.ipo_optimum", source="Azar et al. 2023 (IPO) as a CoPG special case; docs/design.md §4.4",
       statement="IPO (τ = β) on Bradley–Terry labels σ(R_y − R_y') has π* as its population optimum",
       expected="refuted",
       conditions="population limit; IPO regresses Δh(y,y') on (2σ(ΔR) − 1)/(2β), not on ΔR/β")
def _():
    def exact(quick):
        p = C.toy_problem()
        arg = np.exp(np.asarray(C.ipo_argmax(p)))
        fp = _toy_fixed_point("ipo")
        agree = float(np.abs(arg - np.asarray(fp["pi"])).max())
        reg = float(C.regret(jnp.log(jnp.asarray(arg)), p))
        holds = reg < 1e-6
        return Outcome(holds, {"ipo_optimum": arg.round(6).tolist(), "regret": reg,
                               "trainer_vs_least_squares": agree}, {"regret": "≈ 0"},
                       f"toy: least-squares IPO optimum {arg.round(4).tolist()} (trainer agrees to "
                       f"{agree:.1e}), regret {reg:.4f}",
                       counterexample=None if holds else {"problem": "toy", "ipo_optimum": arg.tolist(),
                                                          "regret": reg})

    return [Check("exact", exact)]
