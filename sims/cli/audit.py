"""`pglab audit MODULE:FUNCTION [--group G] [--json]`: a report card for your own advantage function.

    pglab audit mypkg.adv:my_advantages --group 8 --json

The function takes (rewards, weights) for one group and returns one advantage per member, traceable
by JAX (on bandits it receives weights = |s(a_i)|²). With --json the output is one object whose key
`verdict` is "unbiased", "direction-unbiased" or "biased" (see `sims.audit`). An import error, a
missing function, a wrong signature, a function that raises (SystemExit and KeyboardInterrupt
included, and os._exit), cannot be traced (a Python `if` on a traced value, NumPy on traced values) or runs
past `--timeout` seconds: exit 2 with one line. What the function prints is discarded, so the
JSON stays clean; a function returning a list or tuple of values is read as an array.
"""

from __future__ import annotations

import json

import typer


def _print(card: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{card['function']}[/bold]  G={card['group']}  verdict: [bold]{card['verdict']}[/bold]"
                  f" ({card['scope']})")
    for p in card["problems"]:
        console.print(f"  - {p}")
    checks = Table("check", "result")
    for k, v in card["checks"].items():
        checks.add_row(k, json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v)
    console.print(checks)
    panel = Table("bandit", "max |bias|", "c", "off-direction", "tr Cov", "tr Cov RLOO", "var/c² ÷ RLOO")
    fmt = lambda x: "—" if x is None else f"{x:.6g}"  # noqa: E731
    for p in card["panel"]:
        panel.add_row(p["bandit"], fmt(p["bias_max_abs"]), fmt(p["scale_c"]), fmt(p["off_direction_max_abs"]),
                      fmt(p["trace_var"]), fmt(p["trace_var_rloo"]), fmt(p["variance_ratio_at_equal_length"]))
    console.print(panel)
    s = card["scale_curve"]
    console.print("c(p, G): " + ", ".join(f"p={p:g}: {fmt(c)}" for p, c in zip(s["p"], s["c"])))


def audit(
    target: str = typer.Argument(..., help="MODULE:FUNCTION of an advantage function (rewards, weights) -> A"),
    group: int = typer.Option(8, help="group size G (2 to 1,024)"),
    timeout: float = typer.Option(45.0, help="seconds the whole card may take (a function that "
                                  "sleeps or loops is stopped with one line)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Report card of your own advantage function: symmetry, edge cases, exact bias and variance, verdict."""
    import os
    import sys

    from sims import audit as A

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    card = A.report(target, group, timeout)
    if as_json:
        print(json.dumps(card, allow_nan=False))
    else:
        _print(card)
