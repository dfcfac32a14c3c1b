"""The figure pipeline: atomic writes, skipping by content hash, resuming after a kill, determinism,
and the gallery."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paper_figs import gallery, style

ROOT = Path(__file__).resolve().parent.parent
CHEAP = ["baseline_variance"]


def _valid(path: Path) -> bool:
    data = path.read_bytes()
    if path.suffix == ".png":
        return data.startswith(b"\x89PNG") and data.rstrip().endswith(b"IEND\xaeB`\x82")
    if path.suffix == ".pdf":
        return data.startswith(b"%PDF") and b"%%EOF" in data[-64:]
    if path.suffix == ".json":
        json.loads(data)
        return True
    return True


def _figures(args, out, **kw):
    return subprocess.Popen([sys.executable, "-m", "sims.cli", "figures", "--quick", "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, **kw)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    style.write_json(target, {"a": 1})

    class Boom:
        def __repr__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        style.write_json(target, {"a": Boom()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """Run every figure (quick), kill the run once the first figure is done, run again."""
    out = tmp_path_factory.mktemp("figures")
    steps = ",".join(gallery.figure_modules())
    proc = _figures(["--only", steps, "--jobs", "2"], out)
    deadline = time.time() + 300
    manifest = out / "manifest.json"
    while time.time() < deadline and proc.poll() is None:
        if manifest.is_file() and json.loads(manifest.read_text() or "{}"):
            break
        time.sleep(0.1)
    killed_midway = proc.poll() is None
    workers = _children(proc.pid)
    if killed_midway:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    survivors = _wait_gone(workers)
    rerun = _figures(["--only", steps], out)
    log, _ = rerun.communicate(timeout=900)
    return out, steps, rerun.returncode, log, killed_midway, workers, survivors


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (the run's step workers), from /proc."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids, seconds: float = 30.0) -> list[int]:
    deadline = time.time() + seconds
    while time.time() < deadline and any(map(_alive, pids)):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_resume_after_kill_leaves_every_file_complete(resumed_run):
    out, _, code, log, killed_midway, _, _ = resumed_run
    assert code == 0, log
    assert killed_midway
    entries = json.loads((out / "manifest.json").read_text())
    assert set(entries) == set(gallery.figure_modules())
    assert "up to date" in log  # the figure finished before the kill was not redone
    for entry in entries.values():
        assert len(entry["files"]) == 3
        for f in entry["files"]:
            assert _valid(out / f), f
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_killed_run_leaves_no_worker_behind(resumed_run):
    """The run was killed while two step workers ran (`--jobs 2`); they die with it and write
    nothing after it (the rerun's checks above would not see a late write)."""
    *_, workers, survivors = resumed_run
    assert len(workers) >= 2 and survivors == []


def test_second_run_skips_everything(resumed_run):
    out, steps, *_ = resumed_run
    again = _figures(["--only", steps], out)
    log, _ = again.communicate(timeout=300)
    assert again.returncode == 0 and log.count("up to date") == len(gallery.figure_modules()), log


def test_figures_are_deterministic(resumed_run, tmp_path):
    """A second, forced run of every figure writes byte-identical data files."""
    out, steps, *_ = resumed_run
    again = _figures(["--only", steps, "--force"], tmp_path)
    log, _ = again.communicate(timeout=900)
    assert again.returncode == 0, log
    first = {p.name: p.read_bytes() for p in out.glob("*.json") if p.name != "manifest.json"}
    second = {p.name: p.read_bytes() for p in tmp_path.glob("*.json") if p.name != "manifest.json"}
    assert len(first) == len(gallery.figure_modules())
    assert first == second, [n for n in first if first[n] != second.get(n)]


def test_every_figure_module_follows_the_convention():
    for name in gallery.figure_modules():
        module = __import__(f"paper_figs.{name}", fromlist=["make"])
        assert callable(module.make) and isinstance(module.SEED, int) and module.__doc__
        assert isinstance(module.CLAIMS, list)


def test_gallery_is_current():
    assert gallery.DOC.read_text() == gallery.render(), "run make docs"
