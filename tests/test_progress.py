"""Long runs report progress on stderr and end with a summary line; stdout stays clean for
--json; the `pglab verify` table fits the terminal and never cuts a claim id."""

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sims import ledger
from sims.cli.verify import print_ledger
from sims.runtime import progress

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = [40, 60, 80, 100, 120, 160, 240]


def _report(ids, statement="A statement long enough to need wrapping at narrow widths: " * 3):
    claims = [{"id": i, "source": "s", "statement": statement, "expected": "holds",
               "status": "verified", "passed": True, "conditions": "", "seconds": 0.0,
               "checks": [{"kind": k, "status": "verified", "measured": 1, "expected": 1,
                           "detail": "", "interval": None} for k in ledger.KINDS]}
              for i in ids]
    summary = {"claims": len(ids), "passed": len(ids), "not_passed": 0, "verified": len(ids),
               "refuted": 0, "failed": 0, "error": 0, "quick": True, "seconds": 0.1}
    return {"claims": claims, "summary": summary}


# Two ids that agree on their first 38 characters: a table that cuts ids shows them alike.
IDS = ["estimators.constant_baseline_unbiased_in_every_group_size",
       "estimators.constant_baseline_unbiased_in_every_group_shape", "vas.grad_norm_pimin"]


def _render(report, width) -> str:
    buf = io.StringIO()
    print_ledger(report, Console(file=buf, width=width, color_system=None, legacy_windows=False))
    return buf.getvalue()


@pytest.mark.parametrize("width", WIDTHS)
def test_table_keeps_every_id_whole_and_fits_the_width(width):
    text = _render(_report(IDS), width)
    words = set(re.findall(r"[\w.]+", text))
    assert all(i in words for i in IDS if len(i) <= width), text
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= max(width, max(map(len, IDS)))
    statement_words = len(re.findall(r"wrapping", text))
    assert statement_words == 3 * len(IDS)  # the statement wraps; nothing of it is dropped


def test_table_check_catches_a_cut_id():
    """The planted defect: ids cut to 38 characters, as a fixed-width table would."""
    cut = [i[:37] + "…" for i in IDS]
    text = _render(_report(cut), 160)
    words = set(re.findall(r"[\w.]+", text))
    assert not all(i in words for i in IDS)


def test_elapsed_format():
    assert progress.elapsed(4.24) == "4.2 s"
    assert progress.elapsed(185) == "3 min 05 s"
    assert progress.elapsed(3720) == "1 h 02 min"


def test_heartbeat_lines_without_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    with progress.steps("ledger", 3) as bar:
        bar.start("a.first", 0)
        bar.start("a.second", 1)
        bar.done()
        bar.start("a.third")
        bar.done()
    out, err = capsys.readouterr()
    assert out == ""
    assert "ledger 1/3 · a.first" in err and "ledger 2/3 · a.second" in err and "ledger 3/3" in err
    assert bar.started_steps == 3 and bar.done_steps == 2 and bar.completed == 3
    with progress.steps("ledger", 1, enabled=False) as bar:
        bar.start("a.first", 0)
    assert capsys.readouterr() == ("", "")


def test_verify_json_stdout_is_only_json_and_stderr_has_the_summary(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sims.cli", "verify", "--quick", "--json", "--only",
                           "estimators.score_identity", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [c["id"] for c in report["claims"]] == ["estimators.score_identity"]
    assert re.search(r"pglab verify: 1/1 claims as expected .*; \d+\.\d s", proc.stderr), proc.stderr


def test_figures_end_with_a_summary_line(tmp_path):
    args = [sys.executable, "-m", "sims.cli", "figures", "--quick", "--out", str(tmp_path), "--only", "baseline_variance"]
    first = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=600)
    again = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert re.search(r"pglab figures: 1 step, 1 written, 0 skipped as current; \d", first.stdout), first.stdout
    assert re.search(r"pglab figures: 1 step, 0 written, 1 skipped as current; \d", again.stdout), again.stdout


def test_inner_bar_is_silent_in_a_log(capsys):
    bar = progress.task("Monte Carlo", 10)
    bar.update(5)
    bar.stop()
    assert capsys.readouterr() == ("", "")
