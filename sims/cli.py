"""The `pglab` command line. Bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
import sys
from typing import Optional

import numpy as np
import typer

from bandits.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="pglab: policy-gradient claims checked symbolically, exactly and by Monte Carlo.",
)


@app.callback()
def _root() -> None:
    """pglab: policy-gradient claims checked symbolically, exactly and by Monte Carlo."""


def _floats(values) -> list:
    return [float(x) for x in np.asarray(values).reshape(-1)]


def moments_report(name, logits, rewards, group, params, mc_samples=None, seed=0) -> dict:
    """The JSON object of `pglab moments` (DESIGN §3)."""
    from bandits import softmax
    from sims import exact, montecarlo

    logits = np.asarray(logits, dtype=np.float64)
    if rewards.num_arms != logits.size:
        raise InputError(f"{logits.size} logits but {rewards.num_arms} reward distributions")
    out = {
        "estimator": name,
        "group": group,
        "params": {},
        "pi": _floats(softmax.policy(logits)),
        "true_gradient": _floats(softmax.gradient(logits, rewards.means)),
    }
    if rewards.finite:
        ex = exact.moments(name, logits, rewards, group, **params)
        out["params"] = ex.params
        out["exact"] = {
            "mean": _floats(ex.mean),
            "bias": _floats(ex.bias),
            "cov": np.asarray(ex.cov).tolist(),
            "trace_var": ex.trace_var,
            "optimal_constant_baseline": ex.optimal_constant_baseline,
        }
    elif mc_samples is None:
        raise InputError("gaussian rewards have no exact moments here; add --mc N")
    if mc_samples is not None:
        mc = montecarlo.moments(name, logits, rewards, group, mc_samples, seed=seed, **params)
        out["params"] = mc.params
        out["mc"] = {
            "samples": mc.samples,
            "seed": mc.seed,
            "mean": _floats(mc.mean),
            "mean_se": _floats(mc.mean_se),
            "trace_var": mc.trace_var,
            "trace_var_se": mc.trace_var_se,
        }
    return out


def _print_moments(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    p = ", ".join(f"{k}={v:g}" for k, v in report["params"].items())
    console.print(f"[bold]{report['estimator']}[/bold]  G={report['group']}  {p}")
    table = Table("arm", "π", "∇J", "E[ĝ] exact", "bias", "E[ĝ] MC ± se")
    ex, mc = report.get("exact"), report.get("mc")
    for k in range(len(report["pi"])):
        table.add_row(
            str(k + 1),
            f"{report['pi'][k]:.6f}",
            f"{report['true_gradient'][k]:+.6e}",
            f"{ex['mean'][k]:+.6e}" if ex else "-",
            f"{ex['bias'][k]:+.3e}" if ex else "-",
            f"{mc['mean'][k]:+.6e} ± {mc['mean_se'][k]:.1e}" if mc else "-",
        )
    console.print(table)
    if ex:
        console.print(f"tr Cov[ĝ] (exact)            {ex['trace_var']:.12g}")
        console.print(f"optimal constant baseline b* {ex['optimal_constant_baseline']:.12g}")
    if mc:
        console.print(f"tr Cov[ĝ] (MC, {mc['samples']:,} groups, seed {mc['seed']})  "
                      f"{mc['trace_var']:.6g} ± {mc['trace_var_se']:.2g}")


@app.command()
def moments(
    logits: str = typer.Option(..., help="comma-separated logits, e.g. 0.3,-0.2,0.1"),
    rewards: str = typer.Option(
        ..., help="bernoulli:p1,..,pK | deterministic:r1,..,rK | categorical:v/q;v/q|... | gaussian:m/s,.."
    ),
    estimator: str = typer.Option(..., help="registry name: reinforce, rloo, grpo_mean, grpo, optimal_baseline_loo"),
    group: int = typer.Option(..., help="group size G"),
    eps: Optional[float] = typer.Option(None, help="grpo's eps (default 1e-6)"),
    baseline: Optional[float] = typer.Option(None, help="reinforce's constant baseline b (default 0)"),
    mc: Optional[int] = typer.Option(None, help="also run Monte Carlo with this many groups"),
    seed: int = typer.Option(0, help="Monte Carlo seed"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Exact (and optionally Monte Carlo) mean, bias and covariance of a group estimator."""
    from bandits.rewards import parse_floats, parse_rewards
    from sims import estimators

    est = estimators.get(estimator)
    params = {"eps": eps, "baseline": baseline}
    for key in [k for k, v in params.items() if v is not None]:
        if key not in est.params:
            raise InputError(f"--{key} does not apply to estimator {estimator!r}")
    report = moments_report(
        estimator, parse_floats(logits, "logits"), parse_rewards(rewards), group,
        {k: v for k, v in params.items() if k in est.params}, mc, seed,
    )
    if as_json:
        print(json.dumps(report))
    else:
        _print_moments(report)


