"""`pglab verify`: the quick ledger runs clean and its JSON fits the schema; exit codes, claim
selection, where reports are written, and the pipeline's ledger step."""

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from paper_figs import pipeline
from sims import ledger

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_ledger(tmp_path_factory):
    out = tmp_path_factory.mktemp("ledger")
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "sims.cli", "verify", "--quick", "--json", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    return proc, json.loads(proc.stdout), out, time.time() - t


def test_verify_quick_passes_and_fits_schema(quick_ledger):
    proc, report, out, seconds = quick_ledger
    schema = json.loads((ROOT / "schemas" / "ledger.schema.json").read_text())
    jsonschema.validate(report, schema)
    jsonschema.validate(json.loads((out / "ledger.json").read_text()), schema)
    failing = [(c["id"], c["status"], [k["detail"] for k in c["checks"] if k["status"] != "verified"])
               for c in report["claims"] if not c["passed"]]
    assert proc.returncode == 0 and not failing, failing
    assert (out / "ledger.md").read_text().startswith("# The claims ledger")
    print(f"pglab verify --quick: {len(report['claims'])} claims in {seconds:.0f} s")


def test_ledger_records_refutations_with_counterexamples(quick_ledger):
    _, report, _, _ = quick_ledger
    refuted = [c for c in report["claims"] if c["expected"] == "refuted"]
    assert refuted and all(c["status"] == "refuted" and "counterexample" in c for c in refuted)


def test_schema_rejects_a_broken_report(quick_ledger):
    _, report, _, _ = quick_ledger
    schema = json.loads((ROOT / "schemas" / "ledger.schema.json").read_text())
    broken = json.loads(json.dumps(report))
    broken["claims"][0]["status"] = "probably"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_verify_exit_code_is_one_when_a_claim_fails(tmp_path, monkeypatch):
    from sims import claims, ledger
    from sims.cli.app import main

    claims.load_all()
    monkeypatch.setitem(ledger.REGISTRY, "planted.false_claim", ledger.Claim(
        "planted.false_claim", "planted defect", "1 + 1 = 3", "holds",
        lambda: [ledger.Check("exact", lambda quick: ledger.Outcome(1 + 1 == 3, 2, 3))]))
    with pytest.raises(SystemExit) as e:
        main(["verify", "--quick", "--only", "planted.*", "--out", str(tmp_path)])
    assert e.value.code == 1
    with pytest.raises(SystemExit) as e:
        main(["verify", "--only", "no.such.claim*", "--out", str(tmp_path)])
    assert e.value.code == 2


def _planted_registry(monkeypatch):
    from sims import claims as C
    from sims import ledger

    C.load_all()
    claims = {i: ledger.Claim(i, "planted", "1 = 1", "holds",
                              lambda: [ledger.Check("exact", lambda quick: ledger.Outcome(True, 1, 1))])
              for i in ("t.alpha", "t.beta", "u.alpha_beta")}
    monkeypatch.setattr(ledger, "REGISTRY", claims)
    monkeypatch.setattr(C, "load_all", lambda: claims)
    return claims


def test_only_matches_whole_ids_as_globs(monkeypatch):
    from bandits.errors import InputError
    from sims import ledger

    claims = _planted_registry(monkeypatch)
    assert ledger.select(claims, "t.*") == ["t.alpha", "t.beta"]
    assert ledger.select(claims, "*alpha*") == ["t.alpha", "u.alpha_beta"]
    assert ledger.select(claims, "t.alpha") == ["t.alpha"]  # not u.alpha_beta: no substring matching
    assert ledger.select(claims, None) == ["t.alpha", "t.beta", "u.alpha_beta"]
    for bad in ("", " ", "t.*,", ",t.*", "alpha"):
        with pytest.raises(InputError):
            ledger.select(claims, bad)


def test_partial_and_quick_verify_never_touch_the_published_report(tmp_path, monkeypatch):
    """`pglab verify --quick` and `--only X` write nowhere unless --out says where; the full
    report under paper_figs/ is left as it was."""
    from sims.cli.app import main

    _planted_registry(monkeypatch)
    published = tmp_path / "published"
    published.mkdir()
    monkeypatch.setattr(ledger, "REPORT_DIR", published)
    for args in (["--quick"], ["--only", "t.*"], ["--quick", "--only", "t.alpha"]):
        main(["verify", *args])  # exit code 0: main returns
    assert list(published.iterdir()) == []
    main(["verify", "--only", "t.*", "--out", str(tmp_path / "partial")])
    report = json.loads((tmp_path / "partial" / "ledger.json").read_text())
    assert report["summary"]["only"] == "t.*" and len(report["claims"]) == 2
    assert "claims matching `t.*` only" in (tmp_path / "partial" / "ledger.md").read_text()
    main(["verify"])  # the full run is the one that publishes
    full = json.loads((published / "ledger.json").read_text())
    assert full["summary"]["only"] is None and not full["summary"]["quick"] and len(full["claims"]) == 3


def test_ledger_step_reruns_when_its_report_was_replaced(tmp_path, monkeypatch):
    """The pipeline's ledger step is up to date only for the same mode, the same claim set and
    untouched output files."""
    claims = _planted_registry(monkeypatch)
    monkeypatch.setenv("PGLAB_FIGURES_DIR", str(tmp_path))  # pipeline.run sets it; restored after

    def ledger_step(quick):
        """The ledger step's own log line in one pipeline run (the run's summary line follows it)."""
        logs = []
        pipeline.run(quick=quick, only=["ledger"], out_dir=tmp_path, log=logs.append)
        return [line for line in logs if line.startswith("ledger")][-1]

    ledger_step(False)
    assert ledger_step(False) == "ledger: up to date"
    (tmp_path / "ledger.md").write_text("a partial report\n")  # replaced behind the pipeline's back
    assert ledger_step(False) != "ledger: up to date"
    assert (tmp_path / "ledger.md").read_text().startswith("# The claims")
    assert ledger_step(True) != "ledger: up to date"  # another mode
    assert ledger_step(True) == "ledger: up to date"
    claims.pop("u.alpha_beta")
    assert ledger_step(True) != "ledger: up to date"  # another claim set
