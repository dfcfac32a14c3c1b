"""`make figures` / `pglab figures`: run the claims ledger and regenerate every figure.

Each figure module of this package exposes `make(quick) -> Path`, `SEED` and `CLAIMS`. A step
(the ledger, or one figure) is skipped when the manifest records the same input hash and all its
files exist; the hash covers the step's own source, every source file of theory/, bandits/,
sims/ and paper_figs/style.py, the quick flag and the seed (for the ledger: its mode and the set of
claim ids), and the manifest records a digest of every output file, so a file replaced by anything
else (a quick or partial ledger report, say) makes its step out of date. The manifest is rewritten atomically
after every step, so an interrupted run resumes where it stopped, and stale temporary files of
an interrupted write are removed at start.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import json
import os
import re
import time
from pathlib import Path
from typing import Callable

from paper_figs import gallery, style
from paper_figs.gallery import ROOT, figure_modules
from sims import ledger

SOURCE_DIRS = ("theory", "bandits", "sims")
MANIFEST = "manifest.json"
PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "sympy", "matplotlib", "optax")


def _library_digest() -> str:
    h = hashlib.sha256()
    files = sorted(p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))
    files.append(ROOT / "paper_figs" / "style.py")
    for p in files:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def input_hash(step_source: str, quick: bool, seed, library: str) -> str:
    h = hashlib.sha256()
    for part in (step_source, str(quick), str(seed), library):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _load_manifest(path: Path) -> dict:
    """The manifest, or {} where there is none or it is not a JSON object of steps (then every
    step is out of date and the manifest is written anew). A folder in its place is an InputError."""
    from bandits.errors import InputError

    if path.is_dir():
        raise InputError(f"{path} is a folder; the figures' manifest is written there")
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError, OSError):  # ValueError: bad JSON or not UTF-8
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


# The temporaries this package writes and renames: `style.atomic_write_bytes` makes
# `.{name}.{8 random characters}.tmp`, `style.save` makes `.{stem}.{8 random characters}.{png|pdf}`
# (tempfile.mkstemp's names). Only files of exactly that form are stale temporaries; any other
# hidden file (a user's `.settings.json`) is left alone.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.(tmp|png|pdf)$")


def _clean_stale_temporaries(*dirs: Path) -> None:
    for d in dirs:
        if d.is_dir():
            for p in d.iterdir():
                if _TEMPORARY.match(p.name) and p.is_file() and not p.is_symlink():
                    p.unlink(missing_ok=True)


def file_digests(base: Path, files) -> dict:
    """sha256 of every output file, recorded in the manifest: a file replaced by anything else
    (a quick or partial ledger, a hand edit) makes its step out of date."""
    return {f: hashlib.sha256((base / f).read_bytes()).hexdigest()[:20] for f in files}


def _up_to_date(entry: dict | None, digest: str, base: Path) -> bool:
    if not isinstance(entry, dict) or entry.get("hash") != digest:
        return False
    files = entry.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) and (base / f).is_file() for f in files):
        return False
    return entry.get("digests") == file_digests(base, files)


MAX_JOBS = 64


def default_jobs() -> int:
    """One worker process per core, at most 4 (each is a JAX process of a few GiB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def run(quick: bool = False, only: list[str] | None = None, force: bool = False,
        out_dir: Path | None = None, log: Callable[[str], None] = print, jobs: int = 1) -> dict:
    """Run the ledger and every figure that is out of date; returns the manifest.

    With `jobs` > 1 the out-of-date steps run in that many worker processes (the ledger, the
    longest step, first), and this process alone writes the manifest, as each step ends. A
    progress display on stderr names the steps (and the ledger's claim) now running; the run
    ends with one summary line: steps written and skipped, the ledger's claims, the time."""
    from sims.runtime import progress

    with progress.steps("figures", 0) as bar:
        manifest = _run(quick, only, force, out_dir, log, bar, jobs)
    summary = manifest.get("ledger", {}).get("summary")
    claims = (f"; ledger {summary['passed']}/{summary['claims']} claims as expected"
              if summary and (not only or "ledger" in only) else "")
    n = bar.started_steps
    log(f"pglab figures: {n} step{'' if n == 1 else 's'}, {bar.done_steps} written, "
        f"{n - bar.done_steps} skipped as current{claims}; "
        f"{progress.elapsed(time.perf_counter() - bar.started)}")
    return manifest


def _unwritable_is_input_error(step, folder, fn):
    """fn(), with a file that cannot be written (a folder in its place, no permission, a
    full disk) reported as one line instead of a traceback."""
    from bandits.errors import InputError

    try:
        return fn()
    except OSError as err:
        target = getattr(err, "filename2", None) or getattr(err, "filename", None)  # a rename's target
        where = f" {target}:" if target else ""
        raise InputError(f"step {step}: cannot write its files in {folder}:{where} "
                         f"{err.strerror or type(err).__name__}") from None


def _digest(step: str, quick: bool, library: str) -> tuple[str, int]:
    """The step's input hash and seed."""
    if step == "ledger":
        from sims import claims

        claim_set = ",".join(ledger.select(claims.load_all(), None))
        return input_hash(f"ledger mode={'quick' if quick else 'full'} claims={claim_set}", quick, 0,
                          library), 0
    module = importlib.import_module(f"paper_figs.{step}")
    seed = getattr(module, "SEED", 0)
    return input_hash(inspect.getsource(module), quick, seed, library), seed


def build(step: str, quick: bool, fig_dir: Path, ledger_dir: Path, sub=None) -> tuple[dict, str]:
    """Compute one step and write its files: (manifest entry without hash and digests, log line).
    `sub(label, done, total)` follows the ledger's claims."""
    t = time.perf_counter()
    if step == "ledger":
        from sims import claims

        report = ledger.run(claims.load_all(), quick=quick, progress=sub)
        entry = {"files": ledger.write_ledger(report, ledger_dir), "summary": report["summary"]}
        line = (f"ledger: {report['summary']['passed']}/{report['summary']['claims']} claims as expected "
                f"({time.perf_counter() - t:.0f} s)")
        return entry, line
    module = importlib.import_module(f"paper_figs.{step}")
    png = Path(module.make(quick))
    files = [f"{png.stem}{ext}" for ext in (".png", ".pdf", ".json") if (fig_dir / f"{png.stem}{ext}").is_file()]
    entry = {"files": files, "claims": list(getattr(module, "CLAIMS", [])),
             "title": (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else step}
    return entry, f"{step}: written {', '.join(files)} ({time.perf_counter() - t:.0f} s)"


def _run(quick, only, force, out_dir, log, bar, jobs) -> dict:
    from sims.runtime import resources

    fig_dir = Path(out_dir) if out_dir else style.output_dir()
    ledger_dir = Path(out_dir) if out_dir else ledger.REPORT_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PGLAB_FIGURES_DIR"] = str(fig_dir)
    _clean_stale_temporaries(fig_dir, ledger_dir)
    manifest_path = fig_dir / MANIFEST
    manifest = _load_manifest(manifest_path)
    library = _library_digest()
    steps = ["ledger", *figure_modules()]
    if only:
        steps = [s for s in steps if s in only]
    pending = {}
    for step in steps:
        digest, seed = _digest(step, quick, library)
        if not force and _up_to_date(manifest.get(step), digest, ledger_dir if step == "ledger" else fig_dir):
            bar.start(step, total=len(steps))
            log(f"{step}: up to date")
        else:
            pending[step] = (digest, seed)

    def record(step, entry, line, completed=None):
        digest, seed = pending[step]
        entry = {"hash": digest, **entry, "seed": seed, "quick": quick}
        entry["digests"] = file_digests(ledger_dir if step == "ledger" else fig_dir, entry["files"])
        entry["versions"] = versions()
        manifest[step] = entry
        style.write_json(manifest_path, manifest)
        log(line)
        bar.done(completed)

    if jobs > 1 and len(pending) > 1:
        _run_parallel(pending, quick, fig_dir, ledger_dir, bar, record, min(jobs, len(pending)), len(steps))
    else:
        for step in pending:
            bar.start(step, total=len(steps))
            _unwritable_is_input_error(
                step, fig_dir, lambda: record(step, *build(step, quick, fig_dir, ledger_dir, bar.sub)))
            resources.release_compiled_code()
    if out_dir is None and not only:
        gallery.write()
    return manifest


# Worker processes of a parallel run (spawned: a fresh interpreter each, never a fork of a
# process that has started JAX). Each reports on a queue when it starts a step and how the
# ledger's claims advance; only the parent draws the progress display.
_queue = None


def _worker_init(queue, parent: int) -> None:
    global _queue
    _queue = queue
    from sims.runtime import progress

    progress.silence()  # inner bars would draw over the parent's display
    try:  # die with the parent (a killed run leaves no worker behind to write files)
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _build_in_worker(step: str, quick: bool, fig_dir: str, ledger_dir: str):
    from sims.runtime import resources

    _queue.put(("start", step, None, None))
    sub = lambda label, done, total: _queue.put(("sub", step, label, (done, total)))  # noqa: E731
    out = build(step, quick, Path(fig_dir), Path(ledger_dir), sub)
    resources.release_compiled_code()
    return out


def _run_parallel(pending, quick, fig_dir, ledger_dir, bar, record, jobs, total) -> None:
    """The pending steps in `jobs` worker processes, in order (the ledger first); `record` runs
    here, in the parent, as each step ends."""
    import multiprocessing
    import queue as queues
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    skipped = bar.started_steps
    running: list[str] = []
    started: set[str] = set()
    finished: set[str] = set()

    def begin(step):  # a worker's message can arrive after its result: count each step once
        started.add(step)
        running.append(step)
        bar.start(" + ".join(running), completed=skipped + len(finished), total=total)

    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(q, os.getpid())) as pool:
        futures = {pool.submit(_build_in_worker, step, quick, str(fig_dir), str(ledger_dir)): step
                   for step in pending}
        try:
            while futures:
                done, _ = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        kind, step, label, counts = q.get_nowait()
                    except queues.Empty:
                        break
                    if step in finished:
                        continue
                    if kind == "start" and step not in started:
                        begin(step)
                    elif kind == "sub":
                        bar.sub(label, *counts, step=step)
                for f in done:
                    step = futures.pop(f)
                    if step not in started:
                        begin(step)
                    running.remove(step)
                    finished.add(step)
                    _unwritable_is_input_error(
                        step, fig_dir, lambda: record(step, *f.result(), completed=skipped + len(finished)))
                    bar.relabel(" + ".join(running))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