def _print_ledger(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    def short(x, n=38):
        t = x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)
        return t if len(t) <= n else t[: n - 1] + "…"

    table = Table("claim", "check", "measured", "expected", "interval", "status")
    for c in report["claims"]:
        for i, k in enumerate(c["checks"]):
            status = k["status"] if i else f"{k['status']} → {c['status']}"
            table.add_row(c["id"] if i == 0 else "", k["kind"], short(k["measured"]),
                          short(k["expected"]), short(k.get("interval") or "-", 24), status)
    console = Console(width=160)
    console.print(table)
    s = report["summary"]
    console.print(f"{s['passed']}/{s['claims']} claims as expected ({s['verified']} verified, "
                  f"{s['refuted']} refuted, {s['failed']} failed, {s['error']} errors) in {s['seconds']} s")
    for c in report["claims"]:
        if not c["passed"]:
            details = "; ".join(k["detail"] for k in c["checks"] if k["status"] != "verified")
            console.print(f"[red]{c['id']}: {c['status']}[/red] {details}")


@app.command()
def verify(
    quick: bool = typer.Option(False, "--quick", help="reduced sample sizes (CI)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    only: Optional[str] = typer.Option(None, help="glob(s) of claim ids, comma-separated"),
    out: Optional[str] = typer.Option(None, help="folder for ledger.md/ledger.json (default paper_figs/)"),
):
    """Run the claims ledger; exit 0 when every claim has its expected status, 1 otherwise."""
    from pathlib import Path

    from paper_figs import pipeline, style
    from sims import ledger

    report = ledger.run(quick=quick, only=only)
    if only and not report["claims"]:
        raise InputError(f"no claim matches {only!r}")
    pipeline.write_ledger(report, Path(out) if out else style.PACKAGE_DIR)
    if as_json:
        print(json.dumps(report))
    else:
        _print_ledger(report)
    raise typer.Exit(0 if report["summary"]["not_passed"] == 0 else 1)


@app.command()
def figures(
    quick: bool = typer.Option(False, "--quick", help="small sample sizes"),
    only: Optional[str] = typer.Option(None, help="comma-separated steps: ledger and/or figure modules"),
    force: bool = typer.Option(False, "--force", help="rebuild even when up to date"),
    out: Optional[str] = typer.Option(None, help="output folder (default paper_figs/figures, ledger in paper_figs/)"),
):
    """Run the ledger and regenerate every out-of-date figure (PNG, PDF and data)."""
    from paper_figs import pipeline

    steps = [s.strip() for s in only.split(",")] if only else None
    known = {"ledger", *pipeline.figure_modules()}
    for s in steps or []:
        if s not in known:
            raise InputError(f"unknown step {s!r}; known: {', '.join(sorted(known))}")
    manifest = pipeline.run(quick=quick, only=steps, force=force, out_dir=out)
    ledger = manifest.get("ledger", {}).get("summary", {})
    raise typer.Exit(1 if ledger.get("not_passed") else 0)


from sims.cli_copg import copg as _copg  # noqa: E402

app.command("copg")(_copg)
app.command("npg")(__import__("sims.cli_npg", fromlist=["npg"]).npg)

from sims import cli_continuous as _continuous  # noqa: E402

app.command("moments-gaussian")(_continuous.moments_gaussian)
app.command("moments-lqr")(_continuous.moments_lqr)


def _fail(message: str) -> None:
    print(f"pglab: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None) -> None:
    """Console entry point: one-line errors with exit code 2 for bad input."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        result = app(args=argv or ["--help"], standalone_mode=False, prog_name="pglab")
    except InputError as err:
        _fail(str(err))
    except Exception as err:  # typer's usage errors carry exit_code 2 and format_message()
        if getattr(err, "exit_code", None) == 2 and hasattr(err, "format_message"):
            _fail(err.format_message())
        code = getattr(err, "exit_code", None)
        if type(err).__name__ == "Exit" and isinstance(code, int):
            raise SystemExit(code) from None
        raise
    if isinstance(result, int) and result != 0:
        raise SystemExit(result)


if __name__ == "__main__":
    main()
