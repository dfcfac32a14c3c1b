"""Progress of long runs, on stderr: one rich display at a time, nested tasks share it.

`steps(title, total)` opens a progress display for a sequence of steps (the claims of the
ledger, the figures of `pglab figures`) and yields a `Steps` whose `start(label)` names the step
now running and `done()` counts it; `task(description, total)` gives a bar for work inside a
step (a Monte Carlo run): a second row of the open display, or its own transient display when
none is open. stdout is never written to, so `--json` output stays clean.

On a terminal the display is a live bar. Elsewhere (a CI log, a pipe) a bar cannot redraw, so
`steps` prints one plain line at most every `HEARTBEAT_S` seconds while a step runs long, naming
it ("ledger 12/45 claims · oblrpo.optimal_step · 1 min 40 s"), and nothing for fast steps.
"""

from __future__ import annotations

import contextlib
import time

HEARTBEAT_S = 30.0

_open = None  # the rich Progress of the `steps` display now open, if any
_silent = False  # set by `silence()`: no display at all in this process


def silence() -> None:
    """No progress display from this process (a worker of a parallel run, whose parent draws)."""
    global _silent
    _silent = True


def elapsed(seconds: float) -> str:
    """'4.2 s', '3 min 05 s', '1 h 02 min': a duration for a summary line."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Steps:
    """Handle of an open `steps` display."""

    def __init__(self, progress, task_id, title: str, total: int, console, live: bool):
        self._progress, self._task, self.title, self.total = progress, task_id, title, total
        self._console, self._live = console, live
        self.completed, self.started_steps, self.done_steps, self.label = 0, 0, 0, ""
        self.started = self._last_line = time.perf_counter()
        self._sub = None

    def start(self, label: str, completed: int | None = None, total: int | None = None) -> None:
        """The step called `label` begins (`completed` of `total` steps are done, if given)."""
        self._end_sub()
        self.completed = self.started_steps if completed is None else completed
        self.label, self.started_steps = label, self.started_steps + 1
        if total is not None:
            self.total = total
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self.title} · {label}",
                                  completed=self.completed, total=self.total)
        else:
            self.heartbeat(f"{self.title} {self.started_steps}/{self.total} · {label}")

    def sub(self, label: str, completed: int, total: int, step: str | None = None) -> None:
        """Progress inside the current step (e.g. the ledger's claims inside `pglab figures`), or
        inside `step`, one of several running at once."""
        step = step or self.label
        if self._progress is None:
            self.heartbeat(f"{self.title} · {step} {completed}/{total} · {label}")
            return
        if self._sub is None:
            self._sub = self._progress.add_task("", total=total)
        self._progress.update(self._sub, description=f"  {step} · {label}",
                              completed=completed, total=total)

    def relabel(self, label: str) -> None:
        """Name what is running now without starting a step (steps running at once)."""
        self.label = label
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self.title} · {label}")

    def heartbeat(self, line: str) -> None:
        """Without a live bar: `line` on stderr when the last one is older than HEARTBEAT_S."""
        now = time.perf_counter()
        if self._progress is None and self._live and now - self._last_line >= HEARTBEAT_S:
            self._last_line = now
            self.print(f"{line} · {elapsed(now - self.started)}")

    def done(self, completed: int | None = None) -> None:
        """The current step has finished with work done (a step left without `done` was
        skipped); `completed` steps are now over (default: every step started)."""
        self._end_sub()
        self.done_steps += 1
        self.completed = self.started_steps if completed is None else completed
        if self._progress is not None:
            self._progress.update(self._task, completed=self.completed)

    def _end_sub(self) -> None:
        if self._sub is not None:
            self._progress.remove_task(self._sub)
            self._sub = None

    def print(self, line: str) -> None:
        """A log line on stderr, above the bar when one is shown."""
        self._console.print(line, highlight=False, markup=False, soft_wrap=True)


@contextlib.contextmanager
def steps(title: str, total: int, enabled: bool | None = None):
    """A progress display over `total` steps on stderr (a live bar on a terminal; otherwise
    plain heartbeat lines, or nothing with enabled=False). Yields a `Steps`."""
    global _open
    from rich.console import Console

    console = Console(stderr=True)
    if _silent:
        enabled = False
    if enabled is False or _open is not None or not console.is_terminal:
        yield Steps(None, None, title, total, console, live=enabled is not False and _open is None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    task_id = progress.add_task(title, total=total)
    _open = progress
    try:
        with progress:
            yield Steps(progress, task_id, title, total, console, live=True)
    finally:
        _open = None


class _Task:
    def __init__(self, progress, task_id, own: bool):
        self._progress, self._task, self._own = progress, task_id, own

    def update(self, completed: float) -> None:
        self._progress.update(self._task, completed=completed)

    def stop(self) -> None:
        if self._own:
            self._progress.stop()
        else:
            self._progress.remove_task(self._task)


class _NoTask:
    def update(self, completed: float) -> None:
        pass

    def stop(self) -> None:
        pass


def task(description: str, total: float):
    """A bar for work inside a step: a row of the open `steps` display, else its own transient
    display on stderr. Returns an object with `update(completed)` and `stop()`."""
    if _silent:
        return _NoTask()
    if _open is not None:
        return _Task(_open, _open.add_task(f"  {description}", total=total), own=False)
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if not console.is_terminal:  # a bar cannot redraw in a log: show nothing
        return _NoTask()
    progress = Progress(console=console, transient=True)
    progress.start()
    return _Task(progress, progress.add_task(description, total=total), own=True)
