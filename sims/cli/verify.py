"""`pglab verify` (the claims ledger) and `pglab figures` (the ledger and every figure)."""

from __future__ import annotations

import json
import time
from typing import Optional

import typer

from bandits.errors import InputError
from sims.cli.options import output_folder

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
    from sims import claims, ledger
    from sims.runtime import progress

    folder = output_folder(out)
    registry = claims.load_all()
    ledger.select(registry, only)  # bad patterns fail before anything runs
    with progress.steps("ledger", 0) as bar:
        report = ledger.run(registry, quick=quick, only=only,
                            progress=lambda cid, done, total: bar.start(cid, done, total))
    if folder is None and not quick and only is None:
        folder = ledger.REPORT_DIR
    if folder is not None:
        ledger.write_ledger(report, folder)
    if as_json:
        print(json.dumps(report, allow_nan=False))
        s = report["summary"]
        bar.print(f"pglab verify: {s['passed']}/{s['claims']} claims as expected ({s['failed']} failed, "
                  f"{s['error']} errors); {progress.elapsed(time.perf_counter() - bar.started)}")
    else:
        print_ledger(report)
    raise typer.Exit(0 if report["summary"]["not_passed"] == 0 else 1)


def figures(
    quick: bool = typer.Option(False, "--quick", help="small sample sizes"),
    only: Optional[str] = typer.Option(None, help="comma-separated steps: ledger and/or figure modules"),
    force: bool = typer.Option(False, "--force", help="rebuild even when up to date"),
    out: Optional[str] = typer.Option(None, help="output folder (default paper_figs/figures, ledger in paper_figs/)"),
    jobs: Optional[int] = typer.Option(None, help="worker processes (default: one per core, at most 4; 1 runs "
                                                 "every step in this process)"),
):
    """Run the ledger and regenerate every out-of-date figure (PNG, PDF and data)."""
    from paper_figs import gallery, pipeline

    if jobs is None:
        jobs = pipeline.default_jobs()
    if not 1 <= jobs <= pipeline.MAX_JOBS:
        raise InputError(f"--jobs must be between 1 and {pipeline.MAX_JOBS}, got {jobs}")

    steps = None if only is None else [s.strip() for s in only.split(",")]
    known = {"ledger", *gallery.figure_modules()}
    for s in steps or []:
        if not s:
            raise InputError(f"--only {only!r}: empty step name; give comma-separated steps")
        if s not in known:
            raise InputError(f"unknown step {s!r}; known: {', '.join(sorted(known))}")
    folder = output_folder(out)
    manifest = pipeline.run(quick=quick, only=steps, force=force, out_dir=folder, jobs=jobs)
    ledger = manifest.get("ledger", {}).get("summary", {})
    raise typer.Exit(1 if ledger.get("not_passed") else 0)
