"""The `pglab` command line. Bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Optional

import numpy as np
import typer

from bandits.errors import MAX_SEED, InputError, check_seed
from bandits.rewards import list_fields

MAX_ARMS = 4096  # the covariance is K × K
MAX_MC_SAMPLES = 10**9
MAX_MC_CHUNK_ENTRIES = 1 << 27  # Monte Carlo works on chunk × G × K arrays

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


def number_list(text, what: str, max_len: int | None = None) -> list[float]:
    """A comma-separated list of finite numbers (no empty fields; at most `max_len` of them)."""
    import math

    fields = list_fields(text, what)
    if max_len is not None and len(fields) > max_len:
        raise InputError(f"{what}: {len(fields):,} values, over the limit of {max_len:,}")
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise InputError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} must be finite numbers, got {text!r}")
    return values


def check_count(value, what: str, low: int, high: int) -> int:
    """An integer option in [low, high], refused up front with the limit named."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be an integer, got {value!r}")
    if value < low:
        raise InputError(f"{what} must be at least {low:,}, got {value:,}")
    if value > high:
        raise InputError(f"{what} must be at most {high:,}, got {value:,}")
    return value


def check_seed_range(seed, count: int = 1, what: str = "--seed") -> int:
    """A first seed S of `count` consecutive seeds S, ..., S + count − 1, each a seed
    `bandits.errors.check_seed` accepts ([0, 2^63 − 1])."""
    seed = check_seed(seed, what)
    if seed + count - 1 > MAX_SEED:
        raise InputError(f"{what} {seed} with {count:,} seed(s) runs past 2^63 - 1, the largest seed")
    return seed


MAX_NAME = 255  # bytes in one path component (NAME_MAX on Linux)


def _path_text(path, what: str) -> str:
    import os

    text = str(path)
    if not text.strip():
        raise InputError(f"{what}: empty path")
    if "\0" in text:
        raise InputError(f"{what}: the path holds a NUL character")
    for part in text.split(os.sep):
        if len(os.fsencode(part)) > MAX_NAME:
            raise InputError(f"{what}: a name in the path is {len(os.fsencode(part))} bytes, over the "
                             f"limit of {MAX_NAME}")
    return text


