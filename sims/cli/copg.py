"""`pglab copg`: train CoPG or a baseline on logged pairs of a softmax bandit (docs/design.md §4.4).

    pglab copg --rewards 2.5,2,1 --beta 0.5 --mu1 0.1,0.2,0.7 --mu2 0.05,0.05,0.9 \\
               [--ref 1/3,1/3,1/3] --method copg|pg|pg_value|pg_soft_value|ipo|dpo \\
               [--exact [--max-steps S] | --exact-budget | --pairs N --seed S] [--epochs E] [--json]

Sampled runs (the default) draw N logged pairs (y ~ μ1, y' ~ μ2, Bradley–Terry labels) from the
seed and take E epochs of Adam (lr 1e-3, batch 512) on them. `--exact` is the population limit:
it iterates exact expected gradients (`bandits.copg.fixed_point`) until their norm is below 1e-10,
or stops at the step cap `--max-steps` and says so (`"converged": false`). `--exact-budget` is the
sampled run's fixed budget on exact gradients: the same E·⌈N/512⌉ Adam steps at lr 1e-3, with every
minibatch gradient replaced by its expectation (a finite budget, not the limit).

The JSON object has the keys method, mode ("sampled", "exact" or "exact_budget"), pi, J,
pi_star, J_star, regret (J_β(π*) − J_β(π) of the final policy π), grad_norm (the norm of the
exact expected gradient at π), steps (iterations taken) and converged (grad_norm < 1e-10; null
for sampled runs, whose stopping rule is their budget, with the reason in converged_reason).
"""

from __future__ import annotations

import json
from typing import Optional

import numpy as np
import typer

from bandits.errors import InputError, check_seed

MODES = ("sampled", "exact", "exact_budget")


