"""The claims ledger (docs/design.md §2): every statement the lab checks, and its symbolic, exact and
Monte Carlo evidence.

A claim is registered once, in a topic module of `sims.claims` (`sims.claims.load_all()` imports
them all and returns the registry that `run` is handed):

    @claim("rloo.unbiased", source="Kool et al. 2019, §2", statement="RLOO is unbiased: E[ĝ] = ∇J")
    def _():
        return [Check("symbolic", _symbolic), Check("exact", _exact), Check("monte_carlo", _mc)]

Each check is a function `(quick: bool) -> Outcome`. An outcome says whether the claim's
statement held on that check (`holds`), with what was measured and expected, an optional
confidence interval and, when it did not hold, the counterexample. Statuses:

- a check is "verified" (the statement held), "refuted" (a counterexample) or "error" (it raised);
- a claim is "error" if any check raised, else "refuted" if any check refuted it, else "verified";
  when that status is not the expected one the claim is reported as "failed".

A claim passes when its status equals the expected one ("verified" for "holds", "refuted" for
"refuted"): a statement the lab shows to be false is a result, recorded with its counterexample.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from sims.runtime import resources
from sims.runtime.files import atomic_write_bytes, write_json

KINDS = ("symbolic", "exact", "monte_carlo")
MAX_PATTERN = 200  # --only: patterns, and characters a pattern (fnmatch's regex grows with the stars)
EXPECTED = ("holds", "refuted")
REPORT_DIR = Path(__file__).resolve().parent.parent / "paper_figs"  # where a full run publishes ledger.md


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one check found. `measured`/`expected` must be JSON-serialisable."""

    holds: bool
    measured: Any
    expected: Any
    detail: str = ""
    interval: list | None = None  # e.g. [lo, hi] of a Monte Carlo confidence interval
    counterexample: Any = None


@dataclasses.dataclass(frozen=True)
class Check:
    kind: str
    run: Callable[[bool], Outcome]

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"check kind must be one of {KINDS}, got {self.kind!r}")


@dataclasses.dataclass(frozen=True)
class Claim:
    id: str
    source: str
    statement: str
    expected: str
    checks: Callable[[], list[Check]]
    conditions: str = ""

    def __post_init__(self):
        if self.expected not in EXPECTED:
            raise ValueError(f"expected must be one of {EXPECTED}, got {self.expected!r}")


REGISTRY: dict[str, Claim] = {}


def claim(id: str, source: str, statement: str, expected: str = "holds", conditions: str = ""):
    """Decorator registering a claim whose function returns its list of `Check`s."""

    def register(fn: Callable[[], list[Check]]):
        if id in REGISTRY:
            raise ValueError(f"claim {id!r} registered twice")
        REGISTRY[id] = Claim(id, source, statement, expected, fn, conditions)
        return fn

    return register