def output_file(path, what: str):
    """A file the command will write: its folder must exist and be writable, and the path must
    not be a folder. None stays None."""
    import os
    from pathlib import Path

    if path is None:
        return None
    p = Path(_path_text(path, what))
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; give a file name")
    if p.exists() and not p.is_file():
        raise InputError(f"{what} {str(path)!r} exists and is not a regular file")
    if not parent.is_dir():
        raise InputError(f"{what} {str(path)!r}: the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"{what} {str(path)!r}: not writable")
    return p


def _floats(values) -> list:
    return [float(x) for x in np.asarray(values).reshape(-1)]


def moments_report(name, logits, rewards, group, params, mc_samples=None, seed=0) -> dict:
    """The JSON object of `pglab moments` (docs/design.md §3)."""
    from bandits import softmax
    from sims import exact, montecarlo

    logits = np.asarray(logits, dtype=np.float64)
    if rewards.num_arms != logits.size:
        raise InputError(f"{logits.size} logits but {rewards.num_arms} reward distributions")
    if not 2 <= logits.size <= MAX_ARMS:
        raise InputError(f"a softmax bandit here has between 2 and {MAX_ARMS:,} arms, got {logits.size:,}")
    if mc_samples is not None:
        _check_mc_size(mc_samples, group, logits.size)
        check_seed(seed)
    out = {
        "estimator": name,
        "group": group,
        "params": {},
        "pi": _floats(softmax.policy(logits)),
        "true_gradient": _floats(softmax.gradient(logits, rewards.means)),
    }
    if rewards.finite and mc_samples is not None:
        try:  # with --mc, an instance no exact route can enumerate leaves "exact" null
            exact.plan(name, logits, rewards, group)
        except InputError as err:
            out["exact"], out["exact_reason"] = None, f"not computed: {err}"
    if rewards.finite and "exact" not in out:
        ex = exact.moments(name, logits, rewards, group, **params)
        out["params"] = ex.params
        out["exact"] = {
            "mean": _floats(ex.mean),
            "bias": _floats(ex.bias),
            "cov": np.asarray(ex.cov).tolist(),
            "trace_var": ex.trace_var,
            "optimal_constant_baseline": ex.optimal_constant_baseline,
            "route": ex.route,
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
        if mc.trace_var_se is None:
            out["mc"]["trace_var_se_reason"] = (
                f"undefined: the batch-means standard error needs at least 2 batches, and "
                f"{mc.samples:,} samples make {mc.batches} (use a larger --mc)")
    return out


def _check_mc_size(samples, group, arms) -> None:
    """Refuse Monte Carlo runs that would not fit in memory or would not end, naming the limit."""
    from sims import montecarlo

    if not isinstance(samples, int) or not 2 <= samples <= MAX_MC_SAMPLES:
        raise InputError(f"--mc needs at least 2 samples and at most {MAX_MC_SAMPLES:,}, got {samples!r}")
    if isinstance(group, int) and group > 0:
        entries = montecarlo.chunk_size(samples) * group * arms
        if entries > MAX_MC_CHUNK_ENTRIES:
            raise InputError(f"Monte Carlo with G={group:,} and K={arms:,} needs chunks of {entries:,} "
                             f"entries (chunk × G × K), over the limit of {MAX_MC_CHUNK_ENTRIES:,}")


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
        se = f"± {mc['trace_var_se']:.2g}" if mc["trace_var_se"] is not None else \
            f"(standard error {mc['trace_var_se_reason']})"
        console.print(f"tr Cov[ĝ] (MC, {mc['samples']:,} groups, seed {mc['seed']})  "
                      f"{mc['trace_var']:.6g} {se}")


def _registry_names() -> list[str]:
    from sims.estimators import REGISTRY

    return list(REGISTRY)


def _parse_params(items) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value) if sep else None
        except ValueError:
            out[name.strip()] = None
        if out[name.strip()] is None:
            raise InputError(f"--param takes NAME=VALUE with a number, got {item!r}")
    return out


@app.command()
def moments(
    logits: str = typer.Option(..., help="comma-separated logits, e.g. 0.3,-0.2,0.1"),
    rewards: str = typer.Option(
        ..., help="bernoulli:p1,..,pK | deterministic:r1,..,rK | categorical:v/q;v/q|... | gaussian:m/s,.."
    ),
    estimator: str = typer.Option(..., help="registry name: " + ", ".join(_registry_names())),
    group: int = typer.Option(..., help="group size G"),
    eps: Optional[float] = typer.Option(None, help="the estimator's eps (grpo: default 1e-6)"),
    baseline: Optional[float] = typer.Option(None, help="reinforce's constant baseline b (default 0)"),
    param: list[str] = typer.Option([], "--param", help="NAME=VALUE for any other parameter of the estimator "
                                    "(e.g. --param alpha=2 for bnpo); repeatable"),
    mc: Optional[int] = typer.Option(None, help="also run Monte Carlo with this many groups"),
    seed: Optional[int] = typer.Option(None, help="Monte Carlo seed, 0 ≤ S < 2^63 (default 0; needs --mc)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Exact (and optionally Monte Carlo) mean, bias and covariance of a group estimator."""
    from bandits.rewards import parse_floats, parse_rewards
    from sims import estimators

    est = estimators.get(estimator)
    params = {"eps": eps, "baseline": baseline, **_parse_params(param)}
    for key in [k for k, v in params.items() if v is not None]:
        if key not in est.params:
            raise InputError(f"--{key} does not apply to estimator {estimator!r}")
    if seed is not None and mc is None:
        raise InputError("--seed applies to Monte Carlo only; add --mc N")
    report = moments_report(
        estimator, parse_floats(logits, "--logits"), parse_rewards(rewards), group,
        {k: v for k, v in params.items() if k in est.params}, mc, 0 if seed is None else seed,
    )
    if as_json:
        print(json.dumps(report, allow_nan=False))
    else:
        _print_moments(report)


_CHECK_NAMES = {"symbolic": "sym", "exact": "exact", "monte_carlo": "MC"}
_CHECK_MARKS = {"verified": "✓", "refuted": "✗", "error": "!"}


def _check_summary(claim: dict) -> str:
    return " ".join(f"{_CHECK_NAMES.get(k['kind'], k['kind'])}{_CHECK_MARKS.get(k['status'], '?')}"
                    for k in claim["checks"])


def print_ledger(report: dict, console=None) -> None:
    """The ledger as a table fitted to the console's width: claim ids are never cut (the
    statement wraps instead); below a usable width each claim is printed as a short block.
    Check marks: ✓ the statement held, ✗ refuted it, ! raised. `--json` has every number."""
    from rich import box
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    claims = report["claims"]
    id_width = max((len(c["id"]) for c in claims), default=5)
    status = {c["id"]: f"{c['status']} {'✓' if c['passed'] else '✗'}" for c in claims}
    status_width = max((len(v) for v in status.values()), default=6)
    check_width = max((len(_check_summary(c)) for c in claims), default=6)
    if console.width >= id_width + status_width + check_width + 30:
        table = Table(expand=True, show_lines=True, pad_edge=False, box=box.HORIZONTALS,
                      show_edge=False, header_style="bold")
        table.add_column("claim", no_wrap=True, min_width=id_width)
        table.add_column("status", no_wrap=True, min_width=status_width)
        table.add_column("checks", no_wrap=True, min_width=check_width)
        table.add_column("statement", ratio=1, overflow="fold", min_width=20)
        for c in claims:
            table.add_row(Text(c["id"]), Text(status[c["id"]], style=None if c["passed"] else "red"),
                          Text(_check_summary(c)), Text(c["statement"]))
        console.print(table)
    else:
        for c in claims:
            console.print(Text(c["id"], style="bold"), soft_wrap=True)
            console.print(Text(f"  {status[c['id']]}  {_check_summary(c)}",
                               style=None if c["passed"] else "red"), soft_wrap=True)
            console.print(Padding(Text(c["statement"]), (0, 0, 0, 4)))
    s = report["summary"]
    console.print(f"{s['passed']}/{s['claims']} claims as expected ({s['verified']} verified, "
                  f"{s['refuted']} refuted, {s['failed']} failed, {s['error']} errors) in {s['seconds']} s; "
                  "values and intervals: --json or paper_figs/ledger.md", highlight=False)
    for c in claims:
        if not c["passed"]:
            details = "; ".join(k["detail"] for k in c["checks"] if k["status"] != "verified")
            console.print(Text(f"{c['id']}: {c['status']} ", style="red") + Text(details), soft_wrap=True)


@app.command()
def verify(
    quick: bool = typer.Option(False, "--quick", help="reduced sample sizes (CI)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    only: Optional[str] = typer.Option(None, help="glob(s) of whole claim ids, comma-separated, e.g. 'copg.*'"),
    out: Optional[str] = typer.Option(None, help="folder for ledger.md/ledger.json; a full run defaults to "
                                                 "paper_figs/, a quick or partial run writes only here"),
):
    """Run the claims ledger; exit 0 when every claim has its expected status, 1 otherwise.

    Only a full run (no --quick, no --only) writes the published report paper_figs/ledger.md and
    ledger.json; a quick or partial run writes its report only where --out says."""
    from paper_figs import pipeline, style
    from sims import ledger, progress

    folder = output_folder(out)
    ledger.select(only)  # bad patterns fail before anything runs
    with progress.steps("ledger", 0) as bar:
        report = ledger.run(quick=quick, only=only,
                            progress=lambda cid, done, total: bar.start(cid, done, total))
    if folder is None and not quick and only is None:
        folder = style.PACKAGE_DIR
    if folder is not None:
        pipeline.write_ledger(report, folder)
    if as_json:
        print(json.dumps(report, allow_nan=False))
        s = report["summary"]
        bar.print(f"pglab verify: {s['passed']}/{s['claims']} claims as expected ({s['failed']} failed, "
                  f"{s['error']} errors); {progress.elapsed(time.perf_counter() - bar.started)}")
    else:
        print_ledger(report)
    raise typer.Exit(0 if report["summary"]["not_passed"] == 0 else 1)


@app.command()
def figures(
    quick: bool = typer.Option(False, "--quick", help="small sample sizes"),
    only: Optional[str] = typer.Option(None, help="comma-separated steps: ledger and/or figure modules"),
    force: bool = typer.Option(False, "--force", help="rebuild even when up to date"),
    out: Optional[str] = typer.Option(None, help="output folder (default paper_figs/figures, ledger in paper_figs/)"),
    jobs: Optional[int] = typer.Option(None, help="worker processes (default: one per core, at most 4; 1 runs "
                                                 "every step in this process)"),
):
    """Run the ledger and regenerate every out-of-date figure (PNG, PDF and data)."""
    from paper_figs import pipeline

    if jobs is None:
        jobs = pipeline.default_jobs()
    if not 1 <= jobs <= pipeline.MAX_JOBS:
        raise InputError(f"--jobs must be between 1 and {pipeline.MAX_JOBS}, got {jobs}")

    steps = None if only is None else [s.strip() for s in only.split(",")]
    known = {"ledger", *pipeline.figure_modules()}
    for s in steps or []:
        if not s:
            raise InputError(f"--only {only!r}: empty step name; give comma-separated steps")
        if s not in known:
            raise InputError(f"unknown step {s!r}; known: {', '.join(sorted(known))}")
    folder = output_folder(out)
    manifest = pipeline.run(quick=quick, only=steps, force=force, out_dir=folder, jobs=jobs)
    ledger = manifest.get("ledger", {}).get("summary", {})
    raise typer.Exit(1 if ledger.get("not_passed") else 0)


def output_folder(out: Optional[str], what: str = "--out"):
    """--out as a folder (created if missing); a path that exists and is not a folder, or that
    cannot be created, is an InputError. None stays None."""
    import os
    from pathlib import Path

    if out is None:
        return None
    path = Path(_path_text(out, what))
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {out!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{what} {out!r}: cannot create the folder ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{what} {out!r}: the folder is not writable")
    return path


from sims.cli_copg import copg as _copg  # noqa: E402

app.command("copg")(_copg)
from sims.cli_audit import audit as _audit  # noqa: E402

app.command("audit")(_audit)
app.command("npg")(__import__("sims.cli_npg", fromlist=["npg"]).npg)

from sims import cli_continuous as _continuous  # noqa: E402

app.command("moments-gaussian")(_continuous.moments_gaussian)
app.command("moments-lqr")(_continuous.moments_lqr)
app.command("train")(importlib.import_module("sims.cli_train").train)


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