def copg_report(rewards, beta, mu1, mu2, ref=None, method="copg", mode="sampled",
                pairs=10_000, seed=0, epochs=100, max_steps=None) -> dict:
    """Run one training and return the JSON object of `pglab copg` (inputs already numeric).

    mode: "sampled" (logged pairs from `seed`), "exact" (the population limit: iterate until
    |E[∇ loss]| < 1e-10 or `max_steps`) or "exact_budget" (the sampled budget on exact gradients)."""
    import jax
    import jax.numpy as jnp

    from bandits import copg as C

    problem = C.make_problem(rewards, beta, mu1, mu2, ref)
    if method not in C.METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(C.METHODS)}")
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    for name, v in (("pairs", pairs), ("epochs", epochs)):
        if v < 1:
            raise InputError(f"--{name} must be at least 1, got {v}")
    check_seed(seed, "--seed")
    C.check_budget(pairs, epochs, C.DEFAULTS["batch"], C.DEFAULTS["lr"], problem.rewards.shape[-1])
    steps_per_epoch = -(-pairs // min(C.DEFAULTS["batch"], pairs))
    converged, reason = None, None
    if mode == "exact":
        fp = C.fixed_point(method, problem, max_steps=C.FIXED_POINT["max_steps"] if max_steps is None
                           else max_steps)
        logits, steps, converged = fp.logits, int(fp.steps), bool(fp.converged)
        if not np.all(np.isfinite(logits)):
            raise InputError("the population search left the finite range; rescale R and β")
    elif mode == "exact_budget":
        run = C.train_exact(method, problem, epochs=epochs, steps_per_epoch=steps_per_epoch)
        logits, steps = run.logits[-1], epochs * steps_per_epoch
    else:
        run = C.train(method, problem, [seed], pairs=pairs, epochs=epochs)
        logits, steps = run.logits[0, -1], epochs * steps_per_epoch
        reason = "a sampled run stops after its budget of epochs; convergence is not tested"
    grad_norm = float(jnp.linalg.norm(C.ascent_field(method)(jnp.asarray(logits), problem)))
    if mode == "exact_budget":
        converged = grad_norm < C.FIXED_POINT["tol"]
    pi = np.asarray(jax.nn.softmax(logits))
    out = {
        "method": method,
        "mode": mode,
        "pi": [float(x) for x in pi],
        "J": float(C.objective(logits, problem)),
        "pi_star": [float(x) for x in np.asarray(C.optimal_policy(problem))],
        "J_star": float(C.optimal_value(problem)),
        "regret": float(C.regret(logits, problem)),
        "grad_norm": grad_norm,
        "steps": steps,
        "converged": converged,
    }
    if reason:
        out["converged_reason"] = reason
    return out


def _print(report: dict, problem_text: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{report['method']}[/bold]  {problem_text['how']}")
    table = Table("arm", "R", "μ1", "μ2", "π_ref", "π (final)", "π*")
    for k in range(len(report["pi"])):
        table.add_row(str(k + 1), f"{problem_text['rewards'][k]:g}", f"{problem_text['mu1'][k]:.4f}",
                      f"{problem_text['mu2'][k]:.4f}", f"{problem_text['ref'][k]:.4f}",
                      f"{report['pi'][k]:.6f}", f"{report['pi_star'][k]:.6f}")
    console.print(table)
    console.print(f"J_β(π)  {report['J']:.10g}")
    console.print(f"J_β(π*) {report['J_star']:.10g}")
    console.print(f"regret  {report['regret']:.6e}")
    console.print(f"|E[∇ loss]| at π  {report['grad_norm']:.3e}")


def copg(
    rewards: str = typer.Option(..., help="deterministic arm rewards, e.g. 2.5,2,1"),
    beta: float = typer.Option(..., help="KL temperature β > 0"),
    mu1: str = typer.Option(..., help="law of the first member of each logged pair, e.g. 0.1,0.2,0.7"),
    mu2: str = typer.Option(..., help="law of the second member, e.g. 0.05,0.05,0.9"),
    ref: Optional[str] = typer.Option(None, help="reference policy π_ref (default uniform); fractions like 1/3 allowed"),
    method: str = typer.Option("copg", help="copg | pg (b = 0) | pg_value (b = E_π[R], the paper's) | pg_soft_value (b = J_β(π)) | ipo | dpo"),
    exact: bool = typer.Option(False, "--exact", help="population limit: exact expected gradients until their norm < 1e-10"),
    exact_budget: bool = typer.Option(False, "--exact-budget", help="exact expected gradients for the sampled run's fixed budget (E·⌈N/512⌉ Adam steps)"),
    max_steps: Optional[int] = typer.Option(None, help="step cap of --exact (default 100000)"),
    pairs: Optional[int] = typer.Option(None, help="number of logged pairs (default 10000; not with --exact)"),
    seed: Optional[int] = typer.Option(None, help="seed of the data set and the shuffles, 0 ≤ S < 2^63 (default 0; sampled runs only)"),
    epochs: Optional[int] = typer.Option(None, help="epochs of minibatches, Adam lr 1e-3, batch 512 (default 100; not with --exact)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Train CoPG (or pg, pg_value, pg_soft_value, ipo, dpo) on logged pairs; print the final policy and regret."""
    from bandits import copg as C

    r = C.parse_vector(rewards, "rewards")
    m1, m2 = C.parse_vector(mu1, "mu1"), C.parse_vector(mu2, "mu2")
    q = None if ref is None else C.parse_vector(ref, "ref")
    if exact and exact_budget:
        raise InputError("--exact and --exact-budget exclude each other")
    if max_steps is not None and not exact:
        raise InputError("--max-steps applies to --exact only")
    if exact and (pairs is not None or epochs is not None):
        raise InputError("--pairs and --epochs set a fixed budget; --exact runs to convergence "
                         "(use --exact-budget for the budget on exact gradients)")
    if seed is not None and (exact or exact_budget):
        raise InputError("--seed applies to sampled runs only; exact gradients draw nothing")
    pairs = 10_000 if pairs is None else pairs
    epochs = 100 if epochs is None else epochs
    seed = 0 if seed is None else seed
    mode = "exact" if exact else "exact_budget" if exact_budget else "sampled"
    report = copg_report(r, beta, m1, m2, q, method, mode, pairs, seed, epochs, max_steps)
    if as_json:
        print(json.dumps(report, allow_nan=False))
        return
    problem = C.make_problem(r, beta, m1, m2, q)
    how = {"exact": f"population limit, {report['steps']} iterations, "
                    + ("converged" if report["converged"] else "NOT converged (step cap reached)"),
           "exact_budget": f"exact expected gradients, fixed budget of {report['steps']} Adam steps",
           "sampled": f"{pairs} pairs, seed {seed}, {epochs} epochs"}[mode]
    _print(report, {"how": how, "rewards": r, "mu1": np.asarray(problem.mu1),
                    "mu2": np.asarray(problem.mu2), "ref": np.exp(np.asarray(problem.log_ref))})
