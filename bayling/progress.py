"""The one progress bar: rich, on stderr, with count, rate and ETA — or nothing at all.

    with progress_bar(enabled, total, "translating") as bar:
        bar(n)          # n more done
        bar.set(done)   # done so far
`enabled=None` shows it on a terminal only; `total=None` when the count is not known. Where stderr
is no terminal (a background job's log) an enabled bar writes a plain line every `every` seconds
and one at the end instead: rich draws nothing there.
"""

from __future__ import annotations

import sys
import time

__all__ = ["progress_bar"]


class progress_bar:
    def __init__(self, enabled: bool | None, total: int | None, label: str, *, unit: str = "",
                 transient: bool = True, every: float = 30.0) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.label, self.unit, self.transient, self.every = total, label, unit, transient, every
        self._lines = self.enabled and not sys.stderr.isatty()  # a log file: plain lines, not a live bar

    def __enter__(self) -> "progress_bar":
        if self._lines:
            self._start = self._last = time.monotonic()
            self._done = 0
        elif self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                               console=Console(stderr=True), transient=self.transient)
            self._p.start()
            self._task = self._p.add_task(self.label, total=self.total, rate="")
        return self

    def __call__(self, n: int) -> None:
        if self._lines:
            self._log(self._done + n)
        elif self.enabled:
            self._p.advance(self._task, n)
            self._rate()

    def set(self, done: int) -> None:
        if self._lines:
            self._log(done)
        elif self.enabled:
            self._p.update(self._task, completed=done)
            self._rate()

    def _log(self, done: int, final: bool = False) -> None:
        self._done, now = done, time.monotonic()
        if not final and now - self._last < self.every:
            return
        self._last, elapsed = now, now - self._start
        unit = f" {self.unit}" if self.unit else ""
        line = f"{self.label}: {done:,}" + (f"/{self.total:,}" if self.total else "") + unit
        if elapsed > 0 and done:
            line += f", {done / elapsed:.2f}/s"
            if self.total and not final:
                line += f", ETA {_clock((self.total - done) * elapsed / done)}"
        if final:
            line += f", done in {_clock(elapsed)}"
        print(line, file=sys.stderr, flush=True)

    def _rate(self) -> None:
        speed = self._p.tasks[self._task].speed
        if speed:
            unit = f" {self.unit}" if self.unit else ""
            self._p.update(self._task, rate=f"{speed:.2f}{unit}/s" if speed < 10 else f"{speed:,.0f}{unit}/s")

    def __exit__(self, *exc) -> None:
        if self._lines:
            self._log(self._done, final=True)
        elif self.enabled:
            self._p.stop()


def _clock(seconds: float) -> str:
    """h:mm:ss (or m:ss) for a log line."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
