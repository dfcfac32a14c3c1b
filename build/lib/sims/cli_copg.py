"""`pglab copg`: train CoPG or a baseline on logged pairs of a softmax bandit (DESIGN §4.4).

    pglab copg --rewards 2.5,2,1 --beta 0.5 --mu1 0.1,0.2,0.7 --mu2 0.05,0.05,0.9 \\
               [--ref 1/3,1/3,1/3] --method copg|pg|pg_value|ipo|dpo \\
               [--exact | --pairs N --seed S] [--epochs E] [--json]

Sampled runs draw N logged pairs (y ~ μ1, y' ~ μ2, Bradley–Terry labels) from the seed and take
E epochs of Adam (lr 1e-3, batch 512) on them; `--exact` replaces every minibatch gradient by the
exact expected gradient, with the same number of Adam steps (E·⌈N/512⌉): the population limit of
the same run. The JSON object has the keys method, pi, J, pi_star, J_star and regret
(J_β(π*) − J_β(π) of the final policy π).
"""

from __future__ import annotations

import json
from typing import Optional

import numpy as np
import typer

from bandits.errors import InputError


def copg_report(rewards, beta, mu1, mu2, ref=None, method="copg", exact=False,
                pairs=10_000, seed=0, epochs=100) -> dict:
    """Run one training and return the JSON object of `pglab copg` (inputs already numeric)."""
    import jax

    from bandits import copg as C

    problem = C.make_problem(rewards, beta, mu1, mu2, ref)
    if method not in C.METHODS:
        raise InputError(f"unknown method {method!r}; expected one of {', '.join(C.METHODS)}")
    for name, v in (("pairs", pairs), ("epochs", epochs)):
        if v < 1:
            raise InputError(f"--{name} must be at least 1, got {v}")
    if exact:
        steps_per_epoch = -(-pairs // min(C.DEFAULTS["batch"], pairs))
        run = C.train_exact(method, problem, epochs=epochs, steps_per_epoch=steps_per_epoch)
        logits = run.logits[-1]
    else:
        run = C.train(method, problem, [seed], pairs=pairs, epochs=epochs)
        logits = run.logits[0, -1]
    pi = np.asarray(jax.nn.softmax(logits))
    return {
        "method": method,
        "pi": [float(x) for x in pi],
        "J": float(C.objective(logits, problem)),
        "pi_star": [float(x) for x in np.asarray(C.optimal_policy(problem))],
        "J_star": float(C.optimal_value(problem)),
        "regret": float(C.regret(logits, problem)),
    }


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


def copg(
    rewards: str = typer.Option(..., help="deterministic arm rewards, e.g. 2.5,2,1"),
    beta: float = typer.Option(..., help="KL temperature β > 0"),
    mu1: str = typer.Option(..., help="law of the first member of each logged pair, e.g. 0.1,0.2,0.7"),
    mu2: str = typer.Option(..., help="law of the second member, e.g. 0.05,0.05,0.9"),
    ref: Optional[str] = typer.Option(None, help="reference policy π_ref (default uniform); fractions like 1/3 allowed"),
    method: str = typer.Option("copg", help="copg | pg | pg_value | ipo | dpo"),
    exact: bool = typer.Option(False, "--exact", help="exact expected gradients (population limit)"),
    pairs: int = typer.Option(10_000, help="number of logged pairs"),
    seed: int = typer.Option(0, help="seed of the data set and the shuffles"),
    epochs: int = typer.Option(100, help="epochs of minibatches (Adam lr 1e-3, batch 512)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Train CoPG (or pg, pg_value, ipo, dpo) on logged pairs; print the final policy and regret."""
    from bandits import copg as C

    r = C.parse_vector(rewards, "rewards")
    m1, m2 = C.parse_vector(mu1, "mu1"), C.parse_vector(mu2, "mu2")
    q = None if ref is None else C.parse_vector(ref, "ref")
    report = copg_report(r, beta, m1, m2, q, method, exact, pairs, seed, epochs)
    if as_json:
        print(json.dumps(report))
        return
    problem = C.make_problem(r, beta, m1, m2, q)
    how = (f"exact expected gradients, {epochs} epochs" if exact
           else f"{pairs} pairs, seed {seed}, {epochs} epochs")
    _print(report, {"how": how, "rewards": r, "mu1": np.asarray(problem.mu1),
                    "mu2": np.asarray(problem.mu2), "ref": np.exp(np.asarray(problem.log_ref))})