def _jsonable(x, reasons: dict | None = None, path: str = ""):
    """x as strict JSON: a non-finite number becomes null, and `reasons[path]` says which
    ("not a number (NaN)", "infinite (+inf)"), where `path` is e.g. `measured.trace_var` or `interval[1]`."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v, reasons, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v, reasons, f"{path}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist(), reasons, path)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        if np.isfinite(x):
            return x
        if reasons is not None:
            reasons[path] = ("not a number (NaN)" if np.isnan(x) else
                             f"infinite ({'-' if x < 0 else '+'}inf)")
        return None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if x is None or isinstance(x, (bool, int, str)):
        return x
    return str(x)


def run_claim(c: Claim, quick: bool) -> dict:
    """Run every check of a claim; never raises (an exception becomes status "error")."""
    start = time.perf_counter()
    results = []
    try:
        checks = c.checks()
    except Exception as err:  # noqa: BLE001 - reported, not hidden
        checks = []
        results.append({"kind": "exact", "status": "error", "measured": None, "expected": None,
                        "detail": f"building checks raised {err!r}", "interval": None})
    for chk in checks:
        try:
            out = chk.run(quick)
            nulls: dict = {}
            entry = {
                "kind": chk.kind,
                "status": "verified" if out.holds else "refuted",
                "measured": _jsonable(out.measured, nulls, "measured"),
                "expected": _jsonable(out.expected, nulls, "expected"),
                "detail": out.detail,
                "interval": _jsonable(out.interval, nulls, "interval"),
            }
            if out.counterexample is not None:
                entry["counterexample"] = _jsonable(out.counterexample, nulls, "counterexample")
            if nulls:  # each null of a non-finite value, with its reason
                entry["null_reasons"] = nulls
        except Exception as err:  # noqa: BLE001
            tb = traceback.format_exception_only(type(err), err)[-1].strip()
            entry = {"kind": chk.kind, "status": "error", "measured": None, "expected": None,
                     "detail": tb, "interval": None}
        results.append(entry)
    statuses = [r["status"] for r in results]
    if "error" in statuses or not statuses:
        status = "error"
    elif "refuted" in statuses:
        status = "refuted"
    else:
        status = "verified"
    wanted = "verified" if c.expected == "holds" else "refuted"
    if status in ("verified", "refuted") and status != wanted:
        status = "failed"
    record = {
        "id": c.id,
        "source": c.source,
        "statement": c.statement,
        "expected": c.expected,
        "status": status,
        "passed": status == wanted,
        "conditions": c.conditions,
        "seconds": round(time.perf_counter() - start, 3),
        "checks": results,
    }
    examples = [r["counterexample"] for r in results if "counterexample" in r]
    if examples:
        record["counterexample"] = examples[0]
    return record


def select(claims: dict[str, Claim], only: str | None) -> list[str]:
    """The ids of `claims` (id → Claim, e.g. `sims.claims.load_all()`) matching `only`: comma-separated globs matched against the whole id
    (`copg.*`, `*.unbiased`, an exact id); None means every claim. An empty pattern (`''`,
    `a,,b`) is an error, and so is a set of patterns that matches no claim."""
    from bandits.errors import InputError

    if only is None:
        return sorted(claims)
    patterns = [p.strip() for p in str(only).split(",")]
    if not patterns or any(not p for p in patterns):
        raise InputError(f"--only {only!r}: empty pattern; give comma-separated globs of claim ids")
    if any(len(p) > MAX_PATTERN for p in patterns) or len(patterns) > MAX_PATTERN:
        raise InputError(f"--only: at most {MAX_PATTERN} patterns of at most {MAX_PATTERN} characters each")
    ids = sorted(claims)
    chosen = [i for i in ids if any(fnmatch.fnmatchcase(i, p) for p in patterns)]
    if not chosen:
        raise InputError(f"no claim matches {only!r} (globs over whole ids, e.g. 'copg.*')")
    return chosen


def run(claims: dict[str, Claim], quick: bool = False, only: str | None = None,
        progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run the ledger over `claims` (id → Claim, e.g. `sims.claims.load_all()`): all of them, or
    those whose id matches a glob of `only`, see `select`.
    The summary records the mode (`quick`) and the selection (`only`, None for every claim).

    `progress(claim_id, done, total)` is called before each claim runs."""
    ids = select(claims, only)
    start = time.perf_counter()
    records = []
    for i in ids:
        if progress:
            progress(i, len(records), len(ids))
        records.append(run_claim(claims[i], quick))
        resources.release_compiled_code()
    counts = {s: sum(r["status"] == s for r in records) for s in ("verified", "refuted", "failed", "error")}
    summary = {
        "claims": len(records),
        "passed": sum(r["passed"] for r in records),
        "not_passed": sum(not r["passed"] for r in records),
        **counts,
        "quick": quick,
        "only": only,
        "seconds": round(time.perf_counter() - start, 2),
    }
    return {"claims": records, "summary": summary}


def symbolic_zero(residuals, what: str) -> Outcome:
    """The outcome of "every sympy residual simplifies to 0".

    `residuals` is an expression, a sequence or Matrix of them, or a dict name → such; the
    measured value names each residual "0" or shows what is left of it."""
    import sympy as sp

    if not isinstance(residuals, dict):
        residuals = {"residual": residuals}
    left = {}
    for name, value in residuals.items():
        items = list(value) if isinstance(value, (tuple, list, sp.MatrixBase)) else [value]
        rest = [sp.simplify(x) for x in items]
        left[str(name)] = "0" if all(x == 0 for x in rest) else str([x for x in rest if x != 0])
    holds = all(v == "0" for v in left.values())
    return Outcome(holds, left, "0", f"sympy: {what}" + ("" if holds else " (non-zero residuals)"))


def write_ledger(report: dict, out_dir: Path) -> list[str]:
    """ledger.json and ledger.md (a table per claim, its checks, counterexamples)."""
    write_json(out_dir / "ledger.json", report)
    atomic_write_bytes(out_dir / "ledger.md", ledger_markdown(report).encode())
    return ["ledger.json", "ledger.md"]


def _cell(x, width: int = 60) -> str:
    text = json.dumps(x, ensure_ascii=False, allow_nan=False) if not isinstance(x, str) else x
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def ledger_markdown(report: dict) -> str:
    s = report["summary"]
    lines = [
        "# The claims ledger",
        "",
        f"{s['claims']} claims: {s['passed']} as expected ({s['verified']} verified, {s['refuted']} "
        f"refuted as expected or not), {s['failed']} failed, {s['error']} errors; "
        f"{'quick' if s['quick'] else 'full'} mode"
        + (f", claims matching `{s['only']}` only" if s.get("only") else ", every claim")
        + ". Regenerate with `pglab verify`.",
        "",
        "| claim | expected | status | check | measured | expected value | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in report["claims"]:
        for i, k in enumerate(c["checks"]):
            head = (f"`{c['id']}`", c["expected"], ("**" + c["status"] + "**")) if i == 0 else ("", "", "")
            lines.append("| " + " | ".join([*head, k["kind"], _cell(k["measured"]), _cell(k["expected"]),
                                             _cell(k["detail"], 90)]) + " |")
    lines += ["", "## Statements", ""]
    for c in report["claims"]:
        lines.append(f"- `{c['id']}` ({c['source']}): {c['statement']}"
                     + (f" Conditions: {c['conditions']}." if c.get("conditions") else ""))
        if "counterexample" in c:
            lines.append(f"  - counterexample: `{_cell(c['counterexample'], 400)}`")
    return "\n".join(lines) + "\n"
